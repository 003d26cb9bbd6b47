#include "train/qat.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include "io/npy.h"
#include "ir/builder.h"
#include "runtime/executor.h"
#include "train/tape.h"

namespace lowbit::train {

QatMethod parse_qat_method(const std::string& s) {
  if (s == "ste") return QatMethod::Ste;
  if (s == "lsq") return QatMethod::Lsq;
  if (s == "lsq+") return QatMethod::LsqPlus;
  fail("unknown QAT method '", s, "' (expected ste, lsq or lsq+)");
}
const char* qat_method_name(QatMethod m) {
  switch (m) {
    case QatMethod::Ste: return "ste";
    case QatMethod::Lsq: return "lsq";
    case QatMethod::LsqPlus: return "lsq+";
  }
  return "?";
}

namespace {

void check_spec(const quant::QuantizerSpec& s, QatMethod method, const std::string& what) {
  check(s.granularity != quant::Granularity::PerGroup, what,
        ": QAT covers per-tensor and per-channel quantizers, not per-group");
  check(s.rounding == quant::Rounding::HalfToEven, what,
        ": QAT rounds half to even (as QuantizeLinear does); half-away rounding is not trained");
  check(s.scale_form == quant::ScaleForm::Float || method == QatMethod::Ste, what,
        ": power-of-two scales cannot be learned; use --method ste (scales stay at their PTQ values)");
}

// Elements per scale of one sample: the activation's size without its batch axis.
std::map<std::string, int64_t> per_sample_sizes(const Model& m, const std::string& input, const Tensor& sample,
                                                const std::vector<std::string>& names) {
  Executor ex(m);
  std::map<std::string, int64_t> r;
  int64_t batch = std::max<int64_t>(1, sample.rank() ? sample.dim(0) : 1);
  ex.add_hook([&](const Node*, const std::string& name, Tensor& v) { r[name] = v.numel() / batch; }, names, true);
  ex.run({{input, sample}});
  return r;
}

}  // namespace

QatGraph build_qat_graph(const Model& prepared, const quant::QuantSimPlan& plan, QatMethod method,
                         const Tensor& sample) {
  QatGraph q;
  q.model = prepared;
  Graph& g = q.model.graph;
  for (auto& in : g.inputs)
    if (!g.is_initializer(in.name)) {
      check(q.input.empty(), "QAT needs a single-input model (this one has more)");
      q.input = in.name;
    }
  check(!q.input.empty(), "QAT needs a model with an input");
  check(!g.outputs.empty(), "the model has no outputs");
  q.logits = g.outputs[0].name;
  std::vector<std::string> act_names;
  for (auto& a : plan.acts) {
    check(!a.dynamic, "QAT trains static quantizers; dynamic activation quantization has nothing to learn");
    act_names.push_back(a.tensor);
  }
  auto per_sample = per_sample_sizes(prepared, q.input, sample, act_names);
  NameAllocator names(g);
  std::set<std::string> quant_names;
  auto add_quantizer = [&](const std::string& base, const quant::Encoding& e, int64_t n_per_scale) {
    std::vector<float> zp(e.zero_point.begin(), e.zero_point.end());
    std::string s = names.fresh(base + "/scale"), z = names.fresh(base + "/offset");
    g.initializers[s] = Tensor::from_vector<float>({(int64_t)e.scale.size()}, e.scale);
    g.initializers[z] = Tensor::from_vector<float>({(int64_t)zp.size()}, zp);
    if (method != QatMethod::Ste) q.quant_params.push_back(s);
    if (method == QatMethod::LsqPlus && !e.spec.symmetric) q.quant_params.push_back(z);
    quant_names.insert(s), quant_names.insert(z);
    Node n;
    n.op_type = "FakeQuant", n.domain = "lowbit", n.name = names.fresh(base + "/fq");
    n.attrs = {attr_int("qmin", e.spec.grid.qmin()), attr_int("qmax", e.spec.grid.qmax()),
               attr_int("axis", e.spec.axis),
               attr_float("grad_scale", (float)(1.0 / std::sqrt((double)std::max<int64_t>(1, n_per_scale) *
                                                                 std::max(1, e.spec.grid.qmax()))))};
    return std::make_pair(n, std::make_pair(s, z));
  };
  std::vector<Node> added;
  for (size_t i = 0; i < plan.weights.size(); ++i) {
    const auto& w = plan.weights[i];
    check_spec(w.enc.spec, method, "weight '" + w.tensor + "'");
    check(!w.enc.scale.empty(), "weight '", w.tensor, "' has no encoding");
    check(g.is_initializer(w.tensor), "weight '", w.tensor, "' is not an initializer");
    int64_t per = g.initializers.at(w.tensor).numel() / (int64_t)w.enc.scale.size();
    auto [n, sz] = add_quantizer(w.tensor, w.enc, per);
    std::string out = names.fresh(w.tensor + "/fq");
    n.inputs = {w.tensor, sz.first, sz.second};
    n.outputs = {out};
    bool found = false;
    for (auto& node : g.nodes)
      if (node.name == w.node)
        for (auto& in : node.inputs)
          if (in == w.tensor) in = out, found = true;
    check(found, "weight quantizer for '", w.tensor, "': node '", w.node, "' does not read it");
    added.push_back(n);
    q.quantizers.push_back({true, i, sz.first, sz.second});
  }
  for (size_t i = 0; i < plan.acts.size(); ++i) {
    const auto& a = plan.acts[i];
    check_spec(a.enc.spec, method, "activation '" + a.tensor + "'");
    check(!a.enc.scale.empty(), "activation '", a.tensor, "' has no encoding (calibrate first)");
    auto [n, sz] = add_quantizer(a.tensor, a.enc, per_sample.count(a.tensor) ? per_sample.at(a.tensor) : 1);
    int p = g.producer(a.tensor);
    if (p < 0) {  // a graph input: its readers read the quantized copy
      std::string out = names.fresh(a.tensor + "/fq");
      for (auto& node : g.nodes)
        for (auto& in : node.inputs)
          if (in == a.tensor) in = out;
      n.inputs = {a.tensor, sz.first, sz.second};
      n.outputs = {out};
    } else {  // the producer writes a raw value; the quantizer's output keeps the name (graph outputs included)
      std::string raw = names.fresh(a.tensor + "/raw");
      for (auto& o : g.nodes[(size_t)p].outputs)
        if (o == a.tensor) o = raw;
      n.inputs = {raw, sz.first, sz.second};
      n.outputs = {a.tensor};
    }
    added.push_back(n);
    q.quantizers.push_back({false, i, sz.first, sz.second});
  }
  g.nodes.insert(g.nodes.end(), added.begin(), added.end());
  q.model.opsets["lowbit"] = 1;
  for (auto& [name, t] : g.initializers)
    if (t.dtype() == DType::Float32 && t.numel() > 1 && !quant_names.count(name) && !g.is_graph_input(name))
      q.weights.push_back(name);
  return q;
}

void write_back(const QatGraph& q, const Model& trained, Model& prepared, quant::QuantSimPlan& plan) {
  const auto& init = trained.graph.initializers;
  for (auto& w : q.weights) prepared.graph.initializers[w] = init.at(w).clone();
  for (auto& fq : q.quantizers) {
    quant::Encoding& e = fq.weight ? plan.weights[fq.index].enc : plan.acts[fq.index].enc;
    const Tensor& s = init.at(fq.scale);
    const Tensor& z = init.at(fq.offset);
    for (size_t k = 0; k < e.scale.size(); ++k) {
      e.scale[k] = s.data<float>()[k];
      float zr = std::nearbyint(z.data<float>()[k]);
      e.zero_point[k] = (int32_t)std::min<float>(std::max<float>(zr, (float)e.spec.grid.qmin()), (float)e.spec.grid.qmax());
    }
  }
}

namespace {

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  Shape s = x.shape();
  s[0] = (int64_t)rows.size();
  Tensor r = Tensor::uninitialized(x.dtype(), s);
  size_t row_bytes = x.nbytes() / (size_t)std::max<int64_t>(1, x.dim(0));
  const auto* src = static_cast<const std::byte*>(x.raw());
  auto* dst = static_cast<std::byte*>(r.raw_mut());
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(dst + i * row_bytes, src + rows[i] * row_bytes, row_bytes);
  return r;
}

constexpr const char* kParam = "param/";
constexpr const char* kOpt = "opt/";

void save_checkpoint(const std::string& path, const Tape& tape, const QatGraph& g, const Optimizer& opt, int epochs_done,
                     const QatOptions& o) {
  std::map<std::string, Tensor> a;
  for (auto& w : g.weights) a[kParam + w] = tape.model().graph.initializers.at(w);
  for (auto& fq : g.quantizers) {
    a[kParam + fq.scale] = tape.model().graph.initializers.at(fq.scale);
    a[kParam + fq.offset] = tape.model().graph.initializers.at(fq.offset);
  }
  for (auto& [k, v] : opt.state()) a[kOpt + k] = v;
  a["epochs_done"] = Tensor::scalar<int64_t>(epochs_done);
  a["method"] = Tensor::scalar<int64_t>((int64_t)o.method);
  a["epochs"] = Tensor::scalar<int64_t>(o.epochs);  // the schedule's length: a resumed run must plan the same
  save_npz(path, a);  // written to a temporary file and renamed: never half-written
}

int load_checkpoint(const std::string& path, Tape& tape, const QatGraph& g, Optimizer& opt, const QatOptions& o) {
  auto a = load_npz(path);
  auto get = [&](const std::string& k) -> const Tensor& {
    auto it = a.find(k);
    check(it != a.end(), path, ": not a checkpoint of this training (no '", k, "')");
    return it->second;
  };
  check(get("method").to_i64().at(0) == (int64_t)o.method, path, ": the checkpoint was trained with another --method");
  int64_t planned = get("epochs").to_i64().at(0);
  check(planned == o.epochs, path, ": the checkpoint belongs to a run of --epochs ", planned, " (the learning-rate "
        "schedule spans them); resume with the same --epochs");
  std::vector<std::string> names = g.weights;
  for (auto& fq : g.quantizers) names.push_back(fq.scale), names.push_back(fq.offset);
  for (auto& n : names) {
    const Tensor& t = get(kParam + n);
    Tensor& p = tape.param(n);
    check(t.shape() == p.shape() && t.dtype() == p.dtype(), path, ": parameter '", n, "' has shape ",
          shape_str(t.shape()), ", the model's ", shape_str(p.shape()));
    p = t.clone();
  }
  std::map<std::string, Tensor> st;
  for (auto& [k, v] : a)
    if (k.rfind(kOpt, 0) == 0) st[k.substr(std::string(kOpt).size())] = v;
  opt.load_state(st);
  return (int)get("epochs_done").to_i64().at(0);
}

}  // namespace

