#!/usr/bin/env python3
"""ONNX Runtime agrees with lowbit on exported QDQ files for every weight policy (issue 12 item 1).

usage: check_export_matrix.py LOWBIT_BINARY REPO_ROOT

For bits (2, 4, 8, 16) x weight granularity (per-tensor, per-channel, per-group) x symmetric/asymmetric, with round
half to even, `lowbit quantize` exports the bundled CNN in static mode; lowbit and ONNX Runtime (graph optimizations
off) run the file on the bundled sample images, and the outputs must agree within one step of the output quantizer
(both runtimes quantize the same real values; only float summation order differs, which can move a value across one
rounding boundary of the last quantizer). With half-away activation rounding, export must be refused with the
message that explains why (ONNX QuantizeLinear rounds half to even). Bit-exact equality of simulation and export is
checked in C++ (ExportExactness); this script checks the peer. 2- and 4-bit weights are stored as int4/uint4 and
per-group weights as blocked DequantizeLinear (the model converted to opset 21): the script checks the file holds
those forms, so ONNX Runtime is shown to read them.
The same CNN declared as opset 11 (its ops mean the same there) is exported with int32 biases at 8 bits per tensor
(the file stays opset 11, whose DequantizeLinear has no `axis` and takes one scale: the bias must be stored so; with
a per-channel bias scale ONNX Runtime refuses the file) and per channel (converted to opset 13), and must load and
agree the same way.
"""
import json, os, subprocess, sys, tempfile
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_ort import output_step  # noqa: E402  (the output's quantization step, shared with the peer check)


def main():
    lowbit, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "models", "fashion_cnn.onnx")
    x = np.load(os.path.join(root, "models", "fashion_sample.npy"))
    data = f"npy:{root}/models/fashion_sample.npy"
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x)
        old = onnx.load(model)
        old.opset_import[0].version = 11
        onnx.save(old, f"{tmp}/opset11.onnx")
        cases = [(model, r, b, g, s) for r in ("half_even", "half_away") for b in (2, 4, 8, 16)
                 for g in ("per_tensor", "per_channel", "per_group") for s in (True, False)]
        cases += [(f"{tmp}/opset11.onnx", "half_even", 8, g, s) for g in ("per_tensor", "per_channel") for s in (True, False)]
        for path, rounding, bits, gran, sym in cases:
            tag = f"{'opset 11 ' if path != model else ''}{rounding}/{bits}/{gran}/{'sym' if sym else 'asym'}"
            q = {"bits": bits, "rounding": rounding, "symmetric": sym}
            cfg = {"weights": dict(q, granularity=gran, **({"group_size": 8} if gran == "per_group" else {})),
                   "activations": q, "mode": "static", "int32_bias": path != model}
            with open(f"{tmp}/cfg.json", "w") as f:
                json.dump(cfg, f)
            out = f"{tmp}/q.onnx"
            if os.path.exists(out):
                os.remove(out)
            r = subprocess.run([lowbit, "quantize", path, "--config", f"{tmp}/cfg.json", "--data", data,
                                "-o", out], capture_output=True, text=True)
            if rounding == "half_away":
                ok = (r.returncode == 1 and "rounding 'half_away' cannot be exported" in r.stderr
                      and not os.path.exists(out))
                print(f"{'ok  ' if ok else 'FAIL'} {tag}: refused" + ("" if ok else f" ({r.stderr.strip()})"))
                passed, failed = passed + ok, failed + (not ok)
                continue
            if r.returncode != 0:
                print(f"FAIL {tag}: quantize: {r.stderr.strip()}")
                failed += 1
                continue
            m = onnx.load(out)
            out_name = m.graph.output[0].name
            # 2/4-bit weights are stored as int4/uint4 (ONNX types 22/21) and per-group weights as blocked
            # DequantizeLinear, at opset 21 (the model is converted): ONNX Runtime must read those forms.
            int4 = sum(i.data_type in (21, 22) for i in m.graph.initializer)
            blocked = sum(n.op_type == "DequantizeLinear" and any(a.name == "block_size" and a.i > 0 for a in n.attribute)
                          for n in m.graph.node)
            opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
            form_ok = ((int4 > 0) == (bits <= 4) and (blocked > 0) == (gran == "per_group" and bits <= 8)
                       and (opset >= 21) == (bits <= 4 or gran == "per_group"))
            if not form_ok:
                print(f"FAIL {tag}: stored form: {int4} int4 tensors, {blocked} blocked DequantizeLinear, opset {opset}")
                failed += 1
                continue
            step = output_step(m, out_name)
            r = subprocess.run([lowbit, "run", out, "--input", f"{tmp}/x.npy", "-o", f"{tmp}/lb.npz"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {tag}: run: {r.stderr.strip()}")
                failed += 1
                continue
            lb = np.load(f"{tmp}/lb.npz")[out_name]
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                sess = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001  (ONNX Runtime refusing the file is the failure reported)
                print(f"FAIL {tag}: ONNX Runtime cannot load the file: {e}")
                failed += 1
                continue
            ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            a, b = ref.astype(np.float64), lb.astype(np.float64)
            diff = float(np.max(np.abs(a - b)))
            # Codes one apart dequantize to v = (q - z) * s, each rounded once to float32 (relative error
            # u = 2^-24; q - z is exact): |v1 - v2| <= s + u (|v1| + |v2|) / (1 - u).
            bound = step + 2.0 ** -24 * (np.abs(a) + np.abs(b)) / (1 - 2.0 ** -24) if step else None
            ok = step is not None and bool(np.all(np.abs(a - b) <= bound))
            print(f"{'ok  ' if ok else 'FAIL'} {tag}: max |ORT - lowbit| = {diff:.3g} "
                  f"({diff / step if step else float('nan'):.3f} output steps)")
            passed, failed = passed + ok, failed + (not ok)
    print(f"export matrix: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
