#include "ptq/adaround.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "ir/passes.h"
#include "kernels/gemm.h"
#include "ptq/bias_correction.h"
#include "runtime/conv_geom.h"
#include "runtime/executor.h"

namespace lowbit::ptq {

namespace {

constexpr float kZeta = 1.1f, kGamma = -0.1f;

float sigmoid(float v) { return 1.f / (1.f + std::exp(-v)); }

// floor(W/s) with the division in float, as the quantizer computes it.
float floor_code(const AdaRoundProblem& p, size_t e) { return std::floor(p.w[e] / p.scale[(size_t)p.slice[e]]); }

float apply_act(const Activation& a, float y) { return std::min(std::max(y, a.lo), a.hi); }

// Y[B][O] = X_rows W^T + b, grouped; xb receives the gathered rows ([groups][B][K]).
void forward(const AdaRoundProblem& p, const std::vector<float>& w, const std::vector<int64_t>& rows, std::vector<float>& xb,
             std::vector<float>& y) {
  const LayerShape& s = p.shape;
  int64_t B = (int64_t)rows.size(), K = s.k(), O = s.out_channels, G = s.groups, Og = s.out_per_group();
  xb.resize((size_t)(G * B * K));
  y.assign((size_t)(B * O), 0.f);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t r = 0; r < B; ++r)
      std::memcpy(&xb[(size_t)((g * B + r) * K)], &p.x[(size_t)((rows[(size_t)r] * G + g) * K)], sizeof(float) * (size_t)K);
    sgemm(false, true, B, Og, K, 1.f, &xb[(size_t)(g * B * K)], K, &w[(size_t)(g * Og * K)], K, 0.f, &y[(size_t)(g * Og)], O);
  }
  for (int64_t r = 0; r < B; ++r)
    for (int64_t o = 0; o < O; ++o) y[(size_t)(r * O + o)] += p.bias[(size_t)o];
}

}  // namespace

float rectified_sigmoid(float v) { return std::min(1.f, std::max(0.f, sigmoid(v) * (kZeta - kGamma) + kGamma)); }

std::vector<float> adaround_init(const AdaRoundProblem& p) {
  std::vector<float> v(p.w.size());
  for (size_t e = 0; e < v.size(); ++e) {
    float r = p.w[e] / p.scale[(size_t)p.slice[e]];
    float frac = r - std::floor(r);
    float sg = (frac - kGamma) / (kZeta - kGamma);  // in (1/12, 11/12): finite logit
    v[e] = std::log(sg / (1.f - sg));
  }
  return v;
}

std::vector<float> adaround_weights(const AdaRoundProblem& p, const std::vector<float>& v, bool hard) {
  std::vector<float> out(p.w.size());
  for (size_t e = 0; e < out.size(); ++e) {
    float s = p.scale[(size_t)p.slice[e]];
    int32_t z = p.zero_point[(size_t)p.slice[e]];
    float h = hard ? (v[e] >= 0.f ? 1.f : 0.f) : rectified_sigmoid(v[e]);
    float q = std::min((float)p.qmax, std::max((float)p.qmin, floor_code(p, e) + h + (float)z));
    out[e] = s * (q - (float)z);
  }
  return out;
}

std::vector<float> nearest_weights(const AdaRoundProblem& p) {
  std::vector<float> out(p.w.size());
  for (size_t e = 0; e < out.size(); ++e) {
    float s = p.scale[(size_t)p.slice[e]];
    int32_t z = p.zero_point[(size_t)p.slice[e]];
    float q = std::min((float)p.qmax, std::max((float)p.qmin, std::nearbyint(p.w[e] / s) + (float)z));
    out[e] = s * (q - (float)z);
  }
  return out;
}

