// lowbit public API: evaluation of a model over a data source (accuracy, fidelity against a reference).
#include <chrono>
#include <cmath>

#include "data/feeds.h"
#include "eval/metrics.h"
#include "api/feeds_for.h"
#include "lowbit/lowbit.h"

namespace lowbit {

namespace {

std::string model_name(const Model& m) { return m.source_path.empty() ? std::string("model") : m.source_path; }

// Every input the model needs is in the batch, and each batch's sample shape fits the declared input shape (a
// mismatch named before anything runs, with the data's name).
void check_fits(const Model& m, const std::vector<const ValueInfo*>& required, const Batch& b, const DataSource& data) {
  for (const ValueInfo* vi : required) {
    auto it = b.inputs.find(vi->name);
    check(it != b.inputs.end(), model_name(m), ": '", data.describe(), "' does not feed input '", vi->name, "'");
    const Tensor& t = it->second;
    if (!vi->has_shape || t.rank() == 0) continue;
    Shape sample(t.shape().begin() + 1, t.shape().end());
    bool ok = vi->shape.size() == sample.size() + 1;
    for (size_t i = 0; ok && i < sample.size(); ++i)
      if (vi->shape[i + 1].fixed() && vi->shape[i + 1].value != sample[i]) ok = false;
    if (!ok) {
      std::string want = "[";
      for (size_t i = 0; i < vi->shape.size(); ++i)
        want += (i ? "," : "") + (vi->shape[i].fixed() ? std::to_string(vi->shape[i].value) : std::string("?"));
      fail(model_name(m), ": input '", vi->name, "' expects ", want + "]", " but '", data.describe(),
           "' gives samples of shape ", shape_str(sample), " (see the resize/crop/channels options)");
    }
  }
}


}  // namespace

EvalResult evaluate(const Model& model, DataSource& data, const EvalOptions& opt) {
  check(!model.graph.outputs.empty(), model_name(model), ": the model has no outputs");
  Executor ex(model);
  std::unique_ptr<Executor> ref;
  if (opt.reference) {
    check(!opt.reference->graph.outputs.empty(), model_name(*opt.reference), ": the model has no outputs");
    ref = std::make_unique<Executor>(*opt.reference);
  }
  const std::string out_name = model.graph.outputs[0].name;
  auto required = ex.required_inputs();
  eval::TopK topk, ref_topk;
  eval::Fidelity fid;
  EvalResult r;
  auto start = std::chrono::steady_clock::now();
  data.reset();
  Batch b;
  bool first = true, labelled = true;
  int64_t done = 0, total = data.size();
  if (opt.progress) opt.progress("eval", 0, total);
  while (data.next(b)) {
    if (first) check_fits(model, required, b, data);
    int64_t rows = data::FeedLoader::rows(b.inputs);
    labelled = labelled && (int64_t)b.labels.size() == rows;
    check(labelled || ref, "'", data.describe(),
          "' has no labels: pass --reference MODEL (EvalOptions::reference) for a fidelity comparison");
    Tensor y = ex.run(feeds_for(ex, b), {out_name}).at(out_name);
    for (double v : y.to_f64())
      check(std::isfinite(v), model_name(model), ": output '", out_name, "' is not finite for the batch starting at sample ",
            done);
    if (labelled) topk.add(y, b.labels);
    if (ref) {
      const std::string& ref_out = opt.reference->graph.outputs[0].name;
      Tensor ry = ref->run(feeds_for(*ref, b), {ref_out}).at(ref_out);
      fid.add(y, ry);
      if (labelled) ref_topk.add(ry, b.labels);
    }
    r.has_labels = labelled;
    first = false;
    done += rows;
    if (opt.progress) opt.progress("eval", done, total);
  }
  check(done > 0, "'", data.describe(), "' gave no samples");
  r.samples = done;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (r.has_labels) {
    r.top1 = topk.top1();
    r.has_top5 = topk.has_top5();
    if (r.has_top5) r.top5 = topk.top5();
  }
  if (ref) {
    r.has_reference = true;
    if (r.has_labels) r.reference_top1 = ref_topk.top1();
    r.mean_abs_error = fid.mean_abs_error();
    r.max_abs_error = fid.max_abs_error();
    r.sqnr_db = fid.sqnr_db();
    r.cosine_similarity = fid.mean_cosine();
    r.top1_agreement = fid.top1_agreement();
  }
  return r;
}

}  // namespace lowbit
