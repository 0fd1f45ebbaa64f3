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
folder into a list of sections, :func:`render_markdown` and :func:`netslim.report_html.render_html` turn
it into text, and :func:`write_report` does all three.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netslim.errors import NetslimError
from netslim.pipelines import layout as L
from netslim.pipelines.layout import RunLayout

MAX_METRIC_ROWS = 60

# order of phase kinds within one pass / round (names are matched by prefix)
_PHASE_RANK = ("train", "baseline", "dense", "sparsity", "prune", "finetune", "distill", "retrain", "round")
# images an older netslim report wrote at the run root: superseded by the figures drawn into plots/
_OLD_REPORT_IMAGES = {
    "curves": "training_curves.png",
    "gamma": "gamma_hist.png",
    "channels": "channels_per_layer.png",
}


# ------------------------------------------------------------------------------------------- reading


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({exc}); skipped")
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
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
        if _is_number(epoch):
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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------- formatting


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


def _count(v: Any) -> str:
    """578810 -> ``578.81K``, as the CLI tables print counts."""
    if not _is_number(v):
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def _pct(v: Any) -> str:
    """A share (0.8766) as the CLI prints it (``87.66%``)."""
    return f"{100 * v:.2f}%" if _is_number(v) else "n/a"


def _bytes(v: Any) -> str:
    if not _is_number(v):
        return "n/a"
    return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB"


def _change(before: Any, after: Any) -> str:
    """Relative change ``-91.3%`` of a count."""
    if not (_is_number(before) and _is_number(after)) or before == 0:
        return ""
    return f"{100.0 * (after - before) / before:+.1f}%"


def _points(before: Any, after: Any) -> str:
    """Difference of two shares in percentage points (``+1.00 pt``)."""
    return f"{100 * (after - before):+.2f} pt" if _is_number(before) and _is_number(after) else ""


def _metric_cell(key: str, v: Any) -> str:
    """One metrics.jsonl value: shares as percentages, the rest as numbers."""
    if _is_number(v) and (key.endswith(("acc", "accuracy", "share")) or key.startswith("gamma_frac")):
        return f"{100 * v:.2f}%"
    if key == "lr" and _is_number(v):
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


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


# ------------------------------------------------------------------------------------ section blocks


def _table(header: list[str], rows: list[list[str]], **extra: Any) -> dict[str, Any]:
    return {"type": "table", "header": header, "rows": rows, **extra}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _section(key: str, title: str, blocks: list[dict[str, Any]], collapsed: bool = False) -> dict[str, Any]:
    return {"id": key, "title": title, "blocks": blocks, "collapsed": collapsed}


class _Figures:
    """Draws the report's figures into ``plots/`` (with ``draw=False``, uses those already there)."""

    def __init__(self, root: Path, draw: bool, problems: list[str]) -> None:
        self.root, self.draw, self.problems = root, draw, problems
        self.drawn: dict[str, tuple[str, str]] = {}  # run-relative path -> (figure kind, content digest)

    def make(self, kind: str, name: str, caption: str, draw: Callable[[Path], Any]) -> dict[str, Any] | None:
        """A figure block for ``plots/name`` drawn by ``draw(path)``; None (and a note) if it fails."""
        path = self.root / L.PLOTS / name
        if self.draw:
            try:
                draw(path)
            except (NetslimError, ValueError, KeyError, TypeError, IndexError) as exc:
                self.problems.append(f"could not draw {L.PLOTS}/{name}: {exc}")
                return None
        if not path.is_file():
            return None
        rel = f"{L.PLOTS}/{name}"
        self.drawn[rel] = (kind, _digest(path))
        return {"type": "figure", "figure": kind, "file": rel, "caption": caption}


# ------------------------------------------------------------------------------------------- phases


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


def _pass_number(name: str) -> int | None:
    match = re.search(r"pass[-_]?(\d+)", name)
    return int(match.group(1)) if match else None


def _thresholds(plans: list[Any], results: dict[str, Any]) -> list[float | None]:
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
    return [t if _is_number(t) else None for t in out]


# ---------------------------------------------------------------------------------- before / after


_ACC_KEYS = (("test_acc", "test accuracy"), ("val_acc", "val accuracy"), ("accuracy", "accuracy"))
_STAGE_LABELS = {"after_prune": "right after the cut", "plain_cut": "plain cut (no beta folding)"}


