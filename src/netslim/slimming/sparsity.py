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
* ``"proximal"``: a decoupled soft threshold after each optimizer step,
  ``gamma <- sign(gamma) * max(|gamma| - lr * s, 0)``, with ``lr`` the learning rate of gamma's parameter
  group. The shrink per step does not depend on the optimizer's gradient statistics, and small gammas
  become exactly 0. **Use this with Adam/AdamW.** Its strength is ``lr * s`` per step (like AdamW's
  decoupled weight decay), so with Adam at lr 1e-3 pick ``s`` about 100x the SGD value to get the shrink
  SGD at lr 0.1 gives (e.g. 1e-2 instead of 1e-4).

By hand::

    sparsity = BNSparsity(model, s=1e-4)
    loss.backward()            # with a GradScaler: scaler.scale(loss).backward(); scaler.unscale_(opt)
    sparsity.apply_()          # subgradient mode: adds s*sign(gamma) to the BN weight grads
    optimizer.step()           # or scaler.step(opt); scaler.update()
    sparsity.step(optimizer)   # proximal mode: soft threshold; a no-op in subgradient mode
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
from netslim.train.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from netslim.train.trainer import Trainer

Schedule = Literal["constant", "linear_decay"] | Callable[[float], float]
Exclude = nn.Module | str | Callable[[str, nn.Module], bool] | Iterable[nn.Module | str] | None

# Fixed histogram edges for |gamma|, the same every epoch so histograms compare: linear 0..2.5 in steps of
# 0.05 (the paper's Figure 4 view) and log-spaced 1e-6..10 with 5 bins per decade (detail near zero).
# Values past the last edge are counted in "above"; log values below 1e-6 (exact zeros too) in "log_below".
HIST_EDGES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(51))
LOG_HIST_EDGES: tuple[float, ...] = tuple(10.0 ** (-6 + i / 5) for i in range(36))
THRESHOLDS: tuple[float, ...] = (1e-2, 1e-3)


def _threshold_key(t: float) -> str:
    return f"gamma_frac_below_{t:.0e}".replace("e-0", "e-")


