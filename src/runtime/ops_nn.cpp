// Convolution, pooling, normalisation and Resize ops (attribute parsing; compute in kernels/).
#include <algorithm>
#include <cmath>

#include "kernels/conv.h"
#include "kernels/conv_dnnl.h"
#include "kernels/dispatch.h"
#include "kernels/pool.h"
#include "runtime/conv_geom.h"
#include "core/checked.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

Tensor as_f32(const Tensor& t, const OpContext& c) {
  check(t.dtype() != DType::Bool, c.where(), ": boolean input is not allowed");
  return t.dtype() == DType::Float32 ? t : t.cast(DType::Float32);
}

ConvGeom window_geom(const OpContext& c, const Shape& xs, const std::vector<int64_t>& kernel) {
  return node_window_geom(c.node, xs, kernel);
}

// What a Conv node keeps between runs: oneDNN's primitive for the last geometry (or that oneDNN declined it) and
// the weights it reordered, with the buffer they came from.
struct ConvState {
  std::shared_ptr<DnnlConv> conv;
  bool declined = false;
  ConvGeom declined_geom;
  std::weak_ptr<const TensorStorage> weight_buf;
  std::shared_ptr<const void> prepared;
};

// Runs the convolution through oneDNN when fast kernels are on and it takes the geometry (the output channels-last
// when the context allows it); an undefined tensor otherwise.
Tensor conv_fast(const OpContext& c, const ConvGeom& g, const Tensor& x, const Tensor& w, const float* bias,
                 const Shape& ys) {
  if (!fast_kernels_enabled()) return {};
  std::shared_ptr<DnnlConv> conv;
  std::shared_ptr<const void> prepared;
  {
    KernelCache local;
    KernelCache& kc = c.cache ? *c.cache : local;
    std::lock_guard<std::mutex> lock(kc.mu);
    auto st = std::static_pointer_cast<ConvState>(kc.data);
    if (!st) kc.data = st = std::make_shared<ConvState>();
    bool has_bias = bias != nullptr;
    if (st->declined && st->declined_geom == g) return {};
    float lo = c.fused_clamp ? c.fused_clamp->lo : 1.f, hi = c.fused_clamp ? c.fused_clamp->hi : 0.f;
    if (!st->conv || !(st->conv->geom() == g) || st->conv->has_bias() != has_bias || !st->conv->same_clamp(lo, hi)) {
      st->prepared.reset();
      st->weight_buf.reset();
      try {
        st->conv = std::make_shared<DnnlConv>(g, has_bias, lo, hi);
        st->declined = false;
      } catch (const Unsupported&) {
        st->conv.reset();
        st->declined = true;
        st->declined_geom = g;
        return {};
      }
    }
    auto held = st->weight_buf.lock();
    if (!st->prepared || !held || held != w.weak_buffer().lock()) {
      st->prepared = st->conv->prepare_weights(w.data<float>());
      st->weight_buf = w.weak_buffer();
    }
    conv = st->conv;
    prepared = st->prepared;
  }
  bool x_cl = x.layout() == Layout::ChannelsLast, y_cl = c.channels_last_out && conv->channels_last_capable();
  if (x_cl && !conv->channels_last_capable()) return {};
  Tensor y = Tensor::uninitialized(DType::Float32, ys, y_cl ? Layout::ChannelsLast : Layout::Plain);
  conv->run(static_cast<const float*>(x.storage()), prepared, bias, static_cast<float*>(y.storage_mut()), x_cl, y_cl);
  return y;
}

