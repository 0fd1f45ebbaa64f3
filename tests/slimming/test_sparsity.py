"""BNSparsity: the L1 subgradient on BN scales, its schedule, exclusions, proximal mode and statistics."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from netslim.errors import NetslimError, UnknownNameError
from netslim.slimming.sparsity import BNSparsity


def tiny_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )
    for m in net.modules():  # random signs and magnitudes so sign(gamma) is not all +1
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 0.0, 0.5)
    return net


def batch(seed: int = 1, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def bn_weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_hook_adds_exact_sign_subgradient(opt_name: str) -> None:
    net = tiny_net()
    opt = (torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam)(net.parameters(), lr=0.01)
    sp = BNSparsity(net, s=1e-3)
    x, y = batch()
    nn.functional.cross_entropy(net(x), y).backward()
    before = [w.grad.clone() for w in bn_weights(net)]
    other_before = [p.grad.clone() for n, p in net.named_parameters() if n.endswith("bias")]
    sp.apply_()
    for w, g in zip(bn_weights(net), before):
        assert torch.equal(w.grad, g + 1e-3 * torch.sign(w.detach()))
    assert all(
        torch.equal(p.grad, g)
        for (n, p), g in zip([(n, p) for n, p in net.named_parameters() if n.endswith("bias")], other_before)
    ), "BN beta and other biases get no penalty"
    opt.step()


def test_penalty_is_added_after_unscale_under_grad_scaler() -> None:
    """With torch.amp.GradScaler('cpu') the effective update equals the no-AMP update."""
    x, y = batch()
    ref = tiny_net()
    amp = copy.deepcopy(ref)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt_amp = torch.optim.SGD(amp.parameters(), lr=0.1, momentum=0.9)
    sp_ref, sp_amp = BNSparsity(ref, s=1e-2), BNSparsity(amp, s=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(3):
        opt_ref.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        sp_ref.apply_()
        opt_ref.step()

        opt_amp.zero_grad()
        scaler.scale(nn.functional.cross_entropy(amp(x), y)).backward()
        scaler.unscale_(opt_amp)
        sp_amp.apply_()
        scaler.step(opt_amp)
        scaler.update()
    assert scaler.get_scale() == 2.0**10  # no overflow skipped a step
    for a, b in zip(ref.parameters(), amp.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _train(s: float, steps: int = 60, mode: str = "subgradient") -> torch.Tensor:
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sp = BNSparsity(net, s=s, mode=mode)  # type: ignore[arg-type]
    x, y = batch(n=32)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        sp.apply_()
        opt.step()
        sp.step(opt)
    return torch.cat([w.detach().abs().flatten() for w in bn_weights(net)])


def test_large_s_drives_gammas_towards_zero() -> None:
    """The paper's sanity check: a very large lambda pushes most scale factors to ~0; s=0 does not."""
    plain, sparse = _train(0.0), _train(0.2)
    # the sign subgradient makes gammas hover around 0 with an amplitude of about lr * s, hence 0.05
    assert (sparse < 0.05).float().mean() > 0.9
    assert (plain < 0.05).float().mean() < 0.2
    assert sparse.mean() < 0.1 * plain.mean()


def test_proximal_mode_zeroes_small_gammas_exactly() -> None:
    net = tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sp = BNSparsity(net, s=0.1, mode="proximal")
    before = [w.detach().clone() for w in bn_weights(net)]
    sp.apply_()  # no-op in proximal mode, even without grads
    sp.step(opt)  # threshold lr * s = 0.1
    for w, b in zip(bn_weights(net), before):
        expected = torch.sign(b) * (b.abs() - 0.1).clamp(min=0)
        assert torch.equal(w.detach(), expected)
        assert torch.equal(w.detach() == 0, b.abs() <= 0.1)
    assert (torch.cat([w.detach().flatten() for w in bn_weights(net)]) == 0).any()
    trained = _train(0.5, mode="proximal")
    assert (trained == 0).float().mean() > 0.5


def test_proximal_with_adam_uses_group_lr_and_needs_an_lr() -> None:
    net = tiny_net()
    bn = bn_weights(net)
    others = [p for p in net.parameters() if all(p is not w for w in bn)]
    opt = torch.optim.Adam([{"params": others, "lr": 1e-3}, {"params": bn, "lr": 0.5}])
    sp = BNSparsity(net, s=0.1, mode="proximal")
    before = [w.detach().clone() for w in bn]
    sp.step(opt)
    for w, b in zip(bn, before):
        assert torch.equal(w.detach(), torch.sign(b) * (b.abs() - 0.05).clamp(min=0))
    with pytest.raises(NetslimError, match="optimizer"):
        sp.step()


def test_schedules() -> None:
    net = tiny_net()
    assert BNSparsity(net, s=1e-4).factor(0.7) == 1.0
    lin = BNSparsity(net, s=1e-4, schedule="linear_decay", final_factor=0.1)
    assert [round(lin.factor(p), 6) for p in (0.0, 0.5, 1.0)] == [1.0, 0.55, 0.1]
    lin.set_progress(0.5)
    assert lin.current_s == pytest.approx(0.55e-4)
    custom = BNSparsity(net, s=2.0, schedule=lambda p: 1.0 if p < 0.5 else 0.0)
    custom.set_progress(0.75)
    x, y = batch()
    nn.functional.cross_entropy(net(x), y).backward()
    before = [w.grad.clone() for w in bn_weights(net)]
    custom.apply_()  # factor 0: nothing added
    assert all(torch.equal(w.grad, g) for w, g in zip(bn_weights(net), before))
    # a trainer-like object drives the progress through on_epoch_start
    lin.on_epoch_start(SimpleNamespace(epoch=3, config=SimpleNamespace(epochs=4)))  # type: ignore[arg-type]
    assert lin.progress == 0.75


