"""The smoke suite runs end to end on tiny IDX files and renders docs/RESULTS.md from its JSON."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from benchmarks import render, run
from benchmarks.suite import ROWS

from helpers import idx_bytes


def _write_idx(path: Path, data: np.ndarray) -> None:
    path.write_bytes(gzip.compress(idx_bytes(data)))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, count in (("train", 260), ("t10k", 60)):
        labels = rng.integers(0, 10, count)
        # class-dependent brightness so the tiny models can learn something
        images = rng.integers(0, 80, (count, 28, 28)) + (labels * 15)[:, None, None]
        _write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    results, docs = root / "results", root / "docs"
    code = run.main(
        [
            "--suite",
            "smoke",
            "--data-dir",
            str(data),
            "--results-dir",
            str(results),
            "--docs-dir",
            str(docs),
            "--work-dir",
            str(root / "work"),
        ]
    )
    assert code == 0
    return results, docs, code


def test_smoke_rows_are_stored(smoke: tuple[Path, Path, int]) -> None:
    results, _, _ = smoke
    expected = {name for name, r in ROWS.items() if "smoke" in r.suites}
    stored = {p.stem: json.loads(p.read_text()) for p in (results / "smoke").glob("*.json")}
    assert expected <= set(stored)
    failed = {k: v["result"] for k, v in stored.items() if v["status"] != "ok"}
    assert not failed
    rec = stored["slim_vgg_70"]
    assert rec["command"] == "python -m benchmarks.run --suite smoke --only slim_vgg_70"
    assert rec["machine"]["cpu_count"] >= 1
    res = rec["result"]
    assert res["params_after"] < res["params_before"]
    assert 0.0 <= res["test_error_finetuned"] <= 100.0
    han = stored["han_lenet300_100"]["result"]
    assert han["weights_kept"] < han["weights"]
    assert set(han["sizes"]) >= {"P", "P+Q", "P+Q+H"}


def test_smoke_docs_render(smoke: tuple[Path, Path, int]) -> None:
    _, docs, _ = smoke
    text = (docs / "RESULTS.md").read_text()
    for header in (
        "### Network Slimming (paper Table 1 layout",
        "### Accuracy vs pruning ratio",
        "### Multi-pass slimming (paper Table 4 layout)",
        "### Weight pruning (Han et al.",
        "### Speed and cost",
        "## Paper's numbers",
        "| model | stage | test error %",
    ):
        assert header in text
    assert "python -m benchmarks.run --suite smoke --only slim_vgg_baseline" in text
    assert (docs / "img" / "smoke-ratio-sweep.png").stat().st_size > 1000


def test_render_is_deterministic_and_survives_missing_rows(
    smoke: tuple[Path, Path, int], tmp_path: Path
) -> None:
    results, docs, _ = smoke
    first = (docs / "RESULTS.md").read_text()
    again = render.render(results, tmp_path / "again").read_text()
    assert again == first
    (results / "smoke" / "slim_vgg_multipass.json").rename(tmp_path / "moved.json")
    partial = render.render(results, tmp_path / "partial").read_text()
    assert "not run yet: `python -m benchmarks.run --suite smoke --only slim_vgg_multipass`" in partial
    empty = render.render(tmp_path / "none", tmp_path / "empty").read_text()
    assert "not run yet" in empty
    (tmp_path / "moved.json").rename(results / "smoke" / "slim_vgg_multipass.json")


def test_unknown_row_is_refused(tmp_path: Path) -> None:
    code = run.main(
        [
            "--suite",
            "smoke",
            "--only",
            "no_such_row",
            "--results-dir",
            str(tmp_path),
            "--docs-dir",
            str(tmp_path / "docs"),
        ]
    )
    assert code == 2
