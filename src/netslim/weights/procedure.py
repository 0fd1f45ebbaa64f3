"""Han et al. 2015 training procedure: iterative prune -> retrain rounds on an already trained network.

Each round prunes (Han's rule with a growing quality parameter, or a cubic sparsity schedule), lowers the
dropout of the pruned FC layers by Eq. 2, optionally freezes the layers of the other kind, and retrains at a
reduced learning rate with the masks held by :class:`MaskCallback`. Trainers are built by a caller-supplied
``make_trainer`` so the procedure runs with :class:`netslim.train.Trainer` or with a stand-in in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from torch import nn

from netslim.errors import PruningError
from netslim.train.callbacks import Callback
from netslim.train.config import TrainConfig
from netslim.weights.callbacks import L1Regularization, MaskCallback
from netslim.weights.masks import prunable_layers
from netslim.weights.pruning import LayerSpec, StdMode, apply_specs, resolve_specs
from netslim.weights.schedule import adjust_dropout, cubic_sparsity, dropout_rates, growing_quality

Phase = Literal["all", "fc", "conv"]


class _Fittable(Protocol):
    def fit(self) -> list[dict[str, Any]]: ...


MakeTrainer = Callable[[nn.Module, TrainConfig, list[Callback], str], _Fittable]
"""``make_trainer(model, config, callbacks, tag) -> object with fit()``; ``tag`` names the round/phase."""


@dataclass
class IterativePruningConfig:
    """Settings of the prune/retrain rounds.

    Give ``quality`` (Han's rule; grows by ``quality_step`` per round) or ``target_sparsity`` (each round
    prunes to the cubic schedule's value from ``initial_sparsity``, reaching the target in the last round).
    ``overrides`` are per-layer settings by name or glob (see :mod:`netslim.weights.pruning`); a per-layer
    ``quality`` grows with the same step, a per-layer ``amount`` is that layer's final sparsity.
    """

    rounds: int = 3
    quality: float | None = None
    quality_step: float = 0.0
    target_sparsity: float | None = None
    initial_sparsity: float = 0.0
    overrides: Mapping[str, Any] = field(default_factory=dict)
    protect_first: bool = False
    prune_bias: bool = False
    std_mode: StdMode = "fixed"
    retrain_epochs: int = 1
    retrain_lr_factor: float = 0.1  # Han et al.: 1/10 of the original rate for LeNet, 1/100 for AlexNet
    # Han et al. retrain at a lower, fixed rate: "constant" keeps lr * retrain_lr_factor for every retraining
    # epoch, "cosine" anneals from it; "step" reuses the baseline's milestones (few epochs: mostly lr/100)
    retrain_schedule: Literal["constant", "cosine", "step"] = "constant"
    reg: Literal["l2", "l1", "none"] = "l2"
    l1_strength: float = 1e-5
    adjust_dropout: bool = True
    phases: Sequence[Phase] = ("all",)
    freeze: bool = False  # retrain only the kind of layers just pruned ("fc" or "conv" phases)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise PruningError(f"rounds must be >= 1, got {self.rounds}")
        if (self.quality is None) == (self.target_sparsity is None):
            raise PruningError("give exactly one of quality (Han's rule) or target_sparsity (cubic schedule)")
        if self.retrain_epochs < 0 or self.retrain_lr_factor <= 0:
            raise PruningError("retrain_epochs must be >= 0 and retrain_lr_factor > 0")
        if self.retrain_schedule not in ("constant", "cosine", "step"):
            raise PruningError(
                f"retrain_schedule must be constant, cosine or step, got {self.retrain_schedule!r}"
            )
        if self.target_sparsity is not None and not 0.0 <= self.target_sparsity < 1.0:
            raise PruningError(
                f"target_sparsity is the share of weights removed, in [0, 1), got {self.target_sparsity}"
            )
        if self.reg not in ("l2", "l1", "none"):
            raise PruningError(f"reg must be l1, l2 or none, got {self.reg!r}")
        bad = [p for p in self.phases if p not in ("all", "fc", "conv")]
        if bad or not self.phases:
            raise PruningError(f"phases are a non-empty sequence of all/fc/conv, got {list(self.phases)}")


def round_specs(model: nn.Module, config: IterativePruningConfig, round_index: int) -> dict[str, LayerSpec]:
    """The resolved per-layer specs of round ``round_index`` (0-based) under the configured schedule."""

    def scheduled(spec: LayerSpec) -> LayerSpec:
        if spec.skip:
            return spec
        if spec.quality is not None:
            return replace(spec, quality=growing_quality(spec.quality, config.quality_step, round_index))
        if isinstance(spec.amount, float):
            amount = cubic_sparsity(
                round_index + 1, config.initial_sparsity, spec.amount, 0, config.rounds, 1
            )
            return replace(spec, amount=amount)
        return spec

    if config.quality is not None:
        default = LayerSpec(quality=config.quality, bias=config.prune_bias)
    else:
        default = LayerSpec(amount=config.target_sparsity, bias=config.prune_bias)
    specs = resolve_specs(model, default, config.overrides, protect_first=config.protect_first)
    return {name: scheduled(spec) for name, spec in specs.items()}


def _in_phase(module: nn.Module, phase: Phase) -> bool:
    return phase == "all" or (phase == "fc") == isinstance(module, nn.Linear)


def _freeze_other_kind(model: nn.Module, phase: Phase) -> dict[int, bool]:
    """Freeze every parameter outside the phase's layer kind; returns the previous requires_grad flags."""
    previous = {id(p): p.requires_grad for p in model.parameters()}
    if phase == "all":
        return previous
    trainable: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d) and _in_phase(module, phase):
            trainable.update(id(p) for p in module.parameters())
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable and previous[id(p)])
    return previous


