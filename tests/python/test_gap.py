"""lowbit gap: the deployment gap per profile. Its accuracies are the numbers `lowbit eval` gives for the same files
and samples; a layer given the simulation's input codes differs from the simulation by at most one step (the
arithmetic allows no more: only the requantization's rounding differs); the CLI and the Python package agree."""
import json

import pytest

import lowbit

from conftest import ROOT
from test_api import RESNET, cli_error, run_cli

PROFILES = ["onnxruntime-cpu", "openvino-cpu", "tflite", "tvm"]
EVAL = ["--eval-data", "fashion-mnist:test", "--eval-samples", "200"]


@pytest.fixture(scope="module")
def gap(tmp_path_factory):
    d = tmp_path_factory.mktemp("gap")
    args = ["gap", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", *EVAL, "-o", str(d / "report"), "--json"]
    for p in PROFILES:
        args += ["--profile", p]
    r = run_cli(*args)
    return d, json.loads(r.stdout)


def by_name(g, profile):
    return next(p for p in g["profiles"] if p["profile"] == profile)


def top1(*args):
    return json.loads(run_cli("eval", *args, "-d", "fashion-mnist:test", "-n", "200", "--json").stdout)["top1_percent"]


def test_gap_accuracies_are_the_files_accuracies(gap):
    d, g = gap
    assert g["samples"] == 200 and [p["profile"] for p in g["profiles"]] == PROFILES
    assert g["fp32_top1_percent"] == top1(str(RESNET))
    for p in g["profiles"]:
        q = d / (p["profile"] + ".onnx")
        run_cli("quantize", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", "--profile", p["profile"], "-o", str(q))
        assert p["sim_top1_percent"] == top1(str(q))
        assert p["int_top1_percent"] == top1(str(q), "--engine", "int", "--profile", p["profile"])


def test_isolated_layers_differ_by_at_most_one_step(gap):
    _, g = gap
    for p in g["profiles"]:
        # Every integer layer with integer output codes is compared; a float-bias profile's Convs whose residual Add
        # is fused into them output float and are counted apart.
        assert p["integer_layers"] == len(p["layers"]) + p["float_output_layers"] and p["layers"]
        assert (p["float_output_layers"] > 0) == (p["profile"] == "openvino-cpu")  # the ResNet's four residual Adds
        for layer in p["layers"]:
            assert layer["elements"] > 0
            assert layer["isolated"]["max_steps"] <= 1, (p["profile"], layer)
        # The first layer reads the model input's codes, the same in both runs: isolated and propagated agree.
        first = p["layers"][0]
        assert first["isolated"] == first["propagated"]
    # Under fixed-point arithmetic with ties away from zero, single-step flips compound through the network: the
    # last layer differs far more when each run carries its own codes than on the simulation's inputs.
    last = next(p for p in g["profiles"] if p["profile"] == "tflite")["layers"][-1]
    assert last["propagated"]["differing_percent"] > last["isolated"]["differing_percent"] + 1


def test_gap_report_files_and_python_agree(gap):
    d, g = gap
    assert json.loads((d / "report" / "gap.json").read_text()) == g
    html = (d / "report" / "index.html").read_text()
    for p in PROFILES:
        assert 'id="gap-%s"' % p in html
    m = lowbit.Model.load(str(RESNET))
    py = lowbit.gap(m, "fashion-mnist:train", lowbit.data("fashion-mnist:test", m, num_samples=200), "tflite",
                    num_samples=200, progress=False)
    assert py["profiles"][0] == by_name(g, "tflite")


def test_gap_on_a_qdq_file_made_elsewhere(gap, tmp_path):
    # --qdq: a QDQ file as it is (here lowbit's own tflite file) under one profile's arithmetic.
    d, g = gap
    q = tmp_path / "tflite.onnx"
    run_cli("quantize", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", "--profile", "tflite", "-o", str(q))
    r = json.loads(run_cli("gap", str(q), "--qdq", "--profile", "tflite", "--reference", str(RESNET), *EVAL,
                           "-o", str(tmp_path / "r"), "--json").stdout)
    assert r["profiles"][0] == by_name(g, "tflite") and r["fp32_top1_percent"] == g["fp32_top1_percent"]
    # Without --reference the FP32 accuracy is unknown, and not reported.
    r = json.loads(run_cli("gap", str(q), "--qdq", "--profile", "tflite", *EVAL, "-o", str(tmp_path / "r2"),
                           "--json").stdout)
    assert "fp32_top1_percent" not in r and r["profiles"][0] == by_name(g, "tflite")


def test_gap_errors_name_the_problem(tmp_path):
    out = ["-o", str(tmp_path / "r")]
    assert cli_error("gap", str(RESNET), "--qdq", *EVAL, *out) == \
        "--qdq measures one QDQ model under one target: pass --profile P once"
    assert cli_error("gap", str(RESNET), "--qdq", "--profile", "tflite", *EVAL, *out) == \
        "gap: profile 'tflite': the QDQ model has no Conv/Gemm/MatMul in QDQ form to run in integers"
    assert cli_error("gap", str(RESNET), "--profile", "nosuch", *EVAL, *out).startswith("unknown profile 'nosuch'")
    assert not (tmp_path / "r").exists()


def test_maxpool_runs_on_codes(tmp_path):
    # The zoo Inception's MaxPools sit between a quantized tensor and the next Conv: on integer codes they select
    # what they select in float, so every Conv becomes an integer layer and no MaxPool stays a float island.
    zoo = ROOT / "models" / "zoo"
    g = json.loads(run_cli("gap", str(zoo / "inception.onnx"), "-d", "fashion-mnist:train", "-n", "100",
                           "--eval-data", "fashion-mnist:test", "--eval-samples", "100", "--profile",
                           "onnxruntime-cpu", "-o", str(tmp_path / "r"), "--json").stdout)
    (p,) = g["profiles"]
    assert p["left_in_float"] == [] and "MaxPool" not in p["float_islands"] and "Conv" not in p["float_islands"]
    assert all(layer["isolated"]["max_steps"] <= 1 for layer in p["layers"])
    assert p["top1_agreement_percent"] >= 99


def test_float_bias_engine_is_its_formula(tmp_path):
    # profile openvino-cpu, "requantize": {"bias": "float"}: v = float32(acc) * float32(s_x * s_w[c]) + b[c], then
    # round(v / s_y) + z_y (ties to even); a Conv whose output has no quantizer (its Add fused into the convolution)
    # runs in integers and returns v. The expected values are computed here in numpy float32, independently of
    # the engine. Catches: the int32 form (bias rounded onto s_x * s_w, then acc * M rounded) in place of the float
    # one (the last assertion shows these data tell them apart), a float-output layer left in float or quantized. (Which float32 product forms s_acc, sx * sw or a
    # double product rounded once, differs too rarely to show on these 4800 outputs.)
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    sx, zx, sy, zy, sz, zz = np.float32(0.0213), 3, np.float32(0.0457), 0, np.float32(0.0391), 0
    w1 = rng.integers(-127, 128, (6, 4, 1, 1)).astype(np.int8)
    w2 = rng.integers(-127, 128, (4, 4, 1, 1)).astype(np.int8)
    s1 = (rng.uniform(0.002, 0.02, 6)).astype(np.float32)
    s2 = (rng.uniform(0.002, 0.02, 4)).astype(np.float32)
    b1 = rng.uniform(-0.5, 0.5, 6).astype(np.float32)
    b2 = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    t = numpy_helper.from_array
    inits = [t(np.array(sx), "sx"), t(np.array(zx, np.uint8), "zx"), t(w1, "w1"), t(s1, "s1"), t(np.zeros(6, np.int8), "z1"),
             t(b1, "b1"), t(w2, "w2"), t(s2, "s2"), t(np.zeros(4, np.int8), "z2"), t(b2, "b2"),
             t(np.array(sy), "sy"), t(np.array(zy, np.uint8), "zy"), t(np.array(sz), "sz"), t(np.array(zz, np.int8), "zz")]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), n("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             n("DequantizeLinear", ["w1", "s1", "z1"], ["w1d"], axis=0), n("Conv", ["xd", "w1d", "b1"], ["c1"]),
             n("Relu", ["c1"], ["r1"]), n("QuantizeLinear", ["r1", "sy", "zy"], ["yq"]),
             n("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
             n("DequantizeLinear", ["w2", "s2", "z2"], ["w2d"], axis=0), n("Conv", ["xd", "w2d", "b2"], ["c2"]),
             n("Add", ["c2", "xd"], ["a"]), n("QuantizeLinear", ["a", "sz", "zz"], ["aq"]),
             n("DequantizeLinear", ["aq", "sz", "zz"], ["z"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 20, 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "float_bias.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.uniform(-0.2, 5.0, (2, 4, 20, 20)).astype(np.float32)

    xq = np.clip(np.round(x / sx) + zx, 0, 255).astype(np.int64)  # QuantizeLinear: float32 quotient, ties to even

    def v_of(w, s, b):
        acc = np.einsum("nchw,mc->nmhw", xq - zx, w[:, :, 0, 0].astype(np.int64))
        return acc.astype(np.float32) * (sx * s)[None, :, None, None] + b[None, :, None, None]

    y_want = (np.clip(np.round(v_of(w1, s1, b1) / sy) + zy, zy, 255).astype(np.float32) - zy) * sy
    a = v_of(w2, s2, b2) + (xq - zx).astype(np.float32) * sx
    z_want = (np.clip(np.round(a / sz) + zz, -128, 127).astype(np.float32) - zz) * sz

    lowered, rep = lowbit.lower(lowbit.Model.load(str(path)), "openvino-cpu")
    assert rep["integer_layers"] == 2 and "Conv" not in rep["float_islands"]
    out = lowbit.Session(lowered).run({"x": x})
    np.testing.assert_array_equal(out["y"], y_want)
    np.testing.assert_array_equal(out["z"], z_want)
    # The int32-bias engine (onnxruntime-cpu) rounds b onto s_x * s_w: not this arithmetic on every element.
    low_ort, _ = lowbit.lower(lowbit.Model.load(str(path)), "onnxruntime-cpu")
    assert not np.array_equal(lowbit.Session(low_ort).run({"x": x})["y"], y_want)
