"""Self-describing model checkpoints: ``netslim.save`` and ``netslim.load``.

A checkpoint is one file written with ``torch.save`` and read back with ``torch.load(weights_only=True)``
(no pickled code is ever executed). It holds plain data only::

    {"format": "netslim", "version": 1,
     "meta": "<JSON: recipe, plans, extra>",
     "state_dict": {name: tensor}}

``meta["recipe"]`` is the zoo recipe (``{"name": ..., "kwargs": {...}}``) when the model came from
:func:`netslim.models.create`, or a factory recipe (``"factory"``: file path + SHA-256 or module path,
function name; see :mod:`netslim.models.factory`) when it came from :func:`netslim.models.resolve`;
``meta["plans"]`` lists the pruning plans applied to the model, in order.
:func:`load` rebuilds the architecture from the recipe, replays the plans on it (structure only) and then
loads the weights, so a slimmed network loads without the user rebuilding its narrow configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netslim._atomic import atomic_torch_save
from netslim.errors import CorruptFileError, NetslimError

FORMAT = "netslim"
VERSION = 1


@dataclass
class Checkpoint:
    """The parsed content of a netslim checkpoint file."""

    meta: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def recipe(self) -> dict[str, Any] | None:
        return self.meta.get("recipe")

    @property
    def plans(self) -> list[dict[str, Any]]:
        return list(self.meta.get("plans", []))


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (some, like EOFError from torch.load, have none)."""
    lines = str(exc).splitlines()
    return lines[0][:200] if lines else "no message"


def write_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Atomically write a :class:`Checkpoint`; returns the path."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "meta": json.dumps(checkpoint.meta, sort_keys=True),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in checkpoint.state_dict.items()},
    }
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` / :func:`save` without executing code.

    Raises:
        NetslimError: the file does not exist.
        CorruptFileError: the file is truncated, not a torch file, or not a netslim checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise NetslimError(f"checkpoint {path} does not exist; pass a file written by netslim.save")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head == b"\x89NSZ\r\n\x1a\n":  # netslim.compression's container
        raise CorruptFileError(
            f"{path} is a compressed netslim file; restore a checkpoint first: "
            f"netslim decompress {path} -o OUT.pt"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        if "Weights only load failed" in str(exc):
            raise CorruptFileError(
                f"{path} holds pickled Python objects (e.g. a whole module saved with torch.save(model)), "
                "which netslim does not execute; save the model with netslim.save(model, path) instead"
            ) from None
        raise CorruptFileError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {_first_line(exc)}); "
            "it may be truncated: write it again with netslim.save"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CorruptFileError(
            f"{path} is a torch file but not a netslim checkpoint; save models with netslim.save(model, path)"
        )
    if payload.get("version", 0) > VERSION:
        raise CorruptFileError(f"{path} was written by a newer netslim (format version {payload['version']})")
    try:
        meta = json.loads(payload["meta"])
        state = dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: malformed netslim checkpoint ({exc})") from None
    return Checkpoint(meta=meta, state_dict=state)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with weight masks folded in (masked entries stored as zeros, no mask entries).

    Raises:
        NetslimError: the model still carries ``torch.nn.utils.prune`` hooks (``weight_orig``).
    """
    from torch.nn.utils import parametrize

    if any(name.endswith("_orig") for name, _ in model.named_parameters()):
        raise NetslimError(
            "the model still has torch.nn.utils.prune reparametrizations; call "
            "netslim.weights.finalize(model) (or torch.nn.utils.prune.remove) first"
        )
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        import copy

        from netslim.weights.masks import finalize

        # finalize gives each module its own class before removing the parametrization, so the caller's
        # model (which shares torch's generated Parametrized* class with the copy) keeps working
        model = finalize(copy.deepcopy(model))
    return dict(model.state_dict())


def save(model: nn.Module, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as a self-describing checkpoint (recipe, applied plans, weights); returns the path.

    ``extra`` is any JSON-serializable dict stored alongside (metrics, the command that produced it, ...).
    Weight-pruning masks are folded into the stored weights, so the file holds plain modules.
    """
    meta: dict[str, Any] = {
        "recipe": getattr(model, "netslim_recipe", None),
        "plans": list(getattr(model, "netslim_plans", [])),
        "gates": _gated(model),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "extra": extra or {},
    }
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise NetslimError(f"extra must be JSON-serializable: {exc}") from None
    return write_checkpoint(path, Checkpoint(meta=meta, state_dict=plain_state_dict(model)))


def _gated(model: nn.Module) -> list[str]:
    """Names of the gated layers (netslim.add_channel_gates) in ``model``."""
    if not any(getattr(m, "netslim_channel_scale", False) for m in model.modules()):
        return []
    from netslim.slimming.gates import gated_layers

    return gated_layers(model)


def replay_plans(model: nn.Module, plans: list[dict[str, Any]]) -> nn.Module:
    """Apply saved pruning plans to a fresh, unpruned ``model`` (structure only); returns the narrow model."""
    if not plans:
        return model
    from netslim.slimming.api import apply
    from netslim.slimming.plan import PruningPlan

    for plan_dict in plans:
        model = apply(model, PruningPlan.from_dict(plan_dict), fold_beta=False)
    return model


def load(
    path: str | os.PathLike[str], model: nn.Module | None = None, *, strict: bool = True
) -> nn.Module:
    """Rebuild a model saved with :func:`save` and return it in eval mode.

    Without ``model`` the architecture comes from the stored recipe: a zoo model, or a model factory
    (``FILE.py:FUNC``, run again only if that file is still at its recorded path; ``pkg.mod:FUNC``,
    imported). For a model class of your own, pass a fresh, unpruned instance: the stored plans are
    replayed onto it before the weights are loaded.
    """
    ckpt = read_checkpoint(path)
    if model is None:
        recipe = ckpt.recipe
        if not recipe:
            raise NetslimError(
                f"{path} holds a model that is not from the netslim zoo ({ckpt.meta.get('class')}); "
                "pass a fresh unpruned instance: netslim.load(path, model=MyNet())"
            )
        from netslim.models import create_from_recipe

        model = create_from_recipe(recipe, where=str(path))
    model = replay_plans(model, ckpt.plans)
    if ckpt.meta.get("gates"):  # saved with channel gates (after any plans: a cut removes the gates)
        from netslim.slimming.gates import wrap_layers

        model = wrap_layers(model, ckpt.meta["gates"])
    try:
        model.load_state_dict(ckpt.state_dict, strict=strict)
    except RuntimeError as exc:
        raise NetslimError(
            f"the weights in {path} do not fit the model: {_first_line(exc)}; pass the same "
            "architecture (unpruned) that was saved"
        ) from None
    model.netslim_plans = ckpt.plans  # type: ignore[assignment]
    return model.eval()
