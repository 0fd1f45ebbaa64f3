"""Reports from run folders: Markdown + self-contained HTML, robust to gaps, rendered in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from netslim import plots
from netslim.cli import main
from netslim.report import collect, plan_widths, write_report


def make_run(run: Path) -> Path:
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "vgg19", "ratio": 0.7, "sparsity": 1e-4}))
    (run / "results.json").write_text(
        json.dumps(
            {
                "before": {"params": 20_035_018, "flops": 796_272_640, "accuracy": 0.9366},
                "after": {"params": 2_302_000, "flops": 391_000_000, "accuracy": 0.938},
                "ratio": 0.7,
            }
        )
    )
    (run / "plan.json").write_text(
        json.dumps(
            {"layers": {"features.0": {"before": 64, "after": 22}, "features.3": {"before": 64, "after": 60}}}
        )
    )
    rows = [{"epoch": e, "train_loss": 1 / (e + 1), "val_acc": 0.5 + 0.04 * e, "lr": 0.1} for e in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    edges = np.linspace(0, 1, 11)
    gamma = [
        {"epoch": e, "bin_edges": edges.tolist(), "counts": list(range(10 - e, 20 - e))} for e in range(3)
    ]
    (run / "gamma_hist.jsonl").write_text("\n".join(json.dumps(g) for g in gamma) + "\n")
    plots.accuracy_vs_ratio([(0.5, 0.93), (0.7, 0.92)], run / "accuracy.png")
    return run


def test_report_markdown_and_html_contents(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    assert "| params | 20.035M | 2.302M | 0.1149 |" in md
    assert "| features.0 | 64 | 22 | 34.4% |" in md
    assert "val_acc" in md and "![accuracy.png](accuracy.png)" in md
    for drawn in ("training_curves.png", "gamma_hist.png", "channels_per_layer.png"):
        assert (run / drawn).is_file()
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "<img" in page and 'src="accuracy.png"' not in page  # self-contained


def test_report_survives_missing_and_broken_pieces(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    (run / "results.json").write_text("{not json")
    (run / "metrics.jsonl").write_text('{"epoch": 0, "val_acc": 0.3}\n{"epoch": 1, "va')
    data = collect(run)
    assert data["comparison"] == [] and len(data["metrics"]) == 1
    assert any("results.json" in p for p in data["problems"])
    md_path, _html_path = write_report(run)
    assert "Training metrics" in md_path.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    md_path, _ = write_report(empty)
    assert "no config.json" in md_path.read_text()


def test_plan_width_layouts() -> None:
    assert plan_widths({"layers": [{"name": "a", "before": 4, "after": 2}]}) == {"a": (4, 2)}
    assert plan_widths({"channels": {"b": [8, 3]}}) == {"b": (8, 3)}
    assert plan_widths([1, 2]) == {}


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_html_renders_with_images_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` installs it)")
    run = make_run(tmp_path / "run")
    _, html_path = write_report(run)
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=3000",
        "--dump-dom",
        html_path.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False).stdout
    match = re.search(r'data-images-loaded="(\d+)"', dom)
    assert match is not None, dom[:500]
    assert int(match.group(1)) == 4
    assert dom.count('data-loaded="1"') == 4
    assert "Before / after" in dom
