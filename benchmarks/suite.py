"""A resumable suite of benchmark rows.

Each row is a function that measures something and returns a JSON-serializable dict. Results are stored one
file per row under ``<results_dir>/<suite>/<row>.json``; a row stored with status "ok" is skipped unless
``force`` is set, so an interrupted full suite resumes where it stopped. Rendering (``benchmarks.render``)
reads only these files: tables and plots are regenerated from stored raw results, never by hand.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

RowFn = Callable[["RowContext"], dict[str, Any]]


@dataclass
class RowContext:
    """What a row needs to know: the suite's scale and where it may write."""

    suite: str  # "smoke" | "quick" | "full"
    work_dir: Path  # scratch space (run folders, checkpoints)
    data_dir: str | None = None
    dataset: str = "fashion-mnist"
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    def scale(self, smoke: Any, quick: Any, full: Any) -> Any:
        """Pick a setting by suite size."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.suite]


@dataclass
class Row:
    name: str
    fn: RowFn
    group: str
    suites: tuple[str, ...] = ("smoke", "quick", "full")


ROWS: dict[str, Row] = {}


ALL_SUITES = ("smoke", "quick", "full")


def row(name: str, group: str, suites: tuple[str, ...] = ALL_SUITES) -> Callable[[RowFn], RowFn]:
    """Register a benchmark row under ``name``."""

    def deco(fn: RowFn) -> RowFn:
        if name in ROWS:
            raise ValueError(f"benchmark row {name!r} registered twice")
        ROWS[name] = Row(name=name, fn=fn, group=group, suites=suites)
        return fn

    return deco


def machine_info() -> dict[str, Any]:
    """The machine a result was measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_rows(
    ctx: RowContext,
    results_dir: Path,
    *,
    only: list[str] | None = None,
    force: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run every registered row of ``ctx.suite`` not yet stored; returns all stored results of the suite."""
    out_dir = results_dir / ctx.suite
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in ROWS.values():
        if ctx.suite not in r.suites or (only and r.name not in only and r.group not in only):
            continue
        path = out_dir / f"{r.name}.json"
        if path.exists() and not force and _stored_status(path) == "ok":
            print(f"[skip] {r.name}: stored in {path}")
            continue
        scratch = ctx.work_dir / r.name
        if force and path.exists() and scratch.is_dir():
            # a forced re-run starts over: its trainers would otherwise resume the stored run's checkpoints
            shutil.rmtree(scratch)
        print(f"[run ] {r.name} ({r.group})", flush=True)
        start = time.perf_counter()
        try:
            result = r.fn(ctx)
            status = "ok"
        except Exception as exc:  # one failing row must not lose the others
            traceback.print_exc()
            result, status = {"error": f"{type(exc).__name__}: {exc}"}, "error"
        record = {
            "row": r.name,
            "group": r.group,
            "suite": ctx.suite,
            "status": status,
            "seconds": round(time.perf_counter() - start, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine_info(),
            "command": f"python -m benchmarks.run --suite {ctx.suite} --only {r.name}",
            "result": result,
        }
        # Error rows are stored too (rendered as failures, retried by the next run); ok rows are final.
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
        os.replace(tmp, path)
        print(f"[{status:4}] {r.name} in {record['seconds']} s", flush=True)
    return load_results(results_dir, ctx.suite)


def _stored_status(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError):
        return None


def load_results(results_dir: Path, suite: str) -> dict[str, dict[str, Any]]:
    """All stored row records of a suite, by row name."""
    folder = results_dir / suite
    if not folder.is_dir():
        return {}
    records = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    # other JSON beside the rows (the standard suite's summary.json) is not a row record
    return {name: rec for name, rec in records.items() if isinstance(rec, dict) and "row" in rec}
