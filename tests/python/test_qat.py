"""lowbit.qat against `lowbit qat`: the same trained file byte for byte, epoch reports, progress callbacks, errors.

Training is deterministic for a given thread count (oneDNN's weight-gradient reductions are split across threads),
and other tests in this process may change it (a PyTorch DataLoader sets OpenMP to one thread): the byte-for-byte
comparison runs the Python side in a fresh interpreter, as the CLI runs.
"""
import json
import os
import subprocess
import sys

import pytest

import lowbit

from conftest import CLI, ROOT

MODEL = str(ROOT / "models" / "fashion_cnn.onnx")
FLAGS = ["--data", "fashion-mnist:train", "-n", "640", "--batch-size", "32", "--calib-samples", "128", "--weights",
         "w4", "--acts", "a4", "--epochs", "2", "--steps-per-epoch", "3", "--lr", "1e-3", "--method", "lsq+",
         "--val", "fashion-mnist:test[0:200]"]
KWARGS = dict(data="fashion-mnist:train", num_samples=640, batch_size=32, calib_samples=128, weights=4, acts=4,
              epochs=2, steps_per_epoch=3, lr=1e-3, method="lsq+", val="fashion-mnist:test[0:200]")


def test_python_qat_writes_the_cli_file_byte_for_byte(tmp_path):
    r = subprocess.run([CLI, "qat", MODEL, *FLAGS, "-o", str(tmp_path / "cli.onnx"), "--save-encodings",
                        str(tmp_path / "cli.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    code = """
import json, sys, lowbit
epochs, steps = [], []
q = lowbit.qat(%r, progress=steps.append, on_epoch=epochs.append, **%r)
q.export_qdq(sys.argv[1] + "/py.onnx")
q.save_encodings(sys.argv[1] + "/py.json")
print(json.dumps({"epochs": epochs, "steps": steps}))
""" % (MODEL, KWARGS)
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    epochs, steps = out["epochs"], out["steps"]
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    assert (tmp_path / "py.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all("val_top1" in e and e["saved_bytes"] > 0 for e in epochs)
    assert len(steps) == 6 and steps[-1]["step"] == 3 and steps[-1]["loss"] > 0
    # The printed validation accuracy of the last epoch is the accuracy of the exported model.
    ev = lowbit.evaluate(str(tmp_path / "py.onnx"), "fashion-mnist:test[0:200]", progress=False)
    assert ev["top1"] == pytest.approx(epochs[-1]["val_top1"], abs=1e-9)


def test_python_qat_errors_are_the_cli_errors(tmp_path):
    with pytest.raises(lowbit.Error, match="unknown QAT method 'nope'"):
        lowbit.qat(MODEL, "fashion-mnist:train", method="nope", num_samples=64, progress=False)
    with pytest.raises(lowbit.Error, match="QAT trains static quantization"):
        lowbit.qat(MODEL, "fashion-mnist:train", config={"mode": "dynamic"}, num_samples=64, progress=False)
