#!/usr/bin/python3
"""Writes the malformed-model corpus: one small ONNX file per class of hostile input, with the inputs to feed it.

Usage: make_corpus.py OUTDIR

Every case is a model that a careless loader or kernel would crash on, hang on, or read outside its folder for.
OUTDIR/cases.json lists them: name, class, the stage that must refuse it ("load": `lowbit info` already fails;
"run": the file is well-formed ONNX and the error comes when it runs), and a regular expression the one-line
error must match (so a case cannot pass by failing for an unrelated reason). tests/hostile/run_corpus.py runs
them through the CLI. Generated with Debian's python3-onnx; nothing here is checked by ONNX.
"""
import json
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
CASES = []
F, I64, I32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
BIG = 1 << 62
INT64_MIN = -(1 << 63)
# What a refused huge shape says: an int64 overflow, or a tensor over the memory budget.
OVER = "int64|overflow|memory budget"


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def case(name, klass, stage, expect, nodes, inputs=(), inits=(), outputs=None, opset=13, feeds=None):
    """inputs: (name, elem_type, declared shape); feeds: name -> array written to NAME.npz for `lowbit run`."""
    ins = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    outs = outputs or [helper.make_tensor_value_info(nodes[-1].output[0], F, None)]
    graph = helper.make_graph(nodes, name, ins, outs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lowbit-hostile")
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())
    calib = False
    if feeds:
        np.savez(os.path.join(OUT, name + ".npz"), **feeds)
        (arr,) = feeds.values() if len(feeds) == 1 else (None,)
        # Calibration data for `lowbit quantize`: the single float input with its batch axis of 1.
        if arr is not None and arr.dtype == np.float32 and arr.ndim >= 2 and arr.shape[0] == 1:
            np.save(os.path.join(OUT, name + ".calib.npy"), arr)
            calib = True
    CASES.append({"name": name, "class": klass, "stage": stage, "expect": expect, "feeds": bool(feeds),
                  "calib": calib})


def x(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


X4 = [("x", F, [1, 1, 5, 5])]
FEED4 = {"x": x([1, 1, 5, 5])}
W33 = init("w", x([1, 1, 3, 3]))
node = helper.make_node

# -- conv/pool attributes that crash shape inference (libonnx convPoolShapeInference) --
case("conv_strides_zero", "shape-inference", "load", "strides",
     [node("Conv", ["x", "w"], ["y"], name="conv", strides=[0, 0])], X4, [W33], feeds=FEED4)
case("conv_kernel_rank_mismatch", "shape-inference", "load", "rank",
     [node("Conv", ["x", "w"], ["y"], name="conv")], X4, [init("w", x([1, 1, 3]))], feeds=FEED4)
case("conv_kernel_shape_rank_mismatch", "shape-inference", "load", "kernel_shape",
     [node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3])], X4, [W33], feeds=FEED4)
case("conv_same_upper_stride_zero", "shape-inference", "load", "strides",
     [node("Conv", ["x", "w"], ["y"], name="conv", auto_pad="SAME_UPPER", strides=[0, 0])], X4, [W33], feeds=FEED4)
case("conv_input_rank2", "shape-inference", "load", "rank",
     [node("Conv", ["x", "w"], ["y"], name="conv")], [("x", F, [5, 5])], [W33], feeds={"x": x([5, 5])})
case("conv_rank_mismatch_behind_relu", "shape-inference", "load", "rank",
     [node("Relu", ["x"], ["r"], name="relu"), node("Conv", ["r", "w"], ["y"], name="conv")],
     X4, [init("w", x([1, 1, 3]))], feeds=FEED4)
case("maxpool_strides_zero", "shape-inference", "load", "strides",
     [node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[0, 0])], X4, feeds=FEED4)
case("maxpool_kernel_rank_mismatch", "shape-inference", "load", "kernel_shape",
     [node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2])], X4, feeds=FEED4)
case("averagepool_kernel_zero", "shape-inference", "load", "kernel_shape",
     [node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[0, 0])], X4, feeds=FEED4)
