// Gradient rules of convolution, pooling and normalisation.
#include <cmath>
#include <functional>

#include <omp.h>

#include "kernels/broadcast.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "runtime/conv_geom.h"
#include "train/conv_backward_dnnl.h"
#include "train/grad.h"

namespace lowbit::train {

namespace {

using Grads = std::vector<Tensor>;

// A window geometry with up to 3 spatial dims, padded to exactly 3 (leading dims of size 1).
struct Geom3 {
  int64_t in[3], k[3], out[3], st[3], dil[3], pad[3];
};
Geom3 geom3(const ConvGeom& g, const std::string& where) {
  size_t r = g.in.size();
  check(r >= 1 && r <= 3, where, ": gradients cover 1-3 spatial dims, this node has ", r);
  Geom3 q;
  for (size_t i = 0; i < 3; ++i) {
    bool pad = i < 3 - r;
    size_t j = i - (3 - r);
    q.in[i] = pad ? 1 : g.in[j];
    q.k[i] = pad ? 1 : g.kernel[j];
    q.out[i] = pad ? 1 : g.out[j];
    q.st[i] = pad ? 1 : g.stride[j];
    q.dil[i] = pad ? 1 : g.dilation[j];
    q.pad[i] = pad ? 0 : g.pad_begin[j];
  }
  return q;
}

// Calls f(row, col, input offset or -1 for padding) over the im2col matrix of one image and channel range:
// row = c * K + kernel offset (c counted from 0 within the range), col = output position.
template <typename F>
void for_each_window(const Geom3& q, int64_t channels, F&& f) {
  int64_t K = q.k[0] * q.k[1] * q.k[2], S = q.in[0] * q.in[1] * q.in[2], O = q.out[0] * q.out[1] * q.out[2];
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t a = 0; a < q.k[0]; ++a)
      for (int64_t b = 0; b < q.k[1]; ++b)
        for (int64_t e = 0; e < q.k[2]; ++e) {
          int64_t row = c * K + (a * q.k[1] + b) * q.k[2] + e;
          for (int64_t od = 0; od < q.out[0]; ++od) {
            int64_t id = od * q.st[0] - q.pad[0] + a * q.dil[0];
            for (int64_t oh = 0; oh < q.out[1]; ++oh) {
              int64_t ih = oh * q.st[1] - q.pad[1] + b * q.dil[1];
              for (int64_t ow = 0; ow < q.out[2]; ++ow) {
                int64_t iw = ow * q.st[2] - q.pad[2] + e * q.dil[2];
                int64_t col = (od * q.out[1] + oh) * q.out[2] + ow;
                bool inside = id >= 0 && id < q.in[0] && ih >= 0 && ih < q.in[1] && iw >= 0 && iw < q.in[2];
                f(row * O + col, inside ? c * S + (id * q.in[1] + ih) * q.in[2] + iw : -1);
              }
            }
          }
        }
}

ConvGeom conv_geom(const GradContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& w = c.in(1);
  ConvGeom g = node_window_geom(c.node, x.shape(), Shape(w.shape().begin() + 2, w.shape().end()));
  g.group = c.node.attr_int("group", 1);
  g.out_ch = w.dim(0);
  resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g);
  return g;
}

