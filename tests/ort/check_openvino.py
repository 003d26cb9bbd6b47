#!/usr/bin/env python3
"""lowbit's integer engine against OpenVINO on the zoo: each model quantized with the openvino-cpu profile, the
exported QDQ file run by OpenVINO's CPU plugin (inference precision f32: on CPUs with bf16 support OpenVINO's default
is bf16, which changes every float part of the computation) and by `lowbit.lower(model, "openvino-cpu")` on the same
1000 test images.

Goals (issue 16): top-1 predictions agree on >= 99.9 % of images, top-1 accuracy within 0.05 pt, and the final
layer's integer codes identical on >= 99 % of elements. Models listed in KNOWN may miss a goal for the named
arithmetic difference: their figures are printed next to the cause. The test fails if a model not listed misses one.

Before the zoo, the two QDQ patterns OpenVINO runs differently (scripts/openvino_patterns.py) are run again. The
openvino-cpu profile is built to avoid them, so the test fails if a variant the profile relies on (zero point 0,
uint8 tensors) is mis-run. Whether the avoided variants themselves are mis-run depends on the CPU (OpenVINO picks
its kernels at run time: pattern B was mis-run on one AVX-512/AMX machine of this project and ran correctly on
another with the same ISA flags), so that is printed, not asserted; likewise a KNOWN model that meets the goals on
this CPU is printed as such.
Mutations checked: the profile's "bias": "int32" (the bias rounded onto s_x * s_w) drops the ResNet to 80 % and the
Inception to 83 % identical codes; activations "signed": true (int8 ReLU outputs) drops the Inception to 40 % top-1
agreement (pattern B) and the ResNet to 97 % identical codes.
Usage: check_openvino.py SOURCE_DIR   (PYTHONPATH must hold the build's python/ folder)
"""
import pathlib
import sys

import numpy as np
import onnx
from onnx import numpy_helper

try:
    import onnxruntime as ort
    import openvino
except ImportError as e:
    sys.exit(f"check_openvino: {e.name} is not installed (bash scripts/test.sh installs onnxruntime and openvino "
             "into build/ort-venv)")

import lowbit

root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root / "scripts"))
import openvino_patterns  # noqa: E402

KNOWN = {
    "mobilenetv2": "final codes: layers given identical inputs differ from OpenVINO on at most 0.001 % of codes "
                   "(near-ties, at the residual Adds, which OpenVINO computes inside the convolution in its own "
                   "float order), and such one-step flips compound over ten inverted-residual blocks",
    "vit": "LayerNorm, GELU and Softmax are float islands: OpenVINO computes them with its own kernels (MVN, its "
           "GELU, its softmax), other float arithmetic than lowbit's and ONNX Runtime's",
}
failures = []

for pattern, desc, worst, differ in openvino_patterns.run(ort, openvino):
    mis_run = worst > 1.5  # more than the one step a float rounding difference can give
    avoided = pattern == "A" and "zero point 112" in desc and ("keepdims=0" in desc or "axes=[-1]" in desc)
    avoided |= pattern == "B" and desc.startswith("int8") and "MaxPool" in desc
    note = ("mis-run (the profile avoids it)" if mis_run else "not mis-run on this CPU") if avoided else \
        ("MIS-RUN" if mis_run else "run correctly")
    print(f"pattern {pattern}: {desc}: max {worst:.0f} steps, {differ:.2f} % differ: {note}")
    if mis_run and not avoided:
        failures.append(f"pattern {pattern} ({desc}): mis-run, and the openvino-cpu profile relies on it")

probe = lowbit.Model.load(str(root / "models" / "zoo" / "resnet.onnx"))
feeds, labels = lowbit.data("fashion-mnist:test", probe, batch_size=1000).next_batch()
x, labels = feeds["image"], np.array(labels)
core = openvino.Core()
tmp = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ".")
for name in ["resnet", "mobilenetv2", "inception", "vit"]:
    model = lowbit.Model.load(str(root / "models" / "zoo" / (name + ".onnx")))
    q = lowbit.quantize(model, "fashion-mnist:train", profile="openvino-cpu", num_samples=1000, progress=False)
    path = tmp / (name + ".openvino.qdq.onnx")
    q.export_qdq(str(path))
    lowered, report = lowbit.lower(lowbit.Model.load(str(path)), "openvino-cpu")
    mine = lowbit.Session(lowered).run({"image": x})["logits"]
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    theirs = compiled({"image": x})[0]
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    s, z = float(inits["logits/scale"]), int(inits["logits/zero_point"])
    # OpenVINO dequantizes the last codes in its own float order (values within an ulp of lowbit's): compare codes.
    codes = lambda y: np.round(y / s) + z  # noqa: E731
    agree = 100.0 * (mine.argmax(1) == theirs.argmax(1)).mean()
    gap = abs(100.0 * (mine.argmax(1) == labels).mean() - 100.0 * (theirs.argmax(1) == labels).mean())
    same = 100.0 * (codes(mine) == codes(theirs)).mean()
    met = agree >= 99.9 and gap <= 0.05 and same >= 99.0
    print(f"{name:12s} integer layers {report['integer_layers']:3d}  top-1 agreement {agree:7.3f} %  accuracy gap "
          f"{gap:.2f} pt  identical final codes {same:7.3f} %  {'goals met' if met else 'goals not met'}")
    if name in KNOWN:
        print(f"{'':12s} known: {KNOWN[name]}" + (" (meets the goals on this CPU)" if met else ""))
    elif not met:
        failures.append(f"{name}: agreement {agree:.3f} %, accuracy gap {gap:.2f} pt, identical codes {same:.3f} %")

if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("integer engine agrees with OpenVINO where the goals say; known differences named")
