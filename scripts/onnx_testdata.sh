#!/usr/bin/env bash
# NETWORK: fetches the ONNX backend node tests of a current ONNX release for the conformance test
# onnx_conformance_current (Debian's libonnx-testdata is ONNX 1.12, from 2022: opsets up to 17 and reference data
# that later releases corrected, e.g. float -> bfloat16 by truncation).
#
# The official onnx wheel from the Python package index carries the node tests (model.onnx + test_data_set_*/*.pb)
# under onnx/backend/test/data/node. 1.21.0 is the newest release whose wheel still ships them (1.22 and later do
# not); its models use opsets up to 24. The wheel is downloaded with `pip download --no-deps` (nothing is installed)
# into build/onnx-testdata/ and only the node tests are unpacked, once; re-running is free.
# Usage: bash scripts/onnx_testdata.sh   -> build/onnx-testdata/1.21.0/node
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.21.0
dest=build/onnx-testdata/$version
[ -f "$dest/.complete" ] && exit 0
mkdir -p build/onnx-testdata/wheels
pip=(/usr/bin/python3 -m pip)
[ -x build/ort-venv/bin/pip ] && pip=(build/ort-venv/bin/pip)
ls build/onnx-testdata/wheels/onnx-$version-*.whl >/dev/null 2>&1 ||
  "${pip[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: -d build/onnx-testdata/wheels \
    "onnx==$version"
rm -rf "$dest.tmp"
/usr/bin/python3 - "$(ls build/onnx-testdata/wheels/onnx-$version-*.whl | head -1)" "$dest.tmp" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:]
prefix = "onnx/backend/test/data/node/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"onnx_testdata: {wheel} has no {prefix}")
    for n in names:
        z.extract(n, out)
print(f"onnx_testdata: {len(names)} files from {wheel}")
PY
mv "$dest.tmp/onnx/backend/test/data/node" "$dest.node" && rm -rf "$dest.tmp" && mkdir -p "$dest" && mv "$dest.node" "$dest/node"
touch "$dest/.complete"
