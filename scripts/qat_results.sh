#!/usr/bin/env bash
# The QAT table docs/results/qat.md (scripts/qat_results.py): lowbit's QAT on every zoo model next to FP32, PTQ,
# ONNX Runtime on the exported file, and PyTorch's own QAT (scripts/qat_torch_peer.py). NETWORK: installs Debian's
# python3-torch with apt if it is missing. About 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/lowbit ] && [ -x build/ort-venv/bin/python ] || bash scripts/setup.sh
/usr/bin/python3 -c "import torch" 2>/dev/null || sudo apt-get install -y --no-install-recommends python3-torch
exec build/ort-venv/bin/python scripts/qat_results.py "$@"