Outs op_Conv(const OpContext& c) {
  // Layout-aware: a channels-last input goes to oneDNN as it is, and the reference path gets it plain.
  Tensor x = c.in(0).layout() == Layout::Plain ? as_f32(c.in(0), c) : c.in(0), w = as_f32(c.in(1), c);
  check(w.rank() == x.rank(), c.where(), ": weight rank ", w.rank(), " differs from input rank ", x.rank());
  ConvGeom g = window_geom(c, x.shape(), Shape(w.shape().begin() + 2, w.shape().end()));
  g.group = c.node.attr_int("group", 1);
  g.out_ch = w.dim(0);
  check(g.group > 0 && g.in_ch % g.group == 0 && g.out_ch % g.group == 0, c.where(), ": group ", g.group,
        " does not divide channels (in ", g.in_ch, ", out ", g.out_ch, ")");
  check(w.dim(1) * g.group == g.in_ch, c.where(), ": weight ", shape_str(w.shape()), " expects ", w.dim(1) * g.group,
        " input channels, input ", shape_str(x.shape()), " has ", g.in_ch);
  resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g);
  Tensor b;
  if (c.has(2)) {
    b = as_f32(c.in(2), c);
    check(b.numel() == g.out_ch, c.where(), ": bias has ", b.numel(), " values for ", g.out_ch, " output channels");
  }
  Shape ys = {g.batch, g.out_ch};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  const float* bias = b.defined() ? b.data<float>() : nullptr;
  if (shape_numel(ys) > 0) {
    Tensor fast = conv_fast(c, g, x, w, bias, ys);
    if (fast.defined()) return {c.in(0).dtype() == DType::Float32 ? fast : fast.to_plain().cast(c.in(0).dtype())};
  }
  x = x.to_plain();
  Tensor y = Tensor::uninitialized(DType::Float32, ys);
  if (y.numel()) conv_f32(g, x.data<float>(), w.data<float>(), bias, y.data<float>());
  if (c.fused_clamp) {
    float lo = c.fused_clamp->lo, hi = c.fused_clamp->hi;
    float* p = y.data<float>();
    for (int64_t i = 0; i < y.numel(); ++i) p[i] = p[i] > lo ? std::min(p[i], hi) : lo;
  }
  return {y.cast(c.in(0).dtype())};
}

Outs op_ConvTranspose(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c), w = as_f32(c.in(1), c);
  ConvGeom g = conv_transpose_geom(c.node, x.shape(), w.shape());
  Tensor b;
  if (c.has(2)) b = as_f32(c.in(2), c);
  Shape ys = {g.batch, g.out_ch};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  Tensor y(DType::Float32, ys);
  conv_transpose_f32(g, x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr, y.data<float>());
  return {y.cast(c.in(0).dtype())};
}

template <bool IsMax>
Outs op_pool(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c);
  ConvGeom g = window_geom(c, x.shape(), c.node.attr_ints("kernel_shape"));
  g.out_ch = g.in_ch;
  bool ceil_mode = c.node.attr_int("ceil_mode", 0) != 0;
  resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g, ceil_mode);
  Shape ys = {g.batch, g.in_ch};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  Tensor y(DType::Float32, ys);
  if (y.numel() == 0) {  // an empty result needs no work, however many (empty) channels there are
    if constexpr (IsMax) return {y.cast(c.in(0).dtype()), Tensor(DType::Int64, ys)};
    else return {y.cast(c.in(0).dtype())};
  }
  if constexpr (IsMax) {
    // Indices only when the node's second output is used (the 2-D fast path computes none).
    bool want_idx = c.node.outputs.size() > 1 && !c.node.outputs[1].empty();
    Tensor idx = want_idx ? Tensor(DType::Int64, ys) : Tensor();
    max_pool_f32(g, x.data<float>(), y.data<float>(), want_idx ? idx.data<int64_t>() : nullptr,
                 (int)c.node.attr_int("storage_order", 0));
    if (!want_idx) return {y.cast(c.in(0).dtype())};
    return {y.cast(c.in(0).dtype()), idx};
  } else {
    avg_pool_f32(g, x.data<float>(), y.data<float>(), c.node.attr_int("count_include_pad", 0) != 0);
    return {y.cast(c.in(0).dtype())};
  }
}

