"""CPU inference for pruned networks: per layer, the fastest of dense and sparse execution, measured.

Backends for a layer ``y = x @ W.T + b`` (conv layers via im2col, ``groups=1``):

* ``"dense"``: the original ``F.linear`` / ``F.conv*`` (oneDNN/MKL GEMM).
* ``"torch_csr"``: ``torch.addmm`` with ``W`` as a ``torch.sparse_csr`` tensor with int32 indices (the
  index width MKL's LP64 sparse BLAS wants; int64 indices were measurably slower).
* ``"scipy_csr"``: SciPy's compiled CSR matrix product on the NumPy view of the input (available when
  SciPy is installed). Single-threaded, but with little per-call overhead: it often wins at batch 1.

:func:`to_sparse_inference` times every candidate on each layer's real input (captured from example inputs,
resized to the target batch size) and keeps the fastest, so a converted model never runs a layer slower
than dense on the measuring machine. The converted modules are for inference only (no autograd).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from netslim.errors import PruningError
from netslim.weights.masks import finalize

Backend = Literal["dense", "torch_csr", "scipy_csr"]


def available_backends() -> list[Backend]:
    """Backends usable in this environment (``scipy_csr`` needs SciPy)."""
    backends: list[Backend] = ["dense", "torch_csr"]
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        return backends
    return [*backends, "scipy_csr"]


class _CsrMatmul(nn.Module):
    """``x2d -> x2d @ W.T + b`` for a 2-D ``W`` stored as CSR buffers, on one of the sparse backends."""

    def __init__(self, weight2d: torch.Tensor, bias: torch.Tensor | None, backend: Backend) -> None:
        super().__init__()
        if backend not in ("torch_csr", "scipy_csr"):
            raise PruningError(f"unknown sparse backend {backend!r}; choose torch_csr or scipy_csr")
        csr = weight2d.detach().float().cpu().to_sparse_csr()
        self.backend = backend
        self.shape = tuple(weight2d.shape)
        self.register_buffer("crow_indices", csr.crow_indices().to(torch.int32))
        self.register_buffer("col_indices", csr.col_indices().to(torch.int32))
        self.register_buffer("values", csr.values().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().float().cpu().clone())
        self._cache: Any = None

    def _operand(self) -> Any:
        if self._cache is None:
            if self.backend == "torch_csr":
                self._cache = torch.sparse_csr_tensor(
                    self.crow_indices, self.col_indices, self.values, self.shape, check_invariants=False
                )
            else:
                import scipy.sparse

                self._cache = scipy.sparse.csr_matrix(
                    (self.values.numpy(), self.col_indices.numpy(), self.crow_indices.numpy()),
                    shape=self.shape,
                )
        return self._cache

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        w = self._operand()
        if self.backend == "torch_csr":
            if self.bias is None:
                return torch.sparse.mm(w, x2d.t()).t()
            return torch.addmm(self.bias.unsqueeze(1), w, x2d.t()).t()
        out = torch.from_numpy((w @ x2d.detach().contiguous().numpy().T).T)
        return out if self.bias is None else out.add_(self.bias)


class SparseLinear(nn.Module):
    """Inference-only replacement of an ``nn.Linear``; ``backend`` says how it computes."""

    def __init__(self, linear: nn.Linear, backend: Backend) -> None:
        super().__init__()
        self.in_features, self.out_features, self.backend = linear.in_features, linear.out_features, backend
        self.timings_ms: dict[str, float] = {}
        if backend == "dense":
            self.dense = copy.deepcopy(linear)
        else:
            self.kernel = _CsrMatmul(linear.weight, linear.bias, backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, computed with the sparse kernel (or the dense copy)."""
        if self.backend == "dense":
            return self.dense(x)
        lead = x.shape[:-1]
        return self.kernel(x.reshape(-1, self.in_features)).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, backend={self.backend}"


