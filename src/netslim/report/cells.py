"""Cell texts of the report's tables: counts, shares, sizes, changes, metric values."""

from __future__ import annotations

import json
import math
from typing import Any

from netslim._table import change_text, count_text
from netslim.report.reading import is_number


def fmt(value: Any) -> str:
    """Format a table cell: large numbers with SI prefixes, fractions with 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**6 else f"{value / 1e6:.3f}M"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1e6:
            return f"{value / 1e6:.3f}M"
        return f"{value:.4g}"
    return json.dumps(value)


count = count_text  # 578810 -> ``578.81K``, as the CLI tables print counts


def pct(v: Any) -> str:
    """A share (0.8766) as the CLI prints it (``87.66%``)."""
    return f"{100 * v:.2f}%" if is_number(v) else "n/a"


def size(v: Any) -> str:
    """A byte count as ``12.3 KiB`` / ``4.56 MiB`` (``n/a`` when not a number)."""
    if not is_number(v):
        return "n/a"
    return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB"


change = change_text  # relative change ``-91.3%`` of a count


def points(before: Any, after: Any) -> str:
    """Difference of two shares in percentage points (``+1.00 pt``)."""
    return f"{100 * (after - before):+.2f} pt" if is_number(before) and is_number(after) else ""


def metric_cell(key: str, v: Any) -> str:
    """One metrics.jsonl value: shares as percentages, the rest as numbers."""
    if is_number(v) and (key.endswith(("acc", "accuracy", "share")) or key.startswith("gamma_frac")):
        return f"{100 * v:.2f}%"
    if key == "lr" and is_number(v):
        return f"{v:.3g}"
    return fmt(v)


def metric_columns(metrics: list[dict[str, Any]]) -> list[str]:
    """Columns of the metrics table: ``epoch`` first, then every scalar key in first-seen order."""
    cols: dict[str, None] = {}
    for row in metrics:
        for k, v in row.items():
            if isinstance(v, (int, float, str)):
                cols[k] = None
    return [c for c in ("epoch",) if c in cols] + [c for c in cols if c != "epoch"]


def flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, value)`` pairs of a nested dict (the configuration tables)."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def epochs(n: int) -> str:
    """``1 epoch`` / ``n epochs``."""
    return "1 epoch" if n == 1 else f"{n} epochs"
