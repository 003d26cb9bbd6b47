#!/usr/bin/env python3
"""The deployment gap on the zoo (MQBench's hardware gap, issue 16), through the Python package: for each model,
FP32 top-1; the academic profile's simulated top-1; for the onnxruntime-cpu profile the simulated, integer-engine
and ONNX Runtime top-1 of the same exported file, and how closely the integer engine and the simulation match
ONNX Runtime (top-1 agreement, identical final values); OpenVINO's top-1 of that file when the openvino package
is importable, with the table of QDQ patterns OpenVINO runs differently (scripts/openvino_patterns.py). Writes
docs/results/deploy.md with the command and commit.

Usage (what scripts/deploy_gap.sh runs): PYTHONPATH=build/python PYTHON scripts/deploy_gap.py [OUT.md]
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

import lowbit

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ["resnet", "mobilenetv2", "vit", "inception"]

try:
    import openvino
    import openvino_patterns
except ImportError:
    openvino = None


def ort_run(path, x, level="ORT_ENABLE_ALL"):
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"image": x[i:i + 1000]})[0] for i in range(0, len(x), 1000)])


def ov_run(path, x, precision=None):
    """OpenVINO's CPU plugin; precision None: its default inference precision (bf16 on CPUs that have it)."""
    core = openvino.Core()
    c = core.compile_model(core.read_model(str(path)), "CPU",
                           {"INFERENCE_PRECISION_HINT": precision} if precision else {})
    return np.concatenate([c(x[i:i + 1000])[0] for i in range(0, len(x), 1000)])


