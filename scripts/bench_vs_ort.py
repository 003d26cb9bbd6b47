#!/usr/bin/env python3
"""lowbit's inference speed beside ONNX Runtime's, measured in one run on one machine, written to a Markdown file.

For every model, batch size and thread count: `lowbit bench` (in-process timing of Executor::run, JSON) and an ONNX
Runtime session with the same thread count and optimizations on, both fed the same input arrays; then ONNX
Runtime on the QDQ model lowbit exports (W8A8, per-channel, calibrated on random data: speed only). Times are
medians over at least REPS runs and MIN_TIME seconds after a warm-up; the ratio is ORT time / lowbit time
(above 1: lowbit is faster).

Usage: bench_vs_ort.py LOWBIT OUT.md [--quick]
"""
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(ROOT, "build", "real-models", "models")
SPEED = os.path.join(ROOT, "build", "speed-models")

# name, path, {input: shape with B for the batch}, batch sizes, conv model (gets an int8 row)
MODELS = [
    ("zoo resnet (28x28)", "models/zoo/resnet.onnx", {"image": ("B", 1, 28, 28)}, (1, 32), True),
    ("zoo mobilenetv2", "models/zoo/mobilenetv2.onnx", {"image": ("B", 1, 28, 28)}, (1, 32), True),
    ("zoo vit", "models/zoo/vit.onnx", {"image": ("B", 1, 28, 28)}, (1, 32), False),
    ("zoo inception", "models/zoo/inception.onnx", {"image": ("B", 1, 28, 28)}, (1, 32), True),
    ("ResNet-18 224", os.path.join(SPEED, "resnet18_224.onnx"), {"input": ("B", 3, 224, 224)}, (1, 32), True),
    ("MobileNetV2 224", os.path.join(SPEED, "mobilenetv2_224.onnx"), {"input": ("B", 3, 224, 224)}, (1, 32), True),
    ("ViT-Tiny-like 224", os.path.join(SPEED, "vit_tiny_224.onnx"), {"input": ("B", 3, 224, 224)}, (1, 32), False),
    ("PP-OCR cls 3x48x192", os.path.join(REAL, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), {"x": ("B", 3, 48, 192)},
     (1, 32), True),
    ("PP-OCRv4 rec 3x48x320", os.path.join(REAL, "ch_PP-OCRv4_rec_infer.onnx"), {"x": ("B", 3, 48, 320)}, (1, 32),
     True),
    ("YOLOv8n 320 (nudenet)", os.path.join(REAL, "320n.onnx"), {"images": ("B", 3, 320, 320)}, (1, 32), True),
    # 640x640 pages: batch 4 instead of 32 keeps one timed run of the script under a few minutes.
    ("PP-OCRv4 det 3x640x640", os.path.join(REAL, "ch_PP-OCRv4_det_infer.onnx"), {"x": ("B", 3, 640, 640)}, (1, 4),
     True),
    ("Silero VAD 16k (512 samples)", os.path.join(REAL, "silero_vad_16k_op15.onnx"),
     {"input": ("B", 512), "state": (2, "B", 128), "sr": ()}, (1, 32), False),
]


def feeds_for(inputs, batch, rng):
    out = {}
    for name, shape in inputs.items():
        if name == "sr":
            out[name] = np.array(16000, np.int64)
            continue
        dims = [batch if d == "B" else d for d in shape]
        out[name] = rng.random(dims, dtype=np.float32)
    return out


def time_ort(path, feeds, threads, reps, min_time):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    s.run(None, feeds)
    ts = []
    while len(ts) < reps or sum(ts) < min_time:
        t0 = time.perf_counter()
        s.run(None, feeds)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def time_lowbit(lowbit, path, feeds, threads, reps, min_time, work):
    args = [lowbit, "bench", path, "--threads", str(threads), "--warmup", "1", "--reps", str(reps),
            "--min-time", str(min_time)]
    for name, arr in feeds.items():
        f = os.path.join(work, name + ".npy")
        np.save(f, arr)
        args += ["--input", f"{name}={f}"]
    batch = next(iter(feeds.values())).shape[0] if feeds else 1
    args += ["--batch", str(batch)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr.strip())
    return json.loads(r.stdout)


