"""BNSparsity(model, "auto", target=...): reaches its target, logs, resumes, runs under AMP and DDP."""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest
import torch
import torch.distributed as dist
from torch import nn

from helpers import spawn_ranks
from netslim.errors import NetslimError
from netslim.slimming.readiness import CutReadinessWarning
from netslim.slimming.sparsity import (
    BNSparsity,
    SparsityInstabilityWarning,
    near_zero_stats,
    sparsity_parameters,
)
from netslim.train import Trainer
from netslim.train.callbacks import Callback
from netslim.train.config import TrainConfig
from netslim.train.state import copy_training_state


def wide_net(seed: int = 0, width: int = 16) -> nn.Sequential:
    """Far more channels than the task needs, so most of them can go; gammas start spread out (as in a
    pre-trained net), not all at 1."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 2),
    )
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)
    return net


def batches(n_batches: int = 8, n: int = 32, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Label = whether the image's left half is brighter than its right half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 2, (n,), generator=g)
        x = 0.5 * torch.randn(n, 1, 8, 8, generator=g)
        x[:, :, :, :4] += (y.float() * 2 - 1).view(n, 1, 1, 1)
        out.append((x, y))
    return out


def fit(
    mode: str = "subgradient",
    epochs: int = 6,
    target: float = 0.5,
    run_dir=None,
    callbacks: tuple[Callback, ...] = (),
    resume: bool = False,
    n_batches: int = 8,
    **config_kw,
):
    net = wide_net()
    sp = BNSparsity(net, "auto", target=target, mode=mode, hist_file=None)  # type: ignore[arg-type]
    opt = {"optimizer": "adam", "lr": 0.01} if mode == "proximal" else {"lr": 0.1}
    config = TrainConfig(
        epochs=epochs,
        schedule="cosine",
        progress=False,
        deterministic=True,
        weight_decay=0.0,
        **opt,
        **config_kw,
    )
    data = batches(n_batches)
    trainer = Trainer(
        net, data, data[:2], config=config, callbacks=[sp, *callbacks], run_dir=run_dir, device="cpu"
    )
    history = trainer.fit(resume=resume)
    return net, sp, history


@pytest.mark.parametrize(("mode", "n_batches"), [("subgradient", 16), ("proximal", 8)])
def test_controller_reaches_the_target_without_overshooting(mode: str, n_batches: int) -> None:
    """Half of 32 channels to near zero in 6 short epochs (SGD + sign term; Adam + soft threshold)."""
    _, sp, history = fit(mode, n_batches=n_batches)
    share, _ = near_zero_stats(torch.cat([w.detach().flatten() for w in sp.weights]))
    assert history[-1]["near_zero_share"] == pytest.approx(share)
    assert 0.5 <= share <= 0.7, [h["near_zero_share"] for h in history]
    strengths = [h["l1_strength"] for h in history]
    assert all(s > 0 for s in strengths) and len(set(strengths)) > 1, "the strength adapts"
    assert history[-1]["val_acc"] >= 0.9, "the task is still solved with the survivors"
    assert history[0]["near_zero_share"] < 0.5, "the required share ramps up; it is not reached at once"
    assert [h["near_zero_goal"] for h in history][-1] == pytest.approx(0.52)


def test_near_zero_definition_is_scale_free() -> None:
    g = torch.tensor([0.0, 1e-5, 2e-3, 0.5, 0.8, 1.0, 1.2, 2.0, 0.9, 0.7])
    share, ref = near_zero_stats(g)
    assert ref == pytest.approx(2.0)  # the mean of the strongest 10% (one value here)
    assert share == pytest.approx(3 / 10)  # 2e-3 < 1% of 2.0
    assert near_zero_stats(g * 1000) == (share, pytest.approx(ref * 1000))
    assert near_zero_stats(-g)[0] == share, "signs do not matter"
    assert near_zero_stats(torch.zeros(5)) == (1.0, 0.0)
    # mostly dead: the reference stays with the live channels
    dead = torch.cat([torch.full((80,), 1e-4), torch.full((20,), 0.3)])
    assert near_zero_stats(dead) == (0.8, pytest.approx(0.3))
    # a continuous spread has no jump: moving one value across the line moves the share by one value
    spread = torch.logspace(-4, 0, 101)
    a, _ = near_zero_stats(spread)
    b, _ = near_zero_stats(torch.cat([spread[:-1], spread[-1:] * 1.01]))
    assert abs(a - b) <= 1 / 101


def same(a, b) -> bool:
    """Equal nested states, tensors compared element by element."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class StopAfter(Callback):
    """Simulates a killed run: raises at the end of epoch ``stop`` (before that epoch's checkpoint)."""

    def __init__(self, stop: int | None) -> None:
        self.stop = stop

    def on_epoch_end(self, trainer, metrics) -> None:
        if self.stop is not None and metrics["epoch"] == self.stop:
            raise KeyboardInterrupt


