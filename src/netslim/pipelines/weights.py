"""Han et al. 2015 weight pruning and Deep Compression storage, top to bottom, as one config and one run.

The recipe (Han, Pool, Tran, Dally, "Learning both Weights and Connections", NIPS 2015, Fig. 2):

1. train the dense network normally (it "learns which connections are important"), or load a trained one;
2. optionally, measure each layer's pruning sensitivity (§5, Fig. 6) and derive per-layer amounts from it;
3. repeat ``rounds`` times: prune the small-magnitude connections of every layer (|w| < quality x std of
   the layer, or a per-layer amount), then retrain the survivors with the masks held, at a lower, fixed
   learning rate, with the FC dropout lowered by Eq. 2;
4. report per layer the weights kept and the FLOPs kept (zero weights AND zero input activations, measured
   on test images, as the paper's tables), and the storage sizes of Deep Compression (pruning, +
   quantization, + Huffman coding).

Everything lands in one run folder (:class:`netslim.pipelines.layout.RunLayout`): ``train/`` (the baseline
trainer), ``baseline.pt``, ``round<r>_<phase>/`` (retraining), ``round-<r>.pt`` (the masked model after the
last finished round: what ``resume`` continues from), ``pruned.pt`` (masked; ``netslim.load`` keeps its
masks), ``results.json``, and with sensitivity ``sensitivity.csv``/``.png`` and ``layer_settings.json``.
``netslim prune-weights`` and ``netslim sensitivity`` translate their options into
:class:`WeightPruningConfig`; the benchmark rows call :func:`run_weight_pruning` too.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.pipelines.layout import CHECKPOINT, RunLayout
from netslim.train.config import TrainConfig

Log = Callable[[str], None]

# Training defaults per zoo model, where the generic ones do not fit (issue 9): the LeNets train with
# Caffe's LeNet rate (Han et al. trained them in Caffe) and without pad-crop-flip augmentation, which costs
# LeNet-300-100 2.7 points on Fashion-MNIST; fully connected nets never need spatial augmentation.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "lenet300_100": {"lr": 0.01, "augment": False},
    "lenet5": {"lr": 0.01, "augment": False},
    "alexnet_small": {"lr": 0.01, "augment": True},
    "vgg16_fc": {"lr": 0.01, "augment": True},
}
DEFAULT_LR = 0.05
LR_HELP = "initial learning rate (default: {}; else {})".format(
    ", ".join(f"{d['lr']} for {name}" for name, d in MODEL_DEFAULTS.items()), DEFAULT_LR
)
DEFAULT_TARGET_SPARSITY = 0.8  # models without a published per-layer table: 5x, no loss in Han's Fig. 5


# the sweep's options, as both ``prune-weights --sensitivity`` and ``sensitivity`` offer them
SENSITIVITY_OPTIONS: tuple[tuple[str, type, float, str], ...] = (
    ("--step", float, 0.05, "sparsity step of the sweep"),
    ("--max-sparsity", float, 0.95, "last sparsity swept"),
    ("--max-drop", float, 0.01, "tolerated accuracy drop (fraction, 0.01 = 1 point) for per-layer settings"),
)


def checkpoint_zoo_name(path: str | Path) -> str | None:
    """The zoo model name recorded in a netslim checkpoint (None for a model of your own or no file)."""
    from netslim.io import read_checkpoint

    if not Path(path).is_file():
        return None  # reported where the checkpoint is loaded
    return (read_checkpoint(path).recipe or {}).get("name")


def default_lr(model: str | None) -> float:
    """The default initial learning rate for zoo model ``model`` (see :data:`MODEL_DEFAULTS`)."""
    return float(MODEL_DEFAULTS.get(model or "", {}).get("lr", DEFAULT_LR))


def default_augment(model: str | None) -> bool:
    """Whether zoo model ``model`` trains with pad-crop-flip augmentation by default."""
    return bool(MODEL_DEFAULTS.get(model or "", {}).get("augment", True))


@dataclass
class WeightPruningConfig:
    """Everything a Han et al. run needs, grouped in the paper's order.

    The model is a zoo ``model`` (trained first, by ``train``), a trained netslim ``checkpoint``, or the
    ``model`` instance given to :func:`run_weight_pruning` (untrained; the pipeline trains it). The
    pruning criterion is, in order of precedence per layer: ``layer_settings`` (by name or glob: ``{"fc3":
    {"quality": 0.5}, "conv1": null}``), the sensitivity sweep's amounts (``sensitivity=True``), the
    ``preset`` (``"han"``: the paper's per-layer amounts, 12x on the LeNets), and the default rule
    (``quality`` or ``target_sparsity``). With none of them given the preset is used where the paper has a
    table for the model, else ``target_sparsity=0.8``. ``max_batches`` caps every loader, training and
    evaluation alike (smoke runs).
    """

    # what to prune, on what data
    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    val_size: int = 5000
    limit_train: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 256
    augment: bool | None = None  # None: the model's default (default_augment)
    max_batches: int | None = None
    device: str | None = None
    # 1. the dense baseline (None: 5 epochs at the model's default rate)
    train: TrainConfig | None = None
    # 2. sensitivity analysis
    sensitivity: bool = False
    sensitivity_step: float = 0.05
    sensitivity_max: float = 0.95
    max_drop: float = 0.01
    # 3. prune / retrain rounds
    rounds: int = 3
    preset: str | None = None
    quality: float | None = None
    quality_step: float = 0.0
    target_sparsity: float | None = None
    layer_settings: dict[str, Any] = field(default_factory=dict)
    std_mode: Literal["fixed", "recompute"] = "fixed"
    protect_first: bool = False
    prune_bias: bool = False
    retrain_epochs: int = 2
    retrain_lr_factor: float = 0.1
    retrain_schedule: Literal["constant", "cosine", "step"] = "constant"
    reg: Literal["l2", "l1", "none"] = "l2"
    l1_strength: float = 1e-5
    adjust_dropout: bool = True
    phases: tuple[str, ...] = ("all",)
    freeze: bool = False
    # 4. Deep Compression sizes
    compress: bool = True
    flops_samples: int = 64  # test images the FLOPs-kept count averages over

    def __post_init__(self) -> None:
        from netslim.weights.presets import PRESETS
        from netslim.weights.sensitivity import sparsity_sweep

        if self.model is not None and self.checkpoint is not None:
            raise NetslimError("give a zoo model name to train, or a checkpoint of a trained model, not both")
        if self.preset is not None and self.preset not in PRESETS:
            raise NetslimError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if not isinstance(self.layer_settings, Mapping):
            raise NetslimError(
                'layer settings are a JSON object by layer name, e.g. {"fc1": {"quality": 1.0}}'
            )
        for name, value in (("max_drop", self.max_drop), ("retrain_lr_factor", self.retrain_lr_factor)):
            if not math.isfinite(value) or value < 0:
                raise NetslimError(f"{name} must be a finite number >= 0, got {value}")
        if self.max_batches is not None and self.max_batches < 1:
            raise NetslimError(f"max_batches must be >= 1, got {self.max_batches}")
        if self.flops_samples < 1:
            raise NetslimError(f"flops_samples must be >= 1, got {self.flops_samples}")
        if self.sensitivity:
            sparsity_sweep(self.sensitivity_step, self.sensitivity_max)  # raises on a bad sweep
        self.phases = tuple(self.phases)
        self.pruning({})  # every option of the rounds is checked now, before any data is read

    def baseline_config(self) -> TrainConfig:
        """The dense baseline's training settings (``train``, or 5 epochs at the model's default rate)."""
        if self.train is not None:
            return self.train
        return TrainConfig(epochs=5, lr=default_lr(self.zoo_name()), max_batches=self.max_batches)

    def uses_augmentation(self) -> bool:
        """``augment``, or the model's default when it is None."""
        return default_augment(self.zoo_name()) if self.augment is None else self.augment

    def zoo_name(self) -> str | None:
        """The zoo name of the model: ``model``, or the recipe stored in ``checkpoint`` (None if neither)."""
        if self.model is not None or self.checkpoint is None:
            return self.model
        return checkpoint_zoo_name(self.checkpoint)

    def pruning(self, overrides: Mapping[str, Any]) -> Any:
        """The :class:`netslim.weights.IterativePruningConfig` of the rounds, with per-layer ``overrides``."""
        from netslim.weights.procedure import IterativePruningConfig

        quality, target = self.quality, self.target_sparsity
        if quality is None and target is None:
            # per-layer amounts (preset, sweep, settings) cover the layers; the rest stay as they are
            target = 0.0 if (self.preset or self.sensitivity or overrides) else DEFAULT_TARGET_SPARSITY
        return IterativePruningConfig(
            rounds=self.rounds,
            quality=quality,
            quality_step=self.quality_step,
            target_sparsity=target,
            overrides=dict(overrides),
            protect_first=self.protect_first,
            prune_bias=self.prune_bias,
            std_mode=self.std_mode,
            retrain_epochs=self.retrain_epochs,
            retrain_lr_factor=self.retrain_lr_factor,
            retrain_schedule=self.retrain_schedule,
            reg=self.reg,
            l1_strength=self.l1_strength,
            adjust_dropout=self.adjust_dropout,
            phases=self.phases,  # type: ignore[arg-type]
            freeze=self.freeze,
        )

    def uses_preset(self, model_name: str | None = None) -> str | None:
        """The preset in effect: ``preset``, or ``"han"`` when no criterion is given and the paper has a
        table for the model (``model_name``, default ``model``)."""
        from netslim.weights.presets import HAN_TABLES

        if self.preset is not None:
            return self.preset
        given = self.quality is not None or self.target_sparsity is not None or self.sensitivity
        if not given and not self.layer_settings and (model_name or self.model) in HAN_TABLES:
            return "han"
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (stored in ``results.json``)."""
        d = asdict(self)
        d["train"] = self.baseline_config().to_dict()
        return d


@dataclass
class WeightPruningResult:
    """What :func:`run_weight_pruning` returns: the pruned (masked) model, the results and the run folder."""

    model: nn.Module
    results: dict[str, Any]
    layout: RunLayout


# ---------------------------------------------------------------------------------------------- helpers
def load_data(config: WeightPruningConfig) -> Any:
    """The :class:`netslim.data.DataBundle` the config describes (every loader capped by ``max_batches``)."""
    from netslim.data import get_loaders

    return get_loaders(
        config.dataset,
        data_dir=config.data_dir,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        val_size=config.val_size,
        seed=config.baseline_config().seed,
        augment=config.uses_augmentation(),
        limit=config.limit_train,
        max_batches=config.max_batches,
    )


def build_model(config: WeightPruningConfig, data: Any) -> nn.Module:
    """The untrained zoo model (seeded), or the model of ``config.checkpoint`` (masks restored)."""
    import netslim
    from netslim.models import create
    from netslim.train.state import seed_everything

    if config.checkpoint is not None:
        return netslim.load(config.checkpoint).train()
    if config.model is None:
        raise NetslimError("give a zoo model name (model=...), a checkpoint, or pass your own model=")
    seed_everything(config.baseline_config().seed)
    return create(
        config.model,  # type: ignore[arg-type]
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.image_size,
        **config.model_kwargs,
    )


def layer_overrides(config: WeightPruningConfig, model: nn.Module) -> dict[str, Any]:
    """Per-layer settings before any sweep: the preset's amounts, then ``layer_settings`` (which win).

    Raises NetslimError naming the model's layers when a setting matches none, before any training.
    """
    from netslim.weights.presets import han_layer_amounts
    from netslim.weights.procedure import round_specs

    name = (getattr(model, "netslim_recipe", None) or {}).get("name") or config.model
    overrides: dict[str, Any] = {}
    if config.uses_preset(name) == "han":
        overrides.update(han_layer_amounts(model, name))
    overrides.update(config.layer_settings)
    round_specs(model, config.pruning(overrides), 0)  # unknown layer names and bad settings raise here
    return overrides


def _accuracy(model: nn.Module, loader: Any) -> float:
    from netslim.train import evaluate

    return float(evaluate(model, loader)["accuracy"])


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def _trainer(
    model: nn.Module,
    data: Any,
    cfg: TrainConfig,
    callbacks: list[Any],
    folder: Path,
    device: str | None,
    resume: bool,
) -> Any:
    """A trainer whose ``fit()`` continues from ``folder``'s checkpoint when resuming and one is there."""
    from netslim.train import Trainer

    trainer = Trainer(model, data.train, data.val, cfg, callbacks=callbacks, run_dir=folder, device=device)

    class _Fit:
        def fit(self) -> list[dict[str, Any]]:
            return trainer.fit(resume=resume and (folder / CHECKPOINT).is_file())

    return _Fit()


