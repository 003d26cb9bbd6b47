"""lowbit gap: the deployment gap per profile. Its accuracies are the numbers `lowbit eval` gives for the same files
and samples; a layer given the simulation's input codes differs from the simulation by at most one step (the
arithmetic allows no more: only the requantization's rounding differs); the CLI and the Python package agree."""
import json

import pytest

import lowbit

from conftest import ROOT
from test_api import RESNET, cli_error, run_cli

PROFILES = ["onnxruntime-cpu", "tflite", "tvm"]
EVAL = ["--eval-data", "fashion-mnist:test", "--eval-samples", "200"]


@pytest.fixture(scope="module")
def gap(tmp_path_factory):
    d = tmp_path_factory.mktemp("gap")
    args = ["gap", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", *EVAL, "-o", str(d / "report"), "--json"]
    for p in PROFILES:
        args += ["--profile", p]
    r = run_cli(*args)
    return d, json.loads(r.stdout)


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
        assert p["integer_layers"] == len(p["layers"]) > 0
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
    assert py["profiles"][0] == g["profiles"][1]


def test_gap_on_a_qdq_file_made_elsewhere(gap, tmp_path):
    # --qdq: a QDQ file as it is (here lowbit's own tflite file) under one profile's arithmetic.
    d, g = gap
    q = tmp_path / "tflite.onnx"
    run_cli("quantize", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", "--profile", "tflite", "-o", str(q))
    r = json.loads(run_cli("gap", str(q), "--qdq", "--profile", "tflite", "--reference", str(RESNET), *EVAL,
                           "-o", str(tmp_path / "r"), "--json").stdout)
    assert r["profiles"][0] == g["profiles"][1] and r["fp32_top1_percent"] == g["fp32_top1_percent"]
    # Without --reference the FP32 accuracy is unknown, and not reported.
    r = json.loads(run_cli("gap", str(q), "--qdq", "--profile", "tflite", *EVAL, "-o", str(tmp_path / "r2"),
                           "--json").stdout)
    assert "fp32_top1_percent" not in r and r["profiles"][0] == g["profiles"][1]


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
