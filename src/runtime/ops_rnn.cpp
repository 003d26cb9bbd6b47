// Recurrent layers: RNN, GRU, LSTM (all directions, layouts, sequence lengths, initial states, peepholes, clip,
// the spec's activation functions). Float32. The input projection of all time steps is one GEMM; each step adds
// the recurrent GEMM of the batch's hidden state.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/checked.h"
#include "kernels/gemm.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

enum class Cell { Rnn, Gru, Lstm };

struct Activation {
  std::string name;
  float alpha = 0, beta = 0;
  float operator()(float x) const {
    if (name == "Sigmoid") return 1.f / (1.f + std::exp(-x));
    if (name == "Tanh") return std::tanh(x);
    if (name == "Relu") return std::max(x, 0.f);
    if (name == "Affine") return alpha * x + beta;
    if (name == "LeakyRelu") return x >= 0 ? x : alpha * x;
    if (name == "ThresholdedRelu") return x > alpha ? x : 0.f;
    if (name == "ScaledTanh") return alpha * std::tanh(beta * x);
    if (name == "HardSigmoid") return std::clamp(alpha * x + beta, 0.f, 1.f);
    if (name == "Elu") return x >= 0 ? x : alpha * (std::exp(x) - 1);
    if (name == "Softsign") return x / (1 + std::fabs(x));
    return std::log1p(std::exp(x));  // Softplus
  }
};

// The activations of each direction (f [, g [, h]]), their alpha/beta taken in order by the functions that use them.
std::vector<Activation> activations(const OpContext& c, const std::vector<std::string>& defaults, int dirs) {
  std::vector<std::string> names;
  if (auto* a = c.node.attr("activations")) {
    check(a->type == AttrType::Strings, c.where(), ": attribute 'activations' must be a list of strings");
    names = a->strings;
  }
  if (names.empty())
    for (int d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  check(names.size() == defaults.size() * dirs, c.where(), ": 'activations' needs ", defaults.size() * dirs,
        " entries (", defaults.size(), " per direction), got ", names.size());
  auto alphas = c.node.attr_floats("activation_alpha"), betas = c.node.attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> r;
  for (auto& n : names) {
    Activation a{n};
    auto take_alpha = [&](float d) { a.alpha = ai < alphas.size() ? alphas[ai++] : d; };
    auto take_beta = [&](float d) { a.beta = bi < betas.size() ? betas[bi++] : d; };
    if (n == "Affine") take_alpha(1.f), take_beta(0.f);
    else if (n == "LeakyRelu") take_alpha(0.01f);
    else if (n == "ThresholdedRelu") take_alpha(1.f);
    else if (n == "ScaledTanh") take_alpha(1.f), take_beta(1.f);
    else if (n == "HardSigmoid") take_alpha(0.2f), take_beta(0.5f);
    else if (n == "Elu") take_alpha(1.f);
    else
      check(n == "Sigmoid" || n == "Tanh" || n == "Relu" || n == "Softsign" || n == "Softplus", c.where(),
            ": unknown activation '", n, "'");
    r.push_back(a);
  }
  return r;
}

const Tensor* optional_in(const OpContext& c, size_t i) { return c.has(i) ? &c.in(i) : nullptr; }

void check_shape(const OpContext& c, const Tensor* t, const Shape& want, const char* what) {
  if (!t) return;
  check(t->dtype() == DType::Float32 || std::string(what) == "sequence_lens", c.where(), ": ", what,
        " must be float32");
  check(t->shape() == want, c.where(), ": ", what, " has shape ", shape_str(t->shape()), ", expected ",
        shape_str(want));
}

// Moves between [A, B, rest] and [B, A, rest] (layout 1 <-> layout 0).
Tensor swap01(const Tensor& x) {
  Shape s = x.shape();
  int64_t a = s[0], b = s[1], rest = 1;
  for (size_t i = 2; i < s.size(); ++i) rest *= s[i];
  std::swap(s[0], s[1]);
  Tensor r(x.dtype(), s);
  const float* src = x.data<float>();
  float* dst = r.data<float>();
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) std::memcpy(dst + (j * a + i) * rest, src + (i * b + j) * rest, rest * sizeof(float));
  return r;
}

