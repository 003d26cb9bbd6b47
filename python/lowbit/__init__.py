"""lowbit: neural-network quantization (a thin layer over the C++ library).

    import lowbit
    model = lowbit.Model.load("model.onnx")
    q = lowbit.quantize(model, data="fashion-mnist:train", num_samples=500, weights=4)
    q.export_qdq("model.qdq.onnx")
    print(q.evaluate("fashion-mnist:test")["top1"])

Data (calibration, evaluation) can be: a dataset spec string or a list of NAME=SPEC strings (the CLI's --data
syntax), a dict of NumPy arrays (split into batches along axis 0), a lowbit.DataSource, or any Python iterable whose
items are dicts of arrays (input name -> array with a batch axis) or (dict, labels) pairs: a list, a generator
function's result, a PyTorch DataLoader yielding dicts. An iterable that cannot be restarted (a generator) is read
once; steps that need a second pass then raise lowbit.Error.
"""
from __future__ import annotations

import json as _json

import numpy as _np

from ._lowbit import (ArraySource, DataSource, Error, EvalResult, Model, Profile, QuantConfig, QuantizedModel,
                      Session, __version__, load_profile, lower, open_data as _open_data, profile_names)
from . import _lowbit

__all__ = ["ArraySource", "DataSource", "Error", "Model", "Profile", "QuantConfig", "QuantizedModel", "Session",
           "__version__", "analyze", "config", "data", "evaluate", "gap", "load_profile", "lower", "profile_names", "qat", "quantize"]


class _IterableSource:
    """Adapts a Python iterable to the next_batch()/reset()/size()/describe() protocol the C++ side calls."""

    def __init__(self, iterable):
        self._src = iterable
        self._it = None
        self._started = False
        self._one_shot = iter(iterable) is iterable  # an iterator or generator: it cannot start again

    def reset(self):
        self._it = None  # the next next_batch() starts a new pass (or raises for a spent one-shot iterator)

    def next_batch(self):
        if self._it is None:
            if self._one_shot and self._started:
                raise Error("the data is a generator or iterator, already read once, and this step needs another pass: "
                            "pass a list or a re-iterable object (e.g. a DataLoader) instead")
            self._it = iter(self._src)
        self._started = True
        item = next(self._it, None)
        if item is None:
            return None
        labels = None
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise Error("a data item must be a dict of arrays or a (dict, labels) pair, got a sequence of %d"
                            % len(item))
            item, labels = item
        if not isinstance(item, dict):
            raise Error("a data item must be a dict of arrays (input name -> array), got %s" % type(item).__name__)
        feeds = {str(k): _np.ascontiguousarray(_np.asarray(v)) for k, v in item.items()}
        if labels is not None:
            labels = [int(x) for x in _np.asarray(labels).reshape(-1)]
        return feeds, labels

    def size(self):
        return -1

    def describe(self):
        return "Python %s" % type(self._src).__name__


def data(source, model: Model = None, *, batch_size: int = 100, num_samples: int = -1, seed: int = 0,
         labels=None, channels: int = 0, resize: int = 0, crop=None, scale: float = 1.0 / 255.0, mean=(), std=(),
         bgr: bool = False):
    """A data source for `model` from a spec string or list of specs, a dict of arrays, or a Python iterable.

    Spec options follow the CLI: batch_size, num_samples (a seeded random subset), seed, and image preprocessing
    (channels, resize, crop=(h, w) or n, scale, mean, std, bgr). `labels` goes with a dict of arrays.
    """
    if source is None or isinstance(source, DataSource) or isinstance(source, _IterableSource):
        return source
    if isinstance(source, str):
        source = [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, str) for s in source):
        if model is None:
            raise Error("a data spec needs the model whose inputs it feeds")
        ch, cw = (0, 0) if crop is None else ((crop, crop) if isinstance(crop, int) else tuple(crop))
        return _open_data(list(source), model, batch_size, num_samples, seed, channels, resize, ch, cw, scale,
                          list(mean), list(std), bgr)
    if isinstance(source, dict):
        arrays = {str(k): _np.ascontiguousarray(_np.asarray(v)) for k, v in source.items()}
        lab = [] if labels is None else [int(x) for x in _np.asarray(labels).reshape(-1)]
        return ArraySource(arrays, lab, batch_size)
    try:
        iter(source)
    except TypeError:
        raise Error("data must be a spec string, a list of specs, a dict of arrays, a lowbit.DataSource or an "
                    "iterable of dicts, got %s" % type(source).__name__) from None
    return _IterableSource(source)


