"""The report's sections, in reading order, built from a :class:`~netslim.report.reading.Run`.

:func:`collect` reads the run folder and returns the sections; a section is ``{"id", "title",
"collapsed", "blocks"}`` and a block a table, a figure, a text or a list (rendered by
:mod:`netslim.report.markdown` and :mod:`netslim.report.html`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netslim.errors import NetslimError
from netslim.pipelines import layout as L
from netslim.report.cells import (
    change,
    count,
    epochs,
    flatten,
    fmt,
    metric_cell,
    metric_columns,
    pct,
    points,
    size,
)
from netslim.report.figures import OLD_REPORT_IMAGES, file_digest
from netslim.report.reading import (
    KIND_TITLES,
    Run,
    describe,
    is_number,
    last_per_epoch,
    pass_number,
    pass_thresholds,
    read_json,
    read_jsonl,
    read_run,
    read_sensitivity_csv,
    weights_total,
)

Sections = list[dict[str, Any]]

MAX_METRIC_ROWS = 60


def table_block(header: list[str], rows: list[list[str]], **extra: Any) -> dict[str, Any]:
    """A table block: ``header`` and ``rows`` of cell texts."""
    return {"type": "table", "header": header, "rows": rows, **extra}


def text_block(text: str) -> dict[str, Any]:
    """A paragraph block."""
    return {"type": "text", "text": text}


def section(key: str, title: str, blocks: list[dict[str, Any]], collapsed: bool = False) -> dict[str, Any]:
    """A section of the report: its anchor ``key``, ``title``, ``blocks``, folded when ``collapsed``."""
    return {"id": key, "title": title, "blocks": blocks, "collapsed": collapsed}


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
        if is_number(b.get(key)):
            rows.append([label, pct(b[key]), pct(a.get(key)), points(b[key], a.get(key))])
            shown.add(key)
    # intermediate stages (right after the cut, plain cut, distillation ...): their accuracy against before
    for stage, value in results.items():
        if stage in ("before", "after") or not isinstance(value, dict):
            continue
        key = next((k for k, _ in _ACC_KEYS if is_number(value.get(k)) and is_number(b.get(k))), None)
        if key is None:
            continue
        label = _STAGE_LABELS.get(stage, stage.replace("_", " "))
        rows.append([f"{dict(_ACC_KEYS)[key]}, {label}", pct(b[key]), pct(value[key]), ""])
    for key, label, cell in (
        ("params", "params", count),
        ("flops", "FLOPs", count),
        ("latency_ms", "CPU latency, batch 1", lambda v: f"{v:.2f} ms" if is_number(v) else "n/a"),
        ("file_bytes", "file size", size),
    ):
        if is_number(b.get(key)) and key in a:
            rows.append([label, cell(b[key]), cell(a[key]), change(b[key], a[key])])
            shown.add(key)
    for key in b:  # anything else the two share
        if key not in shown and is_number(b[key]) and is_number(a.get(key)):
            rows.append([key.replace("_", " "), fmt(b[key]), fmt(a[key]), change(b[key], a[key])])
    return rows


def _weights_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of a weight-pruning run: test accuracy, weights and FLOPs kept (the ``total`` layer row), size."""
    rows: list[list[str]] = []
    tb, ta = results.get("test_before"), results.get("test_after")
    if isinstance(tb, dict) and is_number(tb.get("accuracy")):
        after = ta.get("accuracy") if isinstance(ta, dict) else None
        rows.append(["test accuracy", pct(tb["accuracy"]), pct(after), points(tb["accuracy"], after)])
    total = weights_total(results)
    if total is not None:
        if is_number(total.get("weights")):
            w, k = total["weights"], total.get("kept")
            rate = f" ({w / k:.1f}x fewer)" if is_number(k) and k else ""
            rows.append(["weights (nonzero)", count(w), count(k), change(w, k) + rate])
        if is_number(total.get("flops")):
            f, k = total["flops"], total.get("flops_kept")
            rows.append(["FLOPs", count(f), count(k), change(f, k)])
    sizes = results.get("sizes_bytes")
    if isinstance(sizes, dict) and is_number(sizes.get("dense")) and sizes:
        smallest = list(sizes)[-1]
        d, s = sizes["dense"], sizes[smallest]
        factor = f"{d / s:.1f}x smaller" if is_number(s) and s else ""
        rows.append([f"size on disk (dense -> {smallest})", size(d), size(s), factor])
    return rows


