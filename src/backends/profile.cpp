// Hardware profiles: parsing, validation, lookup of the shipped ones, and the check of a config against one.
#include "backends/profile.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ir/onnx_io.h"

namespace lowbit::backends {

// profiles/*.json, compiled in by CMake (shipped_profiles.cpp in the build folder): {name, JSON text}.
extern const std::vector<std::pair<std::string, std::string>>& shipped_profiles();

namespace {

using json = nlohmann::json;

const char* granularity_name(quant::Granularity g) {
  switch (g) {
    case quant::Granularity::PerTensor: return "per_tensor";
    case quant::Granularity::PerChannel: return "per_channel";
    case quant::Granularity::PerGroup: return "per_group";
  }
  return "?";
}
const char* mode_name(quant::Mode m) {
  switch (m) {
    case quant::Mode::Static: return "static";
    case quant::Mode::WeightOnly: return "weight_only";
    case quant::Mode::Dynamic: return "dynamic";
    case quant::Mode::Fp16: return "fp16";
  }
  return "?";
}

template <typename T>
std::string list_str(const std::vector<T>& v, const char* (*name)(T)) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + std::string(name(x));
  return s;
}
std::string bits_str(const std::vector<int>& v) {
  std::string s;
  for (int b : v) s += (s.empty() ? "" : ", ") + std::to_string(b);
  return s;
}

std::vector<std::string> strings(const json& j, const std::string& where) {
  check(j.is_array() && !j.empty(), where, " must be a non-empty list");
  std::vector<std::string> r;
  for (auto& x : j) {
    check(x.is_string(), where, " must list strings, got ", x.dump());
    r.push_back(x.get<std::string>());
  }
  return r;
}

}  // namespace

const char* multiplier_name(Multiplier m) {
  switch (m) {
    case Multiplier::Float: return "float";
    case Multiplier::FixedPoint: return "fixed_point";
    case Multiplier::Shift: return "shift";
  }
  return "?";
}
const char* int_rounding_name(IntRounding r) {
  switch (r) {
    case IntRounding::HalfEven: return "half_even";
    case IntRounding::HalfAway: return "half_away";
    case IntRounding::HalfUp: return "half_up";
  }
  return "?";
}

const char* softmax_arith_name(SoftmaxArith s) { return s == SoftmaxArith::ExpTable ? "exp_table" : "float"; }
const char* bias_arith_name(BiasArith b) { return b == BiasArith::Float ? "float" : "int32"; }

EncodingsFormat parse_encodings_format(const std::string& s, const std::string& where) {
  if (s == "lowbit") return EncodingsFormat::Lowbit;
  if (s == "aimet") return EncodingsFormat::Aimet;
  fail(where, ": '", s, "' is not lowbit or aimet");
}

