#!/usr/bin/env bash
# Create .venv (if missing) and install invmap with its test tools.
# torch is pinned by constraints.txt (2.13.0: a local CPU wheel on the CI machine), so no
# CUDA packages are pulled here; elsewhere pip takes the same release from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), f"invmap needs Python >= 3.11, found {sys.version}"'
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt torch
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
.venv/bin/python -c 'import torch, invmap; print(f"invmap {invmap.__version__} ready (torch {torch.__version__})")'
