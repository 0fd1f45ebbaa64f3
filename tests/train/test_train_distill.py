"""Distillation fine-tuning: the loss against a hand computation, and a Trainer run with it that resumes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.train import Callback, Distillation, TrainConfig, Trainer, distillation_loss


def _batches(n_batches: int = 4, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(16, 3, generator=gen)
    out = []
    for _ in range(n_batches):
        x = torch.randn(8, 1, 4, 4, generator=gen)
        out.append((x, (x.flatten(1) @ w).argmax(1)))
    return out


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )


def test_distillation_loss_matches_a_hand_computation() -> None:
    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    teacher = torch.tensor([[1.0, 3.0, 0.0], [0.0, -2.0, 4.0]])
    y = torch.tensor([0, 2])
    T, alpha = 3.0, 0.7

    def softmax(v: list[float]) -> list[float]:
        e = [math.exp(a) for a in v]
        return [a / sum(e) for a in e]

    expected = []
    for s, t, label in zip(student.tolist(), teacher.tolist(), y.tolist()):
        ce = -math.log(softmax(s)[label])
        p_t, p_s = softmax([a / T for a in t]), softmax([a / T for a in s])
        kl = sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
        expected.append((1 - alpha) * ce + alpha * T * T * kl)
    got = distillation_loss(student, teacher, y, temperature=T, alpha=alpha)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(expected, rel=1e-5)
    # alpha 0 is plain cross-entropy; a student equal to its teacher pays only the hard term
    ce = nn.functional.cross_entropy(student, y, reduction="none")
    assert distillation_loss(student, teacher, y, temperature=T, alpha=0.0).tolist() == pytest.approx(
        ce.tolist()
    )
    same = distillation_loss(student, student, y, temperature=T, alpha=alpha)
    assert same.tolist() == pytest.approx((0.3 * ce).tolist(), rel=1e-5)


def test_distillation_loss_runs_a_frozen_teacher_in_eval_mode() -> None:
    teacher, student = _net(1), _net(2)
    teacher.train()
    distill = Distillation(teacher, temperature=2.0, alpha=0.5)
    x, y = _batches(1)[0]
    loss = distill.training_loss(None, student(x), y, x).mean()
    loss.backward()
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    stats = teacher[1].running_mean.clone()
    distill.training_loss(None, student(x), y, x)
    assert torch.equal(teacher[1].running_mean, stats), "the teacher's BN statistics must not move"


@pytest.mark.parametrize(
    "kw", [{"temperature": 0.0}, {"temperature": float("nan")}, {"alpha": 1.5}, {"alpha": float("inf")}]
)
def test_distillation_settings_are_checked(kw) -> None:
    with pytest.raises(NetslimError):
        Distillation(_net(0), **kw)


class StopAt(Callback):
    """Interrupts the run at the start of epoch ``epoch`` (0-based), as a killed process would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def test_trainer_fine_tunes_with_distillation_and_resumes(tmp_path) -> None:
    data = _batches()
    teacher = _net(1)
    config = TrainConfig(epochs=3, lr=0.05, progress=False, deterministic=True, seed=0)

    straight = _net(2)
    history = Trainer(
        straight,
        data,
        data[:1],
        config,
        callbacks=[Distillation(teacher, 4.0, 0.9), StopAt(99)],
        run_dir=tmp_path / "a",
    ).fit()
    assert len(history) == 3 and all(math.isfinite(h["train_loss"]) for h in history)
    assert "Distillation" in json.loads((tmp_path / "a" / "config.json").read_text())["callbacks"]

    # interrupted after epoch 1, resumed by a new trainer: the same weights as the straight run
    with pytest.raises(KeyboardInterrupt):
        Trainer(
            _net(2),
            data,
            data[:1],
            config,
            callbacks=[Distillation(teacher, 4.0, 0.9), StopAt(1)],
            run_dir=tmp_path / "b",
        ).fit()
    resumed = _net(2)
    Trainer(
        resumed,
        data,
        data[:1],
        config,
        callbacks=[Distillation(teacher, 4.0, 0.9), StopAt(99)],
        run_dir=tmp_path / "b",
    ).fit(resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)

    # other distillation settings are refused on resume
    with pytest.raises(NetslimError, match="same distillation settings"):
        Trainer(
            _net(2),
            data,
            data[:1],
            config,
            callbacks=[Distillation(teacher, 2.0, 0.9), StopAt(99)],
            run_dir=tmp_path / "b",
        ).fit(resume=True)

    # the loss changes training: plain cross-entropy from the same start ends elsewhere
    plain = _net(2)
    Trainer(plain, data, data[:1], config).fit()
    assert not torch.allclose(plain[-1].weight, straight[-1].weight)


def test_teacher_runs_under_the_same_autocast_as_the_student() -> None:
    """With AMP (bf16 on CPU) the teacher's forward pass is inside the trainer's autocast region."""
    dtypes = []

    class Recorder(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
            return x.flatten(1)[:, :3]

    config = TrainConfig(epochs=1, lr=0.05, progress=False, amp=True)
    history = Trainer(
        _net(2), _batches(2), None, config, callbacks=[Distillation(Recorder())], device="cpu"
    ).fit()
    assert dtypes == [torch.bfloat16, torch.bfloat16] and math.isfinite(history[0]["train_loss"])
