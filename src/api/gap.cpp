// lowbit public API: the deployment gap (simulation vs integer engine, per profile and per integer layer).
#include <filesystem>
#include <map>

#include "eval/metrics.h"
#include "ir/onnx_io.h"
#include "api/feeds_for.h"
#include "lowbit/lowbit.h"

namespace lowbit {

namespace {

struct Target {
  const Model* qdq;
  const Profile* profile;
};

GapReport run_gap(const Model* fp32, const std::vector<Target>& targets, DataSource& eval, const ProgressFn& progress) {
  GapReport r;
  r.data = eval.describe();
  struct State {
    Model low;
    std::unique_ptr<Executor> sim, engine, isolated;  // isolated: the engine with the simulation's codes swapped in
    std::vector<std::string> fetch;      // the first output, then every integer layer's output codes
    std::vector<std::string> sim_codes;  // every QuantizeLinear output of the QDQ model that the engine also has
    std::vector<std::string> sim_fetch;  // fetch, then sim_codes: what the simulation run returns
    TensorMap sim_values;                // this batch's simulation values of fetch and sim_codes
    eval::TopK sim_topk, int_topk;
    eval::Fidelity fid;
    int64_t out_elems = 0, out_same = 0;
  };
  std::vector<State> st(targets.size());
  r.profiles.reserve(targets.size());  // the hooks below keep pointers into it
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    ProfileGap p;
    p.profile = t.profile->name;
    p.multiplier = backends::multiplier_name(t.profile->multiplier);
    p.rounding = backends::int_rounding_name(t.profile->rounding);
    p.softmax = backends::softmax_arith_name(t.profile->softmax);
    p.bias = backends::bias_arith_name(t.profile->bias);
    LowerReport lr;
    st[i].low = lower_to_integer(*t.qdq, *t.profile, &lr);
    check(lr.integer_layers > 0, "gap: profile '", p.profile, "': the QDQ model has no Conv/Gemm/MatMul in QDQ form ",
          "to run in integers");
    p.integer_layers = lr.integer_layers;
    p.float_output_layers = lr.float_output_layers;
    p.float_islands = lr.float_islands;
    p.left_in_float = lr.skipped;
    for (auto& [node, tensor] : lr.layers) {
      LayerGap l;
      l.node = node;
      l.tensor = tensor;
      p.layers.push_back(l);
    }
    check(!t.qdq->graph.outputs.empty(), "gap: the QDQ model has no outputs");
    State& s = st[i];
    s.fetch = {t.qdq->graph.outputs[0].name};
    for (auto& l : p.layers) s.fetch.push_back(l.tensor);
    const GraphIndex low_ix(s.low.graph);
    std::map<std::string, size_t> layer_of;
    for (size_t k = 0; k < p.layers.size(); ++k) layer_of[p.layers[k].tensor] = k;
    for (auto& n : t.qdq->graph.nodes)
      if (n.domain.empty() && n.op_type == "QuantizeLinear" && low_ix.producer(n.outputs[0]) >= 0)
        s.sim_codes.push_back(n.outputs[0]);
    s.sim_fetch = s.fetch;
    s.sim_fetch.insert(s.sim_fetch.end(), s.sim_codes.begin(), s.sim_codes.end());
    s.sim = std::make_unique<Executor>(*t.qdq);
    s.engine = std::make_unique<Executor>(s.low);
    s.isolated = std::make_unique<Executor>(s.low);
    r.profiles.push_back(std::move(p));
    ProfileGap* pg = &r.profiles.back();
    s.isolated->add_hook([&s, pg, layer_of](const Node*, const std::string& name, Tensor& value) {
      auto it = layer_of.find(name);
      const Tensor& sim = s.sim_values.at(name);
      if (it != layer_of.end()) pg->layers[it->second].isolated.add(sim, value, name);
      value = sim;
    }, s.sim_codes);
  }
  std::unique_ptr<Executor> ref = fp32 ? std::make_unique<Executor>(*fp32) : nullptr;
  eval::TopK fp32_topk;
  eval.reset();
  Batch b;
  bool labelled = true;
  int64_t done = 0, total = eval.size();
  if (progress) progress("gap", 0, total);
  while (eval.next(b)) {
    int64_t rows = b.inputs.empty() ? 0 : b.inputs.begin()->second.dim(0);
    labelled = labelled && (int64_t)b.labels.size() == rows && rows > 0;
    if (ref && labelled) {
      const std::string& out = fp32->graph.outputs[0].name;
      fp32_topk.add(ref->run(feeds_for(*ref, b), {out}).at(out), b.labels);
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      State& s = st[i];
      ProfileGap& p = r.profiles[i];
      s.sim_values = s.sim->run(feeds_for(*s.sim, b), s.sim_fetch);
      s.isolated->run(feeds_for(*s.isolated, b), {s.fetch[0]});
      TensorMap ye = s.engine->run(feeds_for(*s.engine, b), s.fetch);
      const TensorMap& ys = s.sim_values;
      const Tensor &a = ys.at(s.fetch[0]), &e = ye.at(s.fetch[0]);
      s.fid.add(e, a);
      auto av = a.to_f64(), ev = e.to_f64();
      for (size_t k = 0; k < av.size(); ++k) s.out_same += av[k] == ev[k];
      s.out_elems += (int64_t)av.size();
      if (labelled) {
        s.sim_topk.add(a, b.labels);
        s.int_topk.add(e, b.labels);
      }
      for (size_t k = 0; k < p.layers.size(); ++k)
        p.layers[k].propagated.add(ys.at(s.fetch[k + 1]), ye.at(s.fetch[k + 1]), s.fetch[k + 1]);
    }
    done += rows;
    if (progress) progress("gap", done, total);
  }
  check(done > 0, "gap: '", eval.describe(), "' gave no samples");
  r.samples = done;
  r.labelled = labelled;
  r.has_fp32 = ref && labelled;
  if (r.has_fp32) r.fp32_top1 = fp32_topk.top1();
  for (size_t i = 0; i < targets.size(); ++i) {
    ProfileGap& p = r.profiles[i];
    p.sim_top1 = st[i].sim_topk.top1();
    p.int_top1 = st[i].int_topk.top1();
    p.top1_agreement = st[i].fid.top1_agreement();
    p.output_max_abs_diff = st[i].fid.max_abs_error();
    p.output_identical_percent = 100.0 * (double)st[i].out_same / (double)std::max<int64_t>(1, st[i].out_elems);
  }
  return r;
}

}  // namespace