Outs run_recurrent(const OpContext& c, Cell cell) {
  const int gates = cell == Cell::Rnn ? 1 : cell == Cell::Gru ? 3 : 4;
  const Tensor& x_in = c.in(0);
  const Tensor& w = c.in(1);
  const Tensor& r = c.in(2);
  check(x_in.dtype() == DType::Float32, c.where(), ": only float32 inputs are supported, got ",
        dtype_name(x_in.dtype()));
  check(x_in.rank() == 3, c.where(), ": X must have rank 3, got ", shape_str(x_in.shape()));
  int64_t layout = c.opset >= 14 ? c.node.attr_int("layout", 0) : 0;
  check(layout == 0 || layout == 1, c.where(), ": layout must be 0 or 1, got ", layout);
  Tensor x = layout ? swap01(x_in) : x_in;  // [seq, batch, input]
  const int64_t seq = x.dim(0), batch = x.dim(1), isz = x.dim(2);
  std::string direction = c.node.attr_string("direction", "forward");
  check(direction == "forward" || direction == "reverse" || direction == "bidirectional", c.where(),
        ": direction must be forward, reverse or bidirectional, got '", direction, "'");
  const int dirs = direction == "bidirectional" ? 2 : 1;
  int64_t hs = c.node.attr_int("hidden_size", w.rank() == 3 ? w.dim(1) / gates : 0);
  check(hs > 0, c.where(), ": hidden_size must be positive, got ", hs);
  const int64_t gh = checked_mul(gates, hs, c.where(), ": hidden_size");
  check_shape(c, &w, {dirs, gh, isz}, "W");
  check_shape(c, &r, {dirs, gh, hs}, "R");
  const Tensor* b = optional_in(c, 3);
  check_shape(c, b, {dirs, 2 * gh}, "B");
  const Tensor* lens = optional_in(c, 4);
  if (lens) {
    check(lens->dtype() == DType::Int32, c.where(), ": sequence_lens must be int32");
    check(lens->shape() == Shape{batch}, c.where(), ": sequence_lens has shape ", shape_str(lens->shape()),
          ", expected [", batch, "]");
  }
  Shape state_shape = layout ? Shape{batch, dirs, hs} : Shape{dirs, batch, hs};
  Tensor h0 = c.has(5) ? c.in(5) : Tensor();
  check_shape(c, h0.defined() ? &h0 : nullptr, state_shape, "initial_h");
  if (h0.defined() && layout) h0 = swap01(h0);
  Tensor c0 = cell == Cell::Lstm && c.has(6) ? c.in(6) : Tensor();
  check_shape(c, c0.defined() ? &c0 : nullptr, state_shape, "initial_c");
  if (c0.defined() && layout) c0 = swap01(c0);
  const Tensor* p = cell == Cell::Lstm ? optional_in(c, 7) : nullptr;
  check_shape(c, p, {dirs, 3 * hs}, "P");
  float clip = c.node.has_attr("clip") ? c.node.attr_float("clip", 0) : 0;
  check(!c.node.has_attr("clip") || clip > 0, c.where(), ": clip must be positive, got ", clip);
  bool linear_before_reset = cell == Cell::Gru && c.node.attr_int("linear_before_reset", 0) != 0;
  bool input_forget = cell == Cell::Lstm && c.node.attr_int("input_forget", 0) != 0;
  std::vector<std::string> dflt = cell == Cell::Rnn   ? std::vector<std::string>{"Tanh"}
                                  : cell == Cell::Gru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                      : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  auto acts = activations(c, dflt, dirs);
  std::vector<int64_t> len(batch, seq);
  if (lens)
    for (int64_t i = 0; i < batch; ++i) {
      len[i] = lens->data<int32_t>()[i];
      check(len[i] >= 0 && len[i] <= seq, c.where(), ": sequence_lens[", i, "] = ", len[i], " outside [0, ", seq, "]");
    }

  // The scratch below is seq x batch x gates x hidden floats: within the memory budget before it is allocated.
  check_allocation(DType::Float32, {seq, batch, gh});
  Tensor y(DType::Float32, {seq, dirs, batch, hs});
  Tensor yh(DType::Float32, {dirs, batch, hs}), yc(DType::Float32, {dirs, batch, hs});
  std::fill_n(y.data<float>(), y.numel(), 0.f);
  auto clipf = [&](float v) { return clip > 0 ? std::clamp(v, -clip, clip) : v; };
  std::vector<float> xw((size_t)(seq * batch * gh)), hr((size_t)(batch * gh)), h((size_t)(batch * hs)),
      cs((size_t)(batch * hs)), rh((size_t)(batch * hs)), hr2((size_t)(batch * hs)), hn((size_t)(batch * hs)),
      cn((size_t)(batch * hs));
  for (int d = 0; d < dirs; ++d) {
    bool reverse = direction == "reverse" || d == 1;
    const float* wd = w.data<float>() + d * gh * isz;
    const float* rd = r.data<float>() + d * gh * hs;
    const float* wb = b ? b->data<float>() + d * 2 * gh : nullptr;
    const float* rb = wb ? wb + gh : nullptr;
    const float* pd = p ? p->data<float>() + d * 3 * hs : nullptr;
    const Activation* f = &acts[d * dflt.size()];
    // x_t W^T for every step at once.
    if (seq * batch > 0 && isz > 0)
      sgemm(false, true, seq * batch, gh, isz, 1.f, x.data<float>(), isz, wd, isz, 0.f, xw.data(), gh);
    else
      std::fill(xw.begin(), xw.end(), 0.f);
    for (int64_t i = 0; i < batch * hs; ++i) {
      h[i] = h0.defined() ? h0.data<float>()[d * batch * hs + i] : 0.f;
      cs[i] = c0.defined() ? c0.data<float>()[d * batch * hs + i] : 0.f;
    }
    for (int64_t s = 0; s < seq; ++s) {
      // Recurrent term: gates of GRU's candidate (linear_before_reset = 0) are done after the reset gate is known.
      int64_t rows = cell == Cell::Gru && !linear_before_reset ? 2 * hs : gh;
      sgemm(false, true, batch, rows, hs, 1.f, h.data(), hs, rd, hs, 0.f, hr.data(), gh);
      hn = h, cn = cs;
      for (int64_t bi = 0; bi < batch; ++bi) {
        if (s >= len[bi]) continue;
        int64_t t = reverse ? len[bi] - 1 - s : s;
        const float* xg = &xw[(size_t)((t * batch + bi) * gh)];
        float* hg = &hr[(size_t)(bi * gh)];
        auto bias = [&](int64_t k) { return wb ? wb[k] + rb[k] : 0.f; };
        for (int64_t j = 0; j < hs; ++j) {
          float hp = h[bi * hs + j], cp = cs[bi * hs + j];
          if (cell == Cell::Rnn) {
            hn[bi * hs + j] = f[0](clipf(xg[j] + hg[j] + bias(j)));
          } else if (cell == Cell::Lstm) {
            float gi = xg[j] + hg[j] + bias(j) + (pd ? pd[j] * cp : 0.f);
            float gf = xg[2 * hs + j] + hg[2 * hs + j] + bias(2 * hs + j) + (pd ? pd[2 * hs + j] * cp : 0.f);
            float gc = xg[3 * hs + j] + hg[3 * hs + j] + bias(3 * hs + j);
            float it = f[0](clipf(gi));
            float ft = input_forget ? 1.f - it : f[0](clipf(gf));
            float ct = f[1](clipf(gc));
            float cnew = ft * cp + it * ct;
            float go = xg[hs + j] + hg[hs + j] + bias(hs + j) + (pd ? pd[hs + j] * cnew : 0.f);
            float ot = f[0](clipf(go));
            cn[bi * hs + j] = cnew;
            hn[bi * hs + j] = ot * f[2](cnew);
          } else {
            float z = f[0](clipf(xg[j] + hg[j] + bias(j)));
            float rr = f[0](clipf(xg[hs + j] + hg[hs + j] + bias(hs + j)));
            if (linear_before_reset) {
              float rbh = rb ? rb[2 * hs + j] : 0.f, wbh = wb ? wb[2 * hs + j] : 0.f;
              float cand = f[1](clipf(xg[2 * hs + j] + rr * (hg[2 * hs + j] + rbh) + wbh));
              hn[bi * hs + j] = (1 - z) * cand + z * hp;
            } else {
              rh[bi * hs + j] = rr * hp;
              hr2[bi * hs + j] = z;  // kept for the second half below
            }
          }
        }
      }
      if (cell == Cell::Gru && !linear_before_reset) {
        // (r . h) R_h^T for the candidate gate, then the update.
        std::vector<float> rr_h((size_t)(batch * hs));
        sgemm(false, true, batch, hs, hs, 1.f, rh.data(), hs, rd + 2 * hs * hs, hs, 0.f, rr_h.data(), hs);
        for (int64_t bi = 0; bi < batch; ++bi) {
          if (s >= len[bi]) continue;
          int64_t t = reverse ? len[bi] - 1 - s : s;
          const float* xg = &xw[(size_t)((t * batch + bi) * gh)];
          for (int64_t j = 0; j < hs; ++j) {
            float bias = wb ? wb[2 * hs + j] + rb[2 * hs + j] : 0.f;
            float cand = f[1](clipf(xg[2 * hs + j] + rr_h[bi * hs + j] + bias));
            float z = hr2[bi * hs + j];
            hn[bi * hs + j] = (1 - z) * cand + z * h[bi * hs + j];
          }
        }
      }
      for (int64_t bi = 0; bi < batch; ++bi) {
        if (s >= len[bi]) continue;
        int64_t t = reverse ? len[bi] - 1 - s : s;
        std::memcpy(y.data<float>() + ((t * dirs + d) * batch + bi) * hs, &hn[(size_t)(bi * hs)], hs * sizeof(float));
      }
      h.swap(hn);
      cs.swap(cn);
    }
    std::memcpy(yh.data<float>() + d * batch * hs, h.data(), batch * hs * sizeof(float));
    std::memcpy(yc.data<float>() + d * batch * hs, cs.data(), batch * hs * sizeof(float));
  }
  if (layout) {
    // Y [seq, dirs, batch, hs] -> [batch, seq, dirs, hs]; states [dirs, batch, hs] -> [batch, dirs, hs].
    Tensor y2(DType::Float32, {batch, seq, dirs, hs});
    for (int64_t t = 0; t < seq; ++t)
      for (int d = 0; d < dirs; ++d)
        for (int64_t bi = 0; bi < batch; ++bi)
          std::memcpy(y2.data<float>() + ((bi * seq + t) * dirs + d) * hs,
                      y.data<float>() + ((t * dirs + d) * batch + bi) * hs, hs * sizeof(float));
    y = y2;
    yh = swap01(yh);
    yc = swap01(yc);
  }
  Outs out{y, yh};
  if (cell == Cell::Lstm) out.push_back(yc);
  return out;
}

Outs op_RNN(const OpContext& c) { return run_recurrent(c, Cell::Rnn); }
Outs op_GRU(const OpContext& c) { return run_recurrent(c, Cell::Gru); }
Outs op_LSTM(const OpContext& c) { return run_recurrent(c, Cell::Lstm); }

}  // namespace

void register_rnn_ops(OpRegistry& r) {
  r.add({"RNN", "", 7, op_RNN});
  r.add({"GRU", "", 7, op_GRU});
  r.add({"LSTM", "", 7, op_LSTM});
}

}  // namespace lowbit
