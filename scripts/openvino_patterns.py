#!/usr/bin/env python3
"""Two QDQ patterns that OpenVINO's CPU plugin runs differently from the ONNX operator definitions (issue 16), each
as a minimal generated graph run in ONNX Runtime (optimizations off: QuantizeLinear/DequantizeLinear as the spec
defines them) and in OpenVINO (f32 inference precision), with the largest difference in output steps.

  A  ReduceMean of a dequantized tensor over a non-spatial axis (a ViT's token mean-pool, or keepdims=0), input
     quantized asymmetric uint8 with a non-zero zero point;
  B  a signed int8 tensor read by a Conv and by a MaxPool -> Conv, the two results joined by a Concat (an Inception
     block), whatever the signedness of the quantizers after them.

Each pattern is run next to its variants so the table shows which property triggers it. scripts/deploy_gap.py puts
the table into docs/results/deploy.md; profiles/openvino-cpu.json cites it.

Usage: build/ort-venv/bin/python scripts/openvino_patterns.py   (onnxruntime and openvino: scripts/test.sh installs them)
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _qdq(nodes, inits, x, name, scale, zp, dtype):
    inits += [numpy_helper.from_array(np.array(scale, np.float32), name + "_s"),
              numpy_helper.from_array(np.array(zp, dtype), name + "_z")]
    nodes += [helper.make_node("QuantizeLinear", [x, name + "_s", name + "_z"], [name + "_q"]),
              helper.make_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"], [name])]
    return name


def _model(nodes, inits, shape):
    g = helper.make_graph(nodes, "pattern", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + shape[1:])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def reduce_mean_model(dtype, zp, axes, keepdims, shape):
    nodes, inits = [], []
    xd = _qdq(nodes, inits, "x", "xq", 0.02, zp, dtype)
    nodes.append(helper.make_node("ReduceMean", [xd], ["r"], axes=axes, keepdims=keepdims))
    _qdq(nodes, inits, "r", "y", 0.015, zp, dtype)
    return _model(nodes, inits, shape)


def concat_pool_model(input_dtype, pool, rng):
    """x -> Relu -> Q/DQ(input_dtype) -> {Conv, [MaxPool ->] Conv} -> Relu -> Q/DQ int8 each -> Concat -> Q/DQ int8."""
    nodes, inits = [helper.make_node("Relu", ["x"], ["xr"])], []
    xd = _qdq(nodes, inits, "xr", "xq", 0.02, 0, input_dtype)
    outs = []
    for b in range(2):
        w = (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)
        ws = np.abs(w).max((1, 2, 3)) / 127
        inits += [numpy_helper.from_array(np.round(w / ws[:, None, None, None]).astype(np.int8), f"w{b}"),
                  numpy_helper.from_array(ws.astype(np.float32), f"w{b}s"),
                  numpy_helper.from_array(np.zeros(8, np.int8), f"w{b}z"),
                  numpy_helper.from_array((rng.standard_normal(8) * 0.2).astype(np.float32), f"b{b}")]
        src = xd
        if b == 1 and pool:
            nodes.append(helper.make_node("MaxPool", [xd], ["mp"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            src = "mp"
        nodes += [helper.make_node("DequantizeLinear", [f"w{b}", f"w{b}s", f"w{b}z"], [f"wd{b}"], axis=0),
                  helper.make_node("Conv", [src, f"wd{b}", f"b{b}"], [f"c{b}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{b}"], [f"r{b}"])]
        outs.append(_qdq(nodes, inits, f"r{b}", f"rq{b}", 0.03 * (1 + b), 0, np.int8))
    nodes.append(helper.make_node("Concat", outs, ["cat"], axis=1))
    _qdq(nodes, inits, "cat", "y", 0.06, 0, np.int8)
    return _model(nodes, inits, [50, 4, 8, 8])


def cases(rng):
    """(pattern, description, model, input, output step)"""
    r = []
    for dtype, zp in [(np.uint8, 112), (np.uint8, 0), (np.int8, 0)]:
        for axes, keepdims, shape in [([1], 0, [100, 16, 96]), ([-1], 1, [100, 16, 96]), ([1], 1, [100, 16, 96]),
                                      ([2, 3], 1, [100, 32, 7, 7])]:
            desc = f"ReduceMean axes={axes} keepdims={keepdims} on {list(shape)}, {np.dtype(dtype).name} zero point {zp}"
            r.append(("A", desc, reduce_mean_model(dtype, zp, axes, keepdims, shape),
                      rng.standard_normal(shape).astype(np.float32), 0.015))
    for input_dtype in [np.int8, np.uint8]:
        for pool in [True, False]:
            desc = (f"{np.dtype(input_dtype).name} tensor -> Conv and {'MaxPool -> ' if pool else ''}Conv -> Concat")
            r.append(("B", desc, concat_pool_model(input_dtype, pool, rng),
                      rng.standard_normal((50, 4, 8, 8)).astype(np.float32), 0.06))
    return r


def run(ort, openvino):
    """Rows (pattern, description, max |difference| in output steps, % of outputs that differ)."""
    rng = np.random.default_rng(0)
    core = openvino.Core()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    rows = []
    for pattern, desc, model, x, step in cases(rng):
        data = model.SerializeToString()
        want = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        compiled = core.compile_model(core.read_model(data, b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        got = compiled({"x": x})[0]
        d = np.abs(got - want) / step
        rows.append((pattern, desc, float(d.max()), 100.0 * float((d > 0.5).mean())))
    return rows


def table(rows):
    lines = ["| pattern | graph | max difference (steps) | outputs that differ |", "|---|---|---:|---:|"]
    lines += [f"| {p} | {d} | {m:.0f} | {f:.2f} % |" for p, d, m, f in rows]
    return lines


if __name__ == "__main__":
    import onnxruntime
    import openvino
    print("\n".join(table(run(onnxruntime, openvino))))
