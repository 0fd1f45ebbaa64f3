"""``netslim export MODEL --onnx out.onnx [--int8 ...]``: ONNX export, optional INT8 static quantization."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import add_threads_arg
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``export`` sub-command."""
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX (optionally also an INT8-quantized copy)",
        description="MODEL is a zoo name or a checkpoint written by netslim.save. The exported graph has a "
        "dynamic batch dimension and is checked against torch with onnxruntime.",
    )
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT")
    p.add_argument("--onnx", required=True, metavar="OUT", help="path of the float ONNX file")
    p.add_argument("--input-size", metavar="CxHxW", help="e.g. 1x28x28 (default: from the model recipe)")
    p.add_argument("--int8", action="store_true", help="also write OUT with suffix .int8.onnx (static INT8)")
    p.add_argument(
        "--calib-dataset", metavar="NAME", help="dataset for calibration and accuracy (e.g. fashion-mnist)"
    )
    p.add_argument("--data-dir", help="where the dataset files are (default: netslim's search paths)")
    p.add_argument("--calib-batches", type=int, default=8, help="training batches used for calibration")
    p.add_argument("--eval-batches", type=int, default=20, help="test batches for the accuracy column")
    p.add_argument(
        "--repeats", type=int, default=30, help="timed runs per batch size (float and INT8 interleaved)"
    )
    p.add_argument(
        "--inference-form",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export the inference form: weight masks and BatchNorm folded into the layers before them "
        "(default: on)",
    )
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, verify against torch, and with ``--int8`` quantize and print the float/INT8 table."""
    from netslim._atomic import check_writable_target
    from netslim.export import (
        calibration_batches,
        compare_float_int8,
        export_onnx,
        max_abs_diff,
        quantize_int8,
    )
    from netslim.io import check_finite
    from netslim.measurement.resolve import example_input, load_model

    if args.int8 and not args.calib_dataset:  # before anything is written
        raise NetslimError("--int8 needs --calib-dataset NAME (real images to calibrate activation ranges)")
    for name in ("calib_batches", "eval_batches", "repeats"):
        if getattr(args, name) < 1:
            raise NetslimError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_writable_target(args.onnx, "--onnx")
    model = load_model(args.model, args.input_size).eval()
    check_finite(model, f"model {args.model}")
    x = example_input(model, args.input_size)
    exported, form_note = model, "as loaded"
    if args.inference_form:
        from netslim.inference import inference_form

        form = inference_form(model, x, channels_last=False)  # ONNX has no memory format: fuse only
        exported, form_note = form.plain_model, f"inference form: {form.describe()}"
    path = export_onnx(exported, args.onnx, x)
    diff = max_abs_diff(model, path, example_input(model, args.input_size, batch=4))
    size = path.stat().st_size
    print(f"wrote {path} ({size:,} bytes, {form_note}); max |torch - onnxruntime| = {diff:.2e}")
    if not args.int8:
        return 0
    if not args.calib_dataset:
        raise NetslimError("--int8 needs --calib-dataset NAME (real images to calibrate activation ranges)")
    from netslim.data import get_loaders

    data = get_loaders(args.calib_dataset, data_dir=args.data_dir)
    if data.in_channels != x.shape[1]:
        raise NetslimError(
            f"{args.calib_dataset} has {data.in_channels} channels but the model takes {x.shape[1]}; "
            "pass a matching --input-size or dataset"
        )
    int8_path = Path(str(path).removesuffix(".onnx") + ".int8.onnx")
    quantize_int8(path, int8_path, calibration_batches(data.train, args.calib_batches))
    table = compare_float_int8(
        path,
        int8_path,
        data.test,
        x,
        max_batches=args.eval_batches,
        repeats=args.repeats,
        threads=args.threads,
    )
    print(format_int8_table(table))
    print(f"wrote {int8_path}")
    return 0


def format_int8_table(table: dict[str, Any]) -> str:
    """File size, accuracy and, where INT8 was measured faster than float, latency of both models.

    Latency rows appear only for batch sizes where INT8 beat float beyond the noise (``int8_faster``);
    the others are summarized in one line saying INT8 is not faster there.
    """
    from netslim.measurement.latency import format_latency

    lines = [f"{'':<16}{'float':>22}{'int8':>22}{'int8/float':>12}"]
    f, q, r = table["float"], table["int8"], table["ratio"]
    lines.append(f"{'file size (B)':<16}{f['file_bytes']:>22,}{q['file_bytes']:>22,}{r['file_bytes']:>12.3f}")
    faster = table.get("int8_faster", {})
    slower = []
    for b in f["latency_ms"]:
        if faster.get(b):
            times = f"{format_latency(f['latency'][b]):>22}{format_latency(q['latency'][b]):>22}"
            lines.append(f"{f'latency b{b}':<16}{times}{r['latency_ms'][b]:>12.3f}")
        else:
            slower.append(f"b{b} {r['latency_ms'][b]:.2f}x float")
    if f["accuracy"] is not None:
        lines.append(f"{'accuracy':<16}{f['accuracy']:>22.4f}{q['accuracy']:>22.4f}{'':>12}")
    if slower:
        lines.append(
            f"INT8 is not measured faster than float at {', '.join(slower)} (median; not beyond the noise or "
            "slower): INT8 latency not reported there"
        )
    return "\n".join(lines)
