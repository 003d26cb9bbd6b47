// Convolution kernels. Float conv lowers each (image, group) to im2col + one BLAS sgemm; depthwise 2-D convs
// (one input channel per group) use a direct loop, which is faster than tiny GEMMs.
#include "kernels/conv.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/int_gemm.h"

namespace lowbit {

static int64_t prod(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (auto x : v) p *= x;
  return p;
}
int64_t ConvGeom::in_size() const { return prod(in); }
int64_t ConvGeom::out_size() const { return prod(out); }
int64_t ConvGeom::kernel_size() const { return prod(kernel); }

int64_t conv_out_dim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil_mode) {
  int64_t span = (k - 1) * d + 1;
  int64_t num = in + pb + pe - span;
  if (num < 0) return 0;
  int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
  // A window may not start inside the right padding only (PyTorch / ONNX rule for ceil mode).
  if (ceil_mode && (o - 1) * s >= in + pb) --o;
  return o;
}

void resolve_auto_pad(const std::string& ap, ConvGeom& g, bool ceil_mode) {
  size_t r = g.in.size();
  g.out.assign(r, 0);
  g.pad_begin.resize(r, 0);
  g.pad_end.resize(r, 0);
  for (size_t i = 0; i < r; ++i) {
    int64_t span = (g.kernel[i] - 1) * g.dilation[i] + 1;
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      int64_t o = (g.in[i] + g.stride[i] - 1) / g.stride[i];
      int64_t total = std::max<int64_t>(0, (o - 1) * g.stride[i] + span - g.in[i]);
      g.pad_begin[i] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pad_end[i] = total - g.pad_begin[i];
      g.out[i] = o;
    } else {
      if (ap == "VALID") g.pad_begin[i] = g.pad_end[i] = 0;
      else check(ap == "NOTSET" || ap.empty(), "unknown auto_pad '", ap, "'");
      g.out[i] = conv_out_dim(g.in[i], g.kernel[i], g.stride[i], g.dilation[i], g.pad_begin[i], g.pad_end[i], ceil_mode);
    }
  }
}

namespace {

// For each kernel tap k and output position p: the input offset (within one channel) that the tap reads, or
// -1 where it falls into padding. [K * P] entries, shared by im2col, col2im and the integer convolution.
std::vector<int64_t> tap_table(const ConvGeom& g) {
  int64_t K = g.kernel_size(), P = g.out_size();
  size_t r = g.in.size();
  std::vector<int64_t> t((size_t)(K * P));
  std::vector<int64_t> kc(r, 0);
  for (int64_t k = 0; k < K; ++k) {
    std::vector<int64_t> oc(r, 0);
    for (int64_t p = 0; p < P; ++p) {
      int64_t idx = 0;
      bool inside = true;
      for (size_t d = 0; d < r; ++d) {
        int64_t ic = oc[d] * g.stride[d] - g.pad_begin[d] + kc[d] * g.dilation[d];
        if (ic < 0 || ic >= g.in[d]) inside = false;
        idx = idx * g.in[d] + ic;
      }
      t[(size_t)(k * P + p)] = inside ? idx : -1;
      for (int64_t d = (int64_t)r - 1; d >= 0; --d) {
        if (++oc[d] < g.out[d]) break;
        oc[d] = 0;
      }
    }
    for (int64_t d = (int64_t)r - 1; d >= 0; --d) {
      if (++kc[d] < g.kernel[d]) break;
      kc[d] = 0;
    }
  }
  return t;
}

// Fills col[(c * K + k) * P + p] with the input value seen by kernel tap k at output position p (0 in pads).
// Rows of col are `ld` floats apart (ld >= P), so several images can be lowered side by side.
void im2col(const ConvGeom& g, const float* x, int64_t C, float* col, int64_t ld) {
  int64_t K = g.kernel_size(), P = g.out_size(), S = g.in_size();
  size_t r = g.in.size();
  if (r == 2) {
    int64_t IH = g.in[0], IW = g.in[1], KH = g.kernel[0], KW = g.kernel[1], OH = g.out[0], OW = g.out[1];
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
          float* dst = col + ((c * KH + kh) * KW + kw) * ld;
          const float* src = x + c * S;
          for (int64_t oh = 0; oh < OH; ++oh) {
            int64_t ih = oh * g.stride[0] - g.pad_begin[0] + kh * g.dilation[0];
            float* d = dst + oh * OW;
            if (ih < 0 || ih >= IH) {
              std::fill(d, d + OW, 0.f);
              continue;
            }
            for (int64_t ow = 0; ow < OW; ++ow) {
              int64_t iw = ow * g.stride[1] - g.pad_begin[1] + kw * g.dilation[1];
              d[ow] = (iw >= 0 && iw < IW) ? src[ih * IW + iw] : 0.f;
            }
          }
        }
    return;
  }
  // Generic N-d path.
  std::vector<int64_t> taps = tap_table(g);
#pragma omp parallel for schedule(static)
  for (int64_t ck = 0; ck < C * K; ++ck) {
    const int64_t* off = taps.data() + (ck % K) * P;
    const float* src = x + (ck / K) * S;
    float* dst = col + ck * ld;
    for (int64_t p = 0; p < P; ++p) dst[p] = off[p] >= 0 ? src[off[p]] : 0.f;
  }
}