def test_resume_mid_run_is_bit_identical(tmp_path) -> None:
    net_a, sp_a, hist_a = fit(epochs=3, run_dir=tmp_path / "a", callbacks=(StopAfter(None),))
    with pytest.raises(KeyboardInterrupt):
        fit(epochs=3, run_dir=tmp_path / "b", callbacks=(StopAfter(2),))  # checkpoint after epoch 1
    net_b, sp_b, hist_b = fit(epochs=3, run_dir=tmp_path / "b", callbacks=(StopAfter(None),), resume=True)
    assert len(set(h["l1_strength"] for h in hist_a)) == 3, "the strength moved in every epoch"
    assert [h["l1_strength"] for h in hist_b] == [h["l1_strength"] for h in hist_a]
    assert [h["near_zero_share"] for h in hist_b] == [h["near_zero_share"] for h in hist_a]
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), name
    assert same(sp_b.state_dict(), sp_a.state_dict())
    assert sp_b.state_dict()["auto"]["healthy"]["epoch"] == 3, "the copy a rollback returns to is resumed too"
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["l1_strength"] for r in rows] == [h["l1_strength"] for h in hist_a]


def test_amp_bf16_autocast_runs_and_logs() -> None:
    """bf16 autocast on CPU: the controller runs on the fp32 master gammas and logs every epoch."""
    _, sp, history = fit(epochs=3, amp=True)
    assert all("l1_strength" in h and "near_zero_share" in h for h in history)
    assert len({h["l1_strength"] for h in history}) == 3
    assert all(torch.isfinite(w).all() and w.dtype == torch.float32 for w in sp.weights)


def test_by_hand_with_grad_scaler_matches_plain_loop() -> None:
    """The controller sees the same gammas with a GradScaler (the penalty is added after unscale_)."""
    data = batches(4)

    def loop(scaled: bool) -> list[float]:
        net = wide_net()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        sp = BNSparsity(net, "auto", target=0.5)
        sp.set_budget(steps=12, lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8) if scaled else None
        strengths = [sp.update_strength(0.0)]
        for step in range(12):
            x, y = data[step % 4]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x), y)
            if scaler is None:
                loss.backward()
                sp.apply_()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                sp.apply_()
                scaler.step(opt)
                scaler.update()
            strengths.append(sp.update_strength((step + 1) / 12))
        return strengths

    plain, scaled = loop(False), loop(True)
    assert len(set(plain)) > 1
    assert scaled == pytest.approx(plain, rel=1e-5)


def test_arguments_and_the_fixed_form() -> None:
    net = wide_net()
    with pytest.raises(NetslimError, match="target"):
        BNSparsity(net, "auto")
    with pytest.raises(NetslimError, match="target"):
        BNSparsity(net, "auto", target=1.0)
    with pytest.raises(NetslimError, match="schedule"):
        BNSparsity(net, "auto", target=0.5, schedule="linear_decay")
    with pytest.raises(NetslimError):
        BNSparsity(net, "fast")  # type: ignore[arg-type]
    with pytest.raises(NetslimError, match="set_budget"):
        BNSparsity(net, "auto", target=0.5).update_strength(0.1)
    fixed = BNSparsity(net, 1e-4)
    assert not fixed.auto and fixed.update_strength(0.5) == 1e-4
    # the mode follows the strength unless given: the paper's sign term for a fixed one, the soft
    # threshold (which cost less accuracy in the standard suite) for auto
    assert fixed.mode == "subgradient" and BNSparsity(net, "auto", target=0.5).mode == "proximal"
    assert BNSparsity(net, "auto", target=0.5, mode="subgradient").mode == "subgradient"
    names = [n for n, _ in sparsity_parameters(net)]
    assert names == ["1.weight", "4.weight"]
    assert [id(w) for w in fixed.weights] == [id(p) for _, p in sparsity_parameters(net)]