double reconstruction_loss(const AdaRoundProblem& p, const std::vector<float>& w, const std::vector<int64_t>& rows) {
  std::vector<float> xb, y;
  forward(p, w, rows, xb, y);
  int64_t O = p.shape.out_channels;
  double loss = 0;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t o = 0; o < O; ++o) {
      double d = apply_act(p.act, y[r * (size_t)O + (size_t)o]) - p.target[(size_t)(rows[r] * O + o)];
      loss += d * d;
    }
  return rows.empty() ? 0.0 : loss / (double)rows.size();
}

AdaRoundLoss adaround_loss(const AdaRoundProblem& p, const std::vector<float>& v, const std::vector<int64_t>& rows,
                           float beta, float lambda, std::vector<float>* grad) {
  const LayerShape& s = p.shape;
  int64_t B = (int64_t)rows.size(), K = s.k(), O = s.out_channels, G = s.groups, Og = s.out_per_group();
  check(B > 0, "adaround_loss: no rows");
  const int64_t n = (int64_t)v.size();
  // One pass over the weights: h(V), dh/dV, W~ and whether the code is inside the grid (elementwise work is most of
  // an iteration for small layers, so it is done once and in parallel).
  std::vector<float> w((size_t)n), dh((size_t)n), h((size_t)n);
  std::vector<char> inside((size_t)n);
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < n; ++e) {
    float sg = sigmoid(v[(size_t)e]);
    float hs = sg * (kZeta - kGamma) + kGamma;
    float he = std::min(1.f, std::max(0.f, hs));
    h[(size_t)e] = he;
    dh[(size_t)e] = hs > 0.f && hs < 1.f ? (kZeta - kGamma) * sg * (1.f - sg) : 0.f;
    float sc = p.scale[(size_t)p.slice[e]];
    float z = (float)p.zero_point[(size_t)p.slice[e]];
    float code = floor_code(p, (size_t)e) + he + z;
    inside[(size_t)e] = code > (float)p.qmin && code < (float)p.qmax;
    w[(size_t)e] = sc * (std::min((float)p.qmax, std::max((float)p.qmin, code)) - z);
  }
  std::vector<float> xb, y;
  forward(p, w, rows, xb, y);
  AdaRoundLoss L;
  std::vector<float> dy((size_t)(B * O));
  for (int64_t r = 0; r < B; ++r)
    for (int64_t o = 0; o < O; ++o) {
      size_t i = (size_t)(r * O + o);
      float yo = y[i];
      double d = (double)apply_act(p.act, yo) - p.target[(size_t)(rows[(size_t)r] * O + o)];
      L.recon += d * d;
      bool pass = yo > p.act.lo && yo < p.act.hi;  // the clamp's derivative (0 at and beyond its bounds)
      dy[i] = pass ? (float)(2.0 * d / (double)B) : 0.f;
    }
  L.recon /= (double)B;
  // Regulariser lambda * sum (1 - |2h - 1|^beta) and its derivative in h: -lambda * beta * |u|^(beta-1) * 2 sign(u).
  std::vector<float> dreg(grad ? (size_t)n : 0);
  double reg = 0;
#pragma omp parallel for schedule(static) reduction(+ : reg)
  for (int64_t e = 0; e < n; ++e) {
    double u = 2.0 * h[(size_t)e] - 1.0, t = std::fabs(u);
    double tb = t > 0 ? std::exp((double)beta * std::log(t)) : 0.0;
    reg += 1.0 - tb;
    if (!dreg.empty()) dreg[(size_t)e] = t > 0 ? (float)(-(double)lambda * beta * (tb / t) * (u > 0 ? 2.0 : -2.0)) : 0.f;
  }
  L.reg = lambda * reg;
  if (!grad) return L;
  std::vector<float> dw((size_t)(O * K));
  for (int64_t g = 0; g < G; ++g)
    sgemm(true, false, Og, K, B, 1.f, &dy[(size_t)(g * Og)], O, &xb[(size_t)(g * B * K)], K, 0.f, &dw[(size_t)(g * Og * K)], K);
  grad->resize((size_t)n);
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < n; ++e) {
    float g_h = (inside[(size_t)e] ? dw[(size_t)e] * p.scale[(size_t)p.slice[e]] : 0.f) + (lambda > 0 ? dreg[(size_t)e] : 0.f);
    (*grad)[(size_t)e] = g_h * dh[(size_t)e];
  }
  return L;
}