def _stage_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of a ``before``/``after`` results dict (slimming runs; any run that stores both)."""
    b, a = results.get("before"), results.get("after")
    if not isinstance(b, dict) or not isinstance(a, dict):
        return []
    rows: list[list[str]] = []
    shown: set[str] = set()
    for key, label in _ACC_KEYS:
        if _is_number(b.get(key)):
            rows.append([label, _pct(b[key]), _pct(a.get(key)), _points(b[key], a.get(key))])
            shown.add(key)
    # intermediate stages (right after the cut, plain cut, distillation ...): their accuracy against before
    for stage, value in results.items():
        if stage in ("before", "after") or not isinstance(value, dict):
            continue
        key = next((k for k, _ in _ACC_KEYS if _is_number(value.get(k)) and _is_number(b.get(k))), None)
        if key is None:
            continue
        label = _STAGE_LABELS.get(stage, stage.replace("_", " "))
        rows.append([f"{dict(_ACC_KEYS)[key]}, {label}", _pct(b[key]), _pct(value[key]), ""])
    for key, label, cell in (
        ("params", "params", _count),
        ("flops", "FLOPs", _count),
        ("latency_ms", "CPU latency, batch 1", lambda v: f"{v:.2f} ms" if _is_number(v) else "n/a"),
        ("file_bytes", "file size", _bytes),
    ):
        if _is_number(b.get(key)) and key in a:
            rows.append([label, cell(b[key]), cell(a[key]), _change(b[key], a[key])])
            shown.add(key)
    for key in b:  # anything else the two share
        if key not in shown and _is_number(b[key]) and _is_number(a.get(key)):
            rows.append([key.replace("_", " "), fmt(b[key]), fmt(a[key]), _change(b[key], a[key])])
    return rows


def _weights_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of a weight-pruning run: test accuracy, weights and FLOPs kept (the ``total`` layer row), size."""
    rows: list[list[str]] = []
    tb, ta = results.get("test_before"), results.get("test_after")
    if isinstance(tb, dict) and _is_number(tb.get("accuracy")):
        after = ta.get("accuracy") if isinstance(ta, dict) else None
        rows.append(["test accuracy", _pct(tb["accuracy"]), _pct(after), _points(tb["accuracy"], after)])
    total = _weights_total(results)
    if total is not None:
        if _is_number(total.get("weights")):
            w, k = total["weights"], total.get("kept")
            rate = f" ({w / k:.1f}x fewer)" if _is_number(k) and k else ""
            rows.append(["weights (nonzero)", _count(w), _count(k), _change(w, k) + rate])
        if _is_number(total.get("flops")):
            f, k = total["flops"], total.get("flops_kept")
            rows.append(["FLOPs", _count(f), _count(k), _change(f, k)])
    sizes = results.get("sizes_bytes")
    if isinstance(sizes, dict) and _is_number(sizes.get("dense")) and sizes:
        smallest = list(sizes)[-1]
        d, s = sizes["dense"], sizes[smallest]
        factor = f"{d / s:.1f}x smaller" if _is_number(s) and s else ""
        rows.append([f"size on disk (dense -> {smallest})", _bytes(d), _bytes(s), factor])
    return rows


def _weights_total(results: dict[str, Any]) -> dict[str, Any] | None:
    """The all-layers row of a weight-pruning run: ``results["total"]``, or the ``total`` layer row."""
    if isinstance(results.get("total"), dict):
        return results["total"]
    layers = results.get("layers") or []
    return next((r for r in layers if isinstance(r, dict) and r.get("name") == "total"), None)


def _summary(results: dict[str, Any], groups: dict[str, tuple[int, int]]) -> list[list[str]]:
    rows = _stage_rows(results)
    labels = {r[0] for r in rows}
    rows += [r for r in _weights_rows(results) if r[0] not in labels]
    if groups and rows:
        before = sum(b for b, _ in groups.values())
        after = sum(a for _, a in groups.values())
        rows.append(["prunable channels", f"{before:,}", f"{after:,}", _change(before, after)])
    return rows


