#!/usr/bin/env bash
# Speed side by side: lowbit's FP32 executor and ONNX Runtime on the zoo, the real pretrained models and generated
# 224x224 networks; writes docs/results/speed.md. Uses the venv and the model cache of scripts/real_models.sh
# (run that first for the real models; it is the script that downloads). No network here: the venv is made from
# the pinned packages only if missing.
#
# Usage: bash scripts/bench_vs_ort.sh [OUT.md (default docs/results/speed.md)] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/results/speed.md}
shift || true
venv=build/real-venv
if ! "$venv/bin/python" -c "import onnxruntime, onnx" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check onnxruntime==1.31.1 onnx==1.19.1
fi
[ -x build/bin/lowbit ] || bash scripts/setup.sh
[ -f build/speed-models/vit_tiny_224.onnx ] || "$venv/bin/python" scripts/make_speed_models.py build/speed-models
exec "$venv/bin/python" scripts/bench_vs_ort.py build/bin/lowbit "$out" "$@"
