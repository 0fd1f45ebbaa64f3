"""CPU inference for weight-pruned networks: a layer runs a sparse kernel only where that is measured to win.

Backends for a layer ``y = x @ W.T + b`` (conv layers via im2col, ``groups=1``):

* ``"dense"``: the original ``nn.Linear`` / ``nn.Conv2d`` module itself, left in place (no wrapper, so a
  layer kept dense costs exactly what it cost before).
* ``"torch_csr"``: ``torch.addmm`` with ``W`` as a ``torch.sparse_csr`` tensor with int32 indices (the
  index width MKL's LP64 sparse BLAS wants; int64 indices were measurably slower).
* ``"scipy_csr"``: SciPy's compiled CSR matrix product on the NumPy view of the input (available when
  SciPy is installed). Single-threaded, but with little per-call overhead: it often wins at batch 1.

:func:`to_sparse_inference` times, on each layer's real input (captured from example inputs, resized to
each target batch size), the dense module and every sparse candidate, interleaved in one process with
:class:`netslim.measurement.latency.Timer` (warm-up, 30 repeats, quartiles). A sparse kernel replaces the
layer only when it wins at *every* batch size tuned for, by at least ``margin`` (10%) in the median and
with non-overlapping interquartile ranges (its third quartile below dense's first); otherwise the plain
dense module stays. A look that cannot decide (a median win with overlapping quartiles, or a win smaller
than the margin) is repeated with 4x the repeats, and that longer look's medians decide. The batch sizes
and thread count the choice was made for are recorded on every converted module and on the model
(``sparse_inference_tuned_for``); :func:`retune` redoes the choice for other batch sizes or threads.
Sparse convolutions (im2col + CSR) rarely beat oneDNN's dense convolution and then simply stay dense.
The converted modules are for inference only (no autograd).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from netslim._inputs import call_model, map_tensors
from netslim.errors import PruningError
from netslim.measurement.latency import Timer, Timing, num_threads
from netslim.weights.masks import finalize

Backend = Literal["dense", "torch_csr", "scipy_csr"]
SPARSE_BACKENDS: tuple[Backend, ...] = ("torch_csr", "scipy_csr")
TUNED_ATTR = "sparse_inference_tuned_for"


class LatencyTimer(Protocol):
    """Anything with :meth:`netslim.measurement.latency.Timer.measure`'s signature (tests inject fakes)."""

    def measure(self, fns: Sequence[Callable[[], Any]]) -> list[Timing]:
        """One Timing per function, the functions timed interleaved."""
        ...


def available_backends() -> list[Backend]:
    """Backends usable in this environment (``scipy_csr`` needs SciPy)."""
    backends: list[Backend] = ["dense", "torch_csr"]
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        return backends
    return [*backends, "scipy_csr"]


class _SparseBase(nn.Module):
    """Holds a 2-D weight as CSR buffers (int32 indices) and multiplies ``x2d @ W.T + b`` with it."""

    def _init_csr(self, weight2d: torch.Tensor, bias: torch.Tensor | None, backend: Backend) -> None:
        if backend not in SPARSE_BACKENDS:
            raise PruningError(f"unknown sparse backend {backend!r}; choose one of {list(SPARSE_BACKENDS)}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            csr = weight2d.detach().float().cpu().to_sparse_csr()
        self.backend = backend
        self.shape2d = tuple(weight2d.shape)
        self.register_buffer("crow_indices", csr.crow_indices().to(torch.int32))
        self.register_buffer("col_indices", csr.col_indices().to(torch.int32))
        self.register_buffer("values", csr.values().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().float().cpu().clone())
        self.tuned_for: dict[str, Any] = {}
        self.timings_ms: dict[str, Any] = {}
        self._operand: Any = None
        self._bias_col: torch.Tensor | None = None

    def _prepare(self) -> Any:
        if self.backend == "torch_csr":
            self._operand = torch.sparse_csr_tensor(
                self.crow_indices, self.col_indices, self.values, self.shape2d, check_invariants=False
            )
            self._bias_col = None if self.bias is None else self.bias.unsqueeze(1)
        else:
            import scipy.sparse

            self._operand = scipy.sparse.csr_matrix(
                (self.values.numpy(), self.col_indices.numpy(), self.crow_indices.numpy()), shape=self.shape2d
            )
        return self._operand

    def _matmul(self, x2d: torch.Tensor) -> torch.Tensor:
        w = self._operand if self._operand is not None else self._prepare()
        if self.backend == "torch_csr":
            if self._bias_col is None:
                return torch.sparse.mm(w, x2d.t()).t()
            return torch.addmm(self._bias_col, w, x2d.t()).t()
        out = torch.from_numpy((w @ x2d.detach().contiguous().numpy().T).T)
        return out if self.bias is None else out.add_(self.bias)

    def _dense_weight(self) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            self.crow_indices.long(),
            self.col_indices.long(),
            self.values,
            self.shape2d,
            check_invariants=True,
        ).to_dense()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state["_operand"] = state["_bias_col"] = None  # sparse tensors cannot be deep-copied or pickled
        return state

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._operand = self._bias_col = None  # buffers may move or change dtype: rebuild lazily
        return super()._apply(fn, *args, **kwargs)