case("conv_dilations_huge", "overflow", "run", "dilated kernel.*overflows",
     [node("Conv", ["x", "w"], ["y"], name="conv", dilations=[BIG, BIG])], X4, [W33], feeds=FEED4)
case("conv_pads_negative", "shape-inference", "load", "pads",
     [node("Conv", ["x", "w"], ["y"], name="conv", pads=[-3, -3, -3, -3])], X4, [W33], feeds=FEED4)

# -- divisions by zero in attributes --
case("convtranspose_group_zero", "division", "load", "group",
     [node("ConvTranspose", ["x", "w"], ["y"], name="deconv", group=0)], X4, [W33], feeds=FEED4)
case("conv_group_zero", "division", "load", "group",
     [node("Conv", ["x", "w"], ["y"], name="conv", group=0)], X4, [W33], feeds=FEED4)
case("convtranspose_output_shape_huge", "overflow", "run", OVER,
     [node("ConvTranspose", ["x", "w"], ["y"], name="deconv", output_shape=[BIG, BIG])], X4, [W33], feeds=FEED4)
for op in ("DepthToSpace", "SpaceToDepth"):
    for label, bs in (("zero", 0), ("negative", -2), ("huge", BIG)):
        case(f"{op.lower()}_blocksize_{label}", "division" if bs == 0 else "overflow", "load", "blocksize",
             [node(op, ["x"], ["y"], name="d2s", blocksize=bs)], X4, feeds=FEED4)

# -- integer arithmetic traps --
case("int_div_by_zero", "division", "run", "division by zero",
     [node("Div", ["a", "b"], ["y"], name="div")], [("a", I32, [2]), ("b", I32, [2])],
     outputs=[helper.make_tensor_value_info("y", I32, [2])],
     feeds={"a": np.array([1, 2], np.int32), "b": np.array([1, 0], np.int32)})
case("int_min_div_minus_one", "division", "run", "overflow",
     [node("Div", ["a", "b"], ["y"], name="div")], [("a", I32, [1]), ("b", I32, [1])],
     outputs=[helper.make_tensor_value_info("y", I32, [1])],
     feeds={"a": np.array([-2**31], np.int32), "b": np.array([-1], np.int32)})
case("int_mod_by_zero", "division", "run", "modulo by zero",
     [node("Mod", ["a", "b"], ["y"], name="mod")], [("a", I64, [1]), ("b", I64, [1])],
     outputs=[helper.make_tensor_value_info("y", I64, [1])],
     feeds={"a": np.array([5], np.int64), "b": np.array([0], np.int64)})

# -- shape arithmetic that overflows int64 or asks for absurd memory --
X1 = [("x", F, [1])]
FEED1 = {"x": x([1])}
case("reshape_overflow", "overflow", "load", OVER,
     [node("Reshape", ["x", "s"], ["y"], name="reshape")], X1, [init("s", np.array([BIG, 8], np.int64))], feeds=FEED1)
case("expand_huge", "overflow", "load", OVER,
     [node("Expand", ["x", "s"], ["y"], name="expand")], X1,
     [init("s", np.array([1 << 31, 1 << 31, 4], np.int64))], feeds=FEED1)
# The same shapes fed at run time (not constants the validator sees): the kernels' own checks must refuse them.
S_IN = [("x", F, [1]), ("s", I64, [2])]
case("reshape_overflow_fed", "overflow", "run", OVER, [node("Reshape", ["x", "s"], ["y"], name="reshape")], S_IN,
     feeds={"x": x([1]), "s": np.array([BIG, 8], np.int64)})
case("expand_huge_fed", "overflow", "run", OVER, [node("Expand", ["x", "s"], ["y"], name="expand")],
     [("x", F, [1]), ("s", I64, [3])], feeds={"x": x([1]), "s": np.array([1 << 31, 1 << 31, 4], np.int64)})
case("constantofshape_huge_fed", "overflow", "run", OVER, [node("ConstantOfShape", ["s"], ["y"], name="cos")],
     [("s", I64, [2])], feeds={"s": np.array([1 << 40, 1 << 40], np.int64)})
