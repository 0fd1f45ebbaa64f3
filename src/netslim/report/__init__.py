"""Summarize a run folder as ``report.md`` and a self-contained ``report.html``, read from the data.

The report reads whatever the run folder holds (every piece is optional; a missing one gets one line under
"Not in this run") and lays it out in the order a reader needs it:

1. **Before / after**: accuracy, params, FLOPs, latency, channels or weights, storage, from ``results.json``
   (``before``/``after``/``after_prune``/``plain_cut`` of a slimming run; ``test_before``/``test_after``,
   the per-layer ``layers`` and ``sizes_bytes`` of a weight-pruning run); a training run without
   ``results.json`` gets its final epoch and the test accuracy stored in ``model.pt``.
2. **Figures** drawn from the data into ``plots/``: the |gamma| distribution per epoch of every sparsity
   phase (``gamma_hist.jsonl``) with the cut threshold of ``plan.json`` marked (the paper's Fig. 4); the
   training curves of every phase (``metrics.jsonl``: loss, accuracy, lr, L1 strength); the channels kept
   per prunable group (``plan.json``'s ``meta.groups``); for weight pruning the weights kept per layer,
   the sensitivity curves (``sensitivity.csv``) and the storage sizes. Other PNG files of the run are shown
   once each.
3. Details (per-layer and per-epoch tables), then notes, then the **configuration**, last.

The phase folders are found through :class:`netslim.pipelines.layout.RunLayout`. :func:`collect` reads the
folder into a list of sections, :func:`render_markdown` and :func:`render_html` turn it into text, and
:func:`write_report` does all three. One job per module::

    reading.py   read a run folder into one Run (results, plans, phases, metrics, gamma histograms)
    cells.py     the text of a table cell (counts, shares, sizes, changes)
    figures.py   draw the figures into plots/ (netslim.plots, matplotlib optional)
    sections.py  the sections in reading order (collect)
    markdown.py  report.md
    html.py      the self-contained report.html
"""

from __future__ import annotations

import os
from pathlib import Path

from netslim.pipelines.layout import RunLayout
from netslim.report.cells import fmt, metric_columns
from netslim.report.html import render_html
from netslim.report.markdown import render_markdown
from netslim.report.reading import group_widths, last_per_epoch, plan_widths
from netslim.report.sections import MAX_METRIC_ROWS, collect

__all__ = [
    "MAX_METRIC_ROWS",
    "collect",
    "fmt",
    "group_widths",
    "last_per_epoch",
    "metric_columns",
    "plan_widths",
    "render_html",
    "render_markdown",
    "write_report",
]


def write_report(run_dir: str | os.PathLike[str], *, draw: bool = True) -> tuple[Path, Path]:
    """Draw the figures into ``plots/`` and write ``report.md`` and ``report.html``; returns both paths."""
    from netslim._atomic import atomic_write_text

    layout = RunLayout(run_dir)
    data = collect(layout.root, draw=draw)
    atomic_write_text(layout.report_md, render_markdown(data))
    atomic_write_text(layout.report_html, render_html(data, layout.root))
    return layout.report_md, layout.report_html