Grads g_Conv(const GradContext& c) {
  check(c.in(0).dtype() == DType::Float32 && c.in(1).dtype() == DType::Float32, c.where(), ": gradients need float32");
  ConvGeom g = conv_geom(c);
  Geom3 q = geom3(g, c.where());
  Tensor gy = c.gout(0);
  const Tensor& x = c.in(0);
  const Tensor& w = c.in(1);
  int64_t N = g.batch, G = g.group, Cg = g.in_ch / G, Mg = g.out_ch / G;
  int64_t K = q.k[0] * q.k[1] * q.k[2], S = q.in[0] * q.in[1] * q.in[2], O = q.out[0] * q.out[1] * q.out[2];
  int64_t rows = Cg * K;
  bool want_x = c.wants(0), want_w = c.wants(1), want_b = c.has(2) && c.wants(2);
  if (fast_kernels_enabled() && N > 0)
    if (auto fast = DnnlConvBackward::get(g, c.has(2))) {
      Grads r(c.ins.size());
      if (want_x) {
        r[0] = Tensor::uninitialized(DType::Float32, x.shape());
        fast->data(gy.data<float>(), w.data<float>(), r[0].data<float>());
      }
      if (want_w || want_b) {
        Tensor gw = Tensor::uninitialized(DType::Float32, w.shape());
        Tensor gb = c.has(2) ? Tensor::uninitialized(DType::Float32, {g.out_ch}) : Tensor();
        fast->weights(x.data<float>(), gy.data<float>(), gw.data<float>(), gb.defined() ? gb.data<float>() : nullptr);
        if (want_w) r[1] = gw;
        if (want_b) r[2] = gb;
      }
      return r;
    }
  Tensor gx = want_x ? Tensor(DType::Float32, x.shape()) : Tensor();
  int threads = omp_get_max_threads();
  // Weight gradients per thread, summed at the end (images run in parallel).
  std::vector<std::vector<float>> gw_part(want_w ? threads : 0, std::vector<float>(want_w ? w.numel() : 0, 0.f));
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  const float* pgy = gy.data<float>();
  float* pgx = want_x ? gx.data<float>() : nullptr;
#pragma omp parallel
  {
    std::vector<float> col((size_t)(rows * O)), dcol((size_t)(rows * O));
    int tid = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gi = 0; gi < G; ++gi) {
        const float* xi = px + (n * g.in_ch + gi * Cg) * S;
        const float* gyi = pgy + (n * g.out_ch + gi * Mg) * O;
        if (want_w) {
          for_each_window(q, Cg, [&](int64_t j, int64_t src) { col[(size_t)j] = src < 0 ? 0.f : xi[src]; });
          // dW_g[Mg, rows] += gy_g[Mg, O] * col^T[O, rows]
          sgemm(false, true, Mg, rows, O, 1.f, gyi, O, col.data(), O, 1.f,
                gw_part[(size_t)tid].data() + gi * Mg * rows, rows);
        }
        if (want_x) {
          // dcol[rows, O] = W_g^T[rows, Mg] * gy_g[Mg, O], scattered back into the image
          sgemm(true, false, rows, O, Mg, 1.f, pw + gi * Mg * rows, rows, gyi, O, 0.f, dcol.data(), O);
          float* gxi = pgx + (n * g.in_ch + gi * Cg) * S;
          for_each_window(q, Cg, [&](int64_t j, int64_t src) {
            if (src >= 0) gxi[src] += dcol[(size_t)j];
          });
        }
      }
  }
  Grads r(c.ins.size());
  if (want_x) r[0] = gx;
  if (want_w) {
    Tensor gw(DType::Float32, w.shape());
    float* p = gw.data<float>();
    for (auto& part : gw_part)
      for (int64_t i = 0; i < gw.numel(); ++i) p[i] += part[(size_t)i];
    r[1] = gw;
  }
  if (want_b) {
    std::vector<double> acc((size_t)g.out_ch, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = 0; m < g.out_ch; ++m)
        for (int64_t o = 0; o < O; ++o) acc[(size_t)m] += pgy[(n * g.out_ch + m) * O + o];
    Tensor gb(DType::Float32, {g.out_ch});
    for (int64_t m = 0; m < g.out_ch; ++m) gb.data<float>()[m] = (float)acc[(size_t)m];
    r[2] = gb;
  }
  return r;
}