case("constantofshape_negative_fed", "overflow", "run", "negative", [node("ConstantOfShape", ["s"], ["y"], name="cos")],
     [("s", I64, [1])], feeds={"s": np.array([-4], np.int64)})
case("tile_huge", "overflow", "run", OVER,
     [node("Tile", ["x", "r"], ["y"], name="tile")], X1, [init("r", np.array([BIG], np.int64))], feeds=FEED1)
case("pad_huge", "overflow", "run", OVER,
     [node("Pad", ["x", "p"], ["y"], name="pad")], X1, [init("p", np.array([BIG, BIG], np.int64))], feeds=FEED1)
case("resize_huge", "overflow", "run", OVER,
     [node("Resize", ["x", "", "sc"], ["y"], name="resize")], X4,
     [init("sc", np.array([1, 1, 1e30, 1e30], np.float32))], feeds=FEED4)
case("constantofshape_huge", "overflow", "load", OVER,
     [node("ConstantOfShape", ["s"], ["y"], name="cos")], [], [init("s", np.array([1 << 40, 1 << 40], np.int64))])
case("constantofshape_negative", "overflow", "load", "entry -4",
     [node("ConstantOfShape", ["s"], ["y"], name="cos")], [], [init("s", np.array([-4], np.int64))])
case("range_huge", "overflow", "run", OVER,
     [node("Range", ["a", "b", "c"], ["y"], name="range")], [],
     [init("a", np.array(0, np.int64)), init("b", np.array(BIG, np.int64)), init("c", np.array(1, np.int64))],
     outputs=[helper.make_tensor_value_info("y", I64, None)])
case("range_delta_zero", "division", "run", "delta is 0",
     [node("Range", ["a", "b", "c"], ["y"], name="range")], [],
     [init("a", np.array(0, np.int64)), init("b", np.array(5, np.int64)), init("c", np.array(0, np.int64))],
     outputs=[helper.make_tensor_value_info("y", I64, None)])
case("onehot_depth_huge", "overflow", "run", OVER,
     [node("OneHot", ["i", "d", "v"], ["y"], name="onehot")], [],
     [init("i", np.array([0, 1], np.int64)), init("d", np.array(BIG, np.int64)), init("v", np.array([0, 1], np.float32))])
# A step of INT64_MIN is legal ONNX (it selects one element); it must not overflow the slice arithmetic.
case("slice_step_int64_min", "overflow", "ok", "",
     [node("Slice", ["x", "s", "e", "a", "st"], ["y"], name="slice")], [("x", F, [4])],
     [init("s", np.array([3], np.int64)), init("e", np.array([INT64_MIN], np.int64)),
      init("a", np.array([0], np.int64)), init("st", np.array([INT64_MIN], np.int64))], feeds={"x": x([4])})
case("split_sizes_do_not_sum", "overflow", "run", "split",
     [node("Split", ["x", "sp"], ["y1", "y2"], name="split")], [("x", F, [6])],
     [init("sp", np.array([2, 2], np.int64))],
     outputs=[helper.make_tensor_value_info("y1", F, None), helper.make_tensor_value_info("y2", F, None)],
     feeds={"x": x([6])})
case("split_negative_size", "overflow", "run", "split",
     [node("Split", ["x", "sp"], ["y1", "y2"], name="split")], [("x", F, [6])],
     [init("sp", np.array([8, -2], np.int64))],
     outputs=[helper.make_tensor_value_info("y1", F, None), helper.make_tensor_value_info("y2", F, None)],
     feeds={"x": x([6])})
case("scatterelements_mismatch", "overflow", "run", "updates|indices|shape",
     [node("ScatterElements", ["x", "i", "u"], ["y"], name="scatter")], [("x", F, [3, 3])],
     [init("i", np.array([[0, 1, 2], [2, 1, 0]], np.int64)), init("u", np.array([[5.0]], np.float32))],
     feeds={"x": x([3, 3])})
case("gather_index_out_of_range", "overflow", "run", "index|indices",
     [node("Gather", ["x", "i"], ["y"], name="gather")], [("x", F, [3])], [init("i", np.array([7], np.int64))],
     feeds={"x": x([3])})
