"""The Network Slimming pipeline (netslim.pipelines.slimming): distilled fine-tuning in every pass, the old
names, divergence stopping the run before anything broken is saved, and the auto L1 strength's plumbing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.data import get_loaders
from netslim.errors import NetslimError, TrainingDivergedError
from netslim.pipelines.slimming import SlimmingConfig, run_slimming
from netslim.train import TrainConfig


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("data"), n_train=192, n_test=32)


def _config(run_dir: Path, **kw) -> SlimmingConfig:
    quick = TrainConfig(epochs=1, lr=0.05, max_batches=2, progress=False)
    base = dict(
        model="vgg11",
        model_kwargs={"width": 0.125},
        dataset="mnist",
        train=quick,
        finetune=TrainConfig(epochs=1, lr=0.01, schedule="cosine", max_batches=2, progress=False),
        ratio=0.3,
        run_dir=str(run_dir),
        device="cpu",
        latency=False,
        plots=False,
        compare_plain_cut=False,
    )
    return SlimmingConfig(**{**base, **kw})


def _bundle(data_dir: Path):
    return get_loaders("mnist", data_dir=data_dir, batch_size=32, val_size=32)


def test_distillation_is_used_in_every_pass(data_dir, tmp_path) -> None:
    config = _config(tmp_path / "run", passes=2, distill=True, distill_temperature=2.0, distill_alpha=0.5)
    results = run_slimming(config, data=_bundle(data_dir), verbose=False)
    assert results["distill"] == {"temperature": 2.0, "alpha": 0.5, "teacher": "the net before the cut"}
    for name in ("finetune-pass1", "finetune-pass2"):
        callbacks = json.loads((tmp_path / "run" / name / "config.json").read_text())["callbacks"]
        assert callbacks == ["Distillation"], name
        state = torch.load(tmp_path / "run" / name / "checkpoint.pt", weights_only=True)["callbacks"][0]
        assert state["state"] == {"temperature": 2.0, "alpha": 0.5}
    sparse = json.loads((tmp_path / "run" / "sparsity-pass1" / "config.json").read_text())["callbacks"]
    assert "Distillation" not in sparse, "sparsity training keeps the plain loss"
    assert [p["pass"] for p in results["passes"]] == [1, 2]
    assert results["after"]["params"] < results["before"]["params"]


def test_old_sparsity_name_still_works(tmp_path) -> None:
    config = SlimmingConfig(sparsity=3e-4, run_dir=str(tmp_path))
    assert config.l1_strength == 3e-4 and "sparsity" not in config.to_dict()


@pytest.mark.parametrize(
    "kw",
    [
        {"l1_strength": float("nan")},
        {"l1_strength": "strong"},
        {"l1_strength": "auto", "l1_target": 0.0},
        {"l1_strength": 1e-4, "l1_target": 0.5},
        {"l1_strength": "auto", "l1_ramp": 1.5},
        {"l1_strength": 1e-4, "l1_ramp": 0.3},
        {"distill_alpha": -0.1},
        {"distill_teacher": 3},
        {"distill_teacher": ""},
        {"bn_recalibration": -1},
        {"bn_recalibration": 2.5},
    ],
)
def test_bad_settings_are_refused(kw, tmp_path) -> None:
    with pytest.raises(NetslimError):
        _config(tmp_path, **kw)


def test_a_diverging_sparsity_run_saves_no_model(data_dir, tmp_path) -> None:
    run = tmp_path / "run"
    config = _config(run, train=TrainConfig(epochs=1, lr=1e12, max_batches=3, progress=False))
    with pytest.raises(TrainingDivergedError, match="L1 strength"):
        run_slimming(config, data=_bundle(data_dir), verbose=False)
    assert not any(run.glob("*.pt")), "no model full of NaN is written"
    assert not (run / "results.json").exists()


def test_cli_slim_diverging_exits_2_with_one_line(data_dir, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code = main(
        [
            "slim",
            "--model",
            "vgg11",
            "--width",
            "0.125",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data_dir),
            "--val-size",
            "32",
            "--batch-size",
            "32",
            "--no-progress",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--lr",
            "1e12",
            "--max-batches",
            "3",
            "--run-dir",
            str(run),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "diverged" in err
    assert not (run / "sparse.pt").exists() and not (run / "finetuned.pt").exists()


def test_auto_l1_strength_reaches_the_penalty(data_dir, tmp_path, monkeypatch) -> None:
    """``l1_strength="auto"`` builds BNSparsity(model, "auto", target=..., ramp=...) with the target
    defaulting to the ratio (the controller itself is tested with BNSparsity)."""
    from netslim.slimming import sparsity

    seen = []
    original = sparsity.BNSparsity.__init__

    @functools.wraps(original)
    def spy(self, model, s=1e-4, **kw):
        seen.append((s, kw.get("target"), kw.get("ramp")))
        original(self, model, s, **kw)

    monkeypatch.setattr(sparsity.BNSparsity, "__init__", spy)
    results = run_slimming(
        _config(tmp_path / "run", l1_strength="auto", l1_ramp=0.25), data=_bundle(data_dir), verbose=False
    )
    assert seen == [("auto", 0.3, 0.25)]
    assert results["l1_strength"] == "auto"
    trained = results["passes"][0]["sparsity_training"]
    assert isinstance(trained["l1_strength"], float)
    assert trained["sparsity_mode"] == "proximal"  # the default with auto; the paper's with a fixed one


def test_engine_warnings_are_one_line_and_recorded(data_dir, tmp_path, monkeypatch, capsys) -> None:
    import warnings

    from netslim.slimming import api

    original = api.plan

    def plan(*args, **kw):
        warnings.warn("netslim: the cut reaches into the bulk", UserWarning, stacklevel=2)
        return original(*args, **kw)

    monkeypatch.setattr(api, "plan", plan)
    results = run_slimming(_config(tmp_path / "run"), data=_bundle(data_dir), verbose=True)
    assert "netslim: the cut reaches into the bulk" in results["warnings"]  # (with the engine's own ones)
    assert results["passes"][0]["warnings"] == results["warnings"]
    assert "warning: netslim: the cut reaches into the bulk\n" in capsys.readouterr().out
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["warnings"] == results["warnings"]


def test_unstable_sparsity_training_is_said_once_and_recorded(
    data_dir, tmp_path, monkeypatch, capsys
) -> None:
    """A collapse during auto sparsity training reaches the run's output and results.json as one line."""
    from netslim.slimming.strength import StrengthController

    monkeypatch.setattr(StrengthController, "spiking", lambda self: self.loss_ema is not None)
    results = run_slimming(
        _config(tmp_path / "run", l1_strength="auto"), data=_bundle(data_dir), verbose=True
    )
    said = [line for line in capsys.readouterr().out.splitlines() if "destabilised" in line]
    assert len(said) == 1 and said[0].startswith("warning: sparsity training destabilised")
    assert [w for w in results["warnings"] if "destabilised" in w] == [said[0].removeprefix("warning: ")]
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["warnings"] == results["warnings"]


