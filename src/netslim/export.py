"""Export to ONNX, run with onnxruntime, and quantize to INT8 with onnxruntime static quantization.

Slimmed models (including ``ChannelSelect``, which exports as a ``Gather``) and finalized weight-pruned
models export like any other network. The exporter is ``torch.onnx.export(dynamo=True)`` at opset 18
(its native opset); if that fails for a model, the TorchScript exporter (``dynamo=False``, opset 17) is
tried. The batch dimension is dynamic.

INT8: :func:`quantize_int8` runs ``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel
INT8 weights, INT8 activations) calibrated on real batches; :func:`compare_float_int8` reports file size,
latency (float and INT8 timed interleaved) and accuracy of both models side by side, and whether INT8 was
measured faster beyond the noise (:func:`int8_measured_faster`); ``netslim export --int8`` prints INT8
latency only where it was.

Why INT8 was once reported 4.4x slower at batch 64: the float and INT8 files used to be timed one after
the other (20 repeats each, no spread), so a job starting between the two showed up as a ratio. Timed
interleaved, the QDQ graph is fused by onnxruntime's default optimization level into QLinearConv/QGemm
(every Conv/Gemm gets an int8 kernel; MaxPool, Reshape and ReduceMean run on int8 or pass through), and
per-channel vs per-tensor weights or QDQ vs QOperator format change the time by under 10%. What decides
the outcome is layer size: on a 70%-slimmed VGG-19 (width 0.5, 3x32x32) INT8 ran at 0.5x float time
(batch 1 and 64), while on the README's tiny VGG-11 (width 0.25, 1x28x28, 12 MFLOPs) it was 1.02-1.1x
float, the quantize/dequantize steps costing as much as the small convolutions save (interleaved, load
average about 10 on 2 cores: ratios only).

Example::

    path = export_onnx(model, "model.onnx", torch.randn(1, 1, 28, 28))
    np.abs(run_onnx(path, x)[0] - model(x).numpy()).max()   # ~1e-6
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netslim.errors import NetslimError

DYNAMO_OPSET = 18
LEGACY_OPSET = 17


def _require_onnx() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise NetslimError(
            "onnxruntime is not installed; install the extra: pip install 'netslim[onnx]'"
        ) from None
    return onnxruntime


def _inputs_tuple(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        return (example_inputs,)
    return tuple(example_inputs)


def _names(n: int) -> list[str]:
    return ["input"] if n == 1 else [f"input{i}" for i in range(n)]


def _export_dynamo(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    shapes = tuple({0: batch} for _ in inputs)
    # the exporter logs progress and opset notes on stdout/logging; keep the caller's output clean
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                inputs,
                dynamo=True,
                opset_version=DYNAMO_OPSET,
                input_names=_names(len(inputs)),
                output_names=["output"],
                dynamic_shapes=shapes,
                verbose=False,
            )
            program.save(str(path))
    finally:
        quiet.setLevel(level)


def _export_legacy(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    names = _names(len(inputs))
    axes = {name: {0: "batch"} for name in [*names, "output"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(path),
            dynamo=False,
            opset_version=LEGACY_OPSET,
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
        )


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example_inputs: Any) -> Path:
    """Export ``model`` (eval mode, dynamic batch) to the ONNX file ``path`` and return the path.

    Raises:
        NetslimError: neither exporter could convert the model (the message has both reasons).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = _inputs_tuple(example_inputs)
    was_training = model.training
    model.eval()
    try:
        try:
            _export_dynamo(model, inputs, path)
        except Exception as dynamo_exc:
            try:
                _export_legacy(model, inputs, path)
            except Exception as legacy_exc:
                raise NetslimError(
                    f"ONNX export failed (dynamo exporter: {type(dynamo_exc).__name__}: "
                    f"{str(dynamo_exc)[:200]}; TorchScript exporter: {type(legacy_exc).__name__}: "
                    f"{str(legacy_exc)[:200]}); finalize weight masks (netslim.weights.finalize) and check "
                    "the input size"
                ) from legacy_exc
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` for ``path`` (``threads`` intra-op threads if given)."""
    ort = _require_onnx()
    if not Path(path).is_file():
        raise NetslimError(f"ONNX file {path} does not exist; export it first with netslim export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _feed(session: Any, inputs: Any) -> dict[str, np.ndarray]:
    arrays = [np.ascontiguousarray(_to_numpy(t)) for t in _inputs_tuple(inputs)]
    return {meta.name: arr for meta, arr in zip(session.get_inputs(), arrays)}


def _to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy().astype(np.float32, copy=False)
    return np.asarray(t, dtype=np.float32)


def run_onnx(path_or_session: Any, inputs: Any) -> list[np.ndarray]:
    """Run an ONNX model (a path or a session) on ``inputs`` (tensor(s) or array(s)); returns the outputs."""
    session = path_or_session if hasattr(path_or_session, "run") else onnx_session(path_or_session)
    return list(session.run(None, _feed(session, inputs)))


def onnx_latency(
    paths: Sequence[str | os.PathLike[str]],
    example_inputs: Any,
    batch_sizes: Sequence[int] = (1, 64),
    *,
    repeats: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
) -> list[dict[int, Any]]:
    """onnxruntime CPU latency of each ONNX file per batch size, the files timed interleaved.

    Returns one ``{batch: Timing}`` per path (:class:`netslim.measurement.latency.Timing`: median, quartiles,
    noisy flag); inputs repeat the first example sample.
    """
    from netslim.measurement.latency import DEFAULT_REPEATS, DEFAULT_WARMUP, Timer, batch_of

    timer = Timer(repeats=repeats or DEFAULT_REPEATS, warmup=DEFAULT_WARMUP if warmup is None else warmup)
    sessions = [onnx_session(p, threads=threads) for p in paths]
    result: list[dict[int, Any]] = [{} for _ in sessions]
    for b in batch_sizes:
        batch = batch_of(_inputs_tuple(example_inputs), b)
        feeds = [_feed(s, batch) for s in sessions]
        fns = [lambda s=s, feed=feed: s.run(None, feed) for s, feed in zip(sessions, feeds)]
        for k, timing in enumerate(timer.measure(fns)):
            result[k][b] = timing
    return result


def onnx_latency_ms(
    path: str | os.PathLike[str],
    example_inputs: Any,
    batch_sizes: Sequence[int] = (1, 64),
    *,
    repeats: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
) -> dict[int, float]:
    """Median onnxruntime CPU latency (ms) per batch size (see :func:`onnx_latency` for the spread)."""
    timed = onnx_latency([path], example_inputs, batch_sizes, repeats=repeats, warmup=warmup, threads=threads)
    return {b: t.median_ms for b, t in timed[0].items()}


class _BatchReader:
    """A ``CalibrationDataReader`` over a list of input arrays (one dict per batch)."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._items = iter([{name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def calibration_batches(loader: Iterable[Any], max_batches: int) -> list[np.ndarray]:
    """The first ``max_batches`` input batches of a ``(x, y)`` loader, as float32 arrays."""
    batches: list[np.ndarray] = []
    for item in loader:
        x = item[0] if isinstance(item, (tuple, list)) else item
        batches.append(np.ascontiguousarray(_to_numpy(x)))
        if len(batches) >= max_batches:
            break
    if not batches:
        raise NetslimError("the calibration loader yielded no batches; pass a non-empty dataset")
    return batches


def quantize_int8(
    float_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    calib_batches: Sequence[np.ndarray | torch.Tensor],
    *,
    per_channel: bool = True,
) -> Path:
    """Statically quantize an ONNX model to INT8 (QDQ) calibrated on ``calib_batches``; returns ``out_path``.

    Weights are INT8 (per output channel when ``per_channel``), activations INT8 with MinMax calibration.
    """
    _require_onnx()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calib_batches:
        raise NetslimError("quantize_int8 needs at least one calibration batch")
    float_path, out_path = Path(float_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    name = onnx_session(float_path).get_inputs()[0].name
    batches = [np.ascontiguousarray(_to_numpy(b)) for b in calib_batches]
    with tempfile.TemporaryDirectory(prefix="netslim-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimization; quantize the original if it fails
            prepared = float_path
        quantize_static(
            str(prepared),
            str(out_path),
            _BatchReader(name, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    return out_path


def onnx_accuracy(
    path: str | os.PathLike[str], loader: Iterable[Any], max_batches: int | None = None
) -> float:
    """Top-1 accuracy of an ONNX classifier on the ``(x, y)`` batches of ``loader`` (``max_batches`` cap)."""
    session = onnx_session(path)
    correct = total = 0
    for x, y in _limited(loader, max_batches):
        logits = run_onnx(session, x)[0]
        labels = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        correct += int((logits.argmax(axis=1) == labels).sum())
        total += len(labels)
    if total == 0:
        raise NetslimError("the evaluation loader yielded no samples")
    return correct / total


def _limited(loader: Iterable[Any], max_batches: int | None) -> Iterator[Any]:
    for i, item in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        yield item


def compare_float_int8(
    float_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    eval_loader: Iterable[Any] | None,
    example_inputs: Any,
    *,
    max_batches: int | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int | None = None,
    warmup: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Size (bytes), onnxruntime latency (ms per batch size) and accuracy of the float and INT8 models.

    The two files are timed interleaved. Returns ``{"float": {...}, "int8": {...}, "ratio": {...},
    "int8_faster": {batch: bool}}`` where ratio is int8 / float and ``int8_faster`` says whether INT8 was
    measured faster beyond the noise (:func:`int8_measured_faster`); accuracy is ``None`` without an
    ``eval_loader``.
    """
    timed = onnx_latency(
        [float_path, int8_path], example_inputs, batch_sizes, repeats=repeats, warmup=warmup, threads=threads
    )
    rows: dict[str, dict[str, Any]] = {}
    for key, path, timing in (("float", float_path, timed[0]), ("int8", int8_path, timed[1])):
        rows[key] = {
            "file_bytes": Path(path).stat().st_size,
            "latency": {b: t.to_dict() for b, t in timing.items()},
            "latency_ms": {b: t.median_ms for b, t in timing.items()},
            "accuracy": onnx_accuracy(path, eval_loader, max_batches) if eval_loader is not None else None,
        }
    ratio: dict[str, Any] = {
        "file_bytes": rows["int8"]["file_bytes"] / rows["float"]["file_bytes"],
        "latency_ms": {
            b: rows["int8"]["latency_ms"][b] / rows["float"]["latency_ms"][b] for b in batch_sizes
        },
    }
    rows["ratio"] = ratio
    rows["int8_faster"] = {
        b: int8_measured_faster(rows["float"]["latency"][b], rows["int8"]["latency"][b]) for b in batch_sizes
    }
    return rows


def int8_measured_faster(float_timing: dict[str, Any], int8_timing: dict[str, Any]) -> bool:
    """True when the INT8 model is faster than float beyond the noise: a lower median, its third quartile
    below float's first quartile, and neither measurement flagged noisy."""
    if float_timing.get("noisy") or int8_timing.get("noisy"):
        return False
    return int8_timing["q3_ms"] < float_timing["q1_ms"]


def max_abs_diff(model: nn.Module, path: str | os.PathLike[str], inputs: Any) -> float:
    """Largest absolute difference between the torch and onnxruntime outputs of ``model`` on ``inputs``."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            expected = model(*_inputs_tuple(inputs))
    finally:
        model.train(was_training)
    got = run_onnx(path, inputs)[0]
    return float(np.abs(got - expected.detach().cpu().numpy()).max())