def test_exclusions_by_name_module_prefix_and_predicate() -> None:
    net = tiny_net()
    assert BNSparsity(net).names == ["1", "4", "9"]
    assert BNSparsity(net, exclude="9").names == ["1", "4"]
    assert BNSparsity(net, exclude=[net[1], "4"]).names == ["9"]
    assert BNSparsity(net, exclude=lambda n, m: isinstance(m, nn.BatchNorm1d)).names == ["1", "4"]
    assert BNSparsity(net, norm_types=(nn.BatchNorm2d,)).names == ["1", "4"]
    nested = nn.Sequential(net)
    assert BNSparsity(nested, exclude="0.9").names == ["0.1", "0.4"]
    with pytest.raises(NetslimError, match="no BatchNorm"):
        BNSparsity(nested, exclude="0")  # a prefix excludes everything below it
    with pytest.raises(UnknownNameError, match="not modules"):
        BNSparsity(net, exclude="classifier")
    sp = BNSparsity(net, s=1.0, exclude="9")
    x, y = batch()
    nn.functional.cross_entropy(net(x), y).backward()
    g9 = net[9].weight.grad.clone()
    sp.apply_()
    assert torch.equal(net[9].weight.grad, g9)


def test_bad_arguments() -> None:
    net = tiny_net()
    with pytest.raises(NetslimError):
        BNSparsity(net, s=-1.0)
    with pytest.raises(UnknownNameError):
        BNSparsity(net, mode="l2")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError):
        BNSparsity(net, schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(NetslimError):
        BNSparsity(nn.Sequential(nn.Linear(2, 2)))


def test_epoch_stats_histogram_file_and_state(tmp_path) -> None:
    net = tiny_net()
    with torch.no_grad():
        w = net[1].weight
        w.copy_(torch.tensor([0.0, 5e-4, 5e-3, 0.05, 0.5, -0.5, 20.0, 1.0]))
    sp = BNSparsity(net, s=1e-4, schedule="linear_decay")
    trainer = SimpleNamespace(
        run_dir=tmp_path, is_main=True, epoch=0, config=SimpleNamespace(epochs=2), optimizer=None
    )
    metrics: dict = {"epoch": 1}
    sp.on_fit_start(trainer)  # type: ignore[arg-type]
    sp.on_epoch_start(trainer)  # type: ignore[arg-type]
    sp.on_epoch_end(trainer, metrics)  # type: ignore[arg-type]
    stats = sp.gamma_stats()
    n = stats["n"]
    assert n == 8 + 8 + 16
    assert sum(stats["counts"]) + stats["above"] == n
    assert stats["log_below"] + sum(stats["log_counts"]) + stats["log_above"] == n
    assert stats["above"] >= 1 and stats["log_above"] >= 1  # the 20.0
    assert stats["log_below"] >= 1  # the exact zero
    assert stats["counts"][0] == sum(1 for v in [0.0, 5e-4, 5e-3] if v < 0.05) + sum(
        int(w.detach().abs().lt(0.05).sum()) for w in bn_weights(net)[1:]
    )
    assert metrics["sparsity_s"] == pytest.approx(1e-4)
    small = sum(float(w.detach().abs().lt(1e-2).sum()) for w in bn_weights(net))
    assert metrics["gamma_frac_below_1e-2"] == pytest.approx(small / n)
    assert 0 < metrics["gamma_frac_below_1e-3"] < metrics["gamma_frac_below_1e-2"]
    records = [json.loads(line) for line in (tmp_path / "gamma_hist.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1], "the starting distribution is recorded as epoch 0"
    assert len(records[1]["counts"]) == len(records[1]["bin_edges"]) - 1

    trainer.epoch = 1
    sp.on_epoch_start(trainer)  # type: ignore[arg-type]
    sp.on_epoch_end(trainer, {"epoch": 2})  # type: ignore[arg-type]
    assert len((tmp_path / "gamma_hist.jsonl").read_text().splitlines()) == 3
    resumed = BNSparsity(net, s=1e-4, schedule="linear_decay")
    resumed.load_state_dict(sp.state_dict())
    assert resumed.progress == 0.5 and len(resumed.history) == 3
    resumed.on_fit_start(trainer)  # type: ignore[arg-type]
    assert len(resumed.history) == 3, "no second epoch-0 record after a resume"
    assert resumed.current_s == pytest.approx(sp.current_s)


def test_subgradient_with_adam_warns() -> None:
    net = tiny_net()
    sp = BNSparsity(net)
    trainer = SimpleNamespace(optimizer=torch.optim.Adam(net.parameters()), run_dir=None)
    with pytest.warns(UserWarning, match="proximal"):
        sp.on_fit_start(trainer)  # type: ignore[arg-type]


def test_as_trainer_callback_with_adam_proximal(tmp_path) -> None:
    from netslim.train import Trainer
    from netslim.train.config import TrainConfig

    net = tiny_net()
    batches = [batch(seed=i, n=16) for i in range(4)]
    sp = BNSparsity(net, s=5.0, mode="proximal", schedule="linear_decay", final_factor=0.5)
    config = TrainConfig(epochs=2, lr=0.01, optimizer="adam", schedule="constant", progress=False)
    history = Trainer(
        net, batches, batches[:1], config=config, callbacks=[sp], run_dir=tmp_path, device="cpu"
    ).fit()
    assert [h["sparsity_s"] for h in history] == [5.0, 3.75]
    assert history[-1]["gamma_frac_below_1e-3"] > 0.3
    assert (torch.cat([w.detach().flatten() for w in bn_weights(net)]) == 0).any()
    lines = (tmp_path / "gamma_hist.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
