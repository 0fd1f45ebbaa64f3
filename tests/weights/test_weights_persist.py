"""Weight masks survive netslim.save/load and compress: a loaded model trains with its zeros kept."""

from __future__ import annotations

import torch
from torch import nn

import netslim
from netslim.compression import compress_model, decompress
from netslim.io import Checkpoint, write_checkpoint
from netslim.models import create
from netslim.train import TrainConfig, Trainer
from netslim.weights import (
    MaskCallback,
    apply_masks,
    has_masks,
    mask_gradients,
    prunable_layers,
    prune_by_amount,
)


def _pruned_lenet5() -> nn.Module:
    torch.manual_seed(0)
    model = create("lenet5", num_classes=10, in_channels=1, input_size=28)
    prune_by_amount(model, 0.9)
    return model


def _zeros(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() == 0 for n, p in model.named_parameters() if n.endswith("original")}


def _sgd_steps(model: nn.Module, steps: int = 5) -> None:
    """The documented manual loop: mask_gradients after backward, apply_masks after the step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        mask_gradients(model)
        opt.step()
        apply_masks(model)


def test_loaded_pruned_model_is_masked_and_keeps_its_zeros(tmp_path) -> None:
    """save -> load gives a masked model (same masks) whose pruned weights stay 0 through 5 SGD steps."""
    model = _pruned_lenet5()
    pruned = {n: int((m.weight == 0).sum()) for n, m in prunable_layers(model).items()}
    loaded = netslim.load(netslim.save(model, tmp_path / "p.pt"))
    assert has_masks(loaded) and not has_masks(create("lenet5", in_channels=1))
    assert "WeightMask(kept=" in repr(loaded)  # the repr says it is masked, and how much is kept
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    _sgd_steps(loaded)
    after = {n: int((m.weight == 0).sum()) for n, m in prunable_layers(loaded).items()}
    assert after == pruned  # without masks these steps regrow ~213K weights


def test_fixed_std_of_hans_rule_survives_save_load(tmp_path) -> None:
    """The cached std (Han's rule, std_mode='fixed') travels with the checkpoint."""
    from netslim.weights import get_mask, prune_by_std

    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    prune_by_std(model, 0.5)
    loaded = netslim.load(netslim.save(model, tmp_path / "p.pt"))
    for name in ("classifier.0", "classifier.2"):
        before = get_mask(model.get_submodule(name))
        after = get_mask(loaded.get_submodule(name))
        assert before is not None and after is not None
        assert float(after.std) == float(before.std)
        assert torch.equal(after.mask, before.mask)


def test_trainer_with_mask_callback_keeps_zeros_of_a_loaded_model(tmp_path) -> None:
    """Training a loaded pruned model with MaskCallback (momentum + weight decay) leaves every zero."""
    model = netslim.load(netslim.save(_pruned_lenet5(), tmp_path / "p.pt"))
    before = _zeros(model)
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(3)
    ]
    cfg = TrainConfig(epochs=1, lr=0.1, weight_decay=1e-2, progress=False)
    Trainer(model, data, None, cfg, callbacks=[MaskCallback()], device="cpu").fit()
    after = _zeros(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_masks_survive_compress_and_decompress(tmp_path) -> None:
    """compress_model -> decompress -> checkpoint -> load: masked again, with the same zeros."""
    model = _pruned_lenet5()
    blob, _ = compress_model(model, quantize=True)
    state, meta = decompress(blob)
    path = write_checkpoint(tmp_path / "d.pt", Checkpoint(meta=meta, state_dict=state))
    loaded = netslim.load(path)
    assert has_masks(loaded)
    for name in ("features.0", "features.2", "classifier.0", "classifier.2"):
        assert torch.equal(
            loaded.get_submodule(name).weight == 0, model.get_submodule(name).weight.detach() == 0
        )


def test_unmasked_checkpoints_load_unmasked(tmp_path) -> None:
    """A model saved without masks (e.g. finalized) loads as plain modules."""
    from netslim.weights import finalize

    loaded = netslim.load(netslim.save(finalize(_pruned_lenet5()), tmp_path / "f.pt"))
    assert not has_masks(loaded)
