"""Training: :class:`Trainer`, :class:`TrainConfig`, :class:`Callback` hooks, losses, optimizers."""

from netslim.train.batchnorm import recalibrate_batchnorm
from netslim.train.callbacks import Callback
from netslim.train.config import TrainConfig
from netslim.train.distill import Distillation, distillation_loss
from netslim.train.optim import build_optimizer, rebuild_optimizer
from netslim.train.schedules import build_scheduler, lr_factor, milestone_epochs
from netslim.train.state import seed_everything, set_deterministic
from netslim.train.trainer import Trainer, evaluate

__all__ = [
    "Callback",
    "Distillation",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "distillation_loss",
    "evaluate",
    "lr_factor",
    "milestone_epochs",
    "rebuild_optimizer",
    "recalibrate_batchnorm",
    "seed_everything",
    "set_deterministic",
]
