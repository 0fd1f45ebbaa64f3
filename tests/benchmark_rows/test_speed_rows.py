"""Issue-13 speed rows: the six networks are what they claim, rows decide their targets, TP is optional.

No timing is asserted: these check the benchmark's plumbing (structure, targets, skips), not the machine.
"""

from __future__ import annotations

import sys

import pytest
import torch

from benchmarks import rows_speed
from benchmarks.suite import RowContext


def _ctx(tmp_path) -> RowContext:
    return RowContext(suite="smoke", work_dir=tmp_path)


def test_slim_vs_tp_skips_cleanly_without_torch_pruning(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import raises ImportError
    res = rows_speed.slim_vs_torch_pruning(_ctx(tmp_path))
    assert "torch-pruning" in res["skipped"] and res["target_met"] is None


def test_built_here_networks_have_their_reference_sizes() -> None:
    """DenseNet-121 8.0M, MobileNetV3-Large 5.5M parameters (torchvision: 7.98M, 5.48M) and run at 224."""
    sizes = {"densenet121": 7.98e6, "mobilenetv3_large": 5.48e6}
    for name, params in sizes.items():
        model = rows_speed.SIX_MODELS[name][1]().eval()
        assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.01)
        with torch.no_grad():
            assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_sparse_cell_reports_both_ratios_and_the_choice() -> None:
    dense = rows_speed.pruned_linear(64, 32, 0.05)
    cell = rows_speed.bench_cell(dense, 0.05, batch=2, threads=1, repeats=3, min_repeats=3, budget_s=0.01)
    assert cell["backend"] in ("dense", "torch_csr", "scipy_csr") and cell["reason"]
    assert cell["repeats"] == 3 and cell["shape"] == "64x32"
    for key in ("converted_over_unconverted", "converted_over_torch_csr"):
        assert cell[key] > 0
    grid = rows_speed.bench_grid(((64, 32),), (0.05,), (2,), (1,), repeats=3, min_repeats=3, budget_s=0.01)
    assert len(grid["cells"]) == 1 and isinstance(grid["target_met"], bool)
    assert grid["target_met"] == (grid["target_met_vs_unconverted"] and grid["target_met_vs_torch_csr"])


def test_overhead_row_covers_the_three_modes(tmp_path) -> None:
    res = rows_speed.sparsity_overhead(_ctx(tmp_path))
    assert [r["mode"].split()[0] for r in res["rows"]] == ["subgradient", "proximal", "auto"]
    assert res["target_met"] == all(r["target_met"] for r in res["rows"])
    assert {"load_before", "load_after", "cores", "over_cores"} <= set(res["load"])


def test_targets_summary_names_every_target_row() -> None:
    ok = {"status": "ok", "seconds": 1.0}
    results = {
        "speed_slim_vs_tp": {**ok, "result": {"skipped": "torch-pruning missing", "target_met": None}},
        "speed_sparse_inference": {
            **ok,
            "result": {"target_met": False, "target_met_vs_unconverted": False, "load": {"over_cores": True}},
        },
        "speed_inference_form": {"status": "error", "seconds": 1.0, "result": {"error": "boom"}},
    }
    lines = rows_speed.targets_summary(results)
    assert len(lines) == 4
    assert "skipped" in lines[0]
    assert "NOT met" in lines[1] and "UNDER LOAD" in lines[1]
    assert "FAILED" in lines[2] and "not run" in lines[3]


def test_sparse_cell_verdicts_need_quartiles_apart() -> None:
    """Two timings of the same kernel 6% apart in the median but overlapping are a tie, not a loss."""
    from netslim.measurement.latency import Timing

    def t(q1: float, med: float, q3: float) -> Timing:
        return Timing(median_ms=med, q1_ms=q1, q3_ms=q3, n=30)

    csr, conv_tie, conv_slow = t(4.6, 4.7, 5.0), t(4.8, 5.0, 5.1), t(5.4, 5.5, 5.6)
    assert not rows_speed._clearly_faster(csr, conv_tie, 1 / rows_speed.TOLERANCE)
    assert rows_speed._clearly_faster(csr, conv_slow, 1 / rows_speed.TOLERANCE)
    dense = t(7.2, 7.4, 7.6)
    assert rows_speed._undecided(dense, conv_tie, csr)  # a 6% median gap with overlap: re-timed
    assert not rows_speed._undecided(dense, csr, csr)  # same timings: decided (a tie)
    assert rows_speed._undecided(t(4.9, 5.3, 5.5), csr, csr)  # csr 10% faster in the median, overlapping


def test_inference_form_runs_combine_to_the_median_process() -> None:
    """Three processes' ratios: the row reports their median, the range, and the median process's timings."""
    runs = [
        {"forms": {"slimmed": f"form {i}"}, "batches": {"1": {"form_speedup_over_flop_ratio": r, "tag": i}}}
        for i, r in enumerate((1.2, 0.8, 1.0))
    ]
    out = rows_speed.combine_form_runs(runs)
    cell = out["batches"][1]
    assert cell["form_speedup_over_flop_ratio"] == 1.0 and cell["tag"] == 2
    assert cell["form_speedup_over_flop_ratio_per_process"] == [0.8, 1.0, 1.2] and cell["processes"] == 3
    assert out["forms_per_process"] == [{"slimmed": "form 0"}, {"slimmed": "form 1"}, {"slimmed": "form 2"}]
