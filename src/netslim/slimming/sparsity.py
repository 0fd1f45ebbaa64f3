"""Channel-sparsity training for Network Slimming: L1 on the BatchNorm scales (gamma).

The paper's reference code never puts the L1 term into the loss; after ``loss.backward()`` it adds the
subgradient ``s * sign(gamma)`` to every BN weight gradient. :class:`BNSparsity` does the same as a trainer
callback (in ``after_backward``, where gradients are already unscaled under mixed precision, so the penalty
is not multiplied by the loss scale) and can be driven by hand in a loop of your own.

Two modes:

* ``"subgradient"`` (the paper): ``grad += s * sign(gamma)``. Use it with SGD. With Adam/AdamW the sign term
  is divided by Adam's running gradient magnitude, so its effect no longer scales with ``s``: a BN whose
  loss gradient is small is driven to 0 at ~``lr`` per step whatever ``s`` is, one with a large loss
  gradient is barely touched.
* ``"proximal"`` (the default with ``s="auto"``): a decoupled soft threshold after each optimizer step,
  ``gamma <- sign(gamma) * max(|gamma| - lr * s, 0)``, with ``lr`` the learning rate of gamma's parameter
  group. The shrink per step does not depend on the optimizer's gradient statistics, and small gammas
  become exactly 0. **Use this with Adam/AdamW.** Its strength is ``lr * s`` per step (like AdamW's
  decoupled weight decay), so with Adam at lr 1e-3 pick ``s`` about 100x the SGD value to get the shrink
  SGD at lr 0.1 gives (e.g. 1e-2 instead of 1e-4).

Budget-aware strength (``s="auto"``): instead of a fixed lambda, give the share of prunable channels you
intend to prune (``target``). A controller adapts the strength during training so that by the end of the
sparsity epochs at least that share of the penalised gammas is *near zero*, without driving far past it.

*Near zero* does not depend on the scale of the gammas: a channel is near zero when its ``|gamma|`` is
below ``near_zero`` (default 1e-2, i.e. 1%) times the mean ``|gamma|`` of the strongest 10% of the
penalised channels (channels every cut up to 90% keeps; see :func:`near_zero_stats`). The same
definition is used by :func:`netslim.plan`'s cut readiness. Each epoch's metrics carry ``l1_strength``
(the strength applied at the end of the epoch) and ``near_zero_share``.

The controller (:mod:`netslim.slimming.strength`) updates the strength every few optimizer steps: it
starts from the strength that would spend the budget, ramps the required share up over the first half of
the sparsity epochs, corrects with proportional + integral feedback on log(strength), pushes no harder
while the push costs training loss, and stays under bounds that keep the penalty from only shrinking whole
layers alike. :class:`BNSparsity` adds the *release* (default): once the ramp is over and the target
share is near zero, only the near-zero channels keep the penalty (so they stay silent) and the survivors
are released from it, so the second half of the sparsity epochs trains the network the cut will keep
(VGG-11 w0.25, 15 epochs: 9.04% test error before and after the 70% cut, against 11.15% / 11.14% when
every gamma stays penalised); the full penalty returns whenever the share falls below the target.

Every rank of a DDP run computes the strength from its (replicated) gammas and rank 0's value is broadcast,
so all ranks apply the same one. The controller's state is part of :meth:`BNSparsity.state_dict`, so a
resumed run continues bit-identically. When the budget is too short for the target, the share stalls
below it; :func:`netslim.plan`'s cut readiness then says so.

When the training loss of an auto run jumps to over twice its best (training destabilised: seen once in
six pre-ResNet-20 w0.25 runs at lr 0.1), the run goes back: the weights and optimizer state of the last
epoch end whose loss was healthy are restored, the strength is halved and the share schedule restarts from
the restored net's share (``rollback``, at most twice by default), and :class:`SparsityInstabilityWarning`
says so, with the epochs. When it cannot go back (no healthy epoch yet, rollbacks used up, ``rollback=0`` or
a by-hand loop) the warning says the sparse net will be worse than usual. ``netslim slim`` prints these as
warning lines and keeps them in results.json.

By hand::

    sparsity = BNSparsity(model, s=1e-4)
    loss.backward()            # with a GradScaler: scaler.scale(loss).backward(); scaler.unscale_(opt)
    sparsity.apply_()          # subgradient mode: adds s*sign(gamma) to the BN weight grads
    optimizer.step()           # or scaler.step(opt); scaler.update()
    sparsity.step(optimizer)   # proximal mode: soft threshold; a no-op in subgradient mode
    # s="auto" by hand: sparsity.set_budget(steps, lr, momentum) once, then every few steps
    # sparsity.update_strength(progress, lr=current_lr) with progress in [0, 1]
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from netslim.errors import NetslimError, UnknownNameError
from netslim.slimming.gammas import NEAR_ZERO, THRESHOLDS, gamma_stats, near_zero_stats, threshold_key
from netslim.slimming.strength import RAMP, UPDATES, StrengthController
from netslim.train.callbacks import Callback
from netslim.train.state import copy_training_state, restore_training_state

if TYPE_CHECKING:  # pragma: no cover
    from netslim.train.trainer import Trainer

Schedule = Literal["constant", "linear_decay"] | Callable[[float], float]
Exclude = nn.Module | str | Callable[[str, nn.Module], bool] | Iterable[nn.Module | str] | None


class SparsityInstabilityWarning(RuntimeWarning):
    """Sparsity training with ``s="auto"`` destabilised: the training loss rose to over twice its best."""


def sparsity_parameters(
    model: nn.Module,
    norm_types: Sequence[type[nn.Module]] = (nn.BatchNorm1d, nn.BatchNorm2d),
    exclude: Exclude = None,
) -> list[tuple[str, nn.Parameter]]:
    """The parameters the L1 term penalises, as ``(qualified parameter name, parameter)`` pairs.

    Today: the ``weight`` (gamma) of every norm layer of ``norm_types`` that ``exclude`` does not rule
    out. This is the one place that decides what is penalised.
    """
    return [
        (f"{name}.weight" if name else "weight", m.weight)
        for name, m in _select_norms(model, tuple(norm_types), exclude)
    ]


class BNSparsity(Callback):
    """L1 sparsity on BatchNorm scale factors, as a trainer callback or by hand.

    Args:
        model: the network whose BN layers are penalised (the parameters are captured now; build a new
            ``BNSparsity`` for a pruned copy).
        s: the penalty strength (the paper's lambda): 1e-4 for VGG, 1e-5 for ResNet/DenseNet on CIFAR;
            or ``"auto"``: adapt it during training so that ``target`` of the channels end near zero.
        target: with ``s="auto"``, the share of penalised channels to bring near zero (the pruning ratio
            you intend, in (0, 1)); with a fixed ``s`` it is not used.
        epochs: with ``s="auto"``, the number of sparsity epochs the target must be reached in (default:
            the trainer's ``config.epochs``, read at fit start).
        s_min, s_max: with ``s="auto"``, bounds of the strength (``s_max=None``: bounded only by the
            controller's own limits: in subgradient mode ``lr * s`` stays under half the near-zero line,
            in proximal mode under 5% of the strongest gammas' mean).
        update_every: with ``s="auto"``, optimizer steps between controller updates (default: about 100
            updates over the sparsity epochs).
        ramp: with ``s="auto"``, the fraction of the sparsity epochs over which the required near-zero
            share rises to the target (it holds afterwards).
        release: with ``s="auto"`` (default True), once the ramp is over and the target share is near
            zero, penalise only the near-zero channels (they stay silent) and release the survivors from the
            L1 term, so the rest of the sparsity epochs train the network that the cut will keep; the full
            penalty returns whenever the share falls below the target.
        layer_cap: with ``s="auto"``, the largest share of one layer's channels the penalty may bring near
            zero (e.g. 0.8): a layer at the cap keeps the penalty only on its near-zero channels, so no layer
            is emptied while the controller reaches the global target on the others (``None``: no cap).
            On VGG-11 w0.25 (15 + 15 epochs, 70% cut) it changed little: cap 0.8 fine-tuned to 8.19% test
            error against 8.22% without it; it is for nets where one layer would otherwise collapse.
        rollback: with ``s="auto"``, how many times a run whose training loss collapses (over twice its
            best) may return to the last epoch end with a healthy loss, at half the strength and with the
            share schedule restarted from there (0: never; it then only warns). The copy is kept on the CPU
            and in the resumable state, so checkpoints of an auto run hold the weights twice.
        near_zero: the relative bound of "near zero" (see :func:`near_zero_stats`).
        norm_types: module types whose ``weight`` is penalised.
        exclude: BNs to leave alone: a module, a qualified name (``"classifier.1"``; a prefix such as
            ``"classifier"`` excludes everything below it), a predicate ``f(name, module) -> bool``, or an
            iterable of modules and names.
        schedule: ``"constant"``, ``"linear_decay"`` (factor falls linearly from 1 to ``final_factor`` over
            the run) or a callable ``f(progress in [0, 1]) -> factor``; the effective rate is
            ``s * factor``. Fixed ``s`` only.
        final_factor: the factor at the end of the run for ``"linear_decay"``.
        mode: ``"subgradient"`` (paper; SGD) or ``"proximal"`` (decoupled soft threshold; Adam). Default
            (``None``): proximal with ``s="auto"``, subgradient with a fixed ``s`` (the paper's). With the
            auto strength the proximal mode cost less accuracy for the same near-zero share (VGG-11 w0.25,
            70% cut: 9.08% test error right after the cut, 8.22% fine-tuned, against 9.85% / 8.71% with
            the subgradient; docs/RESULTS.md, the standard suite's L1-strength study).
        hist_file: name of the JSON-lines file written in the trainer's ``run_dir`` with one gamma
            histogram per epoch (``None``: keep the histograms only in :attr:`history`).
    """

    def __init__(
        self,
        model: nn.Module,
        s: float | Literal["auto"] = 1e-4,
        *,
        target: float | None = None,
        epochs: int | None = None,
        s_min: float = 1e-8,
        s_max: float | None = None,
        update_every: int | None = None,
        ramp: float = RAMP,
        release: bool = True,
        layer_cap: float | None = None,
        rollback: int = 2,
        near_zero: float = NEAR_ZERO,
        norm_types: Sequence[type[nn.Module]] = (nn.BatchNorm1d, nn.BatchNorm2d),
        exclude: Exclude = None,
        schedule: Schedule = "constant",
        final_factor: float = 0.1,
        mode: Literal["subgradient", "proximal"] | None = None,
        hist_file: str | None = "gamma_hist.jsonl",
    ) -> None:
        self.auto = isinstance(s, str) and s == "auto"
        if not self.auto and not (
            isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) and s >= 0
        ):
            raise NetslimError(
                f"sparsity s must be a number >= 0 or 'auto', got {s!r} (the paper uses 1e-5..1e-4)"
            )
        if mode is None:
            mode = "proximal" if self.auto else "subgradient"
        if mode not in ("subgradient", "proximal"):
            raise UnknownNameError(
                f"unknown sparsity mode {mode!r}; use 'subgradient' (SGD) or 'proximal' (Adam)"
            )
        if not callable(schedule) and schedule not in ("constant", "linear_decay"):
            raise UnknownNameError(
                f"unknown sparsity schedule {schedule!r}; use 'constant', 'linear_decay' or a callable"
            )
        if not 0.0 <= final_factor <= 1.0:
            raise NetslimError(f"final_factor must be in [0, 1], got {final_factor}")
        if layer_cap is not None and not (isinstance(layer_cap, int | float) and 0.0 < layer_cap <= 1.0):
            raise NetslimError(f"layer_cap must be in (0, 1] or None, got {layer_cap!r} (e.g. 0.8)")
        if isinstance(rollback, bool) or not (isinstance(rollback, int) and rollback >= 0):
            raise NetslimError(f"rollback must be an integer >= 0, got {rollback!r} (default 2; 0: never)")
        if not (isinstance(near_zero, int | float) and 0.0 < near_zero < 1.0):
            raise NetslimError(f"near_zero must be in (0, 1), got {near_zero!r} (default 1e-2)")
        if self.auto:
            _check_auto(target, epochs, s_min, s_max, update_every, ramp, schedule)
        self.s = float(s_min) if self.auto else float(s)  # type: ignore[arg-type]
        self.target = float(target) if target is not None else None
        self.epochs = epochs
        self.s_min = float(s_min)
        self.s_max = float(s_max) if s_max is not None else None
        self.update_every = update_every
        self.ramp = float(ramp)
        self.release = bool(release)
        self.layer_cap = None if layer_cap is None else float(layer_cap)
        self._hold: list[torch.Tensor] | None = None  # release: per weight, the channels still penalised
        self.near_zero = float(near_zero)
        self.mode = mode
        self.schedule = schedule
        self.final_factor = float(final_factor)
        self.hist_file = hist_file
        self.progress = 0.0
        self.history: list[dict[str, Any]] = []
        self.named_norms = _select_norms(model, tuple(norm_types), exclude)
        if not self.named_norms:
            raise NetslimError(
                "BNSparsity found no BatchNorm layer with a learnable scale to penalise; the model needs "
                "affine BN layers (or loosen `exclude`/`norm_types`)"
            )
        self.weights: list[nn.Parameter] = [w for _, w in sparsity_parameters(model, norm_types, exclude)]
        self._ids = {id(w) for w in self.weights}
        self._warned_adam = False
        # s="auto": the controller's arithmetic and state (plain Python numbers: bit-identical resume)
        self._controller = (
            StrengthController(self.target, mode, self.ramp, self.near_zero, self.s_min, self.s_max)
            if self.auto and self.target is not None
            else None
        )
        self._lr: float | None = None  # the gammas' current learning rate (trainer hooks)
        self._loss_sum: torch.Tensor | None = None  # training loss summed since the last update
        self._loss_n = 0
        self.trace: list[tuple[float, ...]] | None = None  # set to [] to record every controller update
        # s="auto": where training destabilised without a way back (first time only),
        # {"progress", "loss_best", "loss"}
        self.unstable: dict[str, float] | None = None
        self.rollback = rollback
        # s="auto": the rollbacks taken, {"progress", "epoch" (returned to), "loss_best", "loss"}
        self.rollbacks: list[dict[str, float]] = []
        # the last epoch end with a healthy loss: {"epoch", "s", "controller", "hold", "train"}
        self._healthy: dict[str, Any] | None = None
        self._stale_loss = False
        self._steps = 0  # optimizer steps seen by after_step
        # set at fit start from the trainer
        self._epochs = 1
        self._steps_per_epoch: int | None = None
        self._every = update_every or 1
        self._step_in_epoch = 0

    # -- the penalty ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Qualified names of the penalised norm layers."""
        return [n for n, _ in self.named_norms]

    def factor(self, progress: float | None = None) -> float:
        """The schedule's multiplier at ``progress`` (fraction of the run done; default: the current one)."""
        p = min(max(self.progress if progress is None else progress, 0.0), 1.0)
        if callable(self.schedule):
            return float(self.schedule(p))
        if self.schedule == "linear_decay":
            return 1.0 - (1.0 - self.final_factor) * p
        return 1.0

    @property
    def current_s(self) -> float:
        """The effective penalty ``s * factor()`` used by the next update."""
        return self.s * self.factor()

    def set_progress(self, progress: float) -> None:
        """Tell a by-hand loop's schedule how far the run is (0 at the start, 1 at the end)."""
        self.progress = float(progress)

    @torch.no_grad()
    def apply_(self) -> None:
        """Subgradient mode: add ``s * sign(gamma)`` to every penalised BN weight gradient (after backward).

        Call it after gradients are unscaled (``scaler.unscale_(optimizer)``). A no-op in proximal mode,
        for weights without a gradient and when the effective rate is 0.
        """
        s = self.current_s
        if self.mode != "subgradient" or s == 0.0:
            return
        pairs = [(w.grad, w) for w in self.weights if w.grad is not None]
        if not pairs:
            return
        grads = [g for g, _ in pairs]
        signs = torch._foreach_sign([w for _, w in pairs])
        if self._hold is not None:  # released survivors: only the silenced channels keep the sign term
            torch._foreach_mul_(signs, self._held_masks([w for _, w in pairs]))
        torch._foreach_add_(grads, signs, alpha=s)

    def _held_masks(self, weights: list[nn.Parameter]) -> list[torch.Tensor]:
        """The release masks (1: still penalised) of ``weights``, a subset of :attr:`weights` in any order."""
        assert self._hold is not None
        held = {id(w): m for w, m in zip(self.weights, self._hold, strict=True)}
        return [held[id(w)] for w in weights]

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer | None = None, *, lr: float | None = None) -> None:
        """Proximal mode: soft-threshold gamma after ``optimizer.step()``; a no-op in subgradient mode.

        The threshold is ``lr * s`` with ``lr`` taken from the optimizer group holding each gamma, or the
        ``lr`` given (one of the two is required in proximal mode).
        """
        s = self.current_s
        if self.mode != "proximal" or s == 0.0:
            return
        if optimizer is None and lr is None:
            raise NetslimError("proximal BNSparsity.step needs the optimizer (or lr=) to size its threshold")
        if lr is not None:
            batches = [(float(lr), self.weights)]
        else:  # gammas not in any group are not being optimised: nothing moves them, nothing to shrink
            assert optimizer is not None
            batches = [
                (float(g["lr"]), [p for p in g["params"] if id(p) in self._ids])
                for g in optimizer.param_groups
            ]
        for group_lr, ws in batches:
            if not ws:
                continue
            t = group_lr * s
            # w - clamp(w, -t, t) == sign(w) * max(|w| - t, 0), one fused update per group
            inside = torch._foreach_clamp_min(torch._foreach_clamp_max(ws, t), -t)
            if self._hold is not None:  # released survivors: only the silenced channels are shrunk
                torch._foreach_mul_(inside, self._held_masks(ws))
            torch._foreach_sub_(ws, inside)

    # -- the controller (s="auto") -------------------------------------------------------------------
    def goal(self, progress: float) -> float:
        """The near-zero share the controller requires at ``progress`` (fraction of the sparsity epochs)."""
        return 0.0 if self._controller is None else self._controller.goal_at(progress)

    def set_budget(self, steps: int, lr: float, momentum: float = 0.0) -> None:
        """Tell the ``s="auto"`` controller the sparsity budget (the trainer hooks do this at fit start).

        ``steps``: optimizer steps of the sparsity epochs; ``lr``: the base learning rate of the gammas;
        ``momentum``: SGD momentum in subgradient mode (0 otherwise). The controller's starting strength is
        the one that, unopposed, would move a typical gamma to zero over the budget: ``ref * (1 - momentum)
        / (0.5 * lr * steps)`` (0.5: the mean of a decaying schedule), with ``ref`` the current scale.
        """
        if steps < 1 or not lr > 0 or not 0.0 <= momentum < 1.0:
            raise NetslimError(
                f"set_budget needs steps >= 1, lr > 0 and momentum in [0, 1); got {steps}, {lr}, {momentum}"
            )
        if self._controller is not None:
            self._controller.set_budget(steps, lr, momentum, self.near_zero_share()[1] or 1.0)
        if self._lr is None:
            self._lr = float(lr)

    @torch.no_grad()
    def update_strength(
        self, progress: float, *, lr: float | None = None, loss: float | None = None
    ) -> float:
        """One controller update at ``progress`` (fraction of the sparsity epochs done); returns the new s.

        ``lr``: the gammas' current learning rate; ``loss``: the mean training loss since the last update
        (by hand; the trainer hooks read both from the trainer). While the smoothed loss is more than 10%
        above the lowest it has been, the controller pushes no harder.

        A no-op for a fixed ``s``. The trainer hooks call it every ``update_every`` optimizer steps; a
        by-hand loop calls :meth:`set_budget` once and then this every few steps (by hand, a collapse of the
        loss is reported but not rolled back). Under DDP, rank 0's result is broadcast to every rank.
        """
        return self._update(progress, lr, loss, None)

    @torch.no_grad()
    def _update(
        self, progress: float, lr: float | None, loss: float | None, trainer: Trainer | None
    ) -> float:
        """:meth:`update_strength`; with the ``trainer``, a collapse of the loss rolls the run back."""
        ctl = self._controller
        if ctl is None:
            return self.s
        if ctl.base is None:
            raise NetslimError("BNSparsity(s='auto') by hand: call set_budget(steps, lr, momentum) first")
        if lr is not None:
            self._lr = float(lr)
        hurting = ctl.observe_loss(loss)
        # each rank sees its own loss: rank 0 decides for all, so every rank rolls back (or not) alike
        device = self.weights[0].device
        if _broadcast_from_rank0(float(ctl.spiking()), device) > 0.5:
            if trainer is not None and self._healthy is not None and len(self.rollbacks) < self.rollback:
                self._roll_back(trainer, progress)
                return self.s
            if self.unstable is None:
                self._report_instability(progress)
        share, ref = self.near_zero_share()
        log_s, error = ctl.update(progress, share, ref, self._lr, hurting)
        self.s = math.exp(_broadcast_from_rank0(log_s, device))
        assert self.target is not None
        self._hold = self._hold_masks(progress >= ctl.ramp_end and share >= self.target, ref)
        if self.trace is not None:
            self.trace.append((progress, share, ref, ctl.goal, error, ctl.integral, self.s))
        return self.s

    def _roll_back(self, trainer: Trainer, progress: float) -> None:
        """Go back to the last healthy epoch end (weights, optimizer state, controller), half as strong."""
        ctl, saved = self._controller, self._healthy
        assert ctl is not None and ctl.loss_ema is not None and saved is not None
        event = {"progress": progress, "epoch": saved["epoch"]}
        event.update(loss_best=ctl.loss_best, loss=ctl.loss_ema)
        restore_training_state(trainer.model, trainer.optimizer, saved["train"])
        ctl.load_state_dict(saved["controller"])
        ctl.back_off(progress, self.near_zero_share()[0])
        self.s = max(saved["s"] / 2.0, self.s_min)
        hold = saved["hold"]
        self._hold = (
            None
            if hold is None
            else [h.to(w.device, w.dtype) for h, w in zip(hold, self.weights, strict=True)]
        )
        self._loss_sum, self._loss_n = None, 0
        self._stale_loss = True  # the trainer's last batch loss was computed before going back
        self.rollbacks.append(event)
        left = self.rollback - len(self.rollbacks)
        warnings.warn(
            f"sparsity training destabilised {self._where(progress)}: the training loss rose from "
            f"{event['loss_best']:.3f} to {event['loss']:.3f}; went back to the end of sparsity epoch "
            f"{saved['epoch']}, halved the L1 strength and restarted its schedule from there ({left} more "
            f"rollback{'s' if left != 1 else ''} allowed)",
            SparsityInstabilityWarning,
            stacklevel=5,
        )

    def _keep_if_healthy(self, trainer: Trainer, epoch: int) -> None:
        """At an epoch end whose smoothed loss is healthy (rank 0's view), keep a copy to roll back to."""
        ctl = self._controller
        if ctl is None or not self.rollback or len(self.rollbacks) >= self.rollback:
            return
        if _broadcast_from_rank0(float(ctl.healthy()), self.weights[0].device) < 0.5:
            return
        self._healthy = {
            "epoch": int(epoch),
            "s": self.s,
            "controller": ctl.state_dict(),
            "hold": None if self._hold is None else [h.detach().to("cpu", copy=True) for h in self._hold],
            "train": copy_training_state(trainer.model, trainer.optimizer),
        }

    def _report_instability(self, progress: float) -> None:
        ctl = self._controller
        assert ctl is not None and ctl.loss_ema is not None
        self.unstable = {"progress": progress, "loss_best": ctl.loss_best, "loss": ctl.loss_ema}
        warnings.warn(self.instability_message(), SparsityInstabilityWarning, stacklevel=5)

    def _where(self, progress: float) -> str:
        epochs = self.epochs or self._epochs
        if epochs > 1:
            return f"in sparsity epoch {min(int(progress * epochs) + 1, epochs)}/{epochs}"
        return f"at {100 * progress:.0f}% of sparsity training"

    def instability_message(self) -> str | None:
        """One line saying where sparsity training destabilised without a way back and what to do; None
        while it has not."""
        if self.unstable is None:
            return None
        u = self.unstable
        why = ""
        if self.rollbacks and len(self.rollbacks) >= self.rollback:
            why = f" (after {len(self.rollbacks)} rollback{'s' if len(self.rollbacks) != 1 else ''})"
        return (
            f"sparsity training destabilised {self._where(u['progress'])}{why}: the training loss rose from "
            f"{u['loss_best']:.3f} to {u['loss']:.3f}, so the sparse net (and the cut) will be worse than "
            "usual; train again with a lower learning rate, a lower ratio or another seed"
        )

    def _hold_masks(self, released: bool, ref: float) -> list[torch.Tensor] | None:
        """Per weight, the channels that keep the penalty (1) after this update; ``None``: all of them.

        Released (``release`` and the target reached after the ramp): only the near-zero channels, in every
        layer. Otherwise, with ``layer_cap``: only the near-zero channels of layers at the cap. Every rank
        holds the same gammas, so every rank computes the same masks.
        """
        if not (self.release and released) and self.layer_cap is None:
            return None
        line = self.near_zero * ref
        near = [w.detach().abs() < line for w in self.weights]
        if self.release and released:
            return [n.to(w.dtype) for n, w in zip(near, self.weights, strict=True)]
        assert self.layer_cap is not None
        capped = [bool(n.float().mean() >= self.layer_cap) for n in near]
        if not any(capped):
            return None
        return [
            (n if c else torch.ones_like(n)).to(w.dtype)
            for n, c, w in zip(near, capped, self.weights, strict=True)
        ]

    def _progress(self, trainer: Trainer) -> float:
        spe = self._steps_per_epoch or max(self._step_in_epoch, 1)
        done = int(getattr(trainer, "epoch", 0) or 0) + min(self._step_in_epoch / spe, 1.0)
        return done / self._epochs

    # -- statistics ----------------------------------------------------------------------------------
    def near_zero_share(self) -> tuple[float, float]:
        """(share of penalised gammas near zero, reference scale); see :func:`near_zero_stats`."""
        return near_zero_stats(torch.cat([w.detach().flatten() for w in self.weights]), self.near_zero)

    def gamma_stats(self) -> dict[str, Any]:
        """Fractions of |gamma| below 1e-2 and 1e-3, the near-zero share and histograms over fixed bins of
        the penalised gammas (see :func:`netslim.slimming.gammas.gamma_stats`)."""
        return gamma_stats(torch.cat([w.detach().flatten() for w in self.weights]), self.near_zero)

    # -- trainer hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer) -> None:
        """Read the budget (auto), record the starting histogram as epoch 0 (not on resume), warn about
        subgradient + Adam."""
        opt = getattr(trainer, "optimizer", None)
        adaptive = isinstance(opt, torch.optim.Adam | torch.optim.AdamW)
        if self.mode == "subgradient" and adaptive and not self._warned_adam:
            warnings.warn(
                "BNSparsity(mode='subgradient') with Adam: the sign term is rescaled by Adam's "
                "denominator and does not scale with s; use mode='proximal' with Adam",
                stacklevel=2,
            )
            self._warned_adam = True
        if self.auto:
            self._read_budget(trainer)
        if not self.history:
            self._record(trainer, {"epoch": 0, "s": self.current_s, **self.gamma_stats()})

    def _read_budget(self, trainer: Trainer) -> None:
        config = getattr(trainer, "config", None)
        epochs = self.epochs if self.epochs is not None else getattr(config, "epochs", None)
        if not isinstance(epochs, int) or epochs < 1:
            raise NetslimError(
                "BNSparsity(s='auto') needs the number of sparsity epochs: pass epochs= "
                "or use it as a callback of a Trainer"
            )
        self._epochs = epochs
        loader = getattr(trainer, "train_loader", None)
        spe: int | None = None
        if loader is not None and hasattr(loader, "__len__"):
            spe = len(loader)
        cap = getattr(config, "max_batches", None)
        if cap is not None:
            spe = cap if spe is None else min(spe, cap)
        self._steps_per_epoch = max(spe, 1) if spe is not None else None
        total = epochs * (self._steps_per_epoch or 100)
        if self.update_every is None:
            self._every = max(1, round(total / UPDATES))
        lr = float(getattr(config, "lr", 0.0) or 0.0)
        if lr <= 0 and getattr(trainer, "optimizer", None) is not None:
            group = trainer.optimizer.param_groups[0]
            lr = float(group.get("initial_lr", group["lr"]))
        momentum = float(getattr(config, "momentum", 0.0) or 0.0)
        sgd = getattr(config, "optimizer", "sgd") == "sgd"
        self._lr = lr if lr > 0 else None
        if self._controller is not None and self._controller.base is None:  # a resumed run keeps its budget
            self.set_budget(
                total, lr if lr > 0 else 0.1, momentum if sgd and self.mode == "subgradient" else 0.0
            )
        if self._steps == 0:  # the first strength, before the first step (a resumed run keeps its own)
            self.update_strength(self._progress(trainer))

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Update the schedule's progress from the trainer's epoch counter."""
        epochs = max(int(getattr(getattr(trainer, "config", None), "epochs", 1) or 1), 1)
        self.progress = int(getattr(trainer, "epoch", 0) or 0) / epochs
        self._step_in_epoch = 0

    def after_backward(self, trainer: Trainer) -> None:
        """Add the subgradient (gradients are unscaled here)."""
        self.apply_()

    def after_step(self, trainer: Trainer) -> None:
        """Soft-threshold in proximal mode; every ``update_every`` steps, update the auto strength."""
        if self.mode == "proximal":
            self.step(trainer.optimizer)
        if self.auto:
            self._steps += 1
            self._step_in_epoch += 1
            if self._step_in_epoch > 1:  # trainer.loss is still the previous batch's loss here
                self._add_loss(trainer)
            if self._steps % self._every == 0:
                lrs = [
                    float(g["lr"])
                    for g in trainer.optimizer.param_groups
                    if any(id(p) in self._ids for p in g["params"])
                ]
                self._lr = max(lrs) if lrs else None
                loss = None
                if self._loss_sum is not None and self._loss_n:
                    loss = float(self._loss_sum) / self._loss_n
                self._loss_sum, self._loss_n = None, 0
                self._update(self._progress(trainer), None, loss, trainer)

    def _add_loss(self, trainer: Trainer) -> None:
        if self._stale_loss:
            self._stale_loss = False
            return
        batch_loss = getattr(trainer, "loss", None)
        if isinstance(batch_loss, torch.Tensor):  # summed as a tensor: no device sync per step
            loss = batch_loss.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._loss_n += 1

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Log the strength and sparsity into ``metrics`` and append this epoch's histogram to the run
        folder."""
        if self.auto:
            self._add_loss(trainer)  # the epoch's last batch
        stats = self.gamma_stats()
        epoch = metrics.get("epoch", getattr(trainer, "epoch", len(self.history)))
        for t in THRESHOLDS:
            metrics[threshold_key(t)] = stats[threshold_key(t)]
        metrics["sparsity_s"] = self.current_s
        metrics["l1_strength"] = self.current_s
        metrics["near_zero_share"] = stats["near_zero_share"]
        if self._controller is not None:
            metrics["near_zero_goal"] = self._controller.goal
            metrics["near_zero_target"] = self.target
            metrics["sparsity_unstable"] = self.unstable is not None
            metrics["sparsity_rollbacks"] = len(self.rollbacks)
            self._keep_if_healthy(trainer, epoch)
        self._record(trainer, {"epoch": epoch, "s": self.current_s, **stats})

    def _record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.history.append(record)
        run_dir = getattr(trainer, "run_dir", None)
        if self.hist_file and run_dir is not None and getattr(trainer, "is_main", True):
            path = Path(run_dir) / self.hist_file
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def state_dict(self) -> dict[str, Any]:
        """Schedule progress, the controller's state and the per-epoch histograms (plain Python values), and
        with ``s="auto"`` the CPU copy of the last healthy epoch end that a rollback returns to (tensors)."""
        state: dict[str, Any] = {"s": self.s, "progress": self.progress, "history": list(self.history)}
        if self._controller is not None:
            state["auto"] = {
                **self._controller.state_dict(),
                "steps": self._steps,
                "lr": self._lr,
                "loss_sum": None if self._loss_sum is None else float(self._loss_sum),
                "loss_n": self._loss_n,
                "target": self.target,
                "hold": None if self._hold is None else [m.bool().tolist() for m in self._hold],
                "unstable": self.unstable,
                "rollbacks": list(self.rollbacks),
                "healthy": self._healthy,  # tensors: the copy a collapse rolls back to
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (a resumed run continues the schedule and the controller)."""
        self.s = float(state.get("s", self.s))
        self.progress = float(state.get("progress", 0.0))
        self.history = list(state.get("history", []))
        auto = state.get("auto")
        if self._controller is not None and isinstance(auto, dict):
            self._controller.load_state_dict(auto)
            self._steps = int(auto["steps"])
            self._lr = auto.get("lr", self._lr)
            loss_sum = auto.get("loss_sum")
            self._loss_sum = None if loss_sum is None else torch.tensor(loss_sum, dtype=torch.float32)
            self._loss_n = int(auto.get("loss_n", 0))
            self.unstable = auto.get("unstable")
            self.rollbacks = list(auto.get("rollbacks", []))
            self._healthy = auto.get("healthy")
            hold = auto.get("hold")
            self._hold = (
                None
                if hold is None
                else [
                    torch.tensor(h, dtype=w.dtype, device=w.device)
                    for h, w in zip(hold, self.weights, strict=True)
                ]
            )


def _check_auto(
    target: Any, epochs: Any, s_min: float, s_max: float | None, update_every: Any, ramp: float, schedule: Any
) -> None:
    if target is None:
        raise NetslimError(
            "BNSparsity(s='auto') needs target=, the share of prunable channels you intend "
            "to prune (e.g. target=0.7 for ratio 0.7)"
        )
    if not (isinstance(target, int | float) and 0.0 < target < 1.0):
        raise NetslimError(f"target must be a share in (0, 1), got {target!r} (e.g. 0.7)")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise NetslimError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not (s_min > 0.0 and (s_max is None or (s_min < s_max and math.isfinite(s_max)))):
        raise NetslimError(f"need 0 < s_min < s_max, got {s_min} and {s_max}")
    if update_every is not None and (not isinstance(update_every, int) or update_every < 1):
        raise NetslimError(f"update_every must be an integer >= 1, got {update_every!r}")
    if not 0.0 <= ramp <= 1.0:
        raise NetslimError(f"ramp must be in [0, 1], got {ramp}")
    if schedule != "constant":
        raise NetslimError("s='auto' adapts the strength itself; leave schedule='constant'")


def _broadcast_from_rank0(value: float, device: torch.device) -> float:
    """``value`` as rank 0 has it (unchanged when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return value
    if dist.get_backend() == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def _select_norms(
    model: nn.Module, norm_types: tuple[type[nn.Module], ...], exclude: Exclude
) -> list[tuple[str, nn.Module]]:
    """The (name, module) norm layers with a learnable weight that ``exclude`` does not rule out."""
    predicate: Callable[[str, nn.Module], bool] | None = None
    names: set[str] = set()
    modules: set[int] = set()
    if callable(exclude) and not isinstance(exclude, nn.Module):
        predicate = exclude
    elif exclude is not None:
        items = [exclude] if isinstance(exclude, nn.Module | str) else list(exclude)
        for item in items:
            if isinstance(item, nn.Module):
                modules.update(id(m) for m in item.modules())
            elif isinstance(item, str):
                names.add(item)
            else:
                raise NetslimError(f"exclude entries must be modules or names, got {type(item).__name__}")
    all_names = {n for n, _ in model.named_modules()}
    unknown = sorted(n for n in names if n not in all_names)
    if unknown:
        raise UnknownNameError(
            f"exclude names {unknown} are not modules of the model; use names from model.named_modules()"
        )

    def excluded(name: str, module: nn.Module) -> bool:
        if predicate is not None:
            return bool(predicate(name, module))
        if id(module) in modules:
            return True
        return any(name == n or name.startswith(n + ".") for n in names)

    return [
        (name, m)
        for name, m in model.named_modules()
        if (isinstance(m, norm_types) or getattr(m, "netslim_channel_scale", False))  # channel gates too
        and isinstance(getattr(m, "weight", None), nn.Parameter)
        and not excluded(name, m)
    ]
