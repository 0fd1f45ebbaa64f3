"""The smoke suite runs end to end on tiny IDX files and renders docs/RESULTS.md from its JSON."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
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
    # the slimming rows use the recipe netslim recommends and report the cut's cleanliness, not latency
    assert res["sparsity"] == {"s": "auto", "mode": "proximal", "target": 0.7}
    assert set(res["readiness"]) >= {"removed_mass", "in_bulk", "near_zero_share"}
    assert not any(key.startswith("latency") for key in res)
    sparse = stored["slim_vgg_sparse"]["result"]
    assert 0.0 <= sparse["near_zero_share"] <= 1.0 and "latency_ms" not in sparse
    han = stored["han_lenet300_100"]["result"]
    assert han["weights_kept"] < han["weights"]
    assert set(han["sizes"]) >= {"P", "P+Q", "P+Q+H"}
    assert all(s["decode_seconds"] >= 0 for s in han["sizes"].values())
    recipes = stored["slim_vgg_strengths"]["result"]["recipes"]
    assert [r["recipe"] for r in recipes] == ["1e-3", "auto (proximal)"]
    assert all(0.0 <= r["test_error_after_cut"] <= 100.0 and r["near_zero_share"] for r in recipes)


def test_smoke_docs_render(smoke: tuple[Path, Path, int]) -> None:
    _, docs, _ = smoke
    text = (docs / "RESULTS.md").read_text()
    for header in (
        "### Network Slimming (paper Table 1 layout",
        "### Accuracy vs pruning ratio",
        "### Multi-pass slimming (paper Table 4 layout)",
        "### Weight pruning (Han et al.",
        "### Speed and cost",
        "### Fixed L1 strength vs auto in a short run",
        "### Channel gates on a norm-free net",
        "| baseline (no gates, no L1) |",
        "| auto (proximal) |",
        "## Paper's numbers",
        "| model | stage | test error % | gammas / cut |",
        "sparsity-trained (auto, target 70%)",
        "of the gamma mass removed",
    ):
        assert header in text
    assert "python -m benchmarks.run --suite smoke --only gates_normfree" in text
    assert "python -m benchmarks.run --suite smoke --only slim_vgg_baseline" in text
    assert (docs / "img" / "smoke-ratio-sweep.png").stat().st_size > 1000


def test_render_is_deterministic_and_survives_missing_rows(
    smoke: tuple[Path, Path, int], tmp_path: Path
) -> None:
    results, docs, _ = smoke
    first = (docs / "RESULTS.md").read_text()
    again = render.render(results, tmp_path / "again").read_text()
    assert again == first
    missing = ("slim_vgg_multipass", "gates_normfree", "slim_vgg_strengths", "han_lenet5")
    for name in missing:
        (results / "smoke" / f"{name}.json").rename(tmp_path / f"{name}.json")
    try:
        partial = render.render(results, tmp_path / "partial").read_text()
        for name in missing:
            assert f"`{name}` not run yet: `python -m benchmarks.run --suite smoke --only {name}`" in partial
        assert "### Channel gates on a norm-free net" in partial  # the section stays, naming the command
        assert "| baseline (no gates, no L1) |" not in partial
        empty = render.render(tmp_path / "none", tmp_path / "empty").read_text()
        assert "not run yet" in empty
    finally:
        for name in missing:
            (tmp_path / f"{name}.json").rename(results / "smoke" / f"{name}.json")


def test_render_names_a_failed_row(smoke: tuple[Path, Path, int], tmp_path: Path) -> None:
    results, _, _ = smoke
    folder = tmp_path / "results" / "smoke"
    folder.mkdir(parents=True)
    for p in (results / "smoke").glob("*.json"):
        (folder / p.name).write_text(p.read_text())
    rec = json.loads((folder / "gates_normfree.json").read_text())
    rec.update(status="error", result={"error": "RuntimeError: out of memory | again"})
    (folder / "gates_normfree.json").write_text(json.dumps(rec))
    text = render.render(tmp_path / "results", tmp_path / "docs").read_text()
    assert (
        "- `gates_normfree` failed: RuntimeError: out of memory / again "
        "(rerun: `python -m benchmarks.run --suite smoke --only gates_normfree`)"
    ) in text


@pytest.mark.parametrize("first", ["benchmarks.render_standard", "benchmarks.render_common"])
def test_render_modules_import_on_their_own(first: str) -> None:
    """No import cycle: the standard suite's renderer and the shared formatters never import the page."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {first}; assert 'benchmarks.render' not in sys.modules; import benchmarks.render",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


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


