#!/usr/bin/env bash
# Set up musicbench in ./.venv: CPU PyTorch (pinned, never the CUDA build), the package in
# editable mode and the test tools. As root on Debian it also installs Chromium, which
# the HTML report test opens.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev]'
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
.venv/bin/musicbench --version