def final_codes(path, y):
    """The final layer's integer codes of outputs y (the logits quantizer of the exported file)."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    return np.round(y / float(inits["logits/scale"])) + int(inits["logits/zero_point"])


def top1(y, labels):
    return 100.0 * (y.argmax(1) == labels).mean()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--render":
        out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "docs" / "results" / "deploy.md")
        d = json.loads(out.with_suffix(".json").read_text())
        render(out, d["rows"], d["meta"])
        return
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "results" / "deploy.md")
    t0 = time.time()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    probe = lowbit.Model.load(str(ROOT / "models" / "zoo" / "resnet.onnx"))
    src = lowbit.data("fashion-mnist:test", probe, batch_size=10000)
    feeds, labels = src.next_batch()
    x, labels = feeds["image"], np.array(labels)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            model = lowbit.Model.load(str(ROOT / "models" / "zoo" / (name + ".onnx")))
            fp32 = top1(lowbit.Session(model).run({"image": x})["logits"], labels)
            acad = lowbit.quantize(model, "fashion-mnist:train", profile="academic", num_samples=1000, progress=False)
            acad_top1 = acad.evaluate({"image": x}, labels=labels, batch_size=1000, progress=False)["top1"]
            q = lowbit.quantize(model, "fashion-mnist:train", profile="onnxruntime-cpu", num_samples=1000,
                                progress=False)
            path = pathlib.Path(tmp) / (name + ".qdq.onnx")
            q.export_qdq(str(path))
            sim = lowbit.Session(lowbit.Model.load(str(path))).run({"image": x})["logits"]
            lowered, rep = lowbit.lower(lowbit.Model.load(str(path)), "onnxruntime-cpu")
            eng = lowbit.Session(lowered).run({"image": x})["logits"]
            rt = ort_run(path, x)
            rt_basic = ort_run(path, x, "ORT_ENABLE_BASIC")
            ov = top1(ov_run(path, x), labels) if openvino else None
            # The openvino-cpu profile's own file (symmetric activations), in lowbit's simulation and in OpenVINO.
            qv = lowbit.quantize(model, "fashion-mnist:train", profile="openvino-cpu", num_samples=1000,
                                 progress=False)
            vpath = pathlib.Path(tmp) / (name + ".openvino.qdq.onnx")
            qv.export_qdq(str(vpath))
            ov_sim = top1(lowbit.Session(lowbit.Model.load(str(vpath))).run({"image": x})["logits"], labels)
            ov_own = top1(ov_run(vpath, x), labels) if openvino else None
            # ... and its integer engine (lowbit.lower with openvino-cpu) next to OpenVINO at f32 precision.
            vlow, vrep = lowbit.lower(lowbit.Model.load(str(vpath)), "openvino-cpu")
            veng = lowbit.Session(vlow).run({"image": x})["logits"]
            ovf = ov_run(vpath, x, "f32") if openvino else None
            ov_cmp = None
            if openvino:
                ov_cmp = dict(eng=top1(veng, labels), ov=top1(ovf, labels), layers=vrep["integer_layers"],
                              agree=100.0 * (veng.argmax(1) == ovf.argmax(1)).mean(),
                              same=100.0 * (final_codes(vpath, veng) == final_codes(vpath, ovf)).mean())
            rows.append(dict(name=name, fp32=fp32, acad=acad_top1, sim=top1(sim, labels), eng=top1(eng, labels),
                             ort=top1(rt, labels), ov=ov, ov_sim=ov_sim, ov_own=ov_own, ov_cmp=ov_cmp,
                             layers=rep["integer_layers"],
                             islands=sum(rep["float_islands"].values()),
                             eng_agree=100.0 * (eng.argmax(1) == rt.argmax(1)).mean(),
                             eng_same=100.0 * (eng == rt).mean(),
                             eng_same_basic=100.0 * (eng == rt_basic).mean(),
                             sim_agree=100.0 * (sim.argmax(1) == rt.argmax(1)).mean(),
                             sim_same=100.0 * (sim == rt).mean()))
            print(rows[-1], file=sys.stderr)
    meta = dict(commit=commit, dirty=bool(dirty), seconds=time.time() - t0, ort=ort.__version__,
                ovv=openvino.__version__ if openvino else None,
                ov_hint=str(openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")) if openvino else "-",
                patterns=openvino_patterns.run(ort, openvino) if openvino else None)
    # Every number first into the JSON next to the table (scripts/deploy_gap.py --render OUT.md re-renders it).
    out.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n")
    render(out, rows, meta)


def render(out, rows, meta):
    commit, dirty, ovv, ov_hint = meta["commit"], meta["dirty"], meta["ovv"], meta["ov_hint"]
    lines = ["# Deployment gap on the zoo", "",
             "Generated by `bash scripts/deploy_gap.sh` at commit %s%s (%.0f s), ONNX Runtime %s%s. Calibration: "
             "1000 seeded Fashion-MNIST training images, min-max ranges; top-1 on the 10,000 test images. The "
             "onnxruntime-cpu profile's QDQ file is evaluated three ways: lowbit's float simulation of the QDQ "
             "file, lowbit's integer engine (`--engine int --profile onnxruntime-cpu`: integer Conv/Gemm/MatMul, "
             "float multiplier, ties to even) and ONNX Runtime (CPU, all graph optimizations, so its QLinear "
             "integer kernels run)."
             % (commit, " with uncommitted changes" if dirty else "", meta["seconds"], meta["ort"],
                ", OpenVINO " + ovv if ovv else " (OpenVINO not installed: its column is empty)"), "",
             "| model | FP32 | academic (sim) | ORT profile: sim | integer engine | ONNX Runtime | OpenVINO | "
             "openvino-cpu profile: sim | openvino-cpu profile: OpenVINO | hardware gap (academic - ORT) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v: "%.2f" % v if v is not None else ""
    for r in rows:
        lines.append("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.2f | %s | %+.2f |" % (
            r["name"], r["fp32"], r["acad"], r["sim"], r["eng"], r["ort"], fmt(r["ov"]), r["ov_sim"],
            fmt(r["ov_own"]), r["acad"] - r["ort"]))
    lines += ["", "How closely each lowbit path matches ONNX Runtime on the same file (top-1 agreement over the "
              "10,000 images; identical final values: the share of logits equal to the bit):", "",
              "| model | integer layers | float-island nodes | engine: top-1 agreement | engine: identical values | "
              "engine vs ORT_ENABLE_BASIC: identical | simulation: top-1 agreement | simulation: identical values |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            r["name"], r["layers"], r["islands"], r["eng_agree"], r["eng_same"], r["eng_same_basic"],
            r["sim_agree"], r["sim_same"]))
    lines += ["", "The OpenVINO column runs the onnxruntime-cpu profile's file (asymmetric uint8 activations), the "
              "last but one the openvino-cpu profile's file (NNCF's CPU preset: symmetric activations, int8 where a "
              "tensor's calibration data go below zero and uint8 with zero point 0 where they do not, "
              "`\"signed\": \"auto\"`). OpenVINO's inference precision on this CPU: %s (its default)." % ov_hint, ""]
    if ovv:
        lines += ["The openvino-cpu profile's file in lowbit's integer engine (`lowbit.lower(model, \"openvino-cpu\")`: "
                  "float bias added to the dequantized accumulator, residual Adds fused into the convolution) next to "
                  "OpenVINO at f32 inference precision (`INFERENCE_PRECISION_HINT: f32`); identical final codes: the "
                  "share of the logits quantizer's codes that are equal (OpenVINO dequantizes them in its own float "
                  "order, so values are compared as codes). Goals (issue 16): top-1 agreement >= 99.9 %, accuracy "
                  "within 0.05 pt, identical final codes >= 99 %. tests/ort/check_openvino.py holds the models to "
                  "them and names why MobileNetV2 and the ViT miss the last one.", "",
                  "| model | integer layers | engine top-1 | OpenVINO f32 top-1 | top-1 agreement | identical final codes |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            c = r["ov_cmp"]
            lines.append("| %s | %d | %.2f | %.2f | %.2f | %.2f |" % (r["name"], c["layers"], c["eng"], c["ov"],
                                                                      c["agree"], c["same"]))
        mbv2 = [r["ov_cmp"]["same"] for r in rows if r["name"] == "mobilenetv2"]
        lines += ["", "MobileNetV2 (%s on this CPU): its layers given identical inputs differ from OpenVINO on at most "
                  "0.001 %% of codes (near-ties at the residual Adds, which OpenVINO computes inside the convolution in "
                  "its own float order), and one-step flips compound over ten inverted-residual blocks: on one "
                  "AVX-512/AMX machine of this project that left 97 %% of the final codes identical, on another 99.7 "
                  "%%. ViT: LayerNorm, GELU and Softmax are float islands that OpenVINO computes with its own kernels."
                  % ("meets the goals" if mbv2 and mbv2[0] >= 99 else "misses the last goal"), ""]
        lines += ["Where OpenVINO departs from the ONNX definitions of QuantizeLinear/DequantizeLinear, found by "
                  "bisecting the zoo's files layer by layer against ONNX Runtime and reproduced on minimal generated "
                  "graphs (scripts/openvino_patterns.py; ONNX Runtime with optimizations off against OpenVINO at f32 "
                  "precision; one step is the output quantizer's scale):", ""]
        lines += openvino_patterns.table(meta["patterns"])
        b_mis = any(p[0] == "B" and p[2] > 1.5 for p in meta["patterns"])
        lines += ["", "Pattern A is the ViT's token mean-pool in the onnxruntime-cpu file (asymmetric uint8 with zero "
                  "point != 0); its wrong values depend on the batch layout, which is why that file gave different "
                  "accuracies at different batch sizes. Pattern B is every Inception block when activations are "
                  "signed int8; whether OpenVINO mis-runs it depends on the CPU (it picks its kernels at run time): "
                  "it did on one AVX-512/AMX machine of this project (the Inception at 40 %% top-1) and %s. The "
                  "openvino-cpu profile avoids both: symmetric activations have zero point 0 (A), and ReLU outputs "
                  "(all of an Inception block's tensors) are unsigned (B)."
                  % ("does on this one" if b_mis else "does not on this one (table above)"), ""]
    ok = [r["name"] for r in rows if r["eng_agree"] >= 99.9 and r["eng_same"] >= 99]
    short = ["%s (%.2f / %.2f)" % (r["name"], r["eng_agree"], r["eng_same"]) for r in rows if r["name"] not in ok]
    lines += ["", "Goals (issue 16): top-1 agreement >= 99.9 % and identical final values >= 99 % for the integer "
              "engine against ONNX Runtime. Met: " + (", ".join(ok) or "none") + ". Not met: " +
              (", ".join(short) or "none") + ". tests/ort/check_engine.py holds every zoo model to them.", ""]
    out.write_text("\n".join(lines))
    print("wrote", out, file=sys.stderr)


if __name__ == "__main__":
    main()
