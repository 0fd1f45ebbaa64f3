"""The one table formatter: aligned plain-text tables and Markdown tables, and the cells they share.

Every table netslim prints or writes (the CLI's result tables, ``netslim measure``, the slimming run's
before/after table, the weight-pruning and storage reports, ``report.md``) is laid out by
:func:`format_table`; the callers only choose the rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    """A cell's text: floats with 4 significant digits, ``None`` as ``-``, anything else ``str()``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(
    rows: Sequence[Sequence[Any]],
    header: Sequence[str] | None = None,
    *,
    align: str = "",
    markdown: bool = False,
    rules_before: Sequence[int] = (),
    title: str | None = None,
    indent: str = "",
) -> str:
    """Lay out ``rows`` (cells formatted by :func:`cell`) under ``header`` and return the text.

    ``align`` holds one letter per column, ``l`` or ``r`` (columns beyond it: left). Plain text (the
    default): columns two spaces apart, a dashed rule under the header and before each body row index in
    ``rules_before`` (negative counts from the end), every line prefixed by ``indent``, ``title`` on the
    first line. ``markdown``: a GitHub table, ``| --- | ---: |`` marking the alignment, ``|`` in cells
    escaped (``title`` and ``indent`` are ignored).
    """
    body = [[cell(v) for v in row] for row in rows]
    head = [str(h) for h in header] if header is not None else None
    ncols = max([len(r) for r in body] + [len(head or ())], default=0)
    sides = [align[j] if j < len(align) else "l" for j in range(ncols)]
    if markdown:
        return _markdown(head, body, sides)
    lines = [title] if title else []
    widths = [
        max((len(r[j]) for r in [*([head] if head else []), *body] if j < len(r)), default=0)
        for j in range(ncols)
    ]
    rule = indent + "  ".join("-" * w for w in widths)
    before = {i % len(body) for i in rules_before} if body else set()

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if side == "r" else c.ljust(w) for c, w, side in zip(cells, widths, sides)]
        return (indent + "  ".join(padded)).rstrip()

    if head is not None:
        lines += [line(head), rule]
    for i, row in enumerate(body):
        if i in before:
            lines.append(rule)
        lines.append(line(row))
    return "\n".join(lines)


def _markdown(head: list[str] | None, body: list[list[str]], sides: list[str]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    marks = ["---:" if side == "r" else "---" for side in sides]
    lines = [line(head or [""] * len(sides)), "| " + " | ".join(marks) + " |"]
    return "\n".join(lines + [line(row) for row in body])


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def count_text(v: Any) -> str:
    """A count as the tables print it: ``578810`` -> ``578.81K`` (``n/a`` when not a number)."""
    if not _finite(v):
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def change_text(before: Any, after: Any) -> str:
    """The relative change of a count, ``-91.3%`` (empty when it cannot be told)."""
    if not (_finite(before) and _finite(after)) or before == 0:
        return ""
    return f"{100.0 * (after - before) / before:+.1f}%"