# ---------------------------------------------------------------------------------------------- phases
def train_baseline(
    config: WeightPruningConfig,
    layout: RunLayout,
    data: Any,
    model: nn.Module,
    *,
    resume: bool = False,
    log: Log | None = None,
) -> tuple[nn.Module, int]:
    """Step 1: train the dense network (or take the checkpoint's), save it as ``baseline.pt``.

    When resuming, a finished baseline is loaded from ``baseline.pt`` and an unfinished one continues from
    ``train/checkpoint.pt``. Returns the model and the number of epochs it was trained in this run folder.
    """
    import netslim
    from netslim.io import read_checkpoint

    path = layout.model("baseline")
    if resume and path.is_file():
        if log:
            log(f"resume: dense baseline from {path}")
        fresh = None if getattr(model, "netslim_recipe", None) else model  # a user's class: load into it
        epochs = int(read_checkpoint(path).meta.get("extra", {}).get("epochs", 0))
        return netslim.load(path, model=fresh).train(), epochs
    epochs = 0
    if config.checkpoint is None:
        cfg = config.baseline_config()
        history = _trainer(model, data, cfg, [], layout.phase("train"), config.device, resume).fit()
        epochs = len(history)
    netslim.save(model, path, extra={"stage": "baseline", "epochs": epochs})
    return model, epochs


