"""Channel selection: exact counts, ties, guards against empty layers, local/per-layer ratios."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming import apply, plan
from test_engine_models import REPLICAS, randomize_bn

X = torch.randn(2, 3, 16, 16)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Chain(nn.Module):
    """conv-bn-relu x3 with hand-set gammas."""

    def __init__(self, gammas: list[list[float]]) -> None:
        super().__init__()
        layers, c = [], 3
        for g in gammas:
            conv, bn = nn.Conv2d(c, len(g), 1, bias=False), nn.BatchNorm2d(len(g))
            with torch.no_grad():
                bn.weight.copy_(torch.tensor(g))
            layers += [conv, bn, nn.ReLU()]
            c = len(g)
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean((2, 3)))


def kept(p, fqn: str) -> list[int]:
    keep = p.layers[fqn]["out_keep"]
    return list(range(p.layers[fqn]["out_before"])) if keep is None else keep


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.7, 0.9])
def test_exact_count(ratio: float) -> None:
    model = randomize_bn(REPLICAS["vgg"]())
    p = plan(model, X, ratio)
    assert p.meta["pruned_channels"] == math.floor(ratio * p.meta["total_channels"])


def test_global_threshold_and_ties_deterministic() -> None:
    model = Chain([[0.5, 0.1, 0.3, 0.1], [0.1, 0.1, 0.9], [0.2, 0.05]])
    p = plan(model, X, 3 / 9)
    # weakest three: 0.05 (layer 3), then ties at 0.1 broken by layer order, then channel index
    assert kept(p, "body.1") == [0, 2] and kept(p, "body.4") == [0, 1, 2] and kept(p, "body.7") == [0]
    assert p.meta["threshold"] == pytest.approx(0.1)
    again = plan(model, X, 3 / 9)
    assert again.to_dict() == p.to_dict()


def test_largest_safe_ratio_and_refusal() -> None:
    model = Chain([[0.5, 0.4], [0.01, 0.02, 0.03], [0.6, 0.7]])
    p = plan(model, X, 0.1)
    # pruning the first two channels in order empties nothing; the third would empty body.4
    assert p.meta["max_safe_ratio"] == pytest.approx(2 / 7)
    with pytest.raises(PruningError, match=r"largest safe ratio is 0\.2857"):
        plan(model, X, 0.5, min_channels=0)
    with pytest.warns(UserWarning, match="only 4 of the requested 6"):
        p = plan(model, X, 0.99)  # min_channels=1: keeps the best channel of each layer
    assert kept(p, "body.4") == [2] and len(kept(p, "body.1")) == 1 and len(kept(p, "body.7")) == 1
    small = apply(model, p)
    assert small.body[3].out_channels == 1


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5", None])
def test_bad_ratio(bad: object) -> None:
    with pytest.raises(PruningError, match="ratio must be"):
        plan(REPLICAS["vgg"](), X, bad)


def test_no_batchnorm_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(X)
    with pytest.raises(PruningError, match="no BatchNorm"):
        plan(model, X, 0.5)


def test_ignored_layers_protected() -> None:
    model = randomize_bn(REPLICAS["vgg"]())
    p = plan(model, X, 0.5, ignored_layers=[model.features[0], "classifier"])
    assert p.layers["features.0"]["out_keep"] is None and p.layers["features.1"]["out_keep"] is None
    assert p.layers["classifier.0"]["out_keep"] is None
    with pytest.raises(PruningError, match="not a module"):
        plan(model, X, 0.5, ignored_layers=["nope"])


def test_local_scope_and_layer_ratios() -> None:
    model = Chain([[0.5] * 8, [0.1] * 4, [0.9] * 6])
    p = plan(model, X, 0.5, scope="local")
    assert [len(kept(p, f)) for f in ("body.1", "body.4", "body.7")] == [4, 2, 3]
    p = plan(model, X, 0.25, layer_ratios={"body.7": 0.5})
    assert len(kept(p, "body.7")) == 3
    # the global pool (12 channels) loses 3, all from the weakest layer
    assert len(kept(p, "body.4")) == 1 and len(kept(p, "body.1")) == 8
    with pytest.raises(PruningError, match="not a prunable layer"):
        plan(model, X, 0.5, layer_ratios={"fc": 0.5})


def test_max_layer_ratio_keeps_what_it_caps_and_never_raises_the_threshold() -> None:
    model = Chain([[0.5] * 8, [0.1] * 8, [0.9] * 8])
    # 12 requested: the eight 0.1 channels and four of the 0.5; the cap keeps four of the 0.1 channels
    # and does not take four more 0.5 channels instead (that would cut into the bulk)
    with pytest.warns(UserWarning, match="only 8 of the requested 12"):
        p = plan(model, X, 0.5, max_layer_ratio=0.5)
    assert len(kept(p, "body.4")) == 4 and len(kept(p, "body.1")) == 4 and len(kept(p, "body.7")) == 8
    assert p.pruned_channels == 8 and p.meta["threshold"] == pytest.approx(0.5)
    model = Chain([[0.5] * 8, [0.1] * 4 + [0.8] * 4, [0.9] * 8])
    p = plan(model, X, 0.25, max_layer_ratio=0.5)  # the cap does not bind: the plain global cut
    assert kept(p, "body.4") == [4, 5, 6, 7] and len(kept(p, "body.1")) == 6 and p.pruned_channels == 6


def test_round_to() -> None:
    model = Chain([[0.5] * 8, [0.1] * 8, [0.9] * 8])
    p = plan(model, X, 0.3, round_to=4)
    for f in ("body.1", "body.4", "body.7"):
        assert len(kept(p, f)) % 4 == 0


def test_score_reduce_on_residual_group() -> None:
    model = randomize_bn(REPLICAS["resnet"](), seed=7)
    stem = {}
    for reduce in ("max", "mean", "sum"):
        p = plan(model, X, 0.3, score_reduce=reduce)
        stem[reduce] = kept(p, "stem.1")
        assert kept(p, "layer1.0.bn2") == stem[reduce]  # one mask for the whole residual stage
    with pytest.raises(PruningError, match="score_reduce"):
        plan(model, X, 0.3, score_reduce="median")
