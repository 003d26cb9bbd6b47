#!/usr/bin/env bash
# The QAT table docs/results/qat.md (scripts/qat_results.py): lowbit's QAT on every zoo model next to FP32, PTQ,
# ONNX Runtime on the exported file, and PyTorch's own QAT (scripts/qat_torch_peer.py). NETWORK: installs Debian's
# python3-torch with apt and onnxruntime from the Python package index if they are missing. About 75 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/lowbit ] || bash scripts/setup.sh
if ! build/ort-venv/bin/python -c "import onnxruntime" 2>/dev/null; then  # the venv scripts/test.sh makes
  /usr/bin/python3 -m venv --system-site-packages build/ort-venv
  build/ort-venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.31.1
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends python3-torch
fi
exec build/ort-venv/bin/python scripts/qat_results.py "$@"
