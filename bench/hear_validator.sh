#!/usr/bin/env bash
# HEAR's own validator (hearvalidator 2021.0.6) on every registered encoder, through the
# musicbench.hear module: one line per encoder, "NAME: pass, hop H ms" or "NAME: FAIL why"
# (the validator's clips are at most 4 s: one frame for encoders with longer windows).
# Exit status: 0 when every encoder passes, 1 otherwise.
#
#   bench/hear_validator.sh                 every registered encoder
#   bench/hear_validator.sh aisfx RUN.pt    these encoders or checkpoints
#
# The validator needs TensorFlow and declares Python < 3.9, so it runs from its own venv,
# HEAR_VENV (default .hear-venv), made on first use by bench/hear_venv.sh.
# HEAR_DEVICE (default cpu) is passed to the validator; HEAR_LOG (default runs/hear-validator)
# keeps each encoder's full output.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="${HEAR_LOG:-$ROOT/runs/hear-validator}"
cd "$ROOT"

source "$ROOT/bench/hear_venv.sh"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # validate this tree, whatever the venv holds
if [ "$#" -gt 0 ]; then
    models=("$@")
else
    read -r -a models <<< "$("$VENV/bin/python" -c 'from musicbench.encoders import encoder_names; print(*encoder_names())')"
fi
mkdir -p "$LOG"
failed=0
for model in "${models[@]}"; do
    out="$LOG/$(basename "$model").log"
    if "$VENV/bin/hear-validator" musicbench.hear --model "$model" --device "${HEAR_DEVICE:-cpu}" > "$out" 2>&1 \
            && grep -q "Looks good!" "$out"; then
        hop=$(grep "Avg interval" "$out" | tail -1 | sed 's/.* is \(.*\)ms/\1/' || true)
        if [ -n "$hop" ]; then
            echo "$model: pass, hop $hop ms"
        else
            echo "$model: pass, one frame per clip up to 4 s (regularity not checked)"
        fi
    else
        echo "$model: FAIL $(grep -v '^\s*$' "$out" | tail -1)"
        failed=1
    fi
done
exit "$failed"
