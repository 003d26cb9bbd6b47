#!/usr/bin/python3
"""Writes the deliberately bad files the CLI tests use (run once with Debian's python3-onnx; outputs committed).

unknown_ops.onnx     two op types lowbit does not know, each used twice
cycle.onnx           two nodes that read each other's output
external_missing.onnx  an initializer whose external data file does not exist
wrong_shape.npy / wrong_dtype.npy  inputs that do not fit models/fashion_cnn.onnx
five_labels.npy      5 labels (models/fashion_sample.npy has 16 images)
convtranspose.onnx / convtranspose_data.npy  a ConvTranspose (which AdaRound skips) before a Conv, with data
symbolic_spatial.onnx  a Relu on x[N, 3, H, W]: `lowbit bench` needs --shape for it
"""
import os
import numpy as np
import onnx
from onnx import helper, TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="lowbit-tests")
    onnx.save(model, os.path.join(HERE, name))


x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
save(helper.make_graph([
    helper.make_node("Relu", ["x"], ["a"], name="relu"),
    helper.make_node("Frobnicate", ["a"], ["b"], name="frob1"),
    helper.make_node("Frobnicate", ["b"], ["c"], name="frob2"),
    helper.make_node("Wibble", ["c"], ["d"], name="wibble1"),
    helper.make_node("Wibble", ["d"], ["y"], name="wibble2"),
], "unknown_ops", [x], [y]), "unknown_ops.onnx")

save(helper.make_graph([
    helper.make_node("Add", ["x", "q"], ["p"], name="add_p"),
    helper.make_node("Relu", ["p"], ["q"], name="relu_q"),
    helper.make_node("Identity", ["q"], ["y"], name="out"),
], "cycle", [x], [y]), "cycle.onnx")

w = TensorProto()
w.name = "w"
w.data_type = TensorProto.FLOAT
w.dims.extend([2, 3])
w.data_location = TensorProto.EXTERNAL
for k, v in (("location", "weights_that_do_not_exist.bin"), ("offset", "0"), ("length", "24")):
    e = w.external_data.add()
    e.key, e.value = k, v
save(helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "external", [x], [y], [w]),
     "external_missing.onnx")

np.save(os.path.join(HERE, "wrong_shape.npy"), np.zeros((1, 1, 27, 28), np.float32))
np.save(os.path.join(HERE, "wrong_dtype.npy"), np.zeros((1, 1, 28, 28), np.float64))
np.save(os.path.join(HERE, "five_labels.npy"), np.arange(5, dtype=np.int64))

# A layer AdaRound cannot handle (ConvTranspose) before one it can, with calibration data.
rng = np.random.default_rng(0)
xt = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 4, 4])
yt = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 6, 6])
wt = helper.make_tensor("wt", TensorProto.FLOAT, [1, 2, 3, 3], rng.standard_normal(18).astype(np.float32).tolist())
wc = helper.make_tensor("wc", TensorProto.FLOAT, [2, 2, 3, 3], rng.standard_normal(36).astype(np.float32).tolist())
save(helper.make_graph([
    helper.make_node("ConvTranspose", ["x", "wt"], ["u"], name="up"),
    helper.make_node("Relu", ["u"], ["r"], name="relu"),
    helper.make_node("Conv", ["r", "wc"], ["y"], name="conv", pads=[1, 1, 1, 1]),
], "convtranspose", [xt], [yt], [wt, wc]), "convtranspose.onnx")
np.save(os.path.join(HERE, "convtranspose_data.npy"), rng.standard_normal((8, 1, 4, 4)).astype(np.float32))

xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
ys = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "symbolic", [xs], [ys]),
     "symbolic_spatial.onnx")
