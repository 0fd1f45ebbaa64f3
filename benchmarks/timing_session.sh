#!/usr/bin/env bash
# One-shot timing session for issue 13's targets: runs the four rows of group `speed` of the quick suite
# (netslim.slim vs Torch-Pruning, the sparse inference grid, the slimmed VGG-19 inference form, the BN
# sparsity step overhead), then prints each target's verdict and regenerates docs/RESULTS.md.
#
#   benchmarks/timing_session.sh            # refuses when the machine is loaded
#   benchmarks/timing_session.sh --anyway   # runs anyway; the rows still record the load (over_cores)
#
# Takes about 5-8 minutes on a quiet 2-core machine (measured 11.5 min under a load average of 4-6: slim vs
# TP 140 s, sparse grid 303 s, inference form 204 s, overhead 44 s). Stop every other job first: the
# 1-minute load average must be at most the core count (better: under 0.5 x cores; it takes ~2 minutes
# to decay after a job stops). Env: PYTHON (default .venv/bin/python, else python), SUITE (default quick),
# RESULTS_DIR and DOCS_DIR (default benchmarks/results and docs; point them elsewhere for a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
SUITE=${SUITE:-quick}
RESULTS_DIR=${RESULTS_DIR:-benchmarks/results}
DOCS_DIR=${DOCS_DIR:-docs}
ANYWAY=0
[ "${1:-}" = "--anyway" ] && ANYWAY=1

cores=$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)))')
load=$(cut -d' ' -f1 /proc/loadavg)
echo "load average (1 min) $load on $cores cores"
if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > c) }'; then
    if [ "$ANYWAY" = 0 ]; then
        echo "refusing: the load average exceeds the core count; stop other jobs, wait ~2 min, or pass --anyway" >&2
        exit 3
    fi
    echo "WARNING: loaded machine; results will be marked (load.over_cores, noisy timings)" >&2
elif awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > 0.5 * c) }'; then
    echo "WARNING: load above half the cores; timings may be flagged noisy" >&2
fi
"$PY" -c 'import torch_pruning' 2>/dev/null || echo "note: torch-pruning missing, speed_slim_vs_tp will be skipped" >&2

start=$(date +%s)
status=0
"$PY" -m benchmarks.run --suite "$SUITE" --only speed --force --results-dir "$RESULTS_DIR" \
    --docs-dir "$DOCS_DIR" --work-dir "${WORK_DIR:-benchmarks/work/$SUITE}" || status=$?
echo "session: $(( $(date +%s) - start )) s"
"$PY" -m benchmarks.rows_speed --suite "$SUITE" --results-dir "$RESULTS_DIR"
exit $status
