// lowbit quantize: the command line over lowbit::quantize (include/lowbit/quantize.h): flags to a config, then the
// summary.
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <filesystem>

#include "api/progress.h"
#include "cli/commands.h"
#include "ir/onnx_io.h"

namespace lowbit::cli {

namespace {

int parse_bits(const std::string& s, char prefix, const char* flag) {
  check(s.size() >= 2 && s[0] == prefix, flag, " '", s, "': expected ", prefix, "<bits>, e.g. ", prefix, "8");
  int b = 0;
  try {
    b = std::stoi(s.substr(1));
  } catch (const std::exception&) {
    fail(flag, " '", s, "': expected ", prefix, "<bits>");
  }
  check(b >= 2 && b <= 16, flag, " '", s, "': bit width must be 2..16");
  return b;
}

// Applies the PTQ preset and the per-step switches of the command line over the config file's pipeline.
void apply_pipeline_args(const QuantizeArgs& a, quant::QuantConfig& cfg, bool have_data) {
  if (a.pipeline == "standard" || a.data_free) quant::apply_standard_pipeline(cfg, have_data && !a.data_free);
  else check(a.pipeline.empty() || a.pipeline == "none", "--pipeline '", a.pipeline, "': expected standard or none");
  quant::PipelineConfig& p = cfg.pipeline;
  if (a.cle) p.cle = a.cle > 0;
  if (a.high_bias_absorption) p.high_bias_absorption = a.high_bias_absorption > 0;
  if (!a.relu6.empty()) {
    check(a.relu6 == "relu" || a.relu6 == "skip", "--relu6 '", a.relu6, "': expected relu or skip");
    p.relu6_to_relu = a.relu6 == "relu";
  }
  if (!a.bias_correction.empty()) p.bias_correction = quant::parse_bias_correction(a.bias_correction);
  if (a.adaround) p.adaround = a.adaround > 0;
  if (a.adaround_iters >= 0) p.adaround_iterations = a.adaround_iters;
  if (a.ptq_samples > 0) p.samples = a.ptq_samples;
  if (!a.input_range.empty()) {
    float lo = 0, hi = 0;
    char extra = 0;
    check(std::sscanf(a.input_range.c_str(), "%f,%f%c", &lo, &hi, &extra) == 2 && lo <= hi, "--input-range '",
          a.input_range, "': expected LO,HI with LO <= HI, e.g. 0,1");
    p.input_range = {lo, hi};
  }
}

}  // namespace

quant::QuantConfig config_from_args(const QuantizeArgs& a) {
  quant::QuantConfig base = a.profile.empty() ? default_config() : load_profile(a.profile).config;
  quant::QuantConfig cfg = a.config.empty() ? base : load_config(a.config, base);
  bool have_data = !a.data.spec.empty();
  apply_pipeline_args(a, cfg, have_data);
  if (!a.weights.empty()) cfg.weights.spec.grid.bits = parse_bits(a.weights, 'w', "--weights");
  if (!a.acts.empty()) cfg.activations.spec.grid.bits = parse_bits(a.acts, 'a', "--acts");
  if (a.per_tensor) cfg.weights.spec.granularity = quant::Granularity::PerTensor;
  if (a.per_channel) cfg.weights.spec.granularity = quant::Granularity::PerChannel;
  if (a.group > 0) {
    cfg.weights.spec.granularity = quant::Granularity::PerGroup;
    cfg.weights.spec.group_size = a.group;
  }
  if (!a.range.empty()) cfg.activations.range = quant::parse_range_method(a.range);
  if (!a.weight_range.empty()) cfg.weights.range = quant::parse_range_method(a.weight_range);
  if (!a.mode.empty()) {
    if (a.mode == "static") cfg.mode = quant::Mode::Static;
    else if (a.mode == "weight-only") cfg.mode = quant::Mode::WeightOnly;
    else if (a.mode == "dynamic") cfg.mode = quant::Mode::Dynamic;
    else if (a.mode == "fp16") cfg.mode = quant::Mode::Fp16;
    else fail("--mode '", a.mode, "': expected static, weight-only, dynamic or fp16");
  }
  return cfg;
}

QuantizedModel quantize_from_args(const QuantizeArgs& a, const quant::QuantConfig& cfg) {
  Model model = Model::load(a.model);
  std::unique_ptr<DataSource> data;
  if (!a.data.spec.empty()) data = open_data(a.data.specs, model, loader_options(a.data));
  QuantizeOptions o;
  std::optional<Profile> profile;
  if (!a.profile.empty()) profile = load_profile(a.profile);
  o.profile = profile ? &*profile : nullptr;
  o.load_encodings = a.load_encodings;
  o.strict = a.strict;
  o.progress = console_progress();
  return quantize(model, data.get(), cfg, o);
}

int cmd_quantize(const QuantizeArgs& a) {
  Progress clock("quantize", 0, false);
  quant::QuantConfig cfg = config_from_args(a);
  namespace fs = std::filesystem;
  check(fs::absolute(a.output) != fs::absolute(a.model), "refusing to overwrite the input model '", a.model, "'");
  EncodingsFormat fmt = !a.encodings_format.empty() ? backends::parse_encodings_format(a.encodings_format, "--encodings-format")
                        : !a.profile.empty()          ? load_profile(a.profile).encodings
                                                      : EncodingsFormat::Lowbit;
  bool aimet = fmt == EncodingsFormat::Aimet && !a.save_encodings.empty();
  check(!aimet || !a.save_prepared.empty(), "--save-encodings in AIMET's format names the tensors of the prepared float "
        "model: add --save-prepared FILE to write that model");
  QuantizedModel q = quantize_from_args(a, cfg);
  const QuantConfig& qc = q.config();
  std::string enc = a.save_encodings.empty() ? std::string() : q.encodings_json(fmt);  // errors before any file
  if (!a.save_prepared.empty()) q.save_prepared(a.save_prepared);
  q.export_qdq(a.output);
  if (!enc.empty()) write_file_atomic(a.save_encodings, enc);
  QuantizeSummary s = q.summary();
  size_t before = fs::file_size(a.model), after = fs::file_size(a.output);
  std::printf("quantized %s -> %s\n", a.model.c_str(), a.output.c_str());
  std::printf("  batch norms folded:      %d (after folding %d constant nodes)\n", s.batch_norms_folded, s.constants_folded);
  std::printf("  weight quantizers:       %zu (%d-bit, %s, %s)\n", s.weight_quantizers, qc.weights.spec.grid.bits,
              qc.weights.spec.granularity == quant::Granularity::PerChannel ? "per-channel"
              : qc.weights.spec.granularity == quant::Granularity::PerGroup ? "per-group" : "per-tensor",
              quant::range_method_name(qc.weights.range));
  std::string sign;
  if (qc.activations.signed_auto)
    sign = ", signed auto: " + std::to_string(s.unsigned_activations) + " unsigned, " +
           std::to_string(s.activation_quantizers - s.dynamic_activations - s.unsigned_activations) + " signed";
  std::printf("  activation quantizers:   %zu (%d-bit, %s)%s%s\n", s.activation_quantizers, qc.activations.spec.grid.bits,
              qc.pipeline.data_free ? "data-free" : quant::range_method_name(qc.activations.range),
              s.dynamic_activations ? ", dynamic" : "", sign.c_str());
  for (auto& l : q.logs())
    for (auto& w : l.warnings) std::fprintf(stderr, "lowbit: warning: %s\n", w.c_str());
  for (auto& l : q.logs()) {
    std::printf("  %s (%.1f s):\n", l.name.c_str(), l.seconds);
    for (auto& line : l.lines) std::printf("    %s\n", line.c_str());
  }
  for (auto& n : q.notes()) std::printf("  %s\n", n.c_str());
  if (!s.float_ops.empty()) {
    std::string list;
    for (auto& [op, k] : s.float_ops) list += (list.empty() ? "" : ", ") + std::to_string(k) + " " + op;
    std::printf("  ops left in float:       %s (--strict lists them)\n", list.c_str());
  }
  if (qc.int32_bias) std::printf("  int32 biases:            %d\n", q.int32_biases());
  std::printf("  model size:              %.1f KiB -> %.1f KiB\n", before / 1024.0, after / 1024.0);
  if (!a.save_encodings.empty())
    std::printf("  encodings:               %s%s\n", a.save_encodings.c_str(), aimet ? " (AIMET 0.6.1)" : "");
  if (!a.save_prepared.empty()) std::printf("  prepared float model:    %s\n", a.save_prepared.c_str());
  std::printf("  time:                    %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
