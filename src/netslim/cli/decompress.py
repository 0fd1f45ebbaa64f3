"""``netslim decompress``: turn a compressed model back into a netslim checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from netslim.cli._common import add_command


def register(subparsers: Any) -> None:
    """Add the ``decompress`` sub-command."""
    parser = add_command(
        subparsers,
        "decompress",
        run,
        help="decode a file written by `netslim compress` into a checkpoint that netslim.load reads",
        description="Decode a compressed model into a regular netslim checkpoint (dense tensors).",
    )
    parser.add_argument("file", help="compressed model written by `netslim compress`")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write")


def run(args: argparse.Namespace) -> int:
    """Decompress ``args.file`` into the checkpoint ``args.output``; returns 0."""
    from netslim._atomic import check_writable_target
    from netslim.compression import decompress_checkpoint

    check_writable_target(args.output)
    path = decompress_checkpoint(args.file, args.output)
    print(f"wrote {path}")
    return 0