def test_weights_section_shows_storage_layers_and_where_a_miss_goes() -> None:
    """Han's table carries Deep Compression's storage stages, the per-layer table, and per-round errors."""
    from benchmarks import render_standard

    res = {
        "baseline_error": 10.0,
        "final_error": 11.0,
        "rate": 12.0,
        "flops_kept_pct": 7.5,
        "sizes_bytes": {"dense": 1000, "P": 100, "P+Q": 40, "P+Q+H": 25},
        "layers": [
            {"name": "fc1", "weights": 1000, "kept_pct": 8.0, "act_kept_pct": 100.0, "flops_kept_pct": 8.0}
        ],
        "rounds": [
            {"round": 1, "weights_kept_pct": 35.0, "val_error_pruned": 30.0, "val_error_retrained": 10.5}
        ],
    }
    text = "\n".join(
        render_standard.weights_section({"std_lenet300_100_han12x": {"status": "ok", "result": res}})
    )
    assert "10.0x (0.1 KiB)" in text and "40.0x" in text  # dense / P, dense / P+Q+H
    assert "| lenet300_100 | fc1 | 1.00K | 8.00% | 100.00% | 8.00% |" in text
    assert "round 1 (35.00% of the weights kept): 30.00 right after pruning, 10.50 retrained" in text


def test_seed_table_reads_each_seed_against_its_own_baseline(tmp_path: Path, monkeypatch) -> None:
    """The study's repeats: one column per seed, the gap to the same seed's baseline, mean ± sd, and a
    repeat seed's checkpoints in a folder of its own (seed 0's stored runs stay where they are)."""
    from dataclasses import replace

    from benchmarks import render_standard, rows_standard
    from benchmarks.suite import RowContext

    cells = rows_standard.STUDY_SEEDS["vgg11"][1][:1]  # one cut: the count of cells below is for one
    seeds = (1, 2)  # the table as it reads with two repeat seeds, whatever the study has now
    monkeypatch.setitem(rows_standard.STUDY_SEEDS, "vgg11", (seeds, cells))
    ratio, recipe = cells[0]
    cut = f"{round(100 * ratio)}_{recipe}_plain"
    base_err, ft_err = (7.0, 7.2, 7.4), (8.0, 7.5, None)  # the last repeat has not run
    results: dict = {}
    for seed, b, f in zip((0, *seeds), base_err, ft_err, strict=True):
        infix = f"seed{seed}_" if seed else ""
        results[f"std_vgg11_{infix}baseline"] = {"status": "ok", "result": {"test_error": b}}
        if f is not None:
            errs = {"test_error_sparse": f + 1, "test_error_pruned": f + 1, "test_error_finetuned": f}
            results[f"std_vgg11_{infix}{cut}"] = {"status": "ok", "result": errs}
    # the variant without augmentation: its own baselines, and cells read against the better baseline
    for seed, b, f in zip((0, *seeds), (7.3, 7.1, None), (7.6, 7.4, None), strict=True):
        if f is not None:
            infix = f"seed{seed}_" if seed else ""
            results[f"std_vgg11_{infix}baseline_noaug"] = {"status": "ok", "result": {"test_error": b}}
            results[f"std_vgg11_{infix}{cut}_noaug"] = {"status": "ok", "result": {"test_error_finetuned": f}}
            # and sparsity training without augmentation too
            errs = {"test_error_sparse": f + 0.5, "test_error_finetuned": f + 0.2}
            results[f"std_vgg11_{infix}{cut}_noaug_all"] = {"status": "ok", "result": errs}
    history = [{"epoch": e, "sparsity_rollbacks": int(e >= 5)} for e in range(1, 16)]
    results[f"std_vgg11_seed1_{cut}"]["result"]["sparse_history"] = history
    text = "\n".join(render_standard._seed_lines(results, "vgg11"))
    assert "| baseline | 7.00 | 7.20 | 7.40 | 7.20 ± 0.20 (n=3) |" in text
    assert f"`std_vgg11_seed1_{cut}`: its training loss collapsed" in text
    assert "rolled back once (first in sparsity epoch 5)" in text and text.count("rolled back") == 1
    assert f"| {recipe}, {round(100 * ratio)}% cut: fine-tuned minus baseline | +1.00 | +0.30 | - |" in text
    assert "+0.65 ± 0.49 (n=2)" in text
    label = f"{recipe}, {round(100 * ratio)}% cut"
    assert f"| {label}: fine-tuned without augmentation | 7.60 | 7.40 | - | 7.50 ± 0.14 (n=2) |" in text
    assert "| baseline without augmentation | 7.30 | 7.10 | - | 7.20 ± 0.14 (n=2) |" in text
    assert f"| {label}: fine-tuned minus the better baseline | +1.00 | +0.40 | - |" in text
    assert f"| {label}: the same minus the better baseline | +0.60 | +0.30 | - | +0.45 ± 0.21 (n=2) |" in text
    what = "sparsity training and fine-tuning without augmentation"
    assert f"| {label}: {what}, sparse | 8.10 | 7.90 | - | 8.00 ± 0.14 (n=2) |" in text
    assert f"| {label}: {what}, fine-tuned | 7.80 | 7.60 | - | 7.70 ± 0.14 (n=2) |" in text
    assert f"| {label}: the same minus the better baseline | +0.80 | +0.50 | - | +0.65 ± 0.21 (n=2) |" in text
    assert "(4 of 15 cells not run yet)" in text

    spec = rows_standard.STUDY_MODELS["vgg11"]
    ctx = RowContext(suite="standard", work_dir=tmp_path)
    assert rows_standard.model_dir(ctx, spec) == rows_standard.work_dir(ctx) / "vgg11"
    assert (
        rows_standard.model_dir(ctx, replace(spec, seed=2)) == rows_standard.work_dir(ctx) / "vgg11" / "seed2"
    )