def quantize(lowbit, path, inputs, work):
    calib = feeds_for(inputs, 16, np.random.default_rng(1))
    data = os.path.join(work, "calib.npy")
    np.save(data, next(iter(calib.values())))
    out = os.path.join(work, os.path.basename(path).replace(".onnx", ".w8a8.onnx"))
    r = subprocess.run([lowbit, "quantize", path, "--data", "npy:" + data, "-b", "8", "-n", "16", "-o", out],
                       capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr.strip().splitlines()[-1]
    return out, None


def cpu_line():
    model, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    isa = [x for x in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16") if x in flags]
    return f"{model}; {os.cpu_count()} logical cores; {', '.join(isa)}"


def main():
    lowbit, out = sys.argv[1], sys.argv[2]
    quick = "--quick" in sys.argv
    reps, min_time = (3, 0.3) if quick else (10, 2.0)
    threads_all = os.cpu_count()
    rows, notes = [], []
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        for name, path, inputs, batches, conv in MODELS:
            path = os.path.join(ROOT, path)
            if not os.path.exists(path):
                notes.append(f"{name}: skipped, {os.path.relpath(path, ROOT)} is missing "
                             "(scripts/real_models.sh downloads the real models; scripts/make_speed_models.py "
                             "writes the 224x224 ones)")
                continue
            qdq, why = quantize(lowbit, path, inputs, work) if conv else (None, None)
            if why:
                notes.append(f"{name}: no QDQ row ({why})")
            for batch in batches:
                feeds = feeds_for(inputs, batch, np.random.default_rng(batch))
                for threads in sorted({1, threads_all}):
                    lb = time_lowbit(lowbit, path, feeds, threads, reps, min_time, work)
                    o = time_ort(path, feeds, threads, reps, min_time)
                    q = time_ort(qdq, feeds, threads, reps, min_time) if qdq else None
                    rows.append((name, batch, threads, lb["median_ms"] / batch, o / batch,
                                 None if q is None else q / batch, lb["peak_rss_bytes"] / 2**20))
                    print(f"{name:30s} b{batch:<3d} t{threads} lowbit {lb['median_ms'] / batch:9.3f} "
                          f"ORT {o / batch:9.3f} ms/img", flush=True)
    below = [r for r in rows if r[4] / r[3] < 1.0]
    with open(out + ".tmp", "w") as f:
        f.write("# Inference speed: lowbit beside ONNX Runtime\n\n")
        f.write(f"Generated by `{' '.join(['scripts/bench_vs_ort.sh'] + sys.argv[2:])}` at commit {commit}"
                f"{' (with uncommitted changes)' if dirty else ''} on {datetime.date.today().isoformat()}.\n\n")
        f.write(f"- Machine: {cpu_line()}; Linux {platform.release()}.\n")
        f.write(f"- ONNX Runtime {ort.__version__} (CPU provider, all graph optimizations, intra-op threads as "
                "listed, inter-op 1). lowbit: `lowbit bench` (FP32 executor; oneDNN convolution, OpenBLAS GEMM).\n")
        f.write(f"- Each time is the median of at least {reps} runs and {min_time} s after a warm-up run, per "
                "image (batch time / batch); both tools get the same input arrays.\n")
        f.write("- Speed ratio = ORT time / lowbit time: at or above 1.00, lowbit is at least as fast.\n")
        f.write("- int8: ONNX Runtime on the QDQ model lowbit exports (W8A8 per-channel, static); lowbit's own "
                "integer engine does not exist yet, so it has no column.\n\n")
        f.write("| model | batch | threads | lowbit FP32 ms/img | ORT FP32 ms/img | speed ratio | ORT int8 QDQ ms/img "
                "| lowbit peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for name, b, t, lb, o, q, rss in rows:
            f.write(f"| {name} | {b} | {t} | {lb:.3f} | {o:.3f} | {o / lb:.2f} | "
                    f"{'-' if q is None else f'{q:.3f}'} | {rss:.0f} |\n")
        f.write(f"\n{len(rows) - len(below)} of {len(rows)} rows meet the FP32 target (ratio >= 1.00).\n")
        for n in notes:
            f.write(f"\n- {n}")
        f.write("\n")
    os.replace(out + ".tmp", out)
    print("wrote", out)


if __name__ == "__main__":
    main()
