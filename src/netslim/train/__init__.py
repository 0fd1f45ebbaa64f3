"""Training: :class:`Trainer`, :class:`TrainConfig`, :class:`Callback` hooks, optimizers and schedules."""

from netslim.train.callbacks import Callback
from netslim.train.config import TrainConfig
from netslim.train.optim import build_optimizer, rebuild_optimizer
from netslim.train.schedules import build_scheduler, lr_factor, milestone_epochs
from netslim.train.state import seed_everything, set_deterministic
from netslim.train.trainer import Trainer, evaluate

__all__ = [
    "Callback",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "lr_factor",
    "milestone_epochs",
    "rebuild_optimizer",
    "seed_everything",
    "set_deterministic",
]
