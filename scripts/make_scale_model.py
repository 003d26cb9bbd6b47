#!/usr/bin/env python3
"""Writes a generated N-node ONNX graph (default 10,000) for measuring how graph passes and quantization scale:
blocks of MatMul -> Add -> Relu on [batch, 32] with a residual Add every fourth block, random weights.

Usage: make_scale_model.py OUT.onnx [NODES]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out, nodes_wanted = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    rng = np.random.default_rng(0)
    d = 32
    nodes, inits = [], []
    x = "input"
    skip = x
    i = 0
    while len(nodes) + 3 <= nodes_wanted:
        w = numpy_helper.from_array((rng.standard_normal((d, d)) * 0.5 / np.sqrt(d)).astype(np.float32), f"w{i}")
        b = numpy_helper.from_array((rng.standard_normal(d) * 0.01).astype(np.float32), f"b{i}")
        inits += [w, b]
        nodes.append(helper.make_node("MatMul", [x, w.name], [f"mm{i}"], name=f"mm{i}"))
        nodes.append(helper.make_node("Add", [f"mm{i}", b.name], [f"add{i}"], name=f"add{i}"))
        nodes.append(helper.make_node("Relu", [f"add{i}"], [f"relu{i}"], name=f"relu{i}"))
        x = f"relu{i}"
        if i % 4 == 3 and len(nodes) < nodes_wanted:
            nodes.append(helper.make_node("Add", [x, skip], [f"res{i}"], name=f"res{i}"))
            x = skip = f"res{i}"
        i += 1
    g = helper.make_graph(nodes, "scale", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", d])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", d])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.save(m, out)
    print(f"wrote {out}: {len(nodes)} nodes")


if __name__ == "__main__":
    main()
