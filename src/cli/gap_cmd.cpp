// lowbit gap: the command line over lowbit::measure_gap (include/lowbit/gap.h) and write_gap_report.
#include <filesystem>

#include "api/progress.h"
#include "cli/commands.h"

namespace lowbit::cli {

int cmd_gap(const GapArgs& a) {
  Progress clock("gap", 0, false);
  namespace fs = std::filesystem;
  check(!fs::exists(a.out_dir) || fs::is_directory(a.out_dir), "-o '", a.out_dir, "' exists and is not a folder");
  check(!a.qdq || a.profiles.size() == 1, "--qdq measures one QDQ model under one target: pass --profile P once");
  check(!a.qdq || a.data.spec.empty(), "--qdq: the model is quantized already, --data (calibration) does not apply");
  check(a.qdq || a.reference.empty(), "--reference applies to --qdq (otherwise the model itself is the FP32 model)");
  std::vector<Profile> profiles;
  for (auto& n : a.profiles.empty() ? profile_names() : a.profiles) profiles.push_back(load_profile(n));
  Model model = Model::load(a.model);
  DataArgs eval_args = a.data;
  eval_args.num_samples = a.eval_samples;
  auto eval = open_data({a.eval_data}, model, loader_options(eval_args));
  ProgressFn progress = a.json ? ProgressFn() : console_progress();
  GapReport r;
  if (a.qdq) {
    std::unique_ptr<Model> ref;
    if (!a.reference.empty()) ref = std::make_unique<Model>(Model::load(a.reference));
    r = measure_gap(model, profiles[0], *eval, ref.get(), progress);
  } else {
    std::unique_ptr<DataSource> calib;
    if (!a.data.spec.empty()) calib = open_data(a.data.specs, model, loader_options(a.data));
    r = measure_gap(model, calib.get(), *eval, profiles, progress);
  }
  write_gap_report(r, a.out_dir);
  if (a.json) {
    std::printf("%s", analysis::gap_json(r).c_str());
    return 0;
  }
  std::printf("gap %s on %lld samples of %s\n", a.model.c_str(), (long long)r.samples, r.data.c_str());
  if (r.has_fp32) std::printf("  FP32 top-1: %.2f%%\n", r.fp32_top1);
  for (auto& p : r.profiles) {
    const LayerGap* worst = nullptr;  // the layer whose own arithmetic differs most
    for (auto& l : p.layers)
      if (!worst || l.isolated.differing_percent() > worst->isolated.differing_percent()) worst = &l;
    std::printf("  %-16s", p.profile.c_str());
    if (r.labelled) std::printf(" simulation %6.2f%%, integer engine %6.2f%%,", p.sim_top1, p.int_top1);
    std::printf(" top-1 agreement %6.2f%%, output identical %6.2f%%\n", p.top1_agreement, p.output_identical_percent);
    if (worst)
      std::printf("  %-16s %d integer layers; most divergent on the simulation's inputs: %s (%.3f%% of codes differ, "
                  "at most %lld steps)\n", "", p.integer_layers, worst->node.c_str(), worst->isolated.differing_percent(),
                  (long long)worst->isolated.max_steps);
  }
  std::printf("  report: %s/index.html, %s/gap.json\n", a.out_dir.c_str(), a.out_dir.c_str());
  std::printf("  time: %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