template <bool IsMax>
Outs op_global_pool(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c);
  check(x.rank() >= 3, c.where(), ": input must be [N, C, spatial...], got ", shape_str(x.shape()));
  int64_t nc = x.dim(0) * x.dim(1), s = x.numel() / std::max<int64_t>(nc, 1);
  Shape ys(x.rank(), 1);
  ys[0] = x.dim(0);
  ys[1] = x.dim(1);
  Tensor y(DType::Float32, ys);
  float* py = y.data<float>();
  if (x.layout() == Layout::ChannelsLast) {  // stored [N, S, C]: per channel, the same sums in the same order
    const float* px = static_cast<const float*>(x.storage());
    int64_t C = x.dim(1);
    for (int64_t n = 0; n < x.dim(0); ++n) {
      float* acc = py + n * C;
      std::fill(acc, acc + C, IsMax ? -INFINITY : 0.f);
      for (int64_t k = 0; k < s; ++k) {
        const float* row = px + (n * s + k) * C;
        for (int64_t ch = 0; ch < C; ++ch) acc[ch] = IsMax ? std::max(acc[ch], row[ch]) : acc[ch] + row[ch];
      }
      if (!IsMax)
        for (int64_t ch = 0; ch < C; ++ch) acc[ch] = acc[ch] / (float)s;
    }
    return {y.cast(c.in(0).dtype())};
  }
  const float* px = x.data<float>();
#pragma omp parallel for schedule(static) if (nc > 64)
  for (int64_t i = 0; i < nc; ++i) {
    float acc = IsMax ? -INFINITY : 0.f;
    for (int64_t k = 0; k < s; ++k) acc = IsMax ? std::max(acc, px[i * s + k]) : acc + px[i * s + k];
    py[i] = IsMax ? acc : acc / (float)s;
  }
  return {y.cast(c.in(0).dtype())};
}

Outs op_BatchNormalization(const OpContext& c) {
  bool training = c.opset >= 14 && c.node.attr_int("training_mode", 0);
  if (c.opset < 9 && c.node.attr_int("spatial", 1) == 0) unsupported(c.where(), ": spatial=0 is not supported");
  Tensor x = as_f32(c.in(0), c);
  if (training) x = x.to_plain();  // layout-aware in inference mode only
  check(x.rank() >= 2, c.where(), ": input must be [N, C, ...]");
  int64_t C = x.dim(1), N = x.dim(0), S = x.numel() / std::max<int64_t>(N * C, 1);
  auto sc = c.in(1).to_f64(), bi = c.in(2).to_f64(), mu = c.in(3).to_f64(), var = c.in(4).to_f64();
  check((int64_t)sc.size() == C && (int64_t)bi.size() == C && (int64_t)mu.size() == C && (int64_t)var.size() == C,
        c.where(), ": scale/bias/mean/var must have ", C, " values");
  double eps = c.node.attr_float("epsilon", 1e-5f);
  Outs extra;
  if (training) {
    // Training mode (opset 14+): normalise with the batch statistics (mean and population variance over N and the
    // spatial axes, in double) and output the updated running statistics
    // running = input_running * momentum + batch * (1 - momentum).
    check(N * S > 0, c.where(), ": training mode needs a non-empty batch");
    double momentum = c.node.attr_float("momentum", 0.9f);
    const float* px = x.data<float>();
    std::vector<double> bm((size_t)C, 0.0), bv((size_t)C, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t k = 0; k < S; ++k) bm[(size_t)ch] += px[(n * C + ch) * S + k];
    for (auto& v : bm) v /= (double)(N * S);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t k = 0; k < S; ++k) {
          double d = px[(n * C + ch) * S + k] - bm[(size_t)ch];
          bv[(size_t)ch] += d * d;
        }
    for (auto& v : bv) v /= (double)(N * S);
    std::vector<double> rm((size_t)C), rv((size_t)C);
    for (int64_t ch = 0; ch < C; ++ch) {
      rm[(size_t)ch] = mu[(size_t)ch] * momentum + bm[(size_t)ch] * (1 - momentum);
      rv[(size_t)ch] = var[(size_t)ch] * momentum + bv[(size_t)ch] * (1 - momentum);
    }
    mu = bm;
    var = bv;
    extra.push_back(Tensor::from_vector<double>({C}, rm).cast(c.in(3).dtype()));
    extra.push_back(Tensor::from_vector<double>({C}, rv).cast(c.in(4).dtype()));
  }
  std::vector<float> a(C), b(C);
  for (int64_t i = 0; i < C; ++i) {
    a[i] = (float)(sc[i] / std::sqrt(var[i] + eps));
    b[i] = (float)(bi[i] - mu[i] * sc[i] / std::sqrt(var[i] + eps));
  }
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape(), x.layout());
  const float* px = static_cast<const float*>(x.storage());
  float* py = static_cast<float*>(y.storage_mut());
  if (x.layout() == Layout::ChannelsLast) {  // stored [N, S, C]: the same products, channel innermost
#pragma omp parallel for schedule(static) if (N * S * C > 65536)
    for (int64_t ns = 0; ns < N * S; ++ns)
      for (int64_t ch = 0; ch < C; ++ch) py[ns * C + ch] = px[ns * C + ch] * a[ch] + b[ch];
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      int64_t ch = nc % C;
      for (int64_t k = 0; k < S; ++k) py[nc * S + k] = px[nc * S + k] * a[ch] + b[ch];
    }
  }
  Outs out{c.in(0).dtype() == DType::Float32 ? y : y.cast(c.in(0).dtype())};
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

