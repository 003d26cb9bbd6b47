// QuantConfig defaults and JSON parsing.
#include "quant/config.h"

#include <nlohmann/json.hpp>

#include "quant/json_checked.h"

namespace lowbit::quant {

using nlohmann::json;

QuantConfig default_config() {
  QuantConfig c;
  c.weights.spec.grid = {8, true, false};
  c.weights.spec.symmetric = true;
  c.weights.spec.granularity = Granularity::PerChannel;
  c.activations.spec.grid = {8, false, false};
  c.activations.spec.symmetric = false;
  c.activations.spec.granularity = Granularity::PerTensor;
  return c;
}

const char* range_method_name(RangeMethod m) {
  switch (m) {
    case RangeMethod::MinMax: return "minmax";
    case RangeMethod::Ema: return "ema";
    case RangeMethod::Percentile: return "percentile";
    case RangeMethod::Mse: return "mse";
    case RangeMethod::Kl: return "kl";
    case RangeMethod::CrossEntropy: return "cross_entropy";
    case RangeMethod::Bn: return "bn";
  }
  return "?";
}

RangeMethod parse_range_method(const std::string& s) {
  for (auto m : {RangeMethod::MinMax, RangeMethod::Ema, RangeMethod::Percentile, RangeMethod::Mse, RangeMethod::Kl,
                 RangeMethod::CrossEntropy, RangeMethod::Bn})
    if (s == range_method_name(m)) return m;
  fail("unknown range method '", s, "' (minmax, ema, percentile, mse, kl, cross_entropy, bn)");
}

const char* bias_correction_name(BiasCorrectionKind k) {
  switch (k) {
    case BiasCorrectionKind::None: return "none";
    case BiasCorrectionKind::Empirical: return "empirical";
    case BiasCorrectionKind::Analytical: return "analytical";
  }
  return "?";
}

BiasCorrectionKind parse_bias_correction(const std::string& s) {
  for (auto k : {BiasCorrectionKind::None, BiasCorrectionKind::Empirical, BiasCorrectionKind::Analytical})
    if (s == bias_correction_name(k)) return k;
  fail("unknown bias correction '", s, "' (none, empirical, analytical)");
}

void apply_standard_pipeline(QuantConfig& c, bool have_data) {
  c.pipeline.cle = true;
  c.pipeline.high_bias_absorption = true;
  c.weights.spec.symmetric = true;
  c.weights.range = RangeMethod::Mse;
  c.pipeline.adaround = have_data;
  c.pipeline.bias_correction = have_data ? BiasCorrectionKind::None : BiasCorrectionKind::Analytical;
  c.pipeline.data_free = !have_data;
  c.activations.range = have_data ? RangeMethod::Mse : RangeMethod::Bn;
  c.pipeline.logits_cross_entropy = have_data;
}

void resolve_auto_sign(TensorQuant& q, float data_min) {
  if (!q.signed_auto) return;
  q.signed_auto = false;
  if (data_min < 0) return;
  q.spec.grid.is_signed = false;
  q.spec.symmetric = false;
}

namespace {

template <typename T>
T get(const json& j, const char* key, const std::string& where) {
  try {
    const json& v = j.at(key);
    check(json_fits<T>(v), where, ": '", key, "' has the wrong type or is out of range (", v.dump(), ")");
    return v.get<T>();
  } catch (const json::exception&) {
    fail(where, ": '", key, "' has the wrong type");
  }
}

void parse_quant(const json& j, TensorQuant& q, const std::string& where) {
  check(j.is_object(), where, " must be an object");
  for (auto& [k, v] : j.items()) {
    std::string w = where + "." + k;
    if (k == "bits") q.spec.grid.bits = get<int>(j, "bits", where);
    else if (k == "signed") {
      if (v.is_string() && v.get<std::string>() != "auto")
        fail(w, ": '", v.get<std::string>(), "' is not true, false or \"auto\"");
      q.signed_auto = v.is_string();
      q.spec.grid.is_signed = q.signed_auto || get<bool>(j, "signed", where);
    }
    else if (k == "narrow") q.spec.grid.narrow = get<bool>(j, "narrow", where);
    else if (k == "symmetric") q.spec.symmetric = get<bool>(j, "symmetric", where);
    else if (k == "group_size") q.spec.group_size = get<int64_t>(j, "group_size", where);
    else if (k == "percentile") q.percentile = get<double>(j, "percentile", where);
    else if (k == "ema_momentum") q.ema_momentum = get<double>(j, "ema_momentum", where);
    else if (k == "range") q.range = parse_range_method(get<std::string>(j, "range", where));
    else if (k == "granularity") {
      std::string g = get<std::string>(j, "granularity", where);
      if (g == "per_tensor") q.spec.granularity = Granularity::PerTensor;
      else if (g == "per_channel") q.spec.granularity = Granularity::PerChannel;
      else if (g == "per_group") q.spec.granularity = Granularity::PerGroup;
      else fail(w, ": '", g, "' is not per_tensor, per_channel or per_group");
    } else if (k == "scale") {
      std::string s = get<std::string>(j, "scale", where);
      check(s == "float" || s == "power_of_two", w, ": '", s, "' is not float or power_of_two");
      q.spec.scale_form = s == "float" ? ScaleForm::Float : ScaleForm::PowerOfTwo;
    } else if (k == "rounding") {
      std::string s = get<std::string>(j, "rounding", where);
      check(s == "half_even" || s == "half_away", w, ": '", s, "' is not half_even or half_away");
      q.spec.rounding = s == "half_even" ? Rounding::HalfToEven : Rounding::HalfAwayFromZero;
    } else {
      fail(w, ": unknown key");
    }
  }
  try {
    validate(q.spec);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
  check(!q.signed_auto || q.spec.symmetric, where, ".signed: \"auto\" needs \"symmetric\": true (an asymmetric grid "
        "already places its zero point from the data)");
  check(q.percentile > 50 && q.percentile <= 100, where, ".percentile must be in (50, 100]");
}

void parse_pipeline(const json& j, PipelineConfig& p, const std::string& where) {
  check(j.is_object(), where, " must be an object");
  for (auto& [k, v] : j.items()) {
    std::string w = where + "." + k;
    if (k == "cle") p.cle = get<bool>(j, "cle", where);
    else if (k == "high_bias_absorption") p.high_bias_absorption = get<bool>(j, "high_bias_absorption", where);
    else if (k == "relu6") {
      std::string r = get<std::string>(j, "relu6", where);
      check(r == "relu" || r == "skip", w, ": '", r, "' is not relu or skip");
      p.relu6_to_relu = r == "relu";
    } else if (k == "bias_correction") {
      try {
        p.bias_correction = parse_bias_correction(get<std::string>(j, "bias_correction", where));
      } catch (const Error& e) {
        fail(w, ": ", e.what());
      }
    } else if (k == "adaround") p.adaround = get<bool>(j, "adaround", where);
    else if (k == "adaround_iterations") p.adaround_iterations = get<int>(j, "adaround_iterations", where);
    else if (k == "adaround_batch") p.adaround_batch = get<int>(j, "adaround_batch", where);
    else if (k == "adaround_reg_weight") p.adaround_reg_weight = get<double>(j, "adaround_reg_weight", where);
    else if (k == "adaround_lr") p.adaround_lr = get<double>(j, "adaround_lr", where);
    else if (k == "adaround_max_rows") p.adaround_max_rows = get<int64_t>(j, "adaround_max_rows", where);
    else if (k == "samples") p.samples = get<int64_t>(j, "samples", where);
    else if (k == "data_free") p.data_free = get<bool>(j, "data_free", where);
    else if (k == "input_range") p.input_range = get<std::vector<float>>(j, "input_range", where);
    else if (k == "logits_cross_entropy") p.logits_cross_entropy = get<bool>(j, "logits_cross_entropy", where);
    else fail(w, ": unknown key");
  }
  check(p.adaround_iterations >= 0 && p.adaround_batch > 0 && p.adaround_max_rows > 0 && p.samples > 0, where,
        ": adaround_iterations must be >= 0; adaround_batch, adaround_max_rows and samples positive");
  check(p.input_range.empty() || (p.input_range.size() == 2 && p.input_range[0] <= p.input_range[1]), where,
        ".input_range must be [lo, hi] with lo <= hi");
}

}  // namespace

static void parse_placement(const json& j, Placement& p, const std::string& where) {
  check(j.is_object(), where, " must be an object");
  auto op_list = [&](const char* key) {
    auto v = get<std::vector<std::string>>(j, key, where);
    for (auto& op : v) check(!op.empty(), where, ".", key, ": an empty op type");
    return v;
  };
  for (auto& [k, v] : j.items()) {
    if (k == "activations") {
      std::string a = get<std::string>(j, "activations", where);
      check(a == "outputs" || a == "layer_inputs", where, ".activations: '", a, "' is not outputs or layer_inputs");
      p.activations = a == "outputs" ? ActPlacement::Outputs : ActPlacement::LayerInputs;
    } else if (k == "fused_activations") p.fused_activations = op_list("fused_activations");
    else if (k == "pass_through") p.pass_through = op_list("pass_through");
    else if (k == "float_ops") p.float_ops = op_list("float_ops");
    else if (k == "add") {
      std::string a = get<std::string>(j, "add", where);
      check(a == "requantize" || a == "fuse_into_conv", where, ".add: '", a, "' is not requantize or fuse_into_conv");
      p.fuse_add_into_conv = a == "fuse_into_conv";
    } else fail(where, ".", k, ": unknown key");
  }
}

QuantConfig parse_config(const std::string& text, const std::string& origin, const QuantConfig& base) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, ": not valid JSON (", e.what(), ")");
  }
  check(j.is_object(), origin, ": the configuration must be a JSON object");
  QuantConfig c = base;
  for (auto& [k, v] : j.items()) {
    if (k == "weights") {
      parse_quant(v, c.weights, origin + ": weights");
      check(!c.weights.signed_auto, origin, ": weights.signed: \"auto\" is for activations only (weights are signed "
            "or unsigned by the target's kernels, not by their data)");
    }
    else if (k == "activations") {
      parse_quant(v, c.activations, origin + ": activations");
      check(c.activations.spec.granularity == Granularity::PerTensor, origin, ": activations.granularity '",
            v.value("granularity", std::string()), "' is not supported: lowbit quantizes activations per tensor "
            "(one scale and zero point for the whole tensor); use \"granularity\": \"per_tensor\"");
    }
    else if (k == "quantize_model_input") c.quantize_model_input = get<bool>(j, "quantize_model_input", origin);
    else if (k == "pipeline") parse_pipeline(v, c.pipeline, origin + ": pipeline");
    else if (k == "placement") parse_placement(v, c.placement, origin + ": placement");
    else if (k == "int32_bias") c.int32_bias = get<bool>(j, "int32_bias", origin);
    else if (k == "concat") {
      std::string v2 = get<std::string>(j, "concat", origin);
      check(v2 == "requantize" || v2 == "shared_scale", origin, ": concat '", v2, "' is not requantize or shared_scale");
      c.concat_shared_scale = v2 == "shared_scale";
    } else if (k == "mode") {
      std::string m = get<std::string>(j, "mode", origin);
      if (m == "static") c.mode = Mode::Static;
      else if (m == "weight_only") c.mode = Mode::WeightOnly;
      else if (m == "dynamic") c.mode = Mode::Dynamic;
      else if (m == "fp16") c.mode = Mode::Fp16;
      else fail(origin, ": mode '", m, "' is not static, weight_only, dynamic or fp16");
    } else if (k == "overrides") {
      check(v.is_array(), origin, ": overrides must be a list");
      int i = 0;
      for (auto& o : v) {
        std::string w = origin + ": overrides[" + std::to_string(i++) + "]";
        check(o.is_object(), w, " must be an object");
        Override ov;
        int targets = 0;
        for (auto& [ok, ovv] : o.items()) {
          if (ok == "node") ov.node = get<std::string>(o, "node", w), ++targets;
          else if (ok == "op_type") ov.op_type = get<std::string>(o, "op_type", w), ++targets;
          else if (ok == "tensor") ov.tensor = get<std::string>(o, "tensor", w), ++targets;
          else if (ok == "skip") ov.skip = get<bool>(o, "skip", w);
          else if (ok == "weight_bits") ov.weight_bits = get<int>(o, "weight_bits", w);
          else if (ok == "activation_bits") ov.activation_bits = get<int>(o, "activation_bits", w);
          else if (ok == "range") ov.range = parse_range_method(get<std::string>(o, "range", w));
          else fail(w, ": unknown key '", ok, "'");
        }
        check(targets == 1, w, ": give exactly one of node, op_type, tensor");
        for (auto b : {ov.weight_bits, ov.activation_bits})
          check(!b || (*b >= 2 && *b <= 16), w, ": bit width ", b.value_or(0), " is outside 2..16");
        c.overrides.push_back(ov);
      }
    } else {
      fail(origin, ": unknown key '", k, "'");
    }
  }
  return c;
}

