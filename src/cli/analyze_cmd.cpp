// lowbit analyze: the white paper's debugging flow on a model and its quantization config, as an HTML + JSON report.
#include <cstring>
#include <filesystem>

#include "analysis/report.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "ir/onnx_io.h"

namespace lowbit::cli {

namespace {

analysis::EvalSet load_eval_set(const DataArgs& d, const std::string& spec, int64_t n) {
  data::LoaderOptions o = loader_options(d);
  o.num_samples = n;
  data::DataLoader loader(spec, o);
  data::Batch b = data::read_all(loader);
  return {b.x, b.labels};
}

}  // namespace

int cmd_analyze(const AnalyzeArgs& a) {
  Progress clock("analyze", 0, false);
  check(!a.q.data.spec.empty(), "analyze needs calibration data: pass --data SPEC");
  check(a.q.data.specs.size() <= 1, "analyze takes one --data (a single-input model); got ", a.q.data.specs.size());
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
  QuantState st = run_quantization(a.q, cfg);
  analysis::EvalSet eval = load_eval_set(a.q.data, a.eval_data.empty() ? a.q.data.spec : a.eval_data, a.eval_samples);
  check(opt.metric == analysis::Metric::Sqnr || !eval.labels.empty(), "the evaluation data '",
        a.eval_data.empty() ? a.q.data.spec : a.eval_data, "' has no labels: use --metric sqnr");
  Tensor calib = load_eval_set(a.q.data, a.q.data.spec, 64).x;
  std::unique_ptr<Progress> bar;
  std::string current;
  analysis::Report r = analysis::analyze(st.original, st.prepared, st.plan, cfg, calib, eval, opt,
                                         [&](const std::string& what, size_t done, size_t total) {
                                           if (!bar || what != current) bar = std::make_unique<Progress>(what, (int64_t)total);
                                           current = what;
                                           bar->update((int64_t)done);
                                         });
  fs::create_directories(a.out_dir);
  std::string name = fs::path(a.q.model).filename().string();
  if (r.fix) write_file_atomic((fs::path(a.out_dir) / "config.json").string(), analysis::fixed_config_json(cfg, *r.fix));
  write_file_atomic((fs::path(a.out_dir) / "report.json").string(), analysis::report_json(r, name));
  write_file_atomic((fs::path(a.out_dir) / "index.html").string(), analysis::report_html(r, name));
  const auto& w = r.quantizers.front();
  std::printf("analyzed %s: %s FP32 %.2f, quantized %.2f (weights only %.2f, activations only %.2f)\n", a.q.model.c_str(),
              analysis::metric_name(r.metric), r.fp32, r.quantized, r.weights_only, r.activations_only);
  std::printf("  most sensitive: %s (alone %.2f)\n", w.q.label().c_str(), w.alone);
  for (auto& rc : r.recommendations) std::printf("  [%s] %s\n", rc.severity.c_str(), rc.text.c_str());
  std::printf("  report: %s/index.html, %s/report.json%s\n", a.out_dir.c_str(), a.out_dir.c_str(),
              r.fix ? (", config: " + a.out_dir + "/config.json").c_str() : "");
  std::printf("  time: %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