def _facts(results: dict[str, Any]) -> str:
    """One line of how the run was made: the pruning ratio, where it ran, how long it took."""
    facts = []
    if _is_number(results.get("ratio")):
        facts.append(f"pruning ratio {_pct(results['ratio']).replace('.00%', '%')}")
    l1 = results.get("l1_strength")
    if _is_number(l1) or isinstance(l1, str):
        facts.append(f"L1 strength {l1:g}" if _is_number(l1) else f"L1 strength {l1}")
    distill = results.get("distill")
    if isinstance(distill, dict) and distill:
        facts.append(
            "fine-tuned with distillation (" + ", ".join(f"{k} {fmt(v)}" for k, v in distill.items()) + ")"
        )
    if isinstance(results.get("device"), str):
        threads = results.get("threads")
        facts.append(
            f"device {results['device']}"
            + (f", {threads} CPU thread{'' if threads == 1 else 's'}" if _is_number(threads) else "")
        )
    if _is_number(results.get("seconds")):
        facts.append(f"wall time {results['seconds']:.1f} s")
    return "; ".join(facts)


def _final_rows(phases: list[tuple[str, Path]], run: Path, problems: list[str]) -> list[list[str]]:
    """A training run's results: its last epoch, and the test accuracy stored in its ``model.pt``."""
    rows: list[list[str]] = []
    if phases:
        folder = phases[-1][1]
        metrics = last_per_epoch(_read_jsonl(folder / L.METRICS))
        if metrics:
            last = metrics[-1]
            for split in ("train", "val"):
                if _is_number(last.get(f"{split}_acc")):
                    loss = last.get(f"{split}_loss")
                    rows.append([f"{split} accuracy (last epoch)", _pct(last[f"{split}_acc"])])
                    if _is_number(loss):
                        rows.append([f"{split} loss", f"{loss:.4f}"])
            rows.append(["epochs", str(last.get("epoch", len(metrics)))])
    model = run / "model.pt"
    if model.is_file():
        try:
            from netslim.io import read_checkpoint

            test = (read_checkpoint(model).meta.get("extra") or {}).get("test")
        except NetslimError as exc:
            problems.append(f"model.pt: {exc}")
            test = None
        if isinstance(test, dict) and _is_number(test.get("accuracy")):
            n = f" (n={test['n']})" if _is_number(test.get("n")) else ""
            rows.insert(0, ["test accuracy", _pct(test["accuracy"]) + n])
    return rows


# ------------------------------------------------------------------------------------------- collect


@dataclass
class _Run:
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
    figures: _Figures
    problems: list[str]
    absent: list[str] = field(default_factory=list)  # pieces this kind of run has and this one lacks


def _run_kind(results: dict[str, Any], plans: list[Any], gamma: list[Any], phases: list[Any]) -> str:
    if plans or gamma or "after_prune" in results or "passes" in results:
        return "slimming"
    if results.get("command") == "prune-weights" or "sizes_bytes" in results or "rounds" in results:
        return "weights"
    return "train" if phases or results else "empty"


_KIND_TITLES = {
    "slimming": "Network Slimming (Liu et al. 2017)",
    "weights": "Weight pruning (Han et al. 2015)",
    "train": "Training",
    "empty": "Nothing to report yet: no results.json, plan.json or metrics.jsonl in this folder",
}


def _describe(config: dict[str, Any], results: dict[str, Any]) -> str:
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


def _read_run(root: Path, draw: bool) -> _Run:
    layout = RunLayout(root)
    problems: list[str] = []
    config = _read_json(layout.config, problems)
    results = _read_json(layout.results, problems)
    results = results if isinstance(results, dict) else {}
    if not isinstance(config, dict) and isinstance(results.get("config"), dict):
        config = results["config"]  # runs that keep their configuration inside results.json
    plan = _read_json(layout.plan, problems)
    plans = plan if isinstance(plan, list) else [plan] if isinstance(plan, dict) else []
    phases = _phases(layout)
    metrics = {name: last_per_epoch(_read_jsonl(folder / L.METRICS)) for name, folder in phases}
    gamma = [(name, last_per_epoch(_read_jsonl(folder / L.GAMMA_HIST))) for name, folder in phases]
    gamma = [(name, records) for name, records in gamma if records]
    if draw and _plots() is None:
        problems.append("figures need matplotlib: pip install 'netslim[plots]'")
        draw = False
    return _Run(
        root=root,
        config=config if isinstance(config, dict) else {},
        results=results,
        plans=plans,
        phases=phases,
        metrics={k: v for k, v in metrics.items() if v},
        gamma=gamma,
        groups=group_widths(plans),
        kind=_run_kind(results, plans, gamma, phases),
        figures=_Figures(root, draw, problems),
        problems=problems,
    )