// Mean and 1/sqrt(variance + eps) of n floats, accumulated in double.
void mean_inv_std(const float* a, int64_t n, double eps, double& mean, double& inv_std) {
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; ++i) m += a[i];
  m /= (double)n;
  for (int64_t i = 0; i < n; ++i) v += (a[i] - m) * (a[i] - m);
  v /= (double)n;
  mean = m;
  inv_std = 1.0 / std::sqrt(v + eps);
}

Outs op_LayerNormalization(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c);
  int64_t r = x.rank();
  int64_t axis = norm_axis(c.node.attr_int("axis", -1), r, c);
  double eps = c.node.attr_float("epsilon", 1e-5f);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim((int)d);
  for (int64_t d = axis; d < r; ++d) inner *= x.dim((int)d);
  Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  Tensor scale = as_f32(c.in(1), c), bias;
  if (c.has(2)) bias = as_f32(c.in(2), c);
  Tensor y(DType::Float32, x.shape());
  Shape stat_shape = x.shape();
  for (int64_t d = axis; d < r; ++d) stat_shape[d] = 1;
  Tensor mean(DType::Float32, stat_shape), inv(DType::Float32, stat_shape);
  // Scale and bias broadcast to the normalised shape.
  std::vector<float> sv(inner), bv(inner, 0.f);
  broadcast_for_each<1>(norm_shape, {scale.shape()}, [&](int64_t i, const std::array<int64_t, 1>& o) { sv[i] = scale.data<float>()[o[0]]; });
  if (bias.defined())
    broadcast_for_each<1>(norm_shape, {bias.shape()}, [&](int64_t i, const std::array<int64_t, 1>& o) { bv[i] = bias.data<float>()[o[0]]; });
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for schedule(static) if (outer > 16)
  for (int64_t o = 0; o < outer; ++o) {
    const float* a = px + o * inner;
    double m, is;
    mean_inv_std(a, inner, eps, m, is);
    for (int64_t i = 0; i < inner; ++i) py[o * inner + i] = (float)((a[i] - m) * is) * sv[i] + bv[i];
    mean.data<float>()[o] = (float)m;
    inv.data<float>()[o] = (float)is;
  }
  return {y.cast(c.in(0).dtype()), mean, inv};
}

Outs op_InstanceNormalization(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c);
  auto sc = c.in(1).to_f64(), bi = c.in(2).to_f64();
  check(x.rank() >= 3, c.where(), ": input must be [N, C, spatial...], got ", shape_str(x.shape()));
  int64_t N = x.dim(0), C = x.dim(1), S = x.numel() / std::max<int64_t>(N * C, 1);
  check((int64_t)sc.size() == C && (int64_t)bi.size() == C, c.where(), ": scale and bias need ", C,
        " values (one per channel), got ", sc.size(), " and ", bi.size());
  double eps = c.node.attr_float("epsilon", 1e-5f);
  Tensor y(DType::Float32, x.shape());
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const float* a = x.data<float>() + nc * S;
    double m, is;
    mean_inv_std(a, S, eps, m, is);
    for (int64_t k = 0; k < S; ++k) y.data<float>()[nc * S + k] = (float)((a[k] - m) * is * sc[nc % C] + bi[nc % C]);
  }
  return {y.cast(c.in(0).dtype())};
}

// ---- Resize: separable 1-D interpolation along each resized axis (nearest or linear). ----
struct ResizeAxis {
  std::string ctm, nearest_mode;
  bool linear = false, cubic = false, exclude_outside = false, antialias = false;
  double cubic_a = -0.75;
  double scale = 1, roi_start = 0, roi_end = 1, extrapolation = 0;
  int64_t in = 1, out = 1;
  double out_len = 1;  // in * scale (not truncated) when scales are given; align_corners divides by it
};