def config(base=None, over: QuantConfig = None, **fields) -> QuantConfig:
    """A QuantConfig: `over` (the defaults, or a profile's config) with `base` read over it (a config file path, a
    JSON string, a dict or a QuantConfig), and `fields` merged over that as JSON keys (nested dicts merge:
    config(weights={"bits": 4}))."""
    if base is None:
        cfg = over if over is not None else QuantConfig()
    elif isinstance(base, QuantConfig):
        cfg = base
    elif isinstance(base, dict):
        cfg = QuantConfig.from_json(_json.dumps(base), over)
    elif isinstance(base, str) and base.lstrip().startswith("{"):
        cfg = QuantConfig.from_json(base, over)
    else:
        cfg = QuantConfig.load(str(base), over)
    if not fields:
        return cfg
    merged = _json.loads(cfg.to_json())

    def merge(dst, src):
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            else:
                dst[k] = v
    merge(merged, fields)
    return QuantConfig.from_json(_json.dumps(merged))


def _granularity(per_tensor, group):
    if group:
        return {"granularity": "per_group", "group_size": int(group)}
    if per_tensor is None:
        return {}
    return {"granularity": "per_tensor" if per_tensor else "per_channel"}


def _with_flags(cfg, weights, acts, per_tensor, group, range, weight_range, mode):
    """The config with the CLI's bit-width, granularity, range and mode flags applied (None: not given)."""
    w, a, edits = {}, {}, {}
    if weights is not None:
        w["bits"] = int(weights)
    if acts is not None:
        a["bits"] = int(acts)
    w.update(_granularity(per_tensor, group))
    if range is not None:
        a["range"] = range
    if weight_range is not None:
        w["range"] = weight_range
    if w:
        edits["weights"] = w
    if a:
        edits["activations"] = a
    if mode is not None:
        edits["mode"] = mode.replace("-", "_")
    return globals()["config"](cfg, **edits) if edits else cfg


def quantize(model, data=None, config=None, *, profile=None, weights: int = None, acts: int = None,
             per_tensor: bool = None, group: int = None, range: str = None, weight_range: str = None,
             mode: str = None, pipeline: str = None, load_encodings: str = None, strict: bool = False, progress=True,
             **data_options) -> QuantizedModel:
    """Quantizes `model` (a lowbit.Model or a path) and returns a QuantizedModel.

    The keyword arguments mirror `lowbit quantize`: weights=4 (--weights w4), acts=8, per_tensor=True, group=G,
    range="mse", weight_range="mse", mode="weight-only", pipeline="standard" (the white paper's PTQ pipeline, applied
    before the other options, as on the command line). `config` is a QuantConfig, a config file path, a JSON string
    or a dict. `profile` (a shipped name such as "tflite", a JSON path, or a lowbit.Profile) is the target: the config
    starts from the profile's and must fit it (--profile). Data options (batch_size, num_samples, seed,
    preprocessing) apply to spec strings.
    `progress`: True (a bar on stderr, as in the CLI), False, or a callable(what, done, total).
    """
    if not isinstance(model, Model):
        model = Model.load(str(model))
    data_options.setdefault("num_samples", 1000)  # the CLI's default calibration subset
    src = globals()["data"](data, model, **data_options)
    if profile is not None and not isinstance(profile, Profile):
        profile = load_profile(str(profile))
    cfg = globals()["config"](config, over=profile.config if profile is not None else None)
    if pipeline is not None:
        if pipeline == "standard":
            cfg.apply_standard_pipeline(src is not None)
        elif pipeline != "none":
            raise Error("pipeline '%s': expected standard or none" % pipeline)
    cfg = _with_flags(cfg, weights, acts, per_tensor, group, range, weight_range, mode)
    return _lowbit._quantize(model, src, cfg, profile, load_encodings or "", strict, progress)


