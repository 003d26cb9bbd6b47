#!/usr/bin/env bash
# CLI checks: `lowbit info` / `lowbit run` on the bundled model, and every bad-input case gives exit code 1,
# exactly one line on stderr starting with "lowbit: error:" that names the problem, and no output file.
# usage: test_cli.sh LOWBIT_BINARY REPO_ROOT
set -u
bin=$1
root=$2
data=$root/tests/data
model=$root/models/fashion_cnn.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# --- working commands ---
if "$bin" info "$model" >"$tmp/info" && grep -qE "Conv +3" "$tmp/info" && grep -q "image" "$tmp/info"; then ok; else bad "info"; fi
if "$bin" info --json "$model" >"$tmp/info.json" && grep -q '"parameters": 24282' "$tmp/info.json"; then ok; else bad "info --json"; fi
if "$bin" run "$model" --input "$root/models/fashion_sample.npy" -o "$tmp/out.npz" >"$tmp/run" &&
   [ -s "$tmp/out.npz" ] && grep -q "logits .*\[16,10\]" "$tmp/run"; then ok; else bad "run"; fi
if "$bin" run "$model" --input "image=$root/models/fashion_sample.npy" -o "$tmp/out.npy" >/dev/null && [ -s "$tmp/out.npy" ]; then ok; else bad "run NAME=FILE -> .npy"; fi

# A model without inputs (ONNX node test test_constant) runs without --input (issue 12 item 7).
if "$bin" run /usr/share/libonnx-testdata/data/node/test_constant/model.onnx >"$tmp/const" 2>"$tmp/const.err" &&
   grep -qE "^values +float32 +\[5,5\]" "$tmp/const"; then ok; else bad "run without inputs: $(cat "$tmp/const.err")"; fi
expect_error "run without --input on a model with inputs" "no value given for model input 'image'" run "$model"

if "$bin" eval "$model" --data "npy:$root/models/fashion_sample.npy,labels=$root/models/fashion_sample_labels.npy" --json \
   >"$tmp/eval.json" 2>"$tmp/eval.err" && grep -q '"top1_percent": 93.75' "$tmp/eval.json" && [ ! -s "$tmp/eval.err" ]; then ok
else bad "eval npy with labels (15/16 correct)"; fi
if "$bin" eval "$model" --data "fashion-mnist:test[0:300]" --reference "$model" >"$tmp/fid" 2>/dev/null &&
   grep -q "SQNR inf dB" "$tmp/fid" && grep -q "top-1 agreement 100.00%" "$tmp/fid"; then ok; else bad "eval --reference self"; fi
if "$bin" eval "$model" --data "fashion-mnist:test[0:250]" >/dev/null 2>"$tmp/progress" &&
   grep -q "eval: 250/250 (100%)" "$tmp/progress"; then ok; else bad "eval progress lines when not a terminal"; fi

if "$bin" export "$model" -o "$tmp/re.onnx" --fold-constants --external-data 1024 >/dev/null && [ -s "$tmp/re.onnx.data" ] &&
   "$bin" eval "$tmp/re.onnx" --data "fashion-mnist:test[0:100]" --reference "$model" 2>/dev/null | grep -q "SQNR inf dB"
then ok; else bad "export with external data and folding, outputs bit-identical"; fi

if "$bin" quantize "$model" --data "fashion-mnist:train" --num-samples 200 -o "$tmp/q.onnx" >"$tmp/q.log" 2>/dev/null &&
   grep -q "activation quantizers:   6" "$tmp/q.log" && "$bin" eval "$tmp/q.onnx" --data "fashion-mnist:test[0:500]" >/dev/null 2>&1
then ok; else bad "quantize + eval"; fi
if "$bin" quantize "$model" --data "fashion-mnist:train[0:300]" -o "$tmp/e1.onnx" --save-encodings "$tmp/enc.json" >/dev/null 2>&1 &&
   "$bin" quantize "$model" -o "$tmp/e2.onnx" --load-encodings "$tmp/enc.json" >/dev/null 2>&1 && cmp -s "$tmp/e1.onnx" "$tmp/e2.onnx"
