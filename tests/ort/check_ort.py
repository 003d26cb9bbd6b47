#!/usr/bin/env python3
"""Runs a quantized (QDQ) model in lowbit and in ONNX Runtime on the same Fashion-MNIST test images and compares,
layer by layer on identical inputs, so that the check holds on any x86-64 CPU (AVX2, AVX-512, VNNI, AMX).

usage: check_ort.py LOWBIT_BINARY MODEL.onnx [--images N] [--json OUT]

Why per layer: both runtimes quantize the same real values, but their float arithmetic (summation order, vector
width, reductions in double in lowbit) differs, and differs again between CPUs. A value that lands within a few ulps
of a rounding boundary can round to the neighbouring code in one of them, and end to end such a flip spreads through
every later layer, so no constant end-to-end tolerance chosen on one machine holds on another.

Checks against ORT with graph optimizations disabled (exit 1 if any fails):
  1. Per layer, identical inputs: every activation QuantizeLinear is evaluated by ORT on the codes lowbit produced
     for its upstream quantizers (the model is cut at every quantizer; flips cannot cascade). Each code may differ by
     at most one step: identical inputs leave only summation-order differences of a few ulps, which move a value
     across at most one rounding boundary; a wrong scale, zero point, rounding mode or kernel gives larger or
     systematic differences.
  2. End to end, bounded by what the per-layer figures imply: for every quantizer l whose ORT codes differ on
     identical inputs, lowbit reruns the model with only l's codes replaced by ORT's and measures how far the output
     moves (D_l, in output steps: the flip propagated through lowbit's own later layers). The end-to-end difference
     between ORT and lowbit may not exceed sum_l D_l (to first order, the end-to-end difference is the sum of the
     propagated per-layer flips), plus the float rounding of the output's dequantization.
Top-1 agreement and the share of identical codes are reported, not asserted. The same end-to-end comparison with
ORT's default optimizations (fused integer kernels) is reported for the record.
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


def activation_quantizers(model):
    """(output name, element type) of every QuantizeLinear whose input is computed (not a weight)."""
    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            out.append((n.output[0], zp.data_type if zp is not None else onnx.TensorProto.UINT8))
    return out


def with_outputs(model, names):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name, elem in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    return m


def cut_at(model, quantizers):
    """A copy whose readers of each quantizer's codes read a new graph input '<name>__in' instead."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    renamed = {name: name + "__in" for name, _ in quantizers}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" and n.output[0] in renamed:
            continue
        for i, v in enumerate(n.input):
            if v in renamed:
                n.input[i] = renamed[v]
    for o in m.graph.output:
        if o.name in renamed:
            raise SystemExit(f"quantizer output {o.name} is a model output; cannot cut there")
    for name, elem in quantizers:
        m.graph.input.append(onnx.helper.make_tensor_value_info(renamed[name], elem, None))
    return m


def output_step(model, out_name):
    """The quantization step of the output: the scale of its DequantizeLinear (through the Clip of a narrower grid),
    or of the Mul that ends a 9..16-bit float chain (Div, Round, Add, Clip, Sub, Mul(scale))."""
    inits = {i.name: i for i in model.graph.initializer}  # converted only where read: the onnx module may not know
    for n in model.graph.node:                               # every type in the file (int4 weights)
        if out_name in n.output:
            if n.op_type in ("DequantizeLinear", "Mul") and len(n.input) > 1 and n.input[1] in inits:
                return float(np.max(numpy_helper.to_array(inits[n.input[1]])))
            if n.op_type == "Clip":  # narrower-than-8-bit grid: Q -> DQ -> Clip
                return output_step(model, n.input[0])
    return None


