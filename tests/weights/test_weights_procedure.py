"""Schedules (cubic, growing quality), Han's dropout formula, and the iterative prune/retrain procedure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.train.config import TrainConfig
from netslim.weights.callbacks import L1Regularization, MaskCallback
from netslim.weights.procedure import IterativePruningConfig, iterative_prune, retrain_config
from netslim.weights.schedule import adjust_dropout, cubic_sparsity, dropout_pairs, retrain_dropout


def test_cubic_sparsity_golden_list() -> None:
    """s0=0, sf=0.9, n=4, dt=1: 0.9 - 0.9 * (1 - t/4)^3, clamped outside [t0, t0 + n*dt]."""
    got = [cubic_sparsity(t, 0.0, 0.9, 0, 4, 1) for t in range(-1, 6)]
    assert got == pytest.approx([0.0, 0.0, 0.5203125, 0.7875, 0.8859375, 0.9, 0.9])
    # t0 and dt shift and stretch the same curve
    assert cubic_sparsity(12, 0.2, 0.8, 10, 2, 2) == pytest.approx(0.8 - 0.6 * 0.125)
    with pytest.raises(PruningError):
        cubic_sparsity(0, 0.0, 1.5, 0, 4, 1)


def test_dropout_formula_alexnet_fc6() -> None:
    """Han Eq. 2: fc6 keeps 9% of 38M connections -> 0.5 * sqrt(0.09) = 0.15."""
    c_io = 9216 * 4096
    assert retrain_dropout(0.5, c_io, round(0.09 * c_io)) == pytest.approx(0.15, abs=1e-6)
    assert retrain_dropout(0.5, 100, 100) == 0.5


def test_dropout_pairing_and_adjustment_by_module_order() -> None:
    """AlexNet-like head: each Dropout pairs with the next Linear; rates follow each layer's density."""
    head = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 8),
        nn.ReLU(),
        nn.Linear(8, 2),
    )
    assert dropout_pairs(head) == {"0": "1", "3": "4"}
    with torch.no_grad():
        head[1].weight.zero_()
        head[1].weight.view(-1)[: 128 // 4] = 1.0  # 25% kept
    rates = adjust_dropout(head, {"0": 0.5, "3": 0.5})
    assert rates["0"] == pytest.approx(0.25) and head[0].p == pytest.approx(0.25)
    assert rates["3"] == pytest.approx(0.5)


class _RecordingTrainer:
    """Stand-in for netslim.train.Trainer: a few SGD steps that call the callbacks like the real loop."""

    calls: list[tuple[str, TrainConfig, list[str], list[bool]]] = []

    def __init__(self, model: nn.Module, config: TrainConfig, callbacks: list, tag: str) -> None:
        self.model, self.config, self.callbacks, self.tag = model, config, callbacks, tag
        _RecordingTrainer.calls.append(
            (
                tag,
                config,
                [type(c).__name__ for c in callbacks],
                [p.requires_grad for p in model.parameters()],
            )
        )

    def fit(self) -> list[dict]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.config.lr, momentum=0.9, weight_decay=self.config.weight_decay)
        torch.manual_seed(0)
        x, y = torch.randn(32, 1, 6, 6), torch.randint(0, 3, (32,))
        for _ in range(10):
            opt.zero_grad()
            nn.functional.cross_entropy(self.model(x), y).backward()
            for c in self.callbacks:
                c.after_backward(self)
            opt.step()
            for c in self.callbacks:
                c.after_step(self)
        return [{"epoch": 1, "loss": 0.0}]


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(64, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def test_iterative_prune_cubic_schedule_reaches_target_and_masks_hold() -> None:
    """Sparsity follows the cubic schedule per round; retraining uses lr/10 and keeps zeros."""
    _RecordingTrainer.calls.clear()
    model = _cnn()
    cfg = IterativePruningConfig(rounds=3, target_sparsity=0.8, overrides={"0": None})
    history = iterative_prune(model, cfg, _RecordingTrainer, TrainConfig(lr=0.1), evaluate_fn=lambda m: 0.5)
    assert [h["round"] for h in history] == [1, 2, 3]
    expected = [cubic_sparsity(t, 0.0, 0.8, 0, 3, 1) for t in (1, 2, 3)]
    assert [h["sparsity"]["4"] for h in history] == pytest.approx(expected, abs=1 / 1024)
    assert history[-1]["sparsity"]["0"] == 0.0
    assert float((model[4].weight == 0).float().mean()) == pytest.approx(0.8, abs=1 / 1024)
    assert history[-1]["dropout"]["3"] == pytest.approx(0.5 * (0.2**0.5), abs=1e-3)
    tag, config, callbacks, _ = _RecordingTrainer.calls[0]
    assert tag == "round1_all" and config.lr == pytest.approx(0.01) and callbacks == ["MaskCallback"]
    assert "accuracy_pruned" in history[0] and "accuracy" in history[0]


def test_iterative_prune_growing_quality_l1_and_freezing() -> None:
    """Quality grows per round (non-decreasing sparsity); fc phase freezes conv; L1 drops weight decay."""
    _RecordingTrainer.calls.clear()
    model = _cnn()
    cfg = IterativePruningConfig(
        rounds=2, quality=0.5, quality_step=0.5, reg="l1", phases=("fc", "conv"), freeze=True
    )
    history = iterative_prune(model, cfg, _RecordingTrainer, TrainConfig(lr=0.1, weight_decay=1e-4))
    assert [(h["round"], h["phase"]) for h in history] == [(1, "fc"), (1, "conv"), (2, "fc"), (2, "conv")]
    assert history[0]["sparsity"]["0"] == 0.0 and history[0]["sparsity"]["4"] > 0.0
    assert history[2]["sparsity"]["4"] >= history[0]["sparsity"]["4"]
    _, config, callbacks, grads = _RecordingTrainer.calls[0]
    assert callbacks == ["L1Regularization", "MaskCallback"] and config.weight_decay == 0.0
    n_conv = len(list(model[0].parameters()))
    assert grads[:n_conv] == [False] * n_conv and all(grads[n_conv:])
    assert all(p.requires_grad for p in model.parameters())  # restored after each phase


def test_config_validation_and_retrain_config() -> None:
    """Exactly one of quality/target_sparsity; retrain config scales lr and keeps weight decay for L2."""
    with pytest.raises(PruningError, match="exactly one"):
        IterativePruningConfig(quality=1.0, target_sparsity=0.5)
    rc = retrain_config(TrainConfig(lr=0.2, weight_decay=5e-4), IterativePruningConfig(quality=1.0))
    assert rc.lr == pytest.approx(0.02) and rc.weight_decay == 5e-4 and rc.epochs == 1


def test_retraining_keeps_a_constant_lower_rate_over_all_its_epochs() -> None:
    """Han et al. retrain at a lower, fixed rate: 3 retraining epochs all train at lr/10 (the baseline's
    step schedule used to squeeze them into lr/10 -> lr/100 -> lr/1000); cosine starts from lr/10."""
    from netslim.train import Trainer

    base = TrainConfig(lr=0.1, schedule="step", epochs=10, progress=False)
    rc = retrain_config(base, IterativePruningConfig(target_sparsity=0.5, retrain_epochs=3))
    assert rc.schedule == "constant" and rc.epochs == 3
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(4, 1, 6, 6, generator=g), torch.randint(0, 3, (4,), generator=g))]
    history = Trainer(_cnn(), data, None, rc, device="cpu").fit()
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.01, 0.01])
    cosine = retrain_config(
        base, IterativePruningConfig(target_sparsity=0.5, retrain_epochs=3, retrain_schedule="cosine")
    )
    lrs = [h["lr"] for h in Trainer(_cnn(), data, None, cosine, device="cpu").fit()]
    assert lrs[0] == pytest.approx(0.01) and lrs[0] > lrs[1] > lrs[2] > 0.001


def test_target_sparsity_outside_0_1_is_refused() -> None:
    """A target of 1.5 (or 1.0: nothing left) fails when the config is built, before any work."""
    for bad in (1.5, 1.0, -0.1):
        with pytest.raises(PruningError, match="target_sparsity"):
            IterativePruningConfig(target_sparsity=bad)


def test_l1_callback_adds_sign_to_weight_grads() -> None:
    """L1Regularization adds strength * sign(w) to conv/linear weight grads, not to biases."""
    lin = nn.Sequential(nn.Linear(2, 1))
    with torch.no_grad():
        lin[0].weight.copy_(torch.tensor([[2.0, -3.0]]))
    lin[0].weight.grad = torch.zeros(1, 2)
    lin[0].bias.grad = torch.zeros(1)

    class T:
        model = lin

    L1Regularization(0.1).after_backward(T())
    assert lin[0].weight.grad.tolist() == [[pytest.approx(0.1), pytest.approx(-0.1)]]
    assert lin[0].bias.grad.tolist() == [0.0]
    MaskCallback().after_step(T())  # no masks: a no-op, must not fail
