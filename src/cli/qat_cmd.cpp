// lowbit qat: parses nothing itself (main.cpp does), calls lowbit::qat() and prints its progress and summary.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "api/progress.h"
#include "cli/commands.h"

namespace lowbit::cli {

int cmd_qat(const QatArgs& a) {
  Progress clock("qat", 0, false);
  namespace fs = std::filesystem;
  check(!a.q.data.spec.empty(), "qat needs training data: --data SPEC (e.g. fashion-mnist:train)");
  check(fs::absolute(a.q.output) != fs::absolute(a.q.model), "refusing to overwrite the input model '", a.q.model, "'");
  QuantizeArgs qa = a.q;
  // QAT starts from MSE ranges (the white paper's Fig. 12) unless the config, a profile or a flag says otherwise.
  if (qa.config.empty() && qa.profile.empty()) {
    if (qa.range.empty()) qa.range = "mse";
    if (qa.weight_range.empty()) qa.weight_range = "mse";
  }
  quant::QuantConfig cfg = config_from_args(qa);
  Model model = Model::load(a.q.model);
  DataOptions train_opt = loader_options(a.q.data);
  train_opt.num_samples = a.q.data.num_samples;
  auto train = open_data(a.q.data.specs, model, train_opt);
  std::unique_ptr<DataSource> val;
  if (!a.val.empty()) {
    DataOptions vo = loader_options(a.q.data);
    vo.num_samples = a.val_samples;
    val = open_data({a.val}, model, vo);
  }
  std::optional<Profile> profile;
  if (!a.q.profile.empty()) profile = load_profile(a.q.profile);
  QatOptions o;
  o.profile = profile ? &*profile : nullptr;
  o.calib_samples = a.calib_samples;
  o.train_samples = a.q.data.num_samples;
  o.ptq_progress = console_progress();
  train::QatOptions& t = o.train;
  t.method = train::parse_qat_method(a.method);
  t.epochs = a.epochs;
  t.batch_size = a.q.data.batch_size;
  t.steps_per_epoch = a.steps_per_epoch;
  t.optim.kind = train::parse_optim(a.optimizer);
  t.optim.lr = a.lr;
  t.optim.momentum = a.momentum;
  t.optim.nesterov = a.nesterov;
  t.optim.weight_decay = a.weight_decay;
  t.quant_lr_scale = a.quant_lr;
  t.schedule.kind = train::parse_schedule(a.schedule);
  t.schedule.warmup_steps = a.warmup;
  t.distill = a.distill;
  t.temperature = a.temperature;
  t.seed = a.q.data.seed;
  t.checkpoint = a.checkpoint;
  t.resume = a.resume;
  t.stop_after = a.stop_after;
  t.profile_ops = a.profile_ops;
  t.bn_fold = a.bn_fold;
  t.freeze_bn_step = a.freeze_bn_step;
  std::unique_ptr<Progress> bar;
  int bar_epoch = -1;
  o.progress = [&](const QatProgress& p) {
    if (p.epoch != bar_epoch) {
      bar = std::make_unique<Progress>("epoch " + std::to_string(p.epoch) + "/" + std::to_string(p.epochs), p.steps);
      bar_epoch = p.epoch;
    }
    char loss[48];
    std::snprintf(loss, sizeof loss, "loss %.4f", p.loss);
    bar->update(p.step, loss, p.images_per_second, " images/s");
  };
  o.on_epoch = [&a](const EpochLog& e) {
    std::printf("epoch %d: loss %.4f, train top-1 %.2f %%", e.epoch, e.loss, e.train_top1);
    if (e.val_top1 >= 0) std::printf(", validation top-1 %.2f %%", e.val_top1);
    std::printf(", %.0f images/s, %.1f s, saved activations %.1f MiB\n", e.images_per_second, e.seconds,
                (double)e.saved_bytes / (1024.0 * 1024.0));
    if (a.profile_ops) {
      std::vector<std::pair<double, std::string>> rows;
      for (auto& [op, t] : e.op_seconds) rows.push_back({t.first + t.second, op});
      std::sort(rows.rbegin(), rows.rend());
      for (auto& [total, op] : rows) {
        auto& t = e.op_seconds.at(op);
        std::printf("  %-22s forward %7.2f s  reverse %7.2f s\n", op.c_str(), t.first, t.second);
      }
    }
    std::fflush(stdout);
  };
  QuantizedModel q = qat(model, *train, val.get(), cfg, o);
  q.export_qdq(a.q.output);
  if (!a.q.save_encodings.empty()) q.save_encodings(a.q.save_encodings);
  QuantizeSummary s = q.summary();
  const QuantConfig& qc = q.config();
  std::printf("trained %s -> %s\n", a.q.model.c_str(), a.q.output.c_str());
  std::printf("  batch norms folded:      %d\n", s.batch_norms_folded);
  std::printf("  weight quantizers:       %zu (%d-bit)\n", s.weight_quantizers, qc.weights.spec.grid.bits);
  std::printf("  activation quantizers:   %zu (%d-bit)\n", s.activation_quantizers, qc.activations.spec.grid.bits);
  for (auto& l : q.logs()) {
    std::printf("  %s (%.1f s):\n", l.name.c_str(), l.seconds);
    for (auto& line : l.lines) std::printf("    %s\n", line.c_str());
  }
  for (auto& n : q.notes()) std::printf("  %s\n", n.c_str());
  if (!a.q.save_encodings.empty()) std::printf("  encodings:               %s\n", a.q.save_encodings.c_str());
  if (!a.checkpoint.empty()) std::printf("  checkpoint:              %s\n", a.checkpoint.c_str());
  std::printf("  time:                    %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