def _plots() -> Any:
    """:mod:`netslim.plots`, or None without matplotlib."""
    try:
        import matplotlib  # noqa: F401

        from netslim import plots
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        return None
    return plots


def collect(run_dir: str | os.PathLike[str], *, draw: bool = True) -> dict[str, Any]:
    """Read a run folder into ``{"title", "subtitle", "kind", "run_dir", "sections", "problems"}``.

    ``sections`` is the report in reading order; each is ``{"id", "title", "collapsed", "blocks"}`` and a
    block is a table (``header``, ``rows`` of strings), a figure (``file`` relative to the run folder,
    ``figure`` kind, ``caption``), a text or a list. With ``draw`` (the default) the figures are drawn
    from the data into ``plots/`` (needs matplotlib); without, figures already there are used.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise NetslimError(
            f"{root} is not a folder; pass the run directory written by netslim train/slim/demo"
        )
    run = _read_run(root, draw)
    sections: list[dict[str, Any]] = []
    for build in (
        _before_after_section,
        _gamma_section,
        _curves_section,
        _channels_sections,
        _weights_sections,
        _passes_section,
        _other_figures_section,
        _metrics_sections,
        _readiness_section,
        _notes_section,  # after everything that may add a note
        _config_section,  # last
    ):
        sections += build(run)
    return {
        "title": f"netslim run: {root.resolve().name}",
        "subtitle": ": ".join(p for p in (_KIND_TITLES[run.kind], _describe(run.config, run.results)) if p),
        "kind": run.kind,
        "run_dir": str(root),
        "sections": sections,
        "problems": run.problems,
    }


Sections = list[dict[str, Any]]


def _before_after_section(run: _Run) -> Sections:
    rows = _summary(run.results, run.groups)
    if rows:
        blocks = [_table(["metric", "before", "after", "change"], rows)]
        facts = _facts(run.results)
        if facts:
            blocks.append(_text(facts))
        return [_section("before-after", "Before / after", blocks)]
    final = _final_rows(run.phases, run.root, run.problems) if run.kind == "train" and not run.results else []
    if final:
        return [_section("before-after", "Results", [_table(["metric", "value"], final)])]
    run.absent.append("before/after table: no results.json with before/after figures")
    return []


def _gamma_section(run: _Run) -> Sections:
    """The |gamma| histograms of every sparsity phase, each with its pass's cut threshold."""
    thresholds = _thresholds(run.plans, run.results)
    blocks = []
    for i, (name, records) in enumerate(run.gamma):
        number = _pass_number(name)
        index = number - 1 if number is not None else i if len(run.gamma) > 1 else len(thresholds) - 1
        threshold = thresholds[index] if 0 <= index < len(thresholds) else None
        n = records[-1].get("n")
        what = f"|gamma| of the {n:,} BN channels" if _is_number(n) else "|gamma|"
        first, last = records[0].get("epoch"), records[-1].get("epoch")
        epochs = f"from epoch {first}{' (before training)' if first == 0 else ''} to epoch {last}"
        caption = f"{name}: {what}, {epochs}, in up to 6 evenly spaced panels. " + (
            f"Red line: the cut threshold {threshold:.4g} from {L.PLAN}; channels left of it are removed."
            if threshold is not None
            else f"No threshold: {L.PLAN} holds none for this phase."
        )
        title = f"|gamma| per epoch: {name}"
        fig = run.figures.make(
            "gamma",
            f"{name}-gamma-hist.png",
            caption,
            lambda path, r=records, t=threshold, title=title: _plots().gamma_histograms(
                r, path, threshold=t, title=title
            ),
        )
        if fig:
            fig["threshold"] = threshold
            blocks.append(fig)
        if len(records) > 6 and all("log_counts" in r for r in records):  # more epochs than panels
            fig = run.figures.make(
                "gamma-epochs",
                f"{name}-gamma-epochs.png",
                f"{name}: all {len(records)} epochs at once (colour: channels per |gamma| bin).",
                lambda path, r=records, t=threshold, title=title: _plots().gamma_over_epochs(
                    r, path, threshold=t, title=title
                ),
            )
            if fig:
                blocks.append(fig)
    if blocks:
        return [_section("gamma", "BN scaling factors (|gamma|) per epoch", blocks)]
    if run.kind == "slimming":
        run.absent.append(
            f"gamma histograms: no phase folder holds {L.GAMMA_HIST} (sparsity training writes it)"
        )
    return []


