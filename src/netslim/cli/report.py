"""``netslim report RUN_DIR``: write report.md and a self-contained report.html for a run folder."""

from __future__ import annotations

import argparse
from typing import Any

from netslim.cli._common import add_command


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command."""
    p = add_command(
        subparsers,
        "report",
        run,
        help="summarize a run folder as report.md and report.html",
        description="Reads whatever RUN_DIR holds (results.json, plan.json, each phase folder's "
        "metrics.jsonl and gamma_hist.jsonl, config.json), draws its figures into RUN_DIR/plots and "
        "writes report.md and a self-contained report.html: the before/after table first, the "
        "configuration last.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")


def run(args: argparse.Namespace) -> int:
    """Write the two report files and print their paths."""
    from netslim.report import write_report

    md, html = write_report(args.run_dir)
    print(md)
    print(html)
    return 0
