"""recalibrate_batchnorm: BN running statistics recomputed for the current weights, nothing else touched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from helpers import spawn_ranks
from netslim.errors import NetslimError
from netslim.train import recalibrate_batchnorm


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Dropout(0.5),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        nn.BatchNorm1d(5),
    )


def loader(n: int = 3, seed: int = 1, shift: float = 2.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(8, 3, 6, 6, generator=g) * 3 + shift, torch.zeros(8, dtype=torch.long)) for _ in range(n)
    ]


def expected_stats(model: nn.Sequential, batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain average of the first BN layer's batch means and unbiased batch variances, dropout off."""
    with torch.no_grad():
        outs = [model[0](x) for x, _ in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs])
    variances = torch.stack([o.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for o in outs])
    return means.mean(0), variances.mean(0)


def test_statistics_are_the_average_over_the_batches_of_the_current_weights() -> None:
    model = net()
    bn = model[2]
    bn.running_mean.fill_(50.0)  # stale statistics of some earlier network
    bn.num_batches_tracked.fill_(7)
    weights = {
        k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k
    }
    model.train()
    model[6].eval()  # a layer someone froze stays frozen
    data = loader(5)

    used = recalibrate_batchnorm(model, data, batches=3)

    assert used == 3
    mean, var = expected_stats(model, data[:3])  # only the first 3 batches, and dropout was off
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 7
    assert model.training and model[1].training and not model[6].training
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), f"{k} changed"


def test_stale_statistics_no_longer_wreck_evaluation() -> None:
    model = net()
    data = loader(4)
    with torch.no_grad():
        model.train()
        model[1].eval()
        reference = torch.cat([model(x) for x, _ in data])  # batch statistics, as in training
        model[2].running_mean.fill_(50.0)
        model[6].running_var.fill_(1e-4)
        model.eval()
        stale = torch.cat([model(x) for x, _ in data])
    recalibrate_batchnorm(model, data)
    with torch.no_grad():
        fresh = torch.cat([model(x) for x, _ in data])
    assert (fresh - reference).abs().mean() < 0.2 * (stale - reference).abs().mean()


def test_an_empty_loader_is_refused_and_leaves_the_old_statistics() -> None:
    model = net()
    model[2].running_mean.fill_(3.0)
    with pytest.raises(NetslimError, match="no batches"):
        recalibrate_batchnorm(model, [])
    assert torch.equal(model[2].running_mean, torch.full((4,), 3.0))
    assert model[2].momentum == 0.1


def test_a_failure_midway_puts_the_old_statistics_back() -> None:
    model = net()
    model[2].running_mean.fill_(3.0)

    def broken():
        yield from loader(1)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        recalibrate_batchnorm(model, broken(), batches=5)
    assert torch.equal(model[2].running_mean, torch.full((4,), 3.0))


def test_a_net_without_batchnorm_is_left_alone() -> None:
    assert recalibrate_batchnorm(nn.Sequential(nn.Flatten(), nn.Linear(108, 2)), loader(1)) == 0


@pytest.mark.parametrize("batches", [0, -1, 2.5])
def test_batches_must_be_a_positive_integer(batches) -> None:
    with pytest.raises(NetslimError, match="batches must be an integer >= 1"):
        recalibrate_batchnorm(net(), loader(1), batches=batches)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = net()
        recalibrate_batchnorm(model, loader(2, seed=10 + rank, shift=float(rank)))  # each rank its own data
        bn = model[2]
        Path(f"{out}.{rank}").write_text(json.dumps([bn.running_mean.tolist(), bn.running_var.tolist()]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs Gloo")
def test_ddp_ranks_end_with_the_average_of_their_statistics(tmp_path) -> None:
    results = spawn_ranks(_ddp_worker, str(tmp_path / "rank"))
    assert results[0] == results[1]
    model = net()
    per_rank = [expected_stats(model, loader(2, seed=10 + r, shift=float(r))) for r in range(2)]
    torch.testing.assert_close(torch.tensor(results[0][0]), (per_rank[0][0] + per_rank[1][0]) / 2)
    torch.testing.assert_close(torch.tensor(results[0][1]), (per_rank[0][1] + per_rank[1][1]) / 2)