class SparseConv2d(nn.Module):
    """Inference-only replacement of an ``nn.Conv2d`` (``groups=1``): im2col, then a sparse matrix product."""

    def __init__(self, conv: nn.Conv2d, backend: Backend) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise PruningError("sparse conv supports groups=1, zero padding given as numbers; keep it dense")
        self.backend = backend
        self.timings_ms: dict[str, float] = {}
        self.out_channels, self.kernel_size = conv.out_channels, conv.kernel_size
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        if backend == "dense":
            self.dense = copy.deepcopy(conv)
        else:
            self.kernel = _CsrMatmul(conv.weight.reshape(conv.out_channels, -1), conv.bias, backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, computed with the sparse kernel (or the dense copy)."""
        if self.backend == "dense":
            return self.dense(x)
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # N, C*k*k, L
        flat = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # N*L, C*k*k
        out = self.kernel(flat).reshape(n, out_h * out_w, self.out_channels)
        return out.transpose(1, 2).reshape(n, self.out_channels, out_h, out_w)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, kernel_size={self.kernel_size}, backend={self.backend}"


def convert_layer(module: nn.Module, backend: Backend) -> nn.Module:
    """The inference replacement of a Linear or Conv2d layer on ``backend``."""
    if isinstance(module, nn.Linear):
        return SparseLinear(module, backend)
    if isinstance(module, nn.Conv2d):
        return SparseConv2d(module, backend)
    raise PruningError(f"sparse inference supports Linear and Conv2d layers, not {type(module).__name__}")


def median_time_ms(fn: Callable[[], Any], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


@dataclass
class SparseInferenceResult:
    """The converted model and, per layer, the chosen backend, its density and measured times (ms)."""

    model: nn.Module
    choices: list[dict[str, Any]] = field(default_factory=list)


def _capture(model: nn.Module, example_inputs: Any, names: list[str]) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_pre_hook(lambda _m, a, n=n: seen.setdefault(n, a[0].detach()))
        for n in names
    ]
    try:
        with torch.inference_mode():
            model(*example_inputs) if isinstance(example_inputs, tuple) else model(example_inputs)
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


def to_sparse_inference(
    model: nn.Module,
    example_inputs: Any,
    *,
    batch_size: int | None = None,
    backends: Sequence[Backend] | None = None,
    repeats: int = 20,
    min_sparsity: float = 0.5,
) -> SparseInferenceResult:
    """Convert a pruned model for CPU inference, picking dense or sparse per layer by measured speed.

    Works on a finalized copy (masks folded in); ``model`` is not changed. Every Linear and Conv2d
    (``groups=1``) layer whose weight sparsity is at least ``min_sparsity`` is timed on its captured input
    (repeated/trimmed to ``batch_size`` rows) with each backend, and replaced by a :class:`SparseLinear` /
    :class:`SparseConv2d` running the fastest one ("dense" when nothing beats it). Returns the converted
    model (eval mode) and one record per examined layer.
    """
    candidates = list(backends or available_backends())
    unknown = [b for b in candidates if b not in available_backends()]
    if unknown:
        raise PruningError(f"backends {unknown} are not available here; choose from {available_backends()}")
    if "dense" not in candidates:
        candidates.insert(0, "dense")
    converted = finalize(copy.deepcopy(model)).eval().cpu()
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = example_inputs.cpu()
    elif isinstance(example_inputs, tuple):
        example_inputs = tuple(t.cpu() if isinstance(t, torch.Tensor) else t for t in example_inputs)
    targets = [n for n, m in converted.named_modules() if n and _convertible(m)]
    inputs = _capture(converted, example_inputs, targets)
    result = SparseInferenceResult(model=converted)
    for name in targets:
        module = converted.get_submodule(name)
        w = module.weight.detach()
        sparsity = float((w == 0).sum()) / w.numel()
        if name not in inputs or sparsity < min_sparsity:
            continue
        x = _resize_batch(inputs[name], batch_size)
        timings: dict[str, float] = {}
        layers: dict[str, nn.Module] = {}
        for backend in candidates:
            layers[backend] = layer = convert_layer(module, backend)
            timings[backend] = median_time_ms(lambda layer=layer, x=x: layer(x), repeats=repeats)
        best = min(timings, key=timings.__getitem__)
        chosen = layers[best]
        chosen.timings_ms = timings
        parent_name, _, attr = name.rpartition(".")
        setattr(converted.get_submodule(parent_name) if parent_name else converted, attr, chosen)
        result.choices.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "density": 1.0 - sparsity,
                "batch_size": int(x.shape[0]),
                "backend": best,
                "timings_ms": timings,
            }
        )
    return result
