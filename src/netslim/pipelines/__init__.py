"""Each paper's recipe, top to bottom, as a config dataclass plus one run function.

The CLI only translates arguments into these configs, and the benchmarks call the same functions. The run
folder every pipeline writes (phase folders, file names) is defined once, in :mod:`netslim.pipelines.layout`,
and ``netslim report`` reads it from there.
"""
