"""Mask invariants: exact zeros under every optimizer, persistence, copying and finalization."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from netslim.errors import PruningError
from netslim.weights.callbacks import MaskCallback
from netslim.weights.masks import (
    apply_masks,
    attach_mask,
    finalize,
    get_mask,
    is_masked,
    load_masked_state_dict,
    mask_gradients,
    raw_parameter,
)
from netslim.weights.pruning import prune_by_amount


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 8), nn.ReLU(), nn.Linear(8, 3)
    )


class _FakeTrainer:
    def __init__(self, model: nn.Module) -> None:
        self.model = model


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (80x slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-1),
}


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_masked_weights_stay_exactly_zero_for_1000_steps(opt_name: str, one_thread: None) -> None:
    """Optimizer built BEFORE pruning keeps working; momentum/Adam/decay never revive a masked entry."""
    model = tiny_net()
    opt = OPTIMIZERS[opt_name](model.parameters())
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for _ in range(5):  # build optimizer state on the dense net first
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    ids_before = {id(p) for p in model.parameters()}
    prune_by_amount(model, 0.7)
    assert {id(p) for p in model.parameters()} == ids_before
    cb, trainer = MaskCallback(), _FakeTrainer(model)
    masks = {n: get_mask(m).mask.clone() for n, m in model.named_modules() if is_masked(m)}
    for _ in range(1000):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        cb.after_backward(trainer)
        opt.step()
        cb.after_step(trainer)
    for name, mask in masks.items():
        module = model.get_submodule(name)
        assert torch.equal(get_mask(module).mask, mask)
        assert torch.all(module.weight[~mask] == 0)
        assert torch.all(raw_parameter(module)[~mask] == 0)
        assert torch.any(module.weight[mask] != 0)


def test_mask_gradients_and_apply_masks() -> None:
    """mask_gradients zeroes masked grads; apply_masks zeroes masked raw entries."""
    lin = nn.Linear(4, 2)
    mask = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    attach_mask(lin, mask=mask)
    raw = raw_parameter(lin)
    with torch.no_grad():
        raw.add_(1.0)
    raw.grad = torch.ones_like(raw)
    mask_gradients(lin)
    assert torch.equal(raw.grad, mask.float())
    apply_masks(lin)
    assert torch.all(raw[~mask] == 0)


def test_state_dict_roundtrip_into_masked_and_fresh_models(tmp_path) -> None:
    """Masks and weights survive torch.save/load of the state dict, also into an unmasked instance."""
    model = tiny_net()
    prune_by_amount(model, 0.5)
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    fresh = tiny_net()
    torch.manual_seed(1)
    for p in fresh.parameters():
        nn.init.normal_(p)
    load_masked_state_dict(fresh, state)
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(fresh(x), model(x))
    for name in ("0", "3", "5"):
        assert torch.equal(get_mask(fresh.get_submodule(name)).mask, get_mask(model.get_submodule(name)).mask)


def test_deepcopy_keeps_masks_independently() -> None:
    """deepcopy copies masks as buffers; the copy's mask is a separate tensor."""
    model = tiny_net()
    prune_by_amount(model, 0.6)
    clone = copy.deepcopy(model)
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(clone(x), model(x))
    m_orig, m_clone = get_mask(model[3]).mask, get_mask(clone[3]).mask
    assert torch.equal(m_orig, m_clone) and m_orig.data_ptr() != m_clone.data_ptr()


def test_finalize_leaves_plain_modules_with_same_outputs() -> None:
    """finalize: no parametrizations left, zeros kept, identical outputs, state dict fits a fresh net."""
    model = tiny_net()
    prune_by_amount(model, 0.8)
    x = torch.randn(3, 1, 4, 4)
    before = model(x)
    finalize(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert all(not m._forward_pre_hooks for m in model.modules())
    assert torch.equal(model(x), before)
    sparsity = float((model[3].weight == 0).float().mean())
    assert sparsity == pytest.approx(0.8, abs=1 / 128)
    tiny_net().load_state_dict(model.state_dict())  # strict load into an unpruned instance


def test_masks_only_shrink_and_bad_shape_raises() -> None:
    """A second mask intersects the first; a wrongly shaped mask is a PruningError."""
    lin = nn.Linear(3, 1)
    attach_mask(lin, mask=torch.tensor([[1, 1, 0]], dtype=torch.bool))
    attach_mask(lin, mask=torch.tensor([[0, 1, 1]], dtype=torch.bool))
    assert get_mask(lin).mask.tolist() == [[False, True, False]]
    with pytest.raises(PruningError, match="does not match"):
        attach_mask(lin, mask=torch.ones(2, 2, dtype=torch.bool))


def test_finalizing_a_deepcopy_leaves_the_original_intact() -> None:
    """deepcopy shares torch's generated Parametrized class; finalize must not strip the original's weight."""
    model = tiny_net()
    prune_by_amount(model, 0.5)
    x = torch.randn(2, 1, 4, 4)
    expected = model(x)
    finalize(copy.deepcopy(model))
    assert torch.equal(model(x), expected) and is_masked(model[3])
    clone = copy.deepcopy(model)
    finalize(model)
    assert torch.equal(clone(x), expected) and is_masked(clone[3])
