"""Exceptions netslim raises for bad input. Each message says what to do about it."""

from __future__ import annotations


class NetslimError(Exception):
    """Base class: a problem the user can fix (bad argument, missing file, unsupported model)."""


class DataNotFoundError(NetslimError, FileNotFoundError):
    """A dataset's files are not where netslim looked; the message lists the paths and file names."""


class CorruptFileError(NetslimError, ValueError):
    """A data file, checkpoint or compressed model is truncated or malformed."""


class UnknownNameError(NetslimError, KeyError):
    """An unknown model, dataset or option name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PruningError(NetslimError, ValueError):
    """A pruning request that cannot be honoured (ratio out of range, a layer would be emptied, no BN)."""


class TracingError(NetslimError, RuntimeError):
    """The model could not be run or traced on the example inputs."""


class TrainingDivergedError(NetslimError, FloatingPointError):
    """Training produced a non-finite loss or weights; the message names likely causes and what was kept."""
