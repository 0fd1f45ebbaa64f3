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
from torch.overrides import TorchFunctionMode

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


def read_checkpoint(path: str | os.PathLike[str], role: str = "checkpoint") -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` / :func:`save` without executing code.

    ``role`` names what the file is for (e.g. "distillation teacher") in the error for a missing file.

    Raises:
        NetslimError: the file does not exist.
        CorruptFileError: the file is truncated, not a torch file, or not a netslim checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise NetslimError(
            f"{role} {path} is a directory; pass the model file in it (e.g. {path / 'model.pt'})"
        )
    if not path.is_file():
        raise NetslimError(
            f"{role} {path} does not exist; pass a file written by netslim.save "
            "(e.g. the model.pt of netslim train)"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise NetslimError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if head == b"\x89NSZ\r\n\x1a\n":  # netslim.compression's container
        raise CorruptFileError(
            f"{path} is a compressed netslim file; restore a checkpoint first: "
            f"netslim decompress {path} -o OUT.pt"
        )
    if not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):  # zip, or legacy pickle
        what = "an empty file" if not head else "not a torch zip file"
        raise CorruptFileError(
            f"{path} is not a netslim checkpoint ({what}); pass a file written by "
            "netslim.save (netslim train/slim/prune write model.pt)"
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
        if isinstance(payload, dict) and payload.get("format") == "netslim-train" and "model_meta" in payload:
            return _from_trainer_checkpoint(path, payload)
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


def _from_trainer_checkpoint(path: Path, payload: dict[str, Any]) -> Checkpoint:
    """The model inside a trainer checkpoint (``RUN/checkpoint.pt``, ``RUN/PHASE/checkpoint.pt``)."""
    try:
        meta = json.loads(payload["model_meta"])
        config = json.loads(payload.get("config") or "{}")
        state = dict(payload["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: malformed trainer checkpoint ({exc}); load the model.pt") from None
    dataset = (config.get("extra") or {}).get("dataset") if isinstance(config, dict) else None
    extra = {"source": "trainer checkpoint", "epoch": payload.get("epoch")}
    if dataset:
        extra["dataset"] = dataset
    return Checkpoint(meta={**meta, "extra": extra}, state_dict=state)


def check_finite(weights: nn.Module | dict[str, torch.Tensor], what: str = "the model") -> None:
    """Refuse weights holding nan or inf (a diverged training run), naming the first bad tensor.

    Raises:
        NetslimError: some floating-point parameter or buffer is not finite.
    """
    items = weights.state_dict().items() if isinstance(weights, nn.Module) else weights.items()
    bad = [
        (name, int((~torch.isfinite(t)).sum()))
        for name, t in items
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        total = sum(n for _, n in bad)
        raise NetslimError(
            f"{what} has {total:,} nan/inf weights (first in {bad[0][0]}; {len(bad)} tensor(s) in all): its "
            "training diverged; retrain it (lower --lr, or --grad-clip) rather than prune, compress or export"
        )


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
    Weight-pruning masks are folded into the stored weights (plain tensors, pruned entries exactly zero) and
    listed in ``meta["masks"]``, so :func:`load` masks the same tensors again.
    """
    from netslim.weights.masks import mask_meta

    meta: dict[str, Any] = {
        "recipe": getattr(model, "netslim_recipe", None),
        "plans": list(getattr(model, "netslim_plans", [])),
        "gates": _gated(model),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "extra": extra or {},
    }
    if masks := mask_meta(model):
        meta["masks"] = masks
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


class _SkipInit(TorchFunctionMode):
    """Makes in-place initialisers (``normal_``, ``fill_``, ``nn.init.*``) no-ops on meta tensors.

    On the meta device they would only cost time (the first one imports torch's compiler stack).
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")
        if (
            name.endswith("_")
            and not name.startswith("_")
            and isinstance(target, torch.Tensor)
            and target.is_meta
        ):
            return target
        return func(*args, **kwargs)


def _check_plan_indices(path: str | os.PathLike[str], plans: list[dict[str, Any]]) -> None:
    """Check that every kept-channel index of the stored plans lies in its layer's range."""
    for n, plan in enumerate(plans):
        layers = plan.get("layers") if isinstance(plan, dict) else None
        if not isinstance(layers, dict):
            raise CorruptFileError(f"{path}: pruning plan {n} is malformed (no 'layers'); file damaged")
        for fqn, lp in layers.items():
            if not isinstance(lp, dict):
                raise CorruptFileError(f"{path}: pruning plan {n}, layer {fqn} is malformed")
            for key, size_key in (("out_keep", "out_before"), ("in_keep", "in_before")):
                keep, size = lp.get(key), lp.get(size_key)
                if keep is None:
                    continue
                if not isinstance(keep, list) or not all(type(i) is int for i in keep):
                    raise CorruptFileError(
                        f"{path}: pruning plan {n}, layer {fqn}: {key} is not a list of "
                        "channel numbers; the file is damaged"
                    )
                if isinstance(size, int) and keep and (min(keep) < 0 or max(keep) >= size):
                    bad = next(i for i in keep if not 0 <= i < size)
                    raise CorruptFileError(
                        f"{path}: pruning plan {n}, layer {fqn}: channel {bad} is out of "
                        f"range for its {size} channels; the file is damaged"
                    )


def _check_recipe_shapes(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Build the recipe and replay the plans on the meta device (nothing allocated) and compare the
    parameter shapes with the stored tensors, so a damaged or crafted recipe fails before any allocation."""
    from netslim.models import create

    recipe = ckpt.recipe or {}
    try:
        with torch.device("meta"), _SkipInit():
            model = replay_plans(create(recipe["name"], **recipe.get("kwargs", {})), ckpt.plans)
    except NetslimError as exc:
        raise CorruptFileError(f"{path}: its recipe or pruning plans do not build a model ({exc})") from None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CorruptFileError(
            f"{path}: its recipe or pruning plans do not build a model "
            f"({type(exc).__name__}: {_first_line(exc)}); the file is damaged"
        ) from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, tensor in ckpt.state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CorruptFileError(f"{path}: entry {key} is not a tensor; the file is damaged")
        if key in expected and tuple(tensor.shape) != expected[key]:
            raise CorruptFileError(
                f"{path}: its recipe ({recipe.get('name')} {recipe.get('kwargs', {})}) and pruning plans "
                f"give {key} the shape {list(expected[key])}, the stored tensor is {list(tensor.shape)}; "
                "the file is damaged or was edited"
            )


def load(
    path: str | os.PathLike[str], model: nn.Module | None = None, *, strict: bool = True, masks: bool = True
) -> nn.Module:
    """Rebuild a model saved with :func:`save` and return it in eval mode.

    Without ``model`` the architecture comes from the stored recipe: a zoo model, or a model factory
    (``FILE.py:FUNC``, run again only if that file is still at its recorded path; ``pkg.mod:FUNC``,
    imported). For a model class of your own, pass a fresh, unpruned instance: the stored plans are
    replayed onto it before the weights are loaded.
    A model saved with weight masks comes back masked (``netslim.weights.has_masks(model)``): its pruned
    connections stay exactly zero under training with ``netslim.weights.MaskCallback``. ``masks=False``
    gives plain modules (the zeros stay), e.g. for channel surgery, which replaces whole tensors.
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

        _check_plan_indices(path, ckpt.plans)
        if not recipe.get("factory"):  # zoo recipes only: a factory (user code) is not run twice
            _check_recipe_shapes(path, ckpt)
        model = create_from_recipe(recipe, where=str(path))
    else:
        _check_plan_indices(path, ckpt.plans)
    try:
        model = replay_plans(model, ckpt.plans)
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, NetslimError):
            raise
        raise CorruptFileError(
            f"{path}: its pruning plans do not fit the model ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
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
    if masks and ckpt.meta.get("masks"):
        from netslim.weights.masks import restore_masks

        restore_masks(model, ckpt.meta["masks"])
    return model.eval()