GapReport measure_gap(const Model& fp32, DataSource* calib, DataSource& eval, const std::vector<Profile>& profiles,
                      const ProgressFn& progress) {
  check(!profiles.empty(), "gap: no profiles to measure");
  std::vector<Model> qdq;
  qdq.reserve(profiles.size());
  for (const Profile& p : profiles) {
    QuantizeOptions o;
    o.profile = &p;
    o.progress = progress;
    try {
      qdq.push_back(quantize(fp32, calib, p.config, o).qdq_model());
    } catch (const Error& e) {
      fail("gap: profile '", p.name, "': ", e.what());
    }
  }
  std::vector<Target> t;
  for (size_t i = 0; i < profiles.size(); ++i) t.push_back({&qdq[i], &profiles[i]});
  GapReport r = run_gap(&fp32, t, eval, progress);
  r.model = fp32.source_path;
  return r;
}

GapReport measure_gap(const Model& qdq, const Profile& profile, DataSource& eval, const Model* fp32,
                      const ProgressFn& progress) {
  GapReport r = run_gap(fp32, {{&qdq, &profile}}, eval, progress);
  r.model = qdq.source_path;
  return r;
}

void write_gap_report(const GapReport& r, const std::string& dir) {
  namespace fs = std::filesystem;
  check(!fs::exists(dir) || fs::is_directory(dir), "gap report: '", dir, "' exists and is not a folder");
  fs::create_directories(dir);
  write_file_atomic((fs::path(dir) / "gap.json").string(), analysis::gap_json(r));
  write_file_atomic((fs::path(dir) / "index.html").string(), analysis::gap_html(r));
}

}  // namespace lowbit