def _curves_section(run: _Run) -> Sections:
    if not run.metrics:
        run.absent.append(f"training curves: no phase folder holds {L.METRICS}")
        return []
    caption = "Phases in run order: " + ", ".join(f"{k} ({_epochs(len(v))})" for k, v in run.metrics.items())
    fig = run.figures.make(
        "curves",
        "training-curves.png",
        caption + ".",
        lambda path: _plots().training_curves(run.metrics, path, title="Training curves"),
    )
    return [_section("curves", "Training curves", [fig])] if fig else []


def _channels_sections(run: _Run) -> Sections:
    """One bar per prunable group (a conv and its BN, or convs tied by a residual add, are one group)."""
    if not run.groups:
        if run.kind == "slimming":
            run.absent.append(f"channels per group: no {L.PLAN} (written when the channels are cut)")
        return []
    caption = (
        f"{len(run.groups)} prunable groups (layers that must keep the same channels count as one); "
        "light: channels before, dark: kept."
    )
    fig = run.figures.make(
        "channels",
        "channels-kept.png",
        caption,
        lambda path: _plots().channels_per_layer(run.groups, path, title="Channels kept per prunable group"),
    )
    rows = [[n, str(b), str(a), f"{100 * a / b:.1f}%" if b else "-"] for n, (b, a) in run.groups.items()]
    table = _table(["group", "before", "after", "kept"], rows)
    return [
        _section("channels", "Channels kept per prunable group", [fig] if fig else []),
        _section("channels-table", "Channels per group (table)", [table], collapsed=True),
    ]


def _weights_sections(run: _Run) -> Sections:
    """Han et al. runs: weights kept per layer, the prune/retrain rounds, sensitivity, storage."""
    if run.kind != "weights":
        return []
    return _layers_section(run) + _rounds_section(run) + _sensitivity_section(run) + _storage_section(run)


def _layers_section(run: _Run) -> Sections:
    results = run.results
    layers = [r for r in results.get("layers") or [] if isinstance(r, dict) and r.get("name") != "total"]
    if not layers:
        run.absent.append("per-layer kept weights: results.json has no 'layers' rows")
        return []
    fig = run.figures.make(
        "weights-kept",
        "weights-kept.png",
        "Share of each layer's weights (and FLOPs) left after pruning; weight counts in brackets.",
        lambda path: _plots().weights_kept(layers, path),
    )
    total = _weights_total(results)
    rows = [
        [
            str(r.get("name", "total" if r is total else "?")),
            _count(r.get("weights")),
            f"{r['kept_pct']:.1f}%" if _is_number(r.get("kept_pct")) else "n/a",
            f"{r['flops_kept_pct']:.1f}%" if _is_number(r.get("flops_kept_pct")) else "n/a",
        ]
        for r in [*layers, *([total] if total is not None else [])]
    ]
    blocks = ([fig] if fig else []) + [_table(["layer", "weights", "weights kept", "FLOPs kept"], rows)]
    return [_section("weights-kept", "Weights kept per layer", blocks)]


def _rounds_section(run: _Run) -> Sections:
    rounds = [r for r in run.results.get("rounds") or [] if isinstance(r, dict)]
    if not rounds:
        return []
    rows = [
        [
            str(r.get("round", i + 1)),
            str(r.get("phase", "")),
            _pct(r.get("accuracy_pruned")),
            _pct(r.get("accuracy")),
        ]
        for i, r in enumerate(rounds)
    ]
    header = ["round", "layers pruned", "accuracy right after pruning", "after retraining"]
    return [_section("rounds", "Prune / retrain rounds", [_table(header, rows)])]


def _read_sensitivity_csv(
    path: Path, problems: list[str]
) -> tuple[dict[str, list[tuple[float, float]]], Any]:
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


