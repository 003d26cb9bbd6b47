#!/usr/bin/env bash
# Every shipped hardware profile on every zoo model, in lowbit's simulation and in ONNX Runtime: writes
# docs/results/profiles.md (scripts/profile_results.py). Needs the build (scripts/setup.sh) and the ONNX Runtime
# venv scripts/test.sh makes (build/ort-venv); about 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build/python/lowbit ] || bash scripts/setup.sh
if ! build/ort-venv/bin/python -c "import onnxruntime" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages build/ort-venv
  build/ort-venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.31.1
fi
PYTHONPATH=build/python exec build/ort-venv/bin/python scripts/profile_results.py "$@"
