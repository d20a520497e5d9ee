#!/usr/bin/env bash
# One GPU, under eight minutes: training and inference clips/s of every *-ref preset
# (float32 and bf16, eager and torch.compile), embedding extraction of every bundled
# encoder and one complete cnn2d fit on a generated task of 30-s clips, written as JSON
# with a hardware descriptor. Arguments go to musicbench.throughput.gpucheck:
#   bench/gpu-check.sh                      # on cuda, JSON to runs/gpu-check.json
#   bench/gpu-check.sh --out FILE --budget 390
#   bench/gpu-check.sh --dry-run            # tiny sizes on the CPU (what CI runs)
# PYTHON picks the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m musicbench.throughput.gpucheck "$@"
