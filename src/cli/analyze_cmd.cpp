// lowbit analyze: the command line over QuantizedModel::analyze (the white paper's debugging flow) and
// write_report (HTML + JSON report, optional mixed-precision config).
#include <filesystem>
#include <optional>

#include "api/progress.h"
#include "cli/commands.h"

namespace lowbit::cli {

int cmd_analyze(const AnalyzeArgs& a) {
  Progress clock("analyze", 0, false);
  check(!a.q.data.spec.empty(), "analyze needs calibration data: pass --data SPEC");
  check(a.metric == "accuracy" || a.metric == "sqnr", "--metric '", a.metric, "': expected accuracy or sqnr");
  analysis::AnalyzeOptions opt;
  opt.metric = a.metric == "accuracy" ? analysis::Metric::Accuracy : analysis::Metric::Sqnr;
  if (a.target_drop >= 0) opt.target_drop = a.target_drop;
  opt.raise_bits = a.raise_bits;
  check(a.raise_bits == 0 || (a.raise_bits >= 2 && a.raise_bits <= 16), "--raise-bits must be 2..16");
  namespace fs = std::filesystem;
  check(!fs::exists(a.out_dir) || fs::is_directory(a.out_dir), "-o '", a.out_dir, "' exists and is not a folder");
  quant::QuantConfig cfg = config_from_args(a.q);
  check(cfg.mode == quant::Mode::Static || cfg.mode == quant::Mode::WeightOnly,
        "analyze covers static and weight-only quantization");
  QuantizedModel q = quantize_from_args(a.q, cfg);
  DataArgs eval_args = a.q.data;
  eval_args.num_samples = a.eval_samples;
  std::vector<std::string> eval_specs = a.eval_data.empty() ? a.q.data.specs : std::vector<std::string>{a.eval_data};
  auto calib = open_data(a.q.data.specs, q.original(), loader_options(a.q.data));
  auto eval = open_data(eval_specs, q.original(), loader_options(eval_args));
  analysis::Report r = q.analyze(*calib, *eval, opt, 64, console_progress());
  std::optional<Profile> profile;
  if (!a.q.profile.empty()) profile = load_profile(a.q.profile);
  if (profile && cfg.mode == quant::Mode::Static) {  // the deployment gap on the same evaluation data
    LowerReport lr;
    lower_to_integer(q.qdq_model(), *profile, &lr);
    if (lr.integer_layers > 0) r.gap = measure_gap(q.qdq_model(), *profile, *eval, nullptr, console_progress()).profiles[0];
    else std::printf("  gap: no layer of the QDQ model runs in integers under profile %s\n", profile->name.c_str());
  }
  write_report(r, q.config(), a.out_dir, fs::path(a.q.model).filename().string());
  const auto& w = r.quantizers.front();
  std::printf("analyzed %s: %s FP32 %.2f, quantized %.2f (weights only %.2f, activations only %.2f)\n", a.q.model.c_str(),
              analysis::metric_name(r.metric), r.fp32, r.quantized, r.weights_only, r.activations_only);
  std::printf("  most sensitive: %s (alone %.2f)\n", w.q.label().c_str(), w.alone);
  for (auto& rc : r.recommendations) std::printf("  [%s] %s\n", rc.severity.c_str(), rc.text.c_str());
  if (r.gap) {
    std::printf("  integer engine (%s): top-1 agreement with the simulation %.2f%%", r.gap->profile.c_str(),
                r.gap->top1_agreement);
    if (r.metric == analysis::Metric::Accuracy)
      std::printf(", accuracy %.2f (simulation %.2f)", r.gap->int_top1, r.gap->sim_top1);
    std::printf("\n");
  }
  std::printf("  report: %s/index.html, %s/report.json%s\n", a.out_dir.c_str(), a.out_dir.c_str(),
              r.fix ? (", config: " + a.out_dir + "/config.json").c_str() : "");
  std::printf("  time: %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
