#!/usr/bin/env bash
# The test command (README, .ci/run): installs/builds, runs every CTest test in the release build, then
# rebuilds the tests with AddressSanitizer + UndefinedBehaviorSanitizer and runs them again (the ONNX loader
# over the whole conformance corpus, the malformed-model corpus and the fuzz regressions included), then fuzzes the
# parsers for a minute each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

# ONNX Runtime and OpenVINO (from PyPI) for the real-peer tests, in a venv on top of Debian's python3 (numpy, onnx).
if ! build/ort-venv/bin/python -c "import onnxruntime, openvino" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages build/ort-venv
  build/ort-venv/bin/pip install -q --disable-pip-version-check onnxruntime==1.31.1 openvino==2026.4.1
fi
export LOWBIT_ORT_PYTHON=$PWD/build/ort-venv/bin/python
# The node tests of a current ONNX release (onnx_conformance_current), unpacked once from the official wheel.
bash scripts/onnx_testdata.sh

# ctest runs tests side by side; OpenMP threads that spin while they wait (libgomp's default) then fight each other
# for the cores, which made some tests many times slower. Passive waiting avoids that.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

echo "== release build: tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== ASan/UBSan build: tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_SANITIZE=ON -DLOWBIT_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-asan && ctest --output-on-failure -j"$jobs" -LE "slow|ort")

# libFuzzer (clang, ASan/UBSan) on the model loader, the config JSON and the encodings JSON, 60 s each: any crash,
# sanitizer report, leak or input slower than 10 s fails CI (scripts/fuzz.sh; longer runs: scripts/fuzz.sh 1800).
echo "== fuzzing: 60 s per target"
unset ASAN_OPTIONS UBSAN_OPTIONS
bash scripts/fuzz.sh 60
