"""CPU wall-clock latency: warm-up, then the median of timed repeats under ``torch.inference_mode``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from netslim.errors import NetslimError


@contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Temporarily set ``torch.set_num_threads``; yields the thread count in effect."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise NetslimError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def batch_of(inputs: tuple[Any, ...], batch_size: int) -> tuple[Any, ...]:
    """Inputs at ``batch_size``: the first sample of each input tensor repeated along dim 0."""
    if batch_size < 1:
        raise NetslimError(f"batch sizes must be >= 1, got {batch_size}")
    out = []
    for t in inputs:
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            out.append(t[:1].repeat(batch_size, *([1] * (t.dim() - 1))).contiguous())
        else:
            out.append(t)
    return tuple(out)


def time_calls(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int) -> list[list[float]]:
    """Time each function ``repeats`` times, interleaved (a, b, a, b, ...), after ``warmup`` calls each.

    Returns one list of durations in milliseconds per function. Interleaving spreads machine noise
    evenly across the functions being compared.
    """
    if repeats < 1 or warmup < 0:
        raise NetslimError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
        for j in order:
            start = time.perf_counter()
            fns[j]()
            times[j].append((time.perf_counter() - start) * 1e3)
    return times


def forward_fn(model: nn.Module, inputs: tuple[Any, ...]) -> Callable[[], Any]:
    """A no-argument callable running one inference forward of ``model`` (eval mode is the caller's job)."""

    def run() -> Any:
        with torch.inference_mode():
            return model(*inputs)

    return run


def latency_ms(
    models: Sequence[nn.Module],
    inputs: tuple[Any, ...],
    batch_sizes: Sequence[int],
    *,
    repeats: int,
    warmup: int,
) -> list[dict[int, float]]:
    """Median forward latency in ms of each model at each batch size (models timed interleaved)."""
    result: list[dict[int, float]] = [{} for _ in models]
    for b in batch_sizes:
        batch = batch_of(inputs, b)
        times = time_calls([forward_fn(m, batch) for m in models], repeats, warmup)
        for k, samples in enumerate(times):
            result[k][b] = statistics.median(samples)
    return result