def _restore_requires_grad(model: nn.Module, previous: dict[int, bool]) -> None:
    for p in model.parameters():
        p.requires_grad_(previous.get(id(p), True))


def retrain_config(train_config: TrainConfig, config: IterativePruningConfig) -> TrainConfig:
    """The retraining config: ``retrain_epochs`` epochs at ``lr * retrain_lr_factor`` under
    ``retrain_schedule`` (constant by default, as Han et al.), weight decay only for L2."""
    return replace(
        train_config,
        epochs=max(config.retrain_epochs, 1),
        lr=train_config.lr * config.retrain_lr_factor,
        schedule=config.retrain_schedule,
        weight_decay=train_config.weight_decay if config.reg == "l2" else 0.0,
    )


def iterative_prune(
    model: nn.Module,
    config: IterativePruningConfig,
    make_trainer: MakeTrainer,
    train_config: TrainConfig,
    evaluate_fn: Callable[[nn.Module], float] | None = None,
) -> list[dict[str, Any]]:
    """Run ``config.rounds`` rounds of prune -> retrain on ``model`` in place (masks stay attached).

    Returns one record per round and phase: ``round``, ``phase``, ``sparsity`` (per layer), ``dropout``
    (adjusted rates), ``accuracy_pruned`` (before retraining) and ``accuracy`` (after) when ``evaluate_fn``
    is given, and ``fit`` (the trainer's last epoch metrics). ``retrain_epochs=0`` prunes without retraining.
    """
    original_dropout = dropout_rates(model)
    history: list[dict[str, Any]] = []
    for r in range(config.rounds):
        history += prune_round(model, config, r, make_trainer, train_config, original_dropout, evaluate_fn)
    return history


def prune_round(
    model: nn.Module,
    config: IterativePruningConfig,
    round_index: int,
    make_trainer: MakeTrainer,
    train_config: TrainConfig,
    original_dropout: dict[str, float],
    evaluate_fn: Callable[[nn.Module], float] | None = None,
) -> list[dict[str, Any]]:
    """One round (``round_index``, 0-based) of :func:`iterative_prune`: per phase, prune then retrain.

    ``original_dropout`` holds the dropout rates of the unpruned model (:func:`dropout_rates`), the ``D_o``
    of Eq. 2. Returns the round's records (one per phase). Pruning is deterministic given the weights, so a
    round can be rerun from the previous round's model (how ``netslim prune-weights --resume`` continues).
    """
    retrain_cfg = retrain_config(train_config, config)
    r = round_index
    specs = round_specs(model, config, r)
    layers = prunable_layers(model)
    history: list[dict[str, Any]] = []
    for phase in config.phases:
        phase_specs = {
            n: s if _in_phase(layers[n], phase) else LayerSpec(skip=True) for n, s in specs.items()
        }
        sparsity = apply_specs(model, phase_specs, std_mode=config.std_mode)
        record: dict[str, Any] = {"round": r + 1, "phase": phase, "sparsity": sparsity}
        if config.adjust_dropout:
            record["dropout"] = adjust_dropout(model, original_dropout)
        if evaluate_fn is not None:
            record["accuracy_pruned"] = float(evaluate_fn(model))
        if config.retrain_epochs > 0:
            callbacks: list[Callback] = []
            if config.reg == "l1":
                callbacks.append(L1Regularization(config.l1_strength))
            callbacks.append(MaskCallback())
            previous = _freeze_other_kind(model, phase) if config.freeze else None
            try:
                fit_history = make_trainer(model, retrain_cfg, callbacks, f"round{r + 1}_{phase}").fit()
            finally:
                if previous is not None:
                    _restore_requires_grad(model, previous)
            record["fit"] = fit_history[-1] if fit_history else {}
            if evaluate_fn is not None:
                record["accuracy"] = float(evaluate_fn(model))
        history.append(record)
    return history
