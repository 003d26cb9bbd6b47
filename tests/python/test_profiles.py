"""Hardware profiles: every shipped profile quantizes the zoo ResNet, and its constraints are visible, exactly, in
the exported QDQ model; configs and flags that break a profile are errors naming the key."""
import json
import math

import numpy as np
import pytest

import lowbit

from conftest import CLI, ROOT
from test_api import RESNET, cli_error

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

PROFILES = sorted(p.stem for p in (ROOT / "profiles").glob("*.json") if p.stem != "schema")


def test_the_shipped_profiles_are_the_files_in_profiles():
    assert lowbit.profile_names() == PROFILES
    assert len(PROFILES) >= 10
    for name in PROFILES:
        p = lowbit.load_profile(name)
        assert p.name == name and p.comment and p.origin == "shipped"


class Exported:
    """The QDQ structure of an exported model: per tensor, its quantizer's scale and zero point."""

    def __init__(self, path):
        self.m = onnx.load(str(path))
        self.init = {i.name: numpy_helper.to_array(i) for i in self.m.graph.initializer}
        self.producer = {o: n for n in self.m.graph.node for o in n.output}
        self.consumers = {}
        for n in self.m.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def nodes(self, op):
        return [n for n in self.m.graph.node if n.op_type == op]

    def weight_dqs(self):  # DequantizeLinear of a constant (weights, int32 biases)
        return [n for n in self.nodes("DequantizeLinear") if n.input[0] in self.init]

    def act_qs(self):
        return self.nodes("QuantizeLinear")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("profiles")
    for name in PROFILES:
        q = lowbit.quantize(RESNET, "fashion-mnist:train", num_samples=200, profile=name, progress=False)
        q.export_qdq(str(d / (name + ".onnx")))
        out[name] = (lowbit.load_profile(name), json.loads(q.config.to_json()), Exported(d / (name + ".onnx")))
    return out


def is_power_of_two(s):
    m, _ = math.frexp(float(s))
    return m == 0.5


@pytest.mark.parametrize("name", PROFILES)
def test_profile_constraints_are_exact_in_the_exported_model(exported, name):
    profile, cfg, e = exported[name]
    w, a = cfg["weights"], cfg["activations"]
    assert cfg == json.loads(profile.config.to_json())  # the profile's config, unchanged, was used
    weights = [n for n in e.weight_dqs() if e.init[n.input[0]].dtype != np.int32]
    biases = [n for n in e.weight_dqs() if e.init[n.input[0]].dtype == np.int32]
    assert weights, "no quantized weights"
    for n in weights:
        q, s, z = (e.init[i] for i in n.input[:3])
        assert q.dtype == (np.int8 if w["signed"] else np.uint8)
        assert (z == 0).all(), "symmetric signed weights have zero point 0"
        if w["narrow"]:
            assert q.min() >= -127
        assert (s.size > 1) if w["granularity"] == "per_channel" else (s.size == 1)
        if w["scale"] == "power_of_two":
            assert all(is_power_of_two(v) for v in s.reshape(-1))
    assert bool(biases) == cfg["int32_bias"]
    for n in biases:
        assert (e.init[n.input[2]] == 0).all()
    qs = e.act_qs()
    assert qs, "no activation quantizers"
    for n in qs:
        s, z = e.init[n.input[1]], e.init[n.input[2]]
        assert z.dtype == (np.int8 if a["signed"] else np.uint8)
        if a["symmetric"] and a["signed"]:
            assert (z == 0).all()
        if a["scale"] == "power_of_two":
            assert is_power_of_two(s)
        if a["bits"] < 8:  # a narrower grid in the 8-bit container: an exact Clip after DequantizeLinear
            dq = e.consumers[n.output[0]][0]
            assert dq.op_type == "DequantizeLinear" and e.consumers[dq.output[0]][0].op_type == "Clip"


