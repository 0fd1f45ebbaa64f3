"""Training cannot silently go wrong: non-finite losses stop the run, bad hyper-parameters are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.errors import NetslimError, TrainingDivergedError
from netslim.train import Callback, TrainConfig, Trainer


def _batches(n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [
        (torch.randn(8, 1, 4, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for _ in range(n)
    ]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )


class PoisonAt(Callback):
    """Writes NaN into the last layer's weights at the start of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            with torch.no_grad():
                trainer.model[-1].weight.fill_(float("nan"))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    model = _net()
    config = TrainConfig(epochs=3, lr=0.05, progress=False)
    trainer = Trainer(model, _batches(), None, config, callbacks=[PoisonAt(1)], run_dir=tmp_path)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit()
    message = str(info.value)
    assert (
        "epoch 2" in message and "learning rate (0.05, now 0.005)" in message and "checkpoint.pt" in message
    )
    assert "\n" not in message
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1, "the checkpoint of the last good epoch stays"
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_divergence_message_names_the_l1_strength_and_amp() -> None:
    class Penalty(Callback):
        current_s = 3e-3

    model = _net()
    config = TrainConfig(epochs=1, lr=0.05, progress=False, amp=True)
    with pytest.raises(TrainingDivergedError) as info:
        Trainer(model, _batches(), None, config, callbacks=[PoisonAt(0), Penalty()], device="cpu").fit()
    message = str(info.value)
    assert "L1 strength (0.003)" in message and "--amp" in message and "no checkpoint was written" in message


def test_nan_weights_from_a_callback_are_never_checkpointed(tmp_path) -> None:
    class PoisonBuffer(Callback):
        def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
            trainer.model[1].running_var.fill_(float("inf"))

    with pytest.raises(TrainingDivergedError, match="running_var"):
        Trainer(
            _net(),
            _batches(),
            None,
            TrainConfig(epochs=1, progress=False),
            callbacks=[PoisonBuffer()],
            run_dir=tmp_path,
        ).fit()
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "grad_clip"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_train_config_refuses_non_finite_values(field, value) -> None:
    with pytest.raises(NetslimError, match=field):
        TrainConfig(**{field: value})


def test_cli_diverging_run_exits_2_without_a_model(tmp_path, capsys) -> None:
    data = write_tiny_mnist(tmp_path / "data", n_train=128, n_test=16)
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            "lenet300_100",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data),
            "--lr",
            "1e12",
            "--epochs",
            "2",
            "--val-size",
            "32",
            "--batch-size",
            "32",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "diverged" in err and len(err.splitlines()) == 1
    assert not (run / "model.pt").exists()