AdaRoundResult adaround_layer(const AdaRoundProblem& p, const AdaRoundOptions& opt) {
  check(p.rows > 0, "adaround_layer: no cached rows");
  std::vector<float> v = adaround_init(p);
  std::vector<float> m1(v.size(), 0.f), m2(v.size(), 0.f), g;
  std::mt19937 rng(opt.seed);
  std::vector<int64_t> perm((size_t)p.rows);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  size_t cursor = 0;
  int64_t B = std::min<int64_t>(opt.batch, p.rows);
  int warm = (int)std::lround(opt.warmup * opt.iterations);
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<int64_t> rows((size_t)B);
  for (int it = 0; it < opt.iterations; ++it) {
    for (auto& r : rows) {
      if (cursor == perm.size()) {
        std::shuffle(perm.begin(), perm.end(), rng);
        cursor = 0;
      }
      r = perm[cursor++];
    }
    float lambda = it < warm ? 0.f : opt.reg_weight;
    float frac = it < warm ? 0.f : (float)(it - warm) / (float)std::max(1, opt.iterations - warm);
    float beta = opt.beta_start + (opt.beta_end - opt.beta_start) * frac;
    adaround_loss(p, v, rows, beta, lambda, &g);
    double c1 = 1.0 - std::pow(b1, it + 1), c2 = 1.0 - std::pow(b2, it + 1);
    const int64_t n = (int64_t)v.size();
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < n; ++e) {
      size_t i = (size_t)e;
      m1[i] = (float)(b1 * m1[i] + (1 - b1) * g[i]);
      m2[i] = (float)(b2 * m2[i] + (1 - b2) * (double)g[i] * g[i]);
      v[i] -= (float)(opt.lr * (m1[i] / c1) / (std::sqrt(m2[i] / c2) + eps));
    }
  }
  AdaRoundResult res;
  res.w = adaround_weights(p, v, true);
  std::vector<float> nearest = nearest_weights(p);
  std::vector<int64_t> all((size_t)p.rows);
  std::iota(all.begin(), all.end(), 0);
  res.loss_nearest = reconstruction_loss(p, nearest, all);
  res.loss_adaround = reconstruction_loss(p, res.w, all);
  if (res.loss_adaround > res.loss_nearest) {  // too few iterations to converge: never worse than nearest
    res.w = nearest;
    res.loss_adaround = res.loss_nearest;
    res.kept_nearest = true;
  }
  for (size_t e = 0; e < nearest.size(); ++e) res.rounded_up_changed += nearest[e] != res.w[e];
  return res;
}

namespace {

// Input rows and FP32 targets of one layer, sampled over samples x positions.
struct RowSampler {
  const LinearLayer& l;
  const Node& node;
  int64_t per_sample;
  std::mt19937 rng;
  int64_t total_samples = 0;          // samples that will be added (to reserve memory once)
  std::vector<float> x;               // rows x groups x K
  std::vector<float> target;          // rows x O
  int64_t rows = 0;

