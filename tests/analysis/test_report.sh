#!/usr/bin/env bash
# lowbit analyze on the bundled CNN: the report folder has index.html, report.json (and config.json with
# --target-drop); the HTML's numbers equal the JSON's; headless Chromium renders it (its DOM is checked again) with
# no console errors. Skips the Chromium part, saying so, where Chromium is not installed.
# usage: test_report.sh LOWBIT_BINARY REPO_ROOT
set -eu
bin=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" analyze "$root/models/fashion_cnn.onnx" --data fashion-mnist:train --num-samples 300 \
  --eval-data fashion-mnist:test --eval-samples 300 --weights w4 --per-tensor --target-drop 1 -o "$tmp/rep" >"$tmp/log" 2>&1 ||
  { cat "$tmp/log"; exit 1; }
for f in index.html report.json config.json; do [ -s "$tmp/rep/$f" ] || { echo "missing $f"; exit 1; }; done
/usr/bin/python3 "$root/tests/analysis/check_report.py" "$tmp/rep"
# The mixed-precision config is a valid lowbit config.
"$bin" quantize "$root/models/fashion_cnn.onnx" --data fashion-mnist:train --num-samples 300 --config "$tmp/rep/config.json" \
  -o "$tmp/fixed.onnx" >/dev/null
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "SKIPPED the Chromium render check: chromium is not installed (bash scripts/setup.sh installs it)"
  exit 0
fi
HOME=$tmp timeout 120 "$browser" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --dump-dom \
  "file://$tmp/rep/index.html" >"$tmp/dom.html" 2>"$tmp/chromium.log" || { cat "$tmp/chromium.log"; exit 1; }
if grep -E "Uncaught|CONSOLE.*(error|Error)" "$tmp/chromium.log"; then echo "console errors while rendering"; exit 1; fi
/usr/bin/python3 "$root/tests/analysis/check_report.py" "$tmp/rep" "$tmp/dom.html"
echo "rendered in $(basename "$browser"): ok"