// ConvTranspose, per group: y = col2im(W_g^T x_g) over the window geometry whose "input" is y's (large) image and
// whose "output" positions are x's, so the same im2col walk serves: with cols = im2col(gy_g),
// dx_g = W_g cols and dW_g = x_g cols^T (W_g is [C/group, M/group * K] as stored), db = sum of gy.
Grads g_ConvTranspose(const GradContext& c) {
  check(c.in(0).dtype() == DType::Float32 && c.in(1).dtype() == DType::Float32, c.where(), ": gradients need float32");
  const Tensor& x = c.in(0);
  const Tensor& w = c.in(1);
  ConvGeom g = conv_transpose_geom(c.node, x.shape(), w.shape());
  ConvGeom swapped = g;
  swapped.in = g.out, swapped.out = g.in;
  Geom3 q = geom3(swapped, c.where());
  Tensor gy = c.gout(0);
  int64_t N = g.batch, G = g.group, Cg = g.in_ch / G, Mg = g.out_ch / G;
  int64_t K = q.k[0] * q.k[1] * q.k[2], S = q.in[0] * q.in[1] * q.in[2], O = q.out[0] * q.out[1] * q.out[2];
  int64_t rows = Mg * K;
  check(gy.numel() == N * g.out_ch * S && x.numel() == N * g.in_ch * O, c.where(), ": shapes do not match the geometry");
  bool want_x = c.wants(0), want_w = c.wants(1), want_b = c.has(2) && c.wants(2);
  Tensor gx = want_x ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor();
  int threads = omp_get_max_threads();
  std::vector<std::vector<float>> gw_part(want_w ? threads : 0, std::vector<float>(want_w ? w.numel() : 0, 0.f));
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  const float* pgy = gy.data<float>();
#pragma omp parallel
  {
    std::vector<float> col((size_t)(rows * O));
    int tid = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t gi = 0; gi < G; ++gi) {
        const float* gyi = pgy + (n * g.out_ch + gi * Mg) * S;
        for_each_window(q, Mg, [&](int64_t j, int64_t src) { col[(size_t)j] = src < 0 ? 0.f : gyi[src]; });
        const float* wg = pw + gi * Cg * rows;
        const float* xi = px + (n * g.in_ch + gi * Cg) * O;
        if (want_x) sgemm(false, false, Cg, O, rows, 1.f, wg, rows, col.data(), O, 0.f,
                          gx.data<float>() + (n * g.in_ch + gi * Cg) * O, O);
        if (want_w) sgemm(false, true, Cg, rows, O, 1.f, xi, O, col.data(), O, 1.f,
                          gw_part[(size_t)tid].data() + gi * Cg * rows, rows);
      }
  }
  Grads r(c.ins.size());
  if (want_x) r[0] = gx;
  if (want_w) {
    Tensor gw(DType::Float32, w.shape());
    for (auto& part : gw_part)
      for (int64_t i = 0; i < gw.numel(); ++i) gw.data<float>()[i] += part[(size_t)i];
    r[1] = gw;
  }
  if (want_b) {
    Tensor gb(DType::Float32, {g.out_ch});
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = 0; m < g.out_ch; ++m) {
        double acc = 0;
        for (int64_t k = 0; k < S; ++k) acc += pgy[(n * g.out_ch + m) * S + k];
        gb.data<float>()[m] += (float)acc;
      }
    r[2] = gb;
  }
  return r;
}

