"""``netslim models``: list the model zoo with parameter counts for CIFAR- and MNIST-shaped inputs."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from netslim._table import format_table
from netslim.cli._common import add_command
from netslim.errors import UnknownNameError

# (column label, in_channels, input_size)
INPUT_SHAPES = (("3x32x32", 3, 32), ("1x28x28", 1, 28))


def zoo_table(pattern: str | None = None, num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per registered model: name, summary and parameter counts per input shape."""
    from netslim.models import MODELS, create, list_models

    names = list_models(pattern)
    if not names:
        raise UnknownNameError(f"no model matches {pattern!r}; models: {', '.join(list_models())}")
    rows = []
    for name in names:
        params = {}
        for label, in_channels, input_size in INPUT_SHAPES:
            with torch.device("meta"):  # shapes only: no memory, no initialisation cost
                model = create(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size)
            params[label] = sum(p.numel() for p in model.parameters())
        rows.append({"name": name, "params": params, "summary": MODELS.get(name).summary})
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`zoo_table` as an aligned text table."""
    labels = [label for label, _, _ in INPUT_SHAPES]
    header = ["model", *(f"params {lb}" for lb in labels), "description"]
    body = [[r["name"], *(f"{r['params'][lb]:,}" for lb in labels), r["summary"]] for r in rows]
    return format_table(body, header, align="l" + "r" * len(labels) + "l")


def run(args: argparse.Namespace) -> int:
    """Print the zoo (table or JSON); returns 0."""
    rows = zoo_table(args.pattern, args.num_classes)
    print(json.dumps(rows, indent=2) if args.json else render_table(rows))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` sub-command."""
    parser = add_command(
        subparsers,
        "models",
        run,
        help="list the model zoo with parameter counts",
        description="List every registered model with its parameter count on 3x32x32 and 1x28x28 inputs.",
    )
    parser.add_argument("pattern", nargs="?", default=None, help="only names matching this, e.g. 'vgg*'")
    parser.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default: 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
