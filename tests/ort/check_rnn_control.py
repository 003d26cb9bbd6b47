#!/usr/bin/env python3
"""Recurrent layers, control flow and Gelu agree with ONNX Runtime (graph optimizations off).

Builds small models with onnx.helper covering what the ONNX node tests leave out: RNN/GRU/LSTM in both directions
and reversed, sequence_lens, clip, non-default activations with alpha/beta, linear_before_reset,
peepholes, initial states; If/Loop/Scan whose bodies read outer values. Each runs through `lowbit run` and ORT on
random inputs (layout 1, which ORT refuses, is covered by the node tests *_batchwise). The bound is the real-models issue's: |lowbit - ORT| <= 1e-5 * max|ORT| per output (float32
GEMMs summed in different orders and ORT's own sigmoid/tanh stay far below it; a wrong gate order, bias half,
direction or state layout is off by O(1)).

usage: check_rnn_control.py LOWBIT_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
failures = []


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def check(name, model, feeds, tmp):
    path = os.path.join(tmp, name + ".onnx")
    onnx.save(model, path)
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(tmp, f"{name}_{k}.npy"), v)
        args += ["-i", f"{k}={os.path.join(tmp, f'{name}_{k}.npy')}"]
    out = os.path.join(tmp, name + "_out.npz")
    r = subprocess.run([sys.argv[1], "run", path, *args, "-o", out], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{name}: lowbit run failed: {r.stderr.strip()}")
        print("FAIL", name, r.stderr.strip())
        return
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, feeds)
    got = np.load(out)
    worst = 0.0
    for o, want in zip(sess.get_outputs(), ref):
        have = got[o.name]
        if have.shape != want.shape:
            failures.append(f"{name}/{o.name}: shape {have.shape} vs ORT {want.shape}")
            print("FAIL", name, o.name, have.shape, want.shape)
            return
        if want.dtype.kind == "f":
            scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
            err = float(np.max(np.abs(have.astype(np.float64) - want))) if want.size else 0.0
            worst = max(worst, err / scale)
            if err > 1e-5 * scale:
                failures.append(f"{name}/{o.name}: max |diff| {err:.3g} > 1e-5 * {scale:.3g}")
        elif not np.array_equal(have, want):
            failures.append(f"{name}/{o.name}: differs from ORT")
    print(f"{'ok  ' if not any(f.startswith(name + '/') for f in failures) else 'FAIL'} {name}: "
          f"max |diff| / max|ORT| = {worst:.2e}")


def recurrent(op, gates, direction="forward", layout=0, seq_lens=False, init=False, clip=None, acts=None,
              alpha=None, beta=None, lbr=None, peep=False, seq=5, batch=3, isz=4, hs=6):
    dirs = 2 if direction == "bidirectional" else 1
    x_shape = [batch, seq, isz] if layout else [seq, batch, isz]
    st_shape = [batch, dirs, hs] if layout else [dirs, batch, hs]
    inits = [numpy_helper.from_array(f32(dirs, gates * hs, isz, scale=0.5), "W"),
             numpy_helper.from_array(f32(dirs, gates * hs, hs, scale=0.5), "R"),
             numpy_helper.from_array(f32(dirs, 2 * gates * hs, scale=0.3), "B")]
    inputs = ["X", "W", "R", "B"]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    feeds = {"X": f32(*x_shape)}
    if seq_lens:
        inputs.append("L")
        graph_inputs.append(helper.make_tensor_value_info("L", TensorProto.INT32, [batch]))
        feeds["L"] = rng.integers(1, seq + 1, batch).astype(np.int32)
    else:
        inputs.append("")
    if init:
        inputs.append("H0")
        graph_inputs.append(helper.make_tensor_value_info("H0", TensorProto.FLOAT, st_shape))
        feeds["H0"] = f32(*st_shape)
        if op == "LSTM":
            inputs.append("C0")
            graph_inputs.append(helper.make_tensor_value_info("C0", TensorProto.FLOAT, st_shape))
            feeds["C0"] = f32(*st_shape)
    else:
        inputs += ["", ""] if op == "LSTM" else [""]
    if peep:
        inputs.append("P")
        inits.append(numpy_helper.from_array(f32(dirs, 3 * hs, scale=0.5), "P"))
    while inputs and inputs[-1] == "":
        inputs.pop()
    attrs = {"hidden_size": hs, "direction": direction}
    if layout:
        attrs["layout"] = 1
    if clip is not None:
        attrs["clip"] = clip
    if acts:
        attrs["activations"] = acts
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    if lbr is not None:
        attrs["linear_before_reset"] = lbr
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, inputs, outs, **attrs)
    graph = helper.make_graph([node], op.lower(), graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), feeds


def control_flow():
    """If whose branches read outer values; Loop with a scan output; Scan with reversed input and output."""
    models = []
    # If: then = x * w (outer x, outer initializer w), else = x + 1 (outer x), chosen by a bool input.
    w = numpy_helper.from_array(f32(3, 4), "w")
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3, 4])])
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    else_g = helper.make_graph([helper.make_node("Add", ["x", "one"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3, 4])], [one])
    g = helper.make_graph(
        [helper.make_node("Relu", ["x0"], ["x"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)], "if_outer",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [3, 4]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    for cv in (True, False):
        models.append((f"if_{str(cv).lower()}", m, {"x0": f32(3, 4), "c": np.array(cv)}))
    # Loop: acc = acc * 0.5 + x (outer); scan output acc each step; stop when iter reaches M.
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    body = helper.make_graph(
        [helper.make_node("Mul", ["acc_in", "half"], ["h"]), helper.make_node("Add", ["h", "x"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [2, 3])], [half])
    g = helper.make_graph(
        [helper.make_node("Loop", ["M", "", "a0"], ["acc", "accs"], body=body)], "loop_outer",
        [helper.make_tensor_value_info("M", TensorProto.INT64, []),
         helper.make_tensor_value_info("a0", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("acc", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("accs", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    models.append(("loop_scan_output", m, {"M": np.array(4, np.int64), "a0": f32(2, 3), "x": f32(2, 3)}))
    # Scan: running sum over axis 1 of x (reversed), scan output along axis 1 reversed, plus an outer bias.
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "xt"], ["sa"]), helper.make_node("Add", ["sa", "bias"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y"])], "sbody",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("xt", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    g = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1,
                          scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1],
                          scan_output_directions=[1])], "scan_outer",
        [helper.make_tensor_value_info("s0", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, [2, 5])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    models.append(("scan_reverse_axis1", m, {"s0": f32(2), "x": f32(2, 5), "bias": f32(2)}))
    return models


def check_quantize(tmp):
    """`lowbit quantize` with one --data per input (float rows, a 0-d bool), and with a folder of batches; the
    summary names what stays float; ORT runs both exported models."""
    name, m, _ = control_flow()[0]  # If reading outer values: inputs x0 [3, 4] float, c bool scalar
    # The If model has a fixed [3, 4] input: rows of 3.
    path = os.path.join(tmp, "q_if.onnx")
    onnx.save(m, path)
    np.save(os.path.join(tmp, "x0.npy"), f32(3, 4))
    np.save(os.path.join(tmp, "c.npy"), np.array(True))
    out = os.path.join(tmp, "q_if.qdq.onnx")
    r = subprocess.run([sys.argv[1], "quantize", path, "--data", f"x0=npy:{tmp}/x0.npy", "--data", f"c=npy:{tmp}/c.npy",
                        "-o", out], capture_output=True, text=True)
    ok = r.returncode == 0 and "inside If/Loop/Scan subgraphs" in r.stdout
    if ok:
        ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x0": f32(3, 4), "c": np.array(False)})
    print("ok  " if ok else "FAIL", "quantize multi-input (float + 0-d bool) with an If")
    if not ok:
        failures.append(f"quantize multi-input: {r.stderr.strip()} {r.stdout.strip()}")
    m, feeds = recurrent("LSTM", 4, "bidirectional", seq_lens=True, init=True)
    path = os.path.join(tmp, "q_lstm.onnx")
    onnx.save(m, path)
    bdir = os.path.join(tmp, "lstm_batches")
    os.makedirs(bdir, exist_ok=True)
    for i in range(3):
        _, fb = recurrent("LSTM", 4, "bidirectional", seq_lens=True, init=True)
        np.savez(os.path.join(bdir, f"{i}.npz"), **fb)
    out = os.path.join(tmp, "q_lstm.qdq.onnx")
    r = subprocess.run([sys.argv[1], "quantize", path, "--data", f"batches:{bdir}", "-o", out], capture_output=True,
                       text=True)
    ok = r.returncode == 0 and "LSTM/GRU/RNN" in r.stdout
    if ok:
        ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, feeds)
    print("ok  " if ok else "FAIL", "quantize an LSTM model from a folder of batches")
    if not ok:
        failures.append(f"quantize lstm: {r.stderr.strip()} {r.stdout.strip()}")


def gelu(approximate):
    """Gelu (opset 20), which the node tests of libonnx-testdata 1.12 predate."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 64])
    node = helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    g = helper.make_graph([node], "gelu_" + approximate, [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), {"x": f32(3, 64, scale=3.0)}


def main():
    cases = {
        "gelu_none": gelu("none"),
        "gelu_tanh": gelu("tanh"),
        "rnn_bidir_lens": recurrent("RNN", 1, "bidirectional", seq_lens=True, init=True),
        "rnn_relu_reverse": recurrent("RNN", 1, "reverse", acts=["Relu"]),
        "gru_bidir_lbr1": recurrent("GRU", 3, "bidirectional", lbr=1, init=True, seq_lens=True),
        "gru_reverse_lbr0": recurrent("GRU", 3, "reverse", lbr=0, init=True, seq_lens=True),
        "gru_clip_acts": recurrent("GRU", 3, clip=0.7, acts=["HardSigmoid", "LeakyRelu"], alpha=[0.3, 0.1],
                                   beta=[0.4]),
        "lstm_bidir_lens_peep": recurrent("LSTM", 4, "bidirectional", seq_lens=True, init=True, peep=True),
        "lstm_reverse_lens": recurrent("LSTM", 4, "reverse", seq_lens=True, init=True),
        "lstm_clip": recurrent("LSTM", 4, clip=0.5, init=True),
        "lstm_batch1_seq1": recurrent("LSTM", 4, seq=1, batch=1, isz=8, hs=16, init=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (m, feeds) in cases.items():
            check(name, m, feeds, tmp)
        for name, m, feeds in control_flow():
            check(name, m, feeds, tmp)
        check_quantize(tmp)
    for f in failures:
        print("FAIL", f)
    print(f"rnn/control flow vs ORT: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
