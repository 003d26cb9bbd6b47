#!/usr/bin/env bash
# The deployment-gap table docs/results/deploy.md (scripts/deploy_gap.py). NETWORK: installs onnxruntime 1.31.1 and
# openvino 2026.4.1 from the Python package index into build/ort-venv (the test venv, same pins as scripts/test.sh)
# if they are missing. About half an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build/python/lowbit ] || bash scripts/setup.sh
py=build/ort-venv/bin/python
if ! "$py" -c "import onnxruntime, openvino" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages build/ort-venv
  build/ort-venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.31.1 openvino==2026.4.1
fi
PYTHONPATH=build/python exec "$py" scripts/deploy_gap.py "$@"
