"""The run report: what a reader sees first, figures drawn from the data, gaps named, rendered in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import write_tiny_mnist
from netslim import plots
from netslim.cli import main
from netslim.report import collect, group_widths, last_per_epoch, plan_widths, render_markdown, write_report


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _gamma_records(epochs: list[int], n: int = 64) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    edges = np.logspace(-6, 1, 36)
    for e in epochs:
        g = np.abs(rng.normal(0.5 / (1 + e), 0.1, n))
        counts, _ = np.histogram(g, bins=edges)
        out.append({"epoch": e, "n": n, "log_bin_edges": edges.tolist(), "log_counts": counts.tolist()})
    return out


def _section(data: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in data["sections"] if s["id"] == sid)


def _figures(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for s in data["sections"] for b in s["blocks"] if b.get("figure") == kind]


# ------------------------------------------------------------------------------ a real tiny demo run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``netslim demo`` on tiny IDX data: 2 sparsity epochs, a 70% cut, 1 fine-tuning epoch."""
    root = tmp_path_factory.mktemp("demo")
    data = write_tiny_mnist(root / "data", n_train=192, n_test=32)
    run = root / "run"
    code = main(
        ["demo", "--dataset", "fashion-mnist", "--data-dir", str(data), "--epochs", "2",
         "--finetune-epochs", "1", "--max-batches", "2", "--val-size", "32", "--batch-size", "32",
         "--run-dir", str(run), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    if not (run / "report.html").is_file():  # the report is this module's job, whoever calls it
        write_report(run)
    return run


def test_demo_report_reads_like_the_cli(demo_run: Path) -> None:
    """Table first with percentages, then gamma/curves/channels figures, configuration last."""
    results = json.loads((demo_run / "results.json").read_text())
    plan = json.loads((demo_run / "plan.json").read_text())
    data = collect(demo_run, draw=False)  # the figures the demo's report drew
    ids = [s["id"] for s in data["sections"]]
    assert ids[0] == "before-after" and ids[-1] == "configuration"
    assert ids.index("gamma") < ids.index("curves") < ids.index("channels") < ids.index("configuration")
    table = _section(data, "before-after")["blocks"][0]
    assert table["header"] == ["metric", "before", "after", "change"]
    rows = {r[0]: r for r in table["rows"]}
    acc = results["before"]["test_acc"]
    assert rows["test accuracy"][1] == f"{100 * acc:.2f}%"  # a percentage, as the CLI prints it
    assert rows["params"][3].endswith("%") and rows["params"][3].startswith("-")
    assert not any("|" in cell for r in table["rows"] for cell in r)  # no Markdown dumped into a cell
    groups = plan["meta"]["groups"]
    assert rows["prunable channels"][1:3] == [
        f"{sum(g['size'] for g in groups):,}",
        f"{sum(g['kept'] for g in groups):,}",
    ]
    (gamma,) = _figures(data, "gamma")
    assert gamma["threshold"] == pytest.approx(plan["meta"]["threshold"])
    assert "from epoch 0 (before training) to epoch 2" in gamma["caption"]
    assert "sparsity (2 epochs), finetune (1 epoch)" in _figures(data, "curves")[0]["caption"]
    channel_rows = _section(data, "channels-table")["blocks"][0]["rows"]
    assert [r[0] for r in channel_rows] == [g["name"] for g in groups]  # one bar per group, no BN twins
    assert _section(data, "configuration")["collapsed"]
    record = results["passes"][0]["sparsity_training"]["bn_recalibration"]
    said = f"over {record['batches']} batches (validation accuracy {100 * record['val_acc_before']:.2f}% -> "
    assert any(said in n for n in _section(data, "notes")["blocks"][0]["items"])
    md = render_markdown(data)
    assert md.index("## Before / after") < md.index("![gamma]") < md.index("<summary>Configuration")


def test_demo_report_shows_each_image_once(demo_run: Path) -> None:
    page = (demo_run / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(set(images)) == 3  # gamma, curves, channels; the pipeline's copies not again
    assert page.count('data-figure="channels"') == 2  # the <figure> and its <img>


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` installs it)")
    return browser


def dump_dom(html_path: Path, profile: Path) -> str:
    """The DOM of ``html_path`` after its scripts ran in headless Chromium."""
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        "--dump-dom",
        html_path.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False).stdout


def test_demo_report_renders_every_figure_in_headless_chromium(demo_run: Path, tmp_path: Path) -> None:
    html_path = demo_run / "report.html"
    if not html_path.is_file():
        write_report(demo_run)
    dom = dump_dom(html_path, tmp_path / "profile")
    assert 'data-images-loaded="' in dom, dom[:500]
    positions = {}
    for kind in ("gamma", "curves", "channels"):
        img = re.search(rf'<img data-figure="{kind}"[^>]*>', dom)
        assert img is not None, f"no {kind} figure in the page"
        tag = img.group(0)
        assert 'data-loaded="1"' in tag, f"the {kind} figure did not decode"
        width = re.search(r'data-natural-width="(\d+)"', tag)
        assert width is not None and int(width.group(1)) > 300
        positions[kind] = img.start()
    assert re.search(r'<figure data-figure="gamma" data-threshold="[0-9.e-]+"', dom)
    table = re.search(r'<section id="before-after"><h2>[^<]*</h2>\s*<table>', dom)
    assert table is not None, "the before/after table is not an HTML table"
    config = dom.index('<details id="configuration">')
    assert table.start() < positions["gamma"] < positions["curves"] < positions["channels"] < config
    assert "<section" not in dom[config:] and "<img" not in dom[config:]  # the configuration comes last


# ----------------------------------------------------------------------------------- other run types


def _write_plan(threshold: float, groups: list[tuple[str, int, int]]) -> dict[str, Any]:
    layers = {}
    for name, size, kept in groups:
        layers[name] = {"kind": "conv", "before": size, "after": kept}
        layers[name + "_bn"] = {"kind": "bn", "before": size, "after": kept}
    meta_groups = [{"name": n, "size": s, "kept": k} for n, s, k in groups]
    return {"layers": layers, "meta": {"threshold": threshold, "groups": meta_groups}}


def test_multipass_run_thresholds_per_pass_and_resumed_epochs(tmp_path: Path) -> None:
    run = tmp_path / "multi"
    run.mkdir()
    plans = [
        _write_plan(0.3, [("c1", 16, 8), ("c2", 32, 16)]),
        _write_plan(0.05, [("c1", 8, 4), ("c2", 16, 12)]),
    ]
    (run / "plan.json").write_text(json.dumps(plans))
    for p in (1, 2):
        # pass 1 was resumed after epoch 2: epochs 1-2 were written twice, the later rows win
        epochs = [0, 1, 2, 1, 2, 3, 4, 5, 6, 7] if p == 1 else [0, 1]
        _jsonl(run / f"sparsity-pass{p}" / "gamma_hist.jsonl", _gamma_records(epochs))
        _jsonl(run / f"sparsity-pass{p}" / "metrics.jsonl",
               [{"epoch": e, "train_loss": 1.0, "lr": 0.1, "l1_strength": 1e-4, "near_zero_share": 0.1 * e}
                for e in range(1, 4)])  # fmt: skip
        _jsonl(run / f"finetune-pass{p}" / "metrics.jsonl", [{"epoch": 1, "val_acc": 0.5, "lr": 0.01}])
    data = collect(run)
    gamma = _figures(data, "gamma")
    assert [g["threshold"] for g in gamma] == [0.3, 0.05]
    assert "to epoch 7" in gamma[0]["caption"]
    # more epochs than histogram panels: every epoch in one picture too (pass 1 only)
    assert [f["file"] for f in _figures(data, "gamma-epochs")] == ["plots/sparsity-pass1-gamma-epochs.png"]
    curves = _figures(data, "curves")[0]["caption"]
    assert curves.index("sparsity-pass1") < curves.index("finetune-pass1") < curves.index("sparsity-pass2")
    # first pass's widths before, last pass's after
    assert group_widths(plans) == {"c1": (16, 4), "c2": (32, 12)}
    assert any(s["id"] == "notes" for s in data["sections"])  # no results.json: said so
    assert "before/after table" in render_markdown(data)


def test_last_per_epoch_keeps_the_last_row_of_each_epoch() -> None:
    rows = [{"epoch": 1, "v": "a"}, {"epoch": 2, "v": "b"}, {"epoch": 1, "v": "c"}, {"note": 1}]
    assert last_per_epoch(rows) == [{"epoch": 1, "v": "c"}, {"epoch": 2, "v": "b"}, {"note": 1}]


@pytest.mark.parametrize("total_as", ["layer-row", "own-key"])
def test_weight_pruning_report(tmp_path: Path, total_as: str) -> None:
    """Han runs: accuracy, weights, FLOPs and size first; per-layer, sensitivity and storage figures."""
    run = tmp_path / "han"
    run.mkdir()
    layers = [
        {"name": "fc1", "weights": 235200, "kept": 18816, "kept_pct": 8.0, "flops_kept_pct": 8.0},
        {"name": "fc2", "weights": 30000, "kept": 2700, "kept_pct": 9.0, "flops_kept_pct": 9.0},
        {"name": "total", "weights": 265200, "kept": 21516, "kept_pct": 8.1, "flops": 265200.0,
         "flops_kept": 21516.0},
    ]  # fmt: skip
    results = {
        "command": "prune-weights",
        "test_before": {"accuracy": 0.9800, "n": 64},
        "test_after": {"accuracy": 0.9795, "n": 64},
        "rounds": [{"round": 1, "phase": "all", "accuracy_pruned": 0.9, "accuracy": 0.97}],
        "layers": layers,
        "sizes_bytes": {"dense": 1066440, "P": 212000, "P+Q": 60000, "P+Q+H": 40000},
    }
    if total_as == "own-key":  # the all-layers row next to the per-layer rows, not among them
        results.update(layers=layers[:-1], total=layers[-1], config={"model": "lenet300_100"})
    (run / "results.json").write_text(json.dumps(results))
    (run / "sensitivity.csv").write_text(
        "layer,sparsity,accuracy\nbaseline,0.0,0.98\nfc1,0.0,0.98\nfc1,0.5,0.97\nfc2,0.0,0.98\nfc2,0.5,0.9\n"
    )
    (run / "layer_settings.json").write_text(
        json.dumps({"max_drop": 0.01, "layers": {"fc1": {"sparsity": 0.5}}})
    )
    plots.accuracy_vs_ratio([(0.1, 0.9)], run / "sensitivity.png")  # the sweep's own plot: drawn again
    _jsonl(run / "train" / "metrics.jsonl", [{"epoch": 1, "train_loss": 0.5, "lr": 0.1}])
    _jsonl(run / "round1_all" / "metrics.jsonl", [{"epoch": 1, "train_loss": 0.4, "lr": 0.01}])
    data = collect(run)
    assert data["kind"] == "weights"
    rows = {r[0]: r for r in data["sections"][0]["blocks"][0]["rows"]}
    assert rows["test accuracy"][1:] == ["98.00%", "97.95%", "-0.05 pt"]
    assert rows["weights (nonzero)"][3] == "-91.9% (12.3x fewer)"
    assert rows["size on disk (dense -> P+Q+H)"][3] == "26.7x smaller"
    for kind in ("weights-kept", "sensitivity", "storage", "curves"):
        assert len(_figures(data, kind)) == 1, kind
    assert _figures(data, "other") == []  # the root sensitivity.png is superseded by the drawn one
    assert "train (1 epoch), round1_all (1 epoch)" in _figures(data, "curves")[0]["caption"]


def test_training_run_report_has_results_without_results_json(tmp_path: Path) -> None:
    import torch

    import netslim

    run = tmp_path / "train"
    run.mkdir()
    _jsonl(run / "metrics.jsonl", [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5, "val_acc": 0.625}
                                   for e in (1, 2)])  # fmt: skip
    netslim.save(torch.nn.Linear(2, 2), run / "model.pt", extra={"test": {"accuracy": 0.875, "n": 8}})
    data = collect(run)
    assert data["kind"] == "train"
    rows = dict(data["sections"][0]["blocks"][0]["rows"])
    assert rows["test accuracy"] == "87.50% (n=8)" and rows["val accuracy (last epoch)"] == "62.50%"
    assert _figures(data, "curves")


def test_report_survives_missing_and_broken_pieces(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    (run / "results.json").write_text("{not json")
    (run / "plan.json").write_text(json.dumps(_write_plan(0.1, [("c1", 8, 2)])))
    _jsonl(run / "sparsity" / "metrics.jsonl", [{"epoch": 0, "val_acc": 0.3}])
    (run / "sparsity" / "metrics.jsonl").open("a").write('{"epoch": 1, "va')  # torn last line
    data = collect(run)
    notes = _section(data, "notes")["blocks"][0]["items"]
    assert any("results.json could not be read" in n for n in notes)
    assert any(n.startswith("not in this run: gamma histograms") for n in notes)
    assert _figures(data, "channels") and _figures(data, "curves")
    md_path, _ = write_report(run)
    assert "Per-epoch metrics: sparsity" in md_path.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    md_path, html_path = write_report(empty)
    assert "Nothing to report yet" in md_path.read_text() and "<img" not in html_path.read_text()


def test_other_images_are_shown_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    plots.accuracy_vs_ratio([(0.5, 0.93), (0.7, 0.92)], run / "accuracy.png")
    (run / "plots").mkdir()
    shutil.copy(run / "accuracy.png", run / "plots" / "accuracy-copy.png")
    data = collect(run)
    assert [b["file"] for b in _figures(data, "other")] == ["accuracy.png"]


def test_plan_width_layouts() -> None:
    assert plan_widths({"layers": [{"name": "a", "before": 4, "after": 2}]}) == {"a": (4, 2)}
    assert plan_widths({"channels": {"b": [8, 3]}}) == {"b": (8, 3)}
    assert plan_widths([1, 2]) == {}
    no_meta = {
        "layers": {
            "c": {"kind": "conv", "before": 8, "after": 2},
            "bn": {"kind": "bn", "before": 8, "after": 2},
        }
    }
    assert group_widths([no_meta]) == {"c": (8, 2)}


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    _jsonl(run / "metrics.jsonl", [{"epoch": 1, "train_loss": 1.0}])
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (run / "plots" / "training-curves.png").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
