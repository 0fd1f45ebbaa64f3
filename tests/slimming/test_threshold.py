"""The paper's global threshold and the per-group selection policies, as plain functions on score tensors."""

from __future__ import annotations

import math

import pytest
import torch

from netslim.slimming.threshold import (
    global_threshold,
    max_safe_count,
    prune_cap,
    round_kept_up,
    weakest,
)


def test_global_threshold_prunes_the_weakest_exact_count() -> None:
    scores = torch.tensor([0.9, 0.05, 0.4, 0.0, 0.7, 0.2, 0.3, 0.6, 0.1, 0.8])
    pruned, threshold = global_threshold(scores, 0.5)
    assert pruned.tolist() == [False, True, False, True, False, True, True, False, True, False]
    assert threshold == pytest.approx(0.3)  # the largest pruned score
    assert float(scores[~pruned].min()) > threshold


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_global_threshold_count_is_floor_of_ratio_times_total(ratio: float) -> None:
    scores = torch.rand(37, generator=torch.Generator().manual_seed(3)).round(decimals=1)  # many ties
    pruned, threshold = global_threshold(scores, ratio)
    n = math.floor(ratio * 37 + 1e-9)
    assert int(pruned.sum()) == n
    if n:
        assert float(scores[pruned].max()) == threshold <= float(scores[~pruned].min())
    else:
        assert threshold is None


def test_global_threshold_count_survives_float_error() -> None:
    # 0.7 * 10 == 6.999999999999999 in floating point: still 7 channels
    pruned, _ = global_threshold(torch.arange(10.0), 0.7)
    assert int(pruned.sum()) == 7


def test_global_threshold_ties_go_in_position_order() -> None:
    scores = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.9, 0.1])
    pruned, threshold = global_threshold(scores, 0.5)  # 3 of the four 0.1 channels: the first three
    assert pruned.tolist() == [False, True, True, True, False, False]
    assert threshold == pytest.approx(0.1)
    again, _ = global_threshold(scores.clone(), 0.5)
    assert torch.equal(again, pruned)
    same, _ = global_threshold(torch.zeros(8), 0.25)  # all equal: the first two
    assert same.tolist() == [True, True] + [False] * 6


def test_nothing_pruned_at_ratio_zero() -> None:
    pruned, threshold = global_threshold(torch.rand(5), 0.0)
    assert not pruned.any() and threshold is None


def test_weakest_and_caps() -> None:
    assert weakest(torch.tensor([0.3, 0.1, 0.1, 0.2]), 2).tolist() == [False, True, True, False]
    assert prune_cap(10, 1, None) == 9
    assert prune_cap(10, 1, 0.5) == 5  # keeps at least half
    assert prune_cap(3, 4, None) == 0


def test_max_safe_count_is_where_the_first_group_empties() -> None:
    a, b = torch.tensor([0.1, 0.2]), torch.tensor([0.05, 0.3, 0.4])
    # global order: b0 a0 a1 b1 b2; removing 3 empties group a
    assert max_safe_count([a, b]) == 2


def test_round_kept_up_gives_back_the_strongest_pruned() -> None:
    pruned = torch.tensor([True, True, True, False, False, True])
    scores = torch.tensor([0.1, 0.3, 0.2, 0.9, 0.8, 0.25])
    out = round_kept_up(pruned, scores, 4)  # 2 kept -> 4: channels 1 (0.3) and 5 (0.25) come back
    assert out.tolist() == [True, False, True, False, False, False]