then ok; else bad "encodings round trip gives a byte-identical model"; fi
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
e = json.load(open(f"{d}/enc.json"))
k = next(iter(e["weights"]))
e["weights"][k]["scale"] = e["weights"][k]["scale"][:1]
e["weights"][k]["zero_point"] = e["weights"][k]["zero_point"][:1]
json.dump(e, open(f"{d}/enc_short.json", "w"))
e = json.load(open(f"{d}/enc.json"))
e["activations"]["not_in_model"] = next(iter(e["activations"].values()))
json.dump(e, open(f"{d}/enc_extra.json", "w"))
PY
echo '{"overrides": [{"tensor": "no_such_tensor", "activation_bits": 16}]}' >"$tmp/bad_tensor.json"
echo '{"weights": {"bits": 20}}' >"$tmp/bad_bits.json"
echo '{"weights": {"bits": 8, "granularity": "per_row"}}' >"$tmp/bad_gran.json"
/usr/bin/python3 -c "import numpy as np; x = np.load('$root/models/fashion_sample.npy'); x[3, 0, 5, 5] = np.nan; np.save('$tmp/nan.npy', x)"

# --- bad input ---
expect_error "eval: data does not fit the model" "input 'image' expects \[\?,1,28,28\] but .* gives samples of shape \[1,27,28\]" \
  eval "$model" --data "npy:$data/wrong_shape.npy"
expect_error "eval: missing dataset" "dataset file '.*/none.npy' does not exist" eval "$model" --data "npy:$tmp/none.npy"
expect_error "eval: no labels" "has no labels" eval "$model" --data "npy:$root/models/fashion_sample.npy"
expect_error "eval: bad spec" "unknown kind 'csv'" eval "$model" --data "csv:x"
expect_error "eval: label count" "5 labels for 16 samples" eval "$model" --data "npy:$root/models/fashion_sample.npy,labels=$data/five_labels.npy"
head -c 3000 "$model" >"$tmp/truncated.onnx"
printf 'this is not a model' >"$tmp/garbage.onnx"
expect_error "missing model" "does not exist" info "$tmp/none.onnx"
expect_error "truncated model" "truncated.onnx: .*(malformed or truncated|raw data)" info "$tmp/truncated.onnx"
expect_error "garbage model" "garbage.onnx: not a valid ONNX model" run "$tmp/garbage.onnx" --input x.npy
expect_error "unknown ops" "unsupported ops: Frobnicate \(first at node 'frob1'\), Wibble \(first at node 'wibble1'\)" \
  run "$data/unknown_ops.onnx" --input "$data/wrong_shape.npy"
expect_error "cycle" "cycle through .* node '(add_p|relu_q)'" run "$data/cycle.onnx" --input "$data/wrong_shape.npy"
expect_error "missing external data" "initializer 'w': missing external-data file .*weights_that_do_not_exist.bin" \
  info "$data/external_missing.onnx"
expect_error "wrong input shape" "input 'image': expected shape \[batch,1,28,28\], got \[1,1,27,28\]" \
  run "$model" --input "$data/wrong_shape.npy" -o "$tmp/never.npz"
expect_error "wrong input dtype" "input 'image': expected dtype float32, got float64" \
  run "$model" --input "$data/wrong_dtype.npy" -o "$tmp/never.npz"
# Argument errors (issue 13's CLI gaps): one line, exit code 1, never an exception text from the standard library.
expect_error "empty -o (quantize)" "--output: the path is empty" quantize "$model" --data "fashion-mnist:test[0:50]" -o ''
expect_error "empty -o (run)" "--output: the path is empty" run "$model" --input "$root/models/fashion_sample.npy" -o ''
expect_error "negative --num-samples" "--num-samples: Value -5 not in range" eval "$model" --data "fashion-mnist:test[0:50]" --num-samples -5
expect_error "zero --batch-size" "--batch-size: Value 0 not in range" eval "$model" --data "fashion-mnist:test[0:50]" --batch-size 0
expect_error "unknown flag" "The following argument was not expected: --bogus" info "$model" --bogus
# A batch size far beyond the data allocates nothing up front (it was "vector::reserve").
if "$bin" eval "$model" --data "fashion-mnist:test[0:300]" --batch-size 4611686018427387904 >"$tmp/huge" 2>&1 &&
   grep -q "top-1: .*%" "$tmp/huge"; then ok; else bad "huge --batch-size: $(cat "$tmp/huge")"; fi
