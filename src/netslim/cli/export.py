"""``netslim export MODEL --onnx out.onnx [--int8 ...]``: ONNX export, optional INT8 static quantization."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import add_command, add_model_file_args, add_threads_arg, add_timing_args
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``export`` sub-command."""
    p = add_command(
        subparsers,
        "export",
        run,
        help="export a model to ONNX (optionally also an INT8-quantized copy)",
        description="MODEL is a zoo name or a checkpoint written by netslim.save. The exported graph has a "
        "dynamic batch dimension and is checked against torch with onnxruntime.",
    )
    add_model_file_args(p, input_size_default="from the model recipe")
    p.add_argument("--onnx", required=True, metavar="OUT", help="path of the float ONNX file")
    p.add_argument("--int8", action="store_true", help="also write OUT with suffix .int8.onnx (static INT8)")
    p.add_argument(
        "--calib-dataset", metavar="NAME", help="dataset for calibration and accuracy (e.g. fashion-mnist)"
    )
    p.add_argument("--data-dir", help="where the dataset files are (default: netslim's search paths)")
    p.add_argument("--calib-batches", type=int, default=8, help="training batches used for calibration")
    p.add_argument("--eval-batches", type=int, default=20, help="test batches for the accuracy column")
    add_timing_args(
        p,
        repeats_help="timed runs per batch size (float and INT8 interleaved)",
        inference_form_help="export the inference form: weight masks and BatchNorm folded into the layers "
        "before them (default: on)",
    )
    add_threads_arg(p)


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
    from netslim.measurement.table import format_int8_table

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
            "pass a matching --input-shape or dataset"
        )
    int8_path = Path(str(path).removesuffix(".onnx") + ".int8.onnx")
    quantize_int8(path, int8_path, calibration_batches(data.train, args.calib_batches))
    options = {"max_batches": args.eval_batches, "repeats": args.repeats, "threads": args.threads}
    print(format_int8_table(compare_float_int8(path, int8_path, data.test, x, **options)))
    print(f"wrote {int8_path}")
    return 0
