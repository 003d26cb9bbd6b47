#!/usr/bin/env bash
# The main job on the bundled default: quantize the Fashion-MNIST CNN to W8A8 (1000 calibration images from the
# training set) and compare FP32 and quantized top-1 on the 10,000 test images.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/fashion_cnn.onnx
build/bin/lowbit info "$model"
echo
build/bin/lowbit quantize "$model" --data fashion-mnist:train --num-samples 1000 -o build/fashion_cnn.w8a8.onnx
echo
fp32=$(build/bin/lowbit eval "$model" --data fashion-mnist:test --json)
int8=$(build/bin/lowbit eval build/fashion_cnn.w8a8.onnx --data fashion-mnist:test --reference "$model" --json)
/usr/bin/python3 - "$fp32" "$int8" <<'PY'
import json, sys
f, q = json.loads(sys.argv[1]), json.loads(sys.argv[2])
fid = q["fidelity"]
print(f"{'model':<40}{'top-1':>8}{'top-5':>8}")
print(f"{'FP32  ' + f['model']:<40}{f['top1_percent']:>7.2f}%{f['top5_percent']:>7.2f}%")
print(f"{'W8A8  ' + q['model']:<40}{q['top1_percent']:>7.2f}%{q['top5_percent']:>7.2f}%")
print(f"drop: {f['top1_percent'] - q['top1_percent']:+.2f} points; W8A8 vs FP32 logits: SQNR {fid['sqnr_db']:.1f} dB, "
      f"top-1 agreement {fid['top1_agreement_percent']:.2f}%")
PY
