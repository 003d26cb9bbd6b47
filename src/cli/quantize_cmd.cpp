// lowbit quantize: FP32 ONNX model + calibration data -> simulated (QDQ) quantized ONNX model.
#include <filesystem>

#include "cli/commands.h"
#include "cli/progress.h"
#include "data/loader.h"
#include "ir/onnx_io.h"
#include "quant/encodings_io.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"

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

}  // namespace

int cmd_quantize(const QuantizeArgs& a) {
  Progress clock("quantize", 0, false);
  quant::QuantConfig cfg = a.config.empty() ? quant::default_config() : quant::parse_config(read_file(a.config), a.config);
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
  check(cfg.weights.range == quant::RangeMethod::MinMax || cfg.weights.range == quant::RangeMethod::Mse,
        "weight ranges are minmax or mse");
  namespace fs = std::filesystem;
  check(fs::absolute(a.output) != fs::absolute(a.model), "refusing to overwrite the input model '", a.model, "'");

  Model m = load_onnx(a.model);
  Executor validate(m);  // names every unsupported op before any work
  quant::PrepareStats prep = quant::prepare_for_quantization(m);
  quant::QuantSimPlan plan = quant::plan_quantizers(m, cfg);
  if (a.strict) {
    auto left = quant::float_ops(m, plan);
    if (!left.empty()) {
      std::string list;
      for (size_t i = 0; i < left.size(); ++i) list += (i ? ", " : "") + left[i];
      fail("--strict: ", left.size(), " op", left.size() > 1 ? "s" : "", " would stay in float: ", list);
    }
  }
  if (!a.load_encodings.empty()) {
    check(cfg.mode == quant::Mode::Static || cfg.mode == quant::Mode::WeightOnly,
          "--load-encodings applies to static and weight-only quantization");
    quant::apply_encodings(plan, m, read_file(a.load_encodings), a.load_encodings);
  } else if (cfg.mode == quant::Mode::Static) {
    bool data_free = a.data.spec.empty();
    check(!data_free || cfg.activations.range == quant::RangeMethod::Bn,
          "static quantization needs calibration data: pass --data SPEC (or --range bn for BN-based ranges)");
    std::unique_ptr<data::DataLoader> holder;
    if (!data_free) holder = std::make_unique<data::DataLoader>(a.data.spec, loader_options(a.data));
    data::DataLoader* lp = holder.get();
    Progress progress("calibrate", lp ? lp->size() : 0);
    data::Batch b;
    quant::calibrate(
        m, plan,
        [&](Tensor& x) {
          if (!lp || !lp->next(b)) return false;
          x = b.x;
          return true;
        },
        [&](int64_t n) { progress.update(n); }, [&] { if (lp) lp->reset(); }, prep.batch_norms);
  }
  if (cfg.concat_shared_scale && a.load_encodings.empty()) quant::share_concat_encodings(m, plan);
  if (cfg.mode != quant::Mode::Fp16 && a.load_encodings.empty()) quant::compute_weight_encodings(m, plan);
  int int32_biases = 0;
  Model q = quant::build_quantized_model(m, plan, cfg.mode, cfg.int32_bias, &int32_biases);
  save_onnx(q, a.output);
  if (!a.save_encodings.empty()) write_file_atomic(a.save_encodings, quant::encodings_to_json(plan));
  size_t before = fs::file_size(a.model), after = fs::file_size(a.output);
  int dynamic = 0;
  for (auto& x : plan.acts) dynamic += x.dynamic;
  std::printf("quantized %s -> %s\n", a.model.c_str(), a.output.c_str());
  std::printf("  batch norms folded:      %d (after folding %d constant nodes)\n", prep.batch_norms_folded, prep.constants_folded);
  std::printf("  weight quantizers:       %zu (%d-bit, %s)\n", plan.weights.size(), cfg.weights.spec.grid.bits,
              cfg.weights.spec.granularity == quant::Granularity::PerChannel ? "per-channel"
              : cfg.weights.spec.granularity == quant::Granularity::PerGroup ? "per-group" : "per-tensor");
  std::printf("  activation quantizers:   %zu (%d-bit, %s)%s\n", plan.acts.size(), cfg.activations.spec.grid.bits,
              quant::range_method_name(cfg.activations.range), dynamic ? ", dynamic" : "");
  if (cfg.int32_bias) std::printf("  int32 biases:            %d\n", int32_biases);
  std::printf("  model size:              %.1f KiB -> %.1f KiB\n", before / 1024.0, after / 1024.0);
  if (!a.save_encodings.empty()) std::printf("  encodings:               %s\n", a.save_encodings.c_str());
  std::printf("  time:                    %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
