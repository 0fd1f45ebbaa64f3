"""``netslim compress``: store a pruned checkpoint compactly (relative indices, weight sharing, Huffman)."""

from __future__ import annotations

import argparse
from typing import Any

from netslim.cli._common import add_command, same_named


def register(subparsers: Any) -> None:
    """Add the ``compress`` sub-command."""
    parser = add_command(
        subparsers,
        "compress",
        run,
        help="write a pruned checkpoint in Deep Compression storage and print its size report",
        description=(
            "Store the zeros of a weight-pruned checkpoint as relative indices with filler zeros "
            "(Han et al.), optionally share weights by k-means (--quantize) and Huffman code the streams "
            "(--huffman). Without --quantize the file decompresses to exactly the same tensors."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint written by netslim.save / netslim prune")
    parser.add_argument("-o", "--output", required=True, help="compressed file to write (e.g. model.nsz)")
    parser.add_argument("--index-bits-fc", type=int, default=5, help="relative-index bits of 2-D weights")
    parser.add_argument("--index-bits-conv", type=int, default=8, help="relative-index bits of conv weights")
    parser.add_argument("--quantize", action="store_true", help="k-means weight sharing (lossy)")
    parser.add_argument("--bits-fc", type=int, default=5, help="codebook bits, 2-D weights")
    parser.add_argument("--bits-conv", type=int, default=8, help="codebook bits, conv weights")
    parser.add_argument("--huffman", action="store_true", help="Huffman code the index and code streams")


def run(args: argparse.Namespace) -> int:
    """Compress ``args.checkpoint`` into ``args.output`` and print the size report; returns 0."""
    from netslim._atomic import check_writable_target
    from netslim.compression import compress_checkpoint
    from netslim.io import check_finite, read_checkpoint

    check_writable_target(args.output)
    check_finite(read_checkpoint(args.checkpoint).state_dict, f"checkpoint {args.checkpoint}")
    options = ("index_bits_fc", "index_bits_conv", "quantize", "bits_fc", "bits_conv", "huffman")
    report = compress_checkpoint(args.checkpoint, args.output, **same_named(args, options))
    print(report.render())
    print(f"wrote {args.output}: {report.total_bytes} bytes, {report.ratio:.1f}x smaller than dense")
    return 0