def test_fold_modes_table_shows_each_fold_against_the_masked_net() -> None:
    from benchmarks import render_standard

    errs = {"sparse": 7.2, "masked": 7.2, "mean": 7.6, "exact": 7.2, "interior": 7.6, "none": 15.0}
    case = {
        "key": "vgg19",
        "model": "vgg19",
        "model_kwargs": {"width": 0.25},
        "ratio": 0.7,
        "test_error": errs,
        "relative_output_error": {"folded": 0.05, "folded_exact": 2e-7},
        "border_convs": 9,
    }
    results = {"std_fold_modes": {"status": "ok", "result": {"cases": [case]}}}
    text = "\n".join(render_standard.folding_section(results))
    cells = "| 7.20 | 7.20 | 7.60 | 7.20 | 7.60 | 15.00 | 9 | 5.0e-02 / 2.0e-07 |"
    assert f"| vgg19 (width=0.25) | 70% {cells}" in text
    assert "--only std_fold_modes" in text
    assert "not run" in "\n".join(render_standard.folding_section({}))


def test_seed_table_shows_the_unaugmented_cells_fine_tuned_at_another_rate() -> None:
    from benchmarks import render_standard

    results: dict = {}
    for seed, base, fine in zip((0, 1, 2), (8.0, 9.4, 8.2), (8.4, 8.8, 8.4), strict=True):
        infix = f"seed{seed}_" if seed else ""
        results[f"std_preresnet20_{infix}baseline"] = {"status": "ok", "result": {"test_error": base + 1}}
        results[f"std_preresnet20_{infix}baseline_noaug"] = {"status": "ok", "result": {"test_error": base}}
        row = f"std_preresnet20_{infix}60_auto_plain_noaug_all_ftlr0.05"
        results[row] = {"status": "ok", "result": {"test_error_finetuned": fine}}
    text = "\n".join(render_standard._seed_lines(results, "preresnet20"))
    assert (
        "| auto, 60% cut: the same, fine-tuned at lr 0.05 | 8.40 | 8.80 | 8.40 | 8.53 ± 0.23 (n=3) |" in text
    )
    assert (
        "| auto, 60% cut: that minus the better baseline | +0.40 | -0.60 | +0.20 | +0.00 ± 0.53 (n=3) |"
        in text
    )


