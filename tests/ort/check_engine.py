#!/usr/bin/env python3
"""lowbit's integer engine against ONNX Runtime's integer kernels on the zoo: each model quantized with the
onnxruntime-cpu profile, the exported QDQ file run by ONNX Runtime (graph optimizations on: QLinearConv and
friends) and by `lowered = lowbit.lower(model, "onnxruntime-cpu")` on the same 1000 test images.

Goals (issue 16): top-1 predictions agree on >= 99.9 % of images and the final layer's values are identical on
>= 99 % of elements, against ONNX Runtime with all graph optimizations. The CNNs are held to them. The ViT is not
yet: its LayerNorm, GELU and softmax run as float islands between quantizers, which ONNX Runtime computes with
other kernels (its extended fusions, level 2, change them again: 99.7 % top-1 agreement, 63 % identical values,
against 100 % / 98.7 % at ORT_ENABLE_BASIC); the figures are printed here and tabled in docs/results/deploy.md.
Mutation checked: a float bias rounded down instead of to nearest drops the identical values to 53-81 %. Not
caught here: the multiplier computed as s_x * (s_w / s_y) instead of (s_x * s_w) / s_y (the two float32 products
differ too rarely on these models); tests/unit/test_requantize.cpp covers the primitive's arithmetic.
Usage: check_engine.py LOWBIT_CLI SOURCE_DIR   (PYTHONPATH must hold the build's python/ folder)
"""
import sys

import numpy as np
import onnxruntime as ort

import lowbit

root = sys.argv[2]
failures = []
images = None
for name in ["resnet", "mobilenetv2", "inception", "vit"]:
    model = lowbit.Model.load(f"{root}/models/zoo/{name}.onnx")
    q = lowbit.quantize(model, "fashion-mnist:train", num_samples=500, profile="onnxruntime-cpu", progress=False)
    path = f"{name}.engine.qdq.onnx"
    q.export_qdq(path)
    if images is None:
        src = lowbit.data("fashion-mnist:test", model, batch_size=1000, num_samples=1000)
        images = src.next_batch()[0]["image"]
    lowered, report = lowbit.lower(lowbit.Model.load(path), "onnxruntime-cpu")
    mine = lowbit.Session(lowered).run({"image": images})["logits"]
    for level in ["ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"]:
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        theirs = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"image": images})[0]
        agree = 100.0 * (mine.argmax(1) == theirs.argmax(1)).mean()
        same = 100.0 * (mine == theirs).mean()
        print(f"{name:12s} {level:17s} integer layers {report['integer_layers']:3d}  top-1 agreement {agree:7.3f} %  "
              f"identical final values {same:7.3f} %")
        held = name != "vit" and level == "ORT_ENABLE_ALL"
        if held and (agree < 99.9 or same < 99.0):
            failures.append(f"{name} ({level}): agreement {agree:.3f} %, identical {same:.3f} %")
if failures:
    print("FAIL:", "; ".join(failures))
    sys.exit(1)
print("integer engine agrees with ONNX Runtime")