  void add(const Tensor& xin, const Tensor& yout, const Activation& act, const std::vector<float>& bias) {
    const LayerShape& s = l.shape;
    int64_t K = s.k(), O = s.out_channels, G = s.groups, N = xin.dim(0);
    auto reserve = [&](int64_t per) {
      if (!x.empty()) return;
      int64_t rows_total = total_samples * std::min(per, per_sample);
      x.reserve((size_t)(rows_total * G * K));
      target.reserve((size_t)(rows_total * O));
    };
    const float* xi = xin.data<float>();
    const float* yo = yout.data<float>();
    if (l.kind == LayerKind::Conv) {
      ConvGeom geo = conv_geometry(xin.shape());
      int64_t P = geo.out_size(), in_size = geo.in_size(), ks = geo.kernel_size(), Cg = s.in_channels / G;
      reserve(P);
      size_t r = geo.in.size();
      std::vector<int64_t> order((size_t)P);
      std::vector<int64_t> oi(r), ti(r);
      for (int64_t n = 0; n < N; ++n) {
        std::iota(order.begin(), order.end(), 0);
        int64_t take = std::min(P, per_sample);
        for (int64_t i = 0; i < take; ++i) std::swap(order[(size_t)i], order[(size_t)(i + (int64_t)(rng() % (uint64_t)(P - i)))]);
        for (int64_t i = 0; i < take; ++i) {
          int64_t pos = order[(size_t)i];
          for (size_t d = r, rem = (size_t)pos; d-- > 0;) {
            oi[d] = (int64_t)rem % geo.out[d];
            rem /= (size_t)geo.out[d];
          }
          for (int64_t g = 0; g < G; ++g) {
            auto& xg = x;
            for (int64_t c = 0; c < Cg; ++c) {
              const float* plane = xi + (n * s.in_channels + g * Cg + c) * in_size;
              for (int64_t t = 0; t < ks; ++t) {
                int64_t rem = t, off = 0;
                bool inside = true;
                for (size_t d = r; d-- > 0;) {
                  ti[d] = rem % geo.kernel[d];
                  rem /= geo.kernel[d];
                }
                for (size_t d = 0; d < r; ++d) {
                  int64_t q = oi[d] * geo.stride[d] - geo.pad_begin[d] + ti[d] * geo.dilation[d];
                  if (q < 0 || q >= geo.in[d]) inside = false;
                  off = off * geo.in[d] + q;
                }
                xg.push_back(inside ? plane[off] : 0.f);
              }
            }
          }
          for (int64_t o = 0; o < O; ++o) target.push_back(apply_act(act, yo[(n * O + o) * P + pos]));
          ++rows;
        }
      }
    } else {
      int64_t R = xin.numel() / K / std::max<int64_t>(1, N);  // rows per sample
      reserve(R);
      std::vector<int64_t> order((size_t)R);
      for (int64_t n = 0; n < N; ++n) {
        std::iota(order.begin(), order.end(), 0);
        int64_t take = std::min(R, per_sample);
        for (int64_t i = 0; i < take; ++i) std::swap(order[(size_t)i], order[(size_t)(i + (int64_t)(rng() % (uint64_t)(R - i)))]);
        for (int64_t i = 0; i < take; ++i) {
          int64_t row = n * R + order[(size_t)i];
          x.insert(x.end(), xi + row * K, xi + (row + 1) * K);
          for (int64_t o = 0; o < O; ++o) target.push_back(apply_act(act, yo[row * O + o] + bias[(size_t)o]));
          ++rows;
        }
      }
    }
  }

  ConvGeom conv_geometry(const Shape& xs) const {
    const Shape& wsh = kernel_dims;
    ConvGeom geo = node_window_geom(node, xs, wsh);
    geo.group = l.shape.groups;
    geo.out_ch = l.shape.out_channels;
    resolve_auto_pad(node.attr_string("auto_pad", "NOTSET"), geo);
    return geo;
  }
  Shape kernel_dims;
};

}  // namespace

