"""``netslim measure MODEL [--compare OTHER]``: params, FLOPs, activation memory, latency and file size."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import add_command, add_model_file_args, add_threads_arg, add_timing_args
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``measure`` sub-command."""
    p = add_command(
        subparsers,
        "measure",
        run,
        help="count params/MACs/FLOPs, activation memory, CPU latency and file size of a model",
        description="MODEL is a zoo name (e.g. vgg19) or a checkpoint written by netslim.save. "
        "FLOPs = 2 x MACs of conv/linear layers (the Network Slimming paper's convention).",
    )
    add_model_file_args(p, input_size_default="from the model recipe, else 3 32 32")
    p.add_argument("--compare", metavar="OTHER", help="a second model; the ratio column is OTHER / MODEL")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], metavar="B")
    add_timing_args(
        p,
        repeats_help="timed forwards per batch size after warm-up (median and interquartile range reported)",
        inference_form_help="time latency in inference form: BN fused, channels_last where measured faster "
        "(default: on; --no-inference-form times the model as loaded)",
    )
    p.add_argument("--warmup", type=int, default=3)
    add_threads_arg(p)
    p.add_argument("--no-latency", action="store_true", help="skip timing")
    p.add_argument(
        "--onnxruntime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the model exported to ONNX (default: when onnxruntime is installed)",
    )
    p.add_argument(
        "--sparse",
        action="store_true",
        help="also convert MODEL for sparse CPU inference (weight-pruned layers run a CSR kernel only where "
        "it is measured >=10%% faster than dense at every --batch-sizes, with --threads) and time it against "
        "the unconverted model, interleaved",
    )
    p.add_argument("--json", metavar="OUT", help="write the full measurement dict(s) here")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _want_onnxruntime(args: argparse.Namespace) -> bool:
    if args.no_latency:
        return False
    if args.onnxruntime is not None:
        return bool(args.onnxruntime)
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _with_sparse(
    model: Any, name: str, x: Any, args: argparse.Namespace
) -> tuple[list[Any], list[str], list[dict[str, Any]]]:
    """The unconverted model (masks folded in) and its sparse-inference form, with the per-layer choices."""
    import copy

    from netslim.weights.masks import finalize
    from netslim.weights.sparse_inference import to_sparse_inference

    dense = finalize(copy.deepcopy(model)).eval()
    converted = to_sparse_inference(
        dense, x, batch_sizes=args.batch_sizes, threads=args.threads, repeats=max(args.repeats, 30)
    )
    return [dense, converted.model], [name, f"{name} (sparse)"], converted.choices


def run(args: argparse.Namespace) -> int:
    """Measure one model (or two side by side), print the table, optionally write JSON."""
    from netslim.measurement.api import compare_many, ratios
    from netslim.measurement.resolve import example_input, load_model
    from netslim.measurement.table import format_table

    if args.repeats < 1:
        raise NetslimError("--repeats must be >= 1")
    models = [load_model(args.model, args.input_size)]
    names = [Path(args.model).name]
    if args.compare and args.sparse:
        raise NetslimError("--sparse compares MODEL with its sparse form; drop --compare or --sparse")
    if args.compare:
        models.append(load_model(args.compare, args.input_size))
        names.append(Path(args.compare).name)
    x = example_input(models[0], args.input_size)
    choices: list[dict[str, Any]] = []
    if args.sparse:
        models, names, choices = _with_sparse(models[0], names[0], x, args)
    results = compare_many(
        models,
        x,
        latency=not args.no_latency,
        batch_sizes=args.batch_sizes,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        # a CSR layer has no ONNX form: the sparse comparison is a torch one
        onnxruntime=_want_onnxruntime(args) and not args.sparse,
        inference_form=args.inference_form and not args.sparse,
    )
    ratio = ratios(results[0], results[1]) if len(results) == 2 else None
    print(format_table(results, names, ratio))
    for c in choices:
        layer = f"{c['layer']} ({c['type']}, density {100 * c['density']:.1f}%)"
        print(f"sparse: {layer}: {c['backend']} ({c['reason']})")
    if args.sparse and not choices:
        print("sparse: no layer has at least 30% zero weights; nothing to convert")
    print(f"input {tuple(x.shape)}, threads {results[0]['threads']}; FLOPs = 2 x MACs (conv + linear)")
    for r, name in zip(results, names):
        if "latency_form" in r:
            print(f"{name}: latency measured in {r['latency_form']}")
    if not args.no_latency:
        print(
            "latency: median ± half the interquartile range, models interleaved; "
            "'noisy' = still spread or loaded after re-takes"
        )
    for r, name in zip(results, names):
        if r["unsupported"]:
            print(f"warning: {name}: operators not counted: {', '.join(sorted(r['unsupported']))}")
        for note in r["notes"]:
            print(f"note: {name}: {note}")
    if args.json:
        payload: dict[str, Any] = {"models": dict(zip(names, results))} if ratio else results[0]
        if ratio is not None:
            payload = {"a": results[0], "b": results[1], "names": names, "ratio": ratio}
        from netslim._atomic import atomic_write_json

        atomic_write_json(args.json, _jsonable(payload))
    return 0