Profile parse_profile(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, ": not valid JSON (", e.what(), ")");
  }
  check(j.is_object(), origin, ": a profile must be a JSON object");
  Profile p;
  p.origin = origin;
  bool have_config = false;
  for (auto& [k, v] : j.items()) {
    std::string w = origin + ": " + k;
    if (k == "profile") {
      check(v.is_string() && !v.get<std::string>().empty(), w, " must be a non-empty string");
      p.name = v.get<std::string>();
    } else if (k == "comment") {
      check(v.is_string(), w, " must be a string");
      p.comment = v.get<std::string>();
    } else if (k == "config") {
      check(v.is_object(), w, " must be an object (a quantization config)");
      p.config = quant::parse_config(v.dump(), origin + ": config");
      have_config = true;
    } else if (k == "allowed") {
      check(v.is_object(), w, " must be an object");
      for (auto& [ak, av] : v.items()) {
        std::string aw = w + "." + ak;
        if (ak == "weight_bits" || ak == "activation_bits") {
          check(av.is_array() && !av.empty(), aw, " must be a non-empty list of bit widths");
          std::vector<int>& dst = ak == "weight_bits" ? p.weight_bits : p.activation_bits;
          for (auto& b : av) {
            check(b.is_number_integer() && b.get<int64_t>() >= 2 && b.get<int64_t>() <= 16, aw,
                  " lists bit widths 2..16, got ", b.dump());
            dst.push_back(b.get<int>());
          }
        } else if (ak == "weight_granularity") {
          for (auto& g : strings(av, aw)) {
            if (g == "per_tensor") p.weight_granularity.push_back(quant::Granularity::PerTensor);
            else if (g == "per_channel") p.weight_granularity.push_back(quant::Granularity::PerChannel);
            else if (g == "per_group") p.weight_granularity.push_back(quant::Granularity::PerGroup);
            else fail(aw, ": '", g, "' is not per_tensor, per_channel or per_group");
          }
        } else if (ak == "modes") {
          for (auto& m : strings(av, aw)) {
            if (m == "static") p.modes.push_back(quant::Mode::Static);
            else if (m == "weight_only") p.modes.push_back(quant::Mode::WeightOnly);
            else if (m == "dynamic") p.modes.push_back(quant::Mode::Dynamic);
            else if (m == "fp16") p.modes.push_back(quant::Mode::Fp16);
            else fail(aw, ": '", m, "' is not static, weight_only, dynamic or fp16");
          }
        } else {
          fail(aw, ": unknown key");
        }
      }
    } else if (k == "requantize") {
      check(v.is_object(), w, " must be an object");
      for (auto& [rk, rv] : v.items()) {
        std::string rw = w + "." + rk;
        check(rv.is_string(), rw, " must be a string");
        std::string s = rv.get<std::string>();
        if (rk == "multiplier") {
          if (s == "float") p.multiplier = Multiplier::Float;
          else if (s == "fixed_point") p.multiplier = Multiplier::FixedPoint;
          else if (s == "shift") p.multiplier = Multiplier::Shift;
          else fail(rw, ": '", s, "' is not float, fixed_point or shift");
        } else if (rk == "rounding") {
          if (s == "half_even") p.rounding = IntRounding::HalfEven;
          else if (s == "half_away") p.rounding = IntRounding::HalfAway;
          else if (s == "half_up") p.rounding = IntRounding::HalfUp;
          else fail(rw, ": '", s, "' is not half_even, half_away or half_up");
        } else if (rk == "bias") {
          if (s == "int32") p.bias = BiasArith::Int32;
          else if (s == "float") p.bias = BiasArith::Float;
          else fail(rw, ": '", s, "' is not int32 or float");
        } else {
          fail(rw, ": unknown key");
        }
      }
    } else if (k == "integer_ops") {
      check(v.is_object(), w, " must be an object");
      for (auto& [ik, iv] : v.items()) {
        std::string iw = w + "." + ik;
        check(ik == "softmax", iw, ": unknown key (known: softmax)");
        check(iv.is_string(), iw, " must be a string");
        std::string s = iv.get<std::string>();
        if (s == "float") p.softmax = SoftmaxArith::Float;
        else if (s == "exp_table") p.softmax = SoftmaxArith::ExpTable;
        else fail(iw, ": '", s, "' is not float or exp_table");
      }
    } else if (k == "encodings") {
      check(v.is_string(), w, " must be a string");
      p.encodings = parse_encodings_format(v.get<std::string>(), w);
    } else {
      fail(w, ": unknown key");
    }
  }
  check(!p.name.empty(), origin, ": a profile needs \"profile\": its name");
  check(!p.comment.empty(), origin, ": a profile needs \"comment\": where its rules come from");
  check(have_config, origin, ": a profile needs \"config\": the quantizers the target runs");
  const quant::QuantConfig& c = p.config;
  if (p.weight_bits.empty()) p.weight_bits = {c.weights.spec.grid.bits};
  if (p.activation_bits.empty()) p.activation_bits = {c.activations.spec.grid.bits};
  if (p.weight_granularity.empty()) p.weight_granularity = {c.weights.spec.granularity};
  if (p.modes.empty()) p.modes = {c.mode};
  auto has = [](auto& v, auto x) { return std::find(v.begin(), v.end(), x) != v.end(); };
  check(has(p.weight_bits, c.weights.spec.grid.bits), origin, ": config.weights.bits ", c.weights.spec.grid.bits,
        " is not in allowed.weight_bits");
  check(has(p.activation_bits, c.activations.spec.grid.bits), origin, ": config.activations.bits ",
        c.activations.spec.grid.bits, " is not in allowed.activation_bits");
  check(has(p.weight_granularity, c.weights.spec.granularity), origin, ": config.weights.granularity is not in "
        "allowed.weight_granularity");
  check(has(p.modes, c.mode), origin, ": config.mode is not in allowed.modes");
  check(c.weights.spec.scale_form != quant::ScaleForm::PowerOfTwo || p.multiplier == Multiplier::Shift ||
            p.multiplier == Multiplier::FixedPoint,
        origin, ": power-of-two scales with a float requantization multiplier: use \"multiplier\": \"shift\"");
  check(p.bias == BiasArith::Int32 || (p.multiplier == Multiplier::Float && !c.int32_bias), origin,
        ": requantize.bias \"float\" (the bias added in float after dequantizing the accumulator) needs "
        "\"multiplier\": \"float\" and config.int32_bias false");
  return p;
}

