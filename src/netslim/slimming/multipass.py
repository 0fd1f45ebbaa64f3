"""Multi-pass Network Slimming (paper §4.5): train with sparsity -> prune -> fine-tune, repeated.

Each pass prunes a share of the channels that are left, with a per-layer cap (the paper pruned 50% per pass
with "at most 50% of the channels" of any layer) so no layer collapses across passes. Training is supplied
by the caller as a function, so this module makes no assumption about data, optimizer or device::

    ratios = pass_ratios(0.5, passes=3)           # each pass's sparsity phase aims at its own cut

    def train_fn(model, pass_index, phase):       # phase: "sparsity" or "finetune"
        cbs = [BNSparsity(model, "auto", target=ratios[pass_index])] if phase == "sparsity" else []
        Trainer(model, train, val, TrainConfig(epochs=5), callbacks=cbs).fit()
        if phase == "sparsity":                   # the cut folds BN statistics: make them the final weights'
            recalibrate_batchnorm(model, train)

    result = multipass_slim(model, torch.zeros(1, 3, 32, 32), passes=3, ratio_per_pass=ratios,
                            train_fn=train_fn, evaluate_fn=lambda m: evaluate(m, val)["accuracy"])
    result.model, result.history                  # history[i]["readiness"]: how clean pass i's cut was
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from netslim.errors import NetslimError

Phase = Literal["sparsity", "finetune"]
TrainFn = Callable[[nn.Module, int, Phase], Any]
EvaluateFn = Callable[[nn.Module], float | dict[str, Any]]
MeasureFn = Callable[[nn.Module], dict[str, Any]]
AfterPruneFn = Callable[[nn.Module, Any, nn.Module, int], dict[str, Any] | None]


@dataclass
class MultipassResult:
    """The final (pruned and fine-tuned) model, the plan of every pass and a per-pass history.

    ``history[i]`` holds ``pass`` (1-based), ``ratio``, ``params``/``flops`` before and after the cut,
    ``trained``/``pruned``/``finetuned`` evaluations (whatever ``evaluate_fn`` returned; absent without
    one), ``pruned_channels``/``total_channels``/``threshold``, ``layer_widths`` (name -> [before, after]),
    ``readiness`` (the plan's cut readiness as a dict, see :class:`~netslim.slimming.plan.CutReadiness`)
    and ``seconds``. Unpacks as ``model, history = result``.
    """

    model: nn.Module
    plans: list[Any] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.history))


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as masks or indices are not counted)."""
    return sum(p.numel() for p in model.parameters())


def default_measure(model: nn.Module, example_inputs: Any) -> dict[str, Any]:
    """Params and FLOPs of ``model`` with :func:`netslim.measure`'s counter (one forward, no timing)."""
    from netslim.slimming.api import count

    params, flops = count(model, example_inputs)
    return {"params": params, "flops": flops}


def pass_ratios(ratio_per_pass: float | Sequence[float], passes: int) -> list[float]:
    """The validated share of the remaining channels each pass prunes (one value per pass).

    Pass ``i``'s sparsity phase should aim at ``pass_ratios(...)[i]`` (``BNSparsity(model, "auto",
    target=...)``): each pass cuts that share of the channels left after the previous passes.
    """
    if isinstance(ratio_per_pass, int | float):
        ratios = [float(ratio_per_pass)] * passes
    else:
        ratios = [float(r) for r in ratio_per_pass]
        if len(ratios) != passes:
            raise NetslimError(
                f"ratio_per_pass has {len(ratios)} entries for {passes} passes; one value or one per pass"
            )
    bad = [r for r in ratios if not 0.0 < r < 1.0]
    if bad:
        raise NetslimError(f"pruning ratios must be in (0, 1), got {bad}; e.g. 0.5 prunes half the channels")
    return ratios


def _as_eval(value: float | dict[str, Any]) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {"accuracy": float(value)}


def multipass_slim(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[Any, ...],
    *,
    passes: int = 2,
    ratio_per_pass: float | Sequence[float] = 0.5,
    max_layer_ratio: float | None = 0.5,
    train_fn: TrainFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
    measure_fn: MeasureFn | None = None,
    after_prune: AfterPruneFn | None = None,
    skip_first_sparsity: bool = False,
    fold_beta: bool | str = True,
    **plan_kwargs: Any,
) -> MultipassResult:
    """Run ``passes`` rounds of sparsity training, pruning and fine-tuning; returns a MultipassResult.

    Args:
        model: the network (not modified: each pass builds a new, smaller one).
        example_inputs: inputs the engine traces the model with.
        passes: number of rounds (>= 1).
        ratio_per_pass: share of the remaining channels pruned in each pass (one value or one per pass).
        max_layer_ratio: per-pass cap on the share of any layer's channels that may be cut (paper: 0.5).
        train_fn: ``f(model, pass_index, phase)`` trains ``model`` in place for ``phase`` ``"sparsity"``
            (before the cut) or ``"finetune"`` (after it); it may return a replacement model. ``None``
            skips training (prune only). With ``BNSparsity(model, "auto", target=...)``, give pass ``i``
            the target ``pass_ratios(ratio_per_pass, passes)[i]``.
        evaluate_fn: ``f(model) -> accuracy or dict`` recorded after training, after the cut and after
            fine-tuning.
        measure_fn: ``f(model) -> {"params", "flops", ...}``; default :func:`default_measure`.
        after_prune: ``f(model_before, plan, pruned_model, pass_index) -> dict | None``; its result is
            merged into the pass's history (e.g. the accuracy of a plain cut without beta folding).
        skip_first_sparsity: do not train before the first cut (the model is already sparsity-trained).
        fold_beta: fold pruned channels' constant output into the next layer (see :func:`netslim.apply`).
        **plan_kwargs: passed to :func:`netslim.plan` (``scope``, ``min_channels``, ``ignored_layers``...).
    """
    from netslim.slimming import api

    if not isinstance(passes, int) or passes < 1:
        raise NetslimError(f"passes must be an integer >= 1, got {passes!r}")
    if max_layer_ratio is not None and not 0.0 < max_layer_ratio <= 1.0:
        raise NetslimError(f"max_layer_ratio must be in (0, 1], got {max_layer_ratio}")
    ratios = pass_ratios(ratio_per_pass, passes)

    def measure(m: nn.Module) -> dict[str, Any]:
        return measure_fn(m) if measure_fn is not None else default_measure(m, example_inputs)

    def train(m: nn.Module, index: int, phase: Phase) -> nn.Module:
        if train_fn is None:
            return m
        out = train_fn(m, index, phase)
        return out if isinstance(out, nn.Module) else m

    result = MultipassResult(model=model)
    for index, ratio in enumerate(ratios):
        start = time.perf_counter()
        entry: dict[str, Any] = {"pass": index + 1, "ratio": ratio, "max_layer_ratio": max_layer_ratio}
        if not (index == 0 and skip_first_sparsity):
            model = train(model, index, "sparsity")
        if evaluate_fn is not None:
            entry["trained"] = _as_eval(evaluate_fn(model))
        before = measure(model)
        plan = api.plan(model, example_inputs, ratio, max_layer_ratio=max_layer_ratio, **plan_kwargs)
        pruned = api.apply(model, plan, fold_beta=fold_beta)
        after = measure(pruned)
        entry.update(
            params_before=before["params"],
            params_after=after["params"],
            flops_before=before.get("flops"),
            flops_after=after.get("flops"),
            **_channel_counts(plan),
        )
        if evaluate_fn is not None:
            entry["pruned"] = _as_eval(evaluate_fn(pruned))
        if after_prune is not None:
            entry.update(after_prune(model, plan, pruned, index) or {})
        model = train(pruned, index, "finetune")
        if evaluate_fn is not None:
            entry["finetuned"] = _as_eval(evaluate_fn(model))
        entry["seconds"] = time.perf_counter() - start
        result.plans.append(plan)
        result.history.append(entry)
    result.model = model
    return result


def _channel_counts(plan: Any) -> dict[str, Any]:
    """Channels pruned / total and per-layer widths (before, after) from the plan."""
    meta = getattr(plan, "meta", {}) or {}
    out: dict[str, Any] = {
        "pruned_channels": meta.get("pruned_channels"),
        "total_channels": meta.get("total_channels"),
        "threshold": meta.get("threshold"),
    }
    readiness = getattr(plan, "readiness", None)
    if readiness is not None:
        out["readiness"] = readiness.to_dict()
    widths = getattr(plan, "widths", None)
    if callable(widths):
        out["layer_widths"] = {name: list(pair) for name, pair in widths().items()}
    return out
