"""Sparse CPU inference: every backend computes the dense outputs; the measured choice is recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.measurement.latency import Timing
from netslim.weights.pruning import prune_by_amount
from netslim.weights.sparse_inference import (
    SparseConv2d,
    SparseLinear,
    available_backends,
    choose_backend,
    convert_layer,
    retune,
    to_sparse_inference,
)

SPARSE = [b for b in available_backends() if b != "dense"]


def _pruned_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 32),
        nn.ReLU(),
        nn.Linear(32, 5),
    )
    prune_by_amount(net, 0.9)
    return net.eval()


@pytest.mark.parametrize("backend", SPARSE)
def test_each_sparse_backend_matches_dense(backend: str) -> None:
    """Linear (with extra leading dims, with and without bias) and Conv2d outputs equal dense to 1e-5."""
    net = _pruned_net()
    lin, conv = net[3], net[0]
    x = torch.randn(3, 7, 96)
    torch.testing.assert_close(convert_layer(lin, backend)(x), lin(x), atol=1e-5, rtol=1e-5)
    nobias = nn.Linear(96, 4, bias=False)
    torch.testing.assert_close(convert_layer(nobias, backend)(x), nobias(x), atol=1e-5, rtol=1e-5)
    img = torch.randn(4, 2, 8, 8)
    torch.testing.assert_close(convert_layer(conv, backend)(img), conv(img), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(convert_layer(lin, backend).to_dense()(x), lin(x))
    torch.testing.assert_close(convert_layer(conv, backend).to_dense()(img), conv(img))


class FakeTimer:
    """Returns preset (median, q1, q3) per function position: dense first, then the sparse backends."""

    def __init__(self, *cells: tuple[float, float, float]) -> None:
        self.cells = cells
        self.calls = 0

    def measure(self, fns: Sequence[Callable[[], Any]]) -> list[Timing]:
        self.calls += 1
        for fn in fns:
            fn()  # every candidate really runs (and must not fail)
        return [Timing(median_ms=m, q1_ms=a, q3_ms=b, n=30) for m, a, b in self.cells[: len(fns)]]


def test_dense_is_kept_as_a_plain_module_when_sparse_is_not_clearly_faster() -> None:
    """5% faster (inside the 10% margin) or 20% faster with overlapping IQRs: the layer stays nn.Linear."""
    net = _pruned_net()
    x = torch.randn(4, 2, 8, 8)
    for sparse_cell in [(0.95, 0.94, 0.96), (0.8, 0.6, 1.1)]:
        timer = FakeTimer((1.0, 0.98, 1.02), sparse_cell)
        result = to_sparse_inference(net, x, backends=["torch_csr"], timer=timer)
        plain = [nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
        assert [type(m) for m in result.model] == plain  # no wrapper anywhere
        assert not any(isinstance(m, (SparseLinear, SparseConv2d)) for m in result.model.modules())
        assert all(c["backend"] == "dense" for c in result.choices)
        torch.testing.assert_close(result.model(x), net(x))


def test_sparse_is_chosen_when_clearly_faster_at_every_batch_size() -> None:
    net = _pruned_net()
    x = torch.randn(4, 2, 8, 8)
    timer = FakeTimer((1.0, 0.98, 1.02), (0.5, 0.49, 0.51))
    result = to_sparse_inference(net, x, batch_sizes=[1, 8], threads=1, backends=["torch_csr"], timer=timer)
    assert timer.calls == 3 * 2  # three layers x two batch sizes
    assert isinstance(result.model[3], SparseLinear) and result.model[3].backend == "torch_csr"
    assert result.model[3].tuned_for == {"batch_sizes": [1, 8], "threads": 1, "margin": 0.1, "repeats": 30}
    assert result.model.sparse_inference_tuned_for["batch_sizes"] == [1, 8]
    torch.testing.assert_close(result.model(x), net(x), atol=1e-5, rtol=1e-5)
    # winning at one batch size but not the other is not enough
    mixed = {
        1: {"dense": Timing(1.0, 0.99, 1.01, 30), "torch_csr": Timing(0.5, 0.49, 0.51, 30)},
        64: {"dense": Timing(1.0, 0.99, 1.01, 30), "torch_csr": Timing(1.3, 1.29, 1.31, 30)},
    }
    backend, why = choose_backend(mixed)
    assert backend == "dense" and "b64" in why["reason"]
    # overlapping quartiles keep dense after one look; after the longer second look the median decides
    bimodal = {8: {"dense": Timing(12.5, 9.7, 12.8, 120), "torch_csr": Timing(9.6, 9.5, 17.0, 120)}}
    assert choose_backend(bimodal)[0] == "dense"
    assert choose_backend(bimodal, second_looks={8})[0] == "torch_csr"


def test_retune_goes_back_to_dense_where_sparse_no_longer_wins() -> None:
    net = _pruned_net()
    x = torch.randn(4, 2, 8, 8)
    fast = to_sparse_inference(
        net, x, backends=["torch_csr"], timer=FakeTimer((1.0, 0.98, 1.02), (0.3, 0.29, 0.31))
    )
    assert isinstance(fast.model[5], SparseLinear)
    slow = retune(
        fast.model,
        x,
        batch_sizes=[64],
        backends=["torch_csr"],
        timer=FakeTimer((1.0, 0.98, 1.02), (2.0, 1.9, 2.1)),
    )
    assert isinstance(slow.model[5], nn.Linear) and isinstance(slow.model[0], nn.Conv2d)
    assert slow.tuned_for["batch_sizes"] == [64]
    torch.testing.assert_close(slow.model(x), net(x), atol=1e-5, rtol=1e-5)
    assert isinstance(fast.model[5], SparseLinear)  # retune works on a copy


def test_to_sparse_inference_real_timer_matches_outputs() -> None:
    """With the real timer: outputs equal the masked model's, and each record explains its choice."""
    net = _pruned_net()
    x = torch.randn(4, 2, 8, 8)
    result = to_sparse_inference(net, x, batch_sizes=[1], repeats=5)
    torch.testing.assert_close(result.model(x), net(x), atol=1e-5, rtol=1e-5)
    assert [c["layer"] for c in result.choices] == ["0", "3", "5"]
    for choice in result.choices:
        assert set(choice["timings"][1]) == set(available_backends())
        assert choice["reason"] and choice["density"] == pytest.approx(0.1, abs=0.01)
        kept = result.model.get_submodule(choice["layer"])
        assert isinstance(kept, (nn.Linear, nn.Conv2d)) == (choice["backend"] == "dense")
    # the original model is untouched (still masked)
    assert hasattr(net[3], "parametrizations")


