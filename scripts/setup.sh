#!/usr/bin/env bash
# Installs lowbit's dependencies from Debian 12 packages (only what is missing) and builds it into build/.
# Usage: bash scripts/setup.sh      (re-running is cheap: installed packages are skipped, the build is incremental)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake
  libonnx-dev libprotobuf-dev protobuf-compiler    # official ONNX C++ library (ONNX_ML=1, ONNX_NAMESPACE=onnx)
  libopenblas-openmp-dev                           # BLAS for Conv/Gemm/MatMul, OpenMP build
  libdnnl-dev                                      # oneDNN: convolution kernels chosen per CPU at run time
  nlohmann-json3-dev libcli11-dev libstb-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libonnx-testdata dataset-fashion-mnist           # ONNX conformance tests; Fashion-MNIST
  python3 python3-numpy python3-onnx python3-venv python3-pip  # generators, cross-checks, venv for onnxruntime
  python3-dev pybind11-dev python3-pytest          # the Python package (pybind11 binding) and its tests
  chromium                                         # headless check that analysis reports render
  clang libclang-rt-14-dev libomp-14-dev           # libFuzzer + sanitizers for scripts/fuzz.sh (CI's fuzz stage)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/bin/lowbit"
