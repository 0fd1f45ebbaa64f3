"""Knowledge distillation (Hinton et al. 2015) as a :class:`netslim.train.Trainer` callback.

After a Network Slimming cut the fine-tuned student can learn from the network it was cut from: the
teacher's softened class probabilities carry more information per image than the label alone. The loss is

    (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The ``T^2`` factor keeps the soft term's gradients on the scale of the hard term's as ``T`` grows (the soft
gradients shrink as ``1/T^2``), so ``alpha`` means the same at every temperature.

Example::

    teacher = netslim.load("run/sparse.pt")            # the sparsity-trained net, before the cut
    Trainer(student, train, val, TrainConfig(epochs=5),
            callbacks=[Distillation(teacher, temperature=4.0, alpha=0.9)]).fit()
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from netslim.errors import NetslimError
from netslim.train.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from netslim.train.trainer import Trainer


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Per-sample distillation loss (shape ``(N,)``), computed in float32 whatever the logits' dtype.

    ``(1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.
    Take ``.mean()`` for the batch loss.
    """
    s, t = student_logits.float(), teacher_logits.float().detach()
    hard = F.cross_entropy(s, y, reduction="none")
    log_p_student = F.log_softmax(s / temperature, dim=1)
    log_p_teacher = F.log_softmax(t / temperature, dim=1)
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="none", log_target=True).sum(dim=1)
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


class Distillation(Callback):
    """Trainer callback that replaces the training loss with distillation from ``teacher``.

    The teacher is frozen (``requires_grad=False``), kept in eval mode (BN running statistics, no dropout)
    and run without gradients on the student's batch, inside the trainer's autocast region (so both compute
    in the same precision). It is moved to the trainer's device when fitting starts and back to the CPU at
    the end. Under DDP every rank runs its own copy on its own shard; nothing has to be synchronised. The
    settings are stored in the trainer's checkpoint; a resumed run must use the same ones.

    Args:
        teacher: the network to learn from (for Network Slimming: the sparsity-trained net before the cut).
        temperature: softening temperature ``T`` > 0 (Hinton et al. use 2-20; 4 is common on CIFAR).
        alpha: weight of the soft (teacher) term in [0, 1]; ``1 - alpha`` weights the cross-entropy.
    """

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9) -> None:
        check_distill_settings(temperature, alpha)
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Move the teacher to the trainer's device, in eval mode."""
        self.teacher.to(trainer.device).eval()

    def training_loss(
        self, trainer: Trainer | None, logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample distillation losses of the student's ``logits`` on batch ``(x, y)``."""
        if self.teacher.training:  # someone called .train() on a module tree holding it
            self.teacher.eval()
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return distillation_loss(logits, teacher_logits, y, temperature=self.temperature, alpha=self.alpha)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Give the teacher's device memory back."""
        self.teacher.cpu()

    def state_dict(self) -> dict[str, Any]:
        """The settings (checked on resume)."""
        return {"temperature": self.temperature, "alpha": self.alpha}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse to resume a run that distilled with other settings."""
        saved = (float(state["temperature"]), float(state["alpha"]))
        if saved != (self.temperature, self.alpha):
            raise NetslimError(
                f"the checkpoint distilled with temperature {saved[0]:g}, alpha {saved[1]:g}; this run has "
                f"{self.temperature:g}, {self.alpha:g}: resume with the same distillation settings"
            )


def check_distill_settings(temperature: float, alpha: float) -> None:
    """Raise NetslimError unless ``temperature`` > 0 and ``alpha`` in [0, 1] (both finite)."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise NetslimError(
            f"distillation temperature must be a finite number > 0, got {temperature!r} (try 4)"
        )
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise NetslimError(f"distillation alpha must be in [0, 1], got {alpha!r} (try 0.9)")


def load_teacher(path: str | os.PathLike[str], example: torch.Tensor, num_classes: int | None) -> nn.Module:
    """The trained model stored at ``path`` (:func:`netslim.save` format, e.g. ``netslim train``'s
    model.pt), checked to take inputs like ``example`` and give one logit per class (``num_classes``; not
    checked when None). Returns it in eval mode (:class:`Distillation` freezes it); raises NetslimError saying
    what does not fit."""
    from netslim.io import load

    teacher = load(path)
    fix = "pass a model trained on the same data set (e.g. the model.pt of netslim train)"
    try:
        with torch.no_grad():
            out = teacher(example)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetslimError(
            f"the distillation teacher {path} cannot take this data set's images "
            f"({'x'.join(map(str, example.shape[1:]))}): {first}; {fix}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or (num_classes and out.shape[1] != num_classes):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NetslimError(
            f"the distillation teacher {path} outputs {shape} for one image, the data set has "
            f"{num_classes} classes; {fix}"
        )
    return teacher
