"""Run the benchmark suite and regenerate docs/RESULTS.md from the stored JSON.

    python -m benchmarks.run --suite smoke|quick|standard|full [--only ROW_OR_GROUP ...] [--force]
        [--results-dir benchmarks/results] [--docs-dir docs] [--data-dir DIR] [--dataset fashion-mnist]

Rows already stored with status ok are skipped (the full suite resumes); ``--render-only`` skips running.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import render, rows_gates, rows_slimming, rows_speed, rows_standard, rows_weights  # noqa: F401  (rows register on import)
from benchmarks.suite import ROWS, RowContext, run_rows

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the suite runner."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=("smoke", "quick", "standard", "full"), default="quick")
    p.add_argument("--only", nargs="+", metavar="ROW_OR_GROUP", help="row names or groups to run")
    p.add_argument("--force", action="store_true", help="re-run rows that are already stored")
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="checkpoints and run folders (default benchmarks/work/<suite>)",
    )
    p.add_argument("--data-dir", default=None, help="folder with the data set files")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--render-only", action="store_true", help="only regenerate docs from stored results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected rows, render the docs; returns 0, or 1 when a row of this run failed."""
    args = parse_args(argv)
    known = set(ROWS) | {r.group for r in ROWS.values()}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        print(f"unknown row or group {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    if not args.render_only:
        work = args.work_dir or ROOT / "benchmarks" / "work" / args.suite
        ctx = RowContext(suite=args.suite, work_dir=work, data_dir=args.data_dir, dataset=args.dataset)
        start = time.perf_counter()
        before = time.time()
        results = run_rows(ctx, args.results_dir, only=args.only, force=args.force)
        failed = [
            name for name, rec in results.items() if rec["status"] != "ok" and _finished_after(rec, before)
        ]
        print(f"suite {args.suite}: {time.perf_counter() - start:.1f} s")
    out = render.render(args.results_dir, args.docs_dir)
    print(f"wrote {out}")
    if failed:
        print(f"failed rows: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _finished_after(record: dict, since: float) -> bool:
    try:
        return time.mktime(time.strptime(record["finished"], "%Y-%m-%d %H:%M:%S")) >= int(since)
    except (KeyError, ValueError):
        return True


if __name__ == "__main__":
    raise SystemExit(main())
