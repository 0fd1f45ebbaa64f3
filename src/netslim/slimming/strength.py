"""The budget-aware L1 strength behind ``BNSparsity(s="auto")``: a feedback controller on log(strength).

Given the share of penalised channels the user intends to prune (``target``), the controller adapts the
strength during the sparsity epochs so that by their end at least that share of the gammas is near zero
(see :func:`netslim.slimming.gammas.near_zero_stats`), without driving far past it. It updates every few
optimizer steps (about 100 updates over the sparsity epochs):

* start: the strength that, unopposed, would move a strong gamma (``ref``) to zero over the budget,
  ``ref * (1 - momentum) / (0.5 * lr * steps)`` (read from the trainer's config at fit start);
* schedule: the required near-zero share ramps linearly from 0 to ``target + 0.02`` over the first
  ``ramp`` (50%) of the sparsity epochs, then holds, so channels are removed gradually, weakest first,
  and the second half trains the survivors with the weak channels already silent;
* feedback: ``log(s) = log(start) + I + 3 e`` with ``e`` the shortfall of the share against the schedule
  (relative to the target; 0 inside a 5-point band above it, negative past the band) and ``I`` its
  integral (gain 40 per unit of progress; not integrated while a bound holds the strength);
* accuracy guard: while the smoothed training loss is more than 10% (+0.02) above its lowest, the
  controller pushes no harder (a positive error counts as 0);
* instability: a smoothed training loss above twice its lowest (+0.1) means training destabilised (seen
  once in six pre-ResNet-20 w0.25 runs at lr 0.1: the loss jumped from 0.5 to 1.8 in epoch 4 and the net
  ended 3.6 points worse than its seed's baseline); :class:`BNSparsity` then returns to the last healthy
  epoch end (:meth:`StrengthController.healthy`) at half the strength, with the schedule restarted from
  the share of that state (:meth:`StrengthController.back_off`), or says so when it cannot;
* bounds: in subgradient mode ``lr * s`` stays under half the near-zero line (a dead gamma jitters around
  zero by about ``lr * s``, and a larger strength mostly shrinks all gammas of a layer alike, which
  sparsifies nothing: BN layers followed by another BN are scale-free); in proximal mode one threshold
  ``lr * s`` stays under 5% of ``ref``.

The controller only does arithmetic on plain Python numbers (so a resumed run continues bit-identically);
:class:`netslim.slimming.sparsity.BNSparsity` measures the gammas, broadcasts the result under DDP and
applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

MARGIN = 0.02  # aim this far above the target share, so noise does not leave the end below it
BAND = 0.05  # shares up to (target + MARGIN + BAND) near zero are not pushed back
KP = 3.0  # proportional gain on log(strength) per unit of share error (relative to the target)
KI = 40.0  # integral gain on log(strength) per unit of share error per unit of progress
JITTER = 0.5  # subgradient mode: lr * s stays under this share of the near-zero line
PROX_STEP = 0.05  # proximal mode: lr * s stays under this share of the strongest gammas' mean
LOSS_TOL = 0.1  # push no harder while the smoothed training loss is this far above its best
LOSS_ABS = 0.02  # plus this much (nats), so noise on a near-zero loss does not count
SPIKE = 2.0  # a smoothed training loss above this multiple of its best (+ SPIKE_ABS): destabilised
SPIKE_ABS = 0.1  # nats: a loss near zero that doubles from 0.02 to 0.05 is noise, not a collapse
UPDATES = 100  # controller updates over the sparsity epochs when update_every is not given
RAMP = 0.5  # share of the sparsity epochs over which the required near-zero share rises to the target

# the fields that make up the controller's state, under the names BNSparsity.state_dict has always used
_STATE = (
    "integral",
    "last_progress",
    "goal",
    "base",
    "momentum",
    "loss_ema",
    "loss_best",
    "share",
    "ref",
    "restart",
)


@dataclass
class StrengthController:
    """The state and update rule of the auto L1 strength (see the module docstring).

    ``target``: the share of penalised channels to bring near zero; ``mode``: the BNSparsity mode (it sets
    the upper bound); ``near_zero``: the relative near-zero line; ``s_min`` / ``s_max``: bounds.
    """

    target: float
    mode: Literal["subgradient", "proximal"]
    ramp: float = RAMP
    near_zero: float = 1e-2
    s_min: float = 1e-8
    s_max: float | None = None
    integral: float = 0.0  # log(strength / base), the integrated share error
    base: float | None = None  # the strength that, unopposed, spends the budget
    momentum: float = 0.0
    loss_ema: float | None = None
    loss_best: float = math.inf
    last_progress: float = 0.0
    goal: float = 0.0  # the share required at the last update
    share: float | None = None  # the near-zero share at the last update
    ref: float | None = None  # the reference scale at the last update
    # after a rollback, the schedule restarts: (progress, share there, progress where it reaches the target)
    restart: tuple[float, float, float] | None = None

    def goal_at(self, progress: float) -> float:
        """The near-zero share required at ``progress`` (fraction of the sparsity epochs)."""
        final = min(self.target + MARGIN, 1.0)
        if self.restart is not None:
            start, share, end = self.restart
            if final <= share or end <= start:
                return final
            return share + (final - share) * min(max(progress - start, 0.0) / (end - start), 1.0)
        return final * min(max(progress, 0.0) / self.ramp, 1.0) if self.ramp > 0 else final

    @property
    def ramp_end(self) -> float:
        """The progress at which the required share reaches the target (later after a rollback)."""
        return self.ramp if self.restart is None else self.restart[2]

    def set_budget(self, steps: int, lr: float, momentum: float, ref: float) -> None:
        """The starting strength: the one that moves a gamma of scale ``ref`` to zero over ``steps`` SGD
        steps at a decaying rate from ``lr`` (0.5: the mean of a decaying schedule), with ``momentum``."""
        self.base = ref * (1.0 - momentum) / (0.5 * lr * steps)
        self.momentum = float(momentum)

    def observe_loss(self, loss: float | None) -> bool:
        """Fold the mean training loss since the last update into the smoothed loss; whether the push is
        costing accuracy (the smoothed loss more than 10% + 0.02 above its lowest)."""
        if loss is None or not math.isfinite(loss):
            return False
        self.loss_ema = loss if self.loss_ema is None else 0.7 * self.loss_ema + 0.3 * loss
        self.loss_best = min(self.loss_best, self.loss_ema)
        return not self.healthy()

    def healthy(self) -> bool:
        """Whether the smoothed training loss is within the accuracy guard (at most 10% + 0.02 above its
        lowest): a state worth returning to after a collapse."""
        if self.loss_ema is None:
            return False
        return self.loss_ema <= (1.0 + LOSS_TOL) * self.loss_best + LOSS_ABS

    def back_off(self, progress: float, share: float) -> None:
        """After a rollback to a state with near-zero ``share``, at ``progress``: halve the strength and
        restart the schedule from that share, reaching the target after ``ramp`` of the epochs left.

        Without the restart the returned state is far behind the schedule, and the controller's catch-up
        (many channels silenced within an epoch) is what destabilised the pre-ResNet-20 run a second time.
        """
        self.integral -= math.log(2.0)
        self.last_progress = float(progress)
        end = progress + (1.0 - progress) * self.ramp
        self.restart = (float(progress), float(share), float(end))

    def spiking(self) -> bool:
        """Whether the smoothed training loss is above twice its lowest (+0.1): training destabilised."""
        if self.loss_ema is None or not math.isfinite(self.loss_best):
            return False
        return self.loss_ema > SPIKE * self.loss_best + SPIKE_ABS

    def update(
        self, progress: float, share: float, ref: float, lr: float | None, hurting: bool = False
    ) -> tuple[float, float]:
        """One update at ``progress`` with the measured near-zero ``share`` and scale ``ref`` and the
        gammas' learning rate ``lr``. Returns ``(log strength, share error)``; the caller applies
        ``exp(log strength)`` (under DDP: rank 0's)."""
        if self.base is None:
            raise RuntimeError("StrengthController.update before set_budget")
        final = min(self.target + MARGIN, 1.0)
        goal = self.goal_at(progress)
        top = min(goal + BAND, 1.0)
        if share < goal:  # behind the schedule
            error = (goal - share) / final
        elif share > top:  # past the band: push back
            error = -min((share - top) / max(1.0 - self.target, 1e-6), 1.0)
        else:
            error = 0.0
        if hurting:  # the push is costing accuracy: push no harder
            error = min(error, 0.0)
        lo = math.log(self.s_min)
        hi = math.log(self.s_max) if self.s_max is not None else math.inf
        if lr is not None and ref > 0:
            if self.mode == "subgradient":
                # the sign term makes a dead gamma jitter around zero by about lr * s: keep that under
                # the near-zero line (a larger s also mostly shrinks every gamma alike, which sparsifies
                # nothing, and the jitter would hide the channels it did kill)
                hi = min(hi, math.log(JITTER * self.near_zero * ref / max(lr, 1e-12)))
            else:  # proximal: one soft threshold removes at most PROX_STEP of a strong gamma
                hi = min(hi, math.log(PROX_STEP * ref / max(lr, 1e-12)))
        dp = max(progress - self.last_progress, 0.0)
        base = math.log(self.base)
        integral = self.integral + KI * error * dp
        wanted = base + integral + KP * error
        # anti-windup: integrate only while the result is not held by a bound in the error's direction
        if not ((wanted > hi and error > 0) or (wanted < lo and error < 0)):
            self.integral = integral
        log_s = min(max(base + self.integral + KP * error, lo), hi)
        self.last_progress, self.goal, self.share, self.ref = float(progress), goal, share, ref
        return log_s, error

    def state_dict(self) -> dict[str, Any]:
        """The controller's state as plain Python values (``loss_best`` None while unset)."""
        state = {k: getattr(self, k) for k in _STATE}
        if not math.isfinite(self.loss_best):
            state["loss_best"] = None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (keys missing from older checkpoints keep their values)."""
        self.integral = float(state["integral"])
        self.last_progress = float(state["last_progress"])
        self.goal = float(state.get("goal", 0.0))
        self.base = state.get("base", self.base)
        self.momentum = float(state.get("momentum", self.momentum))
        self.loss_ema = state.get("loss_ema")
        best = state.get("loss_best")
        self.loss_best = math.inf if best is None else float(best)
        self.share = state.get("share")
        self.ref = state.get("ref")
        restart = state.get("restart")
        self.restart = None if restart is None else (float(restart[0]), float(restart[1]), float(restart[2]))
