#!/usr/bin/env python3
"""Generates the 224x224 speed-benchmark networks as ONNX with random weights (speed does not depend on the
values): ResNet-18, MobileNetV2 (width 1.0) and a ViT-Tiny-like transformer (patch 16, dim 192, 12 blocks, 3
heads), in the form PyTorch's exporter gives them for inference (BatchNorm folded into Conv, ReLU6 as Clip, GELU
through Erf, LayerNormalization at opset 17).

Usage: make_speed_models.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


class Net:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="c"):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def op(self, t, ins, **attrs):
        out = self.name(t.lower() + "_")
        self.nodes.append(helper.make_node(t, ins, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, s=1, g=1, act=None):
        fan = cin // g * k * k
        w = self.const((rng.standard_normal((cout, cin // g, k, k)) * np.sqrt(2.0 / fan)).astype(np.float32), "w")
        b = self.const((rng.standard_normal(cout) * 0.01).astype(np.float32), "b")
        y = self.op("Conv", [x, w, b], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=g)
        if act == "relu":
            y = self.op("Relu", [y])
        elif act == "relu6":
            y = self.op("Clip", [y, self.const(np.float32(0)), self.const(np.float32(6))])
        return y

    def linear(self, x, din, dout):
        w = self.const((rng.standard_normal((din, dout)) / np.sqrt(din)).astype(np.float32), "w")
        b = self.const((rng.standard_normal(dout) * 0.01).astype(np.float32), "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def model(self, x_shape, out, name):
        g = helper.make_graph(self.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 1000])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def resnet18():
    n = Net()
    x = n.conv("input", 3, 64, 7, 2, act="relu")
    x = n.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for blk in range(2):
            s = stride if blk == 0 else 1
            y = n.conv(x, cin, cout, 3, s, act="relu")
            y = n.conv(y, cout, cout, 3)
            sc = n.conv(x, cin, cout, 1, s) if (s != 1 or cin != cout) else x
            x = n.op("Relu", [n.op("Add", [y, sc])])
            cin = cout
    x = n.op("Flatten", [n.op("GlobalAveragePool", [x])], axis=1)
    w = n.const((rng.standard_normal((1000, 512)) * 0.03).astype(np.float32), "w")
    b = n.const(np.zeros(1000, np.float32), "b")
    y = n.op("Gemm", [x, w, b], transB=1)
    return n.model(["batch", 3, 224, 224], y, "resnet18")


def mobilenetv2():
    n = Net()
    x = n.conv("input", 3, 32, 3, 2, act="relu6")
    cin = 32
    for t, c, reps, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                          (6, 320, 1, 1)]:
        for i in range(reps):
            stride = s if i == 0 else 1
            hid = cin * t
            y = n.conv(x, cin, hid, 1, act="relu6") if t != 1 else x
            y = n.conv(y, hid, hid, 3, stride, g=hid, act="relu6")
            y = n.conv(y, hid, c, 1)
            x = n.op("Add", [x, y]) if (stride == 1 and cin == c) else y
            cin = c
    x = n.conv(x, cin, 1280, 1, act="relu6")
    x = n.op("Flatten", [n.op("GlobalAveragePool", [x])], axis=1)
    w = n.const((rng.standard_normal((1000, 1280)) * 0.03).astype(np.float32), "w")
    b = n.const(np.zeros(1000, np.float32), "b")
    return n.model(["batch", 3, 224, 224], n.op("Gemm", [x, w, b], transB=1), "mobilenetv2")


def vit_tiny(dim=192, depth=12, heads=3, mlp=768, patch=16):
    n = Net()
    tokens = (224 // patch) ** 2
    w = n.const((rng.standard_normal((dim, 3, patch, patch)) * 0.02).astype(np.float32), "w")
    x = n.op("Conv", ["input", w, n.const(np.zeros(dim, np.float32))], kernel_shape=[patch, patch],
             strides=[patch, patch])
    x = n.op("Transpose", [n.op("Reshape", [x, n.const(np.array([0, dim, tokens], np.int64))])], perm=[0, 2, 1])
    # class token: broadcast a [1, 1, dim] parameter over the batch, as the exporter does with Expand
    cls = n.const((rng.standard_normal((1, 1, dim)) * 0.02).astype(np.float32), "cls")
    shape = n.op("Concat", [n.op("Slice", [n.op("Shape", [x]), n.const(np.array([0], np.int64)),
                                           n.const(np.array([1], np.int64))]),
                            n.const(np.array([1, dim], np.int64))], axis=0)
    x = n.op("Concat", [n.op("Expand", [cls, shape]), x], axis=1)
    x = n.op("Add", [x, n.const((rng.standard_normal((1, tokens + 1, dim)) * 0.02).astype(np.float32), "pos")])
    hd = dim // heads

    def ln(v):
        return n.op("LayerNormalization", [v, n.const(np.ones(dim, np.float32)), n.const(np.zeros(dim, np.float32))],
                    axis=-1, epsilon=1e-6)

    for _ in range(depth):
        h = ln(x)
        qkv = n.linear(h, dim, 3 * dim)
        qkv = n.op("Transpose", [n.op("Reshape", [qkv, n.const(np.array([0, -1, 3, heads, hd], np.int64))])],
                   perm=[2, 0, 3, 1, 4])
        q, k, v = (n.op("Gather", [qkv, n.const(np.array(i, np.int64))], axis=0) for i in range(3))
        att = n.op("MatMul", [q, n.op("Transpose", [k], perm=[0, 1, 3, 2])])
        att = n.op("Softmax", [n.op("Mul", [att, n.const(np.float32(hd ** -0.5))])], axis=-1)
        o = n.op("Transpose", [n.op("MatMul", [att, v])], perm=[0, 2, 1, 3])
        o = n.op("Reshape", [o, n.const(np.array([0, -1, dim], np.int64))])
        x = n.op("Add", [x, n.linear(o, dim, dim)])
        h = n.linear(ln(x), dim, mlp)
        gelu = n.op("Mul", [n.op("Mul", [h, n.op("Add", [n.op("Erf", [n.op("Div", [h, n.const(np.float32(np.sqrt(2)))])]),
                                                        n.const(np.float32(1))])]), n.const(np.float32(0.5))])
        x = n.op("Add", [x, n.linear(gelu, mlp, dim)])
    x = n.op("Gather", [ln(x), n.const(np.array(0, np.int64))], axis=1)
    w = n.const((rng.standard_normal((1000, dim)) * 0.03).astype(np.float32), "w")
    b = n.const(np.zeros(1000, np.float32), "b")
    return n.model(["batch", 3, 224, 224], n.op("Gemm", [x, w, b], transB=1), "vit_tiny")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, fn in [("resnet18_224", resnet18), ("mobilenetv2_224", mobilenetv2), ("vit_tiny_224", vit_tiny)]:
        path = os.path.join(out, name + ".onnx")
        onnx.save(fn(), path)
        print("wrote", path)


if __name__ == "__main__":
    main()
