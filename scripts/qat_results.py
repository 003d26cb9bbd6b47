"""Writes docs/results/qat.md: lowbit's QAT on every zoo model next to FP32, PTQ, and PyTorch's own QAT on the same
FP32 weights, data, batch, optimizer, learning rate, schedule, steps and threads, in the same run; plus the exported
QAT model's accuracy in ONNX Runtime. Run through scripts/qat_results.sh."""
import argparse, datetime, gzip, json, os, re, struct, subprocess, sys, time

import numpy as np
import onnxruntime as ort

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LOWBIT = os.path.join(ROOT, "build", "bin", "lowbit")
DATA = "/usr/share/datasets/fashion-mnist"
MODELS = ["resnet", "mobilenetv2", "vit", "inception"]


def sh(cmd, log):
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log.write(r.stdout + r.stderr[-2000:] + "\n(%.0f s)\n" % (time.time() - t0))
    if r.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return r.stdout


def lowbit_top1(path, log):
    out = sh([LOWBIT, "eval", path, "--data", "fashion-mnist:test", "--json"], log)
    return json.loads(out)["top1_percent"]


def test_set():
    def idx(name):
        with gzip.open(os.path.join(DATA, name), "rb") as f:
            raw = f.read()
        nd = struct.unpack(">I", raw[:4])[0] & 0xFF
        dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)
    return (idx("t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0,
            idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def ort_pred(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 500]})[0].argmax(1) for i in range(0, len(x), 500)])


def ort_top1(path, x, y):
    return float((ort_pred(path, x) == y).mean() * 100)


def paired(path_a, path_b, x, y):
    """Top-1 of b minus top-1 of a on the same images, in points, and the standard error of that difference
    (paired: only the images one model gets right and the other wrong count)."""
    ca, cb = ort_pred(path_a, x) == y, ort_pred(path_b, x) == y
    n = len(y)
    d = (cb.astype(np.float64) - ca.astype(np.float64))
    return {"a_top1": float(ca.mean() * 100), "b_top1": float(cb.mean() * 100),
            "diff": float(d.mean() * 100), "se": float(d.std(ddof=1) / np.sqrt(n) * 100),
            "a_only": int((ca & ~cb).sum()), "b_only": int((cb & ~ca).sum())}


EPOCH = 937  # steps of one epoch: 60,000 training images at batch 64