def test_dense_layers_below_min_sparsity_are_left_alone() -> None:
    """A layer with too few zeros is not examined; unknown backends are rejected."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8))
    result = to_sparse_inference(net, torch.randn(2, 8), repeats=2)
    assert result.choices == [] and isinstance(result.model[0], nn.Linear)
    with pytest.raises(PruningError, match="not available"):
        to_sparse_inference(net, torch.randn(2, 8), backends=["cuda_magic"])  # type: ignore[list-item]


def test_cli_measure_sparse_times_the_converted_model(tmp_path, capsys) -> None:
    """`netslim measure CKPT --sparse`: both forms, latency with spread, and each layer's choice."""
    import netslim
    from netslim.cli import main
    from netslim.models import create

    torch.manual_seed(0)
    model = create("lenet300_100", in_channels=1, input_size=28)
    prune_by_amount(model, 0.9)
    ckpt = netslim.save(model, tmp_path / "pruned.pt")
    args = ["measure", str(ckpt), "--sparse", "--batch-sizes", "1", "--repeats", "3", "--no-onnxruntime"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "pruned.pt (sparse)" in text and " ms ±" in text
    assert text.count("sparse: classifier.") == 3
    assert main([*args, "--compare", "lenet5"]) == 2


def test_a_median_win_with_overlapping_quartiles_is_borderline() -> None:
    """Such a cell gets a second, longer look instead of staying dense on one noisy measurement."""
    from netslim.weights.sparse_inference import _borderline

    dense = Timing(1.0, 0.8, 1.2, 30)
    clear = {"dense": dense, "torch_csr": Timing(0.5, 0.45, 0.55, 30)}
    noisy_win = {"dense": dense, "torch_csr": Timing(0.85, 0.7, 1.0, 30)}
    inside_margin = {"dense": dense, "torch_csr": Timing(0.95, 0.7, 1.0, 30)}
    loses = {"dense": dense, "torch_csr": Timing(1.05, 1.0, 1.1, 30)}
    assert not _borderline(clear, ["torch_csr"], 0.1), "a clear win needs no second look"
    assert _borderline(noisy_win, ["torch_csr"], 0.1)
    assert _borderline(inside_margin, ["torch_csr"], 0.1), "faster by less than the margin: look again"
    assert not _borderline(loses, ["torch_csr"], 0.1), "slower than dense: stays dense, no second look"