class BNSparsity(Callback):
    """L1 sparsity on BatchNorm scale factors, as a trainer callback or by hand.

    Args:
        model: the network whose BN layers are penalised (the parameters are captured now; build a new
            ``BNSparsity`` for a pruned copy).
        s: the penalty strength (the paper's lambda): 1e-4 for VGG, 1e-5 for ResNet/DenseNet on CIFAR.
        norm_types: module types whose ``weight`` is penalised.
        exclude: BNs to leave alone: a module, a qualified name (``"classifier.1"``; a prefix such as
            ``"classifier"`` excludes everything below it), a predicate ``f(name, module) -> bool``, or an
            iterable of modules and names.
        schedule: ``"constant"``, ``"linear_decay"`` (factor falls linearly from 1 to ``final_factor`` over
            the run) or a callable ``f(progress in [0, 1]) -> factor``; the effective rate is
            ``s * factor``.
        final_factor: the factor at the end of the run for ``"linear_decay"``.
        mode: ``"subgradient"`` (paper; SGD) or ``"proximal"`` (decoupled soft threshold; Adam).
        hist_file: name of the JSON-lines file written in the trainer's ``run_dir`` with one gamma
            histogram per epoch (``None``: keep the histograms only in :attr:`history`).
    """

    def __init__(
        self,
        model: nn.Module,
        s: float = 1e-4,
        *,
        norm_types: Sequence[type[nn.Module]] = (nn.BatchNorm1d, nn.BatchNorm2d),
        exclude: Exclude = None,
        schedule: Schedule = "constant",
        final_factor: float = 0.1,
        mode: Literal["subgradient", "proximal"] = "subgradient",
        hist_file: str | None = "gamma_hist.jsonl",
    ) -> None:
        if not (isinstance(s, int | float) and math.isfinite(s) and s >= 0):
            raise NetslimError(f"sparsity s must be a number >= 0, got {s!r} (the paper uses 1e-5..1e-4)")
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
        self.s = float(s)
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
        self.weights: list[nn.Parameter] = [m.weight for _, m in self.named_norms]
        self._warned_adam = False

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
        torch._foreach_add_(grads, signs, alpha=s)

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
        group_lr = _lr_by_param(optimizer) if optimizer is not None else {}
        for w in self.weights:
            w_lr = lr if lr is not None else group_lr.get(id(w))
            if w_lr is None:  # gamma is not being optimised: nothing moves it, nothing to shrink
                continue
            shrunk = (w.abs() - w_lr * s).clamp_(min=0.0)
            w.copy_(torch.sign(w) * shrunk)

    # -- statistics ----------------------------------------------------------------------------------
    @torch.no_grad()
    def gamma_stats(self) -> dict[str, Any]:
        """Fractions of |gamma| below 1e-2 and 1e-3 and histograms over the fixed bins.

        Returns ``{"n", "gamma_frac_below_1e-2", "gamma_frac_below_1e-3", "bin_edges", "counts", "above",
        "log_bin_edges", "log_counts", "log_below", "log_above"}``; ``counts[i]`` holds values in
        ``[bin_edges[i], bin_edges[i+1])`` (:data:`HIST_EDGES`), ``log_counts`` the same over
        :data:`LOG_HIST_EDGES`.
        """
        g = torch.cat([w.detach().abs().flatten().float().cpu() for w in self.weights])
        stats: dict[str, Any] = {"n": int(g.numel())}
        for t in THRESHOLDS:
            stats[_threshold_key(t)] = float((g < t).float().mean()) if g.numel() else 0.0
        _, lin, lin_above = _histogram(g, HIST_EDGES)  # nothing lies below the first linear edge, 0
        log_below, log, log_above = _histogram(g, LOG_HIST_EDGES)
        stats.update(bin_edges=list(HIST_EDGES), counts=lin, above=lin_above)
        stats.update(log_bin_edges=list(LOG_HIST_EDGES), log_counts=log, log_below=log_below)
        stats["log_above"] = log_above
        return stats

    # -- trainer hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer) -> None:
        """Record the starting |gamma| histogram as epoch 0 (not on resume); warn about subgradient + Adam."""
        opt = getattr(trainer, "optimizer", None)
        adaptive = isinstance(opt, torch.optim.Adam | torch.optim.AdamW)
        if self.mode == "subgradient" and adaptive and not self._warned_adam:
            warnings.warn(
                "BNSparsity(mode='subgradient') with Adam: the sign term is rescaled by Adam's "
                "denominator and does not scale with s; use mode='proximal' with Adam",
                stacklevel=2,
            )
            self._warned_adam = True
        if not self.history:
            self._record(trainer, {"epoch": 0, "s": self.current_s, **self.gamma_stats()})

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Update the schedule's progress from the trainer's epoch counter."""
        epochs = max(int(getattr(getattr(trainer, "config", None), "epochs", 1) or 1), 1)
        self.progress = int(getattr(trainer, "epoch", 0) or 0) / epochs

    def after_backward(self, trainer: Trainer) -> None:
        """Add the subgradient (gradients are unscaled here)."""
        self.apply_()

    def after_step(self, trainer: Trainer) -> None:
        """Soft-threshold in proximal mode."""
        if self.mode == "proximal":
            self.step(trainer.optimizer)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Log the sparsity fractions into ``metrics`` and append this epoch's histogram to the run folder."""
        stats = self.gamma_stats()
        epoch = metrics.get("epoch", getattr(trainer, "epoch", len(self.history)))
        for t in THRESHOLDS:
            metrics[_threshold_key(t)] = stats[_threshold_key(t)]
        metrics["sparsity_s"] = self.current_s
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
        """Schedule progress and the per-epoch histograms (plain Python values)."""
        return {"s": self.s, "progress": self.progress, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (a resumed run continues the schedule)."""
        self.s = float(state.get("s", self.s))
        self.progress = float(state.get("progress", 0.0))
        self.history = list(state.get("history", []))


def _histogram(values: torch.Tensor, edges: Sequence[float]) -> tuple[int, list[int], int]:
    """(count below edges[0], counts per bin, count at or above edges[-1])."""
    idx = torch.bucketize(values, torch.tensor(edges, dtype=torch.float32), right=True)
    binned = torch.bincount(idx, minlength=len(edges) + 1)
    return int(binned[0]), [int(c) for c in binned[1 : len(edges)]], int(binned[len(edges)])


def _lr_by_param(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): float(group["lr"]) for group in optimizer.param_groups for p in group["params"]}


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
