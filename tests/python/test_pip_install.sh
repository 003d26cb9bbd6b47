#!/usr/bin/env bash
# `pip install .` in a fresh venv on Debian's python3 (as the README says): import lowbit, its version, the
# `lowbit` command in the venv, and the README's Python example run with the installed package.
# Usage: test_pip_install.sh SOURCE_DIR   (reuses SOURCE_DIR/build/pip, so a second run recompiles only changes)
set -euo pipefail
root=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 -m venv "$tmp/v"
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$tmp/v/bin/pip" install -q --disable-pip-version-check "$root"
want=$(sed -n 's/^project(lowbit VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
got=$(cd "$tmp" && "$tmp/v/bin/python" -c "import lowbit; print(lowbit.__version__)")
[ "$got" = "$want" ] || { echo "FAIL: lowbit.__version__ is '$got', CMakeLists.txt says '$want'"; exit 1; }
"$tmp/v/bin/lowbit" info "$root/models/fashion_cnn.onnx" | grep -q "image" || { echo "FAIL: venv's lowbit info"; exit 1; }
# The installed package, not the build tree's: nothing on PYTHONPATH, run from a scratch folder.
mkdir "$tmp/run" && ln -s "$root/models" "$tmp/run/models"
sed -n '/<!-- python-example -->/,/^```$/p' "$root/README.md" | sed '1,2d;$d' > "$tmp/example.py"
(cd "$tmp/run" && env -u PYTHONPATH "$tmp/v/bin/python" "$tmp/example.py" > "$tmp/out.txt")
python3 -c "import sys; v = float(open(sys.argv[1]).read().split()[-1]); assert 0 <= v <= 100, v" "$tmp/out.txt"
[ -f "$tmp/run/fashion_cnn.w8a8.onnx" ] || { echo "FAIL: the README example wrote no model"; exit 1; }
echo "pip install: lowbit $got imports from a fresh venv; README example top-1 $(tail -1 "$tmp/out.txt")"
