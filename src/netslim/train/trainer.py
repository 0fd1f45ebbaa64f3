"""The training loop: :class:`Trainer` and :func:`evaluate`.

One epoch is written out in :meth:`Trainer._train_epoch`; everything that is not the loop (optimizers,
schedules, RNG state, DDP, metric files) lives in its own module of this package.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netslim.errors import CorruptFileError, NetslimError, TrainingDivergedError
from netslim.io import atomic_torch_save
from netslim.train import distributed
from netslim.train.callbacks import Callback
from netslim.train.config import TrainConfig
from netslim.train.optim import build_optimizer
from netslim.train.runlog import MetricsLog
from netslim.train.schedules import build_scheduler
from netslim.train.state import get_rng_state, seed_everything, set_deterministic, set_rng_state

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "netslim-train"
CHECKPOINT_VERSION = 1


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """fp16 autocast on CUDA, bf16 on CPU, nothing elsewhere or when disabled."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if enabled and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str | None = None,
    *,
    amp: bool = False,
    max_batches: int | None = None,
    reduce: bool = True,
) -> dict[str, float | int]:
    """Mean cross-entropy loss and top-1 accuracy of ``model`` over ``loader``.

    Returns ``{"loss", "accuracy", "n"}``. Under DDP (``reduce=True``) the sums are all-reduced, so every
    rank gets the figures of the whole, sharded dataset; every rank must then call this. The model's
    train/eval mode is restored afterwards.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    with torch.no_grad():
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, amp):
                logits = model(x)
            sums[0] += F.cross_entropy(logits.float(), y, reduction="sum")
            sums[1] += (logits.argmax(dim=1) == y).sum()
            sums[2] += y.numel()
    model.train(was_training)
    if reduce:
        distributed.all_reduce_sum(sums)
    loss_sum, correct, n = sums.tolist()
    if n == 0:
        raise NetslimError("the evaluation loader yielded no samples; check the dataset split and limits")
    return {"loss": loss_sum / n, "accuracy": correct / n, "n": int(n)}


class Trainer:
    """Supervised classification training with hooks, checkpoints, mixed precision and DDP.

    Attributes callbacks may use: ``model`` (the unwrapped module), ``optimizer``, ``scheduler``, ``scaler``
    (a ``GradScaler`` or None), ``config``, ``epoch`` (0-based index of the epoch being trained),
    ``global_step`` (optimizer steps taken), ``run_dir``, ``device``, ``is_main``, ``world_size``,
    ``loss`` (mean loss of the last batch, detached) and ``history`` (metrics of finished epochs).

    The training loss is per-sample cross-entropy unless a callback's ``training_loss`` hook returns one
    (e.g. :class:`netslim.train.Distillation`); validation always reports cross-entropy.

    A non-finite training loss (or non-finite weights at the end of an epoch) stops the run with
    :class:`netslim.errors.TrainingDivergedError`; the checkpoint of the last good epoch is left as it was.

    Constructing a trainer seeds the global RNGs with ``config.seed`` (and turns on deterministic kernels
    when ``config.deterministic``); build the model before, seeded as you like.

    Example::

        trainer = Trainer(model, bundle.train, bundle.val, TrainConfig(epochs=3), run_dir="runs/x")
        history = trainer.fit()          # later: Trainer(...same...).fit(resume=True)
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
        val_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        config: TrainConfig | None = None,
        callbacks: Sequence[Callback] = (),
        run_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config if config is not None else TrainConfig()
        if self.config.deterministic:
            set_deterministic(True)
        seed_everything(self.config.seed)
        dist = distributed.info()
        self.is_main = dist.is_main
        self.world_size = dist.world_size
        self.device = torch.device(device) if device is not None else distributed.default_device()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.callbacks = list(callbacks)

        if self.config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.net = distributed.wrap(model.to(self.device), self.device, self.config.sync_bn)
        self.model: nn.Module = getattr(self.net, "module", self.net)  # what DDP wraps, else the model
        self.optimizer = build_optimizer(self.model, self.config)
        self.scheduler = build_scheduler(
            self.optimizer, self.config.schedule, self.config.epochs, self.config.milestones
        )
        use_scaler = self.config.amp and self.device.type == "cuda"
        self.scaler: torch.amp.GradScaler | None = torch.amp.GradScaler("cuda") if use_scaler else None

        self.epoch = 0
        self.global_step = 0
        self.loss: torch.Tensor | None = None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (from the last checkpoint when ``resume``); returns the history.

        Each history entry has ``epoch`` (1-based), ``lr``, ``train_loss``, ``train_acc``, ``val_loss`` and
        ``val_acc`` (when there is a validation loader), ``time`` in seconds, plus whatever callbacks add.
        """
        if resume:
            if self.run_dir is None:
                raise NetslimError("resume needs run_dir: pass run_dir (--run-dir) of the run to continue")
            self.load_checkpoint(self.run_dir / CHECKPOINT_NAME)
        log = None
        if self.is_main and self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_config()
            log = MetricsLog(self.run_dir)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        try:
            for epoch in range(self.epoch, self.config.epochs):
                self.epoch = epoch
                metrics = self._run_epoch()
                self.history.append(metrics)
                if log is not None:
                    log.write(self.history)
                last = epoch + 1 == self.config.epochs
                every = self.config.checkpoint_every
                self._check_finite_weights()
                if self.run_dir is not None and (last or (every and (epoch + 1) % every == 0)):
                    self.save_checkpoint(self.run_dir / CHECKPOINT_NAME, completed_epochs=epoch + 1)
            self.epoch = self.config.epochs
            for cb in self.callbacks:
                cb.on_fit_end(self)
        finally:
            if log is not None:
                log.close()
        return self.history

    def _run_epoch(self) -> dict[str, Any]:
        start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_epoch_start(self)
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss, train_acc = self._train_epoch()
        metrics: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
        }
        if self.val_loader is not None:
            val = evaluate(self.model, self.val_loader, self.device, amp=self.config.amp)
            metrics.update(val_loss=val["loss"], val_acc=val["accuracy"])
        metrics["time"] = time.perf_counter() - start
        for cb in self.callbacks:
            cb.on_epoch_end(self, metrics)
        self.scheduler.step()
        if self.is_main and self.config.progress:
            tqdm.write(" ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
        return metrics

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training data; returns the (global) mean loss and accuracy."""
        cfg, loader = self.config, self.train_loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(self.epoch)
        total = len(loader) if hasattr(loader, "__len__") else None
        if cfg.max_batches is not None:
            total = cfg.max_batches if total is None else min(total, cfg.max_batches)
        bar = tqdm(
            total=total,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not (cfg.progress and self.is_main),
            dynamic_ncols=True,
        )
        self.net.train()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, count
        for i, (x, y) in enumerate(loader):
            if cfg.max_batches is not None and i >= cfg.max_batches:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(self.device, cfg.amp):
                logits = self.net(x)
                loss_sum = self._losses(logits, y, x).float().sum()
            # divide by the GLOBAL batch size: DDP averages gradients over ranks, so this makes the update
            # equal to a single process's mean loss even when the last batch splits unevenly. The same
            # reduction tells every rank whether any rank's loss is non-finite, so all stop together.
            counts = torch.stack(
                [
                    torch.tensor(float(y.numel()), device=self.device),
                    (~torch.isfinite(loss_sum.detach())).float(),
                ]
            )
            distributed.all_reduce_sum(counts)
            if counts[1].item() > 0:
                bar.close()
                local = loss_sum.item()
                what = f"the training loss ({local:g})" if not math.isfinite(local) else "another rank's loss"
                raise self._diverged(f"{what} became non-finite at batch {i + 1}")
            n_global = counts[0]
            self._step(loss_sum * self.world_size / n_global.clamp(min=1))
            self.loss = loss_sum.detach() / max(y.numel(), 1)
            sums += torch.stack(
                [
                    loss_sum.detach().double(),
                    (logits.argmax(1) == y).sum().double(),
                    torch.tensor(float(y.numel()), dtype=torch.float64, device=self.device),
                ]
            )
            bar.update(1)
            if not bar.disable and (i % 10 == 0 or i + 1 == total):
                bar.set_postfix(
                    loss=f"{sums[0].item() / max(sums[2].item(), 1):.4f}",
                    acc=f"{sums[1].item() / max(sums[2].item(), 1):.4f}",
                    lr=f"{self.optimizer.param_groups[0]['lr']:.3g}",
                )
        bar.close()
        distributed.all_reduce_sum(sums)
        loss_sum, correct, n = sums.tolist()
        if n == 0:
            raise NetslimError("the training loader yielded no samples; check the dataset and --limit-train")
        return loss_sum / n, correct / n

    def _losses(self, logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample training losses: the first callback's ``training_loss``, else cross-entropy."""
        for cb in self.callbacks:
            losses = cb.training_loss(self, logits, y, x)
            if losses is not None:
                return losses
        return F.cross_entropy(logits.float(), y, reduction="none")

    def _check_finite_weights(self) -> None:
        """Raise TrainingDivergedError when a parameter or a norm layer's running statistic holds NaN/inf.

        Other buffers are left alone (a pruning parametrization may keep NaN as "not computed"). Under DDP
        the verdict is all-reduced (BN statistics differ between ranks), so every rank stops together.
        """
        stats = [
            (f"{prefix}.{name}" if prefix else name, t)
            for prefix, module in self.model.named_modules()
            if isinstance(module, nn.modules.batchnorm._NormBase)
            for name, t in module.named_buffers(recurse=False)
        ]
        tensors = [*self.model.named_parameters(), *stats]
        bad = [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        flag = distributed.all_reduce_sum(torch.tensor(float(bool(bad)), device=self.device))
        if flag.item() > 0:
            where = bad[0] if bad else "another rank's model"
            raise self._diverged(f"{where} holds non-finite values after the epoch")

    def _diverged(self, what: str) -> TrainingDivergedError:
        """The error for a diverged run: what happened, the likely causes, and what was kept."""
        cfg = self.config
        now = self.optimizer.param_groups[0]["lr"]
        lr = f"{cfg.lr:g}" if math.isclose(now, cfg.lr) else f"{cfg.lr:g}, now {now:g}"
        causes = [f"the learning rate ({lr}) is too high for this model: try {cfg.lr / 10:g}"]
        strengths = [getattr(cb, "current_s", None) for cb in self.callbacks]
        strengths = [s for s in strengths if isinstance(s, float)]
        if strengths:
            causes.append(f"the L1 strength ({strengths[0]:g}) is too high: lower it")
        if cfg.amp:
            causes.append("mixed-precision overflow: run without --amp")
        if self.run_dir is not None and (self.run_dir / CHECKPOINT_NAME).is_file():
            kept = f"the last good checkpoint {self.run_dir / CHECKPOINT_NAME} is kept"
        else:
            kept = "no checkpoint was written"
        return TrainingDivergedError(
            f"training diverged in epoch {self.epoch + 1}: {what}. Likely cause: {'; or '.join(causes)}. "
            f"Nothing was saved from this epoch; {kept}."
        )

    def _step(self, loss: torch.Tensor) -> None:
        """Backward, hooks, optimizer step. Gradients are unscaled before ``after_backward`` runs."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        for cb in self.callbacks:
            cb.after_backward(self)
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        for cb in self.callbacks:
            cb.after_step(self)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, completed_epochs: int | None = None) -> dict[str, Any]:
        """Everything needed to continue training exactly; loadable with ``torch.load(weights_only=True)``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch if completed_epochs is None else completed_epochs,
            "global_step": self.global_step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_meta": json.dumps(
                {
                    "recipe": getattr(self.model, "netslim_recipe", None),
                    "plans": list(getattr(self.model, "netslim_plans", [])),
                }
            ),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": json.dumps(self.history),
            "config": json.dumps(self.config.to_dict(), default=str),
            "callbacks": [{"name": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks],
            "rng": get_rng_state(),
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (model, optimizer, schedule, scaler, callbacks, RNG)."""
        names = [type(cb).__name__ for cb in self.callbacks]
        saved = [c["name"] for c in state["callbacks"]]
        if names != saved:
            raise NetslimError(
                f"the checkpoint was written with callbacks {saved}, this run has {names}; "
                "resume with the same options as the original run"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise NetslimError(
                f"the checkpoint's weights do not fit this model ({first}); "
                "resume with the same model options as the original run"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        for cb, entry in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(entry["state"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = json.loads(state["history"])
        set_rng_state(state["rng"])

    def save_checkpoint(self, path: str | os.PathLike[str], completed_epochs: int | None = None) -> None:
        """Atomically write :meth:`state_dict` to ``path`` (rank 0 only; other ranks wait for it)."""
        if self.is_main:
            atomic_torch_save(self.state_dict(completed_epochs), path)
        distributed.barrier()

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` and continue from its epoch."""
        path = Path(path)
        if not path.is_file():
            raise NetslimError(f"no checkpoint at {path}; start the run without --resume")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for truncated files
            raise CorruptFileError(
                f"{path} could not be read ({type(exc).__name__}); it may be truncated: start a new run"
            ) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CorruptFileError(f"{path} is not a netslim training checkpoint")
        self.load_state_dict(state)

    def _write_run_config(self) -> None:
        assert self.run_dir is not None
        from netslim import __version__

        info = {
            "train": self.config.to_dict(),
            "model": {
                "class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
                "recipe": getattr(self.model, "netslim_recipe", None),
                "parameters": sum(p.numel() for p in self.model.parameters()),
            },
            "device": str(self.device),
            "world_size": self.world_size,
            "callbacks": [type(cb).__name__ for cb in self.callbacks],
            "versions": {"netslim": __version__, "torch": torch.__version__},
        }
        from netslim._atomic import atomic_write_json

        atomic_write_json(self.run_dir / "config.json", info)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
