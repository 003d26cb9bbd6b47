// Encodings JSON writing and reading.
#include "quant/encodings_io.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "quant/json_checked.h"

namespace lowbit::quant {

using nlohmann::json;

namespace {

const char* gran_name(Granularity g) {
  return g == Granularity::PerTensor ? "per_tensor" : g == Granularity::PerChannel ? "per_channel" : "per_group";
}

json to_json(const Encoding& e) {
  const QuantizerSpec& s = e.spec;
  std::string dtype = std::string(s.grid.is_signed ? "int" : "uint") + (s.grid.bits <= 8 ? "8" : "16");
  std::vector<int32_t> offset;
  for (auto z : e.zero_point) offset.push_back(-z);
  return {{"bits", s.grid.bits},
          {"dtype", dtype},
          {"signed", s.grid.is_signed},
          {"narrow", s.grid.narrow},
          {"symmetric", s.symmetric},
          {"granularity", gran_name(s.granularity)},
          {"axis", s.axis},
          {"block_size", s.group_size},
          {"scale_form", s.scale_form == ScaleForm::Float ? "float" : "power_of_two"},
          {"rounding", s.rounding == Rounding::HalfToEven ? "half_even" : "half_away"},
          {"scale", e.scale},
          {"zero_point", e.zero_point},
          {"offset", offset}};
}

// j[key] as T, or `dflt` when absent; a value of the wrong type or out of T's range is an error naming it.
template <typename T>
T field(const json& j, const char* key, const std::optional<T>& dflt, const std::string& where) {
  if (!j.contains(key)) {
    check(dflt.has_value(), where, ": '", key, "' is missing");
    return *dflt;
  }
  const json& v = j.at(key);
  check(json_fits<T>(v), where, ": '", key, "' has the wrong type or is out of range (", v.dump(), ")");
  return v.get<T>();
}

Encoding from_json(const json& j, const Shape& shape, const std::string& where) {
  Encoding e;
  try {
    check(j.is_object(), where, ": an encoding must be a JSON object");
    QuantizerSpec& s = e.spec;
    s.grid.bits = field<int>(j, "bits", {}, where);
    s.grid.is_signed = field<bool>(j, "signed", {}, where);
    s.grid.narrow = field<bool>(j, "narrow", false, where);
    s.symmetric = field<bool>(j, "symmetric", {}, where);
    std::string g = field<std::string>(j, "granularity", {}, where);
    s.granularity = g == "per_tensor" ? Granularity::PerTensor : g == "per_channel" ? Granularity::PerChannel
                    : g == "per_group" ? Granularity::PerGroup : (fail(where, ": unknown granularity '", g, "'"), Granularity::PerTensor);
    s.axis = field<int>(j, "axis", 0, where);
    s.group_size = field<int64_t>(j, "block_size", 0, where);
    s.scale_form = field<std::string>(j, "scale_form", std::string("float"), where) == "power_of_two" ? ScaleForm::PowerOfTwo : ScaleForm::Float;
    s.rounding = field<std::string>(j, "rounding", std::string("half_even"), where) == "half_away" ? Rounding::HalfAwayFromZero : Rounding::HalfToEven;
    e.scale = field<std::vector<float>>(j, "scale", {}, where);
    e.zero_point = field<std::vector<int32_t>>(j, "zero_point", {}, where);
  } catch (const json::exception& ex) {
    fail(where, ": malformed entry (", ex.what(), ")");
  }
  try {
    validate(e.spec);
  } catch (const Error& ex) {
    fail(where, ": ", ex.what());
  }
  e.shape = shape;
  int64_t want = num_slices(shape, e.spec);
  check((int64_t)e.scale.size() == want && (int64_t)e.zero_point.size() == want, where, ": ", e.scale.size(),
        " scales and ", e.zero_point.size(), " zero points, the tensor ", shape_str(shape), " needs ", want);
  for (size_t i = 0; i < e.scale.size(); ++i) {
    check(e.scale[i] > 0 && std::isfinite(e.scale[i]), where, ": scale ", i, " is not a positive number");
    check(e.zero_point[i] >= e.spec.grid.qmin() && e.zero_point[i] <= e.spec.grid.qmax(), where, ": zero point ",
          e.zero_point[i], " is outside the ", e.spec.grid.bits, "-bit grid");
  }
  return e;
}

}  // namespace

static void apply_parsed_encodings(QuantSimPlan& plan, const Model& m, const json& j, const std::string& origin);

std::string encodings_to_json(const QuantSimPlan& plan) {
  json j = {{"format", "lowbit-encodings"}, {"version", 1}, {"activations", json::object()}, {"weights", json::object()}};
  for (auto& a : plan.acts) {
    if (a.dynamic) continue;
    json e = to_json(a.enc);
    e["range"] = range_method_name(a.q.range);
    j["activations"][a.tensor] = e;
  }
  for (auto& w : plan.weights) j["weights"][w.tensor + "@" + w.node] = to_json(w.enc);
  return j.dump(2) + "\n";
}

void apply_encodings(QuantSimPlan& plan, const Model& m, const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, ": not valid JSON (", e.what(), ")");
  }
  try {
    apply_parsed_encodings(plan, m, j, origin);
  } catch (const json::exception& e) {
    fail(origin, ": malformed encodings file (", e.what(), ")");
  }
}

static void apply_parsed_encodings(QuantSimPlan& plan, const Model& m, const json& j, const std::string& origin) {
  check(j.is_object() && j.contains("format") && j.at("format") == "lowbit-encodings", origin,
        ": not a lowbit encodings file (no \"format\": \"lowbit-encodings\")");
  const json acts = j.value("activations", json::object()), weights = j.value("weights", json::object());
  check(acts.is_object() && weights.is_object(), origin, ": \"activations\" and \"weights\" must be JSON objects");
  std::set<std::string> used_acts, used_weights;
  for (auto& a : plan.acts) {
    if (a.dynamic) continue;
    check(acts.contains(a.tensor), origin, ": no encoding for activation '", a.tensor,
          "' (the file was made for another model or configuration)");
    a.enc = from_json(acts.at(a.tensor), {1}, origin + ": activation '" + a.tensor + "'");
    a.q.spec = a.enc.spec;
    used_acts.insert(a.tensor);
  }
  for (auto& w : plan.weights) {
    std::string key = w.tensor + "@" + w.node;
    check(weights.contains(key), origin, ": no encoding for weight '", key, "'");
    w.enc = from_json(weights.at(key), m.graph.initializers.at(w.tensor).shape(), origin + ": weight '" + key + "'");
    w.q.spec = w.enc.spec;
    used_weights.insert(key);
  }
  for (auto& [k, v] : acts.items())
    check(used_acts.count(k), origin, ": activation '", k, "' is not quantized in this model");
  for (auto& [k, v] : weights.items())
    check(used_weights.count(k), origin, ": weight '", k, "' is not quantized in this model");
}

}  // namespace lowbit::quant
