"""``netslim datasets``: which datasets are installed and where, or which files are missing."""

from __future__ import annotations

import argparse
from typing import Any

from netslim.cli._common import add_command
from netslim.data.dataset import download_root
from netslim.data.download import download
from netslim.data.locate import find, missing_message, search_roots
from netslim.data.registry import get_spec, list_datasets
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``datasets`` sub-command."""
    parser = add_command(
        subparsers,
        "datasets",
        run,
        help="show which datasets are present and where",
        description="List the built-in datasets: where each one's files were found, or which files to put "
        "where. Search order: --data-dir, $NETSLIM_DATA, ~/.cache/netslim, /usr/share/datasets.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="datasets to show (default: all)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder searched first")
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch the named datasets that are missing from their official source (checksums verified) "
        "into --data-dir, $NETSLIM_DATA or ~/.cache/netslim",
    )


def run(args: argparse.Namespace) -> int:
    """Print one block per dataset; returns 0, or 1 when a dataset named explicitly is missing."""
    if args.download and not args.names:
        raise NetslimError(
            "--download needs the names of the datasets to fetch, e.g. netslim datasets cifar10 --download"
        )
    names = args.names or list_datasets()
    specs = [get_spec(n) for n in names]
    print("search order: " + ", ".join(str(r) for r in search_roots(args.data_dir)))
    missing = 0
    for spec in specs:
        found = find(spec, args.data_dir)
        if found is None and args.download:
            print(f"{spec.name}: downloading into {download_root(args.data_dir) / spec.name} ...")
            download(spec, download_root(args.data_dir))
            found = find(spec, args.data_dir)
        if found is not None:
            print(f"{spec.name:<14} found    {found.directory} ({found.layout.kind})")
            continue
        missing += 1
        print(f"{spec.name:<14} missing")
        for line in missing_message(spec, args.data_dir).splitlines()[1:]:
            print(f"{'':<14} {line.strip()}")
    return 1 if missing and args.names else 0