// Adds col back into the image (the adjoint of im2col), for transposed convolution.
void col2im(const ConvGeom& g, const float* col, int64_t C, float* x) {
  int64_t K = g.kernel_size(), P = g.out_size(), S = g.in_size();
  std::vector<int64_t> taps = tap_table(g);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t* off = taps.data() + k * P;
      const float* src = col + (c * K + k) * P;
      for (int64_t p = 0; p < P; ++p)
        if (off[p] >= 0) x[c * S + off[p]] += src[p];
    }
}

void depthwise2d(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y) {
  int64_t IH = g.in[0], IW = g.in[1], KH = g.kernel[0], KW = g.kernel[1], OH = g.out[0], OW = g.out[1];
  int64_t mult = g.out_ch / g.group;
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t m = 0; m < g.out_ch; ++m) {
      const float* src = x + (n * g.in_ch + m / mult) * IH * IW;
      const float* wk = w + m * KH * KW;
      float* dst = y + (n * g.out_ch + m) * OH * OW;
      float b = bias ? bias[m] : 0.f;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          float acc = 0.f;
          for (int64_t kh = 0; kh < KH; ++kh) {
            int64_t ih = oh * g.stride[0] - g.pad_begin[0] + kh * g.dilation[0];
            if (ih < 0 || ih >= IH) continue;
            for (int64_t kw = 0; kw < KW; ++kw) {
              int64_t iw = ow * g.stride[1] - g.pad_begin[1] + kw * g.dilation[1];
              if (iw >= 0 && iw < IW) acc += src[ih * IW + iw] * wk[kh * KW + kw];
            }
          }
          dst[oh * OW + ow] = acc + b;
        }
    }
}

bool is_pointwise(const ConvGeom& g) {
  for (size_t d = 0; d < g.in.size(); ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad_begin[d] != 0 || g.pad_end[d] != 0) return false;
  return true;
}

}  // namespace

void conv_f32(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y) {
  int64_t Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  int64_t K = g.kernel_size(), P = g.out_size(), S = g.in_size();
  if (g.in.size() == 2 && Cg == 1 && g.group > 1) {
    depthwise2d(g, x, w, bias, y);
    return;
  }
  // Images are lowered `chunk` at a time into one [Cg*K, chunk*P] matrix so that small feature maps still
  // make one reasonably sized GEMM; the column buffer stays under ~32 MiB.
  const int64_t budget = (int64_t)8 << 20;  // floats
  int64_t chunk = std::clamp<int64_t>(budget / std::max<int64_t>(Cg * K * P, 1), 1, g.batch);
  int64_t ld = chunk * P;
  std::vector<float> col((size_t)(Cg * K * ld)), out((size_t)(Mg * ld));
  for (int64_t n0 = 0; n0 < g.batch; n0 += chunk) {
    int64_t nb = std::min(chunk, g.batch - n0), cols = nb * P;
    for (int64_t gr = 0; gr < g.group; ++gr) {
      for (int64_t i = 0; i < nb; ++i) {
        const float* xin = x + ((n0 + i) * g.in_ch + gr * Cg) * S;
        if (is_pointwise(g)) {
          for (int64_t c = 0; c < Cg; ++c) std::copy(xin + c * S, xin + (c + 1) * S, col.data() + c * cols + i * P);
        } else {
          im2col(g, xin, Cg, col.data() + i * P, cols);
        }
      }
      sgemm(false, false, Mg, cols, Cg * K, 1.f, w + gr * Mg * Cg * K, Cg * K, col.data(), cols, 0.f, out.data(), cols);
      // Scatter [Mg, nb, P] back to [nb, Mg, P] in y, adding the bias.
#pragma omp parallel for schedule(static) collapse(2) if (Mg * cols > 65536)
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t m = 0; m < Mg; ++m) {
          float b = bias ? bias[gr * Mg + m] : 0.f;
          const float* src = out.data() + m * cols + i * P;
          float* dst = y + ((n0 + i) * g.out_ch + gr * Mg + m) * P;
          for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + b;
        }
    }
  }
}