def sweep_sensitivity(
    config: WeightPruningConfig, layout: RunLayout, model: nn.Module, data: Any, *, resume: bool = False
) -> dict[str, Any]:
    """Step 2 (optional): prune each layer alone over the sweep, without retraining (Han et al. Fig. 6).

    Writes ``sensitivity.csv``, ``sensitivity.png`` and ``layer_settings.json``; returns the latter's
    content (``baseline_accuracy``, ``max_drop``, ``layers: {name: {sparsity, quality}}``). A finished
    sweep is reused when resuming.
    """
    from netslim.weights.sensitivity import (
        layer_settings_from_sensitivity,
        plot_sensitivity,
        sensitivity_analysis,
        sparsity_sweep,
        tolerated_sparsity,
        write_sensitivity_csv,
    )

    settings_path = layout.root / "layer_settings.json"
    if resume and settings_path.is_file():
        return json.loads(settings_path.read_text())
    loader = data.val or data.test
    sweep = sparsity_sweep(config.sensitivity_step, config.sensitivity_max)
    result = sensitivity_analysis(model, lambda m: _accuracy(m, loader), sweep)
    write_sensitivity_csv(result, layout.root / "sensitivity.csv")
    plot_sensitivity(result, layout.root / "sensitivity.png")
    tolerated = tolerated_sparsity(result, config.max_drop)
    quality = layer_settings_from_sensitivity(model, result, config.max_drop)
    payload = {
        "baseline_accuracy": result.baseline,
        "max_drop": config.max_drop,
        "layers": {
            name: {"sparsity": tolerated[name], "quality": quality[name].get("quality", 0.0)}
            for name in tolerated
        },
    }
    _write_json(settings_path, payload)
    return payload


