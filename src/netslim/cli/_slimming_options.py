"""Options that ``netslim slim`` and ``netslim demo`` share: the L1 strength and distillation."""

from __future__ import annotations

import argparse

from netslim.cli._common import finite_float


def l1_strength(text: str) -> float | str:
    """argparse type of ``--l1``: a number, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, or auto; got {text!r}") from None
    return finite_float(text)


def add_distill_args(parser: argparse.ArgumentParser) -> None:
    """``--distill`` and its temperature and weight."""
    g = parser.add_argument_group("distillation")
    g.add_argument(
        "--distill",
        action="store_true",
        help="fine-tune with knowledge distillation from the network before the cut",
    )
    g.add_argument(
        "--distill-temperature",
        type=finite_float,
        default=4.0,
        metavar="T",
        help="softening temperature of the teacher's and student's logits (default: 4)",
    )
    g.add_argument(
        "--distill-alpha",
        type=finite_float,
        default=0.9,
        metavar="A",
        help="weight of the teacher term; 1-A weights the cross-entropy on labels (default: 0.9)",
    )
