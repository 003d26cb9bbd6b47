#!/usr/bin/python3
"""Measures every trained zoo model with lowbit and writes models/zoo/zoo.json, docs/results/zoo.md and the
README's zoo table (between the ZOO markers). Run after training, from anywhere:
    /usr/bin/python3 models/zoo/make_zoo_json.py
For each model: top-1 on the Fashion-MNIST test set by PyTorch (recorded at training) and by `lowbit eval`;
SQNR of the model against itself re-exported through lowbit (`lowbit export --fold-constants`); evaluation
throughput; and, for the largest model, peak memory when evaluating 1,000 vs 10,000 images.
"""
import json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOWBIT = os.path.join(ROOT, "build", "bin", "lowbit")
ZOO = os.path.join(ROOT, "models", "zoo")
ORDER = ["resnet", "mobilenetv2", "vit", "inception"]
DESCRIPTION = {
    "resnet": "ResNet-style: basic blocks, BN, residual Adds, 4 stages",
    "mobilenetv2": "MobileNetV2-style: inverted residuals, depthwise 3x3, ReLU6, BN, linear bottlenecks",
    "vit": "ViT-style encoder: conv stem, 7x7 patches, LayerNorm, MatMul/Softmax attention, GELU, residuals",
    "inception": "Inception-style: 1x1 / 3x3 / double-3x3 / pool branches joined by Concat",
}


def lowbit(*args):
    out = subprocess.run([LOWBIT, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"lowbit {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def evaluate(model, data, *extra):
    return json.loads(lowbit("eval", model, "--data", data, "--json", *extra))


def main():
    models = []
    for name in ORDER:
        onnx_path = os.path.join(ZOO, f"{name}.onnx")
        train_path = os.path.join(ZOO, f"{name}.train.json")
        if not (os.path.exists(onnx_path) and os.path.exists(train_path)):
            print(f"skipping {name}: not trained yet", file=sys.stderr)
            continue
        train = json.load(open(train_path))
        ev = evaluate(onnx_path, "fashion-mnist:test")
        with tempfile.TemporaryDirectory() as tmp:
            reexported = os.path.join(tmp, f"{name}.onnx")
            lowbit("export", onnx_path, "-o", reexported, "--fold-constants")
            fid = evaluate(onnx_path, "fashion-mnist:test[0:1000]", "--reference", reexported)["fidelity"]
        models.append({
            "name": name, "file": f"{name}.onnx", "description": DESCRIPTION[name],
            "parameters": train["parameters"], "onnx_bytes": os.path.getsize(onnx_path), "epochs": train["epochs"],
            "pytorch_top1_percent": train["pytorch_top1_percent"],
            "lowbit_top1_percent": round(ev["top1_percent"], 2),
            "lowbit_top5_percent": round(ev["top5_percent"], 2),
            "reexport_sqnr_db": fid["sqnr_db"],
            "eval_images_per_second": round(ev["images_per_second"]),
        })
        print(f"{name}: pytorch {train['pytorch_top1_percent']}%, lowbit {ev['top1_percent']:.2f}%", file=sys.stderr)
    if not models:
        sys.exit("no trained models in models/zoo")
    largest = max(models, key=lambda m: m["onnx_bytes"])
    path = os.path.join(ZOO, largest["file"])
    small = evaluate(path, "fashion-mnist:test", "--num-samples", "1000")
    full = evaluate(path, "fashion-mnist:test")
    memory = {"model": largest["name"], "peak_rss_mib_1000_images": round(small["peak_rss_mib"], 1),
              "peak_rss_mib_10000_images": round(full["peak_rss_mib"], 1),
              "images_per_second_10000": round(full["images_per_second"]), "batch_size": 100}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    zoo = {"dataset": "fashion-mnist:test (10,000 images)", "machine": f"{os.cpu_count()} cores of {cpu}",
           "models": models, "eval_memory": memory}
    with open(os.path.join(ZOO, "zoo.json"), "w") as f:
        json.dump(zoo, f, indent=2)
        f.write("\n")
    rows = ["| model | what it exercises | params | ONNX size | PyTorch top-1 | lowbit top-1 | re-export SQNR | eval images/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        sq = m["reexport_sqnr_db"]
        sq = "inf (bit-identical)" if sq == "inf" else f"{sq:.1f} dB"
        rows.append(f"| `{m['file']}` | {m['description']} | {m['parameters']:,} | {m['onnx_bytes'] / 1e6:.2f} MB | "
                    f"{m['pytorch_top1_percent']:.2f}% | {m['lowbit_top1_percent']:.2f}% | {sq} | {m['eval_images_per_second']} |")
    rows += ["", f"Peak memory of `lowbit eval` on `{memory['model']}` (batch {memory['batch_size']}): "
             f"{memory['peak_rss_mib_1000_images']} MiB for 1,000 images, {memory['peak_rss_mib_10000_images']} MiB for "
             f"10,000 images ({memory['images_per_second_10000']} images/s). Measured on {zoo['machine']} by "
             "`/usr/bin/python3 models/zoo/make_zoo_json.py`."]
    table = "\n".join(rows) + "\n"
    os.makedirs(os.path.join(ROOT, "docs", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "results", "zoo.md"), "w") as f:
        f.write("# Reference model zoo (Fashion-MNIST, FP32)\n\n" + table)
    readme_path = os.path.join(ROOT, "README.md")
    readme = open(readme_path).read()
    begin, end = "<!-- ZOO:BEGIN -->\n", "<!-- ZOO:END -->"
    if begin in readme and end in readme:
        a, b = readme.index(begin) + len(begin), readme.index(end)
        open(readme_path, "w").write(readme[:a] + table + readme[b:])
    print(table)


if __name__ == "__main__":
    main()