case("input_shape_disagrees", "overflow", "run", "shape",
     [node("Relu", ["x"], ["y"], name="relu")], [("x", F, [2, 3])], feeds={"x": x([4, 5])})

# -- inputs that disagree with each other (each kernel must check what it indexes) --
X23 = [("x", F, [2, 3])]
FEED23 = {"x": x([2, 3])}
case("transpose_perm_duplicate", "overflow", "run", "perm",
     [node("Transpose", ["x"], ["y"], name="transpose", perm=[0, 0])], X23, feeds=FEED23)
case("reshape_two_unknown_dims", "overflow", "run", "-1",
     [node("Reshape", ["x", "s"], ["y"], name="reshape")], X23, [init("s", np.array([-1, -1], np.int64))], feeds=FEED23)
case("unsqueeze_duplicate_axes", "overflow", "run", "axes|axis",
     [node("Unsqueeze", ["x", "a"], ["y"], name="unsqueeze")], X23, [init("a", np.array([0, 0], np.int64))], feeds=FEED23)
case("squeeze_non_unit_axis", "overflow", "run", "squeeze|axis",
     [node("Squeeze", ["x", "a"], ["y"], name="squeeze")], X23, [init("a", np.array([1], np.int64))], feeds=FEED23)
case("matmul_inner_mismatch", "overflow", "run", "matmul|shape|inner|dimension",
     [node("MatMul", ["x", "w"], ["y"], name="matmul")], X23, [init("w", x([4, 5]))], feeds=FEED23)
case("gemm_inner_mismatch", "overflow", "run", "gemm|shape|inner|dimension",
     [node("Gemm", ["x", "w"], ["y"], name="gemm")], X23, [init("w", x([4, 5]))], feeds=FEED23)
case("conv_channel_mismatch", "overflow", "run", "channel",
     [node("Conv", ["x", "w"], ["y"], name="conv")], X4, [init("w", x([1, 3, 3, 3]))], feeds=FEED4)
case("conv_bias_length_mismatch", "overflow", "run", "bias",
     [node("Conv", ["x", "w", "b"], ["y"], name="conv")], X4, [W33, init("b", x([7]))], feeds=FEED4)
