"""Reading a run folder for the report: its results, plans, phases, per-epoch metrics and gamma histograms.

:func:`read_run` gathers everything into one :class:`Run` (every piece optional); the helpers here
(:func:`last_per_epoch`, :func:`plan_widths`, :func:`group_widths`, ...) normalise the files' layouts.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netslim.pipelines import layout as L
from netslim.pipelines.layout import RunLayout
from netslim.report.figures import Figures, plots_module

# order of phase kinds within one pass / round (names are matched by prefix)
# order of phase kinds within one pass / round (names are matched by prefix)
_PHASE_RANK = ("train", "baseline", "dense", "sparsity", "prune", "finetune", "distill", "retrain", "round")


def read_json(path: Path, problems: list[str]) -> Any:
    """The JSON in ``path``; None when absent or unreadable (then a note in ``problems``)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({exc}); skipped")
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (empty when absent)."""
    if not path.is_file():
        return []
    from netslim.plots import read_jsonl

    return read_jsonl(path)


def last_per_epoch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with one entry per ``epoch`` (the last one written wins: a resumed run repeats epochs), in
    epoch order; rows without an epoch keep their place at the end."""
    by_epoch: dict[Any, dict[str, Any]] = {}
    rest = []
    for row in rows:
        epoch = row.get("epoch")
        if is_number(epoch):
            by_epoch[epoch] = row
        else:
            rest.append(row)
    return [by_epoch[e] for e in sorted(by_epoch)] + rest


def plan_widths(plan: Any) -> dict[str, tuple[int, int]]:
    """``{layer: (before, after)}`` from the accepted ``plan.json`` layouts (empty if none matches).

    Layouts: ``{"layers": {name: {"before": b, "after": a}}}``, ``{"layers": [{"name"|"layer": ...,
    "before": b, "after": a}]}`` or ``{"channels": {name: [b, a]}}``.
    """
    if not isinstance(plan, dict):
        return {}
    widths: dict[str, tuple[int, int]] = {}
    layers = plan.get("layers")
    if isinstance(layers, dict):
        for name, entry in layers.items():
            if isinstance(entry, dict) and "before" in entry and "after" in entry:
                widths[str(name)] = (int(entry["before"]), int(entry["after"]))
    elif isinstance(layers, list):
        for entry in layers:
            if isinstance(entry, dict) and "before" in entry and "after" in entry:
                name = entry.get("name", entry.get("layer", f"layer{len(widths)}"))
                widths[str(name)] = (int(entry["before"]), int(entry["after"]))
    channels = plan.get("channels")
    if not widths and isinstance(channels, dict):
        for name, pair in channels.items():
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                widths[str(name)] = (int(pair[0]), int(pair[1]))
    return widths


def group_widths(plans: list[Any]) -> dict[str, tuple[int, int]]:
    """``{prunable group: (channels before the first pass, channels after the last)}`` of a run's plans.

    Read from each plan's ``meta.groups`` (one entry per group of coupled layers: a conv and its BN, or the
    convs tied by a residual add, are one group); plans without it fall back to the per-layer widths minus
    the BatchNorm layers, which only repeat their conv's width.
    """
    plans = [p for p in plans if isinstance(p, dict)]
    if not plans:
        return {}

    def widths(plan: dict[str, Any]) -> dict[str, tuple[int, int]]:
        groups = (plan.get("meta") or {}).get("groups")
        if isinstance(groups, list) and groups:
            return {
                str(g["name"]): (int(g["size"]), int(g["kept"]))
                for g in groups
                if isinstance(g, dict) and {"name", "size", "kept"} <= g.keys()
            }
        layers = plan.get("layers")
        kinds = (
            {n: e.get("kind") for n, e in layers.items() if isinstance(e, dict)}
            if isinstance(layers, dict)
            else {}
        )
        return {n: w for n, w in plan_widths(plan).items() if kinds.get(n) != "bn"}

    first, last = widths(plans[0]), widths(plans[-1])
    return {name: (b, last.get(name, (b, a))[1]) for name, (b, a) in first.items()}


def is_number(v: Any) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _phase_key(item: tuple[str, Path]) -> tuple[int, int, float, str]:
    """Run order of a phase folder: its pass/round number, then the kind of phase, then when it ended."""
    name, path = item
    numbers = re.findall(r"\d+", name)
    rank = next((i for i, k in enumerate(_PHASE_RANK) if name.lower().startswith(k)), len(_PHASE_RANK))
    try:
        mtime = (path / L.METRICS).stat().st_mtime
    except OSError:
        mtime = 0.0
    return (int(numbers[0]) if numbers else 0, rank, mtime, name)


def _phases(layout: RunLayout) -> list[tuple[str, Path]]:
    """``(name, folder)`` of every trainer folder in run order; a training run's root is its only phase."""
    found = [(p.name, p) for p in layout.phases()]
    if (layout.root / L.METRICS).is_file():
        found.append(("train", layout.root))
    return sorted(found, key=_phase_key)


def pass_number(name: str) -> int | None:
    """The pass number in a phase folder name (``sparsity-pass2`` -> 2), or None."""
    match = re.search(r"pass[-_]?(\d+)", name)
    return int(match.group(1)) if match else None


