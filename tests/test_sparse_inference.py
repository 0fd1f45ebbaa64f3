"""Sparse CPU inference: every backend computes the dense outputs; the measured choice is recorded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.weights.pruning import prune_by_amount
from netslim.weights.sparse_inference import (
    SparseConv2d,
    SparseLinear,
    available_backends,
    convert_layer,
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


def test_to_sparse_inference_same_outputs_and_records_choice() -> None:
    """The converted model matches the masked one; each layer records backend, density and timings."""
    net = _pruned_net()
    x = torch.randn(4, 2, 8, 8)
    result = to_sparse_inference(net, x, batch_size=1, repeats=3)
    torch.testing.assert_close(result.model(x), net(x), atol=1e-5, rtol=1e-5)
    assert [c["layer"] for c in result.choices] == ["0", "3", "5"]
    for choice in result.choices:
        assert choice["backend"] in choice["timings_ms"]
        assert choice["backend"] == min(choice["timings_ms"], key=choice["timings_ms"].get)
        assert set(choice["timings_ms"]) == set(available_backends())
        assert choice["batch_size"] == 1 and choice["density"] == pytest.approx(0.1, abs=0.01)
    assert isinstance(result.model[3], SparseLinear) and isinstance(result.model[0], SparseConv2d)
    assert result.model[3].backend == result.choices[1]["backend"]
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