AdaRoundReport adaround_model(Model& m, const quant::QuantSimPlan& plan, const Tensor& samples, const AdaRoundOptions& opt,
                              const std::function<void(size_t, size_t)>& progress) {
  AdaRoundReport rep;
  topological_sort(m.graph);
  auto layers = planned_layers(m.graph, plan, &rep.skipped);
  std::string input;
  for (auto& vi : m.graph.inputs)
    if (!m.graph.is_initializer(vi.name)) input = vi.name;
  check(!input.empty(), "AdaRound: the model has no input");
  check(samples.rank() >= 1 && samples.dim(0) > 0, "AdaRound: no calibration samples");
  const Executor fp(m);
  int64_t N = samples.dim(0), chunk = 32;
  for (size_t li = 0; li < layers.size(); ++li) {
    auto t0 = std::chrono::steady_clock::now();
    const LinearLayer& l = layers[li].first;
    const quant::WeightQuantizer& wq = *layers[li].second;
    if (wq.enc.scale.empty()) {
      rep.skipped.push_back(l.name + ": its weight has no encoding");
      continue;
    }
    const Node node = m.graph.nodes[(size_t)l.node];
    Activation act = l.kind == LayerKind::MatMul ? Activation{} : fused_activation(m.graph, l.output);
    // MatMul: the bias lives in the following Add, outside the reconstructed output.
    std::vector<float> bias = l.kind == LayerKind::MatMul ? std::vector<float>((size_t)l.shape.out_channels, 0.f)
                                                           : get_bias(m.graph, l);
    const Tensor& wt = m.graph.initializers.at(l.weight);
    // Rows cached: max_rows, and no more than max_cache_floats of inputs and targets together.
    int64_t row_floats = l.shape.groups * l.shape.k() + l.shape.out_channels;
    int64_t max_rows = std::max<int64_t>(1, std::min(opt.max_rows, opt.max_cache_floats / row_floats));
    int64_t per_sample = (max_rows + N - 1) / N;
    RowSampler rs{l, node, per_sample, std::mt19937(opt.seed + 7919u * (uint32_t)li), N, {}, {}, 0,
                  Shape(wt.shape().begin() + 2, wt.shape().end())};
    const Executor q(m);
    for (int64_t b0 = 0; b0 < N; b0 += chunk) {
      Tensor xb = samples.slice_rows(b0, std::min(N, b0 + chunk));
      Tensor y = fp.run({{input, xb}}, {l.output}).at(l.output);
      Tensor xq = q.run({{input, xb}}, {l.input}).at(l.input);
      check(xq.dtype() == DType::Float32 && y.dtype() == DType::Float32, l.name, ": AdaRound needs float input and output");
      rs.add(xq, y, act, l.kind == LayerKind::MatMul ? bias : std::vector<float>((size_t)l.shape.out_channels, 0.f));
    }
    AdaRoundProblem p;
    p.shape = l.shape;
    p.bias = bias;
    p.act = act;
    p.qmin = wq.enc.spec.grid.qmin();
    p.qmax = wq.enc.spec.grid.qmax();
    p.scale = wq.enc.scale;
    p.zero_point = wq.enc.zero_point;
    std::vector<float> ws = get_weight(m.graph, l);
    auto sl = quant::slice_index(wt.shape(), wq.enc.spec);
    int64_t O = l.shape.out_channels, K = l.shape.k();
    p.w.resize((size_t)(O * K));
    p.slice.resize(p.w.size());
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < K; ++k) {
        p.w[(size_t)(o * K + k)] = ws[(size_t)l.shape.index(o, k)];
        p.slice[(size_t)(o * K + k)] = (int32_t)sl[(size_t)l.shape.index(o, k)];
      }
    p.rows = rs.rows;
    p.x = std::move(rs.x);
    p.target = std::move(rs.target);
    AdaRoundOptions lo = opt;
    lo.seed = opt.seed + (uint32_t)li;
    AdaRoundResult r = adaround_layer(p, lo);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < K; ++k) ws[(size_t)l.shape.index(o, k)] = r.w[(size_t)(o * K + k)];
    set_weight(m.graph, l, ws);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.layers.push_back({l.name, p.rows, r.loss_nearest, r.loss_adaround, secs, r.rounded_up_changed, r.kept_nearest});
    if (progress) progress(li + 1, layers.size());
  }
  return rep;
}

}  // namespace lowbit::ptq