def _sensitivity_section(run: _Run) -> Sections:
    """The sweep's curves (sensitivity.csv) with each layer's chosen sparsity and the tolerated drop."""
    curves, baseline = _read_sensitivity_csv(run.root / "sensitivity.csv", run.problems)
    if not curves:
        run.absent.append("sensitivity curves: no sensitivity.csv (prune-weights --sensitivity writes one)")
        return []
    settings = _read_json(run.root / "layer_settings.json", run.problems)
    settings = settings if isinstance(settings, dict) else {}
    sens = run.results.get("sensitivity") if isinstance(run.results.get("sensitivity"), dict) else {}
    layers = settings.get("layers") or sens.get("layers") or {}
    chosen = {
        k: v["sparsity"] for k, v in layers.items() if isinstance(v, dict) and _is_number(v.get("sparsity"))
    }
    if baseline is None:
        baseline = sens.get("baseline", sens.get("baseline_accuracy"))
    max_drop = settings.get("max_drop", sens.get("max_drop"))
    max_drop = max_drop if _is_number(max_drop) else None
    caption = "Accuracy with one layer pruned at a time; circles: the sparsity chosen for each layer" + (
        f"; red line: the tolerated accuracy drop {max_drop:g}." if max_drop is not None else "."
    )
    fig = run.figures.make(
        "sensitivity",
        "sensitivity.png",
        caption,
        lambda path: _plots().sensitivity_curves(
            curves, path, baseline=baseline, max_drop=max_drop, chosen=chosen
        ),
    )
    blocks = [fig] if fig else []
    if chosen:
        blocks.append(_table(["layer", "chosen sparsity"], [[k, _pct(v)] for k, v in chosen.items()]))
    return [_section("sensitivity", "Sensitivity", blocks)]


def _storage_section(run: _Run) -> Sections:
    sizes = run.results.get("sizes_bytes")
    sizes = {k: v for k, v in sizes.items() if _is_number(v)} if isinstance(sizes, dict) else {}
    if not sizes:
        run.absent.append("storage sizes: results.json has no 'sizes_bytes' (skipped with --no-compress)")
        return []
    fig = run.figures.make(
        "storage",
        "storage.png",
        "P: pruned, sparse with relative indices; Q: k-means weight sharing; H: Huffman coding.",
        lambda path: _plots().storage_sizes(sizes, path),
    )
    first = next(iter(sizes.values()))
    rows = [[k, _bytes(v), f"{first / v:.1f}x" if v else "-"] for k, v in sizes.items()]
    return [
        _section(
            "storage", "Storage", ([fig] if fig else []) + [_table(["format", "size", "vs dense"], rows)]
        )
    ]


def _passes_section(run: _Run) -> Sections:
    """Multi-pass slimming: one row per pass."""
    passes = [p for p in run.results.get("passes") or [] if isinstance(p, dict)]
    if len(passes) < 2:
        return []
    rows = [
        [
            str(p.get("pass", i + 1)),
            _pct(p.get("ratio")),
            fmt(p.get("threshold")),
            _count(p.get("params_after")),
            _count(p.get("flops_after")),
            _pct((p.get("pruned") or {}).get("test_acc")),
            _pct((p.get("finetuned") or {}).get("test_acc")),
        ]
        for i, p in enumerate(passes)
    ]
    header = [
        "pass",
        "ratio",
        "threshold",
        "params after",
        "FLOPs after",
        "test acc after cut",
        "after fine-tune",
    ]
    return [_section("passes", "Passes", [_table(header, rows)])]


def _other_figures_section(run: _Run) -> Sections:
    """PNG files of the run that the report did not draw, each content once.

    Images an older report drew at the root are left out when their figure is drawn now, and so is a root
    ``sensitivity.png`` when the sweep is drawn from its CSV.
    """
    drawn = run.figures.drawn
    shown = {kind for kind, _ in drawn.values()}
    superseded = {name for kind, name in _OLD_REPORT_IMAGES.items() if kind in shown}
    if "sensitivity" in shown:
        superseded.add("sensitivity.png")
    seen = {digest for _, digest in drawn.values()}
    blocks = []
    for path in sorted(run.root.glob("*.png")) + sorted((run.root / L.PLOTS).glob("*.png")):
        rel = path.relative_to(run.root).as_posix()
        if rel in drawn or (path.parent == run.root and path.name in superseded):
            continue
        digest = _digest(path)
        if digest not in seen:
            seen.add(digest)
            blocks.append({"type": "figure", "figure": "other", "file": rel, "caption": rel})
    return [_section("other-figures", "Other figures", blocks)] if blocks else []


