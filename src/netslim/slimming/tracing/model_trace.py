"""``trace_model``: run the model once under the recorder, hooks turning each leaf layer call into one record.

Leaf layers are convs, linears, BatchNorms and channel gates; a layer called again (shared weights) ties its
new input channels to its first call's. How channels flow between the leaf layers is the recorder's job
(:mod:`netslim.slimming.tracing.recorder`); what the trace holds is described in
:mod:`netslim.slimming.tracing` and :mod:`netslim.slimming.tracing.records`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from netslim.errors import TracingError
from netslim.slimming.tracing.recorder import ChannelRecorder
from netslim.slimming.tracing.records import Info, ModRec, Trace

LEAF_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.modules.batchnorm._BatchNorm)


def _leaf_kind(m: nn.Module) -> str | None:
    if isinstance(m, nn.modules.batchnorm._BatchNorm) or getattr(m, "netslim_channel_scale", False):
        return "bn"  # a channel gate (netslim.slimming.gates) is a BN without shift
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        if m.groups == 1:
            return "conv"
        if m.groups == m.in_channels == m.out_channels:
            return "dwconv"
        return "gconv"
    return None


def _record_module(tr: ChannelRecorder, fqn: str, kind: str, m: nn.Module, x: Any, out: Any) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.dim() < 2:
        tr.unknown(
            type(m).__name__,
            [x] if isinstance(x, torch.Tensor) else [],
            [out] if isinstance(out, torch.Tensor) else [],
            " (unexpected input)",
        )
        return
    tr.read([x], fqn)
    inf = tr.info(x)
    if kind == "linear" and x.dim() != 2:
        tr.unknown(f"Linear on a {x.dim()}-D input", [x], [out])
        return
    rec = tr.modules.get(fqn)
    if rec is not None:  # a module called again: same weights, so the same channels
        tr.edges.append((rec.in_desc, inf.desc))
        out_desc = rec.out_desc
        rec.in_ids.append(id(x))
        rec.in_segs.append(inf.segs)
    else:
        if kind == "dwconv":
            out_desc = inf.desc
        elif kind == "gconv":
            tr.pins.append((inf.desc, f"grouped convolution {fqn}"))
            out_desc = tr.new_space(out.shape[1], fqn, pin=f"grouped convolution {fqn}")
        elif kind == "bn":
            out_desc = tr.new_spaces_like(inf.desc, fqn)
        else:
            out_desc = tr.new_space(out.shape[1], fqn)
        rec = ModRec(fqn, kind, inf.desc, out_desc, [id(x)], [], [inf.segs], tuple(x.shape[2:]))
        tr.modules[fqn] = rec
        tr.order.append(fqn)
    if fqn in tr.ignored:
        tr.pins.append((inf.desc, f"ignored layer {fqn}"))
        tr.pins.append((out_desc, f"ignored layer {fqn}"))
    rec.out_ids.append(id(out))
    n = out.shape[1]
    if kind == "bn":
        affine = m.weight is not None
        segs = [(0, n, affine, ["bn", fqn] if affine else None)]
        tr.set_info(out, Info(out_desc, segs))
    else:
        tr.set_info(out, Info(out_desc, [(0, n, False, None)], fqn, (id(out),)))


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor in a model's output: nested tuples/lists/dicts (HF ``ModelOutput`` included), named
    tuples and dataclasses, so each one is pinned as a model output."""
    found: list[torch.Tensor] = []
    stack = [output]
    while stack:
        obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        else:
            stack.extend(t for t in tree_flatten(obj)[0] if t is not obj)
    return found


def _flat_inputs(example_inputs: Any) -> tuple[tuple, dict]:
    if isinstance(example_inputs, dict):
        return (), example_inputs
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    return tuple(example_inputs), {}


def trace_model(
    model: nn.Module, example_inputs: Any, ignored: set[str] | None = None, shapes_only: bool = True
) -> Trace:
    """Run ``model`` once on ``example_inputs`` (eval mode, no grad) and record its channel flow.

    ``example_inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs. The model's
    training flags are restored afterwards. With ``shapes_only`` the conv/linear/BatchNorm layers return zeros
    of the right shape instead of doing the arithmetic, which makes tracing several times faster; pass False
    for a model whose control flow depends on activation values (a model that
    fails on the zeros is traced again with real arithmetic). Raises TracingError if the model does not run.
    """
    if shapes_only:
        try:
            return _trace(model, example_inputs, ignored, True)
        except TracingError:
            pass
    return _trace(model, example_inputs, ignored, False)


def _trace(model: nn.Module, example_inputs: Any, ignored: set[str] | None, shapes_only: bool) -> Trace:
    tr = ChannelRecorder(set(ignored or ()), shapes_only)
    handles = []
    names = {m: n for n, m in model.named_modules()}

    def push(mod: nn.Module, args: tuple) -> None:
        tr.stack.append(names.get(mod, type(mod).__name__))
        if isinstance(mod, LEAF_TYPES) or getattr(mod, "netslim_channel_scale", False):
            tr.depth += 1

    def pop(mod: nn.Module, args: tuple, out: Any) -> None:
        fqn = tr.stack.pop() if tr.stack else ""
        kind = _leaf_kind(mod)
        if kind is not None:
            if tr.depth == 1 and args and isinstance(out, torch.Tensor) and tr.is_tainted(list(args)):
                tr.taint([out])
            if tr.depth == 1:  # still > 0 while recording, so our own torch calls are not traced
                _record_module(tr, fqn, kind, mod, args[0] if args else None, out)
            tr.depth -= 1

    for mod in names:
        handles.append(mod.register_forward_pre_hook(push))
        handles.append(mod.register_forward_hook(pop))
    args, kwargs = _flat_inputs(example_inputs)
    was_training = {m: m.training for m in names}
    if all(type(m).train is nn.Module.train for m in names):
        for m in names:  # what model.eval() does, without its recursion
            m.training = False
    else:
        model.eval()
    try:
        with torch.no_grad():
            tr.taint([t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)])
            for t in tree_flatten((args, kwargs))[0]:
                if isinstance(t, torch.Tensor) and t.dim() >= 2:
                    tr.set_info(
                        t,
                        Info(
                            tr.new_space(t.shape[1], "<input>", pin="model input"),
                            [(0, t.shape[1], False, None)],
                        ),
                    )
            with tr:
                output = model(*args, **kwargs)
    except Exception as exc:
        raise TracingError(
            f"the model could not be run on the example inputs ({type(exc).__name__}: {exc}); pass "
            "example_inputs the model accepts (a tensor, a tuple of tensors or a dict of keyword inputs)"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.training = flag
    for t in output_tensors(output):
        if t.dim() >= 1:
            inf = tr.info(t) if t.dim() >= 2 else None
            if inf is not None:
                tr.pins.append((inf.desc, "model output"))
                tr.read([t], "<output>")
    tr.branch_pins()
    return Trace(
        tr.n_vars, tr.spaces, tr.edges, tr.pins, tr.modules, tr.infos, tr.readers, tr.order, tr.conversions
    )