def _summary(results: dict[str, Any], groups: dict[str, tuple[int, int]]) -> list[list[str]]:
    rows = _stage_rows(results)
    labels = {r[0] for r in rows}
    rows += [r for r in _weights_rows(results) if r[0] not in labels]
    if groups and rows:
        before = sum(b for b, _ in groups.values())
        after = sum(a for _, a in groups.values())
        rows.append(["prunable channels", f"{before:,}", f"{after:,}", change(before, after)])
    return rows


def _facts(results: dict[str, Any]) -> str:
    """One line of how the run was made: the pruning ratio, where it ran, how long it took."""
    facts = []
    if is_number(results.get("ratio")):
        facts.append(f"pruning ratio {pct(results['ratio']).replace('.00%', '%')}")
    l1 = results.get("l1_strength")
    if is_number(l1) or isinstance(l1, str):
        facts.append(f"L1 strength {l1:g}" if is_number(l1) else f"L1 strength {l1}")
    distill = results.get("distill")
    if isinstance(distill, dict) and distill:
        facts.append(
            "fine-tuned with distillation (" + ", ".join(f"{k} {fmt(v)}" for k, v in distill.items()) + ")"
        )
    if isinstance(results.get("device"), str):
        threads = results.get("threads")
        facts.append(
            f"device {results['device']}"
            + (f", {threads} CPU thread{'' if threads == 1 else 's'}" if is_number(threads) else "")
        )
    if is_number(results.get("seconds")):
        facts.append(f"wall time {results['seconds']:.1f} s")
    return "; ".join(facts)


def _final_rows(phases: list[tuple[str, Path]], run: Path, problems: list[str]) -> list[list[str]]:
    """A training run's results: its last epoch, and the test accuracy stored in its ``model.pt``."""
    rows: list[list[str]] = []
    if phases:
        folder = phases[-1][1]
        metrics = last_per_epoch(read_jsonl(folder / L.METRICS))
        if metrics:
            last = metrics[-1]
            for split in ("train", "val"):
                if is_number(last.get(f"{split}_acc")):
                    loss = last.get(f"{split}_loss")
                    rows.append([f"{split} accuracy (last epoch)", pct(last[f"{split}_acc"])])
                    if is_number(loss):
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
        if isinstance(test, dict) and is_number(test.get("accuracy")):
            n = f" (n={test['n']})" if is_number(test.get("n")) else ""
            rows.insert(0, ["test accuracy", pct(test["accuracy"]) + n])
    return rows


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
    run = read_run(root, draw)
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
        "subtitle": ": ".join(p for p in (KIND_TITLES[run.kind], describe(run.config, run.results)) if p),
        "kind": run.kind,
        "run_dir": str(root),
        "sections": sections,
        "problems": run.problems,
    }


def _before_after_section(run: Run) -> Sections:
    rows = _summary(run.results, run.groups)
    if rows:
        blocks = [table_block(["metric", "before", "after", "change"], rows)]
        facts = _facts(run.results)
        if facts:
            blocks.append(text_block(facts))
        return [section("before-after", "Before / after", blocks)]
    final = _final_rows(run.phases, run.root, run.problems) if run.kind == "train" and not run.results else []
    if final:
        return [section("before-after", "Results", [table_block(["metric", "value"], final)])]
    run.absent.append("before/after table: no results.json with before/after figures")
    return []


