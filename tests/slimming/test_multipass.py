"""multipass_slim: repeated train -> prune -> fine-tune with a per-pass per-layer cap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netslim
from netslim.errors import NetslimError
from netslim.slimming.multipass import MultipassResult, multipass_slim
from netslim.slimming.sparsity import BNSparsity

X = torch.randn(1, 1, 8, 8)


def net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 3),
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # one layer far weaker than the others
                m.weight.copy_(torch.rand(16, generator=g) + 0.01)
        model[4].weight.mul_(1e-3)
    return model.eval()


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_prune_only_passes_respect_the_per_layer_cap() -> None:
    model = net()
    result = multipass_slim(model, X, passes=2, ratio_per_pass=0.5, max_layer_ratio=0.5)
    assert isinstance(result, MultipassResult) and len(result.history) == 2 and len(result.plans) == 2
    h1, h2 = result.history
    assert h1["params_before"] == params(model)
    assert h1["params_after"] < h1["params_before"] and h2["params_after"] < h2["params_before"]
    assert h2["params_before"] == h1["params_after"]
    assert h1["flops_after"] < h1["flops_before"]
    for entry in result.history:
        for before, after in entry["layer_widths"].values():
            assert after >= before // 2, "no layer loses more than half its channels in one pass"
    # without the cap the weak layer alone would go almost entirely in the first pass
    widths = result.history[0]["layer_widths"]
    assert widths["4"] == [16, 8]
    assert result.model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    model_out, history = result
    assert model_out is result.model and history is result.history
    assert len(result.model.netslim_plans) == 2


def test_train_fn_phases_evaluations_and_hooks() -> None:
    calls: list[tuple[int, str, int]] = []

    def train_fn(m: nn.Module, index: int, phase: str) -> nn.Module | None:
        calls.append((index, phase, params(m)))
        return None

    def after_prune(before: nn.Module, plan, pruned: nn.Module, index: int) -> dict:
        return {"plain": params(netslim.apply(before, plan, fold_beta=False)) == params(pruned)}

    result = multipass_slim(
        net(),
        X,
        passes=2,
        ratio_per_pass=[0.3, 0.2],
        max_layer_ratio=None,
        train_fn=train_fn,
        evaluate_fn=lambda m: 0.5,
        after_prune=after_prune,
    )
    expected = [(0, "sparsity"), (0, "finetune"), (1, "sparsity"), (1, "finetune")]
    assert [(i, p) for i, p, _ in calls] == expected
    assert calls[1][2] < calls[0][2], "fine-tuning gets the pruned model"
    assert calls[2][2] == calls[1][2], "the next pass starts from the fine-tuned model"
    for entry, ratio in zip(result.history, (0.3, 0.2)):
        assert entry["ratio"] == ratio and entry["plain"] is True
        assert entry["trained"] == entry["pruned"] == entry["finetuned"] == {"accuracy": 0.5}

    skipped: list[str] = []
    multipass_slim(
        net(),
        X,
        passes=1,
        ratio_per_pass=0.3,
        skip_first_sparsity=True,
        train_fn=lambda m, i, p: skipped.append(p),
    )
    assert skipped == ["finetune"]


def test_train_fn_may_return_a_replacement_model() -> None:
    replacement = net(seed=5)

    def train_fn(m: nn.Module, index: int, phase: str) -> nn.Module:
        return replacement if phase == "sparsity" else m

    result = multipass_slim(
        net(), X, passes=1, ratio_per_pass=0.3, train_fn=train_fn, evaluate_fn=lambda m: {"id": id(m)}
    )
    assert result.history[0]["trained"] == {"id": id(replacement)}


def test_with_real_sparsity_training() -> None:
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)

    def train_fn(m: nn.Module, index: int, phase: str) -> None:
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        sparsity = BNSparsity(m, s=1e-2) if phase == "sparsity" else None
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(m(xs), ys).backward()
            if sparsity is not None:
                sparsity.apply_()
            opt.step()
        m.eval()

    def accuracy(m: nn.Module) -> float:
        with torch.no_grad():
            return float((m(xs).argmax(1) == ys).float().mean())

    result = multipass_slim(net(), X, passes=2, ratio_per_pass=0.4, train_fn=train_fn, evaluate_fn=accuracy)
    assert [e["pass"] for e in result.history] == [1, 2]
    assert all(0.0 <= e["finetuned"]["accuracy"] <= 1.0 for e in result.history)
    assert result.history[-1]["params_after"] == params(result.model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"passes": 0}, "passes"),
        ({"passes": 2, "ratio_per_pass": [0.5]}, "entries"),
        ({"ratio_per_pass": 1.5}, "ratios"),
        ({"max_layer_ratio": 0.0}, "max_layer_ratio"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(NetslimError, match=match):
        multipass_slim(net(), X, **kwargs)