def pass_thresholds(plans: list[Any], results: dict[str, Any]) -> list[float | None]:
    """The global |gamma| threshold of each pass: from ``plan.json``'s ``meta``, else ``results.passes``."""
    out: list[float | None] = [
        (p.get("meta") or {}).get("threshold") if isinstance(p, dict) else None for p in plans
    ]
    passes = results.get("passes") if isinstance(results.get("passes"), list) else []
    for i, entry in enumerate(passes):
        if i >= len(out):
            out.append(None)
        if out[i] is None and isinstance(entry, dict):
            out[i] = entry.get("threshold")
    return [t if is_number(t) else None for t in out]


def weights_total(results: dict[str, Any]) -> dict[str, Any] | None:
    """The all-layers row of a weight-pruning run: ``results["total"]``, or the ``total`` layer row."""
    if isinstance(results.get("total"), dict):
        return results["total"]
    layers = results.get("layers") or []
    return next((r for r in layers if isinstance(r, dict) and r.get("name") == "total"), None)


@dataclass
class Run:
    """Everything read from one run folder, and what the section builders add to it."""

    root: Path
    config: dict[str, Any]
    results: dict[str, Any]
    plans: list[Any]
    phases: list[tuple[str, Path]]
    metrics: dict[str, list[dict[str, Any]]]  # phase -> one row per epoch
    gamma: list[tuple[str, list[dict[str, Any]]]]  # (phase, one histogram record per epoch)
    groups: dict[str, tuple[int, int]]
    kind: str
    figures: Figures
    problems: list[str]
    absent: list[str] = field(default_factory=list)  # pieces this kind of run has and this one lacks


def _run_kind(results: dict[str, Any], plans: list[Any], gamma: list[Any], phases: list[Any]) -> str:
    if plans or gamma or "after_prune" in results or "passes" in results:
        return "slimming"
    if results.get("command") == "prune-weights" or "sizes_bytes" in results or "rounds" in results:
        return "weights"
    return "train" if phases or results else "empty"


KIND_TITLES = {
    "slimming": "Network Slimming (Liu et al. 2017)",
    "weights": "Weight pruning (Han et al. 2015)",
    "train": "Training",
    "empty": "Nothing to report yet: no results.json, plan.json or metrics.jsonl in this folder",
}


def describe(config: dict[str, Any], results: dict[str, Any]) -> str:
    """``vgg11 on fashion-mnist`` from whichever of the config and the results names them."""

    def name(v: Any) -> str | None:
        if isinstance(v, dict):
            v = v.get("name")
        return v if isinstance(v, str) else None

    train = config.get("train")
    extra = train.get("extra") if isinstance(train, dict) and isinstance(train.get("extra"), dict) else {}
    model = name(config.get("model")) or name(results.get("model")) or name(extra.get("model"))
    dataset = name(config.get("dataset")) or name(results.get("dataset")) or name(extra.get("dataset"))
    return " ".join(p for p in (model, dataset and f"on {dataset}") if p)


def read_run(root: Path, draw: bool) -> Run:
    """Everything the report needs from the run folder ``root``, as one :class:`Run`."""
    layout = RunLayout(root)
    problems: list[str] = []
    config = read_json(layout.config, problems)
    results = read_json(layout.results, problems)
    results = results if isinstance(results, dict) else {}
    if not isinstance(config, dict) and isinstance(results.get("config"), dict):
        config = results["config"]  # runs that keep their configuration inside results.json
    plan = read_json(layout.plan, problems)
    plans = plan if isinstance(plan, list) else [plan] if isinstance(plan, dict) else []
    phases = _phases(layout)
    metrics = {name: last_per_epoch(read_jsonl(folder / L.METRICS)) for name, folder in phases}
    gamma = [(name, last_per_epoch(read_jsonl(folder / L.GAMMA_HIST))) for name, folder in phases]
    gamma = [(name, records) for name, records in gamma if records]
    if draw and plots_module() is None:
        problems.append("figures need matplotlib: pip install 'netslim[plots]'")
        draw = False
    return Run(
        root=root,
        config=config if isinstance(config, dict) else {},
        results=results,
        plans=plans,
        phases=phases,
        metrics={k: v for k, v in metrics.items() if v},
        gamma=gamma,
        groups=group_widths(plans),
        kind=_run_kind(results, plans, gamma, phases),
        figures=Figures(root, draw, problems),
        problems=problems,
    )


def read_sensitivity_csv(path: Path, problems: list[str]) -> tuple[dict[str, list[tuple[float, float]]], Any]:
    """``({layer: [(sparsity, accuracy), ...]}, baseline accuracy)`` of a sweep's CSV (empty if none)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    baseline = None
    if not path.is_file():
        return curves, baseline
    try:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("layer") == "baseline":
                    baseline = float(row["accuracy"])
                else:
                    curves.setdefault(row["layer"], []).append(
                        (float(row["sparsity"]), float(row["accuracy"]))
                    )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        problems.append(f"{path.name} could not be read ({exc}); skipped")
        return {}, None
    return curves, baseline