std::vector<std::string> profile_names() {
  std::vector<std::string> r;
  for (auto& [name, _] : shipped_profiles()) r.push_back(name);
  std::sort(r.begin(), r.end());
  return r;
}

Profile load_profile(const std::string& name_or_path) {
  bool path = name_or_path.find('/') != std::string::npos ||
              (name_or_path.size() > 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (path) {
    check(std::filesystem::exists(name_or_path), "profile file '", name_or_path, "' does not exist");
    return parse_profile(read_file(name_or_path), name_or_path);
  }
  for (auto& [name, text] : shipped_profiles())
    if (name == name_or_path) {
      Profile p = parse_profile(text, "profile '" + name + "'");
      p.origin = "shipped";
      return p;
    }
  std::string list;
  for (auto& n : profile_names()) list += (list.empty() ? "" : ", ") + n;
  fail("unknown profile '", name_or_path, "': the shipped profiles are ", list, " (or give a path to a .json file)");
}

void check_profile(const quant::QuantConfig& c, const Profile& p) {
  const quant::QuantConfig& t = p.config;
  std::string who = "profile '" + p.name + "'";
  auto has = [](auto& v, auto x) { return std::find(v.begin(), v.end(), x) != v.end(); };
  check(has(p.modes, c.mode), who, " runs mode ", list_str(p.modes, mode_name), "; the config asks for ",
        mode_name(c.mode), " (key mode)");
  auto same_quantizer = [&](const quant::TensorQuant& want, const quant::TensorQuant& got, const char* key) {
    const quant::QuantizerSpec &a = want.spec, &b = got.spec;
    check(a.grid.is_signed == b.grid.is_signed && want.signed_auto == got.signed_auto, who, ": ", key, ".signed must be ",
          want.signed_auto ? "\"auto\"" : a.grid.is_signed ? "true" : "false", " on this target");
    check(a.symmetric == b.symmetric, who, ": ", key, ".symmetric must be ", a.symmetric ? "true" : "false",
          " on this target");
    check(a.grid.narrow == b.grid.narrow, who, ": ", key, ".narrow must be ", a.grid.narrow ? "true" : "false",
          " on this target");
    check(a.scale_form == b.scale_form, who, ": ", key, ".scale must be ",
          a.scale_form == quant::ScaleForm::Float ? "float" : "power_of_two", " on this target");
  };
  same_quantizer(t.weights, c.weights, "weights");
  check(has(p.weight_bits, c.weights.spec.grid.bits), who, " runs ", bits_str(p.weight_bits),
        "-bit weights; the config asks for ", c.weights.spec.grid.bits, " (key weights.bits, flag --weights)");
  check(has(p.weight_granularity, c.weights.spec.granularity), who, " runs ",
        list_str(p.weight_granularity, granularity_name), " weights; the config asks for ",
        granularity_name(c.weights.spec.granularity), " (key weights.granularity)");
  if (c.mode == quant::Mode::Static) {
    same_quantizer(t.activations, c.activations, "activations");
    check(has(p.activation_bits, c.activations.spec.grid.bits), who, " runs ", bits_str(p.activation_bits),
          "-bit activations; the config asks for ", c.activations.spec.grid.bits, " (key activations.bits, flag --acts)");
  }
  for (auto& o : c.overrides) {
    if (o.weight_bits)
      check(has(p.weight_bits, *o.weight_bits), who, " runs ", bits_str(p.weight_bits), "-bit weights; an override asks for ",
            *o.weight_bits);
    if (o.activation_bits)
      check(has(p.activation_bits, *o.activation_bits), who, " runs ", bits_str(p.activation_bits),
            "-bit activations; an override asks for ", *o.activation_bits);
  }
  check(c.int32_bias == t.int32_bias, who, ": int32_bias must be ", t.int32_bias ? "true" : "false", " on this target");
  check(c.concat_shared_scale == t.concat_shared_scale, who, ": concat must be ",
        t.concat_shared_scale ? "shared_scale" : "requantize", " on this target");
  check(c.quantize_model_input == t.quantize_model_input, who, ": quantize_model_input must be ",
        t.quantize_model_input ? "true" : "false", " on this target");
  const quant::Placement &a = t.placement, &b = c.placement;
  check(a.activations == b.activations && a.fused_activations == b.fused_activations &&
            a.pass_through == b.pass_through && a.float_ops == b.float_ops && a.fuse_add_into_conv == b.fuse_add_into_conv,
        who, ": the placement of quantizers (key placement) is the target's and cannot change");
}

}  // namespace lowbit::backends
