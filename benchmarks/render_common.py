"""The formatters every part of docs/RESULTS.md shares: one table formatter, number formats, row lookups.

A leaf module: :mod:`benchmarks.render` (the page) and :mod:`benchmarks.render_standard` (the standard
suite's part of it) both build on it, and it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]


def command(suite: str, name: str) -> str:
    """The command that (re)produces one row."""
    return f"python -m benchmarks.run --suite {suite} --only {name}"


def ok(results: Results, name: str) -> dict[str, Any] | None:
    """The measured result of row ``name``, or None when it is missing or failed."""
    rec = results.get(name)
    return rec["result"] if rec and rec.get("status") == "ok" else None


def absent(suite: str, results: Results, name: str) -> str:
    """One line saying why row ``name`` has no figures and how to get them."""
    rec = results.get(name)
    if rec and rec.get("status") != "ok":
        err = str(rec.get("result", {}).get("error", "unknown error")).replace("|", "/")
        return f"- `{name}` failed: {err} (rerun: `{command(suite, name)}`)"
    return f"- `{name}` not run yet: `{command(suite, name)}`"


def section(suite: str, results: Results, name: str, title: str) -> tuple[list[str], dict[str, Any] | None]:
    """A one-row section's heading lines and that row's result; when the row is not stored, the lines
    already say so (and how to run it) and the result is None."""
    out = [f"### {title}", ""]
    res = ok(results, name)
    if res is None:
        out += [absent(suite, results, name), ""]
    return out, res


def n(v: float | None) -> str:
    """A count with a K/M/G unit, '-' for None."""
    if v is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def f2(v: float | None, suffix: str = "") -> str:
    """A float with two decimals, '-' for None."""
    return "-" if v is None else f"{v:.2f}{suffix}"


def pruned_pct(before: float | None, after: float | None) -> str:
    """``after (x% pruned)`` relative to ``before``."""
    if before is None or after is None or not before:
        return n(after)
    return f"{n(after)} ({100.0 * (1 - after / before):.1f}%)"


def verdict(met: bool) -> str:
    """PASS or MISS."""
    return "PASS" if met else "MISS"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table (header, separator, one line per row) as a list of lines."""
    out = [f"| {' | '.join(header)} |", "|" + "|".join("---" for _ in header) + "|"]
    out += [f"| {' | '.join(r)} |" for r in rows]
    return out


def plot(path: Path, draw: Callable[[Any], None]) -> str | None:
    """Draw one figure to ``path``; returns its path relative to docs/ (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return f"img/{path.name}"
