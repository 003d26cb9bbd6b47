#!/usr/bin/env python3
"""Quantizes every zoo model (and the bundled CNN) in several configurations and writes docs/results/quantization.md
and docs/results/quantization.json. Run with the venv that has onnxruntime (scripts/test.sh creates it):
    build/ort-venv/bin/python scripts/quant_results.py
Per model: FP32 top-1; W8A8 (default config: per-channel int8 weights, uint8 activations, min-max, 1000 calibration
images from the training set) in lowbit and in ONNX Runtime; W8A8 with KL (entropy) activation ranges; W8A8 with per-tensor weights; W4A8 per-channel with
min-max and with MSE weight ranges. Accuracies are on the 10,000 Fashion-MNIST test images.
"""
import gzip, json, os, struct, subprocess, sys, tempfile
import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWBIT = os.path.join(ROOT, "build", "bin", "lowbit")
DATA = "/usr/share/datasets/fashion-mnist"
CONFIGS = [("W8A8", []), ("W8A8 KL", ["--range", "kl"]), ("W8A8 per-tensor", ["--per-tensor"]), ("W4A8 min-max", ["--weights", "w4"]),
           ("W4A8 MSE", ["--weights", "w4", "--weight-range", "mse"])]


def lowbit(*args):
    r = subprocess.run([LOWBIT, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lowbit {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def top1(model):
    return json.loads(lowbit("eval", model, "--data", "fashion-mnist:test", "--json"))["top1_percent"]


def ort_top1(model, x, y):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    pred = np.concatenate([s.run(None, {name: x[i:i + 500]})[0].argmax(1) for i in range(0, len(x), 500)])
    return float((pred == y).mean() * 100)


def test_set():
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, h, w = struct.unpack(">III", raw[4:16])
    x = (np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32) / 255.0)
    with gzip.open(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def main():
    x, y = test_set()
    models = [("fashion_cnn", os.path.join(ROOT, "models", "fashion_cnn.onnx"))]
    for name in ["resnet", "mobilenetv2", "vit", "inception"]:
        p = os.path.join(ROOT, "models", "zoo", f"{name}.onnx")
        if os.path.exists(p):
            models.append((name, p))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in models:
            row = {"model": name, "FP32": top1(path)}
            for label, flags in CONFIGS:
                out = os.path.join(tmp, f"{name}.onnx")
                lowbit("quantize", path, "--data", "fashion-mnist:train", "--num-samples", "1000", "-o", out, *flags)
                row[label] = top1(out)
                if label == "W8A8":
                    row["W8A8 (ONNX Runtime)"] = ort_top1(out, x, y)
            rows.append(row)
            print(row, file=sys.stderr)
    # Calibration memory must not grow with the number of calibration samples.
    largest = max(models, key=lambda m: os.path.getsize(m[1]))
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1000, 10000):
            out = lowbit("quantize", largest[1], "--data", "fashion-mnist:train", "--num-samples", str(n),
                         "-o", os.path.join(tmp, "m.onnx"))
            line = [l for l in out.splitlines() if "peak memory" in l][0]
            memory[n] = float(line.split("peak memory")[1].split()[0])
    cols = ["FP32", "W8A8", "W8A8 (ONNX Runtime)", "W8A8 KL", "W8A8 per-tensor", "W4A8 min-max", "W4A8 MSE"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = [f"{r['FP32']:.2f}"] + [f"{r[c]:.2f} ({r[c] - r['FP32']:+.2f})" for c in cols[1:]]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    text = ("# Post-training quantization (naive rounding), Fashion-MNIST test top-1 %\n\n" + "\n".join(lines) + "\n\n"
            "Weights symmetric int8/int4 (per-channel unless noted), activations asymmetric uint8 per-tensor with min-max "
            "ranges from 1,000 training images (W8A8 KL: TensorRT's entropy calibration, `--range kl`); BatchNorm folded; "
            "round half to even. ONNX Runtime "
            f"{ort.__version__} runs the same exported QDQ model with graph optimizations disabled. "
            f"\nCalibration peak memory (`lowbit quantize` on {largest[0]}, batch 100): {memory[1000]:.0f} MiB with 1,000 "
            f"samples, {memory[10000]:.0f} MiB with 10,000 samples.\n\n"
            f"Generated by `build/ort-venv/bin/python scripts/quant_results.py` at commit {commit}.\n")
    os.makedirs(os.path.join(ROOT, "docs", "results"), exist_ok=True)
    open(os.path.join(ROOT, "docs", "results", "quantization.md"), "w").write(text)
    json.dump({"models": rows, "calibration_peak_rss_mib": {"model": largest[0], "1000": memory[1000],
               "10000": memory[10000]}}, open(os.path.join(ROOT, "docs", "results", "quantization.json"), "w"), indent=2)
    readme_path = os.path.join(ROOT, "README.md")
    readme = open(readme_path).read()
    begin, end = "<!-- QUANT:BEGIN -->\n", "<!-- QUANT:END -->"
    if begin in readme and end in readme:
        body = text.split("\n", 2)[2]  # the table and its note, without the title
        a, b = readme.index(begin) + len(begin), readme.index(end)
        open(readme_path, "w").write(readme[:a] + body + readme[b:])
    print(text)


if __name__ == "__main__":
    main()
