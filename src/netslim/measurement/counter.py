"""One instrumented forward pass: MACs, FLOPs and activation memory, per module.

The forward runs under a :class:`~torch.utils._python_dispatch.TorchDispatchMode`, so every ATen operator
is seen, whether it comes from a module (``nn.Conv2d``), a functional call (``F.relu``), a tensor method
(``x + y``, ``x.index_select``) or a model's own ``forward``. Forward hooks on every module keep a stack
of qualified names so each operator's cost is attributed to the module that ran it and to all its parents.

Activation memory convention: a storage is *live* from the operator that allocates it until the last
Python tensor that views it is garbage-collected (reference counting, observed with ``weakref.finalize``).
``activation_bytes`` is the peak, over the forward, of the input bytes plus the live storages produced by
operators (parameters, buffers and cached weight reparametrizations are excluded).
``activation_total_bytes`` is the plain sum of every storage produced (no reuse), a simpler upper bound.
"""

from __future__ import annotations

import warnings
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from netslim._inputs import split_inputs
from netslim.errors import TracingError
from netslim.measurement.ops import COST_TABLE, ZERO_COST, OpCost, op_name, packet_of


@dataclass
class CountResult:
    """What one instrumented forward pass measured (all counts at the batch of the inputs)."""

    macs: int = 0
    nonzero_macs: int = 0
    other_flops: int = 0
    activation_bytes: int = 0
    activation_total_bytes: int = 0
    by_module: dict[str, dict[str, int]] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)
    zero_cost_ops: dict[str, int] = field(default_factory=dict)


def _storage_key(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return id(t)


class _LiveBytes:
    """Tracks bytes of storages created during the forward, freed when their last tracked tensor dies."""

    def __init__(self, excluded: set[int]) -> None:
        self.excluded = excluded
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.total = 0

    def track(self, t: torch.Tensor) -> None:
        if t.layout != torch.strided:  # sparse operands (sparse inference) have no single storage
            return
        key = _storage_key(t)
        if key in self.excluded or key == 0:
            return
        if key not in self.refs:
            size = t.untyped_storage().nbytes()
            self.refs[key] = 0
            self.sizes[key] = size
            self.current += size
            self.total += size
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)
        self.peak = max(self.peak, self.current)

    def _release(self, key: int) -> None:
        count = self.refs.get(key)
        if count is None:
            return
        if count <= 1:
            del self.refs[key]
            self.current -= self.sizes.pop(key)
        else:
            self.refs[key] = count - 1


class _CountingMode(TorchDispatchMode):
    def __init__(self, weight_keys: set[int], live: _LiveBytes, stack: list[str]) -> None:
        super().__init__()
        self.weight_keys = weight_keys
        self.live = live
        self.stack = stack
        self.by_module: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_operator: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()
        self.zero_cost: Counter[str] = Counter()

    def _is_weight(self, t: torch.Tensor) -> bool:
        return _storage_key(t) in self.weight_keys

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = packet_of(func)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        handler = COST_TABLE.get(packet)
        if handler is not None:
            self._add(op_name(func), handler(args, out, self._is_weight))
        elif packet in ZERO_COST:
            self.zero_cost[op_name(func)] += 1
        elif outputs:
            self.unsupported[op_name(func)] += 1
        for t in outputs:
            self.live.track(t)
        return out

    def _add(self, name: str, cost: OpCost) -> None:
        flops = 2 * cost.macs + cost.other_flops
        self.by_operator[name] += flops
        for scope in dict.fromkeys(self.stack):
            entry = self.by_module[scope]
            entry["macs"] += cost.macs
            entry["nonzero_macs"] += cost.nonzero_macs
            entry["other_flops"] += cost.other_flops


@contextmanager
def _module_scopes(model: nn.Module, stack: list[str]) -> Iterator[None]:
    handles = []

    def pre(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any) -> None:
            stack.append(name)

        return hook

    def post(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if stack and stack[-1] == name:
                stack.pop()

        return hook

    for name, module in model.named_modules():
        if ".parametrizations." in f".{name}." or name.endswith("parametrizations"):
            continue
        handles.append(module.register_forward_pre_hook(pre(name)))
        handles.append(module.register_forward_hook(post(name)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def weight_storage_keys(model: nn.Module) -> set[int]:
    """Storage ids of every parameter and buffer (and cached parametrized weights, when cached)."""
    keys = {_storage_key(p) for p in model.parameters()}
    keys |= {_storage_key(b) for b in model.buffers()}
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in module.parametrizations:
                keys.add(_storage_key(getattr(module, name)))
    return keys


def count(model: nn.Module, example_inputs: Any, *, warn: bool = True) -> CountResult:
    """Run one eval forward of ``model`` on ``example_inputs`` and return its costs.

    ``example_inputs`` is a tensor, a tuple of positional inputs, or a dict of keyword inputs.

    Weight reparametrizations (pruning masks) are evaluated once beforehand and cached, so applying a mask
    is not counted as model compute. Unsupported operators are listed in ``unsupported`` and, with
    ``warn``, reported with a :class:`UserWarning`.
    """
    inputs, kwargs = split_inputs(example_inputs)  # keyword inputs: e.g. a transformers model's batch
    was_training = model.training
    model.eval()
    stack: list[str] = []
    try:
        with ExitStack() as ctx:
            ctx.enter_context(torch.no_grad())
            ctx.enter_context(parametrize.cached())
            # touch parametrized weights so the cache is filled outside the counting mode
            for module in model.modules():
                if parametrize.is_parametrized(module):
                    for name in module.parametrizations:
                        getattr(module, name)
            weights = weight_storage_keys(model)
            live = _LiveBytes(excluded=weights)
            input_bytes = sum(
                t.untyped_storage().nbytes()
                for t in tree_flatten((inputs, kwargs))[0]
                if isinstance(t, torch.Tensor)
            )
            ctx.enter_context(_module_scopes(model, stack))
            mode = _CountingMode(weights, live, stack)
            with mode:
                out = model(*inputs, **kwargs)
            del out
    except TracingError:
        raise
    except Exception as exc:
        raise TracingError(
            f"the model failed on the example inputs ({type(exc).__name__}: {exc}); check --input-shape "
            "and the number of input channels"
        ) from exc
    finally:
        model.train(was_training)
    root = mode.by_module.get("", Counter())
    by_module = {
        name: {
            "macs": int(c["macs"]),
            "nonzero_macs": int(c["nonzero_macs"]),
            "flops": int(2 * c["macs"] + c["other_flops"]),
            "other_flops": int(c["other_flops"]),
        }
        for name, c in mode.by_module.items()
    }
    result = CountResult(
        macs=int(root["macs"]),
        nonzero_macs=int(root["nonzero_macs"]),
        other_flops=int(root["other_flops"]),
        activation_bytes=input_bytes + live.peak,
        activation_total_bytes=input_bytes + live.total,
        by_module=by_module,
        by_operator=dict(mode.by_operator),
        unsupported=dict(mode.unsupported),
        zero_cost_ops=dict(mode.zero_cost),
    )
    if warn and result.unsupported:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(result.unsupported.items()))
        warnings.warn(
            f"FLOP counter: unsupported operators were not counted: {listed}", UserWarning, stacklevel=2
        )
    return result