def _gamma_section(run: Run) -> Sections:
    """The |gamma| histograms of every sparsity phase, each with its pass's cut threshold."""
    thresholds = pass_thresholds(run.plans, run.results)
    blocks = []
    for i, (name, records) in enumerate(run.gamma):
        number = pass_number(name)
        index = number - 1 if number is not None else i if len(run.gamma) > 1 else len(thresholds) - 1
        threshold = thresholds[index] if 0 <= index < len(thresholds) else None
        n = records[-1].get("n")
        what = f"|gamma| of the {n:,} BN channels" if is_number(n) else "|gamma|"
        first, last = records[0].get("epoch"), records[-1].get("epoch")
        epochs = f"from epoch {first}{' (before training)' if first == 0 else ''} to epoch {last}"
        caption = f"{name}: {what}, {epochs}, in up to 6 evenly spaced panels. " + (
            f"Red line: the cut threshold {threshold:.4g} from {L.PLAN}; channels left of it are removed."
            if threshold is not None
            else f"No threshold: {L.PLAN} holds none for this phase."
        )
        title = f"|gamma| per epoch: {name}"
        options = {"threshold": threshold, "title": title}
        hist_file = f"{name}-gamma-hist.png"
        fig = run.figures.make("gamma", "gamma_histograms", records, caption, name=hist_file, **options)
        if fig:
            fig["threshold"] = threshold
            blocks.append(fig)
        if len(records) > 6 and all("log_counts" in r for r in records):  # more epochs than panels
            caption = f"{name}: all {len(records)} epochs at once (colour: channels per |gamma| bin)."
            epochs_file = f"{name}-gamma-epochs.png"
            fig = run.figures.make(
                "gamma-epochs", "gamma_over_epochs", records, caption, name=epochs_file, **options
            )
            if fig:
                blocks.append(fig)
    if blocks:
        return [section("gamma", "BN scaling factors (|gamma|) per epoch", blocks)]
    if run.kind == "slimming":
        run.absent.append(
            f"gamma histograms: no phase folder holds {L.GAMMA_HIST} (sparsity training writes it)"
        )
    return []


def _curves_section(run: Run) -> Sections:
    if not run.metrics:
        run.absent.append(f"training curves: no phase folder holds {L.METRICS}")
        return []
    caption = "Phases in run order: " + ", ".join(f"{k} ({epochs(len(v))})" for k, v in run.metrics.items())
    options = {"name": "training-curves.png", "title": "Training curves"}
    fig = run.figures.make("curves", "training_curves", run.metrics, caption + ".", **options)
    return [section("curves", "Training curves", [fig])] if fig else []


def _channels_sections(run: Run) -> Sections:
    """One bar per prunable group (a conv and its BN, or convs tied by a residual add, are one group)."""
    if not run.groups:
        if run.kind == "slimming":
            run.absent.append(f"channels per group: no {L.PLAN} (written when the channels are cut)")
        return []
    caption = (
        f"{len(run.groups)} prunable groups (layers that must keep the same channels count as one); "
        "light: channels before, dark: kept."
    )
    options = {"name": "channels-kept.png", "title": "Channels kept per prunable group"}
    fig = run.figures.make("channels", "channels_per_layer", run.groups, caption, **options)
    rows = [[n, str(b), str(a), f"{100 * a / b:.1f}%" if b else "-"] for n, (b, a) in run.groups.items()]
    table = table_block(["group", "before", "after", "kept"], rows)
    return [
        section("channels", "Channels kept per prunable group", [fig] if fig else []),
        section("channels-table", "Channels per group (table)", [table], collapsed=True),
    ]


def _weights_sections(run: Run) -> Sections:
    """Han et al. runs: weights kept per layer, the prune/retrain rounds, sensitivity, storage."""
    if run.kind != "weights":
        return []
    return _layers_section(run) + _rounds_section(run) + _sensitivity_section(run) + _storage_section(run)


def _layers_section(run: Run) -> Sections:
    results = run.results
    layers = [r for r in results.get("layers") or [] if isinstance(r, dict) and r.get("name") != "total"]
    if not layers:
        run.absent.append("per-layer kept weights: results.json has no 'layers' rows")
        return []
    caption = "Share of each layer's weights (and FLOPs) left after pruning; weight counts in brackets."
    fig = run.figures.make("weights-kept", "weights_kept", layers, caption)
    total = weights_total(results)
    rows = [
        [
            str(r.get("name", "total" if r is total else "?")),
            count(r.get("weights")),
            f"{r['kept_pct']:.1f}%" if is_number(r.get("kept_pct")) else "n/a",
            f"{r['flops_kept_pct']:.1f}%" if is_number(r.get("flops_kept_pct")) else "n/a",
        ]
        for r in [*layers, *([total] if total is not None else [])]
    ]
    blocks = ([fig] if fig else []) + [table_block(["layer", "weights", "weights kept", "FLOPs kept"], rows)]
    return [section("weights-kept", "Weights kept per layer", blocks)]


