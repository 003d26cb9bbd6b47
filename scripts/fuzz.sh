#!/usr/bin/env bash
# Fuzzes lowbit's parsers with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer (clang from Debian):
#   model      ONNX bytes -> parse, validate, shape inference, executor, one run on small inputs
#   config     quantization config JSON (--config)
#   encodings  encodings JSON (--load-encodings) applied to the bundled model
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Seeds: the ONNX conformance models, the bundled model, the zoo (hence -max_len 2 MiB) and tests/corpus/<target>/
# (kept findings). A crash, a
# sanitizer report, a leak or an input slower than 10 s stops the run; the input is saved under
# build-fuzz/findings/<target>/ (copy it to tests/corpus/<target>/ once fixed: the fuzz_regressions tests replay it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model config encodings)
jobs=$(nproc)

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DLOWBIT_FUZZ=ON -DLOWBIT_SANITIZE=ON -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"

seeds=build-fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{model,config,encodings}
i=0
for f in /usr/share/libonnx-testdata/data/node/*/model.onnx; do
  [ -f "$f" ] || continue
  cp "$f" "$seeds/model/node_$((i++)).onnx"
done
cp models/fashion_cnn.onnx models/zoo/*.onnx "$seeds/model/"
cp tests/corpus/model/* "$seeds/model/" 2>/dev/null || true
cp tests/corpus/config/* "$seeds/config/" 2>/dev/null || true
cp tests/corpus/encodings/* "$seeds/encodings/" 2>/dev/null || true

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t
  findings=build-fuzz/findings/$t
  mkdir -p "$work" "$findings"
  echo "== fuzz_$t for ${seconds} s"
  # -timeout: the issue's bound for any input; -rss_limit_mb: far above the 256 MiB tensor budget the model target sets.
  if ! build-fuzz/fuzz/fuzz_$t "$work" "$seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 \
      -max_len=2097152 -artifact_prefix="$findings/" -print_final_stats=1 2>build-fuzz/fuzz_$t.log; then
    echo "fuzz_$t: FINDING (see build-fuzz/fuzz_$t.log and $findings/)"
    tail -40 build-fuzz/fuzz_$t.log
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" build-fuzz/fuzz_$t.log | tail -2 || true
  fi
done
exit $status