void conv_transpose_f32(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y) {
  // Roles swap: the "image" of im2col is the output y, the columns come from W^T x.
  ConvGeom t = g;
  t.in = g.out;
  t.out = g.in;
  int64_t Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  int64_t K = g.kernel_size(), P = g.in_size(), S = g.out_size();
  std::vector<float> col((size_t)(Mg * K * P));
  std::fill(y, y + g.batch * g.out_ch * S, 0.f);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t gr = 0; gr < g.group; ++gr) {
      const float* xin = x + (n * g.in_ch + gr * Cg) * P;
      // w group slice: [Cg, Mg*K]; col = w^T [Mg*K, Cg] * x [Cg, P]
      sgemm(true, false, Mg * K, P, Cg, 1.f, w + gr * Cg * Mg * K, Mg * K, xin, P, 0.f, col.data(), P);
      col2im(t, col.data(), Mg, y + (n * g.out_ch + gr * Mg) * S);
    }
  if (bias)
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t m = 0; m < g.out_ch; ++m)
        for (int64_t p = 0; p < S; ++p) y[(n * g.out_ch + m) * S + p] += bias[m];
}

// The fast path of conv_int32: per image and group, the centred weights [Mg, Cg * K] times the centred im2col
// columns [Cg * K, P] through kernels/int_gemm.h, in chunks of output positions (the packed columns stay small).
// Integer sums: the same bits as the loops below.
template <typename TX, typename TW>
void conv_int32_gemm(const ConvGeom& g, const TX* x, int32_t zx, const TW* w, const int32_t* zw, bool per_ch,
                     int32_t* y) {
  const int64_t Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  const int64_t K = g.kernel_size(), P = g.out_size(), S = g.in_size(), KK = Cg * K;
  const std::vector<int64_t> taps = tap_table(g);
  std::vector<PackedA> A;
  for (int64_t gr = 0; gr < g.group; ++gr) {
    A.push_back(make_packed_a(Mg, KK));
    for (int64_t m = 0; m < Mg; ++m) {
      int64_t oc = gr * Mg + m;
      int32_t wz = zw[per_ch ? oc : 0];
      int16_t* row = A.back().row(m);
      for (int64_t i = 0; i < KK; ++i) row[i] = (int16_t)((int32_t)w[oc * KK + i] - wz);
    }
  }
  const int64_t chunk = std::min<int64_t>(P, 64 * kIntPanel);
  PackedB B = make_packed_b(KK, chunk);  // padding (k = KK when KK is odd) stays zero; columns past N are not stored
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t gr = 0; gr < g.group; ++gr)
      for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        const int64_t nc = std::min(chunk, P - p0);
        B.N = nc;
        B.panels = (nc + kIntPanel - 1) / kIntPanel;
#pragma omp parallel for schedule(static) if (KK * nc > 65536)
        for (int64_t kk = 0; kk < KK; ++kk) {
          const TX* src = x + (n * g.in_ch + gr * Cg + kk / K) * S;
          const int64_t* off = taps.data() + (kk % K) * P + p0;
          for (int64_t j = 0; j < B.panels; ++j) {  // panel j's slots for row kk: every second int16 (set_b's layout)
            int16_t* dst = B.at(j, kk / 2) + kk % 2;
            const int64_t c_end = std::min<int64_t>(kIntPanel, nc - j * kIntPanel);
            const int64_t* o = off + j * kIntPanel;
            for (int64_t c = 0; c < c_end; ++c)  // padding holds the real 0, i.e. the code zx: (zx - zx) = 0
              dst[2 * c] = o[c] >= 0 ? (int16_t)((int32_t)src[o[c]] - zx) : (int16_t)0;
          }
        }
        gemm_s16_packed(A[(size_t)gr], B, y + (n * g.out_ch + gr * Mg) * P + p0, P);
      }
}

// The fast path of conv_int32 for thin 2-D groups (depthwise), per output plane (image n, channel m). Each input
// channel is first written centred (x - zx) into a zero-padded plane split into stride phases: phase (rh, rw) holds
// the padded rows rh, rh + sh, ... and columns rw, rw + sw, ..., each Wq = ceil(Wp / sw) wide. A tap (kh, kw) then
// reads phase ((kh dh) % sh, (kw dw) % sw) at offset ((kh dh) / sh, (kw dw) / sw), and for all outputs at once as one
// run over a "wide" output of OH rows of Wq columns (the columns past OW are dropped at the end): long unit-stride
// loops without bounds, branches or tails, which the compiler vectorises. Padding holds the centred 0 (the code zx),
// as in the loops below; wrapping int32 sums: the same bits in any order.
struct Direct2dScratch {
  std::vector<uint32_t> phases, wide;
};