def ort_run(path, feeds, optimize=False):
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def lowbit_run(lowbit, path, feeds, tmp):
    args = [lowbit, "run", path, "-o", f"{tmp}/lowbit_out.npz"]
    for k, v in feeds.items():
        f = f"{tmp}/feed_{len(args)}.npy"
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lowbit run failed: {r.stderr}")
    return dict(np.load(f"{tmp}/lowbit_out.npz"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lowbit")
    ap.add_argument("model")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--json")
    args = ap.parse_args()
    model = onnx.load(args.model)
    quantizers = activation_quantizers(model)
    out_name = model.graph.output[0].name
    in_name = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}][0]
    step = output_step(model, out_name)
    if step is None:
        sys.exit(f"{args.model}: output '{out_name}' does not come from a DequantizeLinear")
    x = test_images(args.images)
    results = {"onnxruntime_version": ort.__version__, "model": args.model, "images": args.images,
               "output_step": step, "quantizers": len(quantizers)}
    with tempfile.TemporaryDirectory() as tmp:
        full = with_outputs(model, quantizers)
        full_path = f"{tmp}/full.onnx"
        onnx.save(full, full_path)
        lb = lowbit_run(args.lowbit, full_path, {in_name: x}, tmp)

        # 1. Per layer on identical inputs.
        cut = with_outputs(cut_at(model, quantizers), quantizers)
        cut_path = f"{tmp}/cut.onnx"
        onnx.save(cut, cut_path)
        feeds = {in_name: x}
        feeds.update({name + "__in": lb[name] for name, _ in quantizers})
        same_in = ort_run(cut_path, feeds)
        layers, flipped = [], []
        for name, _ in quantizers:
            d = np.abs(same_in[name].astype(np.int64) - lb[name].astype(np.int64))
            layers.append({"quantizer": name, "max_code_difference": int(d.max()) if d.size else 0,
                           "differing_codes": int((d != 0).sum()), "codes": int(d.size)})
            if d.size and d.max() > 0:
                flipped.append(name)
        worst_layer = max((l["max_code_difference"] for l in layers), default=0)

        # 2. The end-to-end difference the per-layer flips imply: each propagated through lowbit alone.
        implied = 0.0
        for name in flipped:
            elem = dict(quantizers)[name]
            one = cut_at(model, [(name, elem)])
            one_path = f"{tmp}/one.onnx"
            onnx.save(one, one_path)
            y = lowbit_run(args.lowbit, one_path, {in_name: x, name + "__in": same_in[name]}, tmp)[out_name]
            d_l = float(np.max(np.abs(y.astype(np.float64) - lb[out_name]))) / step
            next(l for l in layers if l["quantizer"] == name)["propagated_output_steps"] = d_l
            implied += d_l

        e2e = {}
        for label, optimize in (("no_optimizations", False), ("all_optimizations", True)):
            ref = ort_run(full_path, {in_name: x}, optimize)
            total = same = 0
            for name, _ in quantizers:
                if name in ref:
                    d = ref[name].astype(np.int64) != lb[name].astype(np.int64)
                    total += d.size
                    same += int((~d).sum())
            diff = float(np.max(np.abs(ref[out_name].astype(np.float64) - lb[out_name])))
            e2e[label] = {"max_output_difference_steps": diff / step,
                          "identical_codes_fraction": same / max(total, 1),
                          "top1_agreement": float(np.mean(ref[out_name].argmax(1) == lb[out_name].argmax(1)))}
    results["per_layer"] = {"max_code_difference": worst_layer, "quantizers_with_flips": len(flipped),
                            "differing_codes": sum(l["differing_codes"] for l in layers),
                            "codes": sum(l["codes"] for l in layers), "layers": layers}
    results["implied_output_steps"] = implied
    results.update(e2e)
    # Dequantizing codes one apart rounds each value once: allow 1e-4 step for that float rounding.
    plain = e2e["no_optimizations"]["max_output_difference_steps"]
    ok = worst_layer <= 1 and plain <= implied + 1e-4
    results["pass"] = ok
    text = json.dumps(results, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)
    print(f"per layer: max code difference {worst_layer} on identical inputs ({len(flipped)} of {len(quantizers)} "
          f"quantizers with a flip); end to end: {plain:.3f} output steps, implied bound {implied:.3f}")
    print(f"ort: {1 if ok else 0} passed, {0 if ok else 1} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
