"""The Trainer: hook order, unscaled gradients, metrics files, checkpoints and exact resume."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

import netslim.io
from netslim.errors import NetslimError
from netslim.train import Callback, TrainConfig, Trainer, evaluate


class TensorLoader:
    """In-memory loader with the netslim.data contract: len(), set_epoch(), rows [rank::world] per batch."""

    def __init__(self, x, y, batch_size=32, shuffle=True, seed=0, rank=0, world_size=1):
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.x), generator=gen) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size][self.rank :: self.world_size]
            yield self.x[rows], self.y[rows]


def make_data(n=192, seed=0):
    """Images whose label is a fixed linear function of the pixels, so the task is learnable."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=gen)
    teacher = torch.randn(36, 3, generator=gen)
    y = (x.flatten(1) @ teacher).argmax(1)
    return x, y


def make_model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(144, 3),
    )


def cfg(**kw):
    base = dict(epochs=2, lr=0.05, progress=False, deterministic=True, seed=0)
    return TrainConfig(**{**base, **kw})


class Recorder(Callback):
    """Logs every hook call; counts steps as its (checkpointed) state; adds a metric at epoch end."""

    def __init__(self, events=None):
        self.events = events if events is not None else []
        self.steps = 0

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer):
        self.events.append(f"epoch_start:{trainer.epoch}")

    def after_backward(self, trainer):
        self.events.append("after_backward")

    def after_step(self, trainer):
        self.steps += 1
        self.events.append("after_step")

    def on_epoch_end(self, trainer, metrics):
        metrics["recorder_steps"] = self.steps
        self.events.append("epoch_end")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_fit_learns_and_writes_run_files(tmp_path):
    """Metrics per epoch in history, metrics.csv/jsonl and config.json; loss goes down."""
    x, y = make_data()
    trainer = Trainer(
        make_model(),
        TensorLoader(x, y),
        TensorLoader(x[:64], y[:64], shuffle=False),
        cfg(epochs=3, schedule="constant"),
        run_dir=tmp_path,
    )
    history = trainer.fit()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) >= {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert trainer.global_step == 3 * 6 and trainer.epoch == 3
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:4] == ["epoch", "lr", "train_loss", "train_acc"] and len(csv_lines) == 4
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["model"]["parameters"] > 0
    assert (tmp_path / "checkpoint.pt").is_file()


def test_hooks_run_in_order_and_may_add_metrics(tmp_path):
    x, y = make_data(64)
    rec = Recorder()
    history = Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=2, max_batches=2), [rec]).fit()
    step = ["after_backward", "after_step"]
    assert rec.events == [
        "fit_start",
        "epoch_start:0",
        *step,
        *step,
        "epoch_end",
        "epoch_start:1",
        *step,
        *step,
        "epoch_end",
        "fit_end",
    ]
    assert [h["recorder_steps"] for h in history] == [2, 4]
    assert "val_loss" not in history[0]


def test_gradient_edit_in_after_backward_changes_the_step():
    """What after_backward writes into .grad is what the optimizer applies."""
    x, y = make_data(32)
    model = make_model()
    before = model[5].weight.detach().clone()

    class SetGrad(Callback):
        def after_backward(self, trainer):
            for p in trainer.model.parameters():
                p.grad = torch.zeros_like(p)
            trainer.model[5].weight.grad.fill_(1.0)

    config = cfg(epochs=1, optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=0.1)
    Trainer(model, TensorLoader(x, y), None, config, [SetGrad()]).fit()
    assert torch.equal(model[5].weight.detach(), before - 0.1)


class FakeScaler:
    """A GradScaler stand-in that scales by 1024 and logs its calls into a shared event list."""

    def __init__(self, events):
        self.events, self.factor = events, 1024.0

    def scale(self, loss):
        self.events.append("scale")
        return loss * self.factor

    def unscale_(self, optimizer):
        self.events.append("unscale")
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad.div_(self.factor)

    def step(self, optimizer):
        self.events.append("scaler_step")
        optimizer.step()

    def update(self):
        self.events.append("update")

    def state_dict(self):
        return {"scale": self.factor}


def test_after_backward_sees_unscaled_gradients():
    """With a loss scaler, grads are unscaled before after_backward runs, then the scaler steps."""
    x, y = make_data(32)
    seen = {}

    class Grab(Callback):
        def __init__(self, key, events=None):
            self.key, self.events = key, events

        def after_backward(self, trainer):
            if self.events is not None:
                self.events.append("after_backward")
            seen[self.key] = trainer.model[5].weight.grad.clone()

    events: list[str] = []
    scaled = Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=1), [Grab("scaled", events)])
    scaled.scaler = FakeScaler(events)
    scaled.fit()
    Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=1), [Grab("plain")]).fit()
    assert events == ["scale", "unscale", "after_backward", "scaler_step", "update"]
    assert torch.equal(seen["scaled"], seen["plain"])


def test_cpu_bf16_autocast_trains_without_scaler():
    x, y = make_data(64)
    trainer = Trainer(make_model(), TensorLoader(x, y), TensorLoader(x, y), cfg(epochs=1, amp=True))
    history = trainer.fit()
    assert trainer.scaler is None
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_loss"])