// Source coordinate of output index x, or NaN if it must take the extrapolation value.
double source_coord(const ResizeAxis& a, int64_t x) {
  const std::string& m = a.ctm;
  if (m == "half_pixel") return (x + 0.5) / a.scale - 0.5;
  if (m == "half_pixel_symmetric") {  // opset 19: half_pixel with the ROI's centre kept at the output's centre
    double adjustment = (double)a.out / a.out_len, centre = a.in / 2.0;
    return centre * (1 - adjustment) + (x + 0.5) / a.scale - 0.5;
  }
  if (m == "asymmetric") return x / a.scale;
  if (m == "pytorch_half_pixel") return a.out > 1 ? (x + 0.5) / a.scale - 0.5 : 0.0;
  if (m == "align_corners") return a.out == 1 ? 0.0 : x * (double)(a.in - 1) / (a.out_len - 1);
  if (m == "tf_half_pixel_for_nn") return (x + 0.5) / a.scale;
  if (m == "tf_crop_and_resize") {
    double v = a.out > 1 ? a.roi_start * (a.in - 1) + x * (a.roi_end - a.roi_start) * (a.in - 1) / (double)(a.out - 1)
                         : 0.5 * (a.roi_start + a.roi_end) * (a.in - 1);
    if (v < 0 || v > a.in - 1) return NAN;
    return v;
  }
  fail("unknown coordinate_transformation_mode '", m, "'");
}

int64_t nearest_index(const ResizeAxis& a, double xo) {
  double f = std::floor(xo), frac = xo - f;
  int64_t i;
  const std::string& m = a.nearest_mode;
  if (m == "floor") i = (int64_t)f;
  else if (m == "ceil") i = (int64_t)std::ceil(xo);
  else if (m == "round_prefer_ceil") i = frac >= 0.5 ? (int64_t)f + 1 : (int64_t)f;
  else i = frac > 0.5 ? (int64_t)f + 1 : (int64_t)f;  // round_prefer_floor
  return std::clamp<int64_t>(i, 0, a.in - 1);
}

// Keys' cubic convolution kernel with coefficient A.
double cubic_kernel(double d, double A) {
  d = std::abs(d);
  if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
  if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
  return 0.0;
}

// Antialiased downsampling (opset 18 `antialias`, linear and cubic modes, scale < 1): the interpolation kernel is
// stretched by 1 / scale, so each output averages every input within the stretched support. As the ONNX definition
// (its reference implementation): with x = x0 + t, x0 integer and t in (0, 1], the taps are x0 + j for j in
// [j0, 2 - j0) with j0 = floor(-K / scale) + 1 (K = 1 linear, 2 cubic) and weights kernel(scale (j - t)) normalised
// to sum 1; taps outside the input read the edge value, or are dropped (and the rest renormalised) with
// exclude_outside.
Tensor resize_axis_antialias(const Tensor& x, int d, const ResizeAxis& a, Tensor y) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x.dim(i);
  for (int i = d + 1; i < x.rank(); ++i) inner *= x.dim(i);
  const double K = a.cubic ? 2.0 : 1.0;
  const int64_t j0 = (int64_t)std::floor(-K / a.scale) + 1, taps = 2 - 2 * j0;
  check_allocation(DType::Float64, {a.out, taps});
  std::vector<int64_t> idx((size_t)(a.out * taps));
  std::vector<double> wt((size_t)(a.out * taps));
  std::vector<char> ext((size_t)a.out);
  for (int64_t o = 0; o < a.out; ++o) {
    double xo = source_coord(a, o);
    ext[(size_t)o] = std::isnan(xo);
    if (ext[(size_t)o]) continue;
    double x0 = std::floor(xo), t = xo - x0;
    if (t == 0) {  // the definition's t lies in (0, 1]
      t = 1;
      x0 -= 1;
    }
    double sum = 0;
    for (int64_t j = 0; j < taps; ++j) {
      double u = a.scale * ((double)(j0 + j) - t);
      double w = a.cubic ? cubic_kernel(u, a.cubic_a) : std::max(0.0, 1 - std::abs(u));
      int64_t i = (int64_t)x0 + j0 + j;
      if (a.exclude_outside && (i < 0 || i >= a.in)) w = 0;
      idx[(size_t)(o * taps + j)] = std::clamp<int64_t>(i, 0, a.in - 1);
      wt[(size_t)(o * taps + j)] = w;
      sum += w;
    }
    for (int64_t j = 0; j < taps; ++j) wt[(size_t)(o * taps + j)] = sum != 0 ? wt[(size_t)(o * taps + j)] / sum : 0;
  }
  const float* px = x.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for schedule(static) if (outer * a.out * inner * taps > 65536)
  for (int64_t u = 0; u < outer; ++u)
    for (int64_t o = 0; o < a.out; ++o)
      for (int64_t v = 0; v < inner; ++v) {
        double acc = 0;
        if (!ext[(size_t)o])
          for (int64_t j = 0; j < taps; ++j)
            acc += wt[(size_t)(o * taps + j)] * px[(u * a.in + idx[(size_t)(o * taps + j)]) * inner + v];
        py[(u * a.out + o) * inner + v] = ext[(size_t)o] ? (float)a.extrapolation : (float)acc;
      }
  return y;
}

