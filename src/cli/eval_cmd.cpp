// lowbit eval: accuracy on a labelled dataset and/or fidelity against a reference model.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "data/loader.h"
#include "eval/metrics.h"
#include "ir/onnx_io.h"
#include "runtime/executor.h"

namespace lowbit::cli {

double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

namespace {

// The one input the data feeds, checked against the data's sample shape before anything runs.
std::string data_input(const Executor& ex, const Shape& sample, const std::string& model_path, const std::string& spec) {
  auto req = ex.required_inputs();
  check(req.size() == 1, model_path, ": eval needs a model with one input, this one has ", req.size());
  const ValueInfo& vi = *req[0];
  if (vi.has_shape) {
    bool ok = vi.shape.size() == sample.size() + 1;
    for (size_t i = 0; ok && i < sample.size(); ++i)
      if (vi.shape[i + 1].fixed() && vi.shape[i + 1].value != sample[i]) ok = false;
    if (!ok) {
      std::string want = "[";
      for (size_t i = 0; i < vi.shape.size(); ++i)
        want += (i ? "," : "") + (vi.shape[i].fixed() ? std::to_string(vi.shape[i].value) : std::string("?"));
      fail(model_path, ": input '", vi.name, "' expects ", want + "]", " but '", spec, "' gives samples of shape ",
           shape_str(sample), " (see --resize/--crop/--channels)");
    }
  }
  return vi.name;
}

}  // namespace

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

int cmd_eval(const EvalArgs& a) {
  check(a.data.specs.size() <= 1, "eval takes one --data (a single-input model); got ", a.data.specs.size());
  data::DataLoader loader(a.data.spec, loader_options(a.data));
  Model m = load_onnx(a.model);
  Executor ex(m);
  std::string input = data_input(ex, loader.sample_shape(), a.model, a.data.spec);
  std::unique_ptr<Executor> ref;
  std::string ref_input;
  if (!a.reference.empty()) {
    ref = std::make_unique<Executor>(load_onnx(a.reference));
    ref_input = data_input(*ref, loader.sample_shape(), a.reference, a.data.spec);
  }
  check(loader.has_labels() || ref, "'", a.data.spec, "' has no labels: pass --reference MODEL for a fidelity comparison");
  const std::string out_name = m.graph.outputs.at(0).name;
  eval::TopK topk, ref_topk;
  eval::Fidelity fid;
  Progress progress("eval", loader.size(), !a.json);
  data::Batch b;
  int64_t done = 0;
  while (loader.next(b)) {
    Tensor y = ex.run({{input, b.x}}).at(out_name);
    for (double v : y.to_f64())
      check(std::isfinite(v), a.model, ": output '", out_name, "' is not finite for the batch starting at sample ", done);
    if (loader.has_labels()) topk.add(y, b.labels);
    if (ref) {
      auto r = ref->run({{ref_input, b.x}});
      const Tensor& ry = r.at(ref->model().graph.outputs.at(0).name);
      fid.add(y, ry);
      if (loader.has_labels()) ref_topk.add(ry, b.labels);
    }
    done += b.x.dim(0);
    progress.update(done);
  }
  double secs = progress.seconds();
  nlohmann::json j;
  j["model"] = a.model;
  j["data"] = a.data.spec;
  j["samples"] = done;
  j["seconds"] = secs;
  j["images_per_second"] = done / std::max(secs, 1e-9);
  j["peak_rss_mib"] = peak_rss_mib();
  if (loader.has_labels()) {
    j["top1_percent"] = topk.top1();
    if (topk.has_top5()) j["top5_percent"] = topk.top5();
  }
  if (ref) {
    j["reference"] = a.reference;
    if (loader.has_labels()) j["reference_top1_percent"] = ref_topk.top1();
    double sq = fid.sqnr_db();
    j["fidelity"] = {{"mean_abs_error", fid.mean_abs_error()}, {"max_abs_error", fid.max_abs_error()},
                     {"sqnr_db", std::isinf(sq) ? nlohmann::json("inf") : nlohmann::json(sq)},
                     {"cosine_similarity", fid.mean_cosine()}, {"top1_agreement_percent", fid.top1_agreement()}};
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:      %s\ndata:       %s (%lld samples)\n", a.model.c_str(), a.data.spec.c_str(), (long long)done);
  if (loader.has_labels()) {
    std::printf("top-1:      %.2f%%\n", topk.top1());
    if (topk.has_top5()) std::printf("top-5:      %.2f%%\n", topk.top5());
  }
  if (ref) {
    if (loader.has_labels()) std::printf("reference top-1: %.2f%% (%s)\n", ref_topk.top1(), a.reference.c_str());
    std::printf("fidelity vs reference: mean |err| %.3g, max |err| %.3g, SQNR %.2f dB, cosine %.6f, top-1 agreement %.2f%%\n",
                fid.mean_abs_error(), fid.max_abs_error(), fid.sqnr_db(), fid.mean_cosine(), fid.top1_agreement());
  }
  std::printf("throughput: %.0f images/s (%.2f s), peak memory %.0f MiB\n", done / std::max(secs, 1e-9), secs, peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
