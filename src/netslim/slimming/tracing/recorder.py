"""The recorder: a TorchFunctionMode that follows channels through every torch op of a forward pass.

:class:`ChannelRecorder` sees each torch function and tensor method call with its real arguments and maps
the channel variables of its inputs to its outputs (see :mod:`netslim.slimming.tracing`); leaf layers are
recorded by :mod:`netslim.slimming.tracing.model_trace`'s hooks, and the recorder only computes their
output shape (:mod:`netslim.slimming.tracing.shapes`).
"""

from __future__ import annotations

import bisect
import itertools
import linecache
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from netslim.slimming.tracing.op_kinds import (
    BINARY,
    IDENTITY,
    LIKE,
    NO_TRACE,
    OTHER_ACTS,
    RESHAPE,
    ZERO_ACTS,
    ZERO_KEEP,
    norm_name,
)
from netslim.slimming.tracing.records import Info, ModRec, Seg
from netslim.slimming.tracing.segments import combine, const_map, refine, slice_segs
from netslim.slimming.tracing.shapes import HEAVY, zeros_like_result

# turning a tensor's value into a Python value: what Python control flow (if/while/range) is built on
_TO_PYTHON = {
    torch.Tensor.__bool__: "bool",
    torch.Tensor.item: "number (.item())",
    torch.Tensor.__int__: "int",
    torch.Tensor.__float__: "float",
    torch.Tensor.__index__: "index",
    torch.Tensor.tolist: "list (.tolist())",
    torch.Tensor.__complex__: "complex",
    torch.Tensor.numpy: "NumPy array",
    torch.equal: "bool (torch.equal)",
    torch.allclose: "bool (torch.allclose)",
    torch.is_nonzero: "bool (torch.is_nonzero)",
}
# torch and netslim.slimming (this package included): frames skipped when naming the model's code
_OWN_DIRS = (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(__file__)))


def _as_tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, list | tuple) else (v,)


def _tensors(obj: Any, found: list[torch.Tensor]) -> list[torch.Tensor]:
    """Append the tensors in nested tuples/lists/dicts to ``found`` (a lean ``tree_flatten``); returns it."""
    if isinstance(obj, torch.Tensor):
        found.append(obj)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _tensors(v, found)
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensors(v, found)
    return found


