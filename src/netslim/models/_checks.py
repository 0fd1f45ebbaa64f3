"""Argument checks shared by the model builders; every failure is a NetslimError saying what to pass."""

from __future__ import annotations

import math

from netslim.errors import NetslimError


def positive_int(name: str, value: object) -> int:
    """``value`` as an int if it is a positive integer, else NetslimError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NetslimError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_float(name: str, value: object) -> float:
    """``value`` as a float if it is a number > 0, else NetslimError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise NetslimError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest integer, never below 1."""
    return max(1, round(channels * width))


def check_common(num_classes: int, in_channels: int, input_size: int) -> None:
    """Validate the three arguments every zoo model takes."""
    positive_int("num_classes", num_classes)
    positive_int("in_channels", in_channels)
    positive_int("input_size", input_size)


def depth_blocks(family: str, depth: object, per_block: int, extra: int, stages: int = 3) -> int:
    """Blocks per stage ``n`` for a network of ``depth = stages*per_block*n + extra`` layers."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise NetslimError(f"{family} depth must be an integer, got {depth!r}")
    step = stages * per_block
    if depth < step + extra or (depth - extra) % step:
        valid = ", ".join(str(step * n + extra) for n in (1, 2, 3, 6, 9))
        raise NetslimError(f"{family} depth must be {step}*n+{extra} with n >= 1 (e.g. {valid}), got {depth}")
    return (depth - extra) // step


def pooled_size(family: str, input_size: int, pools: int, ceil: bool = False) -> int:
    """Spatial size after ``pools`` 2x2 stride-2 max-pools; NetslimError if it would reach zero."""
    size = input_size
    for _ in range(pools):
        size = -(-size // 2) if ceil else size // 2
        if size < 1:
            raise NetslimError(
                f"{family}: input_size {input_size} is too small for {pools} 2x2 poolings; "
                f"use input_size >= {2**pools}"
            )
    return size


def finite_float(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number, else NetslimError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise NetslimError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def probability(name: str, value: object) -> float:
    """``value`` as a float if it lies in [0, 1), else NetslimError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise NetslimError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)
