"""Summarize a run folder as ``report.md`` and a self-contained ``report.html``.

Run-folder contract (every piece is optional; the report shows what exists):

* ``config.json``: the resolved configuration of the run (any JSON object; shown as a key/value table).
* ``results.json``: ``{"before": {metric: value, ...}, "after": {metric: value, ...}, ...}``. The metrics
  are those of :func:`netslim.measure` plus ``accuracy`` / ``test_acc`` if known; a before/after table
  with the ratio after/before is drawn for every metric the two share. Other top-level scalars are listed.
* ``plan.json``: a pruning plan; per-layer widths are read from ``{"layers": {name: {"before": b,
  "after": a}}}``, ``{"layers": [{"name"|"layer": ..., "before": b, "after": a}]}`` or
  ``{"channels": {name: [b, a]}}``; a layer/before/after/kept-% table is drawn.
* ``metrics.jsonl``: one JSON object per epoch (``epoch``, ``train_loss``, ``val_acc``, ``lr`` ...); shown
  as a table and drawn as ``training_curves.png`` when absent.
* ``gamma_hist.jsonl``: per-epoch ``{"epoch", "bin_edges", "counts"}`` records of |gamma|; drawn as
  ``gamma_hist.png`` when absent.
* ``*.png``: every image in the folder is included (embedded as a base64 data URI in the HTML).

:func:`collect` reads the folder into a plain dict, :func:`render_markdown` and
:func:`netslim.report_html.render_html` turn it into text; :func:`write_report` does all three.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from netslim.errors import NetslimError

MAX_METRIC_ROWS = 60


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name} could not be read ({exc}); skipped")
        return None


def plan_widths(plan: Any) -> dict[str, tuple[int, int]]:
    """``{layer: (before, after)}`` from the accepted ``plan.json`` layouts (empty if none matches)."""
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


def _scalar_items(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        return {}
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def collect(run_dir: str | os.PathLike[str], *, draw: bool = True) -> dict[str, Any]:
    """Read a run folder into a dict (config, before/after rows, layer rows, metrics, images, problems).

    With ``draw``, training curves and gamma histograms are drawn into the folder when their data exists
    and the PNG does not.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise NetslimError(f"{run} is not a folder; pass the run directory written by netslim train/prune")
    problems: list[str] = []
    config = _read_json(run / "config.json", problems)
    results = _read_json(run / "results.json", problems)
    plan = _read_json(run / "plan.json", problems)
    metrics = _read_jsonl(run / "metrics.jsonl")
    gamma = _read_jsonl(run / "gamma_hist.jsonl")
    if draw:
        _draw_missing(run, metrics, gamma, plan_widths(plan), problems)
    before = _scalar_items((results or {}).get("before"))
    after = _scalar_items((results or {}).get("after"))
    comparison = []
    for key in [k for k in before if k in after]:
        b, a = before[key], after[key]
        ratio = a / b if _is_number(a) and _is_number(b) and b else None
        comparison.append({"metric": key, "before": b, "after": a, "ratio": ratio})
    extra = {k: v for k, v in _scalar_items(results).items()}
    layers = [
        {"layer": name, "before": b, "after": a, "kept": a / b if b else 0.0}
        for name, (b, a) in plan_widths(plan).items()
    ]
    return {
        "title": f"netslim run: {run.resolve().name}",
        "run_dir": str(run),
        "config": config if isinstance(config, dict) else None,
        "comparison": comparison,
        "results_extra": extra,
        "layers": layers,
        "metrics": metrics,
        "images": sorted(p.name for p in run.glob("*.png")),
        "problems": problems,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    from netslim.plots import read_jsonl

    return read_jsonl(path)


def _draw_missing(
    run: Path,
    metrics: list[dict[str, Any]],
    gamma: list[dict[str, Any]],
    widths: dict[str, tuple[int, int]],
    problems: list[str],
) -> None:
    try:
        from netslim import plots
    except ImportError:  # pragma: no cover - plots import matplotlib lazily
        return
    jobs = [
        ("training_curves.png", bool(metrics), lambda p: plots.training_curves(metrics, p)),
        ("gamma_hist.png", bool(gamma), lambda p: plots.gamma_histograms(gamma, p)),
        ("channels_per_layer.png", bool(widths), lambda p: plots.channels_per_layer(widths, p)),
    ]
    for name, has_data, draw in jobs:
        if has_data and not (run / name).exists():
            try:
                draw(run / name)
            except (NetslimError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"could not draw {name}: {exc}")


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


def metric_columns(metrics: list[dict[str, Any]]) -> list[str]:
    """Columns of the metrics table: ``epoch`` first, then every scalar key in first-seen order."""
    cols: dict[str, None] = {}
    for row in metrics:
        for k, v in row.items():
            if isinstance(v, (int, float, str)):
                cols[k] = None
    ordered = [c for c in ("epoch",) if c in cols] + [c for c in cols if c != "epoch"]
    return ordered


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown (images referenced by relative file name)."""
    out = [f"# {data['title']}", ""]
    if data["config"]:
        out += [
            "## Configuration",
            "",
            _md_table(["key", "value"], [[k, fmt(v)] for k, v in data["config"].items()]),
            "",
        ]
    if data["comparison"]:
        rows = [[c["metric"], fmt(c["before"]), fmt(c["after"]), fmt(c["ratio"])] for c in data["comparison"]]
        out += ["## Before / after", "", _md_table(["metric", "before", "after", "after/before"], rows), ""]
    if data["results_extra"]:
        rows = [[k, fmt(v)] for k, v in data["results_extra"].items()]
        out += ["## Results", "", _md_table(["key", "value"], rows), ""]
    if data["layers"]:
        rows = [
            [r["layer"], str(r["before"]), str(r["after"]), f"{100 * r['kept']:.1f}%"] for r in data["layers"]
        ]
        out += ["## Channels per layer", "", _md_table(["layer", "before", "after", "kept"], rows), ""]
    if data["metrics"]:
        cols = metric_columns(data["metrics"])
        rows = [[fmt(r.get(c)) for c in cols] for r in data["metrics"][-MAX_METRIC_ROWS:]]
        out += ["## Training metrics", "", _md_table(cols, rows), ""]
    if data["images"]:
        out += ["## Figures", ""]
        out += [f"![{name}]({name})" for name in data["images"]]
        out.append("")
    if data["problems"]:
        out += ["## Notes", ""] + [f"- {p}" for p in data["problems"]] + [""]
    if len(out) == 2:
        out += [
            "This run folder has no config.json, results.json, plan.json, metrics.jsonl or PNG files yet.",
            "",
        ]
    return "\n".join(out)


def write_report(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; returns both paths."""
    from netslim.report_html import render_html

    run = Path(run_dir)
    data = collect(run)
    md_path, html_path = run / "report.md", run / "report.html"
    from netslim._atomic import atomic_write_text

    atomic_write_text(md_path, render_markdown(data))
    atomic_write_text(html_path, render_html(data, run))
    return md_path, html_path