// Resamples axis `d` of x (float) into a new tensor.
Tensor resize_axis(const Tensor& x, int d, const ResizeAxis& a) {
  Shape os = x.shape();
  os[d] = a.out;
  Tensor y(DType::Float32, os);
  if (y.numel() == 0) return y;  // however long the axis: nothing to compute (fuzz finding: a 2^60 loop)
  if (a.antialias && (a.linear || a.cubic) && a.scale < 1) return resize_axis_antialias(x, d, a, std::move(y));
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= x.dim(i);
  for (int i = d + 1; i < x.rank(); ++i) inner *= x.dim(i);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  if (!a.cubic && fast_kernels_enabled()) {
    // Nearest and linear: the taps of every output position first, then one pass in memory order (the same
    // arithmetic per element as the loop below, which walks the output column by column).
    std::vector<int64_t> t0((size_t)a.out), t1((size_t)a.out);
    std::vector<double> tw((size_t)a.out);
    std::vector<char> tx((size_t)a.out);
    for (int64_t o = 0; o < a.out; ++o) {
      double xo = source_coord(a, o);
      tx[(size_t)o] = std::isnan(xo);
      if (tx[(size_t)o]) continue;
      if (a.linear) {
        double f = std::floor(xo);
        tw[(size_t)o] = xo - f;
        t0[(size_t)o] = std::clamp<int64_t>((int64_t)f, 0, a.in - 1);
        t1[(size_t)o] = std::clamp<int64_t>((int64_t)f + 1, 0, a.in - 1);
      } else {
        t0[(size_t)o] = t1[(size_t)o] = nearest_index(a, xo);
      }
    }
    const float ext = (float)a.extrapolation;
    if (inner == 1) {  // the last axis: a gather per output row
#pragma omp parallel for schedule(static) if (outer * a.out > 65536)
      for (int64_t u = 0; u < outer; ++u) {
        const float* src = px + u * a.in;
        float* dst = py + u * a.out;
        for (int64_t o = 0; o < a.out; ++o) {
          size_t k = (size_t)o;
          if (tx[k]) dst[o] = ext;
          else if (a.linear) dst[o] = (float)(src[t0[k]] * (1 - tw[k]) + src[t1[k]] * tw[k]);
          else dst[o] = src[t0[k]];
        }
      }
      return y;
    }
#pragma omp parallel for schedule(static) if (outer * a.out * inner > 65536)
    for (int64_t u = 0; u < outer; ++u)
      for (int64_t o = 0; o < a.out; ++o) {
        float* dst = py + (u * a.out + o) * inner;
        if (tx[(size_t)o]) {
          std::fill(dst, dst + inner, ext);
          continue;
        }
        const float* s0 = px + (u * a.in + t0[(size_t)o]) * inner;
        const float* s1 = px + (u * a.in + t1[(size_t)o]) * inner;
        if (a.linear) {
          double w = tw[(size_t)o];
          for (int64_t v = 0; v < inner; ++v) dst[v] = (float)(s0[v] * (1 - w) + s1[v] * w);
        } else {
          std::copy(s0, s0 + inner, dst);
        }
      }
    return y;
  }
  for (int64_t o = 0; o < a.out; ++o) {
    double xo = source_coord(a, o);
    int64_t i0 = 0, i1 = 0;
    double w = 0;
    bool extrap = std::isnan(xo);
    if (!extrap) {
      if (a.linear) {
        double f = std::floor(xo);
        w = xo - f;
        i0 = std::clamp<int64_t>((int64_t)f, 0, a.in - 1);
        i1 = std::clamp<int64_t>((int64_t)f + 1, 0, a.in - 1);
      } else {
        i0 = i1 = nearest_index(a, xo);
      }
    }
    if (a.cubic && !extrap) {
      // Keys cubic convolution over taps floor(x)-1 .. floor(x)+2, edges clamped (the ONNX reference pads with edge
      // values); exclude_outside drops taps outside the input and renormalises.
      double f = std::floor(xo), t = xo - f;
      double w[4], wsum = 0;
      int64_t idx[4];
      for (int k = 0; k < 4; ++k) {
        int64_t i = (int64_t)f - 1 + k;
        w[k] = cubic_kernel(t - (k - 1), a.cubic_a);
        if (a.exclude_outside && (i < 0 || i >= a.in)) w[k] = 0;
        wsum += w[k];
        idx[k] = std::clamp<int64_t>(i, 0, a.in - 1);
      }
      if (a.exclude_outside && wsum != 0)
        for (double& wk : w) wk /= wsum;
      for (int64_t u = 0; u < outer; ++u)
        for (int64_t v = 0; v < inner; ++v) {
          double acc = 0;
          for (int k = 0; k < 4; ++k) acc += w[k] * px[(u * a.in + idx[k]) * inner + v];
          py[(u * a.out + o) * inner + v] = (float)acc;
        }
      continue;
    }
    for (int64_t u = 0; u < outer; ++u)
      for (int64_t v = 0; v < inner; ++v) {
        float* dst = py + (u * a.out + o) * inner + v;
        if (extrap) {
          *dst = (float)a.extrapolation;
          continue;
        }
        float v0 = px[(u * a.in + i0) * inner + v], v1 = px[(u * a.in + i1) * inner + v];
        *dst = a.linear ? (float)(v0 * (1 - w) + v1 * w) : v0;
      }
  }
  return y;
}

