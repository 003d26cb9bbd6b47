// AIMET encodings (0.6.1) writing.
#include "quant/aimet_encodings.h"

#include <nlohmann/json.hpp>

namespace lowbit::quant {

using nlohmann::json;

namespace {

const char* truth(bool b) { return b ? "True" : "False"; }

// One entry per slice of `e`; `what` names the tensor in errors.
json entries(const Encoding& e, const std::string& what) {
  const QuantizerSpec& s = e.spec;
  check(!s.grid.narrow, what, ": a narrow grid (", s.grid.qmin(), "..", s.grid.qmax(),
        ") cannot be written in AIMET's format, whose grid has all 2^", s.grid.bits, " codes");
  check(s.granularity != Granularity::PerGroup, what, ": per-group encodings cannot be written in AIMET's 0.6.1 format");
  int64_t shift = s.grid.is_signed ? (int64_t{1} << (s.grid.bits - 1)) : 0;
  int64_t top = (int64_t{1} << s.grid.bits) - 1;
  json list = json::array();
  for (size_t i = 0; i < e.scale.size(); ++i) {
    int64_t offset = -((int64_t)e.zero_point[i] + shift);
    double scale = e.scale[i];
    list.push_back({{"bitwidth", s.grid.bits},
                    {"dtype", "int"},
                    {"is_symmetric", truth(s.symmetric)},
                    {"scale", scale},
                    {"offset", offset},
                    {"min", (double)offset * scale},
                    {"max", (double)(top + offset) * scale}});
  }
  return list;
}

const char* scheme(RangeMethod m) {
  // AIMET's names for its range schemes; the ones without a counterpart are reported as TF-enhanced (a
  // search over ranges, as lowbit's MSE/KL/cross-entropy searches are). Informational only: converters read the
  // per-tensor entries.
  switch (m) {
    case RangeMethod::MinMax: return "post_training_tf";
    case RangeMethod::Percentile: return "post_training_percentile";
    default: return "post_training_tf_enhanced";
  }
}

}  // namespace

std::string aimet_encodings_json(const QuantSimPlan& plan, const QuantConfig& cfg) {
  check(cfg.mode == Mode::Static || cfg.mode == Mode::WeightOnly, "AIMET encodings: mode ",
        cfg.mode == Mode::Fp16 ? "fp16" : "dynamic", " has no static integer encodings to write");
  json acts = json::object(), params = json::object();
  for (auto& a : plan.acts) {
    check(!a.dynamic, "AIMET encodings: activation '", a.tensor, "' is quantized dynamically");
    acts[a.tensor] = entries(a.enc, "AIMET encodings: activation '" + a.tensor + "'");
  }
  for (auto& w : plan.weights) {
    json e = entries(w.enc, "AIMET encodings: weight '" + w.tensor + "' of node '" + w.node + "'");
    if (params.contains(w.tensor))
      check(params[w.tensor] == e, "AIMET encodings: weight '", w.tensor, "' is shared by two layers with different encodings (",
            "AIMET's format keys encodings by tensor)");
    params[w.tensor] = e;
  }
  json args = {{"activation_bitwidth", cfg.activations.spec.grid.bits},
               {"param_bitwidth", cfg.weights.spec.grid.bits},
               {"dtype", "int"},
               {"is_symmetric", cfg.weights.spec.symmetric},
               {"per_channel_quantization", cfg.weights.spec.granularity == Granularity::PerChannel},
               {"quant_scheme", scheme(cfg.activations.range)}};
  json j = {{"version", "0.6.1"},
            {"activation_encodings", acts},
            {"param_encodings", params},
            {"excluded_layers", json::array()},
            {"quantizer_args", args}};
  return j.dump(2) + "\n";
}

}  // namespace lowbit::quant
