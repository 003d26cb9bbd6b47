"""Hardware profiles: every shipped profile quantizes the zoo ResNet, and its constraints are visible, exactly, in
the exported QDQ model; configs and flags that break a profile are errors naming the key."""
import json
import math
import subprocess

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
    grids = set()
    for n in qs:
        s, z = e.init[n.input[1]], e.init[n.input[2]]
        grids.add(z.dtype)
        if a["signed"] == "auto":  # per tensor from the data: uint8 where nothing is below zero, zero point 0 always
            assert (z == 0).all()
            src = e.producer.get(n.input[0])
            if src is not None and src.op_type == "Relu":
                assert z.dtype == np.uint8, n.input[0]
        else:
            assert z.dtype == (np.int8 if a["signed"] else np.uint8)
        if a["symmetric"] and a["signed"] is True:
            assert (z == 0).all()
        if a["scale"] == "power_of_two":
            assert is_power_of_two(s)
        if a["bits"] < 8:  # a narrower grid in the 8-bit container: an exact Clip after DequantizeLinear
            dq = e.consumers[n.output[0]][0]
            assert dq.op_type == "DequantizeLinear" and e.consumers[dq.output[0]][0].op_type == "Clip"
    if a["signed"] == "auto":  # the ResNet has both: ReLU outputs and the input images, the logits and residual sums
        assert grids == {np.dtype(np.int8), np.dtype(np.uint8)}


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
        (lambda p: p.update(integer_ops={"softmax": "lut16"}), "integer_ops.softmax: 'lut16' is not float or exp_table"),
        (lambda p: p.update(integer_ops={"gelu": "float"}), "integer_ops.gelu: unknown key"),
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


def aimet_model(prepared_path, enc):
    """The prepared float model with the AIMET file's encodings put in as QuantizeLinear/DequantizeLinear (what a
    converter reading the file as quantization overrides does): activations by tensor name, weights as integer codes
    on AIMET's unsigned grid, q_u = clip(round(w / s) - offset, 0, 2^b - 1), stored as int8 (q_u - 128)."""
    from onnx import helper
    m = onnx.load(str(prepared_path))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    axis_of = {}
    for n in g.node:
        if len(n.input) > 1 and n.input[1] in enc["param_encodings"]:
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            axis_of[n.input[1]] = 0 if n.op_type == "Conv" or (n.op_type == "Gemm" and trans_b) else 1
    new_inits, new_nodes, rename = [], [], {}
    for name, entries in enc["param_encodings"].items():
        assert all(e["bitwidth"] == 8 and e["dtype"] == "int" for e in entries)
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        ax = axis_of[name]
        s = np.array([e["scale"] for e in entries], np.float32)
        off = np.array([e["offset"] for e in entries])
        shape = [1] * w.ndim
        shape[ax] = -1
        q_u = np.clip(np.round(w / s.reshape(shape)) - off.reshape(shape), 0, 255)
        codes = (q_u - 128).astype(np.int8)
        zp = np.array([-e["offset"] - 128 for e in entries], np.int8)
        g.initializer.remove(inits[name])
        new_inits += [numpy_helper.from_array(codes, name + "/codes"), numpy_helper.from_array(s, name + "/scale"),
                      numpy_helper.from_array(zp, name + "/zp")]
        new_nodes.append(helper.make_node("DequantizeLinear", [name + "/codes", name + "/scale", name + "/zp"], [name],
                                          axis=ax))
    producers = {o: n for n in g.node for o in n.output}
    for name, (e,) in enc["activation_encodings"].items():
        assert e["bitwidth"] == 8
        new_inits += [numpy_helper.from_array(np.array(e["scale"], np.float32), name + "/s"),
                      numpy_helper.from_array(np.array(-e["offset"], np.uint8), name + "/z")]
        p = producers.get(name)
        if p is None:  # a model input: its readers take the dequantized copy
            src, dst = name, name + "/dq"
            rename[name] = dst
        else:  # a node output: the node writes a float copy, the pair writes the name the readers use
            src, dst = name + "/float", name
            p.output[list(p.output).index(name)] = src
        new_nodes += [helper.make_node("QuantizeLinear", [src, name + "/s", name + "/z"], [name + "/q"]),
                      helper.make_node("DequantizeLinear", [name + "/q", name + "/s", name + "/z"], [dst])]
    for n in g.node:
        for i, v in enumerate(n.input):
            if v in rename:
                n.input[i] = rename[v]
    g.initializer.extend(new_inits)
    nodes = list(g.node) + new_nodes
    del g.node[:]
    g.node.extend(nodes)  # not in order: the loader sorts the graph
    out = prepared_path.parent / "aimet_qdq.onnx"
    onnx.save(m, str(out))
    return out


@pytest.mark.parametrize("name", ["snpe", "qnn"])
def test_aimet_encodings_give_the_exported_model_bit_for_bit(tmp_path, name):
    # The snpe/qnn profiles write AIMET's format: the prepared float model plus the file, put together as a
    # converter does, computes exactly what lowbit's own QDQ export computes.
    assert lowbit.load_profile(name).encodings == "aimet"
    enc_path, prep, qdq = tmp_path / "m.encodings", tmp_path / "prepared.onnx", tmp_path / "m.onnx"
    subprocess.run([CLI, "quantize", str(RESNET), "-d", "fashion-mnist:train", "-n", "200", "--profile", name,
                    "-o", str(qdq), "--save-encodings", str(enc_path), "--save-prepared", str(prep)],
                   check=True, capture_output=True)
    enc = json.loads(enc_path.read_text())
    assert enc["version"] == "0.6.1" and enc["quantizer_args"]["per_channel_quantization"] == (name == "qnn")
    e = Exported(qdq)
    # Every activation quantizer of the export is in the file, with its scale and offset = -zero point.
    acts = {n.input[0].removesuffix("/float"): n for n in e.act_qs()}
    assert set(acts) == set(enc["activation_encodings"])
    for t, n in acts.items():
        (a,) = enc["activation_encodings"][t]
        assert np.float32(a["scale"]) == e.init[n.input[1]] and a["offset"] == -int(e.init[n.input[2]])
        assert a["min"] == a["offset"] * a["scale"] and a["max"] == (255 + a["offset"]) * a["scale"]
    per_channel = [len(v) for v in enc["param_encodings"].values()]
    assert all(k > 1 for k in per_channel) if name == "qnn" else all(k == 1 for k in per_channel)
    rebuilt = aimet_model(prep, enc)
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    a, b = (lowbit.Session(lowbit.Model.load(str(p))) for p in (qdq, rebuilt))
    ya = a.run({a.input_names[0]: x})[a.output_names[0]]
    yb = b.run({b.input_names[0]: x})[b.output_names[0]]
    assert np.array_equal(ya, yb)


def test_aimet_encodings_refuse_what_the_format_cannot_say(tmp_path):
    out = ["-o", str(tmp_path / "q.onnx"), "--save-encodings", str(tmp_path / "e.json")]
    msg = cli_error("quantize", RESNET, "-d", "fashion-mnist:train", "-n", "50", "--profile", "qnn", *out)
    assert "add --save-prepared" in msg and not (tmp_path / "q.onnx").exists()
    msg = cli_error("quantize", RESNET, "-d", "fashion-mnist:train", "-n", "50", "--group", "8",
                    "--encodings-format", "aimet", "--save-prepared", str(tmp_path / "p.onnx"), *out)
    assert "per-group encodings cannot be written in AIMET's 0.6.1 format" in msg
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "q.onnx").exists()