def test_rollbacks_are_said_and_counted(data_dir, tmp_path, monkeypatch, capsys) -> None:
    """A run that keeps collapsing goes back twice (one line each), then says it could not recover."""
    from netslim.slimming.strength import StrengthController

    monkeypatch.setattr(StrengthController, "healthy", lambda self: True)
    monkeypatch.setattr(StrengthController, "spiking", lambda self: self.last_progress >= 0.5)
    train = TrainConfig(epochs=3, lr=0.05, max_batches=2, progress=False)
    results = run_slimming(
        _config(tmp_path / "run", l1_strength="auto", train=train), data=_bundle(data_dir), verbose=True
    )
    said = [line for line in capsys.readouterr().out.splitlines() if "destabilised" in line]
    assert len(said) == 3, said
    assert all("went back to the end of sparsity epoch" in line for line in said[:2])
    assert "(after 2 rollbacks)" in said[2] and "worse than usual" in said[2]
    assert results["passes"][0]["sparsity_training"]["sparsity_rollbacks"] == 2
    kept = [w for w in results["warnings"] if "destabilised" in w]
    assert kept == [line.removeprefix("warning: ") for line in said]


def test_a_rerun_reproduces_the_run(data_dir, tmp_path) -> None:
    """The same config twice gives the same models and figures (the zoo model is built from the seed)."""
    import netslim

    runs = [
        run_slimming(_config(tmp_path / name), data=_bundle(data_dir), verbose=False) for name in ("a", "b")
    ]
    assert runs[0]["after"]["test_acc"] == runs[1]["after"]["test_acc"]
    assert runs[0]["before"]["test_acc"] == runs[1]["before"]["test_acc"]
    models = [netslim.load(tmp_path / name / runs[0]["files"]["finetuned"]) for name in ("a", "b")]
    for (key, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_bn_statistics_are_recomputed_before_the_sparse_net_is_saved_and_cut(
    data_dir, tmp_path, capsys
) -> None:
    """After sparsity training the BN statistics are those of the final weights: sparse.pt holds them, the
    run says so with the validation accuracy before and after; bn_recalibration=0 leaves them as trained."""
    import netslim
    from netslim.train import recalibrate_batchnorm

    bundle = _bundle(data_dir)
    on = run_slimming(_config(tmp_path / "on", bn_recalibration=3), data=bundle)
    record = on["passes"][0]["sparsity_training"]["bn_recalibration"]
    assert record["batches"] == 3
    assert record["val_acc_after"] == on["before"]["val_acc"]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("BN statistics recomputed"))
    assert "over 3 training batches" in line and f"{100 * record['val_acc_before']:.2f}%" in line

    off = run_slimming(_config(tmp_path / "off", bn_recalibration=0), data=bundle, verbose=False)
    assert off["passes"][0]["sparsity_training"]["bn_recalibration"] is None
    as_trained = netslim.load(tmp_path / "off" / "sparse.pt")
    saved = netslim.load(tmp_path / "on" / "sparse.pt")
    recalibrate_batchnorm(as_trained, bundle.train, 3)  # the same training run, then the same 3 batches
    for (key, a), b in zip(saved.state_dict().items(), as_trained.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=key)
    assert not torch.equal(
        saved.features[1].running_mean, netslim.load(tmp_path / "off" / "sparse.pt").features[1].running_mean
    )