// MaxPool / AveragePool: the forward window walked again per output.
template <bool IsMax>
Grads g_pool(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  const Tensor& x = c.in(0);
  check(x.dtype() == DType::Float32, c.where(), ": gradients need float32");
  ConvGeom g = node_window_geom(c.node, x.shape(), c.node.attr_ints("kernel_shape"));
  bool ceil_mode = c.node.attr_int("ceil_mode", 0) != 0;
  resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g, ceil_mode);
  Geom3 q = geom3(g, c.where());
  bool include_pad = c.node.attr_int("count_include_pad", 0) != 0;
  int pad_lead = 3 - (int)g.in.size();
  int64_t NC = x.dim(0) * x.dim(1);
  int64_t S = q.in[0] * q.in[1] * q.in[2], O = q.out[0] * q.out[1] * q.out[2], K = q.k[0] * q.k[1] * q.k[2];
  check(c.outs[0].numel() == NC * O, c.where(), ": pooled output size does not match the window geometry");
  Tensor gy = c.gout(0);
  Tensor gx(DType::Float32, x.shape());
  const float* px = x.data<float>();
  const float* pgy = gy.data<float>();
  float* pgx = gx.data<float>();
  // Per output: the sources of its window (-1 for padding), collected in kernel order; the same for every plane.
  std::vector<int64_t> src((size_t)(K * O));
  for_each_window(q, 1, [&](int64_t j, int64_t s) { src[(size_t)((j % O) * K + j / O)] = s; });
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const float* xi = px + nc * S;
    float* gi = pgx + nc * S;
    for (int64_t o = 0; o < O; ++o) {
      const int64_t* w = &src[(size_t)(o * K)];
      float go = pgy[nc * O + o];
      if (IsMax) {
        int64_t best = -1;  // the first maximum, as the forward's max() keeps it
        for (int64_t k = 0; k < K; ++k)
          if (w[k] >= 0 && (best < 0 || xi[w[k]] > xi[best])) best = w[k];
        if (best >= 0) gi[best] += go;
      } else {
        int64_t count = 0;
        for (int64_t k = 0; k < K; ++k) count += include_pad || w[k] >= 0;
        // With count_include_pad, taps in the explicit pads count too (not those past them, from ceil_mode), per
        // dimension, as the forward counts them.
        if (include_pad) {
          count = 1;
          int64_t pos[3] = {o / (q.out[1] * q.out[2]), (o / q.out[2]) % q.out[1], o % q.out[2]};
          for (int d = 0; d < 3; ++d) {
            int64_t pe = d < pad_lead ? 0 : g.pad_end[(size_t)(d - pad_lead)], taps = 0;
            for (int64_t j = 0; j < q.k[d]; ++j) {
              int64_t at = pos[d] * q.st[d] - q.pad[d] + j * q.dil[d];
              taps += at >= -q.pad[d] && at < q.in[d] + pe;
            }
            count *= taps;
          }
        }
        if (count == 0) continue;
        for (int64_t k = 0; k < K; ++k)
          if (w[k] >= 0) gi[w[k]] += go / (float)count;
      }
    }
  }
  r[0] = gx;
  return r;
}

Grads g_GlobalAveragePool(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  const Tensor& x = c.in(0);
  int64_t NC = x.dim(0) * x.dim(1), S = NC ? x.numel() / NC : 0;
  Tensor gy = c.gout(0);
  Tensor gx = Tensor::uninitialized(DType::Float32, x.shape());
  for (int64_t i = 0; i < NC; ++i)
    for (int64_t k = 0; k < S; ++k) gx.data<float>()[i * S + k] = gy.data<float>()[i] / (float)S;
  r[0] = gx;
  return r;
}

// Normalisation over groups of `inner` elements with one mean/inv_std each; y = xhat * gamma + beta.
// dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma.
void normalise_backward(const float* x, const float* dy, const std::vector<double>& gamma_of, int64_t groups,
                        int64_t inner, int64_t stride_group, int64_t stride_elem, double eps, float* dx,
                        std::vector<double>* dgamma_of, std::vector<double>* dbeta_of,
                        const std::function<int64_t(int64_t g, int64_t i)>& param_index) {
  for (int64_t gi = 0; gi < groups; ++gi) {
    auto at = [&](int64_t i) { return gi * stride_group + i * stride_elem; };
    double m = 0, v = 0;
    for (int64_t i = 0; i < inner; ++i) m += x[at(i)];
    m /= (double)inner;
    for (int64_t i = 0; i < inner; ++i) v += (x[at(i)] - m) * (x[at(i)] - m);
    v /= (double)inner;
    double is = 1.0 / std::sqrt(v + eps);
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < inner; ++i) {
      double xh = (x[at(i)] - m) * is;
      double dxh = dy[at(i)] * gamma_of[(size_t)param_index(gi, i)];
      s1 += dxh, s2 += dxh * xh;
      if (dgamma_of) (*dgamma_of)[(size_t)param_index(gi, i)] += dy[at(i)] * xh;
      if (dbeta_of) (*dbeta_of)[(size_t)param_index(gi, i)] += dy[at(i)];
    }
    s1 /= (double)inner, s2 /= (double)inner;
    if (dx)
      for (int64_t i = 0; i < inner; ++i) {
        double xh = (x[at(i)] - m) * is;
        double dxh = dy[at(i)] * gamma_of[(size_t)param_index(gi, i)];
        dx[at(i)] = (float)(is * (dxh - s1 - xh * s2));
      }
  }
}