def test_fixed_strength_logs_the_same_keys() -> None:
    net = wide_net()
    sp = BNSparsity(net, 1e-3, hist_file=None)
    config = TrainConfig(epochs=1, progress=False, deterministic=True)
    history = Trainer(net, batches(2), None, config=config, callbacks=[sp], device="cpu").fit()
    assert history[0]["l1_strength"] == 1e-3 and history[0]["sparsity_s"] == 1e-3
    assert 0.0 <= history[0]["near_zero_share"] <= 1.0


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        net = wide_net()
        sp = BNSparsity(net, "auto", target=0.6, hist_file=None)
        # each rank its own half of every batch: BN statistics differ per rank, so the gammas could drift
        # apart in the last bits; the broadcast keeps the strength identical anyway
        data = [(x[rank::world], y[rank::world]) for x, y in batches(4)]
        config = TrainConfig(epochs=2, lr=0.1, progress=False, schedule="cosine")
        Trainer(net, data, None, config=config, callbacks=[sp], device="cpu").fit()
        result: dict = {"s": sp.s, "history": [h["s"] for h in sp.history]}
        # only rank 0's classifier is wrecked: rank 1's own loss stays healthy, but it must go back with
        # rank 0, after which both hold the same weights again
        net = wide_net()
        sp = BNSparsity(net, "auto", target=0.6, hist_file=None)
        config = TrainConfig(epochs=3, lr=0.1, progress=False, schedule="cosine")
        wreck = [Collapse(3)] if rank == 0 else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparsityInstabilityWarning)
            Trainer(net, data, None, config=config, callbacks=[sp, *wreck], device="cpu").fit()
        result["rollbacks"] = [r["epoch"] for r in sp.rollbacks]
        result["weights"] = [float(p.double().sum()) for p in net.parameters()]  # BN statistics are per rank
        with open(f"{out}.{rank}", "w") as fh:
            json.dump(result, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs Gloo")
def test_ddp_every_rank_applies_the_same_strength_and_rollback(tmp_path) -> None:
    results = spawn_ranks(_ddp_worker, str(tmp_path / "rank"))
    assert results[0] == results[1], "the same strength, rollback and weights on every rank"
    assert results[0]["s"] != results[0]["history"][0]
    assert results[0]["rollbacks"] == [2]


def test_copy_keeps_controller_state() -> None:
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5)
    sp.set_budget(steps=10, lr=0.1)
    sp.update_strength(0.3)
    clone = BNSparsity(copy.deepcopy(net), "auto", target=0.5)
    clone.load_state_dict(sp.state_dict())
    assert clone.s == sp.s and clone.update_strength(0.4) == sp.update_strength(0.4)


def test_multipass_gives_each_sparsity_phase_its_own_target() -> None:
    from netslim.slimming.multipass import multipass_slim, pass_ratios

    ratios = pass_ratios([0.5, 0.25], passes=2)
    seen: list[tuple[float | None, int]] = []

    def train_fn(model: nn.Module, index: int, phase: str) -> None:
        if phase != "sparsity":
            return
        sp = BNSparsity(model, "auto", target=ratios[index], hist_file=None)
        config = TrainConfig(epochs=2, lr=0.1, schedule="cosine", progress=False, deterministic=True)
        Trainer(model, batches(4), None, config=config, callbacks=[sp], device="cpu").fit()
        seen.append((sp.target, len(sp.weights[0])))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CutReadinessWarning)  # short runs: the cuts need not be clean
        result = multipass_slim(
            wide_net(),
            torch.zeros(1, 1, 8, 8),
            passes=2,
            ratio_per_pass=ratios,
            max_layer_ratio=None,
            train_fn=train_fn,
        )
    assert [t for t, _ in seen] == [0.5, 0.25]
    assert seen[1][1] < seen[0][1], "the second pass trains the already slimmed model"
    assert all("readiness" in h and "near_zero_share" in h["readiness"] for h in result.history)
    with pytest.raises(NetslimError, match="entries"):
        pass_ratios([0.5], passes=2)