expect_error "unknown input name" "no input named 'nope'" run "$model" --input "nope=$data/wrong_shape.npy"
expect_error "missing npy" "cannot open" run "$model" --input "$tmp/none.npy"
expect_error "output folder missing" "does not exist" run "$model" --input "$root/models/fashion_sample.npy" -o "$tmp/no/dir/out.npz"
expect_error "export: unsupported op" "unsupported ops: Frobnicate" export "$data/unknown_ops.onnx" -o "$tmp/never.onnx" --fold-constants
expect_error "quantize: config names a missing tensor" "names tensor 'no_such_tensor', which the model does not have" \
  quantize "$model" --data "fashion-mnist:train[0:100]" --config "$tmp/bad_tensor.json" -o "$tmp/never.onnx"
expect_error "quantize: bits out of range" "bad_bits.json: weights: bit width 20 is outside 2..16" \
  quantize "$model" --data "fashion-mnist:train[0:100]" --config "$tmp/bad_bits.json" -o "$tmp/never.onnx"
expect_error "quantize: bad granularity" "'per_row' is not per_tensor" \
  quantize "$model" --data "fashion-mnist:train[0:100]" --config "$tmp/bad_gran.json" -o "$tmp/never.onnx"
expect_error "quantize: --weights w1" "bit width must be 2..16" quantize "$model" --data "fashion-mnist:train[0:100]" --weights w1 -o "$tmp/never.onnx"
expect_error "quantize: NaN in calibration data" "tensor 'image' holds NaN in batch 0" \
  quantize "$model" --data "npy:$tmp/nan.npy" -o "$tmp/never.onnx"
expect_error "encodings: wrong slice count" "enc_short.json: weight '.*': 1 scales and 1 zero points, the tensor \[[0-9,]+\] needs [0-9]+" \
  quantize "$model" -o "$tmp/never.onnx" --load-encodings "$tmp/enc_short.json"
expect_error "encodings: tensor not in model" "activation 'not_in_model' is not quantized in this model" \
  quantize "$model" -o "$tmp/never.onnx" --load-encodings "$tmp/enc_extra.json"
expect_error "encodings: not an encodings file" "not a lowbit encodings file" \
  quantize "$model" -o "$tmp/never.onnx" --load-encodings "$tmp/bad_bits.json"
expect_error "quantize --strict with weight-only" "--strict: 8 ops would stay in float: Conv '/features/features.0/Conv'" \
  quantize "$model" --mode weight-only --strict -o "$tmp/never.onnx"
expect_error "quantize: empty dataset" "selects no samples" quantize "$model" --data "fashion-mnist:train[5:5]" -o "$tmp/never.onnx"
expect_error "quantize: no data" "needs calibration data" quantize "$model" -o "$tmp/never.onnx"
expect_error "quantize: overwrite input" "refusing to overwrite the input model" quantize "$model" --data "fashion-mnist:train[0:10]" -o "$model"

# --- PTQ pipeline ---
if "$bin" quantize "$model" --data "fashion-mnist:train" --num-samples 200 --pipeline standard --adaround-iters 50 \
     --ptq-samples 64 -o "$tmp/std.onnx" --save-prepared "$tmp/prepared.onnx" >"$tmp/std.log" 2>/dev/null &&
   grep -q "cross-layer equalization" "$tmp/std.log" && grep -q "AdaRound (" "$tmp/std.log" &&
   grep -q "weight quantizers: .*mse" "$tmp/std.log" && [ -s "$tmp/prepared.onnx" ] &&
   "$bin" eval "$tmp/std.onnx" --data "fashion-mnist:test[0:300]" >/dev/null 2>&1
