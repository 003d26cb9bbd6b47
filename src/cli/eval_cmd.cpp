// lowbit eval: the command line over lowbit::evaluate (accuracy on labelled data, fidelity against a reference).
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/commands.h"

namespace lowbit::cli {

data::LoaderOptions loader_options(const DataArgs& d) {
  data::LoaderOptions lo;
  lo.batch_size = d.batch_size;
  lo.num_samples = d.num_samples;
  lo.seed = d.seed;
  lo.pre = d.pre;
  if (!d.crop.empty()) {
    auto x = d.crop.find('x');
    try {
      lo.pre.crop_h = std::stoi(d.crop.substr(0, x));
      lo.pre.crop_w = x == std::string::npos ? lo.pre.crop_h : std::stoi(d.crop.substr(x + 1));
    } catch (const std::exception&) {
      fail("--crop '", d.crop, "': expected HxW or N");
    }
    check(lo.pre.crop_h > 0 && lo.pre.crop_w > 0, "--crop '", d.crop, "': sizes must be positive");
  }
  return lo;
}

Model model_for_engine(const std::string& path, const EngineArgs& e, LowerReport* report) {
  check(e.engine == "fp32" || e.engine == "int", "--engine '", e.engine, "': expected fp32 or int");
  check(e.engine == "int" || e.profile.empty(), "--profile applies to --engine int (quantize takes its own --profile)");
  Model m = Model::load(path);
  if (e.engine == "fp32") return m;
  check(!e.profile.empty(), "--engine int needs --profile P: the target whose integer arithmetic to run");
  LowerReport r;
  Model low = lower_to_integer(m, load_profile(e.profile), &r);
  if (r.integer_layers == 0) {
    // Say why: the first layer the lowering left in float, or that the main graph has none in QDQ form.
    if (!r.skipped.empty())
      fail(path, ": no layer runs in integers under profile '", e.profile, "' (is it a quantized model?): ",
           r.skipped.size(), " Conv/Gemm/MatMul/Add node(s) stay in float, the first ", r.skipped.front());
    fail(path, ": no layer runs in integers under profile '", e.profile,
         "' (is it a quantized model?): no Conv/Gemm/MatMul of the main graph has quantized inputs, weights and ",
         "output (a network inside an If/Loop/Scan is left in float)");
  }
  std::string islands;
  for (auto& [op, k] : r.float_islands) islands += (islands.empty() ? "" : ", ") + std::to_string(k) + " " + op;
  std::fprintf(stderr, "integer engine (%s): %d integer layers; float islands: %s\n", e.profile.c_str(),
               r.integer_layers, islands.empty() ? "none" : islands.c_str());
  if (report) *report = r;
  return low;
}

int cmd_eval(const EvalArgs& a) {
  LowerReport lr;
  Model m = model_for_engine(a.model, a.engine, &lr);
  auto data = open_data(a.data.specs, m, loader_options(a.data));
  std::unique_ptr<Model> ref;
  if (!a.reference.empty()) ref = std::make_unique<Model>(Model::load(a.reference));
  EvalOptions o;
  o.reference = ref.get();
  if (!a.json) o.progress = console_progress();
  EvalResult r = evaluate(m, *data, o);
  double rate = r.samples / std::max(r.seconds, 1e-9);
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["data"] = a.data.spec;
    j["samples"] = r.samples;
    j["seconds"] = r.seconds;
    j["images_per_second"] = rate;
    j["peak_rss_mib"] = peak_rss_mib();
    if (a.engine.engine == "int")
      j["engine"] = {{"kind", "int"}, {"profile", a.engine.profile}, {"integer_layers", lr.integer_layers},
                     {"float_islands", lr.float_islands}, {"left_in_float", lr.skipped}};
    if (r.has_labels) {
      j["top1_percent"] = r.top1;
      if (r.has_top5) j["top5_percent"] = r.top5;
    }
    if (r.has_reference) {
      j["reference"] = a.reference;
      if (r.has_labels) j["reference_top1_percent"] = r.reference_top1;
      j["fidelity"] = {{"mean_abs_error", r.mean_abs_error}, {"max_abs_error", r.max_abs_error},
                       {"sqnr_db", std::isinf(r.sqnr_db) ? nlohmann::json("inf") : nlohmann::json(r.sqnr_db)},
                       {"cosine_similarity", r.cosine_similarity}, {"top1_agreement_percent", r.top1_agreement}};
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:      %s\ndata:       %s (%lld samples)\n", a.model.c_str(), a.data.spec.c_str(),
              (long long)r.samples);
  if (r.has_labels) {
    std::printf("top-1:      %.2f%%\n", r.top1);
    if (r.has_top5) std::printf("top-5:      %.2f%%\n", r.top5);
  }
  if (r.has_reference) {
    if (r.has_labels) std::printf("reference top-1: %.2f%% (%s)\n", r.reference_top1, a.reference.c_str());
    std::printf("fidelity vs reference: mean |err| %.3g, max |err| %.3g, SQNR %.2f dB, cosine %.6f, top-1 agreement %.2f%%\n",
                r.mean_abs_error, r.max_abs_error, r.sqnr_db, r.cosine_similarity, r.top1_agreement);
  }
  std::printf("throughput: %.0f images/s (%.2f s), peak memory %.0f MiB\n", rate, r.seconds, peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
