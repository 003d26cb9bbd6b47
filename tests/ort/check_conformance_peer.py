#!/usr/bin/env python3
"""The ONNX 1.21 node tests whose reference data lowbit does not follow, and the newly supported Resize (opset 18/19)
and blocked QuantizeLinear/DequantizeLinear (opset 21) cases, run in ONNX Runtime 1.31 (graph optimizations off)
next to `lowbit run` on the tests' own inputs.

- Every test listed in tests/conformance/expected_unsupported_onnx-1.21.txt with the reason "reference data ..." must
  give lowbit's values in ONNX Runtime and differ from the reference: if ONNX Runtime started to agree with the
  reference data, the entry's reason would be wrong. Mutation caught: QLinearMatMul wrapping instead of
  saturating (lowbit then equals the reference, ORT does not).
- The Resize tests with axes / keep_aspect_ratio_policy / antialias / half_pixel_symmetric and the blocked Q/DQ
  tests must agree with ORT as they agree with the reference data: integer outputs equal, float outputs within
  1e-5 of the output's max (float32 sums of a few taps in another order; a wrong tap or weight is off by O(1e-1)).

usage: check_conformance_peer.py LOWBIT_BINARY REPO_ROOT
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

lowbit, root = sys.argv[1:3]
data = os.path.join(root, "build/onnx-testdata/1.21.0/node")
listing = os.path.join(root, "tests/conformance/expected_unsupported_onnx-1.21.txt")
if not os.path.isdir(data):
    sys.exit(f"no ONNX 1.21 node tests at {data} (bash scripts/onnx_testdata.sh)")

defects = [l.split()[0] for l in open(listing) if "# reference data" in l]
features = sorted(os.path.basename(d) for d in glob.glob(os.path.join(data, "test_resize_*"))
                  if any(k in d for k in ("antialias", "axes", "not_larger", "not_smaller", "symmetric")))
features += ["test_dequantizelinear_blocked", "test_quantizelinear_blocked_asymmetric",
             "test_quantizelinear_blocked_symmetric", "test_quantizelinear_int16", "test_quantizelinear_uint16"]
if len(defects) != 4 or len(features) < 15:
    sys.exit(f"expected 4 listed defects and >= 15 feature tests, found {len(defects)} and {len(features)}")


def load_pb(path):
    t = onnx.TensorProto()
    t.ParseFromString(open(path, "rb").read())
    return numpy_helper.to_array(t)


def run_both(name, tmp):
    d = os.path.join(data, name)
    model = onnx.load(os.path.join(d, "model.onnx"))
    inputs = [i.name for i in model.graph.input]
    ins = [load_pb(f) for f in sorted(glob.glob(os.path.join(d, "test_data_set_0", "input_*.pb")))]
    want = [load_pb(f) for f in sorted(glob.glob(os.path.join(d, "test_data_set_0", "output_*.pb")))]
    feeds = dict(zip(inputs, ins))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    got_ort = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    args = []
    for k, v in feeds.items():
        p = os.path.join(tmp, f"{name}_{k}.npy")
        np.save(p, v)
        args += ["-i", f"{k}={p}"]
    out = os.path.join(tmp, name + ".npz")
    r = subprocess.run([lowbit, "run", os.path.join(d, "model.onnx"), *args, "-o", out], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    z = np.load(out)
    got_lb = [z[o.name] for o in model.graph.output]
    return got_lb, got_ort, want


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "iub":
        return np.array_equal(a, b)
    return float(np.max(np.abs(a.astype(np.float64) - b))) <= 1e-5 * max(1.0, float(np.max(np.abs(b))))


failures = []
with tempfile.TemporaryDirectory() as tmp:
    for name in defects + features:
        try:
            lb, ox, ref = run_both(name, tmp)
        except Exception as e:
            failures.append(f"{name}: {e}")
            continue
        agree = all(close(a, b) for a, b in zip(lb, ox))
        if name in defects:
            ok = agree and not all(close(a, b) for a, b in zip(ox, ref))
            print(f"{'ok  ' if ok else 'FAIL'} {name}: lowbit == ORT {agree}; ORT == reference data "
                  f"{all(close(a, b) for a, b in zip(ox, ref))} (listed as a reference-data defect)")
        else:
            ok = agree
            print(f"{'ok  ' if ok else 'FAIL'} {name}: lowbit == ORT {agree}")
        if not ok:
            failures.append(name)
print(f"conformance peer: {len(defects) + len(features) - len(failures)} passed, {len(failures)} failed")
for f in failures:
    print("  ", f)
sys.exit(1 if failures else 0)