@pytest.mark.parametrize("mode", ["subgradient", "proximal"])
def test_release_penalises_only_the_silenced_channels(mode: str) -> None:
    """Once released, the L1 term keeps the near-zero channels silent and leaves the survivors alone."""
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5, mode=mode, hist_file=None)  # release is the default
    sp.s = 0.5
    w = sp.weights[0]
    with torch.no_grad():
        w.copy_(torch.linspace(0.0, 1.0, w.numel()))
    before = w.detach().clone()
    sp._hold = [(x.detach() < 0.3).float() for x in sp.weights]  # what update_strength sets once released
    if mode == "subgradient":
        for x in sp.weights:
            x.grad = torch.zeros_like(x)
        sp.apply_()
        moved = w.grad != 0
    else:
        sp.step(lr=0.1)
        moved = w.detach() != before
    held = before < 0.3
    assert bool(moved[held & (before > 0)].all()), "silenced channels keep their penalty"
    assert not bool(moved[~held].any()), "survivors are released"


def test_release_engages_after_the_ramp_and_is_resumable() -> None:
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5, release=True, hist_file=None)
    sp.set_budget(steps=100, lr=0.1)
    with torch.no_grad():
        for x in sp.weights:
            x.copy_(torch.linspace(0.0, 1.0, x.numel()) ** 12)  # two thirds near zero
    sp.update_strength(0.2)
    assert sp._hold is None, "not before the ramp ends"
    sp.update_strength(0.8)
    assert sp._hold is not None and 0 < float(sp._hold[0].sum()) < sp.weights[0].numel()
    clone = BNSparsity(copy.deepcopy(net), "auto", target=0.5, release=True, hist_file=None)
    clone.load_state_dict(sp.state_dict())
    assert clone._hold is not None and torch.equal(clone._hold[0], sp._hold[0])


def test_layer_cap_keeps_a_layer_from_being_emptied() -> None:
    """A layer at the cap keeps the penalty only on its near-zero channels; layers under it keep all of it."""
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5, layer_cap=0.5, release=False, hist_file=None)
    sp.set_budget(steps=100, lr=0.1)
    first, second = sp.weights
    with torch.no_grad():
        first.copy_(torch.linspace(0.0, 1.0, first.numel()) ** 12)  # most of the layer near zero
        second.copy_(torch.linspace(0.5, 1.0, second.numel()))  # none near zero
    sp.update_strength(0.2)
    assert sp._hold is not None
    _, ref = near_zero_stats(torch.cat([first.detach(), second.detach()]))
    assert torch.equal(sp._hold[0].bool(), first.detach().abs() < 1e-2 * ref), "capped: only silenced ones"
    assert bool(sp._hold[1].all()), "under the cap: the whole layer keeps the penalty"
    with pytest.raises(NetslimError, match="layer_cap"):
        BNSparsity(net, "auto", target=0.5, layer_cap=1.5)


def test_a_loss_that_jumps_during_sparsity_training_is_reported_once() -> None:
    """The collapse seen on pre-ResNet-20 (loss 0.5 -> 1.8 within an epoch) is said once, with where and
    what to do; a noisy but healthy loss is not; the record survives a resume."""
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5, epochs=10, hist_file=None)
    sp.set_budget(steps=100, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SparsityInstabilityWarning)
        for i, loss in enumerate([2.0, 1.2, 0.8, 0.6, 0.5, 0.65, 0.45, 0.6, 0.5]):  # noisy, healthy
            sp.update_strength(i / 100, lr=0.1, loss=loss)
    assert sp.unstable is None and sp.instability_message() is None
    with pytest.warns(SparsityInstabilityWarning, match=r"destabilised in sparsity epoch 4/10") as seen:
        for i, loss in enumerate([1.8, 1.9, 2.0, 1.8, 1.7, 1.9]):
            sp.update_strength(0.31 + i / 100, lr=0.1, loss=loss)
    assert len(seen) == 1, "said once, not at every update"
    message = sp.instability_message()
    assert message is not None and "lower learning rate" in message
    assert sp.unstable is not None and sp.unstable["loss"] > 2 * sp.unstable["loss_best"]
    clone = BNSparsity(copy.deepcopy(net), "auto", target=0.5, epochs=10, hist_file=None)
    clone.load_state_dict(sp.state_dict())
    assert clone.unstable == sp.unstable


