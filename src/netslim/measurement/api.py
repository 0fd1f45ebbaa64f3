"""``netslim.measure`` and ``compare``: size, compute, memory and speed of a model as a plain dict.

Conventions (also returned in every result under ``"conventions"``):

* ``params``: learnable elements (weight masks folded in; buffers such as masks, BN running statistics
  and ``ChannelSelect`` indices excluded); ``nonzero_params``: those not exactly zero.
* ``macs``: multiply-accumulates of convolutions and linear layers at the batch of ``example_inputs``.
* ``flops`` = 2 x ``macs``. This is the Network Slimming paper's convention: it reproduces the published
  CIFAR-10 counts within 1% (VGG-19 7.97e8, ResNet-164 4.99e8, DenseNet-40 5.33e8 at batch 1).
* ``other_flops``: batch norm (2/element), activations, element-wise adds (1/element) and pooling
  (1 per window element), which ``compute_flops`` of the Rethinking-Network-Pruning code also counts;
  ``flops_all`` = ``flops`` + ``other_flops``.
* ``nonzero_macs`` / ``nonzero_flops``: a product with an exactly-zero weight is not counted.
* ``activation_bytes``: peak bytes of live activations (input included) during an eval forward;
  see :mod:`netslim.measurement.counter` for the liveness rule. ``activation_bytes_by_batch`` gives it
  at every latency batch size.
* ``latency``: CPU wall time of one forward under ``torch.inference_mode`` per batch size, with ``threads``
  intra-op threads, from :class:`netslim.measurement.latency.Timer`: models interleaved in one process,
  ``warmup`` calls, then ``repeats`` (>= 30 by default) timed calls; ``{"median_ms", "q1_ms", "q3_ms",
  "iqr_ms", "n", "noisy", "reason", ...}``. A measurement whose IQR exceeds 10% of its median or taken
  while the load average exceeds the core count is re-taken, and flagged ``noisy`` if it stays so.
  ``latency_ms`` repeats the medians (``{batch: ms}``) for convenience; print with ``format_latency``.

Example::

    >>> m = netslim.measure(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)),
    ...                     torch.randn(1, 3, 32, 32), latency=False)
    >>> m["macs"], m["flops"], m["params"]
    (266400, 532800, 72234)
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from torch import nn

from netslim._inputs import split_inputs
from netslim.errors import NetslimError
from netslim.measurement.counter import count
from netslim.measurement.files import saved_size
from netslim.measurement.latency import (
    DEFAULT_REPEATS,
    DEFAULT_WARMUP,
    Timer,
    batch_of,
    num_threads,
    ratio_entry,
)
from netslim.measurement.latency import latency as timed_latency
from netslim.measurement.params import count_params

FLOPS_CONVENTION = (
    "FLOPs = 2 x MACs of convolutions and linear layers (the Network Slimming paper's convention; bias "
    "adds excluded); other_flops counts batch norm (2 per element), activations and element-wise adds "
    "(1 per element) and pooling (1 per window element), flops_all = flops + other_flops; data movement "
    "(views, cat, index_select/ChannelSelect, padding) is 0"
)
MEMORY_CONVENTION = (
    "activation_bytes = peak over an eval forward of input bytes + live storages produced by operators "
    "(freed when their last tensor is garbage-collected); parameters and buffers excluded"
)
LATENCY_CONVENTION = (
    "CPU wall time per forward (torch.inference_mode, eval): models interleaved in one process, warm-up, "
    "then repeats timed calls; median with interquartile range; re-taken when IQR > 10% of the median or "
    "load average > core count, flagged noisy when it stays so"
)


class MeasureOptions(TypedDict, total=False):
    """The keyword options :func:`measure` and :func:`compare` pass on to :func:`compare_many` (which
    documents them and holds their defaults)."""

    latency: bool
    batch_sizes: Sequence[int]
    repeats: int
    warmup: int
    threads: int | None
    onnxruntime: bool
    file_size: bool
    inference_form: bool


def _batch_size(inputs: Any) -> int:
    """The batch of the first input tensor with a batch dimension (1 when there is none)."""
    args, kwargs = split_inputs(inputs)
    first = next((t for t in (*args, *kwargs.values()) if hasattr(t, "shape") and t.dim()), None)
    return int(first.shape[0]) if first is not None else 1


def _static(model: nn.Module, inputs: Any, batch_sizes: Sequence[int]) -> dict[str, Any]:
    params, nonzero = count_params(model)
    counted = count(model, inputs)
    batch = _batch_size(inputs)
    memory_by_batch = {batch: counted.activation_bytes}
    for b in batch_sizes:
        if b not in memory_by_batch:
            memory_by_batch[b] = count(model, batch_of(inputs, b), warn=False).activation_bytes
    return {
        "params": params,
        "nonzero_params": nonzero,
        "batch_size": batch,
        "macs": counted.macs,
        "flops": 2 * counted.macs,
        "nonzero_macs": counted.nonzero_macs,
        "nonzero_flops": 2 * counted.nonzero_macs,
        "other_flops": counted.other_flops,
        "flops_all": 2 * counted.macs + counted.other_flops,
        "activation_bytes": counted.activation_bytes,
        "activation_total_bytes": counted.activation_total_bytes,
        "activation_bytes_by_batch": memory_by_batch,
        "by_module": counted.by_module,
        "by_operator": counted.by_operator,
        "unsupported": counted.unsupported,
        "notes": _notes(counted.zero_cost_ops),
    }


def _notes(zero_cost: dict[str, int]) -> list[str]:
    notes = []
    if "aten.index_select" in zero_cost:
        notes.append(
            f"index_select (ChannelSelect) ran {zero_cost['aten.index_select']} time(s): counted as 0 FLOPs "
            "(data movement) but it copies its output"
        )
    return notes


def _conventions() -> dict[str, str]:
    return {"flops": FLOPS_CONVENTION, "memory": MEMORY_CONVENTION, "latency": LATENCY_CONVENTION}


def measure(
    model: nn.Module,
    example_inputs: Any,
    *,
    compare_to: nn.Module | None = None,
    **options: Unpack[MeasureOptions],
) -> dict[str, Any]:
    """Measure ``model`` on ``example_inputs`` (a tensor, a tuple of positional inputs or a dict of keyword
    inputs; counts are at its batch size).

    Returns a plain dict with ``params``, ``nonzero_params``, ``macs``, ``flops``, ``nonzero_macs``,
    ``nonzero_flops``, ``other_flops``, ``flops_all``, ``activation_bytes`` (+ ``_by_batch``),
    ``latency_ms`` (``{batch_size: median ms}``, empty when ``latency`` is False), ``threads``,
    ``file_bytes`` (netslim checkpoint size), ``by_module``, ``by_operator``, ``unsupported``, ``notes``
    and ``conventions``; ``latency`` holds the spread per batch size. ``options`` are those of
    :func:`compare_many` (``latency=True``, ``batch_sizes=(1, 64)``, ``repeats``, ``warmup``, ``threads``,
    ``onnxruntime=False``, ``file_size=True``, ``inference_form=False``). With ``inference_form`` latency
    is timed on :func:`netslim.inference_form` (fused BN, channels_last where faster), described under
    ``latency_form``. With ``onnxruntime`` it adds ``onnx_latency``/``onnx_latency_ms``. With
    ``compare_to`` it returns :func:`compare` ``(compare_to, model)`` instead (``compare_to`` is the
    reference, "before").
    """
    if compare_to is not None:
        return compare(compare_to, model, example_inputs, **options)
    return compare_many([model], example_inputs, **options)[0]


def compare_many(
    models: Sequence[nn.Module],
    example_inputs: Any,
    *,
    latency: bool = True,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
    threads: int | None = None,
    onnxruntime: bool = False,
    file_size: bool = True,
    inference_form: bool = False,
) -> list[dict[str, Any]]:
    """Measure several models on the same inputs; their latency repeats are interleaved. One dict each.

    ``example_inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs (counts at
    its batch size). ``latency``: time a forward at each of ``batch_sizes`` (``warmup`` calls, then
    ``repeats`` timed ones, with ``threads`` intra-op threads); ``onnxruntime``: also time the models
    exported to ONNX; ``file_size``: the netslim checkpoint's size.

    With ``inference_form`` latency is timed on each model's :func:`netslim.inference_form` (fused BN,
    channels_last where measured faster), described under ``"latency_form"``; counts stay those of the
    models as given.
    """
    args, kwargs = split_inputs(example_inputs)
    inputs: Any = kwargs if kwargs else args
    if kwargs and (onnxruntime or (latency and inference_form)):
        raise NetslimError(
            "onnxruntime timing and the inference form take positional inputs; pass a tensor or a tuple, "
            "or leave onnxruntime and inference_form off for keyword inputs"
        )
    batch_sizes = tuple(dict.fromkeys(int(b) for b in batch_sizes))
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        results = [_static(m, inputs, batch_sizes) for m in models]
        with num_threads(threads) as used:
            for r in results:
                r["threads"] = used
                r["latency_ms"] = {}
                r["latency"] = {}
            timed_models = list(models)
            if latency and inference_form:
                from netslim.inference import inference_form as to_form

                forms = [to_form(m, inputs, batch_sizes=batch_sizes) for m in models]
                timed_models = [f.model for f in forms]
                for r, f in zip(results, forms):
                    r["latency_form"] = f"inference form: {f.describe()}"
                    r["latency_form_decisions"] = f.decisions
            if latency:
                timed = _latency(timed_models, inputs, batch_sizes, Timer(repeats=repeats, warmup=warmup))
                for r, t in zip(results, timed):
                    r["latency"] = {b: timing.to_dict() for b, timing in t.items()}
                    r["latency_ms"] = {b: timing.median_ms for b, timing in t.items()}
            if onnxruntime:
                for m, r in zip(models, results):
                    onnx = _onnx_latency(m, inputs, batch_sizes, repeats, warmup, used)
                    r["onnx_latency"] = onnx
                    r["onnx_latency_ms"] = {b: d["median_ms"] for b, d in onnx.items()}
        for m, r in zip(models, results):
            r["file_bytes"] = saved_size(m) if file_size else None
            r["conventions"] = _conventions()
    finally:
        for m, mode in zip(models, was_training):
            m.train(mode)
    return results


def _onnx_latency(
    model: nn.Module,
    inputs: Any,
    batch_sizes: Sequence[int],
    repeats: int,
    warmup: int,
    threads: int,
) -> dict[int, dict[str, Any]]:
    from netslim.export import export_onnx, onnx_latency

    with tempfile.TemporaryDirectory(prefix="netslim-ort-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", batch_of(inputs, 1))
        timed = onnx_latency([path], inputs, batch_sizes, repeats=repeats, warmup=warmup, threads=threads)[0]
        return {b: t.to_dict() for b, t in timed.items()}


def _latency(
    models: Sequence[nn.Module], inputs: Any, batch_sizes: Sequence[int], timer: Timer
) -> list[dict[int, Any]]:
    return timed_latency(models, inputs, batch_sizes, timer=timer)


RATIO_KEYS = ("params", "nonzero_params", "macs", "flops", "nonzero_flops", "activation_bytes", "file_bytes")


def ratios(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after / before`` for the size, compute, memory and latency entries both results have."""

    def div(a: Any, b: Any) -> float | None:
        return None if a is None or not b else a / b

    out: dict[str, Any] = {k: div(after.get(k), before.get(k)) for k in RATIO_KEYS}
    for key in ("latency_ms", "onnx_latency_ms"):
        if key in before and key in after:
            out[key] = {b: div(after[key].get(b), v) for b, v in before[key].items()}
    for key in ("latency", "onnx_latency"):
        if key in before and key in after:
            out[key] = {b: ratio_entry(v, after[key].get(b)) for b, v in before[key].items()}
    out["activation_bytes_by_batch"] = {
        b: div(after["activation_bytes_by_batch"].get(b), v)
        for b, v in before.get("activation_bytes_by_batch", {}).items()
    }
    return out


def compare(
    model_a: nn.Module, model_b: nn.Module, example_inputs: Any, **options: Unpack[MeasureOptions]
) -> dict[str, Any]:
    """Measure ``model_a`` (before) and ``model_b`` (after) side by side, latency repeats interleaved;
    ``options`` as for :func:`compare_many`.

    Returns ``{"a": measure(a), "b": measure(b), "ratio": b / a}`` where ``ratio`` holds params, flops,
    activation memory, file size and latency per batch size.
    """
    a, b = compare_many([model_a, model_b], example_inputs, **options)
    return {"a": a, "b": b, "ratio": ratios(a, b)}