template <typename TX, typename TW>
inline __attribute__((always_inline)) void direct_2d_plane(const ConvGeom& g, const TX* x, int32_t zx, const TW* w,
                                                           const int32_t* zw, bool per_ch, int32_t* y, int64_t n,
                                                           int64_t m, Direct2dScratch& sc) {
  const int64_t Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  const int64_t H = g.in[0], W = g.in[1], KH = g.kernel[0], KW = g.kernel[1], OH = g.out[0], OW = g.out[1];
  const int64_t sh = g.stride[0], sw = g.stride[1], dh = g.dilation[0], dw = g.dilation[1];
  const int64_t ph = g.pad_begin[0], pw = g.pad_begin[1];
  const int64_t Hp = H + ph + g.pad_end[0], Wp = W + pw + g.pad_end[1];
  const int64_t Hq = (Hp + sh - 1) / sh, Wq = (Wp + sw - 1) / sw, phase_size = Hq * Wq + Wq;  // + slack for taps
  const int64_t wide_n = OH * Wq;
  sc.phases.resize((size_t)(sh * sw * phase_size));
  sc.wide.assign((size_t)wide_n, 0u);
  uint32_t* wide = sc.wide.data();
  const int64_t gr = m / Mg;
  const int32_t wz = zw[per_ch ? m : 0];
  for (int64_t c = 0; c < Cg; ++c) {
    const TX* plane = x + (n * g.in_ch + gr * Cg + c) * H * W;
    const TW* wk = w + (m * Cg + c) * KH * KW;
    std::fill(sc.phases.begin(), sc.phases.end(), 0u);
    for (int64_t ih = 0; ih < H; ++ih) {
      const int64_t pr = ih + ph;
      const TX* src = plane + ih * W;
      if (sw == 1) {
        uint32_t* dst = sc.phases.data() + (pr % sh) * phase_size + (pr / sh) * Wq + pw;
#pragma omp simd
        for (int64_t iw = 0; iw < W; ++iw) dst[iw] = (uint32_t)((int32_t)src[iw] - zx);
      } else {
        for (int64_t rw = 0; rw < sw; ++rw) {  // padded columns rw, rw + sw, ...: input columns iw0, iw0 + sw, ...
          const int64_t iw0 = ((rw - pw) % sw + sw) % sw, j0 = (iw0 + pw) / sw;
          uint32_t* dst = sc.phases.data() + ((pr % sh) * sw + rw) * phase_size + (pr / sh) * Wq + j0;
          const int64_t count = iw0 < W ? (W - 1 - iw0) / sw + 1 : 0;
          for (int64_t t = 0; t < count; ++t) dst[t] = (uint32_t)((int32_t)src[iw0 + t * sw] - zx);
        }
      }
    }
    for (int64_t kh = 0; kh < KH; ++kh)
      for (int64_t kw = 0; kw < KW; ++kw) {
        const auto wv = (uint32_t)((int32_t)wk[kh * KW + kw] - wz);
        const int64_t rh = kh * dh % sh, rw = kw * dw % sw;
        const uint32_t* q = sc.phases.data() + (rh * sw + rw) * phase_size + (kh * dh / sh) * Wq + kw * dw / sw;
        // q and wide are distinct buffers: simd tells GCC so.
#pragma omp simd
        for (int64_t i = 0; i < wide_n; ++i) wide[i] += q[i] * wv;
      }
  }
  int32_t* out = y + (n * g.out_ch + m) * OH * OW;
  for (int64_t oh = 0; oh < OH; ++oh) std::memcpy(out + oh * OW, wide + oh * Wq, (size_t)OW * sizeof(int32_t));
}

// The plane compiled per instruction set (integer operations only: every version gives the same bits). The thread
// loop stays outside them: GCC outlines an OpenMP region before inlining, so a loop inside would lose the target.
template <typename TX, typename TW>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void direct_2d_plane_avx512(const ConvGeom& g, const TX* x,
                                                                                 int32_t zx, const TW* w,
                                                                                 const int32_t* zw, bool per_ch,
                                                                                 int32_t* y, int64_t n, int64_t m,
                                                                                 Direct2dScratch& sc) {
  direct_2d_plane(g, x, zx, w, zw, per_ch, y, n, m, sc);
}
template <typename TX, typename TW>
__attribute__((target("avx2"))) void direct_2d_plane_avx2(const ConvGeom& g, const TX* x, int32_t zx, const TW* w,
                                                          const int32_t* zw, bool per_ch, int32_t* y, int64_t n,
                                                          int64_t m, Direct2dScratch& sc) {
  direct_2d_plane(g, x, zx, w, zw, per_ch, y, n, m, sc);
}
template <typename TX, typename TW>
void direct_2d_plane_base(const ConvGeom& g, const TX* x, int32_t zx, const TW* w, const int32_t* zw, bool per_ch,
                          int32_t* y, int64_t n, int64_t m, Direct2dScratch& sc) {
  direct_2d_plane(g, x, zx, w, zw, per_ch, y, n, m, sc);
}

