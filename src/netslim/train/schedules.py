"""Learning-rate schedules as pure functions of the epoch index.

The trainer steps the schedule once per epoch (``LambdaLR`` over :func:`lr_factor`), so the learning rate of
epoch ``e`` depends only on ``e`` and the run length, never on float comparisons: the Network Slimming
reference code tested ``epoch in [epochs*0.5, epochs*0.75]`` and silently skipped the second drop whenever
``0.75*epochs`` was not a whole number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from netslim.errors import NetslimError

SCHEDULES = ("step", "cosine", "constant")


def milestone_epochs(epochs: int, milestones: Sequence[float]) -> list[int]:
    """Integer epochs at which the ``step`` schedule divides the rate by 10.

    Each fraction ``m`` maps to ``max(1, int(m * epochs))`` (floor, as in ``MultiStepLR`` with integer
    milestones), so 160 epochs with (0.5, 0.75) gives [80, 120] and 10 epochs gives [5, 7]. Two fractions that
    land on the same epoch both apply there.
    """
    return sorted(max(1, int(m * epochs)) for m in milestones)


def lr_factor(schedule: str, epoch: int, epochs: int, milestones: Sequence[float] = (0.5, 0.75)) -> float:
    """The multiplier of the base learning rate during 0-based ``epoch`` of an ``epochs``-long run.

    * ``step``: ``0.1 ** k`` where ``k`` counts the milestone epochs ``<= epoch``.
    * ``cosine``: ``0.5 * (1 + cos(pi * epoch / epochs))``, from 1 at the first epoch towards 0.
    * ``constant``: 1.
    """
    if schedule == "step":
        return 0.1 ** sum(1 for m in milestone_epochs(epochs, milestones) if epoch >= m)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / epochs))
    if schedule == "constant":
        return 1.0
    raise NetslimError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def build_scheduler(
    optimizer: Optimizer, schedule: str, epochs: int, milestones: Sequence[float] = (0.5, 0.75)
) -> LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor`, to be stepped once at the end of every epoch."""
    lr_factor(schedule, 0, epochs, milestones)  # validates the name up front
    milestones = tuple(milestones)

    def factor(epoch: int) -> float:
        return lr_factor(schedule, epoch, epochs, milestones)

    return LambdaLR(optimizer, factor)
