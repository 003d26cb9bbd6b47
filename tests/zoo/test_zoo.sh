#!/usr/bin/env bash
# Evaluates every committed zoo model on the Fashion-MNIST test set and checks lowbit's top-1 against the
# PyTorch accuracy recorded in models/zoo/zoo.json (within 0.02 percentage points). CI does not retrain.
# usage: test_zoo.sh LOWBIT_BINARY REPO_ROOT
set -u
bin=$1
root=$2
zoo=$root/models/zoo/zoo.json
if [ ! -f "$zoo" ]; then echo "zoo: $zoo missing"; exit 1; fi
/usr/bin/python3 - "$bin" "$root" "$zoo" <<'PY'
import json, subprocess, sys
binary, root, zoo = sys.argv[1:]
models = json.load(open(zoo))["models"]
passed = failed = 0
for m in models:
    out = subprocess.run([binary, "eval", f"{root}/models/zoo/{m['file']}", "--data", "fashion-mnist:test", "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL {m['name']}: {out.stderr.strip()}")
        failed += 1
        continue
    top1 = json.loads(out.stdout)["top1_percent"]
    diff = abs(top1 - m["pytorch_top1_percent"])
    ok = diff <= 0.02 + 1e-9
    print(f"{'ok  ' if ok else 'FAIL'} {m['name']}: lowbit {top1:.2f}% vs PyTorch {m['pytorch_top1_percent']:.2f}%")
    passed += ok
    failed += not ok
print(f"zoo: {passed} passed, {failed} failed")
sys.exit(1 if failed or not models else 0)
PY
