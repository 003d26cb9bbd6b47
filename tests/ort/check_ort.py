#!/usr/bin/env python3
"""Runs a quantized (QDQ) model in lowbit and in ONNX Runtime on the same Fashion-MNIST test images and compares.

usage: check_ort.py LOWBIT_BINARY MODEL.onnx [--images N] [--json OUT]
Checks against ORT with graph optimizations disabled (exit 1 if any fails):
  - the model outputs differ by at most --max-output-steps (default 1) quantization steps of the output's
    DequantizeLinear;
  - top-1 agreement >= 99%;
  - a sanity floor: >= 99% of the integer codes (every QuantizeLinear output) are identical. Float arithmetic differs
    between the two runtimes (accumulation order, reductions in double in lowbit), so a value can land on the other
    side of a rounding boundary and such a flip spreads downstream; a wrong scale or zero point would break far more.
Also reports the same comparison with ORT's default optimizations (fused integer kernels), for the record.
"""
import argparse, gzip, json, os, struct, subprocess, sys, tempfile
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

DATA = "/usr/share/datasets/fashion-mnist"


def test_images(n):
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    dims = struct.unpack(">III", raw[4:16])
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(dims)[:n]
    return (x.astype(np.float32) / 255.0)[:, None]


def with_quantized_outputs(model):
    """A copy of the model that also outputs every QuantizeLinear result."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    q_outputs = [n.output[0] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    elem = {}
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            elem[n.output[0]] = zp.data_type if zp is not None else onnx.TensorProto.UINT8
    for name in q_outputs:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, elem[name], None))
    return m, q_outputs


def output_step(model, out_name):
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if out_name in n.output:
            if n.op_type == "DequantizeLinear":
                return float(np.max(inits[n.input[1]]))
            if n.op_type == "Clip":  # narrower-than-8-bit grid: Q -> DQ -> Clip
                return output_step(model, n.input[0])
    return None


def compare(ref, got, names, step_out, out_name):
    report, ok = {}, True
    total = same = 0
    worst = 0
    for name in names:
        a, b = ref[name].astype(np.int64), got[name].astype(np.int64)
        d = np.abs(a - b)
        total += d.size
        same += int((d == 0).sum())
        worst = max(worst, int(d.max()) if d.size else 0)
    report["quantized_tensors"] = len(names)
    report["identical_codes_fraction"] = same / max(total, 1)
    report["max_code_difference"] = worst
    diff = float(np.max(np.abs(ref[out_name] - got[out_name])))
    report["max_output_difference"] = diff
    report["output_step"] = step_out
    report["output_difference_in_steps"] = diff / step_out if step_out else None
    report["top1_agreement"] = float(np.mean(ref[out_name].argmax(1) == got[out_name].argmax(1)))
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lowbit")
    ap.add_argument("model")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--json")
    ap.add_argument("--max-output-steps", type=float, default=1.0)
    args = ap.parse_args()
    model = onnx.load(args.model)
    probe, q_names = with_quantized_outputs(model)
    out_name = model.graph.output[0].name
    in_name = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}][0]
    x = test_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        probe_path = os.path.join(tmp, "probe.onnx")
        onnx.save(probe, probe_path)
        np.save(os.path.join(tmp, "x.npy"), x)
        r = subprocess.run([args.lowbit, "run", probe_path, "--input", f"{in_name}={tmp}/x.npy", "-o", f"{tmp}/out.npz"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"lowbit run failed: {r.stderr}")
        lb = dict(np.load(f"{tmp}/out.npz"))
        results = {}
        for label, level in (("no_optimizations", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                             ("all_optimizations", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
            so = ort.SessionOptions()
            so.graph_optimization_level = level
            sess = ort.InferenceSession(probe_path, so, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            ref = dict(zip(names, sess.run(None, {in_name: x})))
            results[label] = compare(ref, lb, q_names, output_step(model, out_name), out_name)
    results["onnxruntime_version"] = ort.__version__
    results["model"] = args.model
    plain = results["no_optimizations"]
    # 1e-4 absorbs the float rounding of (q1 - z) * s - (q2 - z) * s itself.
    ok = (plain["identical_codes_fraction"] >= 0.99 and plain["top1_agreement"] >= 0.99 and
          plain["output_difference_in_steps"] is not None and
          plain["output_difference_in_steps"] <= args.max_output_steps + 1e-4)
    results["pass"] = ok
    text = json.dumps(results, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    print(f"ort: {1 if ok else 0} passed, {0 if ok else 1} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
