// Kernels against plain-loop references: BLAS/im2col conv vs direct conv, depthwise path, pools, GEMM.
#include <gtest/gtest.h>

#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kernels/pool.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

namespace {
// Direct 2-D convolution, the specification the optimized paths are checked against.
std::vector<float> conv_ref(const ConvGeom& g, const float* x, const float* w, const float* b) {
  int64_t OH = g.out[0], OW = g.out[1], Cg = g.in_ch / g.group, Mg = g.out_ch / g.group;
  std::vector<float> y((size_t)(g.batch * g.out_ch * OH * OW));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t m = 0; m < g.out_ch; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b ? b[m] : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < g.kernel[0]; ++kh)
              for (int64_t kw = 0; kw < g.kernel[1]; ++kw) {
                int64_t ih = oh * g.stride[0] - g.pad_begin[0] + kh * g.dilation[0];
                int64_t iw = ow * g.stride[1] - g.pad_begin[1] + kw * g.dilation[1];
                if (ih < 0 || iw < 0 || ih >= g.in[0] || iw >= g.in[1]) continue;
                int64_t ci = (m / Mg) * Cg + c;
                acc += (double)x[((n * g.in_ch + ci) * g.in[0] + ih) * g.in[1] + iw] *
                       w[((m * Cg + c) * g.kernel[0] + kh) * g.kernel[1] + kw];
              }
          y[((n * g.out_ch + m) * OH + oh) * OW + ow] = (float)acc;
        }
  return y;
}

struct ConvCase {
  int64_t n, c, m, group, h, w, k, stride, pad, dil;
};
}  // namespace

class ConvSweep : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvSweep, MatchesDirectReference) {
  auto p = GetParam();
  ConvGeom g;
  g.batch = p.n, g.in_ch = p.c, g.out_ch = p.m, g.group = p.group;
  g.in = {p.h, p.w};
  g.kernel = {p.k, p.k};
  g.stride = {p.stride, p.stride};
  g.dilation = {p.dil, p.dil};
  g.pad_begin = {p.pad, p.pad};
  g.pad_end = {p.pad, p.pad};
  resolve_auto_pad("NOTSET", g);
  Tensor x = random_tensor({p.n, p.c, p.h, p.w}, 1), w = random_tensor({p.m, p.c / p.group, p.k, p.k}, 2),
         b = random_tensor({p.m}, 3);
  std::vector<float> y((size_t)(p.n * p.m * g.out_size()));
  conv_f32(g, x.data<float>(), w.data<float>(), b.data<float>(), y.data());
  auto ref = conv_ref(g, x.data<float>(), w.data<float>(), b.data<float>());
  ASSERT_EQ(y.size(), ref.size());
  // BLAS sums in a different order than the reference: allow float rounding of a K-term dot product.
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5 * (p.c / p.group * p.k * p.k)) << i;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvSweep,
                         ::testing::Values(ConvCase{1, 3, 8, 1, 7, 9, 3, 1, 1, 1}, ConvCase{2, 4, 6, 2, 8, 8, 3, 2, 1, 1},
                                           ConvCase{1, 8, 8, 8, 9, 9, 3, 1, 1, 1},   // depthwise
                                           ConvCase{1, 8, 16, 8, 9, 9, 3, 2, 0, 1},  // depthwise, multiplier 2
                                           ConvCase{1, 5, 7, 1, 6, 6, 1, 1, 0, 1},   // pointwise (no im2col)
                                           ConvCase{1, 3, 4, 1, 10, 10, 3, 1, 2, 2}, // dilated
                                           ConvCase{2, 6, 6, 3, 5, 7, 5, 3, 2, 1},
                                           ConvCase{3, 64, 4, 1, 128, 128, 3, 1, 1, 1}),  // > 32 MiB of columns: one image per chunk
                         [](const ::testing::TestParamInfo<ConvCase>& i) {
                           auto& p = i.param;
                           return "n" + std::to_string(p.n) + "c" + std::to_string(p.c) + "m" + std::to_string(p.m) + "g" +
                                  std::to_string(p.group) + "k" + std::to_string(p.k) + "s" + std::to_string(p.stride) +
                                  "p" + std::to_string(p.pad) + "d" + std::to_string(p.dil);
                         });

TEST(Gemm, Int32ReferenceWithZeroPoints) {
  std::vector<uint8_t> a = {10, 20, 30, 40};  // 2x2
  std::vector<int8_t> b = {1, -2, 3, 4};       // 2x2
  std::vector<int32_t> zb = {1, -1};
  std::vector<int32_t> c(4);
  gemm_int32<uint8_t, int8_t>(2, 2, 2, a.data(), 10, b.data(), zb.data(), true, c.data());
  // (a - 10) = [[0,10],[20,30]], (b - zb) = [[0,-1],[2,5]]
  EXPECT_EQ(c, (std::vector<int32_t>{20, 50, 60, 130}));
}

TEST(Pool, MaxAndAverageWithPadding) {
  ConvGeom g;
  g.batch = 1, g.in_ch = 1, g.out_ch = 1;
  g.in = {3, 3};
  g.kernel = {2, 2};
  g.stride = {1, 1};
  g.dilation = {1, 1};
  g.pad_begin = {1, 1};
  g.pad_end = {0, 0};
  resolve_auto_pad("NOTSET", g);
  ASSERT_EQ(g.out, (std::vector<int64_t>{3, 3}));
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y(9), a(9), ai(9);
  max_pool_f32(g, x.data(), y.data(), nullptr, 0);
  EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  avg_pool_f32(g, x.data(), a.data(), false);
  EXPECT_FLOAT_EQ(a[0], 1.f);  // only x[0,0] is inside
  EXPECT_FLOAT_EQ(a[4], 3.f);  // (1+2+4+5)/4
  avg_pool_f32(g, x.data(), ai.data(), true);
  EXPECT_FLOAT_EQ(ai[0], 0.25f);  // padding counts
}
