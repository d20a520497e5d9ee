#!/usr/bin/env bash
# CI regression gate: run the fixed 'ci' suite on fresh results, benchmark, compile the report,
# then check accuracy and speed against the committed baselines. Exit status: that of the gate
# (0 pass, 1 regression or failed cells, 2 bad input).
#
#   bench/ci_gate.sh                     run and gate
#   bench/ci_gate.sh --write-baselines   run and (re)write bench/baselines/ci.json and ci-speed.json
#
# Environment: MUSICBENCH_SHARED (real data, default ../shared), CI_GATE_OUT (results folder,
# default runs/ci; emptied first so every cell is recomputed), CI_BENCH (benchmark files),
# CI_MAX_SLOWDOWN (speed ratio that fails, default 2.0: the CI machine is shared), CI_SPEED_BASE
# (a git ref, e.g. origin/main: gate speed against that commit measured now on this machine,
# instead of the committed bench/baselines/ci-speed.json recorded on other hardware).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MB="${MUSICBENCH:-$ROOT/.venv/bin/musicbench}"
SHARED="${MUSICBENCH_SHARED:-$ROOT/../shared}"
OUT="${CI_GATE_OUT:-$ROOT/runs/ci}"
BENCH_FILES="${CI_BENCH:-bench/test_report_bench.py}"
BASE="$ROOT/bench/baselines"
cd "$ROOT"

rm -rf "$OUT"
start=$(date +%s)
run_rc=0
"$MB" run --suite ci --out "$OUT" --data-home "$SHARED/data" --index-dir "$SHARED/indexes" \
    --no-mlflow --quiet || run_rc=$?
files=()
for f in $BENCH_FILES; do [ -f "$f" ] && files+=("$f"); done
"$MB" bench "${files[@]}" --out "$OUT/bench.json"
"$MB" report "$OUT" --bench "$OUT/bench.json" --format md,html,json --out "$OUT/report" > /dev/null
echo "ci suite + benchmarks + report: $(( $(date +%s) - start )) s; report in $OUT/report" >&2

if [ "${1:-}" = "--write-baselines" ]; then
    "$MB" check --results "$OUT" --write-baseline "$BASE/ci.json" --tolerance 0.02
    cp "$OUT/bench.json" "$BASE/ci-speed.json"
    echo "baselines written: $BASE/ci.json, $BASE/ci-speed.json" >&2
    exit "$run_rc"
fi
gate_rc=0
if [ -n "${CI_SPEED_BASE:-}" ]; then
    speed=(--speed-base "$CI_SPEED_BASE")
    for f in "${files[@]}"; do speed+=(--speed-bench "$f"); done
else
    speed=(--speed "$OUT/bench.json" --speed-baseline "$BASE/ci-speed.json")
fi
"$MB" check --baseline "$BASE/ci.json" --results "$OUT" "${speed[@]}" \
    --max-slowdown "${CI_MAX_SLOWDOWN:-2.0}" || gate_rc=$?
echo "ci gate total: $(( $(date +%s) - start )) s" >&2
exit $(( gate_rc > run_rc ? gate_rc : run_rc ))
