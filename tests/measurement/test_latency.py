"""The one latency timer: interleaving, quartiles, noisy measurements flagged and never printed plain."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
import torch
from torch import nn

import netslim
from netslim.errors import NetslimError
from netslim.measurement.latency import Timer, Timing, format_latency, ratio_entry
from netslim.measurement.table import format_table


class FakeClock:
    """A clock whose consecutive (start, end) reads are ``durations`` seconds apart, cycling."""

    def __init__(self, durations: Iterable[float]) -> None:
        self.durations = itertools.cycle(durations)
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:  # an end read: the call took the next duration
            self.now += next(self.durations)
        else:
            self.now += 1.0  # time between calls is not measured
        return self.now


def noop() -> None:
    return None


def test_clean_sequence_is_not_flagged() -> None:
    clock = FakeClock([0.001, 0.00101, 0.00099, 0.001])
    timer = Timer(repeats=30, warmup=2, clock=clock, load=lambda: 0.5, cores=2)
    (t,) = timer.measure([noop])
    assert not t.noisy and t.reason is None and t.attempts == 1
    assert t.n == 30 and t.median_ms == pytest.approx(1.0, rel=0.02)
    assert t.q1_ms <= t.median_ms <= t.q3_ms
    assert format_latency(t) == "1.00 ms ±0.00"


def test_noisy_spread_is_retaken_then_flagged() -> None:
    # alternating 1 ms and 3 ms calls: IQR far above 10% of the median, on every attempt
    clock = FakeClock([0.001, 0.003])
    timer = Timer(repeats=30, warmup=0, retries=2, clock=clock, load=lambda: 0.5, cores=2)
    (t,) = timer.measure([noop])
    assert t.noisy and "IQR" in t.reason
    assert t.attempts == 3  # re-taken twice before giving up
    assert clock.reads == 2 * 30 * 3
    assert "(noisy: IQR" in format_latency(t)


def test_high_load_average_flags_even_a_tight_sequence() -> None:
    clock = FakeClock([0.24])  # the "240 ms" artefact: a steady but loaded machine
    timer = Timer(repeats=30, warmup=0, retries=1, clock=clock, load=lambda: 3.1, cores=2)
    (t,) = timer.measure([noop])
    assert t.noisy and t.reason == "load 3.1 > 2 cores" and t.load_avg == pytest.approx(3.1)
    assert format_latency(t) == "240 ms ±0 (noisy: load 3.1 > 2 cores)"


def test_retake_keeps_a_clean_attempt() -> None:
    loads = iter([5.0, 5.0, 0.2, 0.2])  # first attempt under load, second one quiet
    clock = FakeClock([0.002])
    timer = Timer(repeats=30, warmup=0, retries=2, clock=clock, load=lambda: next(loads), cores=2)
    (t,) = timer.measure([noop])
    assert not t.noisy and t.attempts == 2


def test_functions_are_interleaved_abba() -> None:
    calls: list[str] = []
    timer = Timer(repeats=4, warmup=1, load=lambda: None)
    timer.samples([lambda: calls.append("a"), lambda: calls.append("b")])
    assert calls == ["a", "b", *"abbaabba"]


def test_bare_numbers_are_never_printed_plain_and_ratios_carry_noise() -> None:
    assert format_latency(0.43) == "0.430 ms (no spread)"
    clean = Timing.from_samples([1.0, 1.0, 1.0]).to_dict()
    loaded = {**Timing.from_samples([2.0, 2.0, 2.0]).to_dict(), "noisy": True, "reason": "load 3.0 > 2 cores"}
    r = ratio_entry(clean, loaded)
    assert r["ratio"] == pytest.approx(2.0) and r["noisy"] and "load" in r["reason"]


def test_measure_keeps_the_spread_and_the_table_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("netslim.measurement.latency.load_average", lambda: 99.0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    r = netslim.measure(net, torch.randn(1, 3, 8, 8), batch_sizes=(1,), repeats=3, warmup=0, file_size=False)
    entry = r["latency"][1]
    assert {"median_ms", "q1_ms", "q3_ms", "iqr_ms", "n"} <= set(entry) and entry["n"] == 3
    assert entry["noisy"] and "load 99.0" in entry["reason"]
    assert r["latency_ms"][1] == entry["median_ms"]
    assert "(noisy: load 99.0" in format_table([r], ["net"])


def test_setups_run_untimed_before_each_call_and_feed_it() -> None:
    """A setup's work (e.g. copying a model the timed call changes) is not timed; its result is the arg."""
    made: list[int] = []
    seen: list[int] = []

    def setup() -> int:
        made.append(len(made))
        return made[-1]

    clock = FakeClock([0.001])
    timer = Timer(repeats=5, warmup=1, retries=0, clock=clock, load=lambda: None)
    a, b = timer.measure([seen.append, lambda: None], setups=[setup, None])
    assert seen == made == list(range(6))  # a fresh argument for the warm-up and every timed call
    assert clock.reads == 2 * 2 * 6  # only the calls are between clock reads, setups are outside
    assert a.n == b.n == 5
    with pytest.raises(NetslimError, match="one setup per function"):
        timer.measure([noop, noop], setups=[None])


def test_three_or_more_functions_get_balanced_orders() -> None:
    """A fixed a,b,c / c,b,a order always runs b right after a (a cache-sweeping call slows its follower);
    three functions cycle through all six orders, more get a seeded shuffle each round."""
    calls: list[str] = []
    timer = Timer(repeats=6, warmup=0, load=lambda: None)
    timer.samples([lambda k=k: calls.append(k) for k in "abc"])
    rounds = ["".join(calls[i : i + 3]) for i in range(0, 18, 3)]
    assert sorted(rounds) == sorted(["abc", "acb", "bac", "bca", "cab", "cba"])
    calls.clear()
    timer.samples([lambda k=k: calls.append(k) for k in "abcde"])
    rounds = ["".join(calls[i : i + 5]) for i in range(0, 30, 5)]
    assert all(sorted(r) == list("abcde") for r in rounds) and len(set(rounds)) > 1
