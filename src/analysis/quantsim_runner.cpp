#include "analysis/quantsim_runner.h"

#include <set>

#include "runtime/op_registry.h"

namespace lowbit::analysis {

namespace {
// DynamicQuantizeLinear followed by DequantizeLinear, computed by the very kernels the exported model runs.
Tensor dynamic_fake_quantize(const Tensor& x) {
  auto run = [](const char* op, const std::vector<const Tensor*>& ins) {
    Node n;
    n.op_type = op;
    n.name = op;
    const OpDef* def = OpRegistry::builtin().find("", op, 13);
    check(def != nullptr, "analysis: the runtime has no ", op, " kernel");
    return def->compute(OpContext{n, 13, ins});
  };
  auto q = run("DynamicQuantizeLinear", {&x});
  return run("DequantizeLinear", {&q[0], &q[1], &q[2]}).at(0);
}
}  // namespace

std::string Quantizer::label() const {
  return weight ? "weight of " + node : "activation '" + tensor + "'";
}

quant::Encoding with_bits(const quant::Encoding& e, int bits) {
  if (bits <= 0 || bits == e.spec.grid.bits) return e;
  std::vector<std::pair<float, float>> ranges;
  for (int64_t i = 0; i < e.num_slices(); ++i) {
    float s = e.scale[(size_t)i];
    int32_t z = e.zero_point[(size_t)i];
    ranges.emplace_back(s * (float)(e.spec.grid.qmin() - z), s * (float)(e.spec.grid.qmax() - z));
  }
  quant::QuantizerSpec spec = e.spec;
  spec.grid.bits = bits;
  return quant::make_encoding(spec, e.shape, ranges);
}

QuantSimRunner::QuantSimRunner(const Model& prepared, const quant::QuantSimPlan& plan, quant::Mode mode)
    : model_(prepared), plan_(plan), mode_(mode) {
  for (size_t i = 0; i < plan_.weights.size(); ++i)
    q_.push_back({true, i, plan_.weights[i].tensor, plan_.weights[i].node});
  for (size_t i = 0; i < plan_.acts.size(); ++i) {
    int p = model_.graph.producer(plan_.acts[i].tensor);
    q_.push_back({false, i, plan_.acts[i].tensor, p >= 0 ? model_.graph.nodes[(size_t)p].name : ""});
  }
  for (auto& vi : model_.graph.inputs)
    if (!model_.graph.is_initializer(vi.name)) input_ = vi.name;
  check(!input_.empty(), "analysis: the model has no input");
}

QuantSimRunner::Setting QuantSimRunner::all(bool on) const {
  return {std::vector<char>(q_.size(), on ? 1 : 0), std::vector<int>(q_.size(), 0)};
}

std::unique_ptr<Executor> QuantSimRunner::executor(const Setting& s, Observer observe) const {
  Model m = model_;
  auto acts = std::make_shared<std::map<std::string, quant::Encoding>>();
  auto dynamic = std::make_shared<std::set<std::string>>();
  for (size_t i = 0; i < q_.size(); ++i) {
    if (!s.on[i]) continue;
    const Quantizer& q = q_[i];
    if (q.weight) {
      const auto& wq = plan_.weights[q.index];
      const Tensor& w = m.graph.initializers.at(wq.tensor);
      Tensor f(DType::Float32, w.shape());
      if (mode_ == quant::Mode::Fp16) quant::fake_quantize_fp16(w.data<float>(), f.data<float>(), w.numel());
      else quant::fake_quantize(w.data<float>(), f.data<float>(), with_bits(wq.enc, s.bits[i]));
      m.graph.initializers[wq.tensor] = f;
    } else if (plan_.acts[q.index].dynamic) {
      dynamic->insert(q.tensor);
    } else {
      (*acts)[q.tensor] = with_bits(plan_.acts[q.index].enc, s.bits[i]);
    }
  }
  auto planned = std::make_shared<std::set<std::string>>();
  for (auto& q : q_)
    if (!q.weight) planned->insert(q.tensor);
  auto ex = std::make_unique<Executor>(m);
  ex->add_hook([acts, dynamic, planned, observe](const Node*, const std::string& name, Tensor& v) {
    if (!planned->count(name)) return;
    if (dynamic->count(name)) {
      v = dynamic_fake_quantize(v);
    } else if (auto it = acts->find(name); it != acts->end()) {
      Tensor f(DType::Float32, v.shape());
      quant::Encoding e = it->second;  // per-tensor: one slice, applied over this value's shape
      e.shape = v.shape();
      quant::fake_quantize(v.data<float>(), f.data<float>(), e);
      v = f;
    }
    if (observe) observe(name, v);
  }, std::vector<std::string>(planned->begin(), planned->end()));
  return ex;
}

}  // namespace lowbit::analysis