Outs op_Resize(const OpContext& c) {
  Tensor x = as_f32(c.in(0), c);
  int r = x.rank();
  std::string mode = c.node.attr_string("mode", "nearest");
  if (mode != "nearest" && mode != "linear" && mode != "cubic")
    fail(c.where(), ": unknown Resize mode '", mode, "'");
  ResizeAxis base;
  base.linear = mode == "linear";
  base.cubic = mode == "cubic";
  base.cubic_a = c.node.attr_float("cubic_coeff_a", -0.75f);
  base.exclude_outside = c.node.attr_int("exclude_outside", 0) != 0;
  base.antialias = c.node.attr_int("antialias", 0) != 0;
  base.ctm = c.node.attr_string("coordinate_transformation_mode", "half_pixel");
  base.nearest_mode = c.node.attr_string("nearest_mode", "round_prefer_floor");
  base.extrapolation = c.node.attr_float("extrapolation_value", 0.f);
  std::string policy = c.node.attr_string("keep_aspect_ratio_policy", "stretch");
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    fail(c.where(), ": unknown keep_aspect_ratio_policy '", policy, "' (stretch, not_larger or not_smaller)");
  std::vector<double> roi, scales;
  std::vector<int64_t> sizes;
  if (c.opset >= 11) {
    if (c.has(1) && c.in(1).numel()) roi = c.in(1).to_f64();
    if (c.has(2) && c.in(2).numel()) scales = c.in(2).to_f64();
    if (c.has(3) && c.in(3).numel()) sizes = c.in(3).to_i64();
  } else {
    scales = c.in(1).to_f64();
    if (base.ctm == "half_pixel" && !c.node.has_attr("coordinate_transformation_mode")) base.ctm = "asymmetric";
  }
  check(!scales.empty() || !sizes.empty(), c.where(), ": Resize needs scales or sizes");
  // opset 18 `axes`: scales, sizes and roi name only these axes (the others keep their size).
  std::vector<int64_t> axes;
  if (c.node.has_attr("axes")) {
    for (int64_t v : c.node.attr_ints("axes")) {
      int64_t d = norm_axis(v, r, c);
      check(std::find(axes.begin(), axes.end(), d) == axes.end(), c.where(), ": axis ", d, " is repeated in axes");
      axes.push_back(d);
    }
  } else {
    for (int d = 0; d < r; ++d) axes.push_back(d);
  }
  const size_t na = axes.size();
  check(scales.empty() || scales.size() == na, c.where(), ": scales has ", scales.size(), " values for ", na,
        c.node.has_attr("axes") ? " axes" : std::string(" axes (rank ") + std::to_string(r) + ")");
  check(sizes.empty() || sizes.size() == na, c.where(), ": sizes has ", sizes.size(), " values for ", na,
        c.node.has_attr("axes") ? " axes" : std::string(" axes (rank ") + std::to_string(r) + ")");
  // keep_aspect_ratio_policy (sizes only): one scale for every listed axis, the smallest (not_larger) or largest
  // (not_smaller) of sizes[i] / in[i]; each output size is then that scale times the input size, rounded half up.
  double common = 0;
  if (!sizes.empty() && policy != "stretch") {
    for (size_t i = 0; i < na; ++i) {
      check(x.dim((int)axes[i]) > 0, c.where(), ": keep_aspect_ratio_policy needs non-empty axes");
      double s = (double)sizes[i] / (double)x.dim((int)axes[i]);
      common = i == 0 ? s : policy == "not_larger" ? std::min(common, s) : std::max(common, s);
    }
  }
  Tensor cur = x;
  for (size_t i = 0; i < na; ++i) {
    int d = (int)axes[i];
    ResizeAxis a = base;
    a.in = x.dim(d);
    if (!sizes.empty() && policy != "stretch") {
      a.scale = common;
      a.out_len = common * (double)a.in;
      check(a.out_len < 9.0e18, c.where(), ": axis ", d, " would be larger than int64 can count");
      a.out = (int64_t)(a.out_len + 0.5);
    } else if (!sizes.empty()) {
      a.out = sizes[i];
      a.scale = (double)a.out / (double)a.in;
      a.out_len = (double)a.out;
    } else {
      a.scale = scales[i];
      check(a.scale > 0, c.where(), ": scales must be positive");
      a.out_len = a.in * a.scale;
      check(a.out_len < 9.0e18, c.where(), ": scales ", a.scale, " makes axis ", d, " of size ", a.in,
            " larger than int64 can count");
      a.out = (int64_t)std::floor(a.out_len);
    }
    if (roi.size() == 2 * na) {  // starts then ends, one per listed axis
      a.roi_start = roi[i];
      a.roi_end = roi[i + na];
    }
    check(a.out >= 0, c.where(), ": output size ", a.out, " of axis ", d, " is negative");
    if (a.out == a.in && a.scale == 1.0 && a.ctm != "tf_crop_and_resize") continue;
    Shape next = cur.shape();
    next[d] = a.out;
    check_allocation(DType::Float32, next);  // before the per-axis tables, which are as long as the output axis
    cur = resize_axis(cur, d, a);
  }
  return {cur.cast(c.in(0).dtype())};
}

}  // namespace

void register_nn_ops(OpRegistry& r) {
  r.add({"Conv", "", 1, op_Conv});
  r.add({"ConvTranspose", "", 1, op_ConvTranspose});
  r.add({"MaxPool", "", 1, op_pool<true>});
  r.add({"AveragePool", "", 1, op_pool<false>});
  r.add({"GlobalAveragePool", "", 1, op_global_pool<false>});
  r.add({"GlobalMaxPool", "", 1, op_global_pool<true>});
  r.add({"BatchNormalization", "", 7, op_BatchNormalization});
  r.add({"LayerNormalization", "", 17, op_LayerNormalization});
  r.add({"InstanceNormalization", "", 6, op_InstanceNormalization});
  r.add({"Resize", "", 10, op_Resize});
}

}  // namespace lowbit