def _last_round(layout: RunLayout, rounds: int) -> int:
    done = [r for r in range(1, rounds + 1) if layout.model(f"round-{r}").is_file()]
    return max(done, default=0)


def prune_and_retrain(
    config: WeightPruningConfig,
    layout: RunLayout,
    model: nn.Module,
    data: Any,
    overrides: Mapping[str, Any],
    *,
    resume: bool = False,
    log: Log | None = None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Step 3: ``rounds`` of prune -> retrain with masks; returns the masked model and one record per round
    and phase. After each round the masked model and the records so far go to ``round-<r>.pt``; resuming
    continues after the last finished round (and inside an unfinished retraining, from its checkpoint)."""
    import netslim
    from netslim.io import read_checkpoint
    from netslim.weights.procedure import prune_round
    from netslim.weights.schedule import dropout_rates

    pruning = config.pruning(overrides)
    original_dropout = dropout_rates(model)  # D_o of Eq. 2 (dropout rates are not stored in checkpoints)
    history: list[dict[str, Any]] = []
    start = _last_round(layout, config.rounds) if resume else 0
    if start:
        path = layout.model(f"round-{start}")
        fresh = None if getattr(model, "netslim_recipe", None) else model  # a user's class: load into it
        model = netslim.load(path, model=fresh).train()
        history = list(read_checkpoint(path).meta["extra"]["records"])
        if log:
            log(f"resume: rounds 1-{start} done, from {path}")
    loader = data.val or data.test
    train_cfg = config.baseline_config()

    def make_trainer(m: nn.Module, cfg: TrainConfig, callbacks: list[Any], tag: str) -> Any:
        return _trainer(m, data, cfg, callbacks, layout.phase(tag), config.device, resume)

    for r in range(start, config.rounds):
        records = prune_round(
            model, pruning, r, make_trainer, train_cfg, original_dropout, lambda m: _accuracy(m, loader)
        )
        history += records
        if log:
            last = records[-1]
            log(
                f"round {r + 1}/{config.rounds}: val accuracy {last['accuracy_pruned']:.2%} after pruning"
                + (f", {last['accuracy']:.2%} after retraining" if "accuracy" in last else "")
            )
        netslim.save(model, layout.model(f"round-{r + 1}"), extra={"records": history})
        previous = layout.model(f"round-{r}")
        if r > 0 and previous.is_file():
            previous.unlink()  # the newest round's file holds every record so far
    return model, history


def storage_sizes(model: nn.Module) -> dict[str, int]:
    """Bytes of the model stored dense (float32 state) and with Deep Compression's P, P+Q and P+Q+H."""
    from netslim.compression import compress_model
    from netslim.io import plain_state_dict

    dense = sum(t.numel() * t.element_size() for t in plain_state_dict(model).values())
    sizes = {"dense": dense}
    for key, opts in (("P", {}), ("P+Q", {"quantize": True}), ("P+Q+H", {"quantize": True, "huffman": True})):
        _, report = compress_model(model, **opts)
        sizes[key] = report.total_bytes
    return sizes


def example_batch(data: Any, device: torch.device, samples: int) -> torch.Tensor:
    """The first ``samples`` test images (real inputs for the FLOPs-kept count)."""
    x = next(iter(data.test))[0][:samples]
    return x.to(device)


# ---------------------------------------------------------------------------------------------- the run
def run_weight_pruning(
    config: WeightPruningConfig,
    run_dir: str | Path,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    resume: bool = False,
    log: Log | None = None,
) -> WeightPruningResult:
    """Han et al.'s recipe end to end; returns the pruned, still masked model and the results.

    ``data`` (a :class:`netslim.data.DataBundle`) and ``model`` (untrained, or trained when
    ``config.checkpoint`` is set) default to what the config describes. Every option and every per-layer
    setting is checked before any training. ``resume`` continues an interrupted run in ``run_dir`` at
    epoch granularity: the baseline, the sweep and each round are skipped once finished.
    """
    import netslim
    from netslim.train import evaluate
    from netslim.weights.report import sparsity_report

    layout = RunLayout(run_dir)
    data = load_data(config) if data is None else data
    model = build_model(config, data) if model is None else model
    overrides = layer_overrides(config, model)  # bad layer names fail here, before the baseline trains
    layout.root.mkdir(parents=True, exist_ok=True)

    # 1. train the dense network
    model, train_epochs = train_baseline(config, layout, data, model, resume=resume, log=log)
    test_before = evaluate(model, data.test)
    if log:
        log(f"dense baseline: test accuracy {test_before['accuracy']:.2%}")
    results: dict[str, Any] = {
        "command": "prune-weights",
        "model": config.model or (getattr(model, "netslim_recipe", None) or {}).get("name"),
        "dataset": config.dataset,
        "config": config.to_dict(),
        "preset": config.uses_preset((getattr(model, "netslim_recipe", None) or {}).get("name")),
        "train_epochs": train_epochs,
        "test_before": test_before,
    }

    # 2. (optional) sensitivity analysis: each layer's tolerated sparsity becomes its amount
    if config.sensitivity:
        sweep = sweep_sensitivity(config, layout, model, data, resume=resume)
        derived = {name: {"amount": s["sparsity"]} for name, s in sweep["layers"].items()}
        overrides = {**derived, **config.layer_settings}  # explicit settings win
        results["sensitivity"] = sweep

    # 3. prune / retrain rounds
    model, rounds = prune_and_retrain(config, layout, model, data, overrides, resume=resume, log=log)
    results["rounds"] = rounds

    # 4. what is left: weights and FLOPs kept per layer, accuracy, storage
    device = next(model.parameters()).device
    layers = sparsity_report(model, example_batch(data, device, config.flops_samples))
    total = layers[-1]
    test_after = evaluate(model, data.test)
    results.update(
        layers=layers[:-1],
        total=total,
        weights=total["weights"],
        weights_kept=total["kept"],
        compression_rate=total["weights"] / max(total["kept"], 1),
        macs=total.get("macs"),
        macs_kept=total.get("macs_kept"),
        flops=total.get("flops"),
        flops_kept=total.get("flops_kept"),
        flops_kept_pct=total.get("flops_kept_pct"),
        test_after=test_after,
    )
    if config.compress:
        results["sizes_bytes"] = storage_sizes(copy.deepcopy(model).cpu())
    netslim.save(model, layout.model("pruned"), extra={"stage": "pruned", "test": test_after})
    _write_json(layout.results, results)
    return WeightPruningResult(model=model, results=results, layout=layout)