class SparseLinear(_SparseBase):
    """Inference-only replacement of an ``nn.Linear`` computing with a CSR weight on ``backend``."""

    def __init__(self, linear: nn.Linear, backend: Backend) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._init_csr(linear.weight, linear.bias, backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, computed with the sparse kernel."""
        if x.dim() == 2:
            return self._matmul(x)
        lead = x.shape[:-1]
        return self._matmul(x.reshape(-1, self.in_features)).reshape(*lead, self.out_features)

    def to_dense(self) -> nn.Linear:
        """The equivalent plain ``nn.Linear`` (zeros included)."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(self._dense_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer.eval()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, backend={self.backend}"


class SparseConv2d(_SparseBase):
    """Inference-only replacement of an ``nn.Conv2d`` (``groups=1``): im2col, then a sparse matrix product."""

    def __init__(self, conv: nn.Conv2d, backend: Backend) -> None:
        super().__init__()
        if not _convertible(conv):
            raise PruningError("sparse conv supports groups=1, zero padding given as numbers; keep it dense")
        self.in_channels, self.out_channels, self.kernel_size = (
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
        )
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self._init_csr(conv.weight.reshape(conv.out_channels, -1), conv.bias, backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, computed with im2col and the sparse kernel."""
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # N, C*k*k, L
        flat = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # N*L, C*k*k
        out = self._matmul(flat).reshape(n, out_h * out_w, self.out_channels)
        return out.transpose(1, 2).reshape(n, self.out_channels, out_h, out_w)

    def to_dense(self) -> nn.Conv2d:
        """The equivalent plain ``nn.Conv2d`` (zeros included)."""
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=self.bias is not None,
        )
        with torch.no_grad():
            conv.weight.copy_(self._dense_weight().reshape(conv.weight.shape))
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv.eval()

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, kernel_size={self.kernel_size}, backend={self.backend}"


def convert_layer(module: nn.Module, backend: Backend) -> nn.Module:
    """The inference form of a Linear or Conv2d layer on ``backend`` (``"dense"``: a plain copy)."""
    if backend == "dense":
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            raise PruningError(
                f"sparse inference supports Linear and Conv2d layers, not {type(module).__name__}"
            )
        return copy.deepcopy(module)
    if isinstance(module, nn.Linear):
        return SparseLinear(module, backend)
    if isinstance(module, nn.Conv2d):
        return SparseConv2d(module, backend)
    raise PruningError(f"sparse inference supports Linear and Conv2d layers, not {type(module).__name__}")


def choose_backend(
    timings: Mapping[int, Mapping[str, Timing]],
    margin: float = 0.10,
    second_looks: Collection[int] = (),
) -> tuple[Backend, dict[str, Any]]:
    """Pick ``"dense"`` unless a sparse backend is clearly faster at every batch size.

    ``timings[batch][backend]`` holds interleaved measurements. A sparse backend qualifies when, at every
    batch size, its median is at most ``(1 - margin)`` x dense's and its third quartile lies below dense's
    first quartile; at the batch sizes in ``second_looks`` (timed again, 4x longer, because one look could
    not decide) the median alone decides (memory-bound layers time bimodally, so their quartiles overlap
    even when one kernel is much faster). Among qualifying backends the one with the best geometric-mean
    speed-up wins. Returns the backend and ``{"reason": ...}`` explaining the choice.
    """
    if not timings:
        return "dense", {"reason": "not timed"}
    backends = [b for b in next(iter(timings.values())) if b != "dense"]
    best: Backend = "dense"
    best_speedup = 1.0
    reasons = []
    for backend in backends:
        ratios = []
        for batch, cell in timings.items():
            dense, sparse = cell["dense"], cell[backend]
            if sparse.median_ms > (1 - margin) * dense.median_ms:
                reasons.append(f"{backend} b{batch}: {sparse.median_ms / dense.median_ms:.2f}x dense")
                break
            if sparse.q3_ms >= dense.q1_ms and batch not in second_looks:
                reasons.append(f"{backend} b{batch}: interquartile ranges overlap")
                break
            ratios.append(dense.median_ms / sparse.median_ms)
        else:
            speedup = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
            if speedup > best_speedup:
                best, best_speedup = backend, speedup  # type: ignore[assignment]
    if best == "dense":
        return "dense", {"reason": "; ".join(reasons) or "no sparse backend"}
    return best, {"reason": f"{best_speedup:.2f}x faster than dense (geometric mean over batch sizes)"}


@dataclass
class SparseInferenceResult:
    """The converted model, one record per examined layer, and what the choice was tuned for."""

    model: nn.Module
    choices: list[dict[str, Any]] = field(default_factory=list)
    tuned_for: dict[str, Any] = field(default_factory=dict)


def _capture(model: nn.Module, example_inputs: Any, names: list[str]) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_pre_hook(lambda _m, a, n=n: seen.setdefault(n, a[0].detach()))
        for n in names
    ]
    try:
        with torch.inference_mode():
            call_model(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _convertible(m: nn.Module) -> bool:
    if isinstance(m, nn.Linear):
        return True
    return (
        isinstance(m, nn.Conv2d)
        and m.groups == 1
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


def _resize_batch(x: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    if batch_size is None or x.shape[0] == batch_size:
        return x
    reps = -(-batch_size // x.shape[0])
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:batch_size].contiguous()


def _call(layer: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return layer(x)

    return run


SCREEN_SLOWER = 1.25


def _screen(
    dense: nn.Module, layers: Mapping[str, nn.Module], candidates: Sequence[str], x: torch.Tensor
) -> dict[str, Timing]:
    """Backends already more than 25% slower than dense in a 3-call interleaved look, with that timing.

    Such a kernel cannot win by the margin; dropping it early keeps tuning of large layers short (a
    SciPy product on a 9216x4096 layer at 60% density takes seconds per call at batch 64).
    """
    quick = Timer(repeats=3, warmup=1, retries=0, load=lambda: None)
    first, *rest = quick.measure([_call(dense, x)] + [_call(layers[k], x) for k in candidates])
    return {k: t for k, t in zip(candidates, rest) if t.median_ms > SCREEN_SLOWER * first.median_ms}


def _borderline(cell: Mapping[str, Timing], candidates: Sequence[str], margin: float) -> bool:
    """Too close to call in one look: a candidate's median beats dense by the margin but the quartiles
    overlap, or it beats dense by less than the margin (memory-bound layers time bimodally: one look
    at a 4096x4096 layer at 60% density, batch 8, saw CSR at 0.95x dense, the next at 0.77x)."""
    dense = cell["dense"]
    for k in candidates:
        t = cell[k]
        by_margin = t.median_ms <= (1 - margin) * dense.median_ms
        if (by_margin and t.q3_ms >= dense.q1_ms) or (not by_margin and t.median_ms < dense.median_ms):
            return True
    return False


def _to_cpu(example_inputs: Any) -> Any:
    return map_tensors(example_inputs, lambda t: t.cpu())


def to_sparse_inference(
    model: nn.Module,
    example_inputs: Any,
    *,
    batch_sizes: Sequence[int] | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    backends: Sequence[Backend] | None = None,
    repeats: int = 30,
    margin: float = 0.10,
    min_sparsity: float = 0.3,
    timer: LatencyTimer | None = None,
    screen: bool | None = None,
) -> SparseInferenceResult:
    """Convert a weight-pruned model for CPU inference, keeping a layer dense unless sparse clearly wins.

    Works on a finalized copy (masks folded in); ``model`` is not changed. Every Linear and Conv2d
    (``groups=1``) layer whose weight sparsity is at least ``min_sparsity`` (default 30% zeros: MKL's CSR
    product beat dense at 60% density with 2 threads and batch 8) is timed on its captured input
    (repeated/trimmed to each of ``batch_sizes``, default: the example's batch) with ``threads`` torch
    threads (default: the current setting), dense module against each sparse backend, interleaved. The
    layer becomes a :class:`SparseLinear` / :class:`SparseConv2d` only under the rule of
    :func:`choose_backend` (``margin``, non-overlapping IQRs, every batch size); otherwise the plain module
    stays. ``timer`` replaces the default 30-repeat :class:`~netslim.measurement.latency.Timer`;
    ``screen`` (default: only with the default timer) first drops, in a 3-call look, kernels more than 25%
    slower than dense. Returns the converted model (eval mode), one record per examined layer and
    ``tuned_for`` (``{"batch_sizes", "threads", "margin", "repeats"}``, also stored on the model and
    converted modules).
    """
    candidates = [b for b in (backends or available_backends()) if b != "dense"]
    unknown = [b for b in candidates if b not in available_backends()]
    if unknown:
        raise PruningError(f"backends {unknown} are not available here; choose from {available_backends()}")
    if not 0 <= margin < 1:
        raise PruningError(f"margin must be in [0, 1), e.g. 0.1 for 10%; got {margin}")
    if batch_sizes is None:
        batch_sizes = [batch_size] if batch_size is not None else []
    if any(b < 1 for b in batch_sizes):
        raise PruningError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    converted = finalize(copy.deepcopy(model)).eval().cpu()
    example_inputs = _to_cpu(example_inputs)
    targets = [n for n, m in converted.named_modules() if n and _convertible(m)]
    inputs = _capture(converted, example_inputs, targets)
    if screen is None:  # a quick pre-screen drops kernels far slower than dense (real timers only)
        screen = timer is None
    # real timers only: a second, 4x longer look where the first cannot decide (see _borderline)
    second_look = Timer(repeats=4 * repeats, warmup=3, retries=0) if timer is None else None
    timer = timer or Timer(repeats=repeats, warmup=3, retries=1)
    with num_threads(threads) as used:
        sizes = (
            list(dict.fromkeys(int(b) for b in batch_sizes))
            or sorted({int(x.shape[0]) for x in inputs.values()})[:1]
        )
        tuned = {"batch_sizes": sizes, "threads": used, "margin": margin, "repeats": repeats}
        result = SparseInferenceResult(model=converted, tuned_for=tuned)
        for name in targets:
            module = converted.get_submodule(name)
            w = module.weight.detach()
            sparsity = float((w == 0).sum()) / w.numel()
            if name not in inputs or sparsity < min_sparsity:
                continue
            layers = {b: convert_layer(module, b) for b in candidates}
            timings: dict[int, dict[str, Timing]] = {}
            looked_again: set[int] = set()
            for b in sizes:
                x = _resize_batch(inputs[name], b)
                screened = _screen(module, layers, candidates, x) if screen else {}
                alive = [k for k in candidates if k not in screened]
                fns = [_call(module, x)] + [_call(layers[k], x) for k in alive]
                timings[b] = {**dict(zip(["dense", *alive], timer.measure(fns))), **screened}
                if second_look is not None and _borderline(timings[b], alive, margin):
                    timings[b] = {**dict(zip(["dense", *alive], second_look.measure(fns))), **screened}
                    looked_again.add(b)
            best, why = choose_backend(timings, margin, looked_again)
            medians = {b: {k: t.median_ms for k, t in cell.items()} for b, cell in timings.items()}
            if best != "dense":
                chosen = layers[best]
                chosen.tuned_for, chosen.timings_ms = dict(tuned), medians
                parent_name, _, attr = name.rpartition(".")
                setattr(converted.get_submodule(parent_name) if parent_name else converted, attr, chosen)
            result.choices.append(
                {
                    "layer": name,
                    "type": type(module).__name__,
                    "density": 1.0 - sparsity,
                    "batch_sizes": sizes,
                    "backend": best,
                    "reason": why["reason"],
                    "timings_ms": medians,
                    "timings": {b: {k: t.to_dict() for k, t in cell.items()} for b, cell in timings.items()},
                }
            )
    setattr(converted, TUNED_ATTR, tuned)
    return result


def densify(model: nn.Module) -> nn.Module:
    """Swap every SparseLinear / SparseConv2d for its plain module, in place; returns ``model``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (SparseLinear, SparseConv2d)):
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, module.to_dense())
    if hasattr(model, TUNED_ATTR):
        delattr(model, TUNED_ATTR)
    return model


def retune(model: nn.Module, example_inputs: Any, **options: Any) -> SparseInferenceResult:
    """Redo the dense/sparse choice of a converted model, e.g. for other ``batch_sizes`` or ``threads``.

    Takes the same options as :func:`to_sparse_inference`; ``model`` is not changed.
    """
    return to_sparse_inference(densify(copy.deepcopy(model)), example_inputs, **options)