def add_input_sources(e):
    """For each Add, the op types that produce its inputs (skipping the QDQ pair and an exact Clip)."""
    r = []
    for add in e.nodes("Add"):
        srcs = []
        for i in add.input:
            p = e.producer.get(i)
            srcs.append(p.op_type if p is not None else "input")
        r.append(srcs)
    return r


def test_placement_follows_the_profile(exported):
    # TensorRT adds the residual into the convolution's 32-bit output: an Add reads a Conv output directly.
    assert any("Conv" in s for s in add_input_sources(exported["tensorrt"][2]))
    # ONNX Runtime's QLinearAdd reads quantized inputs only.
    assert all(set(s) <= {"DequantizeLinear", "Clip"} for s in add_input_sources(exported["onnxruntime-cpu"][2]))
    # Academic: Adds run in float (no quantizer reads their output); Conv inputs are quantized.
    e = exported["academic"][2]
    assert all(c.op_type != "QuantizeLinear" for add in e.nodes("Add") for c in e.consumers.get(add.output[0], []))
    for conv in e.nodes("Conv"):
        assert e.producer[conv.input[0]].op_type == "DequantizeLinear"


def test_a_flag_that_breaks_the_profile_is_an_error_naming_the_key(tmp_path):
    msg = cli_error("quantize", RESNET, "-d", "fashion-mnist:train", "-n", "50", "--profile", "tflite", "--weights",
                    "w4", "-o", str(tmp_path / "q.onnx"))
    assert msg == "profile 'tflite' runs 8-bit weights; the config asks for 4 (key weights.bits, flag --weights)"
    with pytest.raises(lowbit.Error) as e:
        lowbit.quantize(RESNET, "fashion-mnist:train", num_samples=50, profile="tflite", weights=4, progress=False)
    assert str(e.value) == msg
    cfg = tmp_path / "asym.json"
    cfg.write_text('{"weights": {"symmetric": false}}')
    msg = cli_error("quantize", RESNET, "-d", "fashion-mnist:train", "-n", "50", "--profile", "tensorrt", "--config",
                    str(cfg), "-o", str(tmp_path / "q.onnx"))
    assert msg == "profile 'tensorrt': weights.symmetric must be true on this target"
    assert not (tmp_path / "q.onnx").exists()
    # Within what the profile allows, flags work: per-tensor weights on TensorRT.
    lowbit.quantize(RESNET, "fashion-mnist:train", num_samples=50, profile="tensorrt", per_tensor=True, progress=False)


def test_unknown_and_malformed_profiles_are_named(tmp_path):
    msg = cli_error("quantize", RESNET, "--profile", "nosuch", "-o", str(tmp_path / "q.onnx"))
    assert msg.startswith("unknown profile 'nosuch': the shipped profiles are academic, ")
    bad = tmp_path / "mine.json"
    base = json.loads((ROOT / "profiles" / "tflite.json").read_text())
    for mutate, want in [
        (lambda p: p.pop("comment"), "a profile needs \"comment\""),
        (lambda p: p["config"]["weights"].update(bits=99), "bit width"),
        (lambda p: p.update(speed="fast"), "speed: unknown key"),
        (lambda p: p["requantize"].update(rounding="stochastic"), "is not half_even, half_away or half_up"),
        (lambda p: p["allowed"].update(weight_bits=[4]), "is not in allowed.weight_bits"),
    ]:
        p = json.loads(json.dumps(base))
        mutate(p)
        bad.write_text(json.dumps(p))
        with pytest.raises(lowbit.Error, match=str(bad).replace(".", r"\.")) as e:
            lowbit.load_profile(str(bad))
        assert want in str(e.value)
    # A valid user profile file loads by path and quantizes.
    ok = tmp_path / "target.json"
    ok.write_text(json.dumps(dict(base, profile="target")))
    q = lowbit.quantize(RESNET, "fashion-mnist:train", num_samples=50, profile=str(ok), progress=False)
    assert any("profile target" in n for n in q.notes)
