#!/usr/bin/env bash
# `lowbit qat` end to end on the bundled model (a few steps, so it runs in seconds): the trained model is written,
# its accuracy in `lowbit eval` is the validation accuracy qat printed (the export is the trained graph), progress
# shows loss and throughput, a run stopped and resumed from its checkpoint writes the same file as one straight run,
# and bad input gives one error line and no output file.
# usage: test_qat.sh LOWBIT_BINARY REPO_ROOT
set -u
bin=$1
root=$2
model=$root/models/fashion_cnn.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
train=(--data "fashion-mnist:train" -n 1280 --batch-size 32 --calib-samples 256 --weights w4 --acts a4 --lr 1e-3)
val=(--val "fashion-mnist:test[0:500]")

# 1. A short run: the model is written and evaluates to the validation top-1 the run printed for its last epoch.
if "$bin" qat "$model" "${train[@]}" "${val[@]}" --epochs 2 --steps-per-epoch 8 -o "$tmp/q.onnx" \
     --save-encodings "$tmp/q.json" >"$tmp/log" 2>"$tmp/progress"; then ok; else bad "qat run: $(cat "$tmp/progress")"; fi
printed=$(grep -E "^epoch 2:" "$tmp/log" | sed -E 's/.*validation top-1 ([0-9.]+) %.*/\1/')
"$bin" eval "$tmp/q.onnx" --data "fashion-mnist:test[0:500]" --json >"$tmp/eval.json" 2>/dev/null
measured=$(sed -nE 's/.*"top1_percent": ([0-9.]+).*/\1/p' "$tmp/eval.json")
if [ -n "$printed" ] && [ -n "$measured" ] &&
   /usr/bin/python3 -c "import sys; sys.exit(0 if abs($printed - $measured) < 0.005 else 1)"; then ok
else bad "validation top-1 printed ($printed) vs eval of the written model ($measured)"; fi
if [ -s "$tmp/q.json" ] && grep -q '"scale"' "$tmp/q.json"; then ok; else bad "encodings written"; fi
if grep -qE "loss [0-9.]+.*images/s" "$tmp/progress"; then ok; else bad "progress shows loss and images/s"; fi
if grep -q "QAT (lsq)" "$tmp/log" && grep -q "saved activations" "$tmp/log"; then ok; else bad "summary"; fi

# 2. Stopped after epoch 1 and resumed == straight: the same bytes.
"$bin" qat "$model" "${train[@]}" --epochs 2 --steps-per-epoch 6 -o "$tmp/straight.onnx" >/dev/null 2>&1
"$bin" qat "$model" "${train[@]}" --epochs 2 --steps-per-epoch 6 --stop-after 1 --checkpoint "$tmp/ck.npz" \
  -o "$tmp/part.onnx" >/dev/null 2>&1
if "$bin" qat "$model" "${train[@]}" --epochs 2 --steps-per-epoch 6 --checkpoint "$tmp/ck.npz" --resume \
     -o "$tmp/resumed.onnx" >"$tmp/resume.log" 2>&1 && cmp -s "$tmp/straight.onnx" "$tmp/resumed.onnx" &&
   ! cmp -s "$tmp/straight.onnx" "$tmp/part.onnx" && grep -q "^epoch 2:" "$tmp/resume.log" &&
   ! grep -q "^epoch 1:" "$tmp/resume.log"; then ok
else bad "resume: $(tail -3 "$tmp/resume.log")"; fi

# 3. Bad input: one error line, no output.
expect_error "unknown BN strategy" "the strategies are 0 to 4" qat "$model" "${train[@]}" --bn-fold 7 -o "$tmp/x.onnx"
expect_error "unknown method" "unknown QAT method 'lsqq'" qat "$model" "${train[@]}" --method lsqq -o "$tmp/x.onnx"
expect_error "resume without a checkpoint file" "no checkpoint at" qat "$model" "${train[@]}" --resume \
  --checkpoint "$tmp/none.npz" -o "$tmp/x.onnx"
expect_error "resume with other epochs" "resume with the same --epochs" qat "$model" "${train[@]}" --epochs 3 \
  --steps-per-epoch 6 --resume --checkpoint "$tmp/ck.npz" -o "$tmp/x.onnx"
/usr/bin/python3 -c "import numpy as np; np.save('$tmp/x.npy', np.zeros((64, 1, 28, 28), np.float32))"
expect_error "training data without labels" "QAT needs labelled training data" qat "$model" --data "npy:$tmp/x.npy" \
  -o "$tmp/x.onnx"
expect_error "dynamic mode" "QAT trains static quantization" qat "$model" "${train[@]}" --config /dev/stdin \
  -o "$tmp/x.onnx" <<<'{"mode": "dynamic"}'
if [ ! -e "$tmp/x.onnx" ]; then ok; else bad "an output file was written by a failing run"; fi

echo "qat cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