class Collapse(Callback):
    """Wrecks the classifier at the start of epoch ``at`` (1-based), as a diverging step would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_start(self, trainer) -> None:
        if trainer.epoch + 1 == self.at:
            with torch.no_grad():
                trainer.model[-1].weight.mul_(-30.0)


class Spy(Callback):
    """Keeps a copy of the training state at every epoch end and the one right after a rollback."""

    def __init__(self, sp: BNSparsity) -> None:
        self.sp, self.at_epoch_end, self.after_rollback = sp, {}, None

    def on_epoch_end(self, trainer, metrics) -> None:
        state = copy_training_state(trainer.model, trainer.optimizer)
        self.at_epoch_end[metrics["epoch"]] = (state, self.sp.s, trainer.optimizer.param_groups[0]["lr"])

    def after_step(self, trainer) -> None:
        if self.sp.rollbacks and self.after_rollback is None:
            state = copy_training_state(trainer.model, trainer.optimizer)
            self.after_rollback = (state, self.sp.s, trainer.optimizer.param_groups[0]["lr"], trainer.epoch)


def collapse_run(rollback: int = 2):
    net = wide_net()
    sp = BNSparsity(net, "auto", target=0.5, rollback=rollback, hist_file=None)
    spy = Spy(sp)
    config = TrainConfig(epochs=6, lr=0.1, schedule="cosine", progress=False, deterministic=True)
    data = batches(16)
    trainer = Trainer(net, data, data[:2], config=config, callbacks=[sp, Collapse(4), spy], device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SparsityInstabilityWarning)
        history = trainer.fit()
    said = [str(w.message) for w in caught if issubclass(w.category, SparsityInstabilityWarning)]
    return sp, spy, history, said


def test_a_collapse_rolls_back_to_the_last_healthy_epoch_end_at_half_the_strength() -> None:
    sp, spy, history, said = collapse_run()
    assert len(sp.rollbacks) == 1 and sp.unstable is None, said
    back_to = sp.rollbacks[0]["epoch"]
    assert back_to == 3, "the last epoch end before the collapse, whose loss was healthy"
    assert said == [
        "sparsity training destabilised in sparsity epoch 4/6: the training loss rose from "
        f"{sp.rollbacks[0]['loss_best']:.3f} to {sp.rollbacks[0]['loss']:.3f}; went back to the end of "
        "sparsity epoch 3, halved the L1 strength and restarted its schedule from there (1 more rollback "
        "allowed)"
    ]
    saved, s_saved, _ = spy.at_epoch_end[back_to]
    restored, s_restored, lr_restored, epoch_index = spy.after_rollback
    assert same(restored, saved), "weights, BN statistics and momentum buffers are the epoch end's"
    assert s_restored == pytest.approx(s_saved / 2)
    assert epoch_index == 3 and lr_restored == history[3]["lr"], "the schedule goes on; only weights go back"
    assert [h["sparsity_rollbacks"] for h in history] == [0, 0, 0, 1, 1, 1]
    ctl = sp._controller
    assert ctl is not None and ctl.restart is not None
    start, share, end = ctl.restart
    assert start == sp.rollbacks[0]["progress"] and end == pytest.approx(start + (1 - start) * 0.5)
    assert ctl.goal_at(start) == share < ctl.goal_at(end), "the schedule restarts from the restored net"
    clone = BNSparsity(wide_net(), "auto", target=0.5, hist_file=None)
    clone.load_state_dict(sp.state_dict())
    assert clone._controller is not None and clone._controller.restart == ctl.restart
    assert clone.rollbacks == sp.rollbacks
    assert history[-1]["val_acc"] >= 0.9 and history[-1]["near_zero_share"] >= 0.5, "and it recovers"


def test_without_rollback_a_collapse_is_only_reported() -> None:
    sp, spy, history, said = collapse_run(rollback=0)
    assert sp.rollbacks == [] and spy.after_rollback is None and sp.unstable is not None
    assert len(said) == 1 and "will be worse than usual" in said[0]
    assert history[-1]["near_zero_share"] < 0.5, "misses the target that the rolled-back run meets"
    for bad in (-1, 1.5, True):
        with pytest.raises(NetslimError, match="rollback must be an integer >= 0"):
            BNSparsity(wide_net(), "auto", target=0.5, rollback=bad)  # type: ignore[arg-type]