namespace {

json quant_json(const TensorQuant& q) {
  json j;
  j["bits"] = q.spec.grid.bits;
  j["signed"] = q.signed_auto ? json("auto") : json(q.spec.grid.is_signed);
  j["narrow"] = q.spec.grid.narrow;
  j["symmetric"] = q.spec.symmetric;
  j["granularity"] = q.spec.granularity == Granularity::PerTensor    ? "per_tensor"
                     : q.spec.granularity == Granularity::PerChannel ? "per_channel"
                                                                     : "per_group";
  if (q.spec.granularity == Granularity::PerGroup) j["group_size"] = q.spec.group_size;
  j["scale"] = q.spec.scale_form == ScaleForm::Float ? "float" : "power_of_two";
  j["rounding"] = q.spec.rounding == Rounding::HalfToEven ? "half_even" : "half_away";
  j["range"] = range_method_name(q.range);
  j["percentile"] = q.percentile;
  j["ema_momentum"] = q.ema_momentum;
  return j;
}

}  // namespace

std::string config_to_json(const QuantConfig& c) {
  json j;
  j["weights"] = quant_json(c.weights);
  j["activations"] = quant_json(c.activations);
  j["mode"] = c.mode == Mode::Static ? "static" : c.mode == Mode::WeightOnly ? "weight_only" : c.mode == Mode::Dynamic ? "dynamic" : "fp16";
  j["quantize_model_input"] = c.quantize_model_input;
  j["concat"] = c.concat_shared_scale ? "shared_scale" : "requantize";
  j["int32_bias"] = c.int32_bias;
  json ov = json::array();
  for (auto& o : c.overrides) {
    json e;
    if (!o.node.empty()) e["node"] = o.node;
    if (!o.op_type.empty()) e["op_type"] = o.op_type;
    if (!o.tensor.empty()) e["tensor"] = o.tensor;
    if (o.skip) e["skip"] = true;
    if (o.weight_bits) e["weight_bits"] = *o.weight_bits;
    if (o.activation_bits) e["activation_bits"] = *o.activation_bits;
    if (o.range) e["range"] = range_method_name(*o.range);
    ov.push_back(e);
  }
  j["overrides"] = ov;
  const PipelineConfig& p = c.pipeline;
  j["pipeline"] = {{"cle", p.cle},
                   {"high_bias_absorption", p.high_bias_absorption},
                   {"relu6", p.relu6_to_relu ? "relu" : "skip"},
                   {"bias_correction", bias_correction_name(p.bias_correction)},
                   {"adaround", p.adaround},
                   {"adaround_iterations", p.adaround_iterations},
                   {"adaround_batch", p.adaround_batch},
                   {"adaround_reg_weight", p.adaround_reg_weight},
                   {"adaround_lr", p.adaround_lr},
                   {"adaround_max_rows", p.adaround_max_rows},
                   {"samples", p.samples},
                   {"data_free", p.data_free},
                   {"logits_cross_entropy", p.logits_cross_entropy}};
  if (!p.input_range.empty()) j["pipeline"]["input_range"] = p.input_range;
  const Placement& pl = c.placement;
  j["placement"] = {{"activations", pl.activations == ActPlacement::Outputs ? "outputs" : "layer_inputs"},
                    {"fused_activations", pl.fused_activations},
                    {"pass_through", pl.pass_through},
                    {"float_ops", pl.float_ops},
                    {"add", pl.fuse_add_into_conv ? "fuse_into_conv" : "requantize"}};
  return j.dump(2) + "\n";
}

}  // namespace lowbit::quant