def _metrics_sections(run: _Run) -> Sections:
    """One collapsed per-epoch table per phase."""
    sections = []
    for name, rows in run.metrics.items():
        cols = metric_columns(rows)
        table = _table(cols, [[_metric_cell(c, r.get(c)) for c in cols] for r in rows[-MAX_METRIC_ROWS:]])
        more = f" (last {MAX_METRIC_ROWS})" if len(rows) > MAX_METRIC_ROWS else ""
        sections.append(
            _section(f"metrics-{name}", f"Per-epoch metrics: {name}{more}", [table], collapsed=True)
        )
    return sections


def _readiness_section(run: _Run) -> Sections:
    readiness = run.results.get("readiness")
    if not isinstance(readiness, dict) or not readiness:
        return []
    rows = [[k, fmt(v)] for k, v in _flatten(readiness)]
    title = "Cut readiness (the engine's record of the last cut)"
    return [_section("readiness", title, [_table(["key", "value"], rows)], collapsed=True)]


def _notes_section(run: _Run) -> Sections:
    """What the run warned about, what is not in it, and what could not be read."""
    warnings = run.results.get("warnings")
    warnings = [str(w) for w in warnings if w] if isinstance(warnings, list) else []
    notes = [f"warning from the run: {w}" for w in warnings]
    notes += [f"not in this run: {a}" for a in run.absent] + run.problems
    return [_section("notes", "Notes", [{"type": "list", "items": notes}])] if notes else []


def _config_section(run: _Run) -> Sections:
    """The run's configuration (or, without one, each phase's), collapsed, last."""
    blocks = []
    if run.config:
        blocks.append(_table(["key", "value"], [[k, fmt(v)] for k, v in _flatten(run.config)]))
    else:
        for name, folder in run.phases:
            phase_config = _read_json(folder / L.CONFIG, [])
            if isinstance(phase_config, dict):
                rows = [[k, fmt(v)] for k, v in _flatten(phase_config)]
                blocks += [_text(f"{name}/{L.CONFIG}"), _table(["key", "value"], rows)]
    return [_section("configuration", "Configuration", blocks, collapsed=True)] if blocks else []


def _epochs(n: int) -> str:
    return "1 epoch" if n == 1 else f"{n} epochs"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------- rendering


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown (figures referenced by their path relative to the run folder; collapsed
    sections as ``<details>``, which GitHub and most viewers fold)."""
    out = [f"# {data['title']}", ""]
    if data.get("subtitle"):
        out += [data["subtitle"], ""]
    for section in data["sections"]:
        body: list[str] = []
        for block in section["blocks"]:
            if block["type"] == "table":
                body.append(_md_table(block["header"], block["rows"]))
            elif block["type"] == "figure":
                body.append(f"![{block['figure']}]({block['file']})\n\n*{block['caption']}*")
            elif block["type"] == "text":
                body.append(block["text"])
            elif block["type"] == "list":
                body.append("\n".join(f"- {item}" for item in block["items"]))
        if section["collapsed"]:
            out += [f"<details><summary>{section['title']}</summary>", "", *_join(body), "</details>", ""]
        else:
            out += [f"## {section['title']}", "", *_join(body)]
    return "\n".join(out)


def _join(blocks: list[str]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        out += [b, ""]
    return out


def write_report(run_dir: str | os.PathLike[str], *, draw: bool = True) -> tuple[Path, Path]:
    """Draw the figures into ``plots/`` and write ``report.md`` and ``report.html``; returns both paths."""
    from netslim._atomic import atomic_write_text
    from netslim.report_html import render_html

    layout = RunLayout(run_dir)
    data = collect(layout.root, draw=draw)
    atomic_write_text(layout.report_md, render_markdown(data))
    atomic_write_text(layout.report_html, render_html(data, layout.root))
    return layout.report_md, layout.report_html
