"""Network Slimming (Liu et al., ICCV 2017) as one run: the paper's recipe, top to bottom.

1. **Sparsity training.** Train with an L1 penalty on every BatchNorm scale (gamma), so the channels the
   network does not need end with a gamma near zero (:class:`netslim.BNSparsity`; a fixed strength such as
   the paper's 1e-4, or ``"auto"``, which adapts it to bring ``l1_target`` of the channels near zero).
   Then the BN running statistics are recomputed for the final weights (``bn_recalibration`` training
   batches, :func:`netslim.train.recalibrate_batchnorm`): the cut folds with them, and they lag behind
   weights that moved fast at the end (a run that rolled back a collapse: 21.5% test error before, 14.2%
   after).
2. **The cut.** One global threshold on |gamma| over all prunable channels, set so ``ratio`` of them fall
   below it; those channels are removed physically, with their constant output folded into the next layer
   (:func:`netslim.plan`, :func:`netslim.apply`).
3. **Fine-tuning** of the smaller network, optionally distilled from the network before the cut
   (:class:`netslim.train.Distillation`).
4. **Repeat** (``passes`` > 1, paper §4.5): each pass cuts ``ratio`` of what is left, at most
   ``max_layer_ratio`` of any layer.

:func:`run_slimming` is what ``netslim slim``, ``netslim demo`` and the benchmark rows run. Its run folder
(paths from :class:`netslim.pipelines.layout.RunLayout`; ``-passN`` suffixes when ``passes`` > 1)::

    config.json      this SlimmingConfig, the data folder used, netslim and torch versions
    sparsity/        trainer folder of sparsity training (checkpoint.pt, metrics.jsonl, gamma_hist.jsonl)
    sparse.pt        the sparsity-trained, unpruned model (netslim.save format)
    plan.json        the pruning plan (a list of plans, one per pass, when passes > 1)
    pruned.pt        the model right after the (last) cut
    finetune/        trainer folder of fine-tuning
    finetuned.pt     the final model
    results.json     before / after_prune / plain_cut / after, per-pass history, readiness, the table
    plots/           gamma histograms and channels kept per layer

Fine-tuning defaults: lr 0.01 with a cosine schedule. The paper re-runs the full training schedule (lr 0.1,
divided by 10 at 50% and 75%), and the Rethinking code fine-tunes 40 epochs at a constant 1e-3. For the short
runs this function is mostly used for (a few epochs) 0.1 undoes much of what sparsity training learned and
1e-3 recovers too slowly from a 70% cut; 0.01 decayed to 0 sits between them. With 15 or more epochs,
restarting at the training rate recovers more. Measured on VGG-11 w0.25, Fashion-MNIST, 70% cut of the
auto-sparsified net (9.04% test error right after the cut): 5 epochs: lr 0.01 8.99%, lr 0.1 9.14%;
15 epochs: lr 0.01 8.51%, 0.05 8.30%, 0.1 8.22% (the standard benchmark suite fine-tunes at the training
rate). Set ``finetune`` to ``TrainConfig(epochs=160, lr=0.1, schedule="step")`` for the paper's schedule.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import InitVar, asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.pipelines.layout import RunLayout
from netslim.slimming.surgery import FOLD_MODES
from netslim.train.config import TrainConfig
from netslim.train.distill import check_distill_settings, load_teacher

# training batches over which the BN statistics are recomputed after sparsity training: 50, 100 and 200 gave
# the same test error within 0.06 points on the pre-ResNet-20 nets of the standard suite
BN_RECALIBRATION = 100
# a beta fold that is not exact and moves the cut net's outputs by more than this share of the masked net's
# (relative max error on random inputs) is named in a warning. Sparsity-trained nets of the standard suite,
# mean fold: VGG-19 w0.25 at 70% moved 20% and lost 0.43 points of test accuracy right after the cut;
# pre-ResNet-29 w0.5 at 60% 0.7% (0.10 points), DenseNet-16 at 70% 1.2% (none)
FOLD_DRIFT_WARN = 0.05


class FoldDriftWarning(UserWarning):
    """A cut whose beta fold (mean or interior) noticeably changed what the net computes."""


def _default_finetune() -> TrainConfig:
    return TrainConfig(epochs=10, lr=0.01, schedule="cosine")


@dataclass
class SlimmingConfig:
    """Everything :func:`run_slimming` needs, grouped by step of the recipe. JSON via :meth:`to_dict`.

    ``l1_strength`` is the L1 penalty's strength (the paper's lambda) or ``"auto"``; ``ratio`` is the share of
    channels the cut removes (in every pass). ``l1_target`` (auto only) is the share of prunable channels to
    bring near zero by the end of sparsity training; it defaults to ``ratio``. ``l1_ramp`` (auto only) is the
    share of the sparsity epochs over which the near-zero share rises to that target (default ``None``:
    :class:`~netslim.BNSparsity`'s, half of them). ``train`` is the
    sparsity-training schedule, ``finetune`` the fine-tuning one. ``bn_recalibration``: the training batches
    over which the BN running statistics are recomputed after each sparsity training (0: not).
    ``finetune_augment=False`` fine-tunes on the training images without the loader's augmentation (a cut
    net too small to fit augmented data recovers more without it; see docs/RESULTS.md). ``distill``
    fine-tunes (every pass) with ``(1 - alpha) * CE + alpha * T^2 * KL`` against the network before the cut.
    ``data_kwargs`` go to :func:`netslim.data.get_loaders`, ``model_kwargs`` to :func:`netslim.models.create`
    when the caller does not pass ready objects. ``sparsity=`` is accepted as the old name of ``l1_strength``.
    """

    model: str = "vgg19"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # a sparsity-trained netslim checkpoint: skip the first sparsity run
    # 1. sparsity training
    l1_strength: float | Literal["auto"] = 1e-4
    l1_target: float | None = None
    l1_ramp: float | None = None  # auto: share of the sparsity epochs to reach l1_target in (None: 0.5)
    # None: proximal with l1_strength "auto", the paper's subgradient with a fixed strength
    sparsity_mode: Literal["subgradient", "proximal"] | None = None
    sparsity_schedule: Literal["constant", "linear_decay"] = "constant"
    sparsity_exclude: list[str] = field(default_factory=list)
    bn_recalibration: int = BN_RECALIBRATION  # batches to recompute BN statistics from after sparsity; 0: off
    channel_gates: bool = False  # netslim.add_channel_gates before each sparsity run (nets without BN)
    train: TrainConfig = field(default_factory=TrainConfig)
    # 2. the cut
    ratio: float = 0.7
    passes: int = 1
    max_layer_ratio: float | None = None  # per-layer cap per pass; multi-pass uses 0.5 when None
    min_channels: int = 1
    scope: Literal["global", "local"] = "global"
    round_to: int = 1
    fold_beta: bool | Literal["mean", "interior", "exact"] = True  # see netslim.apply
    # 3. fine-tuning
    finetune: TrainConfig = field(default_factory=_default_finetune)
    finetune_augment: bool = True  # False: fine-tune on the training images without augmentation
    distill: bool = False
    distill_temperature: float = 4.0
    distill_alpha: float = 0.9
    # a trained net's netslim file to distill from instead of the net before the cut (implies distill)
    distill_teacher: str | None = None
    # the run folder and what is measured
    run_dir: str | None = None
    device: str | None = None
    compare_plain_cut: bool = True
    evaluate_test: bool = True
    latency: bool = True
    latency_repeats: int = 20
    plots: bool = True
    sparsity: InitVar[float | str | None] = None  # the old name of l1_strength

    def __post_init__(self, sparsity: float | str | None) -> None:
        if sparsity is not None:
            self.l1_strength = sparsity  # type: ignore[assignment]
        if not isinstance(self.ratio, int | float) or not 0.0 < self.ratio < 1.0:
            raise NetslimError(f"ratio must be in (0, 1), got {self.ratio}; 0.7 prunes 70% of the channels")
        if not isinstance(self.passes, int) or self.passes < 1:
            raise NetslimError(f"passes must be an integer >= 1, got {self.passes!r}")
        if self.max_layer_ratio is not None and not 0.0 < self.max_layer_ratio <= 1.0:
            raise NetslimError(f"max_layer_ratio must be in (0, 1], got {self.max_layer_ratio}")
        if not isinstance(self.bn_recalibration, int) or self.bn_recalibration < 0:
            raise NetslimError(
                f"bn_recalibration (--bn-recalibration) must be an integer >= 0 (training batches; 0: off), "
                f"got {self.bn_recalibration!r}"
            )
        if self.min_channels < 1:
            raise NetslimError(f"min_channels must be >= 1, got {self.min_channels}")
        if isinstance(self.l1_strength, str):
            if self.l1_strength != "auto":
                raise NetslimError(f"l1_strength must be a number >= 0 or 'auto', got {self.l1_strength!r}")
        elif not (isinstance(self.l1_strength, int | float) and math.isfinite(self.l1_strength)) or (
            self.l1_strength < 0
        ):
            raise NetslimError(f"l1_strength must be a number >= 0 or 'auto', got {self.l1_strength!r}")
        if self.l1_target is not None and not 0.0 < self.l1_target < 1.0:
            raise NetslimError(f"l1_target must be in (0, 1), got {self.l1_target}; it defaults to the ratio")
        if self.l1_target is not None and self.l1_strength != "auto":
            raise NetslimError("l1_target (--l1-target) only applies to l1_strength 'auto' (--l1 auto)")
        if self.l1_ramp is not None and not (
            isinstance(self.l1_ramp, int | float) and 0.0 <= self.l1_ramp <= 1.0
        ):
            raise NetslimError(
                f"l1_ramp must be in [0, 1], got {self.l1_ramp!r} (a share of the sparsity epochs)"
            )
        if self.l1_ramp is not None and self.l1_strength != "auto":
            raise NetslimError("l1_ramp (--l1-ramp) only applies to l1_strength 'auto' (--l1 auto)")
        if self.fold_beta not in FOLD_MODES:
            raise NetslimError(
                f"fold_beta must be True, False, 'mean', 'interior' or 'exact', got {self.fold_beta!r}"
            )
        if self.scope not in ("global", "local"):
            raise NetslimError(f"scope must be 'global' or 'local', got {self.scope!r}")
        check_distill_settings(self.distill_temperature, self.distill_alpha)
        if self.distill_teacher is not None:
            if not isinstance(self.distill_teacher, str | os.PathLike) or not str(self.distill_teacher):
                raise NetslimError(
                    f"distill_teacher must be the path of a netslim model file, got {self.distill_teacher!r}"
                )
            self.distill_teacher = str(self.distill_teacher)
            self.distill = True

    @property
    def layer_cap(self) -> float | None:
        """The per-layer cap each pass uses: ``max_layer_ratio``, or 0.5 (the paper's) for multi-pass."""
        if self.max_layer_ratio is not None or self.passes == 1:
            return self.max_layer_ratio
        return 0.5

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy."""
        d = asdict(self)
        d["train"] = self.train.to_dict()
        d["finetune"] = self.finetune.to_dict()
        return d


def run_slimming(
    config: SlimmingConfig,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    verbose: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run sparsity training, the cut and fine-tuning as ``config`` says; returns the results dict.

    ``data`` (a :class:`netslim.data.DataBundle`) and ``model`` may be passed ready-made; otherwise they come
    from ``config.dataset``/``data_kwargs`` and ``config.model``/``model_kwargs``. With ``config.checkpoint``
    the model is loaded from that file (with ``model`` as the architecture for a class of your own) and the
    first sparsity training is skipped. The returned dict is what ``results.json`` holds: ``before`` (the
    sparsity-trained model), ``after_prune``, ``plain_cut``, ``after`` (fine-tuned), each with
    ``val_acc``/``test_acc``/``params``/``flops``/``latency_ms``; ``passes`` (per-pass history),
    ``readiness`` (how clean the last cut was, when the engine reports it), ``warnings`` (the engine's, e.g.
    a cut into the bulk of the gammas; printed as ``warning: ...`` lines when verbose), ``distill``,
    ``files`` and ``table`` (the printed before/after table).
    """
    import netslim
    from netslim.slimming import api as engine
    from netslim.slimming.gates import add_channel_gates, gated_layers

    say = log or (lambda text: print(text, flush=True) if verbose else None)
    start = time.perf_counter()
    data = data if data is not None else _load_data(config)
    if not config.finetune_augment and not hasattr(data.train, "without_augment"):
        raise NetslimError(
            "finetune_augment=False needs netslim's training loader (netslim.data.get_loaders), which can "
            "turn its augmentation off; build the data with augment=False instead"
        )
    layout = RunLayout(config.run_dir or f"runs/slim-{time.strftime('%Y%m%d-%H%M%S')}")
    layout.root.mkdir(parents=True, exist_ok=True)
    model = _first_model(config, data, model)
    example = example_inputs(data)
    # a teacher file is read and checked before any training, not after an hour of it
    given_teacher = None
    if config.distill_teacher is not None:
        given_teacher = load_teacher(config.distill_teacher, example, getattr(data, "num_classes", None))
    _write_json(layout.config, _run_config(config))
    evaluate = _evaluator(config, data)
    files: dict[str, Any] = {"config": layout.config.name, "sparse": []}
    history: list[dict[str, Any]] = []
    plans: list[Any] = []
    sparsity_dirs = []
    baseline = model

    for index in range(config.passes):
        entry: dict[str, Any] = {
            "pass": index + 1,
            "ratio": config.ratio,
            "max_layer_ratio": config.layer_cap,
        }
        pass_start = time.perf_counter()
        suffix = "" if config.passes == 1 else f"-pass{index + 1}"
        tag = f"pass {index + 1}/{config.passes}"

        # (nets without BatchNorm: a learnable scale per channel to penalise and cut by, folded away after)
        if config.channel_gates and not gated_layers(model):
            say(str(add_channel_gates(model, example)))

        # 1. sparsity training: L1 on the BN scales drives the unneeded channels' gammas to zero
        if not (index == 0 and config.checkpoint is not None):
            folder = layout.phase(f"sparsity{suffix}")
            entry["sparsity_training"] = _sparsity_training(model, config, data, folder, say, tag)
            sparsity_dirs.append(folder)
            netslim.save(
                model, layout.model(f"sparse{suffix}"), extra={"stage": "sparsity", "pass": index + 1}
            )
            files["sparse"].append(layout.model(f"sparse{suffix}").name)
        entry["trained"] = evaluate(model)
        _say_recalibration(entry.get("sparsity_training", {}).get("bn_recalibration"), entry["trained"], say)
        if index == 0:
            baseline = model

        # 2. the cut: one global |gamma| threshold, the channels below it removed
        plan, pruned, notes = _cut(model, config, example, say if verbose or log else None)
        say(str(plan))
        notes = entry.get("sparsity_training", {}).get("warnings", []) + notes
        entry.update(_cut_record(plan, model, pruned, example), warnings=notes, pruned=evaluate(pruned))
        if config.compare_plain_cut and config.fold_beta:
            entry["plain_cut"] = evaluate(engine.apply(model, plan, fold_beta=False))
        plans.append(plan)
        _save_cut(layout, plans, pruned, config.passes)

        # 3. fine-tuning, optionally learning from the network before the cut
        teacher = (given_teacher or model) if config.distill else None
        model = _finetune(pruned, teacher, config, data, layout.phase(f"finetune{suffix}"), say, tag)
        entry["finetuned"] = evaluate(model)
        entry["seconds"] = time.perf_counter() - pass_start
        history.append(entry)

    netslim.save(model, layout.model("finetuned"), extra={"stage": "finetuned"})
    files.update(
        plan=layout.plan.name, pruned=layout.model("pruned").name, finetuned=layout.model("finetuned").name
    )
    if not files["sparse"]:
        del files["sparse"]
    results = _results(config, baseline, model, history, example)
    results["seconds"] = time.perf_counter() - start
    if config.plots:
        files["plots"] = _plots(layout, sparsity_dirs, plans)
    results["files"] = files
    results["table"] = format_table(results)
    _write_json(layout.results, results)
    say(results["table"])
    say(f"run folder: {layout.root}")
    return results


# ---------------------------------------------------------------------------------------------- the steps
def _sparsity_training(
    model: nn.Module, config: SlimmingConfig, data: Any, folder: Any, say: Callable[[str], None], tag: str
) -> dict[str, Any]:
    """Train ``model`` in place with the L1 penalty on its BN scales; returns the last epoch's L1 figures."""
    from netslim.slimming.sparsity import BNSparsity, SparsityInstabilityWarning
    from netslim.slimming.strength import RAMP
    from netslim.train import Trainer

    exclude = list(config.sparsity_exclude) or None
    if config.l1_strength == "auto":
        target = config.l1_target if config.l1_target is not None else config.ratio
        ramp = RAMP if config.l1_ramp is None else config.l1_ramp
        penalty = BNSparsity(
            model, "auto", target=target, mode=config.sparsity_mode, exclude=exclude, ramp=ramp
        )
        say(
            f"== {tag}: sparsity training, {config.train.epochs} epochs, L1 strength auto, {penalty.mode} "
            f"(target: {100 * target:.0f}% of the channels near zero by {100 * penalty.ramp:.0f}% of the "
            "epochs)"
        )
    else:
        penalty = BNSparsity(
            model,
            config.l1_strength,
            mode=config.sparsity_mode,
            schedule=config.sparsity_schedule,
            exclude=exclude,
        )
        say(
            f"== {tag}: sparsity training, {config.train.epochs} epochs, L1 strength "
            f"{config.l1_strength:g}, {penalty.mode}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SparsityInstabilityWarning)
        history = Trainer(
            model,
            data.train,
            data.val,
            config=config.train,
            callbacks=[penalty],
            run_dir=folder,
            device=config.device,
        ).fit()
    notes = _relay_warnings(caught, say, only=SparsityInstabilityWarning)
    last = history[-1] if history else {}
    recalibrated = _recalibrate(model, config, data, last.get("val_acc"))
    model.cpu()
    keys = (
        "l1_strength",
        "near_zero_share",
        "gamma_frac_below_1e-2",
        "gamma_frac_below_1e-3",
        "sparsity_rollbacks",
    )
    return {
        "l1_strength": getattr(penalty, "current_s", config.l1_strength),
        "sparsity_mode": penalty.mode,
        **{k: last[k] for k in keys if k in last},
        "bn_recalibration": recalibrated,
        "warnings": notes,
    }


def _recalibrate(
    model: nn.Module, config: SlimmingConfig, data: Any, val_acc: float | None
) -> dict[str, Any] | None:
    """Recompute ``model``'s BN statistics after sparsity training, as ``config.bn_recalibration`` says;
    returns the batches used and the last epoch's validation accuracy (None when off or nothing to do)."""
    from netslim.train import recalibrate_batchnorm

    if config.bn_recalibration == 0:
        return None
    batches = recalibrate_batchnorm(model, data.train, config.bn_recalibration)  # on the model's device
    return {"batches": batches, "val_acc_before": val_acc, "val_acc_after": None} if batches else None


def _say_recalibration(
    record: dict[str, Any] | None, trained: dict[str, Any], say: Callable[[str], None]
) -> None:
    """Complete ``record`` with the validation accuracy after recalibrating and print one line about it."""
    if record is None:
        return
    line = f"BN statistics recomputed for the final weights over {record['batches']} training batches"
    before, after = record["val_acc_before"], trained.get("val_acc")
    record["val_acc_after"] = after
    if before is not None and after is not None:
        line += f" (validation accuracy {100 * before:.2f}% -> {100 * after:.2f}%)"
    say(line)


def _relay_warnings(
    caught: list[warnings.WarningMessage],
    say: Callable[[str], None] | None,
    only: type[Warning] = Warning,
) -> list[str]:
    """Print the caught warnings of category ``only`` through ``say``, one line each, and return their
    messages; every other caught warning (and all of them when ``say`` is None) is issued again."""
    notes = []
    for w in caught:
        if say is not None and issubclass(w.category, only):
            say(f"warning: {w.message}")
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return notes


def plan_cut(
    model: nn.Module, example: Any, config: SlimmingConfig, say: Callable[[str], None] | None = None
) -> tuple[Any, list[str]]:
    """Plan the cut of ``model`` with ``config``'s ratio, per-layer cap, scope, minimum and rounding.

    Returns the plan and the engine's warnings (e.g. a threshold inside the bulk of the gammas), which are
    also printed one line each through ``say``, or re-issued as Python warnings when ``say`` is None.
    ``netslim prune`` and every pass of :func:`run_slimming` cut through here.
    """
    from netslim.slimming import api as engine

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = engine.plan(
            model,
            example,
            config.ratio,
            max_layer_ratio=config.layer_cap,
            scope=config.scope,
            min_channels=config.min_channels,
            round_to=config.round_to,
        )
    _relay_warnings(caught, say)
    return plan, [str(w.message) for w in caught]


def check_fold(
    model: nn.Module,
    plan: Any,
    pruned: nn.Module,
    example: Any,
    fold_beta: bool | str,
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """Compare ``pruned`` (``model`` cut by ``plan`` with ``fold_beta``) with the masked net on 8 random
    inputs shaped like ``example``; when an inexact fold (mean or interior) moved the outputs by more than
    :data:`FOLD_DRIFT_WARN`, say so through ``say`` (a :class:`FoldDriftWarning` when ``say`` is None).
    Returns the warning's message in a list, or an empty list (also for the exact fold and the plain cut,
    whose drop of the constant is what was asked for)."""
    from netslim.slimming.api import fold_drift

    if fold_beta not in (True, "mean", "interior") or not isinstance(example, torch.Tensor):
        return []
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn((8, *example.shape[1:]), generator=generator).to(example.dtype)
    drift = fold_drift(model, plan, pruned, inputs)
    if drift <= FOLD_DRIFT_WARN:
        return []
    message = (
        f"the {'interior' if fold_beta == 'interior' else 'mean'} beta fold moved the cut net's outputs by "
        f"up to {drift:.0%} of the masked net's (removed channels' gamma set to 0; 8 random inputs): "
        "zero-padded convs receive the removed channels' constant output less at their borders, which "
        "one bias cannot carry; cut with --fold-beta exact (fold_beta='exact') to compute what the masked "
        "net computes"
    )
    if say is not None:
        say(f"warning: {message}")
    else:
        warnings.warn(message, FoldDriftWarning, stacklevel=2)
    return [message]


def _cut(
    model: nn.Module, config: SlimmingConfig, example: torch.Tensor, say: Callable[[str], None] | None
) -> tuple[Any, nn.Module, list[str]]:
    """Plan the cut of ``model`` (:func:`plan_cut`), apply it and check its beta fold (:func:`check_fold`);
    returns the plan, the smaller model and the warnings."""
    from netslim.slimming import api as engine

    plan, notes = plan_cut(model, example, config, say)
    pruned = engine.apply(model, plan, fold_beta=config.fold_beta)
    return plan, pruned, notes + check_fold(model, plan, pruned, example, config.fold_beta, say)


def _save_cut(layout: RunLayout, plans: list[Any], pruned: nn.Module, passes: int) -> None:
    """Write plan.json (one plan, or the list of every pass's) and the pruned model(s)."""
    import netslim

    index = len(plans)
    plan_dicts = [p.to_dict() for p in plans]
    _write_json(layout.plan, plan_dicts[0] if passes == 1 else plan_dicts)
    netslim.save(pruned, layout.model("pruned"), extra={"stage": "pruned", "pass": index})
    if passes > 1:
        netslim.save(pruned, layout.model(f"pruned-pass{index}"), extra={"stage": "pruned", "pass": index})


def _finetune(
    pruned: nn.Module,
    teacher: nn.Module | None,
    config: SlimmingConfig,
    data: Any,
    folder: Any,
    say: Callable[[str], None],
    tag: str,
) -> nn.Module:
    """Fine-tune ``pruned`` in place (distilled from ``teacher`` when given); returns it, on the CPU."""
    from netslim.train import Distillation, Trainer

    ft = config.finetune
    callbacks = []
    how = ""
    if teacher is not None:
        callbacks.append(Distillation(teacher, config.distill_temperature, config.distill_alpha))
        source = config.distill_teacher or "the net before the cut"
        how = f", distilled from {source} (T={config.distill_temperature:g}, alpha={config.distill_alpha:g})"
    train = data.train
    if not config.finetune_augment and getattr(train, "augment", None) is not None:
        train, how = train.without_augment(), how + ", without augmentation"
    say(f"== {tag}: fine-tuning, {ft.epochs} epochs, lr {ft.lr:g}{how}")
    Trainer(
        pruned, train, data.val, config=ft, callbacks=callbacks, run_dir=folder, device=config.device
    ).fit()
    return pruned.cpu()


def _cut_record(plan: Any, before: nn.Module, after: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """Params/FLOPs around the cut, channel counts, threshold, per-layer widths and readiness of ``plan``."""
    measured_before, measured_after = _measure([before, after], example, latency=False)
    meta = getattr(plan, "meta", {}) or {}
    record: dict[str, Any] = {
        "params_before": measured_before["params"],
        "params_after": measured_after["params"],
        "flops_before": measured_before["flops"],
        "flops_after": measured_after["flops"],
        "pruned_channels": meta.get("pruned_channels"),
        "total_channels": meta.get("total_channels"),
        "threshold": meta.get("threshold"),
        "layer_widths": {name: list(pair) for name, pair in plan.widths().items()},
    }
    readiness = _readiness(plan)
    if readiness is not None:
        record["readiness"] = readiness
    return record


def _readiness(plan: Any) -> dict[str, Any] | None:
    """The plan's cut-readiness record as a plain dict, or None when the engine does not provide one."""
    value = getattr(plan, "readiness", None)
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    if callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return None


def _results(
    config: SlimmingConfig,
    baseline: nn.Module,
    final: nn.Module,
    history: list[dict[str, Any]],
    example: torch.Tensor,
) -> dict[str, Any]:
    """The results.json of a run: the four stages' figures, per-pass history, readiness, distillation."""
    measured_before, measured_after = _measure(
        [baseline, final], example, latency=config.latency, repeats=config.latency_repeats
    )
    first, last = history[0], history[-1]
    results: dict[str, Any] = {
        "before": {**first["trained"], **measured_before},
        "after_prune": {**last["pruned"], "params": last["params_after"], "flops": last["flops_after"]},
        "plain_cut": last.get("plain_cut"),
        "after": {**last["finetuned"], **measured_after},
        "passes": history,
        "ratio": config.ratio,
        "l1_strength": config.l1_strength,
        "distill": {
            "temperature": config.distill_temperature,
            "alpha": config.distill_alpha,
            "teacher": config.distill_teacher or "the net before the cut",
        }
        if config.distill
        else None,
        "device": str(_eval_device(config)),
        "threads": torch.get_num_threads(),
    }
    if "readiness" in last:
        results["readiness"] = last["readiness"]
    results["warnings"] = [text for entry in history for text in entry.get("warnings", [])]
    return results


# ---------------------------------------------------------------------------------------------- plumbing
def _load_data(config: SlimmingConfig) -> Any:
    from netslim.data import get_loaders

    return get_loaders(config.dataset, **config.data_kwargs)


def _first_model(config: SlimmingConfig, data: Any, model: nn.Module | None) -> nn.Module:
    """The model the run starts from: the checkpoint, the one passed in, or a new zoo model (initialised
    from ``config.train.seed``, so a rerun starts from the same weights)."""
    import netslim

    if config.checkpoint is not None:
        return netslim.load(config.checkpoint, model=model)
    if model is not None:
        return model
    from netslim.models import resolve  # a zoo name or a FILE.py:FUNC / pkg.mod:FUNC factory
    from netslim.train.state import seed_everything

    seed_everything(config.train.seed)

    size = data.image_size if isinstance(data.image_size, int) else tuple(data.image_size)[-1]
    return resolve(
        config.model,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=size,
        **config.model_kwargs,
    )


def _run_config(config: SlimmingConfig) -> dict[str, Any]:
    """What config.json records: the config, the data folder actually read, netslim and torch versions."""
    from netslim import __version__

    return {
        **config.to_dict(),
        "data_folder": _data_folder(config),
        "versions": {"netslim": __version__, "torch": torch.__version__},
    }


def _data_folder(config: SlimmingConfig) -> str | None:
    """The folder the dataset's files are read from (None when it cannot be told)."""
    from netslim.data.locate import locate

    if not config.dataset:
        return None
    try:
        found = locate(config.dataset, config.data_kwargs.get("data_dir"))
    except (NetslimError, OSError):
        return None
    return str(found.resolve()) if found is not None else None


def _eval_device(config: SlimmingConfig) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _evaluator(config: SlimmingConfig, data: Any) -> Callable[[nn.Module], dict[str, Any]]:
    """``f(model) -> {"val_acc", "test_acc"}`` on the run's device; the model is moved back to the CPU."""
    from netslim.train import evaluate

    device = _eval_device(config)

    def run(m: nn.Module) -> dict[str, Any]:
        m.to(device)
        out = {"val_acc": evaluate(m, data.val)["accuracy"] if data.val is not None else None}
        out["test_acc"] = evaluate(m, data.test)["accuracy"] if config.evaluate_test else None
        m.cpu()
        return out

    return run


def example_inputs(data: Any) -> torch.Tensor:
    """A zero batch of one image shaped like ``data``'s (a :class:`netslim.data.DataBundle`)."""
    size = data.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    return torch.zeros(1, int(data.in_channels), int(h), int(w))


def _measure(
    models: list[nn.Module], example: torch.Tensor, *, latency: bool, repeats: int = 20
) -> list[dict[str, Any]]:
    """Params, FLOPs and CPU latency (batch 1) of each model, latency repeats interleaved."""
    from netslim.measurement.api import compare_many

    cpu = [m.cpu().eval() for m in models]
    stats = compare_many(cpu, example, latency=latency, batch_sizes=(1,), repeats=repeats, file_size=False)
    return [
        {
            "params": s["params"],
            "flops": s["flops"],
            "latency_ms": s["latency_ms"].get(1),
            "latency": (s.get("latency") or {}).get(1),  # median, quartiles, noisy flag
        }
        for s in stats
    ]


def _write_json(path: Any, obj: Any) -> None:
    from netslim._atomic import atomic_write_json

    atomic_write_json(path, obj)


# ---------------------------------------------------------------------------------------------- output
def format_table(results: dict[str, Any]) -> str:
    """The before/after Markdown table :func:`run_slimming` prints at the end."""
    from netslim._table import change_text, count_text
    from netslim._table import format_table as layout_table

    b, a = results["before"], results["after"]
    rows: list[tuple[str, str, str, str]] = []

    def acc(d: dict[str, Any], key: str) -> str:
        return "n/a" if d.get(key) is None else f"{100 * d[key]:.2f}%"

    for key, label in (("test_acc", "test accuracy"), ("val_acc", "val accuracy")):
        if b.get(key) is not None:
            diff = "" if a.get(key) is None else f"{100 * (a[key] - b[key]):+.2f} pt"
            rows.append((label, acc(b, key), acc(a, key), diff))
    pruned = results.get("after_prune", {})
    if pruned.get("test_acc") is not None or pruned.get("val_acc") is not None:
        key = "test_acc" if pruned.get("test_acc") is not None else "val_acc"
        rows.append((f"{key.split('_')[0]} accuracy right after the cut", acc(b, key), acc(pruned, key), ""))
    plain = results.get("plain_cut")
    if plain:
        key = "test_acc" if plain.get("test_acc") is not None else "val_acc"
        label = f"{key.split('_')[0]} accuracy, plain cut (no beta folding)"
        rows.append((label, acc(b, key), acc(plain, key), ""))
    for key, label in (("params", "params"), ("flops", "FLOPs")):
        rows.append((label, count_text(b[key]), count_text(a[key]), change_text(b[key], a[key])))
    lb, la = b.get("latency_ms"), a.get("latency_ms")
    if lb is not None and la is not None:
        from netslim.measurement.latency import format_latency

        before_text = format_latency(b.get("latency") or lb)
        after_text = format_latency(a.get("latency") or la)
        rows.append(("CPU latency, batch 1", before_text, after_text, change_text(lb, la)))
    return layout_table(rows, ["metric", "before", "after", "change"], align="lrrr", markdown=True)


def _plots(layout: RunLayout, sparsity_dirs: list[Any], plans: list[Any]) -> list[str]:
    """Gamma histograms per epoch and channels kept per layer, drawn by netslim.plots when it exists."""
    try:
        from netslim import plots
    except ImportError:
        return []
    from netslim.pipelines.layout import GAMMA_HIST

    out = layout.plots
    out.mkdir(exist_ok=True)
    written: list[str] = []
    for d in sparsity_dirs:
        records = plots.read_jsonl(d / GAMMA_HIST) if (d / GAMMA_HIST).is_file() else []
        if records:
            written.append(str(plots.gamma_histograms(records, out / f"{d.name}-gamma-hist.png")))
    first, last = plans[0].widths(), plans[-1].widths()
    widths = {name: (before, last.get(name, (before, after))[1]) for name, (before, after) in first.items()}
    if widths:
        written.append(str(plots.channels_per_layer(widths, out / "channels-kept.png")))
    return written