def _user_frame() -> str:
    """``file:line (code)`` of the innermost caller outside torch and netslim's tracer (the model's code)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIRS):
        frame = frame.f_back
    if frame is None:
        return "an unknown place"
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return f"{where} ({code[:80]})" if code else where


class ChannelRecorder(TorchFunctionMode):
    """Channel variables, their ties and pins, and each tensor's :class:`Info`, as a forward pass runs."""

    def __init__(self, ignored: set[str], shapes_only: bool = True) -> None:
        super().__init__()
        self.shapes_only = shapes_only
        self.n_vars = 0
        self.spaces: list[tuple[int, int, str]] = []
        self.starts: list[int] = []  # first variable of each space, ascending
        self.edges: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.pins: list[tuple[torch.Tensor, str]] = []
        self.infos: dict[int, Info] = {}
        self.alive: list[torch.Tensor] = []
        self.readers: dict[int, list[str]] = {}
        self.modules: dict[str, ModRec] = {}
        self.order: list[str] = []
        self.depth = 0
        self.stack: list[str] = []
        self.ignored = ignored
        self.warned: set[tuple[str, str]] = set()
        # data-dependent control flow: tensors whose values depend on the inputs, and where the first
        # of them was turned into a Python value (after that, every channel in use is pinned)
        self.tainted: set[int] = set()
        self.branch: str | None = None
        self.branch_var = 0
        self.conversions: list[str] = []

    # ---- data-dependent control flow -------------------------------------------------------------------
    def taint(self, tensors: Sequence[torch.Tensor]) -> None:
        """Mark tensors as depending on the model's input values."""
        for t in tensors:
            if id(t) not in self.tainted:
                self.tainted.add(id(t))
                self.alive.append(t)  # keep the id unique while the trace runs

    def is_tainted(self, tensors: Sequence[torch.Tensor]) -> bool:
        return any(id(t) in self.tainted for t in tensors)

    def to_python(self, kind: str, ins: list[torch.Tensor]) -> None:
        """A tensor computed from the inputs became a Python value: record where, pin from here on."""
        if not self.is_tainted(ins):
            return  # a constant or a parameter: the same on every input
        place = _user_frame()
        text = f"a tensor turned into a Python {kind} in module '{self.where()}' at {place}"
        if text not in self.conversions:
            self.conversions.append(text)
        if self.branch is None:
            self.branch = text
            self.branch_var = self.n_vars
            warnings.warn(
                f"netslim: {text}: control flow there may depend on the input's values, and a path the "
                "example inputs did not take could need other channels; the channels in use from that "
                "point on are not pruned (make the forward shape-only to prune them)",
                stacklevel=3,
            )

    def branch_pins(self) -> None:
        """Pin every variable created after the first data-dependent conversion (call once, at the end)."""
        if self.branch is not None and self.n_vars > self.branch_var:
            self.pins.append((torch.arange(self.branch_var, self.n_vars), f"after {self.branch}"))

    # ---- variables -------------------------------------------------------------------------------------
    def new_space(self, n: int, owner: str, pin: str | None = None) -> torch.Tensor:
        desc = torch.arange(self.n_vars, self.n_vars + n)
        self.spaces.append((self.n_vars, n, owner))
        self.starts.append(self.n_vars)
        self.n_vars += n
        if pin:
            self.pins.append((desc, pin))
        return desc

    def new_spaces_like(self, desc: torch.Tensor, owner: str) -> torch.Tensor:
        """Fresh variables for a BatchNorm output: one space per run of input positions from one space.

        A BatchNorm after a concat (directly or through a depthwise conv) then joins each part's group.
        """
        if desc.numel() == 0:
            return self.new_space(0, owner)
        lo, hi = desc.aminmax()
        if bisect.bisect_right(self.starts, int(lo)) == bisect.bisect_right(self.starts, int(hi)):
            return self.new_space(desc.numel(), owner)  # one source space (spaces are ranges of ids)
        src = torch.searchsorted(torch.tensor(self.starts), desc, right=True) - 1
        cuts = [0, *(torch.nonzero(src[1:] != src[:-1]).flatten() + 1).tolist(), desc.numel()]
        parts = [
            self.new_space(b - a, owner if k == 0 else f"{owner}[{a}:{b}]")
            for k, (a, b) in enumerate(itertools.pairwise(cuts))
        ]
        return torch.cat(parts)

    def set_info(self, t: torch.Tensor, info: Info) -> None:
        self.alive.append(t)
        self.infos[id(t)] = info

    def info(self, t: torch.Tensor) -> Info | None:
        """Info of a tensor with channels; a tensor of unknown origin gets a pinned space."""
        if t.dim() < 2:
            return None
        got = self.infos.get(id(t))
        if got is None or got.desc.numel() != t.shape[1]:
            where = self.where()
            got = Info(
                self.new_space(t.shape[1], f"tensor@{where}", pin="created inside forward"),
                [(0, t.shape[1], False, None)],
            )
            self.set_info(t, got)
        return got

    def read(self, tensors: Sequence[torch.Tensor], who: str) -> None:
        for t in tensors:
            self.readers.setdefault(id(t), []).append(who)
            if self.branch is not None:  # used after a data-dependent branch: keep its channels
                inf = self.infos.get(id(t))
                if inf is not None:
                    self.pins.append((inf.desc, f"used after {self.branch}"))

    def where(self) -> str:
        return (self.stack[-1] if self.stack else "") or "<model>"

    def unknown(self, name: str, ins: list[torch.Tensor], outs: list[torch.Tensor], why: str = "") -> None:
        where = self.where()
        if (name, where) not in self.warned and any(t.dim() >= 2 for t in ins + outs):
            self.warned.add((name, where))
            warnings.warn(
                f"netslim: op '{name}' in module '{where}' is not understood{why}; the channels flowing "
                "through it are not pruned",
                stacklevel=2,
            )
        for t in ins:
            inf = self.info(t)
            if inf is not None:
                self.pins.append((inf.desc, f"unknown op {name} in {where}"))
        for t in outs:
            if t.dim() >= 2:
                self.set_info(
                    t,
                    Info(
                        self.new_space(t.shape[1], f"{name}@{where}", pin=f"unknown op {name}"),
                        [(0, t.shape[1], False, None)],
                    ),
                )

    # ---- torch function mode ---------------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self.depth > 0:
            if self.shapes_only and func in HEAVY:
                return zeros_like_result(func, args, kwargs)
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        kind = _TO_PYTHON.get(func)
        if kind is not None:
            self.to_python(kind, _tensors(kwargs, _tensors(args, [])))
            return out
        name = norm_name(func)
        if name in NO_TRACE:
            return out
        outs = _tensors(out, [])
        if not outs:
            return out
        ins = _tensors(kwargs, _tensors(args, []))
        if self.is_tainted(ins):
            self.taint(outs)
        self.read(ins, name)
        try:
            handled = self.dispatch(name, args, kwargs, ins, outs)
        except (IndexError, ValueError, TypeError, RuntimeError, StopIteration):
            handled = False
        if not handled:
            self.unknown(name, ins, outs)
        return out

    def dispatch(self, name: str, args: tuple, kwargs: dict, ins: list, outs: list) -> bool:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else (ins[0] if ins else None)
        if x is None:
            return not any(t.dim() >= 2 for t in outs) or self.fresh_outputs(name, outs)
        if name in LIKE:
            inf = self.info(x)
            if inf is not None:
                self.set_info(outs[0], Info(inf.desc, [(0, inf.desc.numel(), False, None)]))
            return True
        if x.dim() < 2 and all(t.dim() < 2 for t in outs):
            return True
        if name in ZERO_ACTS or name in OTHER_ACTS or name in IDENTITY or name in ZERO_KEEP:
            return self.unary(name, x, args, kwargs, outs[0])
        if name in BINARY:
            return kwargs.get("alpha", 1) == 1 and self.binary(name, args, outs[0])
        if name in ("cat", "concat", "concatenate"):
            return self.cat(args[0], kwargs.get("dim", args[1] if len(args) > 1 else 0), outs[0])
        if name in ("split", "chunk", "tensor_split", "unbind", "split_with_sizes"):
            dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
            return self.split(name, x, dim, outs)
        if name in RESHAPE:
            return self.reshape(x, outs[0])
        if name in ("mean", "sum", "amax", "amin", "max", "min", "nanmean"):
            return self.reduce(name, x, args, kwargs, outs)
        if name == "getitem":
            return self.getitem(x, args[1], outs[0])
        if name == "index_select":
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            index = kwargs.get("index", args[2] if len(args) > 2 else None)
            if dim % x.dim() != 1 or index is None:
                return self.same_channels(x, outs[0], keep_consts=False)
            inf = self.info(x)
            self.pins.append((inf.desc, f"index_select along channels in {self.where()}"))
            idx = index.to("cpu").long()
            d = inf.desc[idx]
            dead = all(s[2] for s in inf.segs)
            self.set_info(outs[0], Info(d, [(0, d.numel(), dead, None)]))
            return True
        if name in ("permute", "transpose", "movedim", "swapaxes", "expand", "expand_as", "repeat"):
            return self.same_channels(x, outs[0], keep_consts=True)
        return False

    def fresh_outputs(self, name: str, outs: list) -> bool:
        for t in outs:
            if t.dim() >= 2:
                self.info(t)
        return True

    def same_channels(self, x: torch.Tensor, out: torch.Tensor, keep_consts: bool) -> bool:
        if out.dim() < 2 or x.shape[:2] != out.shape[:2]:
            return False
        inf = self.info(x)
        segs = inf.segs if keep_consts else const_map(inf.segs, True, None)
        self.set_info(out, Info(inf.desc, segs))
        return True

    def unary(self, name: str, x: torch.Tensor, args: tuple, kwargs: dict, out: torch.Tensor) -> bool:
        if out.dim() < 2 or out.shape[:2] != x.shape[:2]:
            return False
        inf = self.info(x)
        if name in IDENTITY:
            segs = inf.segs
        elif name in ZERO_KEEP:
            if name == "pad":
                pad = args[1] if len(args) > 1 else kwargs.get("pad")
                if len(pad) > 2 * (x.dim() - 2):
                    return False
            padding = kwargs.get("padding", args[3] if len(args) > 3 else 0)
            include = kwargs.get("count_include_pad", args[5] if len(args) > 5 else True)
            consts = name.startswith("avg_pool") and (not include or not any(_as_tuple(padding)))
            segs = const_map(inf.segs, True, (lambda e: e) if consts else None)
        else:
            params = [a for a in args[1:] if a is None or isinstance(a, int | float | str | bool)]
            kw = {
                k: v for k, v in kwargs.items() if k != "inplace" and isinstance(v, int | float | str | bool)
            }
            if name == "hardtanh":
                lo = params[0] if params else kw.get("min_val", -1.0)
                hi = params[1] if len(params) > 1 else kw.get("max_val", 1.0)
                zero_ok = lo <= 0 <= hi
            elif name.startswith(("clamp", "clip")):
                lo = params[0] if params and name != "clamp_max" else kw.get("min")
                hi = (
                    params[-1]
                    if params and name != "clamp_min" and len(params) > (name != "clamp_max")
                    else kw.get("max")
                )
                zero_ok = (lo is None or lo <= 0) and (hi is None or hi >= 0)
            else:
                zero_ok = name in ZERO_ACTS
            params = [p for p in params if not isinstance(p, bool)]
            segs = const_map(inf.segs, zero_ok, lambda e: ["act", name, params, kw, e])
        producer, chain = inf.producer, inf.chain
        self.set_info(out, Info(inf.desc, segs, producer, (*chain, id(out)) if producer else ()))
        return True

    def binary(self, name: str, args: tuple, out: torch.Tensor) -> bool:
        reflected = name in ("radd", "rsub", "rmul", "rtruediv")
        base = {
            "iadd": "add",
            "isub": "sub",
            "imul": "mul",
            "itruediv": "div",
            "truediv": "div",
            "radd": "add",
            "rmul": "mul",
            "rtruediv": "rdiv",
        }.get(name, name)
        if out.dim() < 2 or len(args) < 2:
            return False
        c = out.shape[1]
        infos: list[Info | None] = []
        scalar: float | None = None
        for t in args[:2]:
            if isinstance(t, torch.Tensor) and t.numel() > 1:
                k = out.dim() - t.dim()
                if (t.shape[1 - k] if 1 - k >= 0 else 1) == 1:
                    infos.append(None)
                    continue
                if t.dim() != out.dim() or t.shape[1] != c:
                    return False
                infos.append(self.info(t))
            else:
                infos.append(None)
                if isinstance(t, int | float) and not isinstance(t, bool):
                    scalar = float(t)  # a 0-d tensor may depend on the input: not a constant
        real = [i for i in infos if i is not None]
        if not real:
            return False
        for other in real[1:]:
            self.edges.append((real[0].desc, other.desc))
        if len(real) == 2:
            segs = refine(real[0].segs, real[1].segs, lambda s, t: combine(base, s, t))
        else:
            segs = self._with_scalar(base, real[0], infos[0] is not None and not reflected, scalar)
        self.set_info(out, Info(real[0].desc, segs))
        return True

    @staticmethod
    def _with_scalar(base: str, inf: Info, first: bool, k: float | None) -> list[Seg]:
        """Segments of ``x op k`` (first) or ``k op x``; ``k`` None is a broadcast tensor partner."""
        if k is None:
            return const_map(inf.segs, base == "mul" or (base == "div" and first), None)
        if base == "mul":
            coef, bias = k, 0.0
        elif base == "div" and first and k != 0:
            coef, bias = 1.0 / k, 0.0
        elif base == "add":
            coef, bias = 1.0, k
        elif base == "sub":
            coef, bias = (1.0, -k) if first else (-1.0, k)
        elif base == "rsub":
            coef, bias = (-1.0, k) if first else (1.0, -k)
        else:
            return const_map(inf.segs, False, None)
        return const_map(inf.segs, bias == 0.0, lambda e: ["affine", coef, bias, e])

    def cat(self, tensors: Sequence[torch.Tensor], dim: int, out: torch.Tensor) -> bool:
        if out.dim() < 2:
            return False
        if dim % out.dim() != 1:
            infos = [self.info(t) for t in tensors]
            for other in infos[1:]:
                self.edges.append((infos[0].desc, other.desc))
            self.set_info(
                out,
                Info(infos[0].desc, const_map(infos[0].segs, all(s[2] for i in infos for s in i.segs), None)),
            )
            return True
        descs, segs, off = [], [], 0
        for t in tensors:
            inf = self.info(t)
            descs.append(inf.desc)
            segs.extend((s + off, e + off, d, x) for s, e, d, x in inf.segs)
            off += inf.desc.numel()
        self.set_info(out, Info(torch.cat(descs), segs))
        return True

    def split(self, name: str, x: torch.Tensor, dim: int, outs: list) -> bool:
        inf = self.info(x)
        if name == "unbind" or dim % x.dim() != 1:
            if name == "unbind" and dim % x.dim() in (0, 1):
                return False
            for t in outs:
                self.same_channels(x, t, keep_consts=True)
            return True
        # the split sizes are fixed by the code (or by the width for chunk): the channels must stay
        self.pins.append((inf.desc, f"{name} along channels in {self.where()}"))
        off = 0
        for t in outs:
            n = t.shape[1]
            self.set_info(t, Info(inf.desc[off : off + n], slice_segs(inf.segs, off, off + n)))
            off += n
        return off == inf.desc.numel()

    def reshape(self, x: torch.Tensor, out: torch.Tensor) -> bool:
        if out.dim() < 2 or x.dim() < 2 or out.shape[0] != x.shape[0]:
            return False
        inf = self.info(x)
        if out.shape[1] == x.shape[1]:
            self.set_info(out, Info(inf.desc, inf.segs, inf.producer, inf.chain))
            return True
        block = math.prod(x.shape[2:])
        if out.dim() == 2 and out.shape[1] == x.shape[1] * block:
            segs = [(s * block, e * block, d, e_) for s, e, d, e_ in inf.segs]
            self.set_info(out, Info(inf.desc.repeat_interleave(block), segs))
            return True
        if x.dim() == 2 and out.shape[1] and x.shape[1] % out.shape[1] == 0:
            block = x.shape[1] // out.shape[1]
            blocks = inf.desc.view(-1, block)
            if bool((blocks == blocks[:, :1]).all()) and all(
                s % block == 0 and e % block == 0 for s, e, _, _ in inf.segs
            ):
                segs = [(s // block, e // block, d, e_) for s, e, d, e_ in inf.segs]
                self.set_info(out, Info(blocks[:, 0].clone(), segs))
                return True
        return False

    def reduce(self, name: str, x: torch.Tensor, args: tuple, kwargs: dict, outs: list) -> bool:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim is None or isinstance(dim, torch.Tensor):
            return False
        dims = {d % x.dim() for d in _as_tuple(dim)}
        if 0 in dims or 1 in dims:
            return False
        inf = self.info(x)
        keep_const = name in ("mean", "amax", "amin", "max", "min", "nanmean")
        segs = const_map(inf.segs, True, (lambda e: e) if keep_const else None)
        if outs[0].dim() < 2 or outs[0].shape[1] != x.shape[1]:
            return False
        self.set_info(outs[0], Info(inf.desc, segs))
        for t in outs[1:]:
            self.info(t)
        return True

    def getitem(self, x: torch.Tensor, idx: Any, out: torch.Tensor) -> bool:
        idx = idx if isinstance(idx, tuple) else (idx,)
        if any(not isinstance(i, slice | type(Ellipsis)) for i in idx):
            return False
        if idx and idx[0] is Ellipsis:
            if len(idx) - 1 > x.dim() - 2:
                return False
            return self.same_channels(x, out, keep_consts=False)
        if idx[0] != slice(None):
            return False
        if len(idx) < 2 or idx[1] is Ellipsis:
            return self.same_channels(x, out, keep_consts=False)
        inf = self.info(x)
        if idx[1].step not in (None, 1):
            return False
        a, b, _ = idx[1].indices(inf.desc.numel())
        if (a, b) != (0, inf.desc.numel()):
            self.pins.append((inf.desc, f"channel slicing in {self.where()}"))
        keep = len(idx) == 2
        segs = slice_segs(inf.segs, a, b)
        if not keep:
            segs = const_map(segs, True, None)
        self.set_info(out, Info(inf.desc[a:b], segs))
        return True
