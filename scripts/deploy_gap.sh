#!/usr/bin/env bash
# The deployment-gap table docs/results/deploy.md (scripts/deploy_gap.py). NETWORK: makes build/ov-venv with
# onnxruntime 1.31.1 and openvino 2026.4 from the Python package index if it is missing (pass --no-openvino to use
# the test venv build/ort-venv instead). A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build/python/lowbit ] || bash scripts/setup.sh
py=build/ov-venv/bin/python
if [ "${1:-}" = "--no-openvino" ]; then
  shift
  py=build/ort-venv/bin/python
elif ! "$py" -c "import onnxruntime, openvino" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages build/ov-venv
  build/ov-venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.31.1 "openvino==2026.4.*"
fi
PYTHONPATH=build/python exec "$py" scripts/deploy_gap.py "$@"
