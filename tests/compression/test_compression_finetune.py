"""Weight sharing on a model and Deep Compression centroid fine-tuning."""

from __future__ import annotations

import torch
from torch import nn

from netslim.compression import compress_model, decompress, finetune_centroids, share_weights


def _tiny_model_and_batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(16, 12) < 0.5)
    x = torch.randn(64, 12)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return model, x, y


def test_share_weights_quantizes_in_place_and_keeps_zeros() -> None:
    model, _, _ = _tiny_model_and_batch()
    zeros = model[0].weight == 0
    shared = share_weights(model, bits_fc=3)
    assert set(shared) == {"0.weight", "2.weight"}
    w = model[0].weight
    assert torch.equal(w == 0, zeros)
    assert set(torch.unique(w).tolist()) <= set(shared["0.weight"].centroids.tolist())
    assert torch.equal(w, shared["0.weight"].centroids[shared["0.weight"].codes])


def test_finetune_lowers_loss_and_keeps_weights_on_codebook() -> None:
    model, x, y = _tiny_model_and_batch()
    shared = share_weights(model, bits_fc=3)
    zeros = model[0].weight == 0
    bias_before = model[0].bias.detach().clone()
    before = nn.functional.cross_entropy(model(x), y).item()
    books_before = {k: v.centroids.clone() for k, v in shared.items()}
    losses = finetune_centroids(model, shared, [(x, y)] * 20, lr=0.05)
    after = nn.functional.cross_entropy(model(x), y).item()
    assert len(losses) == 20 and after < before
    for name, sw in shared.items():
        weight = dict(model.named_parameters())[name]
        assert torch.equal(weight, sw.centroids[sw.codes])
        assert sw.centroids[0] == 0.0
        assert not torch.equal(sw.centroids, books_before[name])
    assert torch.equal(model[0].weight == 0, zeros)
    assert torch.equal(model[0].bias, bias_before)
    # The fine-tuned shared weights re-encode without further loss.
    blob, _ = compress_model(model, quantize=True, bits_fc=3)
    out, _ = decompress(blob)
    assert torch.equal(out["0.weight"], model[0].weight)


def test_finetune_respects_max_steps() -> None:
    model, x, y = _tiny_model_and_batch()
    shared = share_weights(model)
    assert len(finetune_centroids(model, shared, [(x, y)] * 10, max_steps=3)) == 3
