"""CPU wall-clock latency you can believe: one timer for every latency netslim prints or publishes.

:class:`Timer` runs the functions being compared interleaved in one process (a, b, b, a, a, b, ...; with more
functions, orders that give each the same neighbours), after warm-up calls, and keeps the median and the
interquartile range of at least ``repeats`` (default 30) timed calls each. A measurement is *noisy* when
its IQR exceeds ``max_spread`` (10%) of its median or when the 1-minute load average exceeds the number of
CPU cores while it was taken; noisy measurements are re-taken (``retries`` more attempts) and, if they stay
noisy, returned with ``noisy=True`` and the reason, so that :func:`format_latency` never prints them as a
plain number. Clock and load average are injectable, which is how the tests feed the timer noisy and clean
sequences.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netslim._inputs import call_model, map_tensors
from netslim.errors import NetslimError

DEFAULT_REPEATS = 30
DEFAULT_WARMUP = 3
MAX_SPREAD = 0.10


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


def batch_of(inputs: Any, batch_size: int) -> Any:
    """Inputs at ``batch_size``: the first sample of each input tensor repeated along dim 0.

    ``inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs; the result is a tuple
    of positional inputs or, for a dict, a dict.
    """
    if batch_size < 1:
        raise NetslimError(f"batch sizes must be >= 1, got {batch_size}")

    def repeat(t: torch.Tensor) -> torch.Tensor:
        return t[:1].repeat(batch_size, *([1] * (t.dim() - 1))).contiguous() if t.dim() > 0 else t

    out = map_tensors(inputs, repeat)
    return (out,) if isinstance(out, torch.Tensor) else out


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Timing:
    """One latency measurement: median and quartiles (ms) of ``n`` timed calls, and whether it is noisy."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    n: int
    noisy: bool = False
    reason: str | None = None
    attempts: int = 1
    load_avg: float | None = None

    @property
    def iqr_ms(self) -> float:
        """Interquartile range in ms."""
        return self.q3_ms - self.q1_ms

    @property
    def spread(self) -> float:
        """IQR as a fraction of the median (0 when the median is 0)."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    @classmethod
    def from_samples(cls, samples: Sequence[float], **extra: Any) -> Timing:
        """A Timing from raw durations in ms (quartiles by the inclusive method)."""
        if not samples:
            raise NetslimError("no latency samples were taken; use repeats >= 1")
        q1, med, q3 = _quartiles(list(samples))
        return cls(median_ms=med, q1_ms=q1, q3_ms=q3, n=len(samples), **extra)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: median_ms, q1_ms, q3_ms, iqr_ms, n, noisy, reason, attempts, load_avg."""
        return {
            "median_ms": self.median_ms,
            "q1_ms": self.q1_ms,
            "q3_ms": self.q3_ms,
            "iqr_ms": self.iqr_ms,
            "n": self.n,
            "noisy": self.noisy,
            "reason": self.reason,
            "attempts": self.attempts,
            "load_avg": self.load_avg,
        }

    def __str__(self) -> str:
        return format_latency(self)


def _decimals(value: float) -> int:
    """Decimals that show ``value`` (ms) to 3 significant figures (none from 100 ms up)."""
    if value <= 0:
        return 3
    return max(0, 2 - math.floor(math.log10(value)))


def format_latency(entry: Timing | Mapping[str, Any] | float | None) -> str:
    """``"0.43 ms ±0.05"`` (± half the IQR), ``"... (noisy: load 3.1)"`` when noisy, ``"-"`` for None.

    A bare float (an old result without spread) is printed with ``(no spread)`` so it never passes for a
    checked measurement.
    """
    if entry is None:
        return "-"
    if isinstance(entry, (int, float)):
        return f"{float(entry):.{_decimals(float(entry))}f} ms (no spread)"
    d = entry.to_dict() if isinstance(entry, Timing) else entry
    places = _decimals(d["median_ms"])
    half_iqr = d.get("iqr_ms", d["q3_ms"] - d["q1_ms"]) / 2
    text = f"{d['median_ms']:.{places}f} ms ±{half_iqr:.{places}f}"
    if d.get("noisy"):
        text += f" (noisy: {d.get('reason') or 'spread'})"
    return text