template <typename TX, typename TW>
void conv_int32_direct_2d(const ConvGeom& g, const TX* x, int32_t zx, const TW* w, const int32_t* zw, bool per_ch,
                          int32_t* y) {
  const IntIsa isa = int_gemm_isa();  // as kernels/int_gemm.h picks its kernels (LOWBIT_INT_ISA caps it)
  auto plane = isa == IntIsa::Avx512Vnni ? direct_2d_plane_avx512<TX, TW>
               : isa == IntIsa::Avx2     ? direct_2d_plane_avx2<TX, TW>
                                         : direct_2d_plane_base<TX, TW>;
  const int64_t work = g.batch * g.out_ch * g.out_size() * (g.in_ch / g.group) * g.kernel_size();
#pragma omp parallel if (work > 65536)
  {
    Direct2dScratch sc;  // one a thread, reused across its planes
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t m = 0; m < g.out_ch; ++m) plane(g, x, zx, w, zw, per_ch, y, n, m, sc);
  }
}

template <typename TX, typename TW>
void conv_int32(const ConvGeom& g, const TX* x, int32_t zx, const TW* w, const int32_t* zw, bool per_ch, int32_t* y) {
  // Depthwise and other thin groups (under 4 output channels or 16 taps per group) run direct loops, which beat
  // packing a GEMM with one row per group: 2-D ones the phase planes above, others the plain loops below.
  const bool thin = g.out_ch / g.group < 4 || (g.in_ch / g.group) * g.kernel_size() < 16;
  const bool fast = fast_kernels_enabled() && g.out_size() > 0 && g.kernel_size() > 0;
  if (fast && !thin && centred_codes_fit(zx, zw, per_ch ? g.out_ch : 1))
    return conv_int32_gemm(g, x, zx, w, zw, per_ch, y);
  if (fast && thin && g.in.size() == 2 && g.pad_begin[0] >= 0 && g.pad_begin[1] >= 0 && g.pad_end[0] >= 0 &&
      g.pad_end[1] >= 0)
    return conv_int32_direct_2d(g, x, zx, w, zw, per_ch, y);
  int64_t Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  int64_t K = g.kernel_size(), P = g.out_size(), S = g.in_size();
  std::vector<int64_t> taps = tap_table(g);
  for (int64_t n = 0; n < g.batch; ++n)
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < g.out_ch; ++m) {
      int64_t gr = m / Mg;
      int32_t wz = zw[per_ch ? m : 0];
      int32_t* out = y + (n * g.out_ch + m) * P;
      std::fill(out, out + P, 0);
      for (int64_t c = 0; c < Cg; ++c) {
        const TX* src = x + (n * g.in_ch + gr * Cg + c) * S;
        const TW* wk = w + (m * Cg + c) * K;
        for (int64_t k = 0; k < K; ++k) {
          int32_t wv = (int32_t)wk[k] - wz;
          const int64_t* off = taps.data() + k * P;
          // Padding holds the real value 0, i.e. the integer zx, which contributes (zx - zx) = 0.
          for (int64_t p = 0; p < P; ++p)
            if (off[p] >= 0)  // wraps like int32 hardware accumulators instead of overflowing (unsigned: defined)
              out[p] = (int32_t)((uint32_t)out[p] + (uint32_t)((int32_t)src[off[p]] - zx) * (uint32_t)wv);
        }
      }
    }
}

template void conv_int32<uint8_t, uint8_t>(const ConvGeom&, const uint8_t*, int32_t, const uint8_t*, const int32_t*, bool, int32_t*);
template void conv_int32<uint8_t, int8_t>(const ConvGeom&, const uint8_t*, int32_t, const int8_t*, const int32_t*, bool, int32_t*);
template void conv_int32<int8_t, uint8_t>(const ConvGeom&, const int8_t*, int32_t, const uint8_t*, const int32_t*, bool, int32_t*);
template void conv_int32<int8_t, int8_t>(const ConvGeom&, const int8_t*, int32_t, const int8_t*, const int32_t*, bool, int32_t*);

}  // namespace lowbit
