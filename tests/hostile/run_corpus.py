#!/usr/bin/python3
"""Runs the malformed-model corpus (make_corpus.py) and damaged copies of real models through the lowbit CLI.

Usage: run_corpus.py LOWBIT SOURCE_DIR WORKDIR

Each corpus case must end, within the time limit, the way cases.json says:
  load: `lowbit info`, `lowbit run` and `lowbit quantize` all exit 1 with one line "lowbit: error: ..." matching
        the case's expectation (so the refusal is the right one, not an unrelated failure);
  run:  `lowbit info` succeeds (the file is well-formed ONNX), `lowbit run` exits 1 as above, and so does
        `lowbit quantize` calibrating on the case's input where it has a single float input;
  ok:   `lowbit run` succeeds (zero-size tensors: the kernel must return at once);
  data: a NumPy file with a lying header, fed to the bundled model by `run --input` and `quantize --data`: both
        exit 1 as above.
Truncated and bit-flipped copies of the bundled models must load or be refused with one error line; they must
never crash (the sanitizer stage turns memory errors into a non-1 exit code) or hang.
"""
import json
import os
import random
import re
import subprocess
import sys

LOWBIT, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
LIMIT = 10.0  # seconds per command; the bound for every class
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(WORK, "corpus")
subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), CORPUS], check=True)
failures = []


def lowbit(args):
    try:
        p = subprocess.run([LOWBIT] + args, capture_output=True, text=True, timeout=LIMIT, errors="replace")
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {LIMIT:.0f} s"
    return p.returncode, p.stdout, p.stderr


def expect_error(name, args, pattern):
    rc, _, err = lowbit(args)
    lines = err.strip().splitlines()
    what = f"{name}: lowbit {' '.join(args[:1])}"
    if rc != 1:
        failures.append(f"{what}: exit {rc}, expected 1; stderr: {err.strip()[-600:]}")
    elif len(lines) != 1 or not lines[0].startswith("lowbit: error: "):
        failures.append(f"{what}: expected one 'lowbit: error:' line, got: {err.strip()[-600:]}")
    elif pattern and not re.search(pattern, lines[0], re.IGNORECASE):
        failures.append(f"{what}: error does not match /{pattern}/: {lines[0]}")


def expect_ok(name, args):
    rc, out, err = lowbit(args)
    if rc != 0:
        failures.append(f"{name}: lowbit {args[0]}: exit {rc}, expected 0; stderr: {err.strip()[-600:]}")


cases = json.load(open(os.path.join(CORPUS, "cases.json")))
for c in cases:
    model = os.path.join(CORPUS, c["name"] + ".onnx")
    run = ["run", model] + (["--input", os.path.join(CORPUS, c["name"] + ".npz")] if c["feeds"] else [])
    quant = ["quantize", model, "-o", os.path.join(WORK, c["name"] + ".q.onnx")]
    calib = ["--data", "npy:" + os.path.join(CORPUS, c["name"] + ".calib.npy"), "--batch-size", "1"] if c["calib"] else None
    if c["stage"] == "load":
        expect_error(c["name"], ["info", model], c["expect"])
        expect_error(c["name"], run, c["expect"])
        expect_error(c["name"], quant + (calib or ["--data-free"]), c["expect"])
    elif c["stage"] == "run":
        expect_ok(c["name"], ["info", model])
        expect_error(c["name"], run, c["expect"])
        if calib:  # calibration runs the model: the same refusal
            expect_error(c["name"], quant + calib, c["expect"])
    elif c["stage"] == "data":
        data = os.path.join(CORPUS, c["name"] + ".npy")
        bundled = os.path.join(SRC, "models", "fashion_cnn.onnx")
        expect_error(c["name"], ["run", bundled, "--input", data], c["expect"])
        expect_error(c["name"], ["quantize", bundled, "--data", "npy:" + data, "-o", os.path.join(WORK, c["name"] + ".q.onnx")],
                     c["expect"])
    else:
        expect_ok(c["name"], run)
    if os.path.exists(os.path.join(WORK, c["name"] + ".q.onnx")):
        failures.append(f"{c['name']}: quantize failed but left an output file")

# Truncations and bit flips of the bundled models, fed the bundled sample images.
rng = random.Random(7)
sample = os.path.join(SRC, "models", "fashion_sample.npy")
damaged = 0
for base in ("models/fashion_cnn.onnx", "models/zoo/resnet.onnx", "models/zoo/vit.onnx"):
    data = open(os.path.join(SRC, base), "rb").read()
    for k in range(12):
        b = bytearray(data)
        if k < 4:
            b = b[:rng.randrange(len(b))]
        else:
            for _ in range(1 + k):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        path = os.path.join(WORK, f"damaged_{os.path.basename(base)}_{k}.onnx")
        open(path, "wb").write(bytes(b))
        for args in (["info", path], ["run", path, "--input", sample]):
            rc, _, err = lowbit(args)
            lines = err.strip().splitlines()
            if rc == 0:
                continue
            if rc != 1 or len(lines) != 1 or not lines[0].startswith("lowbit: error: "):
                failures.append(f"{path}: lowbit {args[0]}: exit {rc}; stderr: {err.strip()[-600:]}")
        damaged += 1

print(f"{len(cases)} malformed models, {damaged} damaged copies of real models")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
