"""Moved: the Network Slimming run lives in :mod:`netslim.pipelines.slimming`; these names stay importable."""

from netslim.pipelines.slimming import SlimmingConfig, format_table, run_slimming

__all__ = ["SlimmingConfig", "format_table", "run_slimming"]
