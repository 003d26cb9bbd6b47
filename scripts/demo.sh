#!/usr/bin/env bash
# The main job on the bundled default: inspect the Fashion-MNIST CNN and run it on 16 test images.
set -euo pipefail
cd "$(dirname "$0")/.."
build/bin/lowbit info models/fashion_cnn.onnx
echo
build/bin/lowbit run models/fashion_cnn.onnx --input models/fashion_sample.npy --output build/demo_logits.npz
/usr/bin/python3 - <<'PY'
import numpy as np
pred = np.load("build/demo_logits.npz")["logits"].argmax(1)
labels = np.load("models/fashion_sample_labels.npy")
print(f"labels:         {' '.join(map(str, labels))}")
print(f"correct: {(pred == labels).sum()}/{len(labels)}")
PY
