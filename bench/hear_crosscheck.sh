#!/usr/bin/env bash
# heareval's embeddings of musicbench.hear against musicbench's own on a HEAR task folder
# built from the shared mridangam strokes (bench/hear_crosscheck.py): one line per encoder.
#
#   bench/hear_crosscheck.sh                    every registered encoder
#   bench/hear_crosscheck.sh crepe-tiny aisfx   these
#
# Needs MUSICBENCH_SHARED (default ../shared); HEAR_VENV as for bench/hear_validator.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/bench/hear_venv.sh"
export MUSICBENCH_SHARED="${MUSICBENCH_SHARED:-$ROOT/../shared}" TF_CPP_MIN_LOG_LEVEL=3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/python" bench/hear_crosscheck.py "$@"