def test_checkpoint_loads_with_weights_only_and_holds_every_part(tmp_path):
    x, y = make_data(64)
    Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=2), [Recorder()], run_dir=tmp_path).fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "global_step",
        "history",
        "callbacks",
        "rng",
        "config",
    } <= set(state)
    assert state["epoch"] == 2 and state["global_step"] == 4
    assert state["callbacks"] == [{"name": "Recorder", "state": {"steps": 4}}]
    assert state["scheduler"]["last_epoch"] == 2
    assert len(json.loads(state["history"])) == 2
    assert {"torch", "numpy", "python"} <= set(state["rng"])
    assert set(state["model"]) == set(make_model().state_dict())


def test_rng_state_round_trip(tmp_path):
    """Python, NumPy and torch RNG states survive a weights_only save/load."""
    from netslim.train.state import get_rng_state, set_rng_state

    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    torch.save(get_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == expected


def test_failed_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    x, y = make_data(32)
    trainer = Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=1), run_dir=tmp_path)
    trainer.fit()
    good = (tmp_path / "checkpoint.pt").read_bytes()

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(netslim.io.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


class Crash(Callback):
    """Simulates a killed run: raises when the given epoch starts."""

    def __init__(self, at_epoch=None):
        self.at_epoch = at_epoch

    def on_epoch_start(self, trainer):
        if trainer.epoch == self.at_epoch:
            raise KeyboardInterrupt


def _run(tmp_path, crash_at=None, resume=False):
    x, y = make_data(160)
    rec = Recorder()
    trainer = Trainer(
        make_model(dropout=0.2),
        TensorLoader(x, y, batch_size=32),
        TensorLoader(x[:64], y[:64], shuffle=False),
        cfg(epochs=3, milestones=(0.5,), lr=0.1, weight_decay=1e-3),
        [rec, Crash(crash_at)],
        run_dir=tmp_path,
    )
    return trainer, trainer.fit(resume=resume), rec


def test_resume_matches_an_uninterrupted_run_exactly(tmp_path):
    """2 epochs + crash + resume for the 3rd gives bit-identical weights, optimizer state and history."""
    full, full_hist, full_rec = _run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", crash_at=2)
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2
    resumed, res_hist, res_rec = _run(tmp_path / "cut", resume=True)
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    momentum = [s["momentum_buffer"] for s in full.optimizer.state_dict()["state"].values()]
    assert all(
        torch.equal(a, s["momentum_buffer"])
        for a, s in zip(momentum, resumed.optimizer.state_dict()["state"].values())
    )
    drop_time = [{k: v for k, v in h.items() if k != "time"} for h in res_hist]
    assert drop_time == [{k: v for k, v in h.items() if k != "time"} for h in full_hist]
    assert res_rec.steps == full_rec.steps == resumed.global_step
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_errors_say_what_to_do(tmp_path):
    x, y = make_data(32)
    with pytest.raises(NetslimError, match="without --resume"):
        Trainer(make_model(), TensorLoader(x, y), None, cfg(), run_dir=tmp_path).fit(resume=True)
    with pytest.raises(NetslimError, match="run_dir"):
        Trainer(make_model(), TensorLoader(x, y), None, cfg()).fit(resume=True)
    Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=1), run_dir=tmp_path).fit()
    other = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    with pytest.raises(NetslimError, match="same model options"):
        Trainer(other, TensorLoader(x, y), None, cfg(epochs=2), run_dir=tmp_path).fit(resume=True)
    with pytest.raises(NetslimError, match="callbacks"):
        Trainer(make_model(), TensorLoader(x, y), None, cfg(epochs=2), [Recorder()], run_dir=tmp_path).fit(
            resume=True
        )


def test_evaluate_counts_loss_and_accuracy():
    """A model that always predicts class 0 scores the share of class-0 labels, with loss log(3)."""

    class Constant(nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 3)  # ties: argmax picks class 0

    y = torch.tensor([0, 0, 1, 2, 0])
    result = evaluate(Constant(), TensorLoader(torch.zeros(5, 1), y, batch_size=2, shuffle=False))
    assert result["n"] == 5 and result["accuracy"] == pytest.approx(0.6)
    assert result["loss"] == pytest.approx(math.log(3))
    with pytest.raises(NetslimError, match="no samples"):
        evaluate(Constant(), TensorLoader(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_uses_a_grad_scaler_and_resumes(tmp_path):
    """On CUDA, amp means fp16 autocast with a GradScaler whose state goes into the checkpoint."""
    x, y = make_data(64)
    config = cfg(epochs=2, amp=True, deterministic=False)
    trainer = Trainer(
        make_model(), TensorLoader(x, y), TensorLoader(x, y), config, run_dir=tmp_path, device="cuda"
    )
    history = trainer.fit()
    assert isinstance(trainer.scaler, torch.amp.GradScaler)
    assert all(math.isfinite(h["train_loss"]) for h in history)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and "cuda" in state["rng"]
