"""netslim: make convolutional networks smaller and faster by pruning.

Two published methods, for today's PyTorch:

* Network Slimming (Liu et al., ICCV 2017): L1 on BatchNorm scales, one global threshold,
  physical removal of weak channels (:func:`slim`, :func:`plan`, :func:`apply`, :class:`BNSparsity`).
* Learning both Weights and Connections (Han et al., NIPS 2015): magnitude masks, iterative
  prune/retrain and compact storage (:mod:`netslim.weights`, :mod:`netslim.compression`).

Public names are imported lazily so that ``import netslim`` stays fast and the CLI starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netslim._lazy import lazy_exports
from netslim._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # network slimming
    "BNSparsity": "netslim.slimming.sparsity",
    "add_channel_gates": "netslim.slimming.gates",
    "slim": "netslim.slimming.api",
    "plan": "netslim.slimming.api",
    "apply": "netslim.slimming.api",
    "SlimResult": "netslim.slimming.api",
    "PruningPlan": "netslim.slimming.plan",
    "CutReadinessWarning": "netslim.slimming.readiness",
    "SparsityInstabilityWarning": "netslim.slimming.sparsity",
    "multipass_slim": "netslim.slimming.multipass",
    "rebuild_optimizer": "netslim.train.optim",
    # persistence
    "save": "netslim.io",
    "load": "netslim.io",
    # measurement and deployment
    "measure": "netslim.measurement.api",
    "fuse_bn": "netslim.fuse",
    "inference_form": "netslim.inference",
}

__all__ = [
    "BNSparsity",
    "CutReadinessWarning",
    "PruningPlan",
    "SlimResult",
    "SparsityInstabilityWarning",
    "__version__",
    "add_channel_gates",
    "apply",
    "fuse_bn",
    "inference_form",
    "load",
    "measure",
    "multipass_slim",
    "plan",
    "rebuild_optimizer",
    "save",
    "slim",
]

if TYPE_CHECKING:  # pragma: no cover
    from netslim.fuse import fuse_bn
    from netslim.inference import inference_form
    from netslim.io import load, save
    from netslim.measurement.api import measure
    from netslim.slimming.api import SlimResult, apply, plan, slim
    from netslim.slimming.gates import add_channel_gates
    from netslim.slimming.multipass import multipass_slim
    from netslim.slimming.plan import PruningPlan
    from netslim.slimming.readiness import CutReadinessWarning
    from netslim.slimming.sparsity import BNSparsity, SparsityInstabilityWarning
    from netslim.train.optim import rebuild_optimizer


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
