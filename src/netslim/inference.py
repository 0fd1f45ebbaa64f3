"""The inference form of a (slimmed) model: what it should run as on a CPU, with every choice measured.

:func:`inference_form` returns an eval-mode copy with

* weight masks folded in (``netslim.weights.finalize``) and BatchNorm folded into the conv/linear before it
  (:func:`netslim.fuse_bn` for ``nn.Sequential`` neighbours, then torch.fx's conv-BN fusion for modules
  that call conv and BN from ``forward``, kept only when it reproduces the outputs): one memory pass per
  BN less; BNs that follow no conv (pre-activation nets) stay;
* the ``channels_last`` memory format (NHWC: weights converted, 4-D inputs converted on entry) only where it
  is measured faster than the fused NCHW model at every batch size asked for, interleaved in one process
  (:class:`netslim.measurement.latency.Timer`); oneDNN's NHWC convolutions usually win on slimmed models,
  whose odd channel counts are poorly served by the blocked NCHW kernels;
* channel counts left as they are: rounding them up to multiples of 8/16 adds FLOPs and was not measured
  to pay on these CPUs, so it is not done (the slimming planner's ``round_to`` exists for targets where it
  does).

``netslim measure`` times latency in this form by default (saying so) and ``netslim export`` exports the
fused model. Example::

    form = netslim.inference_form(slimmed, torch.randn(1, 3, 32, 32))
    form.describe()          # "fused BN (16 layers), channels_last"
    form.model(x)            # same outputs as slimmed.eval()(x) up to ~1e-5
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.fuse import fuse_bn
from netslim.measurement.latency import Timer, Timing, batch_of, forward_fn, num_threads


class ChannelsLast(nn.Module):
    """Runs ``model`` (whose weights are channels_last) on inputs converted to channels_last on entry."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, *inputs: Any) -> Any:
        """``model(*inputs)`` with every 4-D tensor input in channels_last memory format."""
        return self.model(
            *(
                t.contiguous(memory_format=torch.channels_last)
                if isinstance(t, torch.Tensor) and t.dim() == 4
                else t
                for t in inputs
            )
        )


@dataclass
class InferenceForm:
    """The inference-form model and what was done to it (with the measurements behind each choice)."""

    model: nn.Module
    fused_bn: int = 0
    channels_last: bool = False
    rounded_channels: bool = False
    decisions: dict[str, Any] = field(default_factory=dict)

    @property
    def plain_model(self) -> nn.Module:
        """The model without the channels_last input wrapper (what ONNX export takes)."""
        return self.model.model if isinstance(self.model, ChannelsLast) else self.model

    def describe(self) -> str:
        """A short phrase for tables: e.g. ``"fused BN (16 layers), channels_last"``."""
        parts = [f"fused BN ({self.fused_bn} layers)" if self.fused_bn else "no BN to fuse"]
        parts.append("channels_last" if self.channels_last else "NCHW")
        return ", ".join(parts)


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _outputs(model: nn.Module, inputs: tuple[Any, ...]) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    with torch.inference_mode():
        out = model(*inputs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _same_outputs(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-4) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        scale = max(float(x.abs().max()) if x.numel() else 0.0, 1e-30)
        if float((x - y).abs().max()) > tol * scale:
            return False
    return True


def _fold_bn(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[nn.Module, int, str]:
    """Fold BN into the layer before it: Sequential neighbours first, then (for ResNet-style modules
    that call conv and BN from ``forward``) torch.fx's conv-BN fusion, kept only if it traces and
    reproduces the outputs. Returns the model, the number of BN layers folded and how."""
    before = _bn_count(model)
    model = fuse_bn(model, inplace=True)
    how = "nn.Sequential neighbours"
    if _bn_count(model):
        try:
            from torch.fx.experimental.optimization import fuse as fx_fuse

            reference = _outputs(model, inputs)
            traced = fx_fuse(copy.deepcopy(model))
            if _bn_count(traced) < _bn_count(model) and _same_outputs(reference, _outputs(traced, inputs)):
                model, how = traced, "nn.Sequential neighbours and torch.fx conv-BN fusion"
        except Exception:  # not symbolically traceable (data-dependent control flow, hooks): keep as is
            pass
    return model, before - _bn_count(model), how


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise NetslimError(
        "example_inputs must be a tensor or a tuple of tensors, e.g. torch.randn(1, 3, 32, 32)"
    )


def channels_last_wins(timings: dict[int, tuple[Timing, Timing]], margin: float = 0.0) -> tuple[bool, str]:
    """Whether channels_last (second Timing) beats NCHW (first) by more than ``margin`` at each batch size."""
    for b, (nchw, nhwc) in timings.items():
        if nhwc.median_ms >= (1 - margin) * nchw.median_ms:
            return False, f"b{b}: channels_last {nhwc.median_ms / nchw.median_ms:.2f}x NCHW"
    ratios = ", ".join(f"b{b} {nhwc.median_ms / nchw.median_ms:.2f}x" for b, (nchw, nhwc) in timings.items())
    return True, f"channels_last faster at every batch size ({ratios} of NCHW)"


def inference_form(
    model: nn.Module,
    example_inputs: Any,
    *,
    fuse: bool = True,
    channels_last: bool | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    threads: int | None = None,
    timer: Any = None,
) -> InferenceForm:
    """An eval-mode copy of ``model`` in its fastest measured CPU form; ``model`` is not changed.

    Args:
        fuse: fold masks and BatchNorm (True by default).
        channels_last: True/False to force the memory format; None (default) measures both at every
            ``batch_sizes`` (interleaved, with ``threads``) and keeps channels_last only if it wins at each.
        timer: anything with ``measure(fns) -> list[Timing]`` (default: a 15-repeat
            :class:`~netslim.measurement.latency.Timer`).

    Returns an :class:`InferenceForm` (``model``, ``fused_bn``, ``channels_last``, ``decisions``).
    """
    from netslim.weights.masks import finalize

    if not isinstance(model, nn.Module):
        raise NetslimError(f"inference_form needs an nn.Module, got {type(model).__name__}")
    inputs = _as_tuple(example_inputs)
    work = finalize(copy.deepcopy(model)).eval()
    fused, how = 0, "not asked"
    if fuse:
        work, fused, how = _fold_bn(work, inputs)
    form = InferenceForm(model=work, fused_bn=fused)
    form.decisions["fuse_bn"] = how
    four_d = any(isinstance(t, torch.Tensor) and t.dim() == 4 for t in inputs)
    if channels_last is None and not (four_d and _has_conv2d(work)):
        form.decisions["channels_last"] = "no 4-D input or Conv2d: NCHW kept"
        return form
    if channels_last is None:
        candidate = ChannelsLast(copy.deepcopy(work))
        timer = timer or Timer(repeats=15, warmup=2, retries=1)
        timings: dict[int, tuple[Timing, Timing]] = {}
        with num_threads(threads):
            for b in dict.fromkeys(int(b) for b in batch_sizes):
                batch = batch_of(inputs, b)
                nchw, nhwc = timer.measure([forward_fn(work, batch), forward_fn(candidate, batch)])
                timings[b] = (nchw, nhwc)
        channels_last, why = channels_last_wins(timings)
        form.decisions["channels_last"] = why
        form.decisions["timings"] = {
            b: {"nchw": a.to_dict(), "channels_last": c.to_dict()} for b, (a, c) in timings.items()
        }
        if channels_last:
            form.model = candidate
    elif channels_last:
        form.model = ChannelsLast(work)
        form.decisions["channels_last"] = "forced"
    form.channels_last = isinstance(form.model, ChannelsLast)
    return form
