"""Turn a command-line model argument (a zoo name or a checkpoint path) into a model and example input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from netslim.errors import NetslimError


def parse_input_size(text: str) -> tuple[int, ...]:
    """Parse ``"1x28x28"`` (channels x height x width) into ``(1, 28, 28)``."""
    try:
        dims = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) < 2 or any(d < 1 for d in dims):
        raise NetslimError(f"the input shape must be C H W (or CxHxW), e.g. 1 28 28; got {text!r}")
    return dims


def load_model(spec: str, input_size: str | None = None) -> nn.Module:
    """A zoo name or ``FILE.py:FUNC`` / ``pkg.mod:FUNC`` spec (fresh model) or a checkpoint path (loaded).

    A zoo model is built for ``input_size`` (``"CxHxW"``: ``in_channels=C, input_size=H``) when given.
    """
    path = Path(spec)
    if path.suffix in {".pt", ".pth", ".ckpt", ".tar"} or path.is_file():
        from netslim.io import load

        return load(path)
    from netslim.models import resolve

    if input_size:
        dims = parse_input_size(input_size)
        shape = dims if len(dims) == 3 else None
        return resolve(spec, in_channels=dims[0], input_size=dims[1], input_shape=shape)
    return resolve(spec)


def recorded_input_shape(recipe: dict[str, Any] | None) -> tuple[int, ...] | None:
    """``(C, H, W)`` a checkpoint's recipe records: its ``input_shape`` (factory models), else the zoo
    model's ``in_channels`` and ``input_size`` arguments; None when it records neither."""
    recipe = recipe or {}
    if recipe.get("input_shape"):
        return tuple(int(v) for v in recipe["input_shape"])
    kwargs = recipe.get("kwargs") or {}
    if "in_channels" in kwargs and "input_size" in kwargs:
        size = int(kwargs["input_size"])
        return (int(kwargs["in_channels"]), size, size)
    return None


def default_input_size(model: nn.Module) -> tuple[int, ...]:
    """``(C, H, W)`` from the model's recipe (:func:`recorded_input_shape`, the zoo model's default
    ``input_size``), else ``(3, 32, 32)``."""
    recipe = getattr(model, "netslim_recipe", None) or {}
    recorded = recorded_input_shape(recipe)
    if recorded is not None:
        return recorded
    kwargs = dict(recipe.get("kwargs", {}))
    if "input_size" not in kwargs and recipe.get("name"):
        from netslim.models import MODELS

        if recipe["name"] in MODELS:
            kwargs["input_size"] = MODELS.get(recipe["name"]).defaults().get("input_size", 32)
    size = int(kwargs.get("input_size", 32))
    return (int(kwargs.get("in_channels", 3)), size, size)


def example_input(model: nn.Module, input_size: str | None, batch: int = 1) -> torch.Tensor:
    """A random input of shape ``(batch, C, H, W)`` from ``input_size`` text or the model's recipe."""
    dims = parse_input_size(input_size) if input_size else default_input_size(model)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, *dims, generator=generator)