def test_ramp_table_puts_every_ramp_and_fine_tuning_rate_beside_the_default(monkeypatch) -> None:
    """One table per ratio: the default ramp's cells, each other ramp's, and a ramp's cells fine-tuned at
    a lower rate (no near-zero line of their own: the sparse net is the ramp's), each against the better of
    the seed's two baselines; cells not run yet are counted."""
    from benchmarks import render_standard, rows_standard

    monkeypatch.setitem(rows_standard.STUDY_SEEDS, "vgg11", ((1,), ((0.7, "auto"),)))
    monkeypatch.setitem(rows_standard.RAMP_CELLS, "vgg11", ((0.7, "autoramp30"),))
    monkeypatch.setitem(rows_standard.RAMP_FINETUNE_LR, "vgg11", ((0.7, "autoramp30", 0.05),))
    results: dict = {}
    for infix, aug, bare in (("", 7.2, 7.0), ("seed1_", 7.1, 7.4)):
        results[f"std_vgg11_{infix}baseline"] = {"status": "ok", "result": {"test_error": aug}}
        results[f"std_vgg11_{infix}baseline_noaug"] = {"status": "ok", "result": {"test_error": bare}}
    history = [{"val_acc": 0.925}]
    for name, err in (
        ("std_vgg11_70_auto_plain_noaug", 7.9),
        ("std_vgg11_seed1_70_auto_plain_noaug", 8.0),
        ("std_vgg11_70_autoramp30_plain_noaug", 7.5),
        ("std_vgg11_70_autoramp30_plain_noaug_ftlr0.05", 7.4),
    ):
        res = {
            "test_error_finetuned": err,
            "readiness": {"near_zero_share": 0.705},
            "finetune_history": history,
        }
        results[name] = {"status": "ok", "result": res}
    text = "\n".join(render_standard._ramp_lines(results, "vgg11"))
    assert text.count("| seed 0 | seed 1 | mean ± sd |") == 1
    assert "| ramp 0.5 (default): minus the better baseline | +0.90 | +0.90 | +0.90 ± 0.00 (n=2) |" in text
    assert "| ramp 0.3: near zero (%) | 70.5 | - | 70.5 |" in text
    assert "| ramp 0.3: minus the better baseline | +0.50 | - |" in text
    assert "| ramp 0.3, fine-tuned at lr 0.05: fine-tuned | 7.40 | - |" in text
    assert "ramp 0.3, fine-tuned at lr 0.05: near zero" not in text
    assert "| ramp 0.3: validation error at the end | 7.50 | - |" in text
    assert text.index("ramp 0.3:") < text.index("ramp 0.3, fine-tuned") < text.index("ramp 0.5 (default)")
    assert "(2 of 4 cells not run yet)." in text


def test_teacher_table_puts_distillation_from_the_baseline_beside_plain_fine_tuning(monkeypatch) -> None:
    """Plain fine-tuning, distillation from the sparse net (only where run) and from the seed's baseline,
    with and without augmentation, each against the better of the seed's two baselines; cells not run yet
    are counted."""
    from benchmarks import render_standard, rows_standard

    monkeypatch.setitem(rows_standard.STUDY_SEEDS, "vgg11", ((1,), ((0.7, "auto"),)))
    results: dict = {}
    for infix, aug, bare in (("", 7.2, 7.0), ("seed1_", 7.1, 7.4)):
        results[f"std_vgg11_{infix}baseline"] = {"status": "ok", "result": {"test_error": aug}}
        results[f"std_vgg11_{infix}baseline_noaug"] = {"status": "ok", "result": {"test_error": bare}}
    for name, err in (
        ("std_vgg11_70_auto_plain", 8.2),
        ("std_vgg11_70_auto_plain_noaug", 7.9),
        ("std_vgg11_70_auto_kd_baseteacher", 8.4),
        ("std_vgg11_70_auto_kd_noaug_baseteacher", 7.6),
        ("std_vgg11_seed1_70_auto_kd_noaug_baseteacher", 7.9),
    ):
        results[name] = {"status": "ok", "result": {"test_error_finetuned": err}}
    text = "\n".join(render_standard._teacher_lines(results, "vgg11"))
    assert text.count("| seed 0 | seed 1 | mean ± sd |") == 1
    assert "| plain, with augmentation: minus the better baseline | +1.20 | - |" in text
    assert "distilled from the sparse net" not in text, "no such cell was run"
    gaps = "| distilled from the baseline, without augmentation: minus the better baseline | +0.60 | +0.80 |"
    assert gaps in text
    assert text.index("with augmentation: fine-tuned") < text.index("without augmentation: fine-tuned")
    assert "`python -m benchmarks.run --suite standard --only std_vgg11_70_auto_kd_baseteacher`" in text
    assert "(1 of 4 cells not run yet)." in text
    assert render_standard._teacher_lines(results, "preresnet20") == []