def qat(model, data, val=None, config=None, *, profile=None, weights: int = None, acts: int = None,
        per_tensor: bool = None, range: str = None, weight_range: str = None, pipeline: str = None,
        method: str = "lsq", epochs: int = 1, batch_size: int = 64, steps_per_epoch: int = 0,
        optimizer: str = "adam", lr: float = 1e-4, quant_lr: float = 1.0, momentum: float = 0.9,
        nesterov: bool = False, weight_decay: float = 0.0, schedule: str = "cosine", warmup: int = 0,
        distill: float = 0.0, temperature: float = 1.0, seed: int = 0, checkpoint: str = "", resume: bool = False,
        stop_after: int = 0, bn_fold: int = 0, freeze_bn_step: int = 0, calib_samples: int = 1000, train_samples: int = -1, progress=True, on_epoch=None,
        **data_options) -> QuantizedModel:
    """Quantization-aware training (`lowbit qat`): PTQ sets the starting quantizers (MSE ranges unless `config`,
    `profile` or range/weight_range say otherwise), then weights and quantizers train on `data` (labelled; a spec
    string, a DataSource or an iterable of (inputs, labels)), validated on `val` after each epoch. Returns the same
    QuantizedModel as quantize(): export_qdq, save_encodings, evaluate. The keywords mirror the CLI flags
    (method: "ste", "lsq", "lsq+" or "pact"; bn_fold: 0, 1 or 4).
    `progress`: True (a bar on stderr), False, or a callable(dict); `on_epoch`: a callable(dict) after each epoch."""
    if not isinstance(model, Model):
        model = Model.load(str(model))
    data_options.setdefault("batch_size", batch_size)
    src = globals()["data"](data, model, **data_options)
    vsrc = None
    if val is not None:
        vopts = {k: v for k, v in data_options.items() if k != "num_samples"}
        vsrc = globals()["data"](val, model, **vopts)
    if profile is not None and not isinstance(profile, Profile):
        profile = load_profile(str(profile))
    cfg = globals()["config"](config, over=profile.config if profile is not None else None)
    if pipeline == "standard":
        cfg.apply_standard_pipeline(True)
    elif pipeline not in (None, "none"):
        raise Error("pipeline '%s': expected standard or none" % pipeline)
    if config is None and profile is None:
        range = range or "mse"
        weight_range = weight_range or "mse"
    cfg = _with_flags(cfg, weights, acts, per_tensor, None, range, weight_range, None)
    opts = dict(method=method, epochs=int(epochs), batch_size=int(batch_size), steps_per_epoch=int(steps_per_epoch),
                optimizer=optimizer, lr=float(lr), quant_lr=float(quant_lr), momentum=float(momentum),
                nesterov=bool(nesterov), weight_decay=float(weight_decay), schedule=schedule, warmup=int(warmup),
                distill=float(distill), temperature=float(temperature), seed=int(seed), checkpoint=str(checkpoint),
                resume=bool(resume), stop_after=int(stop_after), bn_fold=int(bn_fold),
                freeze_bn_step=int(freeze_bn_step), calib_samples=int(calib_samples),
                train_samples=int(train_samples))
    return _lowbit._qat(model, src, vsrc, cfg, profile, opts, progress, on_epoch)


def evaluate(model, data, *, reference=None, progress=True, **data_options) -> dict:
    """Top-1/top-5 accuracy (labelled data) and fidelity against `reference` (a Model or path) over one pass of
    `data`: a dict with samples, seconds, top1, top5, reference_top1, mean_abs_error, max_abs_error, sqnr_db,
    cosine_similarity, top1_agreement (those that apply)."""
    if not isinstance(model, Model):
        model = Model.load(str(model))
    if reference is not None and not isinstance(reference, Model):
        reference = Model.load(str(reference))
    src = globals()["data"](data, model, **data_options)
    return _lowbit._evaluate(model, src, reference, progress).as_dict()


def _qm_evaluate(self, data, *, reference=None, progress=True, **data_options) -> dict:
    """Evaluates the QDQ model (the numbers the exported file gives); see lowbit.evaluate."""
    if reference is not None and not isinstance(reference, Model):
        reference = Model.load(str(reference))
    src = globals()["data"](data, self.qdq_model, **data_options)
    return self._evaluate(src, reference, progress).as_dict()


def analyze(quantized: QuantizedModel, calib, eval, *, metric: str = "accuracy", target_drop: float = None,
            raise_bits: int = 0, calib_samples: int = 64, out_dir: str = "", progress=True, **data_options) -> dict:
    """The debugging flow of `lowbit analyze` on a QuantizedModel: the report as a dict (and, with out_dir, the
    HTML/JSON report files and a mixed-precision config.json)."""
    model = quantized.prepared
    c = data(calib, model, **data_options)
    e = data(eval, model, **data_options)
    return _json.loads(quantized._analyze(c, e, metric, target_drop, raise_bits, calib_samples, out_dir, progress))


def gap(model, calib, eval, profiles=None, *, qdq: bool = False, reference=None, out_dir: str = "", progress=True,
        **data_options) -> dict:
    """The deployment gap of `lowbit gap` as a dict (gap.json): per profile (default every shipped one) the FP32,
    simulated and integer-engine accuracy and per integer layer the code divergence, isolated and propagated.
    `model` is the FP32 model, quantized here with each profile on `calib`; with qdq=True it is a QDQ model already
    (calib None, one profile; `reference` the FP32 model for its accuracy). out_dir also writes index.html and
    gap.json there."""
    if not isinstance(model, Model):
        model = Model.load(str(model))
    if reference is not None and not isinstance(reference, Model):
        reference = Model.load(str(reference))
    if isinstance(profiles, str):
        profiles = [profiles]
    c = data(calib, model, **data_options)
    e = data(eval, model, **data_options)
    return _json.loads(_lowbit._gap(model, c, e, list(profiles or []), qdq, reference, out_dir, progress))


QuantizedModel.evaluate = _qm_evaluate
QuantizedModel.analyze = analyze
