#!/usr/bin/env bash
# Real pretrained models, end to end: load -> FP32 run (against ONNX Runtime) -> W8A8 quantize -> the exported model
# in ONNX Runtime, beside ONNX Runtime's own quantize_static on the same calibration data.
#
# NETWORK: this script (and only this script) downloads, from the Python package index, with `pip download
# --no-deps` (nothing is installed from them): the wheels of rapidocr-onnxruntime 1.4.4, nudenet 3.4.2 and
# silero-vad 6.2.3 (the models), and scikit-image 0.24.0 (its sample photographs). It also makes a venv
# build/real-venv with pinned onnxruntime, onnx (ORT's quantization tools need onnx.reference), ml_dtypes and
# Pillow (text rendering, image decoding). The downloads are cached under build/real-models/.
#
# Usage: bash scripts/real_models.sh [OUT.md (default docs/results/real_models.md)]
#        bash scripts/real_models.sh --profiles [OUT.md (default docs/results/real_profiles.md)]: every shipped
#        hardware profile on every model (quantize, ONNX Runtime, the integer engine)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
if [ "${1:-}" = --profiles ]; then mode=(--profiles); shift; fi
out=${1:-docs/results/real_$([ ${#mode[@]} -gt 0 ] && echo profiles || echo models).md}
venv=build/real-venv
if ! "$venv/bin/python" -c "import onnxruntime, onnx.reference, ml_dtypes, PIL" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check onnxruntime==1.31.1 onnx==1.19.1 ml_dtypes==0.5.1 \
    pillow==11.0.0
fi
cache=build/real-models
mkdir -p "$cache/wheels"
for p in rapidocr-onnxruntime==1.4.4 nudenet==3.4.2 silero-vad==6.2.3 scikit-image==0.24.0; do
  name=${p%%==*}
  ls "$cache/wheels/" | grep -qi "^${name//-/_}-${p##*==}-" ||
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$cache/wheels" "$p"
done
[ -x build/bin/lowbit ] || bash scripts/setup.sh
exec "$venv/bin/python" scripts/real_models.py build/bin/lowbit "$cache" "$out" "${mode[@]}"