case("batchnorm_param_length_mismatch", "overflow", "run", "scale|mean|var|channel|bias",
     [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")], X4,
     [init("s", x([3])), init("b", x([1])), init("m", x([1])), init("v", x([1]))], feeds=FEED4)
case("layernorm_scale_mismatch", "overflow", "run", "scale|shape",
     [node("LayerNormalization", ["x", "s"], ["y"], name="ln", axis=-1)], X23, [init("s", x([5]))], opset=17,
     feeds=FEED23)
case("quantizelinear_axis_scales_mismatch", "overflow", "run", "scale",
     [node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q", axis=1)], X23,
     [init("s", np.array([0.1, 0.2], np.float32)), init("z", np.array([0, 0], np.uint8))],
     outputs=[helper.make_tensor_value_info("y", TensorProto.UINT8, None)], feeds=FEED23)
case("where_shapes_do_not_broadcast", "overflow", "run", "broadcast",
     [node("Where", ["c", "x", "w"], ["y"], name="where")], X23,
     [init("c", np.array([True, False], np.bool_)), init("w", x([4]))], feeds=FEED23)
case("topk_k_negative", "overflow", "run", "k",
     [node("TopK", ["x", "k"], ["y", "yi"], name="topk")], X23, [init("k", np.array([-1], np.int64))],
     outputs=[helper.make_tensor_value_info("y", F, None), helper.make_tensor_value_info("yi", I64, None)],
     feeds=FEED23)
case("depthtospace_channels_not_divisible", "overflow", "run", "blocksize|channel|divis",
     [node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=2)], X4, feeds=FEED4)
case("gathernd_index_too_long", "overflow", "run", "indices|index",
     [node("GatherND", ["x", "i"], ["y"], name="gathernd")], X23, [init("i", np.array([[0, 1, 2]], np.int64))],
     feeds=FEED23)
case("resize_sizes_negative", "overflow", "load", "entry -5",
     [node("Resize", ["x", "", "", "sz"], ["y"], name="resize")], X4,
     [init("sz", np.array([1, 1, -5, 5], np.int64))], feeds=FEED4)
case("expand_shape_incompatible", "overflow", "run", "broadcast",
     [node("Expand", ["x", "s"], ["y"], name="expand")], X23, [init("s", np.array([4, 4], np.int64))], feeds=FEED23)

# -- axis-taking ops on a scalar --
SC = [("x", F, [])]
FEEDS = {"x": np.array(1.0, np.float32)}
for op, extra_in, extra_init, attrs in (
        ("Softmax", [], [], {}), ("LogSoftmax", [], [], {}), ("Hardmax", [], [], {}), ("ArgMax", [], [], {}),
        ("Concat", [], [], {"axis": 0}), ("TopK", ["k"], [init("k", np.array([1], np.int64))], {}),
        ("CumSum", ["ax"], [init("ax", np.array(0, np.int64))], {}),
        ("Gather", ["i"], [init("i", np.array([0], np.int64))], {})):
    outs = [helper.make_tensor_value_info("y", F, None)]
    outputs = ["y"] + (["yi"] if op == "TopK" else [])
    if op == "TopK":
        outs.append(helper.make_tensor_value_info("yi", I64, None))
    if op == "ArgMax":
        outs = [helper.make_tensor_value_info("y", I64, None)]
    case(f"{op.lower()}_on_scalar", "null-deref", "run", "scalar|rank|axis",
         [node(op, ["x"] + extra_in, outputs, name=op.lower(), **attrs)], SC, extra_init, outputs=outs, feeds=FEEDS)

# -- zero-size tensors next to huge dimensions must finish at once --
EMPTY = init("s", np.array([1 << 40, 0], np.int64))
EMPTY4 = init("s", np.array([1 << 40, 1, 0, 4], np.int64))
for op, ins, extra, attrs, shape in (
        ("Softmax", [], [], {}, EMPTY), ("LogSoftmax", [], [], {}, EMPTY), ("Hardmax", [], [], {}, EMPTY),
        ("CumSum", ["ax"], [init("ax", np.array(1, np.int64))], {}, EMPTY),
        ("TopK", ["k"], [init("k", np.array([0], np.int64))], {"axis": 1}, EMPTY),
        ("ReduceSum", [], [], {"axes": [1], "keepdims": 1}, EMPTY),
        ("MaxPool", [], [], {"kernel_shape": [1, 1]}, EMPTY4),
        ("AveragePool", [], [], {"kernel_shape": [1, 1]}, EMPTY4),
        ("Transpose", [], [], {"perm": [1, 0]}, EMPTY),
        ("Slice", ["st", "en"], [init("st", np.array([0], np.int64)), init("en", np.array([1 << 40], np.int64))], {}, EMPTY),
        ("Gather", ["gi"], [init("gi", np.array([0, 1], np.int64))], {"axis": 0}, EMPTY),
        ("Tile", ["rp"], [init("rp", np.array([2, 1], np.int64))], {}, EMPTY),
        ("Pad", ["pp"], [init("pp", np.array([1, 0, 1, 0], np.int64))], {}, EMPTY),
        ("Expand", ["es"], [init("es", np.array([1, 1], np.int64))], {}, EMPTY),
        ("Resize", ["", "rs"], [init("rs", np.array([2.0, 1.0], np.float32))], {}, EMPTY)):
    outputs = ["y"] + (["yi"] if op == "TopK" else [])
    outs = [helper.make_tensor_value_info(o, F if o == "y" else I64, None) for o in outputs]
    # The inputs are empty, so a correct kernel returns at once; the expectation is success (exit 0) in time.
    case(f"{op.lower()}_empty_huge", "hang", "ok", "", [node("ConstantOfShape", ["s"], ["z"], name="cos"),
                                                       node(op, ["z"] + ins, outputs, name=op.lower(), **attrs)],
         [], [shape] + extra, outputs=outs)

# -- tiny files that declare huge tensors; attributes of the wrong type --
huge = TensorProto(name="w", data_type=F, dims=[1 << 20, 1 << 20])
case("initializer_huge_without_data", "allocation", "load", "initializer 'w'",
     [node("Relu", ["w"], ["y"], name="relu")], [], [huge])
huge_raw = TensorProto(name="w", data_type=F, dims=[1 << 40], raw_data=b"\0" * 16)
case("initializer_huge_raw_short", "allocation", "load", "initializer 'w'",
     [node("Relu", ["w"], ["y"], name="relu")], [], [huge_raw])
case("constant_value_huge", "allocation", "load", "value",
     [node("Constant", [], ["y"], name="const", value=TensorProto(name="v", data_type=F, dims=[1 << 22, 1 << 22]))], [])
bad_attr = node("Conv", ["x", "w"], ["y"], name="conv")
bad_attr.attribute.append(helper.make_attribute("strides", 1.5))
case("attribute_wrong_type_strides", "attribute", "load", "strides", [bad_attr], X4, [W33], feeds=FEED4)
bad_axis = node("Softmax", ["x"], ["y"], name="softmax")
bad_axis.attribute.append(helper.make_attribute("axis", "one"))
case("attribute_wrong_type_axis", "attribute", "load", "axis", [bad_axis], X4, feeds=FEED4)
bad_group = node("Conv", ["x", "w"], ["y"], name="conv")
bad_group.attribute.append(helper.make_attribute("group", [1, 2]))
case("attribute_wrong_type_group", "attribute", "load", "group", [bad_group], X4, [W33], feeds=FEED4)

# -- external data that points outside the model's folder --
def external_case(name, location, expect):
    t = TensorProto(name="w", data_type=F, dims=[4], data_location=TensorProto.EXTERNAL)
    e = t.external_data.add()
    e.key, e.value = "location", location
    case(name, "external-data", "load", expect, [node("Relu", ["w"], ["y"], name="relu")], [], [t])


external_case("external_parent_dir", "../secret.bin", "inside the model's folder")
external_case("external_absolute", "/etc/passwd", "inside the model's folder")
external_case("external_symlink_file", "link_to_file.bin", "outside the model's folder")
external_case("external_symlink_dir", "link_to_dir/passwd", "outside the model's folder")
external_case("external_fifo", "fifo.bin", "not a regular file")
outside = os.path.join(os.path.dirname(os.path.abspath(OUT)), os.path.basename(os.path.abspath(OUT)) + "_outside")
os.makedirs(outside, exist_ok=True)
with open(os.path.join(outside, "passwd"), "wb") as f:
    f.write(b"SECRETSECRETSECR")  # 16 bytes: exactly 4 floats, so only the folder check can refuse it
for link, target in (("link_to_file.bin", os.path.join(outside, "passwd")), ("link_to_dir", outside)):
    p = os.path.join(OUT, link)
    if os.path.lexists(p):
        os.remove(p)
    os.symlink(target, p)
fifo = os.path.join(OUT, "fifo.bin")
if not os.path.exists(fifo):
    os.mkfifo(fifo)

# -- data files (NumPy) whose headers lie: fed to the bundled model by `lowbit run --input` and `quantize --data` --
def npy_file(name, shape, payload=b"", descr="<f4", expect="header"):
    import struct
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
    with open(os.path.join(OUT, name + ".npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + payload)
    CASES.append({"name": name, "class": "data-file", "stage": "data", "expect": expect, "feeds": False,
                  "calib": False})


npy_file("npy_shape_overflow_empty", (1 << 32, 1 << 32, 0), expect=OVER)
npy_file("npy_shape_overflow", (1 << 32, 1 << 32), b"\0" * 16, expect=OVER)
npy_file("npy_negative_dim", (-1, 4), b"\0" * 16, expect="shape")
npy_file("npy_huge_dim", (1 << 62, 4), b"\0" * 16, expect="too large|int64|size")
npy_file("npy_short_data", (16, 1, 28, 28), b"\0" * 64, expect="bytes|size")
npy_file("npy_bad_descr", (1, 1, 28, 28), b"\0" * 784 * 4, descr="<c8", expect="dtype|descr|type")

with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(CASES, f, indent=1)
print(f"wrote {len(CASES)} cases to {OUT}")