def _rounds_section(run: Run) -> Sections:
    rounds = [r for r in run.results.get("rounds") or [] if isinstance(r, dict)]
    if not rounds:
        return []
    rows = [
        [
            str(r.get("round", i + 1)),
            str(r.get("phase", "")),
            pct(r.get("accuracy_pruned")),
            pct(r.get("accuracy")),
        ]
        for i, r in enumerate(rounds)
    ]
    header = ["round", "layers pruned", "accuracy right after pruning", "after retraining"]
    return [section("rounds", "Prune / retrain rounds", [table_block(header, rows)])]


def _sensitivity_section(run: Run) -> Sections:
    """The sweep's curves (sensitivity.csv) with each layer's chosen sparsity and the tolerated drop."""
    curves, baseline = read_sensitivity_csv(run.root / "sensitivity.csv", run.problems)
    if not curves:
        run.absent.append("sensitivity curves: no sensitivity.csv (prune-weights --sensitivity writes one)")
        return []
    settings = read_json(run.root / "layer_settings.json", run.problems)
    settings = settings if isinstance(settings, dict) else {}
    sens = run.results.get("sensitivity") if isinstance(run.results.get("sensitivity"), dict) else {}
    layers = settings.get("layers") or sens.get("layers") or {}
    chosen = {
        k: v["sparsity"] for k, v in layers.items() if isinstance(v, dict) and is_number(v.get("sparsity"))
    }
    if baseline is None:
        baseline = sens.get("baseline", sens.get("baseline_accuracy"))
    max_drop = settings.get("max_drop", sens.get("max_drop"))
    max_drop = max_drop if is_number(max_drop) else None
    caption = "Accuracy with one layer pruned at a time; circles: the sparsity chosen for each layer" + (
        f"; red line: the tolerated accuracy drop {max_drop:g}." if max_drop is not None else "."
    )
    options = {"baseline": baseline, "max_drop": max_drop, "chosen": chosen}
    fig = run.figures.make("sensitivity", "sensitivity_curves", curves, caption, **options)
    blocks = [fig] if fig else []
    if chosen:
        blocks.append(table_block(["layer", "chosen sparsity"], [[k, pct(v)] for k, v in chosen.items()]))
    return [section("sensitivity", "Sensitivity", blocks)]


def _storage_section(run: Run) -> Sections:
    sizes = run.results.get("sizes_bytes")
    sizes = {k: v for k, v in sizes.items() if is_number(v)} if isinstance(sizes, dict) else {}
    if not sizes:
        run.absent.append("storage sizes: results.json has no 'sizes_bytes' (skipped with --no-compress)")
        return []
    caption = "P: pruned, sparse with relative indices; Q: k-means weight sharing; H: Huffman coding."
    fig = run.figures.make("storage", "storage_sizes", sizes, caption)
    first = next(iter(sizes.values()))
    rows = [[k, size(v), f"{first / v:.1f}x" if v else "-"] for k, v in sizes.items()]
    return [
        section(
            "storage", "Storage", ([fig] if fig else []) + [table_block(["format", "size", "vs dense"], rows)]
        )
    ]


