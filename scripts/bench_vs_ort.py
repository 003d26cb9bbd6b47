#!/usr/bin/env python3
"""lowbit's inference speed beside ONNX Runtime's, measured in one run on one machine, written to a Markdown file.

For every model, batch size and thread count: `lowbit bench` (in-process timing of Executor::run, JSON) and an ONNX
Runtime session with the same thread count and optimizations on, both fed the same input arrays; then ONNX
Runtime on the QDQ model lowbit exports (W8A8, per-channel, calibrated on random data: speed only), and lowbit's
integer engine on the same file (`lowbit bench --engine int --profile onnxruntime-cpu`). Times are
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


def time_lowbit(lowbit, path, feeds, threads, reps, min_time, work, extra=()):
    args = [lowbit, "bench", path, "--threads", str(threads), "--warmup", "1", "--reps", str(reps),
            "--min-time", str(min_time), *extra]
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


def quantize_stats(lowbit, path, inputs, batch, samples, threads, work):
    """Calibration rate (samples/s, from quantize's progress line) beside FP32 inference at the same batch, and the
    quantize run's peak memory beside the model's FP32 weight bytes and the executor's peak live activations."""
    import re
    import onnx
    calib = feeds_for(inputs, samples, np.random.default_rng(2))
    data = os.path.join(work, "calib.npy")
    np.save(data, next(iter(calib.values())))
    out = os.path.join(work, "q.onnx")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(["python3", "-c", "import os,sys,subprocess,resource;"
                        "r=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
                        "print(r.returncode);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss*1024);"
                        "sys.stdout.write(r.stderr)",
                        lowbit, "quantize", path, "--data", "npy:" + data, "-b", str(batch), "-n", str(samples),
                        "-o", out], capture_output=True, text=True, env=env)
    lines = p.stdout.splitlines()
    if not lines or lines[0] != "0":
        raise RuntimeError("quantize failed: " + "\n".join(lines[2:])[-300:])
    rss = int(lines[1])
    rates = re.findall(r"calibrate: \d+/\d+ \(100%\), (\d+)/s", p.stdout)
    feeds = feeds_for(inputs, batch, np.random.default_rng(3))
    lb = time_lowbit(lowbit, path, feeds, threads, 3, 1.0, work)
    m = onnx.load(path)
    weights = sum(np.prod(t.dims) * 4 for t in m.graph.initializer if t.data_type == 1)
    return {"calib": float(rates[-1]) if rates else None, "fp32": lb["images_per_s"], "rss": rss,
            "weights": int(weights), "live": lb["peak_live_activation_bytes"]}


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
    reps, min_time = (3, 0.3) if quick else (5, 1.0)
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
                    li = None
                    if qdq:
                        try:
                            li = time_lowbit(lowbit, qdq, feeds, threads, reps, min_time, work,
                                             ["--engine", "int", "--profile", "onnxruntime-cpu"])["median_ms"]
                        except RuntimeError as e:
                            notes.append(f"{name}: no integer-engine row ({str(e).splitlines()[-1][:160]})")
                    rows.append((name, batch, threads, lb["median_ms"] / batch, o / batch,
                                 None if q is None else q / batch, lb["peak_rss_bytes"] / 2**20,
                                 None if li is None else li / batch))
                    print(f"{name:30s} b{batch:<3d} t{threads} lowbit {lb['median_ms'] / batch:9.3f} "
                          f"ORT {o / batch:9.3f} ms/img", flush=True)
        # Calibration and quantize memory, 1 thread (calibration runs every value through observers: no layout
        # hand-over and no folding, which need values nobody observes).
        qrows = []
        for name, path, inputs, batches, conv in MODELS:
            path = os.path.join(ROOT, path)
            if not os.path.exists(path) or len(inputs) > 1 or "det" in name:
                continue
            samples = 64 if ("224" in name or "YOLO" in name or "rec" in name) else 256
            try:
                q = quantize_stats(lowbit, path, inputs, 32 if samples > 64 else 16, samples, 1, work)
                qrows.append((name, q))
                print(f"{name:30s} calibrate {q['calib']}/s vs fp32 {q['fp32']:.1f}/s", flush=True)
            except RuntimeError as e:
                notes.append(f"{name}: no calibration row ({e})")
        # Graph passes: quantize time on generated graphs of growing size.
        srows = []
        for nodes in (2500, 10000, 40000):
            g = os.path.join(work, f"g{nodes}.onnx")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_scale_model.py"), g, str(nodes)],
                           check=True, capture_output=True)
            x = os.path.join(work, "xs.npy")
            np.save(x, np.random.default_rng(4).random((32, 32), dtype=np.float32))
            t0 = time.perf_counter()
            subprocess.run([lowbit, "quantize", g, "--data", "npy:" + x, "-b", "32", "-n", "32", "-o",
                            os.path.join(work, "gq.onnx")], check=True, capture_output=True)
            srows.append((nodes, time.perf_counter() - t0))
            print(f"scale {nodes} nodes: {srows[-1][1]:.2f} s", flush=True)
    below = [r for r in rows if r[4] / r[3] < 1.0]
    irows = [r for r in rows if r[7] is not None]
    int_fp32 = [r for r in irows if r[3] / r[7] >= 2.0]
    int_ort = [r for r in irows if r[5] / r[7] >= 1.5]
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
        f.write("- int8: the QDQ model lowbit exports (W8A8 per-channel, static) in ONNX Runtime and in lowbit's "
                "integer engine (`--engine int --profile onnxruntime-cpu`: integer Conv/Gemm/MatMul through "
                "kernels/int_gemm.h, AVX-512 VNNI / AVX2 / plain loops picked at run time, the same codes as the "
                "reference loops); int8 speed-ups are lowbit FP32 time / engine time and ORT int8 time / engine "
                "time.\n\n")
        f.write("| model | batch | threads | lowbit FP32 ms/img | ORT FP32 ms/img | speed ratio | ORT int8 QDQ ms/img "
                "| lowbit int8 engine ms/img | engine vs lowbit FP32 | engine vs ORT int8 | lowbit peak RSS MiB |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for name, b, t, lb, o, q, rss, li in rows:
            f.write(f"| {name} | {b} | {t} | {lb:.3f} | {o:.3f} | {o / lb:.2f} | "
                    f"{'-' if q is None else f'{q:.3f}'} | {'-' if li is None else f'{li:.3f}'} | "
                    f"{'-' if li is None else f'{lb / li:.2f}'} | "
                    f"{'-' if li is None or q is None else f'{q / li:.2f}'} | {rss:.0f} |\n")
        f.write(f"\n{len(rows) - len(below)} of {len(rows)} rows meet the FP32 target (ratio >= 1.00). Integer "
                f"engine: {len(int_fp32)} of {len(irows)} rows at >= 2x lowbit FP32, {len(int_ort)} of {len(irows)} "
                "at >= 1.5x ONNX Runtime int8.\n")
        if qrows:
            f.write("\n## Calibration speed and quantize memory (1 thread)\n\n`lowbit quantize` (W8A8 static, "
                    "min-max ranges) on random calibration data: its calibration rate (from its progress line, data "
                    "loading included) beside `lowbit bench` FP32 images/s at the same batch; its peak RSS beside the "
                    "target, 2x the FP32 weights + one batch's peak live activations (the process itself, libraries "
                    "included, counts against it).\n\n")
            f.write("| model | calibration samples/s | FP32 images/s | ratio | peak RSS MiB | 2 x weights + "
                    "activations MiB | within target |\n|---|---:|---:|---:|---:|---:|---|\n")
            for name, q in qrows:
                tgt = (2 * q["weights"] + q["live"]) / 2**20
                cal = "-" if q["calib"] is None else f"{q['calib']:.0f}"
                ratio = "-" if q["calib"] is None else f"{q['calib'] / q['fp32']:.2f}"
                f.write(f"| {name} | {cal} | {q['fp32']:.0f} | {ratio} | {q['rss'] / 2**20:.0f} | {tgt:.0f} | "
                        f"{'yes' if q['rss'] / 2**20 <= tgt else 'no'} |\n")
        if srows:
            f.write("\n## Graph passes on large graphs\n\n`lowbit quantize` (32 calibration samples) on graphs "
                    "from `scripts/make_scale_model.py` (MatMul/Add/Relu blocks with residual Adds); wall time of "
                    "the whole command. Linear scaling keeps the ratio between rows near the node ratio (4x).\n\n")
            f.write("| nodes | quantize s | vs previous row |\n|---:|---:|---:|\n")
            prev = None
            for nodes, sec in srows:
                f.write(f"| {nodes} | {sec:.2f} | {'-' if prev is None else f'{sec / prev:.1f}x'} |\n")
                prev = sec
        for n in notes:
            f.write(f"\n- {n}")
        f.write("\n")
    os.replace(out + ".tmp", out)
    print("wrote", out)


if __name__ == "__main__":
    main()