std::vector<EpochLog> train_qat(QatGraph& g, const Tensor& x, const std::vector<int64_t>& labels, const Model* teacher,
                                const QatOptions& o, const std::function<double(const Model&)>& validate,
                                const std::function<void(const QatProgress&)>& progress,
                                const std::function<void(const EpochLog&)>& on_epoch) {
  check(x.rank() >= 1 && x.dim(0) == (int64_t)labels.size(), "QAT: ", labels.size(), " labels for ",
        x.rank() ? x.dim(0) : 0, " training rows");
  check(o.batch_size > 0 && o.epochs > 0, "QAT: batch size and epochs must be positive");
  int64_t rows = x.dim(0);
  int64_t per_epoch = rows / o.batch_size;
  check(per_epoch > 0, "QAT: ", rows, " training rows do not fill one batch of ", o.batch_size);
  if (o.steps_per_epoch > 0) per_epoch = std::min(per_epoch, o.steps_per_epoch);
  int64_t total = per_epoch * o.epochs;
  check(o.distill == 0 || teacher, "QAT: distillation needs the FP32 teacher model");
  Tape tape(g.model);
  tape.set_profiling(o.profile_ops);
  std::unique_ptr<Executor> teacher_ex;
  if (o.distill > 0) teacher_ex = std::make_unique<Executor>(*teacher);
  Optimizer opt(o.optim);
  int start = 0;
  if (o.resume) {
    check(!o.checkpoint.empty(), "--resume needs a checkpoint path");
    check(std::filesystem::exists(o.checkpoint), "--resume: no checkpoint at '", o.checkpoint, "'");
    start = load_checkpoint(o.checkpoint, tape, g, opt, o);
    check(start <= o.epochs, o.checkpoint, ": the checkpoint has ", start, " epochs, more than --epochs ", o.epochs);
  }
  std::set<std::string> wrt(g.weights.begin(), g.weights.end());
  std::set<std::string> quant(g.quant_params.begin(), g.quant_params.end());
  wrt.insert(quant.begin(), quant.end());
  std::vector<EpochLog> logs;
  using clock = std::chrono::steady_clock;
  std::map<std::string, Tape::OpTime> prev;  // op times up to the last epoch
  for (int epoch = start; epoch < o.epochs; ++epoch) {
    std::vector<int64_t> order((size_t)rows);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed * 1000003ULL + (uint64_t)epoch));
    EpochLog log;
    log.epoch = epoch + 1;
    auto t0 = clock::now();
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t s = 0; s < per_epoch; ++s) {
      std::vector<int64_t> idx(order.begin() + s * o.batch_size, order.begin() + (s + 1) * o.batch_size);
      Tensor xb = gather_rows(x, idx);
      std::vector<int64_t> yb;
      for (auto i : idx) yb.push_back(labels[(size_t)i]);
      tape.forward({{g.input, xb}});
      const Tensor& logits = tape.value(g.logits);
      LossResult ce = cross_entropy(logits, yb);
      double loss = ce.loss;
      Tensor grad = ce.grad;
      if (o.distill > 0) {
        Tensor t = teacher_ex->run({{g.input, xb}}, {g.logits}).at(g.logits);
        LossResult kd = distillation(logits, t, o.temperature);
        loss = (1 - o.distill) * ce.loss + o.distill * kd.loss;
        float* pg = grad.data<float>();
        for (int64_t i = 0; i < grad.numel(); ++i)
          pg[i] = (float)((1 - o.distill) * pg[i] + o.distill * kd.grad.data<float>()[i]);
      }
      log.saved_bytes = tape.saved_bytes();
      auto grads = tape.backward({{g.logits, grad}}, wrt);
      double lr = o.optim.lr * o.schedule.factor(epoch * per_epoch + s, total);
      for (auto& [name, gr] : grads) {
        bool is_q = quant.count(name) > 0;
        Tensor& p = tape.param(name);
        Tensor nv = opt.update(name, p, gr, is_q ? lr * o.quant_lr_scale : lr, !is_q && p.rank() >= 2);
        if (is_q && name.size() > 6 && name.compare(name.size() - 6, 6, "/scale") == 0)
          for (int64_t i = 0; i < nv.numel(); ++i) nv.data<float>()[i] = std::max(nv.data<float>()[i], 1e-8f);
        p = nv;
      }
      loss_sum += loss;
      correct += ce.correct;
      log.steps = s + 1, log.images = (s + 1) * o.batch_size;
      double secs = std::chrono::duration<double>(clock::now() - t0).count();
      if (progress)
        progress({epoch + 1, o.epochs, s + 1, per_epoch, loss_sum / (double)(s + 1), secs > 0 ? log.images / secs : 0});
    }
    log.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    for (auto& [op, t] : tape.op_times()) log.op_seconds[op] = {t.forward - prev[op].forward, t.backward - prev[op].backward};
    prev = tape.op_times();
    log.images_per_second = log.seconds > 0 ? (double)log.images / log.seconds : 0;
    log.loss = loss_sum / (double)per_epoch;
    log.train_top1 = 100.0 * (double)correct / (double)log.images;
    if (validate) log.val_top1 = validate(tape.model());
    if (!o.checkpoint.empty()) save_checkpoint(o.checkpoint, tape, g, opt, epoch + 1, o);
    if (on_epoch) on_epoch(log);
    logs.push_back(log);
    if (o.stop_after > 0 && epoch + 1 >= o.stop_after) break;
  }
  g.model = tape.model();
  return logs;
}

}  // namespace lowbit::train
