"""The ``netslim`` command line.

Each sub-command lives in its own module in this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit
code). Modules are discovered here, so adding a command never edits a shared list.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from netslim.errors import NetslimError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered sub-command."""
    from netslim import __version__

    parser = argparse.ArgumentParser(
        prog="netslim",
        description="Prune convolutional networks: Network Slimming and Han-style weight pruning.",
    )
    parser.add_argument("--version", action="version", version=f"netslim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NetslimError as exc:
        print(f"netslim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"netslim {args.command}: interrupted", file=sys.stderr)
        return 130
