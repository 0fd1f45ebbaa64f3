"""The ``netslim`` command line.

Each sub-command lives in its own module in this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit
code). Modules are discovered here, so adding a command never edits a shared list.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from netslim.errors import NetslimError


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``netslim CMD: error: ... (see 'netslim CMD --help')``);
    sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered sub-command."""
    from netslim import __version__

    parser = _Parser(
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
    _finite_floats(parser)
    return parser


def _finite_floats(parser: argparse.ArgumentParser) -> None:
    """Make every ``type=float`` option of every command refuse nan and inf (``_common.finite_float``)."""
    from netslim.cli._common import finite_float

    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        for child in (action.choices or {}).values() if isinstance(action.choices, dict) else ():
            if isinstance(child, argparse.ArgumentParser):
                _finite_floats(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or --version (0), a usage error (2, said in one line on stderr)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from netslim.runfolder import release_all

    try:
        _apply_threads(args)
        return int(args.func(args) or 0)
    except NetslimError as exc:
        print(f"netslim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system fault outside netslim's own checks: still one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"netslim {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"netslim {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        release_all()


def _apply_threads(args: argparse.Namespace) -> None:
    """Honour ``--threads N``: intra-op threads and, where still allowed, inter-op threads."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise NetslimError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # settable once per process, before any inter-op work
        torch.set_num_interop_threads(threads)