// The statistics outputs (LayerNormalization's mean and inverse deviation, BatchNormalization's running statistics)
// are not differentiated: a gradient arriving there is an error rather than silently dropped.
void check_no_stat_grads(const GradContext& c) {
  for (size_t k = 1; k < c.gouts.size(); ++k)
    check(!c.gouts[k].defined(), c.where(), ": output ", k, " (a statistic) has no gradient rule");
}

Grads g_LayerNormalization(const GradContext& c) {
  check_no_stat_grads(c);
  const Tensor& x = c.in(0);
  check(x.dtype() == DType::Float32, c.where(), ": gradients need float32");
  int64_t rank = x.rank(), axis = c.node.attr_int("axis", -1);
  if (axis < 0) axis += rank;
  double eps = c.node.attr_float("epsilon", 1e-5f);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim((int)d);
  for (int64_t d = axis; d < rank; ++d) inner *= x.dim((int)d);
  Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  // gamma broadcast to the normalised shape: element i of a group reads gamma[gidx[i]].
  const Tensor& gamma = c.in(1);
  std::vector<int64_t> gidx((size_t)inner);
  broadcast_for_each<1>(norm_shape, {gamma.shape()}, [&](int64_t i, const std::array<int64_t, 1>& o) { gidx[(size_t)i] = o[0]; });
  std::vector<double> gv(gamma.to_f64());
  std::vector<double> gg(gv.size(), 0.0), gb;
  bool has_b = c.has(2);
  if (has_b) gb.assign((size_t)c.in(2).numel(), 0.0);
  Tensor gy = c.gout(0);
  Tensor gx = c.wants(0) ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor();
  std::vector<int64_t> bidx;
  if (has_b) {
    bidx.resize((size_t)inner);
    broadcast_for_each<1>(norm_shape, {c.in(2).shape()}, [&](int64_t i, const std::array<int64_t, 1>& o) { bidx[(size_t)i] = o[0]; });
  }
  std::vector<double> gbeta_full;
  normalise_backward(x.data<float>(), gy.data<float>(), gv, outer, inner, inner, 1, eps,
                     gx.defined() ? gx.data<float>() : nullptr, &gg, nullptr,
                     [&](int64_t, int64_t i) { return gidx[(size_t)i]; });
  Grads r(c.ins.size());
  if (c.wants(0)) r[0] = gx;
  if (c.wants(1)) {
    Tensor t = Tensor::uninitialized(DType::Float32, gamma.shape());
    for (size_t i = 0; i < gg.size(); ++i) t.data<float>()[i] = (float)gg[i];
    r[1] = t;
  }
  if (has_b && c.wants(2)) {
    const float* pg = gy.data<float>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) gb[(size_t)bidx[(size_t)i]] += pg[o * inner + i];
    Tensor t = Tensor::uninitialized(DType::Float32, c.in(2).shape());
    for (size_t i = 0; i < gb.size(); ++i) t.data<float>()[i] = (float)gb[i];
    r[2] = t;
  }
  return r;
}

