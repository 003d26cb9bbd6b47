#!/usr/bin/env bash
# Real peer in the loop: quantizes zoo models to W8A8 with lowbit and checks the exported QDQ models in ONNX Runtime
# (tests/ort/check_ort.py). Needs the venv that scripts/test.sh creates (LOWBIT_ORT_PYTHON or build/ort-venv).
# usage: test_ort.sh LOWBIT_BINARY REPO_ROOT
set -u
bin=$1
root=$2
py=${LOWBIT_ORT_PYTHON:-$root/build/ort-venv/bin/python}
if ! "$py" -c "import onnxruntime" 2>/dev/null; then
  echo "ort: no Python with onnxruntime at $py (scripts/test.sh installs it)"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
for m in "$root"/models/fashion_cnn.onnx "$root"/models/zoo/*.onnx; do
  name=$(basename "$m" .onnx)
  if ! "$bin" quantize "$m" --data "fashion-mnist:train" --num-samples 500 -o "$tmp/$name.qdq.onnx" >/dev/null 2>"$tmp/err"; then
    echo "FAIL $name: quantize: $(cat "$tmp/err")"
    fail=$((fail + 1))
    continue
  fi
  if "$py" "$root/tests/ort/check_ort.py" "$bin" "$tmp/$name.qdq.onnx" --images 200 >"$tmp/$name.json"; then
    echo "ok   $name: $(tail -2 "$tmp/$name.json" | head -1)"
    pass=$((pass + 1))
  else
    echo "FAIL $name"; cat "$tmp/$name.json"
    fail=$((fail + 1))
  fi
done
echo "ort: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
