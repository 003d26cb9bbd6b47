"""The Python package against the CLI: same files byte for byte, same error messages, data from Python."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import lowbit

from conftest import CLI, ROOT

RESNET = str(ROOT / "models" / "zoo" / "resnet.onnx")
SAMPLE = str(ROOT / "models" / "fashion_sample.npy")


def run_cli(*args, check=True):
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("lowbit %s failed: %s" % (" ".join(args), r.stderr))
    return r


def cli_error(*args):
    r = run_cli(*args, check=False)
    assert r.returncode == 1, r.stdout
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("lowbit: error: "), line
    return line[len("lowbit: error: "):]


def test_version_is_the_cmake_project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert lowbit.__version__ == re.search(r"project\(lowbit VERSION ([0-9.]+)", text).group(1)


# CLI flags and the same request through the Python API.
CASES = {
    "default": (["-d", "fashion-mnist:train", "-n", "200"],
                dict(data="fashion-mnist:train", num_samples=200)),
    "w4_per_tensor_mse": (["-d", "fashion-mnist:train", "-n", "100", "--weights", "w4", "--per-tensor", "--range", "mse"],
                          dict(data="fashion-mnist:train", num_samples=100, weights=4, per_tensor=True, range="mse")),
    "standard_adaround": (["-d", "fashion-mnist:train", "-n", "100", "--pipeline", "standard", "--weights", "w4",
                           "--adaround-iters", "10", "--ptq-samples", "64"],
                          dict(data="fashion-mnist:train", num_samples=100, pipeline="standard", weights=4,
                               config={"pipeline": {"adaround_iterations": 10, "samples": 64}})),
    "group_weight_only": (["--group", "8", "--weights", "w4", "--mode", "weight-only"],
                          dict(group=8, weights=4, mode="weight-only")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_python_writes_the_cli_files_byte_for_byte(tmp_path, case):
    flags, kwargs = CASES[case]
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("config"), dict):
        # The pipeline knobs without a CLI flag of their own go in a config file for the CLI, a dict for Python.
        cfg = tmp_path / "cfg.json"
        cfg.write_text(json.dumps(kwargs["config"]))
        flags = flags + ["--config", str(cfg)]
    run_cli("quantize", RESNET, *flags, "-o", str(tmp_path / "cli.onnx"), "--save-encodings", str(tmp_path / "cli.json"))
    q = lowbit.quantize(RESNET, progress=False, **kwargs)
    q.export_qdq(str(tmp_path / "py.onnx"))
    q.save_encodings(str(tmp_path / "py.json"))
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    assert (tmp_path / "py.json").read_bytes() == (tmp_path / "cli.json").read_bytes()


def batches(x, n):
    return [{"image": x[i:i + n]} for i in range(0, len(x), n)]


def test_a_python_iterable_calibrates_as_the_same_arrays_do_through_the_cli(tmp_path):
    x = np.load(SAMPLE)
    run_cli("quantize", RESNET, "-d", "npy:" + SAMPLE, "-b", "4", "-o", str(tmp_path / "cli.onnx"),
            "--save-encodings", str(tmp_path / "cli.json"))
    from_list = lowbit.quantize(RESNET, batches(x, 4), progress=False)
    from_generator = lowbit.quantize(RESNET, (b for b in batches(x, 4)), progress=False)
    from_arrays = lowbit.quantize(RESNET, {"image": x}, batch_size=4, progress=False)
    expected = (tmp_path / "cli.json").read_text()
    assert from_list.encodings_json() == expected
    assert from_generator.encodings_json() == expected
    assert from_arrays.encodings_json() == expected
    from_list.export_qdq(str(tmp_path / "py.onnx"))
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()


def test_a_generator_read_twice_is_an_error_not_silence():
    x = np.load(SAMPLE)
    # KL ranges need a second pass over the data (the range first, then the histogram).
    with pytest.raises(lowbit.Error, match="already read once"):
        lowbit.quantize(RESNET, (b for b in batches(x, 4)), range="kl", progress=False)
    # A re-iterable object (what a DataLoader is) gives both passes.
    class Loader:
        def __iter__(self):
            return iter(batches(x, 4))

        def __len__(self):
            return 4
    q = lowbit.quantize(RESNET, Loader(), range="kl", progress=False)
    assert q.encodings_json() == lowbit.quantize(RESNET, {"image": x}, batch_size=4, range="kl",
                                                 progress=False).encodings_json()


def test_a_torch_dataloader_feeds_calibration():
    torch = pytest.importorskip("torch")
    x = np.load(SAMPLE)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"image": torch.from_numpy(x[i])}

    loader = torch.utils.data.DataLoader(Images(), batch_size=4, shuffle=False)
    q = lowbit.quantize(RESNET, loader, progress=False)
    assert q.encodings_json() == lowbit.quantize(RESNET, batches(x, 4), progress=False).encodings_json()


def test_labelled_python_data_evaluates_like_the_cli(tmp_path):
    x = np.load(SAMPLE)
    labels = np.load(str(ROOT / "models" / "fashion_sample_labels.npy"))
    r = run_cli("eval", RESNET, "-d", "npy:%s,labels=%s" % (SAMPLE, ROOT / "models" / "fashion_sample_labels.npy"),
                "--json")
    want = json.loads(r.stdout)
    got = lowbit.evaluate(RESNET, [({"image": x[i:i + 5]}, labels[i:i + 5]) for i in range(0, len(x), 5)],
                          progress=False)
    assert got["samples"] == want["samples"] == len(x)
    assert got["top1"] == want["top1_percent"]


# Bad input: the Python exception carries exactly the message the CLI prints.
def test_errors_are_lowbit_error_with_the_cli_message(tmp_path):
    missing = str(tmp_path / "none.onnx")
    with pytest.raises(lowbit.Error) as e:
        lowbit.Model.load(missing)
    assert str(e.value) == cli_error("info", missing)

    bad = tmp_path / "bad.json"
    bad.write_text('{"weights": {"bitz": 4}}')
    with pytest.raises(lowbit.Error) as e:
        lowbit.quantize(RESNET, "fashion-mnist:train", config=str(bad), progress=False)
    assert str(e.value) == cli_error("quantize", RESNET, "-d", "fashion-mnist:train", "--config", str(bad),
                                     "-o", str(tmp_path / "q.onnx"))

    with pytest.raises(lowbit.Error) as e:
        lowbit.quantize(RESNET, "npy:" + str(tmp_path / "none.npy"), progress=False)
    assert str(e.value) == cli_error("quantize", RESNET, "-d", "npy:" + str(tmp_path / "none.npy"),
                                     "-o", str(tmp_path / "q.onnx"))

    with pytest.raises(lowbit.Error) as e:
        lowbit.quantize(RESNET, None, progress=False)
    assert str(e.value) == cli_error("quantize", RESNET, "-o", str(tmp_path / "q.onnx"))
    assert not (tmp_path / "q.onnx").exists()


def two_input_model(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["h"], name="mm"),
         helper.make_node("Add", ["h", "b"], ["s"], name="add"),
         helper.make_node("Relu", ["s"], ["y"], name="relu")],
        "two_inputs",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 8]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


def test_a_two_input_model_quantizes_from_python_as_from_the_cli(tmp_path):
    model = tmp_path / "two.onnx"
    two_input_model(model)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 8)).astype(np.float32)
    b = rng.standard_normal((64, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    run_cli("quantize", str(model), "-d", "a=npy:%s" % (tmp_path / "a.npy"), "-d", "b=npy:%s" % (tmp_path / "b.npy"),
            "-b", "16", "-o", str(tmp_path / "cli.onnx"), "--save-encodings", str(tmp_path / "cli.json"))
    q = lowbit.quantize(str(model), {"a": a, "b": b}, batch_size=16, progress=False)
    q.export_qdq(str(tmp_path / "py.onnx"))
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    assert q.encodings_json() == (tmp_path / "cli.json").read_text()
    quantized_inputs = {t for t in json.loads(q.encodings_json())["activations"]}
    assert {"a", "b"} <= quantized_inputs
    # The exported model runs from Python too, on both inputs.
    out = lowbit.Session(lowbit.Model.load(str(tmp_path / "py.onnx"))).run({"a": a[:3], "b": b[:3]})
    assert out["y"].shape == (3, 4) and (out["y"] >= 0).all()


def test_session_returns_the_cli_run_output_without_copying(tmp_path):
    x = np.load(SAMPLE)
    run_cli("run", RESNET, "--input", "image=" + SAMPLE, "-o", str(tmp_path / "out.npz"))
    s = lowbit.Session(lowbit.Model.load(RESNET))
    assert s.input_names == ["image"] and s.output_names == ["logits"]
    y = s.run({"image": x})["logits"]
    assert not y.flags.owndata  # a view of lowbit's buffer, kept alive by the array
    np.testing.assert_array_equal(y, np.load(tmp_path / "out.npz")["logits"])
    with pytest.raises(lowbit.Error, match="no value given for model input 'image'"):
        s.run({})


def test_progress_callable_sees_calibration():
    x = np.load(SAMPLE)
    seen = []
    lowbit.quantize(RESNET, {"image": x}, batch_size=4, progress=lambda what, done, total: seen.append((what, done, total)))
    assert ("calibrate", 16, 16) in seen


def test_analyze_from_python_writes_the_report(tmp_path):
    q = lowbit.quantize(RESNET, "fashion-mnist:train", num_samples=100, weights=4, progress=False)
    report = q.analyze("fashion-mnist:train", "fashion-mnist:test", num_samples=100, out_dir=str(tmp_path / "r"),
                       progress=False)
    assert (tmp_path / "r" / "index.html").exists()
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == report


CAST_TO_STRING = "/usr/share/libonnx-testdata/data/node/test_cast_FLOAT_to_STRING/model.onnx"
CAST_FROM_STRING = "/usr/share/libonnx-testdata/data/node/test_cast_STRING_to_FLOAT/model.onnx"


def test_string_tensors_cross_the_binding_as_str_arrays(tmp_path):
    # Out: an object array of str, as ONNX Runtime returns it; the CLI's .npy holds the same strings ('<U').
    x = np.array([[0.6048455, 1e-5, 3.0, -0.0]] * 3, dtype=np.float32)
    y = lowbit.Session(lowbit.Model.load(CAST_TO_STRING)).run({"input": x})["output"]
    assert y.dtype == object and y.shape == (3, 4)
    assert y[0].tolist() == ["0.6048455", "1e-05", "3", "-0"]
    np.save(tmp_path / "x.npy", x)
    run_cli("run", CAST_TO_STRING, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"))
    assert np.load(tmp_path / "y.npy").tolist() == y.tolist()
    # In: str ('U'), bytes ('S') and object arrays all read as the same strings; anything else in an object array
    # is an error naming the element.
    s = lowbit.Session(lowbit.Model.load(CAST_FROM_STRING))
    for a in (y, y.astype(str), y.astype(bytes)):
        np.testing.assert_array_equal(s.run({"input": a})["output"], x)
    bad = y.copy()
    bad[1, 2] = 7
    with pytest.raises(lowbit.Error, match="element 6 of an object array is <class 'int'>"):
        s.run({"input": bad})