// BatchNormalization: with batch statistics in training mode (the mean/var inputs get no gradient), with the
// running statistics (a per-channel affine map) otherwise.
Grads g_BatchNormalization(const GradContext& c) {
  check_no_stat_grads(c);
  const Tensor& x = c.in(0);
  check(x.dtype() == DType::Float32, c.where(), ": gradients need float32");
  bool training = c.opset >= 14 && c.node.attr_int("training_mode", 0);
  int64_t N = x.dim(0), C = x.dim(1), S = x.numel() / std::max<int64_t>(N * C, 1);
  double eps = c.node.attr_float("epsilon", 1e-5f);
  auto gamma = c.in(1).to_f64(), mean = c.in(3).to_f64(), var = c.in(4).to_f64();
  Tensor gy = c.gout(0);
  const float* px = x.data<float>();
  const float* pg = gy.data<float>();
  Tensor gx = c.wants(0) ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor();
  std::vector<double> gg((size_t)C, 0.0), gb((size_t)C, 0.0);
  if (training) {
    // Channel ch is a group of N * S elements: element i = (n, k) at n * C * S + ch * S + k.
    for (int64_t ch = 0; ch < C; ++ch) {
      auto at = [&](int64_t i) { return (i / S) * C * S + ch * S + i % S; };
      int64_t cnt = N * S;
      double m = 0, v = 0;
      for (int64_t i = 0; i < cnt; ++i) m += px[at(i)];
      m /= (double)cnt;
      for (int64_t i = 0; i < cnt; ++i) v += (px[at(i)] - m) * (px[at(i)] - m);
      v /= (double)cnt;
      double is = 1.0 / std::sqrt(v + eps), s1 = 0, s2 = 0;
      for (int64_t i = 0; i < cnt; ++i) {
        double xh = (px[at(i)] - m) * is;
        gg[(size_t)ch] += pg[at(i)] * xh, gb[(size_t)ch] += pg[at(i)];
        s1 += pg[at(i)] * gamma[(size_t)ch], s2 += pg[at(i)] * gamma[(size_t)ch] * xh;
      }
      s1 /= (double)cnt, s2 /= (double)cnt;
      if (gx.defined())
        for (int64_t i = 0; i < cnt; ++i) {
          double xh = (px[at(i)] - m) * is;
          gx.data<float>()[at(i)] = (float)(is * (pg[at(i)] * gamma[(size_t)ch] - s1 - xh * s2));
        }
    }
  } else {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t ch = 0; ch < C; ++ch) {
        double is = 1.0 / std::sqrt(var[(size_t)ch] + eps);
        for (int64_t k = 0; k < S; ++k) {
          int64_t i = (n * C + ch) * S + k;
          gg[(size_t)ch] += pg[i] * (px[i] - mean[(size_t)ch]) * is, gb[(size_t)ch] += pg[i];
          if (gx.defined()) gx.data<float>()[i] = (float)(pg[i] * gamma[(size_t)ch] * is);
        }
      }
  }
  Grads r(c.ins.size());
  if (c.wants(0)) r[0] = gx;
  auto vec = [&](const std::vector<double>& v) {
    Tensor t = Tensor::uninitialized(DType::Float32, {C});
    for (int64_t i = 0; i < C; ++i) t.data<float>()[i] = (float)v[(size_t)i];
    return t;
  };
  if (c.wants(1)) r[1] = vec(gg);
  if (c.wants(2)) r[2] = vec(gb);
  return r;
}

}  // namespace

void add_nn_rules(GradTable& t) {
  t.add("Conv", g_Conv);
  t.add("ConvTranspose", g_ConvTranspose);
  t.add("MaxPool", g_pool<true>);
  t.add("AveragePool", g_pool<false>);
  t.add("GlobalAveragePool", g_GlobalAveragePool);
  t.add("LayerNormalization", g_LayerNormalization);
  t.add("BatchNormalization", g_BatchNormalization);
}

}  // namespace lowbit::train
