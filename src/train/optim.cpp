#include "train/optim.h"

#include <cmath>

namespace lowbit::train {

OptimKind parse_optim(const std::string& s) {
  if (s == "sgd") return OptimKind::Sgd;
  if (s == "adam") return OptimKind::Adam;
  if (s == "adamw") return OptimKind::AdamW;
  fail("unknown optimizer '", s, "' (expected sgd, adam or adamw)");
}

ScheduleKind parse_schedule(const std::string& s) {
  if (s == "constant") return ScheduleKind::Constant;
  if (s == "step") return ScheduleKind::Step;
  if (s == "cosine") return ScheduleKind::Cosine;
  fail("unknown schedule '", s, "' (expected constant, step or cosine)");
}

double Schedule::factor(int64_t step, int64_t total) const {
  if (warmup_steps > 0 && step < warmup_steps) return (double)(step + 1) / (double)warmup_steps;
  switch (kind) {
    case ScheduleKind::Constant: return 1.0;
    case ScheduleKind::Step: return step_every > 0 ? std::pow(gamma, (double)(step / step_every)) : 1.0;
    case ScheduleKind::Cosine: {
      int64_t span = std::max<int64_t>(1, total - warmup_steps);
      double p = std::min(1.0, (double)(step - warmup_steps) / (double)span);
      return 0.5 * (1 + std::cos(M_PI * p));
    }
  }
  return 1.0;
}

Tensor Optimizer::update(const std::string& name, const Tensor& value, const Tensor& grad, double lr, bool decay) {
  check(value.shape() == grad.shape(), "optimizer: gradient of '", name, "' has shape ", shape_str(grad.shape()),
        ", the parameter ", shape_str(value.shape()));
  Slot& s = slots_[name];
  size_t n = (size_t)value.numel();
  if (s.m.size() != n) s.m.assign(n, 0.f);
  if (c_.kind != OptimKind::Sgd && s.v.size() != n) s.v.assign(n, 0.f);
  ++s.t;
  Tensor out = value.clone();
  float* p = out.data<float>();
  const float* g = grad.data<float>();
  double wd = decay ? c_.weight_decay : 0.0;
  if (c_.kind == OptimKind::Sgd) {
    for (size_t i = 0; i < n; ++i) {
      double gi = g[i] + wd * p[i];
      double buf = s.t == 1 ? gi : c_.momentum * s.m[i] + gi;
      s.m[i] = (float)buf;
      double step = c_.nesterov ? gi + c_.momentum * buf : buf;
      p[i] = (float)(p[i] - lr * step);
    }
  } else {
    double b1 = c_.beta1, b2 = c_.beta2;
    double c1 = 1 - std::pow(b1, (double)s.t), c2 = 1 - std::pow(b2, (double)s.t);
    bool decoupled = c_.kind == OptimKind::AdamW;
    for (size_t i = 0; i < n; ++i) {
      double gi = g[i] + (decoupled ? 0.0 : wd * p[i]);
      s.m[i] = (float)(b1 * s.m[i] + (1 - b1) * gi);
      s.v[i] = (float)(b2 * s.v[i] + (1 - b2) * gi * gi);
      double upd = (s.m[i] / c1) / (std::sqrt(s.v[i] / c2) + c_.eps);
      double pi = decoupled ? p[i] * (1 - lr * wd) : p[i];
      p[i] = (float)(pi - lr * upd);
    }
  }
  return out;
}

std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> r;
  for (auto& [name, s] : slots_) {
    r[name + "/m"] = Tensor::from_vector<float>({(int64_t)s.m.size()}, s.m);
    if (!s.v.empty()) r[name + "/v"] = Tensor::from_vector<float>({(int64_t)s.v.size()}, s.v);
    r[name + "/t"] = Tensor::scalar<int64_t>(s.t);
  }
  return r;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& st) {
  slots_.clear();
  for (auto& [key, t] : st) {
    auto slash = key.rfind('/');
    check(slash != std::string::npos, "optimizer state: bad entry '", key, "'");
    std::string name = key.substr(0, slash), part = key.substr(slash + 1);
    Slot& s = slots_[name];
    if (part == "m") s.m = std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
    else if (part == "v") s.v = std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
    else if (part == "t") s.t = t.to_i64().at(0);
    else fail("optimizer state: bad entry '", key, "'");
  }
}

namespace {
void check_logits(const Tensor& logits, const char* what) {
  check(logits.dtype() == DType::Float32 && logits.rank() == 2, what, ": logits must be float32 [N, classes], got ",
        dtype_name(logits.dtype()), " ", shape_str(logits.shape()));
}
// Softmax of row r of x / T, in double.
void softmax_row(const float* x, int64_t C, double T, std::vector<double>& p) {
  double mx = -INFINITY;
  for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[c] / T);
  double sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += (p[(size_t)c] = std::exp(x[c] / T - mx));
  for (auto& v : p) v /= sum;
}
}  // namespace

LossResult cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels) {
  check_logits(logits, "cross-entropy");
  int64_t N = logits.dim(0), C = logits.dim(1);
  check((int64_t)labels.size() == N, "cross-entropy: ", labels.size(), " labels for a batch of ", N);
  LossResult r;
  r.grad = Tensor::uninitialized(DType::Float32, logits.shape());
  std::vector<double> p((size_t)C);
  for (int64_t n = 0; n < N; ++n) {
    int64_t y = labels[(size_t)n];
    check(y >= 0 && y < C, "cross-entropy: label ", y, " outside the ", C, " classes");
    const float* x = logits.data<float>() + n * C;
    softmax_row(x, C, 1.0, p);
    r.loss -= std::log(std::max(p[(size_t)y], 1e-300));
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (x[c] > x[best]) best = c;
    r.correct += best == y;
    for (int64_t c = 0; c < C; ++c) r.grad.data<float>()[n * C + c] = (float)((p[(size_t)c] - (c == y)) / (double)N);
  }
  r.loss /= (double)std::max<int64_t>(N, 1);
  return r;
}

LossResult distillation(const Tensor& logits, const Tensor& teacher, double T) {
  check_logits(logits, "distillation");
  check(teacher.shape() == logits.shape(), "distillation: teacher logits ", shape_str(teacher.shape()), " vs ",
        shape_str(logits.shape()));
  check(T > 0, "distillation: the temperature must be positive");
  int64_t N = logits.dim(0), C = logits.dim(1);
  LossResult r;
  r.grad = Tensor::uninitialized(DType::Float32, logits.shape());
  std::vector<double> ps((size_t)C), pt((size_t)C);
  for (int64_t n = 0; n < N; ++n) {
    softmax_row(logits.data<float>() + n * C, C, T, ps);
    softmax_row(teacher.data<float>() + n * C, C, T, pt);
    for (int64_t c = 0; c < C; ++c) {
      if (pt[(size_t)c] > 0) r.loss += pt[(size_t)c] * (std::log(pt[(size_t)c]) - std::log(std::max(ps[(size_t)c], 1e-300)));
      // d/dz of T^2 * KL = T * (p_s - p_t), averaged over the batch.
      r.grad.data<float>()[n * C + c] = (float)(T * (ps[(size_t)c] - pt[(size_t)c]) / (double)N);
    }
  }
  r.loss = r.loss * T * T / (double)std::max<int64_t>(N, 1);
  return r;
}

}  // namespace lowbit::train
