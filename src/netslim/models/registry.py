"""The model registry: one :class:`Registry` instance maps zoo names to builder functions.

Builders are plain functions taking keyword-only arguments (always ``num_classes``, ``in_channels`` and
``input_size``, plus family-specific options) and returning an ``nn.Module``. :func:`create` checks the
arguments against the builder's signature, builds the model and stamps it with ``netslim_recipe`` so a
checkpoint can rebuild the same architecture later.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from netslim.errors import NetslimError, UnknownNameError
from netslim.models.factory import create_from_factory, is_factory_spec, load_factory

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, its builder and the first line of the builder's docstring."""

    name: str
    builder: Callable[..., nn.Module]
    summary: str

    def accepted_kwargs(self) -> list[str]:
        """The keyword arguments the builder accepts, in declaration order."""
        params = inspect.signature(self.builder).parameters.values()
        return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def defaults(self) -> dict[str, Any]:
        """The builder's default keyword values (e.g. ``input_size`` 28 for the LeNets)."""
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


class Registry:
    """Name -> builder map for one kind of object; duplicates and unknown names raise clear errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, ModelEntry] = {}

    def register(self, name: str | None = None) -> Callable[[Builder], Builder]:
        """Decorator registering a builder under ``name`` (default: the function's name); returns it as is."""

        def decorator(builder: Builder) -> Builder:
            key = name or builder.__name__
            if key in self._entries:
                raise NetslimError(f"{self.kind} {key!r} is already registered; pick another name")
            doc = inspect.getdoc(builder) or ""
            self._entries[key] = ModelEntry(key, builder, doc.splitlines()[0] if doc else "")
            return builder

        return decorator

    def get(self, name: str) -> ModelEntry:
        """The entry registered as ``name``; raises UnknownNameError listing the valid names."""
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style pattern such as ``"vgg*"``."""
        names = sorted(self._entries)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


MODELS = Registry("model")


def register_model(name: str | None = None) -> Callable[[Builder], Builder]:
    """Register a model builder in the zoo (``@register_model()`` or ``@register_model("name")``)."""
    return MODELS.register(name)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of every registered model, optionally filtered by a pattern such as ``"resnet*"``."""
    return MODELS.names(pattern)


def _json_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        # the round trip turns tuples into lists, so the recipe equals what a checkpoint will hold
        return json.loads(json.dumps(kwargs))
    except (TypeError, ValueError) as exc:
        raise NetslimError(
            f"arguments for model {name!r} must be JSON-serializable (numbers, strings, lists) so "
            f"checkpoints can rebuild the model: {exc}"
        ) from None


def create(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build zoo model ``name`` and return it with ``netslim_recipe = {"name", "kwargs"}`` attached.

    ``kwargs`` are the model's own options (``input_size``, ``depth``, ``width``, ``cfg``, ``bn_init`` ...);
    an option the model does not take raises NetslimError listing the ones it does.
    """
    entry = MODELS.get(name)
    recipe_kwargs = _json_kwargs(name, {"num_classes": num_classes, "in_channels": in_channels, **kwargs})
    accepted = entry.accepted_kwargs()
    unknown = sorted(set(recipe_kwargs) - set(accepted))
    if unknown:
        raise NetslimError(
            f"model {name!r} does not take {', '.join(unknown)}; it accepts: {', '.join(accepted)}"
        )
    model = entry.builder(**recipe_kwargs)
    model.netslim_recipe = {"name": name, "kwargs": recipe_kwargs}
    return model


def create_from_recipe(recipe: dict[str, Any], where: str = "the checkpoint") -> nn.Module:
    """Rebuild a model from a ``netslim_recipe`` dict (``{"name": ..., "kwargs": {...}}``); returns it.

    A recipe with a ``factory`` record (a model from ``FILE.py:FUNC`` or ``pkg.mod:FUNC``) is rebuilt by
    calling that factory again; ``where`` names the checkpoint in error messages.
    """
    if not isinstance(recipe, dict) or "name" not in recipe:
        raise NetslimError(f"a model recipe is a dict with 'name' and 'kwargs', got {recipe!r}")
    if recipe.get("factory"):
        from netslim.models.factory import create_from_factory_recipe

        return create_from_factory_recipe(recipe, where)
    return create(recipe["name"], **recipe.get("kwargs", {}))


def resolve(
    spec: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
    input_shape: Sequence[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model a ``--model`` spec names and return it, stamped with a rebuildable recipe.

    ``spec`` is a zoo name (``"vgg11"``), ``"path/to/file.py:factory"`` or ``"package.module:factory"``.
    ``kwargs`` are the model's own options. ``num_classes``/``in_channels``/``input_size`` describe the data:
    the zoo takes them all; a factory gets each one only if its signature accepts it. ``input_shape``
    (C, H, W), when the data does not define the input, fills ``in_channels``/``input_size`` and is recorded
    in a factory model's recipe. Loading a factory file runs its code (see :mod:`netslim.models.factory`).
    """
    if input_shape is not None:
        shape = [int(v) for v in input_shape]
        if len(shape) != 3 or min(shape) < 1:
            raise NetslimError(f"input_shape takes three positive numbers C H W, e.g. 3 32 32; got {shape}")
        if in_channels is not None and in_channels != shape[0]:
            raise NetslimError(
                f"--input-shape has {shape[0]} channels but the data has {in_channels}; "
                "leave --input-shape out when the dataset defines the input"
            )
        in_channels = shape[0]
        input_size = shape[1] if input_size is None else input_size
    if is_factory_spec(spec):
        return create_from_factory(
            spec,
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
            input_shape=input_shape,
            **kwargs,
        )
    data = {
        k: v
        for k, v in (("num_classes", num_classes), ("in_channels", in_channels), ("input_size", input_size))
        if v is not None
    }
    return create(spec, **data, **kwargs)


def check_spec(spec: str) -> None:
    """Raise NetslimError if ``spec`` names no zoo model, no existing file or no importable factory."""
    if is_factory_spec(spec):
        load_factory(spec)
    else:
        MODELS.get(spec)