def ratio_entry(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``after / before`` of two latency dicts: the ratio of medians, noisy when either side is."""
    if not before or not after or not before.get("median_ms"):
        return None
    reasons = [d["reason"] for d in (before, after) if d.get("noisy")]
    return {
        "ratio": after["median_ms"] / before["median_ms"],
        "noisy": bool(reasons),
        "reason": "; ".join(dict.fromkeys(r or "spread" for r in reasons)) or None,
    }


class Timer:
    """Interleaved timing with warm-up, quartiles, and bounded re-takes of noisy measurements.

    Args:
        repeats: timed calls per function and attempt (at least 30 by default).
        warmup: untimed calls per function before each attempt.
        max_spread: IQR / median above which a measurement is noisy (0.10).
        retries: extra attempts when any function's measurement is noisy.
        clock: seconds counter (``time.perf_counter``); inject a fake one in tests.
        load: 1-minute load average provider (``os.getloadavg``); return None to skip the check.
        cores: core count the load average is compared with (default: :func:`usable_cores`).
    """

    def __init__(
        self,
        *,
        repeats: int = DEFAULT_REPEATS,
        warmup: int = DEFAULT_WARMUP,
        max_spread: float = MAX_SPREAD,
        retries: int = 2,
        clock: Callable[[], float] = time.perf_counter,
        load: Callable[[], float | None] | None = None,
        cores: int | None = None,
    ) -> None:
        if repeats < 1 or warmup < 0 or retries < 0:
            raise NetslimError(
                f"need repeats >= 1, warmup >= 0, retries >= 0; got {repeats}, {warmup}, {retries}"
            )
        self.repeats, self.warmup, self.max_spread, self.retries = repeats, warmup, max_spread, retries
        self.clock = clock
        self.load = load if load is not None else lambda: load_average()
        self.cores = cores or usable_cores()

    def samples(
        self, fns: Sequence[Callable[..., Any]], setups: Sequence[Callable[[], Any] | None] | None = None
    ) -> list[list[float]]:
        """Raw durations (ms) of each function: warm-up, then ``repeats`` calls each, interleaved.

        Two functions run ABBA; three run every order of them in turn; four or more a seeded random order
        per round. So no function always runs right after the same other one: a call that sweeps the cache
        (a large dense layer) slows whatever follows it by 20% and more, which a fixed order would charge
        to one function only.

        With ``setups``, ``fns[j]`` is called as ``fns[j](setups[j]())`` and only that call is timed (e.g. a
        fresh copy of a model that the timed function changes in place); a ``None`` setup means no argument.
        """
        if setups is not None and len(setups) != len(fns):
            raise NetslimError(
                f"need one setup per function (None for none); got {len(setups)} for {len(fns)}"
            )
        prep = list(setups) if setups is not None else [None] * len(fns)

        def call(j: int) -> float:
            args = () if prep[j] is None else (prep[j](),)  # type: ignore[misc]
            start = self.clock()
            fns[j](*args)
            return (self.clock() - start) * 1e3

        for j in range(len(fns)):
            for _ in range(self.warmup):
                call(j)
        times: list[list[float]] = [[] for _ in fns]
        for order in _orders(len(fns), self.repeats):
            for j in order:
                times[j].append(call(j))
        return times

    def _judge(self, samples: list[float], load: float | None) -> Timing:
        timing = Timing.from_samples(samples, load_avg=load)
        reasons = []
        if load is not None and load > self.cores:
            reasons.append(f"load {load:.1f} > {self.cores} cores")
        if timing.spread > self.max_spread:
            reasons.append(f"IQR {100 * timing.spread:.0f}% of median")
        timing.noisy = bool(reasons)
        timing.reason = "; ".join(reasons) or None
        return timing

    def measure(
        self, fns: Sequence[Callable[..., Any]], setups: Sequence[Callable[[], Any] | None] | None = None
    ) -> list[Timing]:
        """Time ``fns`` interleaved; re-take (up to ``retries`` times) while any measurement is noisy.

        ``setups``: see :meth:`samples` (untimed per-call preparation). Returns one :class:`Timing` per
        function from the least noisy attempt (all functions from the same attempt, so ratios between them
        stay interleaved).
        """
        if not fns:
            return []
        best: list[Timing] | None = None
        attempt = 0
        while attempt <= self.retries:
            attempt += 1
            before = self.load()
            raw = self.samples(fns, setups)
            after = self.load()
            loads = [v for v in (before, after) if v is not None]
            timings = [self._judge(s, max(loads) if loads else None) for s in raw]
            if best is None or _badness(timings) < _badness(best):
                best = timings
            if not any(t.noisy for t in timings):
                break
        assert best is not None
        for t in best:
            t.attempts = attempt
        return best


def _orders(n: int, rounds: int) -> Iterator[Sequence[int]]:
    """Call order of each round: ABBA for two, every permutation in turn for three, else seeded shuffles."""
    if n <= 3:
        perms = list(itertools.permutations(range(n)))
        for i in range(rounds):
            yield perms[i % len(perms)]
        return
    rng = random.Random(0)
    for _ in range(rounds):
        order = list(range(n))
        rng.shuffle(order)
        yield order


def _badness(timings: Sequence[Timing]) -> tuple[int, float]:
    return sum(t.noisy for t in timings), max(t.spread for t in timings)


def time_calls(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int) -> list[list[float]]:
    """Raw interleaved durations (ms) per function, without re-takes (see :class:`Timer` for judged ones)."""
    return Timer(repeats=repeats, warmup=warmup, retries=0).samples(fns)


def forward_fn(model: nn.Module, inputs: Any) -> Callable[[], Any]:
    """A no-argument callable running one inference forward of ``model`` on ``inputs`` (a tensor, a tuple of
    positional inputs or a dict of keyword inputs; eval mode is the caller's job)."""

    def run() -> Any:
        with torch.inference_mode():
            return call_model(model, inputs)

    return run


def latency(
    models: Sequence[nn.Module],
    inputs: Any,
    batch_sizes: Sequence[int],
    *,
    timer: Timer | None = None,
) -> list[dict[int, Timing]]:
    """Forward latency of each model at each batch size, models interleaved; one Timing per cell."""
    timer = timer or Timer()
    result: list[dict[int, Timing]] = [{} for _ in models]
    for b in batch_sizes:
        batch = batch_of(inputs, b)
        for k, timing in enumerate(timer.measure([forward_fn(m, batch) for m in models])):
            result[k][b] = timing
    return result


def latency_ms(
    models: Sequence[nn.Module],
    inputs: Any,
    batch_sizes: Sequence[int],
    *,
    repeats: int = DEFAULT_REPEATS,
    warmup: int = DEFAULT_WARMUP,
) -> list[dict[int, float]]:
    """Median forward latency in ms of each model at each batch size (judged by :class:`Timer`)."""
    timed = latency(models, inputs, batch_sizes, timer=Timer(repeats=repeats, warmup=warmup))
    return [{b: t.median_ms for b, t in row.items()} for row in timed]
