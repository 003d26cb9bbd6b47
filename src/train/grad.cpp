// The gradient rule table and the helpers the rules share.
#include "train/grad.h"

#include <algorithm>

#include "ir/builder.h"
#include "kernels/broadcast.h"
#include "runtime/executor.h"

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

Tensor transposed(const Tensor& t, const std::vector<int64_t>& perm) {
  Node n;
  n.op_type = "Transpose";
  n.attrs.push_back(attr_ints("perm", perm));
  return eval_node(n, 13, {t})[0];
}

Tensor reduce_to_shape(const Tensor& g, const Shape& target) {
  if (g.shape() == target) return g;
  // Two common cases in parallel, each output summed in double in the generic loop's order (increasing index), so
  // with the same bits: only trailing dimensions reduced (x - mean(x) in a LayerNorm: rows), or only leading ones
  // (a bias added to [B, T, N]: columns).
  const int rank = g.rank();
  Shape t((size_t)rank, 1);
  if ((int)target.size() <= rank) std::copy(target.begin(), target.end(), t.end() - (ptrdiff_t)target.size());
  int kept_lead = 0, kept_trail = 0;  // leading / trailing dims that target keeps whole
  while (kept_lead < rank && t[(size_t)kept_lead] == g.dim(kept_lead)) ++kept_lead;
  while (kept_trail < rank && t[(size_t)(rank - 1 - kept_trail)] == g.dim(rank - 1 - kept_trail)) ++kept_trail;
  bool ones_after = true, ones_before = true;
  for (int d = kept_lead; d < rank; ++d) ones_after = ones_after && t[(size_t)d] == 1;
  for (int d = 0; d < rank - kept_trail; ++d) ones_before = ones_before && t[(size_t)d] == 1;
  const int64_t outn = shape_numel(target);
  if ((int)target.size() <= rank && outn > 0 && (ones_after || ones_before)) {
    Tensor r = Tensor::uninitialized(DType::Float32, target);
    float* pr = r.data<float>();
    const float* pg = g.data<float>();
    const int64_t n = g.numel() / outn;
    if (ones_after) {  // rows of n
#pragma omp parallel for schedule(static) if (g.numel() > 65536)
      for (int64_t o = 0; o < outn; ++o) {
        double a = 0;
        for (int64_t k = 0; k < n; ++k) a += pg[o * n + k];
        pr[o] = (float)a;
      }
    } else {  // n rows of outn columns
      constexpr int64_t kCols = 256;
#pragma omp parallel for schedule(static) if (g.numel() > 65536)
      for (int64_t c0 = 0; c0 < outn; c0 += kCols) {
        const int64_t c1 = std::min(outn, c0 + kCols);
        double a[kCols] = {};
        for (int64_t k = 0; k < n; ++k)
          for (int64_t c = c0; c < c1; ++c) a[c - c0] += pg[k * outn + c];
        for (int64_t c = c0; c < c1; ++c) pr[c] = (float)a[c - c0];
      }
    }
    return r;
  }
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