then ok; else bad "quantize --pipeline standard: $(cat "$tmp/std.log")"; fi
if "$bin" quantize "$model" --data-free --input-range 0,1 -o "$tmp/df.onnx" >"$tmp/df.log" 2>&1 &&
   grep -q "analytical bias correction" "$tmp/df.log" && grep -q "data-free activation ranges" "$tmp/df.log"
then ok; else bad "quantize --data-free: $(cat "$tmp/df.log")"; fi
# A layer AdaRound cannot handle: skipped with a warning that names it, the rest still runs.
if "$bin" quantize "$data/convtranspose.onnx" --data "npy:$data/convtranspose_data.npy" --adaround --adaround-iters 20 \
     -o "$tmp/ct.onnx" >"$tmp/ct.log" 2>"$tmp/ct.err" && grep -q "^lowbit: warning: AdaRound skips layer 'up': ConvTranspose" "$tmp/ct.err" &&
   grep -q "conv: loss" "$tmp/ct.log"
then ok; else bad "AdaRound skip warning: $(cat "$tmp/ct.err")"; fi
# AdaRound then bias correction: the biases move (the shift is measured against the FP32 weights, not the rounded
# ones: "mean |bias shift| 0" was the bug), and a warning says the combination can cost accuracy.
if "$bin" quantize "$model" --data "fashion-mnist:train" --num-samples 200 --adaround --adaround-iters 20 --ptq-samples 64 \
     --bias-correction empirical -o "$tmp/arbc.onnx" >"$tmp/arbc.log" 2>"$tmp/arbc.err" &&
   grep -qE "layers corrected, mean \|bias shift\| [0-9.e-]+" "$tmp/arbc.log" &&
   ! grep -qE "mean \|bias shift\| 0$" "$tmp/arbc.log" &&
   grep -q "^lowbit: warning: bias correction after AdaRound" "$tmp/arbc.err"
then ok; else bad "AdaRound + bias correction: $(cat "$tmp/arbc.log" "$tmp/arbc.err")"; fi
expect_error "data-free without BatchNorm" "data-free quantization cannot run on .*no BatchNormalization" \
  quantize "$data/convtranspose.onnx" --data-free --input-range 0,1 -o "$tmp/never.onnx"
expect_error "analytical bias correction without BatchNorm" "analytical bias correction cannot run" \
  quantize "$data/convtranspose.onnx" --data "npy:$data/convtranspose_data.npy" --bias-correction analytical -o "$tmp/never.onnx"
expect_error "AdaRound without data" "AdaRound needs calibration data" quantize "$model" --adaround --range bn -o "$tmp/never.onnx"
expect_error "data-free: model input range missing" "cannot be set without data: 'image' \(stops at model input" \
  quantize "$model" --data-free -o "$tmp/never.onnx"
expect_error "bad --bias-correction" "unknown bias correction 'sometimes'" \
  quantize "$model" --data "fashion-mnist:train[0:10]" --bias-correction sometimes -o "$tmp/never.onnx"
expect_error "bad --input-range" "--input-range '1,0': expected LO,HI" quantize "$model" --data-free --input-range 1,0 -o "$tmp/never.onnx"
# lowbit bench: JSON with the timing fields; the per-op shares add up to 1 and name the model's ops; a symbolic
# dimension without --shape, or a --shape for no input, is an error naming it.
if "$bin" bench "$model" --batch 4 --reps 2 --warmup 0 --profile-ops -o "$tmp/bench.json" >"$tmp/bench.out" &&
   /usr/bin/python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
assert j == json.load(open(sys.argv[2]))
assert j['batch'] == 4 and j['runs'] >= 2 and 0 < j['median_ms'] <= j['p90_ms'], j
assert j['images_per_s'] > 0 and j['peak_rss_bytes'] > 0 and j['peak_live_activation_bytes'] > 0, j
ops = {o['op'] for o in j['ops']}
assert {'Conv', 'Gemm'} <= ops, ops
assert abs(sum(o['share'] for o in j['ops']) - 1) < 1e-6, j['ops']
" "$tmp/bench.json" "$tmp/bench.out"; then ok; else bad "bench: $(cat "$tmp/bench.out")"; fi
expect_error "bench: symbolic spatial dim" "input 'x' has symbolic dimension 2 .*--shape x=" \
  bench "$data/symbolic_spatial.onnx" --reps 1
