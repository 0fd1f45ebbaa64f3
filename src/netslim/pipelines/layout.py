"""The run folder, defined once: what every pipeline writes where, and what ``netslim report`` reads.

A run folder holds the run's ``config.json`` and ``results.json`` at its root, one sub-folder per training
phase (each a trainer folder: ``checkpoint.pt``, ``metrics.jsonl``/``metrics.csv``, and for sparsity training
``gamma_hist.jsonl``), the models of the stages as netslim checkpoints, ``plots/`` and the report.
Pipelines add phases and files here rather than spelling paths themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# files at the root of every run folder
CONFIG = "config.json"
RESULTS = "results.json"
PLAN = "plan.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS = "plots"
LOCK = ".netslim.lock"

# files inside a trainer (phase) folder
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
GAMMA_HIST = "gamma_hist.jsonl"


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run folder. ``RunLayout("runs/x").phase("sparsity")`` -> ``runs/x/sparsity``."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        """The run's configuration (JSON)."""
        return self.root / CONFIG

    @property
    def results(self) -> Path:
        """The run's results (JSON): the before/after figures the report's first table shows."""
        return self.root / RESULTS

    @property
    def plan(self) -> Path:
        """The pruning plan of a slimming run (JSON; a list of plans, one per pass, for multi-pass)."""
        return self.root / PLAN

    @property
    def plots(self) -> Path:
        """The folder of the run's figures."""
        return self.root / PLOTS

    @property
    def report_md(self) -> Path:
        """The Markdown report."""
        return self.root / REPORT_MD

    @property
    def report_html(self) -> Path:
        """The self-contained HTML report."""
        return self.root / REPORT_HTML

    def phase(self, name: str) -> Path:
        """The trainer folder of a phase (``train``, ``sparsity``, ``finetune``, ``retrain-2``, ...)."""
        return self.root / name

    def model(self, stage: str) -> Path:
        """The netslim checkpoint of a stage (``baseline``, ``sparse``, ``pruned``, ``finetuned``, ...)."""
        return self.root / f"{stage}.pt"

    def phases(self) -> list[Path]:
        """Every trainer folder present in the run, in name order (those holding ``metrics.jsonl``)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if (p / METRICS).is_file())