def qat(model, out, w, a, steps, log, extra=()):
    """`lowbit qat` for `steps` steps: whole epochs when steps is a multiple of EPOCH, else one shortened epoch."""
    epochs = steps // EPOCH if steps % EPOCH == 0 else 1
    cmd = [LOWBIT, "qat", os.path.join(ROOT, "models", "zoo", model + ".onnx"), "--data", "fashion-mnist:train",
           "--val", "fashion-mnist:test", "--weights", "w%d" % w, "--acts", "a%d" % a, "--epochs", str(epochs),
           "--steps-per-epoch", str(steps // epochs), "-o", out] + list(extra)
    stdout = sh(cmd, log)
    ms = re.findall(r"^epoch [0-9]+: .*validation top-1 ([0-9.]+) %, ([0-9.]+) images/s", stdout, re.M)
    top1, ips = ms[-1][0], sum(float(m[1]) for m in ms) / len(ms)
    return {"top1": float(top1), "ips": ips, "cmd": " ".join(cmd[1:]).replace(ROOT + "/", "")}


def torch_peer(model, w, a, steps, log, extra=()):
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "qat_torch_peer.py"), model, str(w), str(a),
           str(steps)] + list(extra)
    return json.loads(sh(cmd, log).strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--steps", type=int, default=2 * EPOCH, help="W4A4 LSQ steps (937 = one epoch of 60000 at batch 64)")
    ap.add_argument("--short", type=int, default=EPOCH // 4, help="steps of the LSQ/STE and BatchNorm comparisons")
    ap.add_argument("--w4a8-steps", type=int, default=EPOCH // 2, help="W4A8 QAT steps")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds of the LSQ/STE comparison")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "qat.md"))
    ap.add_argument("--table-only", action="store_true",
                    help="rewrite the table from docs/results/qat.json and the models in build/qat_results (no training)")
    ap.add_argument("--trained-at", help="with --table-only or --redo-w4a8: the commit the rows were trained at")
    ap.add_argument("--redo-w4a8", action="store_true",
                    help="train the W4A8 QAT rows (lowbit and PyTorch) again over docs/results/qat.json, keep the rest")
    args = ap.parse_args()
    full, half, quarter = args.steps, args.w4a8_steps, args.short
    # W4A8: fine-tuning the standard pipeline's model against the FP32 model's logits
    w4a8 = ["--pipeline", "standard", "--distill", "1"]
    torch_w4a8 = ["--distill", "1"]  # the same loss for the PyTorch peer
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    work = os.path.join(ROOT, "build", "qat_results")
    os.makedirs(work, exist_ok=True)
    x, y = test_set()
    json_path = os.path.join(ROOT, "docs", "results", "qat.json")
    reuse = args.table_only or args.redo_w4a8
    rows = json.load(open(json_path)) if reuse else []
    log = open(os.path.join(work, "log.txt"), "a" if reuse else "w")
    for r in rows if args.redo_w4a8 else []:
        m = r["model"]
        r.setdefault("commit", args.trained_at or commit)
        r["lsq_w4a8"] = qat(m, os.path.join(work, "%s.lsq_w4a8.onnx" % m), 4, 8, half, log, w4a8)
        r["torch_w4a8"] = torch_peer(m, 4, 8, half, log, torch_w4a8)
        r["w4a8_commit"] = commit
        r.pop("w4a8_vs_ptq", None)
        print(json.dumps(r), flush=True)
    for m in ([] if reuse else args.models):
        p = lambda name: os.path.join(work, "%s.%s.onnx" % (m, name))
        zoo = os.path.join(ROOT, "models", "zoo", m + ".onnx")
        r = {"model": m, "fp32": lowbit_top1(zoo, log)}
        sh([LOWBIT, "quantize", zoo, "--data", "fashion-mnist:train", "--pipeline", "standard", "--weights", "w4",
            "--acts", "a8", "-o", p("ptq_w4a8")], log)
        r["ptq_w4a8"] = lowbit_top1(p("ptq_w4a8"), log)
        sh([LOWBIT, "quantize", zoo, "--data", "fashion-mnist:train", "--weights", "w4", "--acts", "a4", "--range",
            "mse", "--weight-range", "mse", "-o", p("ptq_w4a4")], log)
        r["ptq_w4a4"] = lowbit_top1(p("ptq_w4a4"), log)
        r["lsq_w4a4"] = qat(m, p("lsq_w4a4"), 4, 4, full, log)
        r["lsq_w4a4"]["file_top1"] = lowbit_top1(p("lsq_w4a4"), log)
        r["lsq_w4a4"]["ort_top1"] = ort_top1(p("lsq_w4a4"), x, y)
        r["lsq_w4a8"] = qat(m, p("lsq_w4a8"), 4, 8, half, log, w4a8)
        minmax = ["--range", "minmax", "--weight-range", "minmax"]
        for sd in range(args.seeds):
            seed = ["--seed", str(sd)]
            r.setdefault("ste_mm", []).append(qat(m, p("ste_mm"), 4, 4, quarter, log, ["--method", "ste"] + minmax + seed))
            r.setdefault("lsq_mm", []).append(qat(m, p("lsq_mm"), 4, 4, quarter, log, minmax + seed))
        if m != "vit":  # the ViT has no BatchNormalization
            for bf in (1, 2, 3, 4):
                r["bn%d" % bf] = qat(m, p("bn%d" % bf), 4, 4, quarter, log, ["--bn-fold", str(bf)] +
                                     (["--freeze-bn-step", str(quarter * 3 // 4)] if bf >= 2 else []))
            r["bn0"] = qat(m, p("bn0"), 4, 4, quarter, log)
        r["torch_w4a4"] = torch_peer(m, 4, 4, full, log)
        r["torch_w4a8"] = torch_peer(m, 4, 8, half, log, torch_w4a8)
        rows.append(r)
        print(json.dumps(r), flush=True)
    for r in rows:  # W4A8 QAT against its PTQ start on the same test images (from the exported files)
        if "a_top1" not in r.get("w4a8_vs_ptq", {}):
            p = lambda name: os.path.join(work, "%s.%s.onnx" % (r["model"], name))
            r["w4a8_vs_ptq"] = paired(p("ptq_w4a8"), p("lsq_w4a8"), x, y)
        if "commit" not in r:
            r["commit"] = args.trained_at or commit

    f = lambda v: "%.2f" % v
    L = []
    L.append("# Quantization-aware training on the zoo")
    L.append("")
    trained = sorted(set(r["commit"] for r in rows))
    L.append("Generated by `bash scripts/qat_results.sh` at commit %s on %s (2 threads; %s), Fashion-MNIST test set "
             "(10,000 images). Per-command logs: `build/qat_results/log.txt`." % (", ".join(trained), datetime.date.today(),
                                                                                 open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()))
    redone = sorted(set(r["w4a8_commit"] for r in rows if "w4a8_commit" in r))
    if redone:
        L.append("The W4A8 QAT columns (lowbit and PyTorch) were trained again by `scripts/qat_results.py --redo-w4a8` "
                 "at commit %s; the rest of the table is from the run above." % ", ".join(redone))
    if args.table_only:
        L.append("The table was rewritten from `docs/results/qat.json` and the trained files by "
                 "`scripts/qat_results.py --table-only` at commit %s (no training)." % commit)
    L.append("")
    L.append("Settings: weights per-channel symmetric, activations per-tensor asymmetric (unsigned), every quantizer "
             "at the stated bits (first and last layers and the model input included: nothing stays at 8 bits); "
             "Adam, lr 1e-4, cosine schedule, batch 64, seed 0 (BatchNorm strategy 0 unless the strategy table says "
             "otherwise). Budgets: W4A4 LSQ %d steps (%.2f epochs) from MSE PTQ ranges; W4A8 LSQ %d steps (%.2f "
             "epochs) from the standard pipeline's model (`--pipeline standard`: CLE, AdaRound, MSE ranges, as in the "
             "PTQ W4A8 column, calibrated on its own 1,000 training rows) with distillation from the FP32 model's logits "
             "(`--distill 1`); the LSQ/STE and BatchNorm "
             "comparisons %d steps each. PyTorch 1.13 runs the same steps, batch, optimizer, schedule and loss "
             "(distillation included) from the same FP32 weights (`scripts/qat_torch_peer.py`: FX graph mode QAT, "
             "moving-average min-max FakeQuantize, BN statistics frozen; the ViT does not trace in FX and runs "
             "eager-mode QAT, which quantizes only Conv/Linear weights and module outputs). PyTorch has no AdaRound: "
             "its W4A8 run starts from its observers' ranges." % (full, full / EPOCH, half, half / EPOCH, quarter))
    L.append("")
    L.append("## Accuracy (top-1 %)")
    L.append("")
    L.append("| model | FP32 | PTQ W4A4 (MSE, QAT start) | **QAT W4A4 LSQ** | gap to FP32 | exported file (lowbit / ONNX Runtime) | PyTorch QAT W4A4 | PTQ W4A8 standard | QAT W4A8 LSQ | W4A8 files in ONNX Runtime: PTQ, QAT, difference (paired SE) | PyTorch QAT W4A8 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        q, d = r["lsq_w4a4"], r["w4a8_vs_ptq"]
        L.append("| %s | %s | %s | **%s** | %+.2f | %s / %s | %s | %s | %s | %s, %s, %+.2f (%.2f) | %s |" % (
            r["model"], f(r["fp32"]), f(r["ptq_w4a4"]), f(q["top1"]), q["top1"] - r["fp32"], f(q["file_top1"]),
            f(q["ort_top1"]), f(r["torch_w4a4"]["top1"]), f(r["ptq_w4a8"]), f(r["lsq_w4a8"]["top1"]), f(d["a_top1"]), f(d["b_top1"]), d["diff"], d["se"],
            f(r["torch_w4a8"]["top1"])))
    L.append("")
    L.append("W4A8 files in ONNX Runtime: the exported PTQ and QAT files on the same 10,000 test images (lowbit's own "
             "columns before them can differ by a few images: an integer runtime and the simulation may round a "
             "borderline logit to different codes). The paired standard error of the difference counts only the "
             "images that one file gets right and the other wrong; a difference within about two of it is not a "
             "measured difference.")
    L.append("")
    L.append("## LSQ against STE, both from min-max ranges, W4A4 (%d steps, training seeds 0..%d)" % (quarter, args.seeds - 1))
    L.append("")
    L.append("Mean over the seeds, each run in brackets: one run's top-1 moves by a few tenths of a point with the "
             "batch order alone.")
    L.append("")
    L.append("| model | STE (scales fixed) | LSQ (scales learned) | LSQ - STE |")
    L.append("|---|---:|---:|---:|")
    mean = lambda runs: sum(x["top1"] for x in runs) / len(runs)
    each = lambda runs: " (" + ", ".join(f(x["top1"]) for x in runs) + ")"
    for r in rows:
        L.append("| %s | %s%s | %s%s | %+.2f |" % (r["model"], f(mean(r["ste_mm"])), each(r["ste_mm"]),
                                                    f(mean(r["lsq_mm"])), each(r["lsq_mm"]),
                                                    mean(r["lsq_mm"]) - mean(r["ste_mm"])))
    L.append("")
    L.append("## BatchNorm folding strategies (docs/qat.md), W4A4 LSQ, %d steps; 2-4 freeze their statistics after %d"
             % (quarter, quarter * 3 // 4))
    L.append("")
    L.append("| model | 0 | 1 | 2 | 3 | 4 |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "bn0" in r:
            L.append("| %s | %s |" % (r["model"], " | ".join(f(r["bn%d" % k]["top1"]) for k in range(5))))
    L.append("")
    L.append("The ViT has no BatchNormalization.")
    L.append("")
    L.append("## Training throughput (images/s, W4A4, batch 64, 2 threads, same run)")
    L.append("")
    L.append("| model | lowbit | PyTorch 1.13 | lowbit / PyTorch |")
    L.append("|---|---:|---:|---:|")
    for r in rows:
        a, b = r["lsq_w4a4"]["ips"], r["torch_w4a4"]["images_per_second"]
        L.append("| %s | %.0f | %.0f | %.2f |" % (r["model"], a, b, a / b))
    L.append("")
    L.append("## Commands")
    L.append("")
    for r in rows[:1]:
        for k in ("lsq_w4a4", "lsq_w4a8", "ste_mm", "lsq_mm", "bn1", "bn2", "bn3", "bn4"):
            run = r[k][0] if isinstance(r[k], list) else r[k]
            L.append("- `lowbit %s`" % run["cmd"].replace("build/qat_results/", ""))
    L.append("- `scripts/qat_torch_peer.py MODEL 4 4 %d` and `... 4 8 %d --distill 1`" % (full, half))
    L.append("")
    open(args.out, "w").write("\n".join(L) + "\n")
    json.dump(rows, open(os.path.join(ROOT, "docs", "results", "qat.json"), "w"), indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
