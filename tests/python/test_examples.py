"""The README's Python example and docs/api.md's C++ example run as written and agree with the CLI."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import CLI, ROOT


def readme_example():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- python-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md has no <!-- python-example --> block"
    return m.group(1)


def test_readme_python_example_runs_as_written(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 5
    # It runs from the repository root (it reads models/...); its output file goes to a scratch copy of that layout.
    os.symlink(ROOT / "models", tmp_path / "models")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "")))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "fashion_cnn.w8a8.onnx"
    assert out.exists()
    top1 = float(r.stdout.strip().splitlines()[-1])
    # The printed accuracy is the exported file's accuracy as `lowbit eval` measures it.
    ev = json.loads(subprocess.run([CLI, "eval", str(out), "-d", "fashion-mnist:test", "--json"], capture_output=True,
                                   text=True, check=True).stdout)
    assert top1 == ev["top1_percent"]


def test_api_doc_shows_the_built_cpp_example():
    doc = (ROOT / "docs" / "api.md").read_text()
    assert (ROOT / "examples" / "quantize.cpp").read_text() in doc


def test_cpp_example_writes_what_the_cli_writes(tmp_path):
    example = os.environ.get("LOWBIT_API_EXAMPLE")
    if not example:
        pytest.skip("LOWBIT_API_EXAMPLE is not set (run through ctest)")
    model = str(ROOT / "models" / "fashion_cnn.onnx")
    out = tmp_path / "cpp.onnx"
    r = subprocess.run([example, model, str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run([CLI, "quantize", model, "-d", "fashion-mnist:train", "-n", "500", "--weights", "w4", "-o",
                    str(tmp_path / "cli.onnx"), "--save-encodings", str(tmp_path / "cli.json")],
                   capture_output=True, check=True)
    assert out.read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    assert (tmp_path / "cpp.onnx.encodings.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    fp32, w4 = map(float, re.search(r"FP32 top-1 ([0-9.]+)%, W4A8 top-1 ([0-9.]+)%", r.stdout).groups())
    ev = json.loads(subprocess.run([CLI, "eval", str(out), "-d", "fashion-mnist:test", "-n", "1000", "--json"],
                                   capture_output=True, text=True, check=True).stdout)
    assert w4 == round(ev["top1_percent"], 2)
    ref = json.loads(subprocess.run([CLI, "eval", model, "-d", "fashion-mnist:test", "-n", "1000", "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert fp32 == round(ref["top1_percent"], 2)