def test_finetuning_without_augmentation(data_dir, tmp_path, monkeypatch, capsys) -> None:
    """finetune_augment=False: sparsity training keeps the loader's augmentation, fine-tuning sees the same
    images without it; a loader that cannot turn it off is refused before anything is trained or written."""
    import dataclasses

    import netslim.train

    seen: list[tuple[str, object]] = []

    class Recording(netslim.train.Trainer):
        def __init__(self, model, train_loader, *args, **kwargs) -> None:
            seen.append((str(kwargs.get("run_dir")), getattr(train_loader, "augment", "?")))
            super().__init__(model, train_loader, *args, **kwargs)

    monkeypatch.setattr(netslim.train, "Trainer", Recording)
    bundle = _bundle(data_dir)
    assert bundle.train.augment is not None
    run_slimming(_config(tmp_path / "run", finetune_augment=False), data=bundle)
    assert [(name.rsplit("/", 1)[-1], aug is None) for name, aug in seen] == [
        ("sparsity", False),
        ("finetune", True),
    ]
    assert bundle.train.augment is not None, "the caller's loader is left as it was"
    assert "fine-tuning, 1 epochs, lr 0.01, without augmentation" in capsys.readouterr().out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["finetune_augment"] is False

    listed = dataclasses.replace(bundle, train=list(bundle.train))
    with pytest.raises(NetslimError, match="augment=False instead"):
        run_slimming(_config(tmp_path / "other", finetune_augment=False), data=listed, verbose=False)
    assert not (tmp_path / "other").exists()