def _passes_section(run: Run) -> Sections:
    """Multi-pass slimming: one row per pass."""
    passes = [p for p in run.results.get("passes") or [] if isinstance(p, dict)]
    if len(passes) < 2:
        return []
    rows = [
        [
            str(p.get("pass", i + 1)),
            pct(p.get("ratio")),
            fmt(p.get("threshold")),
            count(p.get("params_after")),
            count(p.get("flops_after")),
            pct((p.get("pruned") or {}).get("test_acc")),
            pct((p.get("finetuned") or {}).get("test_acc")),
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
    return [section("passes", "Passes", [table_block(header, rows)])]


def _other_figures_section(run: Run) -> Sections:
    """PNG files of the run that the report did not draw, each content once.

    Images an older report drew at the root are left out when their figure is drawn now, and so is a root
    ``sensitivity.png`` when the sweep is drawn from its CSV.
    """
    drawn = run.figures.drawn
    shown = {kind for kind, _ in drawn.values()}
    superseded = {name for kind, name in OLD_REPORT_IMAGES.items() if kind in shown}
    if "sensitivity" in shown:
        superseded.add("sensitivity.png")
    seen = {digest for _, digest in drawn.values()}
    blocks = []
    for path in sorted(run.root.glob("*.png")) + sorted((run.root / L.PLOTS).glob("*.png")):
        rel = path.relative_to(run.root).as_posix()
        if rel in drawn or (path.parent == run.root and path.name in superseded):
            continue
        digest = file_digest(path)
        if digest not in seen:
            seen.add(digest)
            blocks.append({"type": "figure", "figure": "other", "file": rel, "caption": rel})
    return [section("other-figures", "Other figures", blocks)] if blocks else []


def _metrics_sections(run: Run) -> Sections:
    """One collapsed per-epoch table per phase."""
    sections = []
    for name, rows in run.metrics.items():
        cols = metric_columns(rows)
        table = table_block(cols, [[metric_cell(c, r.get(c)) for c in cols] for r in rows[-MAX_METRIC_ROWS:]])
        more = f" (last {MAX_METRIC_ROWS})" if len(rows) > MAX_METRIC_ROWS else ""
        sections.append(
            section(f"metrics-{name}", f"Per-epoch metrics: {name}{more}", [table], collapsed=True)
        )
    return sections


def _readiness_section(run: Run) -> Sections:
    readiness = run.results.get("readiness")
    if not isinstance(readiness, dict) or not readiness:
        return []
    rows = [[k, fmt(v)] for k, v in flatten(readiness)]
    title = "Cut readiness (the engine's record of the last cut)"
    return [section("readiness", title, [table_block(["key", "value"], rows)], collapsed=True)]


def _notes_section(run: Run) -> Sections:
    """What the run warned about, what is not in it, and what could not be read."""
    warnings = run.results.get("warnings")
    warnings = [str(w) for w in warnings if w] if isinstance(warnings, list) else []
    notes = [f"warning from the run: {w}" for w in warnings]
    notes += _recalibration_notes(run.results.get("passes"))
    notes += [f"not in this run: {a}" for a in run.absent] + run.problems
    return [section("notes", "Notes", [{"type": "list", "items": notes}])] if notes else []


def _recalibration_notes(passes: Any) -> list[str]:
    """One line per sparsity training after which the BN statistics were recomputed."""
    notes = []
    for p in passes if isinstance(passes, list) else []:
        record = (p.get("sparsity_training") or {}).get("bn_recalibration") if isinstance(p, dict) else None
        if not isinstance(record, dict):
            continue
        line = f"BN statistics recomputed after sparsity training over {record.get('batches')} batches"
        before, after = record.get("val_acc_before"), record.get("val_acc_after")
        if before is not None and after is not None:
            line += f" (validation accuracy {pct(before)} -> {pct(after)})"
        notes.append(line + (f" (pass {p['pass']})" if len(passes) > 1 and "pass" in p else ""))
    return notes


def _config_section(run: Run) -> Sections:
    """The run's configuration (or, without one, each phase's), collapsed, last."""
    blocks = []
    if run.config:
        blocks.append(table_block(["key", "value"], [[k, fmt(v)] for k, v in flatten(run.config)]))
    else:
        for name, folder in run.phases:
            phase_config = read_json(folder / L.CONFIG, [])
            if isinstance(phase_config, dict):
                rows = [[k, fmt(v)] for k, v in flatten(phase_config)]
                blocks += [text_block(f"{name}/{L.CONFIG}"), table_block(["key", "value"], rows)]
    return [section("configuration", "Configuration", blocks, collapsed=True)] if blocks else []
