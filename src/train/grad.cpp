// The gradient rule table and the helpers the rules share.
#include "train/grad.h"

#include "kernels/broadcast.h"

namespace lowbit::train {

namespace {
const GradTable& table() {
  static const GradTable t = [] {
    GradTable g;
    add_math_rules(g);
    add_nn_rules(g);
    add_move_rules(g);
    add_quant_rules(g);
    return g;
  }();
  return t;
}
}  // namespace

GradRule find_grad_rule(const std::string& domain, const std::string& op_type) {
  std::string key = domain.empty() || domain == "ai.onnx" ? op_type : domain + "::" + op_type;
  auto it = table().rules.find(key);
  return it == table().rules.end() ? nullptr : it->second;
}

std::vector<std::string> grad_rule_ops() {
  std::vector<std::string> r;
  for (auto& [k, v] : table().rules) r.push_back(k);
  return r;
}

Tensor GradContext::gout(size_t k) const {
  if (k < gouts.size() && gouts[k].defined()) return gouts[k];
  return zeros_like(outs.at(k));
}

Tensor zeros_like(const Tensor& t) { return Tensor(t.dtype(), t.shape()); }

Tensor reduce_to_shape(const Tensor& g, const Shape& target) {
  if (g.shape() == target) return g;
  Tensor r(DType::Float32, target);
  float* pr = r.data<float>();
  const float* pg = g.data<float>();
  std::vector<double> acc((size_t)r.numel(), 0.0);
  broadcast_for_each<1>(g.shape(), {target}, [&](int64_t i, const std::array<int64_t, 1>& o) { acc[o[0]] += pg[i]; });
  for (int64_t i = 0; i < r.numel(); ++i) pr[i] = (float)acc[i];
  return r;
}

Tensor add_grads(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  check(a.shape() == b.shape(), "gradient shapes differ: ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  Tensor r = Tensor::uninitialized(DType::Float32, a.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pr = r.data<float>();
  for (int64_t i = 0; i < r.numel(); ++i) pr[i] = pa[i] + pb[i];
  return r;
}

}  // namespace lowbit::train
