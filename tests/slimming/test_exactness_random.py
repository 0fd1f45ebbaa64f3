"""Random architectures (hypothesis): the slimmed model equals the masked original."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from torch import nn

from netslim.errors import PruningError
from netslim.slimming import apply, masked_model, plan
from test_engine_models import randomize_bn

OPS = ["convbn", "res", "dense", "preact_dense", "dw", "gconv", "se", "preact_res"]


class RandomNet(nn.Module):
    """Interprets a list of block names; every block keeps track of the running channel count."""

    def __init__(self, spec: list[str], widths: list[int], head: str) -> None:
        super().__init__()
        self.spec, self.head_kind = spec, head
        self.blocks = nn.ModuleList()
        c = 4
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        for op, w in zip(spec, widths):
            m = nn.Module()
            if op == "convbn":
                m.conv, m.bn = nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w)
                c = w
            elif op in ("res", "preact_res"):
                m.c1 = nn.Conv2d(c, w, 3, padding=1, bias=False)
                m.b1 = nn.BatchNorm2d(c if op == "preact_res" else w)
                m.c2, m.b2 = nn.Conv2d(w, c, 1, bias=False), nn.BatchNorm2d(c if op == "res" else w)
            elif op in ("dense", "preact_dense"):
                m.conv = nn.Conv2d(c, w, 3, padding=1, bias=op == "preact_dense")
                m.bn = nn.BatchNorm2d(c if op == "preact_dense" else w)
                c += w
            elif op == "dw":
                m.conv, m.bn = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c)
            elif op == "gconv":
                groups = 2 if c % 2 == 0 else 1
                m.conv = nn.Conv2d(c, 2 * w, 3, padding=1, groups=groups, bias=False)
                m.bn = nn.BatchNorm2d(2 * w)
                c = 2 * w
            elif op == "se":
                m.fc1, m.fc2 = nn.Conv2d(c, 2, 1), nn.Conv2d(2, c, 1)
            self.blocks.append(m)
        if head == "flatten":
            self.fc = nn.Sequential(nn.Linear(c * 4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
        else:
            self.fc = nn.Sequential(nn.Linear(c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for op, m in zip(self.spec, self.blocks):
            if op == "convbn":
                x = F.relu(m.bn(m.conv(x)))
            elif op == "res":
                x = F.relu(x + m.b2(m.c2(F.relu(m.b1(m.c1(x))))))
            elif op == "preact_res":
                x = x + m.c2(F.relu(m.b2(m.c1(F.relu(m.b1(x))))))
            elif op == "dense":
                x = torch.cat([x, F.relu(m.bn(m.conv(x)))], 1)
            elif op == "preact_dense":
                x = torch.cat([x, m.conv(F.relu(m.bn(x)))], 1)
            elif op in ("dw", "gconv"):
                x = F.relu6(m.bn(m.conv(x)))
            elif op == "se":
                x = x * torch.sigmoid(m.fc2(F.relu(m.fc1(F.adaptive_avg_pool2d(x, 1)))))
        if self.head_kind == "flatten":
            return self.fc(F.adaptive_max_pool2d(x, 2).flatten(1))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.lists(st.sampled_from(OPS), min_size=1, max_size=5),
    widths=st.lists(st.integers(2, 6), min_size=5, max_size=5),
    head=st.sampled_from(["flatten", "gap"]),
    ratio=st.floats(0.05, 0.9),
    reduce=st.sampled_from(["max", "mean", "sum"]),
    seed=st.integers(0, 1000),
)
def test_random_architectures_exact(
    spec: list[str], widths: list[int], head: str, ratio: float, reduce: str, seed: int
) -> None:
    torch.manual_seed(seed)
    model = randomize_bn(RandomNet(spec, widths, head), seed=seed)
    x = torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny nets: min_channels may cap the count
        try:
            p = plan(model, x, ratio, score_reduce=reduce)
        except PruningError as exc:
            # e.g. an SE gate over a concat ties one conv's channels to two producers: nothing is prunable
            assert "no BatchNorm channels can be pruned" in str(exc)
            reject()
    small = apply(model, p, fold_beta=False).eval()
    ref = masked_model(model, p).eval()
    with torch.no_grad():
        a, b = ref(x), small(x)
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max()) + 1e-7
    assert p.pruned_channels == p.meta["pruned_channels"] <= p.meta["total_channels"]
