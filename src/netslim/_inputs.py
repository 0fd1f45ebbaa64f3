"""Example inputs of a model call, in the three forms netslim accepts, and the one helper that calls it.

A model's example inputs are a tensor (``model(x)``), a tuple or list of positional inputs (``model(*xs)``)
or a mapping of keyword inputs (``model(**batch)``, e.g. a transformers tokenizer's output). Everything that
runs a model on example inputs (the engine's tracer and checks, the FLOP counter, the latency timer, the
weight-pruning reports) goes through :func:`split_inputs` / :func:`call_model`, so no call site forgets a
form. Only :mod:`netslim.errors` and torch are imported here, so the engine and measurement can both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from netslim.errors import TracingError


def split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of the model call ``example_inputs`` stands for.

    A tensor is one positional input, a tuple or list several, a mapping keyword inputs. Anything else
    raises :class:`~netslim.errors.TracingError` saying what to pass.
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    raise TracingError(
        f"example_inputs must be a tensor, a tuple of tensors or a dict of keyword inputs, got "
        f"{type(example_inputs).__name__}; pass e.g. torch.randn(1, 3, 32, 32)"
    )


def call_model(model: nn.Module, example_inputs: Any) -> Any:
    """Run ``model`` on ``example_inputs`` (tensor, tuple/list or mapping, see :func:`split_inputs`) and
    return its output; grad mode and train/eval mode are the caller's."""
    args, kwargs = split_inputs(example_inputs)
    return model(*args, **kwargs)


def map_tensors(example_inputs: Any, fn: Any) -> Any:
    """``example_inputs`` in the same form with ``fn`` applied to every top-level tensor (others kept)."""
    if isinstance(example_inputs, torch.Tensor):
        return fn(example_inputs)
    if isinstance(example_inputs, Mapping):
        return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in example_inputs.items()}
    args, _ = split_inputs(example_inputs)
    return tuple(fn(t) if isinstance(t, torch.Tensor) else t for t in args)