expect_error "bench: --shape for no input" "--shape nope=1x2: the model has no input named 'nope'" \
  bench "$model" --shape nope=1x2
expect_error "bench: bad --shape" "--shape image=1xx28: '' is not a dimension" bench "$model" --shape image=1xx28
# The integer engine: a profile is required, an FP32 model has nothing to run in integers, an unknown profile is named;
# a quantized model runs and reports its integer layers.
expect_error "eval --engine int without profile" "--engine int needs --profile P" \
  eval "$model" --data "fashion-mnist:test[0:10]" --engine int
expect_error "eval --engine int on fp32" "no layer runs in integers under profile 'tflite' .is it a quantized model..: 5 Conv/Gemm/MatMul/Add node.s. stay in float, the first /features/features.0/Conv: its input is not a per-tensor DequantizeLinear" \
  eval "$model" --data "fashion-mnist:test[0:10]" --engine int --profile tflite
expect_error "run --engine int unknown profile" "unknown profile 'nope': the shipped profiles are" \
  run "$model" --input "$root/models/fashion_sample.npy" --engine int --profile nope
expect_error "eval --profile without --engine int" "--profile applies to --engine int" \
  eval "$model" --data "fashion-mnist:test[0:10]" --profile tflite
if "$bin" quantize "$model" --data "fashion-mnist:train[0:200]" --profile tflite -o "$tmp/tfl.onnx" >/dev/null 2>&1 &&
   "$bin" run "$tmp/tfl.onnx" --input "$root/models/fashion_sample.npy" --engine int --profile tflite >"$tmp/int.out" \
     2>"$tmp/int.err" && grep -q "integer engine (tflite): [1-9][0-9]* integer layers" "$tmp/int.err" &&
   grep -q "logits .*\[16,10\]" "$tmp/int.out"; then ok; else bad "run --engine int: $(cat "$tmp/int.err")"; fi
# 4-bit weights: int4 codes at opset 21 (the model converted, and the summary says so); a target that reads AIMET
# encodings beside the float model (snpe) keeps the model's opset and says why.
if "$bin" quantize "$model" --data "fashion-mnist:train[0:100]" --weights w4 -o "$tmp/w4.onnx" >"$tmp/w4.out" 2>&1 &&
   grep -q "converted opset [0-9]* -> 21 (int4 weights need opset 21)" "$tmp/w4.out"; then ok
else bad "w4 export: $(cat "$tmp/w4.out")"; fi
if "$bin" quantize "$model" --data "fashion-mnist:train[0:100]" --weights w4 --profile snpe -o "$tmp/w4s.onnx" \
     >"$tmp/w4s.out" 2>&1 && grep -q "kept opset [0-9]* for profile snpe" "$tmp/w4s.out"; then ok
else bad "w4 export under snpe: $(cat "$tmp/w4s.out")"; fi
# bench times the integer engine too, and its JSON says which engine ran.
if "$bin" bench "$tmp/tfl.onnx" --engine int --profile tflite -b 4 --reps 2 >"$tmp/bench_int.json" 2>/dev/null &&
   grep -q '"engine": "int:tflite"' "$tmp/bench_int.json" && grep -q '"images_per_s"' "$tmp/bench_int.json"; then ok
else bad "bench --engine int: $(cat "$tmp/bench_int.json")"; fi
# Ctrl-C during a long run: no output file, no temp file left behind.
mkdir "$tmp/int"
timeout -s INT 3 "$bin" quantize "$model" --data "fashion-mnist:train" --pipeline standard --adaround-iters 100000 \
  -o "$tmp/int/q.onnx" >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 0 ] && [ -z "$(ls -A "$tmp/int")" ]; then ok; else bad "interrupted quantize: rc $rc, left $(ls -A "$tmp/int")"; fi
if [ -e "$tmp/never.npz" ] || [ -e "$tmp/never.onnx" ]; then bad "an output file was written after an error"; else ok; fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
