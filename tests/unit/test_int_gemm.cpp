// The fast integer kernels (kernels/int_gemm.h, and the conv_int32 / gemm_int32 paths built on them) against plain
// loops, bit for bit (XNNPACK-style testers: generated shape sweeps around every tile and panel edge). Integer sums do
// not depend on their order, so any difference is a bug, never rounding. Every kernel the CPU can run is swept
// directly; the ctest fast_kernels_avx2 runs these tests again with LOWBIT_INT_ISA=avx2, the kernel of AVX2-only
// CPUs, for the conv/gemm paths. Mutations caught: a pair's halves swapped in the packing (odd K), a tile row or
// panel column past the edge stored (M % 4, N % 32), the K padding left non-zero, the zero point subtracted from
// padding taps, a saturating accumulate (vpdpwssds) for the wrapping one.
#include <gtest/gtest.h>

#include <random>

#include "kernels/conv.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/int_gemm.h"
#include "kernels/requantize.h"
#include "ir/builder.h"
#include "runtime/executor.h"

using namespace lowbit;

namespace {

std::vector<int16_t> random_s16(size_t n, uint32_t seed, int lo = -255, int hi = 255) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int16_t> v(n);
  for (auto& x : v) x = (int16_t)d(rng);
  return v;
}

// C = A B with wrapping int32 sums, as the specification.
std::vector<int32_t> plain(int64_t M, int64_t N, int64_t K, const std::vector<int16_t>& A, const std::vector<int16_t>& B) {
  std::vector<int32_t> C((size_t)(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      uint32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += (uint32_t)((int32_t)A[(size_t)(m * K + k)] * B[(size_t)(k * N + n)]);
      C[(size_t)(m * N + n)] = (int32_t)acc;
    }
  return C;
}

std::vector<int32_t> packed(int64_t M, int64_t N, int64_t K, const std::vector<int16_t>& A, const std::vector<int16_t>& B,
                            IntIsa isa) {
  PackedA a = make_packed_a(M, K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) a.row(m)[k] = A[(size_t)(m * K + k)];
  PackedB b = make_packed_b(K, N);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) set_b(b, k, n, B[(size_t)(k * N + n)]);
  std::vector<int32_t> C((size_t)(M * N), 12345);
  gemm_s16_packed(a, b, C.data(), N, isa);
  return C;
}

std::vector<IntIsa> isas() {
  std::vector<IntIsa> v;
  for (IntIsa i : {IntIsa::Scalar, IntIsa::Avx2, IntIsa::Avx512Vnni})
    if (int_isa_supported(i)) v.push_back(i);
  return v;
}

}  // namespace

TEST(IntGemm, EveryKernelMatchesThePlainLoopOverAShapeSweep) {
  int cases = 0;
  for (IntIsa isa : isas())
    for (int64_t M : {1, 2, 3, 4, 5, 8, 13})
      for (int64_t N : {1, 7, 16, 31, 32, 33, 70})
        for (int64_t K : {1, 2, 3, 8, 31, 64, 129}) {
          SCOPED_TRACE(std::string(int_isa_name(isa)) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
                       " K=" + std::to_string(K));
          auto A = random_s16((size_t)(M * K), (uint32_t)(M * 1000 + K));
          auto B = random_s16((size_t)(K * N), (uint32_t)(N * 1000 + K + 7));
          ASSERT_EQ(packed(M, N, K, A, B, isa), plain(M, N, K, A, B));
          ++cases;
        }
  EXPECT_GE(cases, 7 * 7 * 7);
}

// Sums past 2^31 wrap as two's complement in every kernel, as in the reference loops (and as int32 accumulators
// of integer hardware do): K = 40000 products of 255 * 255 reach 2.6e9.
TEST(IntGemm, SumsWrapLikeInt32Accumulators) {
  const int64_t M = 5, N = 33, K = 40000;
  std::vector<int16_t> A((size_t)(M * K), 255), B((size_t)(K * N), 255);
  B[5] = -255;
  auto want = plain(M, N, K, A, B);
  EXPECT_LT(want[1], 0);  // really wrapped
  for (IntIsa isa : isas()) EXPECT_EQ(packed(M, N, K, A, B, isa), want) << int_isa_name(isa);
}

// conv_int32's GEMM path against its own plain loops (LOWBIT_REFERENCE_KERNELS' path), for 8-bit codes of both
// signs, per-tensor and per-channel weight zero points, groups, strides, dilations, asymmetric padding and 1-D to
// 3-D windows; and thin 2-D groups (depthwise), which take conv_int32_direct_2d's stride phases: strides, dilations,
// pads wider than the kernel reaches. Mutations caught there: a tap's phase column without the dilation, the last
// column of a strided row left out of its phase.
TEST(IntConv, GemmPathEqualsTheReferenceLoops) {
  struct Case {
    std::vector<int64_t> in, kernel, stride, dilation, pb, pe;
    int64_t batch, in_ch, out_ch, group;
  };
  std::vector<Case> cases = {
      {{9, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 2, 3, 5, 1},
      {{8, 8}, {3, 3}, {2, 2}, {1, 1}, {0, 1}, {1, 0}, 1, 8, 8, 8},   // depthwise, asymmetric pads
      {{10, 7}, {3, 3}, {1, 2}, {2, 1}, {2, 0}, {1, 1}, 2, 6, 12, 3},  // groups, dilation
      {{5, 5}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 3, 17, 33, 1}, // 1x1, odd channel counts
      {{23}, {5}, {3}, {1}, {2}, {2}, 2, 4, 7, 1},                    // 1-D
      {{4, 5, 6}, {3, 2, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1}, {0, 1, 2}, 1, 2, 8, 2},  // 3-D
      {{40, 40}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, 3, 6, 1},  // more positions than one packed chunk
      {{7, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}, 2, 6, 6, 6},    // depthwise, dilation 2, batch 2
      {{6, 5}, {3, 2}, {2, 3}, {1, 1}, {1, 0}, {0, 2}, 1, 8, 8, 4},    // thin groups (2 in, 2 out), strides 2 x 3
      {{4, 1}, {1, 1}, {1, 1}, {1, 1}, {3, 3}, {3, 3}, 1, 3, 3, 3},    // 1x1 depthwise, pads past the kernel
      {{13, 17}, {5, 5}, {2, 1}, {1, 3}, {3, 4}, {1, 5}, 1, 4, 4, 4},  // 5x5, uneven pads and dilation
  };
  std::mt19937 rng(5);
  int compared = 0;
  for (auto& cs : cases)
    for (bool signed_x : {false, true})
      for (bool per_ch : {false, true}) {
        ConvGeom g;
        g.batch = cs.batch;
        g.in_ch = cs.in_ch;
        g.out_ch = cs.out_ch;
        g.group = cs.group;
        g.in = cs.in;
        g.kernel = cs.kernel;
        g.stride = cs.stride;
        g.dilation = cs.dilation;
        g.pad_begin = cs.pb;
        g.pad_end = cs.pe;
        g.out.clear();
        for (size_t d = 0; d < g.in.size(); ++d)
          g.out.push_back(conv_out_dim(g.in[d], g.kernel[d], g.stride[d], g.dilation[d], g.pad_begin[d], g.pad_end[d], false));
        const int64_t nx = g.batch * g.in_ch * g.in_size(), nw = g.out_ch * (g.in_ch / g.group) * g.kernel_size();
        std::uniform_int_distribution<int> u8(0, 255), s8(-128, 127);
        std::vector<uint8_t> xu((size_t)nx);
        std::vector<int8_t> xs((size_t)nx), w((size_t)nw);
        for (auto& v : xu) v = (uint8_t)u8(rng);
        for (auto& v : xs) v = (int8_t)s8(rng);
        for (auto& v : w) v = (int8_t)s8(rng);
        std::vector<int32_t> zw((size_t)g.out_ch);
        for (auto& z : zw) z = s8(rng) / 4;
        const int32_t zx = signed_x ? -7 : 131;
        std::vector<int32_t> fast((size_t)(g.batch * g.out_ch * g.out_size()), 99), ref(fast.size(), -99);
        auto run = [&](std::vector<int32_t>& y) {
          if (signed_x) conv_int32<int8_t, int8_t>(g, xs.data(), zx, w.data(), zw.data(), per_ch, y.data());
          else conv_int32<uint8_t, int8_t>(g, xu.data(), zx, w.data(), zw.data(), per_ch, y.data());
        };
        run(fast);
        set_fast_kernels(false);
        run(ref);
        set_fast_kernels(true);
        ASSERT_EQ(fast, ref) << "case " << compared;
        ++compared;
      }
  EXPECT_EQ(compared, (int)cases.size() * 4);
}

// gemm_int32 (MatMulInteger, QLinearMatMul, IntMatMul/IntGemm) with per-column weight zero points, all four code
// type pairs.
TEST(IntGemm, Int32GemmFastPathEqualsTheReferenceLoops) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> u8(0, 255), s8(-128, 127);
  for (int64_t M : {1, 6, 37})
    for (int64_t N : {1, 30, 65})
      for (int64_t K : {1, 17, 96}) {
        std::vector<uint8_t> au((size_t)(M * K)), bu((size_t)(K * N));
        std::vector<int8_t> as((size_t)(M * K)), bs((size_t)(K * N));
        for (auto& v : au) v = (uint8_t)u8(rng);
        for (auto& v : bu) v = (uint8_t)u8(rng);
        for (auto& v : as) v = (int8_t)s8(rng);
        for (auto& v : bs) v = (int8_t)s8(rng);
        std::vector<int32_t> zb((size_t)N);
        for (auto& z : zb) z = s8(rng);
        auto both = [&](auto run) {
          std::vector<int32_t> fast((size_t)(M * N), 1), ref((size_t)(M * N), 2);
          run(fast.data());
          set_fast_kernels(false);
          run(ref.data());
          set_fast_kernels(true);
          EXPECT_EQ(fast, ref) << "M=" << M << " N=" << N << " K=" << K;
        };
        both([&](int32_t* c) { gemm_int32<uint8_t, int8_t>(M, N, K, au.data(), 128, bs.data(), zb.data(), true, c); });
        both([&](int32_t* c) { gemm_int32<int8_t, int8_t>(M, N, K, as.data(), -3, bs.data(), zb.data(), false, c); });
        both([&](int32_t* c) { gemm_int32<uint8_t, uint8_t>(M, N, K, au.data(), 0, bu.data(), zb.data(), true, c); });
        both([&](int32_t* c) { gemm_int32<int8_t, uint8_t>(M, N, K, as.data(), 5, bu.data(), zb.data(), true, c); });
      }
}

// IntAdd / IntMul on large tensors go through a 256 x 256 table of the arithmetic (ops_int.cpp): every element must
// equal requantize_add / requantize_mul of its own pair, with broadcasting and both code types. Mutations caught: the
// table indexed without the int8 offset, a and b swapped in the table.
TEST(IntAddOp, LargeTensorsThroughTheTableGiveThePerElementCodes) {
  const int64_t n = 300000;  // above the table threshold
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> u8(0, 255), s8(-128, 127);
  Tensor a(DType::UInt8, {2, n}), b(DType::Int8, {n});
  for (int64_t i = 0; i < a.numel(); ++i) a.data<uint8_t>()[i] = (uint8_t)u8(rng);
  for (int64_t i = 0; i < b.numel(); ++i) b.data<int8_t>()[i] = (int8_t)s8(rng);
  for (const char* op : {"IntAdd", "IntMul"})
    for (RequantKind kind : {RequantKind::Float, RequantKind::FixedPoint}) {
      const float sa = 0.031f, sb = 0.017f, sy = op[3] == 'A' ? 0.05f : 0.0021f;
      const int32_t za = 121, zb = -9, zy = 3;
      TieRounding r = kind == RequantKind::Float ? TieRounding::HalfEven : TieRounding::HalfAway;
      GraphBuilder gb(17);
      gb.input("a", DType::UInt8, {2, n});
      gb.input("b", DType::Int8, {n});
      std::string y = gb.node(op, {"a", "b"},
                              {attr_floats("scales", {sa, sb, sy}), attr_int("a_zero_point", za),
                               attr_int("b_zero_point", zb), attr_int("y_zero_point", zy), attr_int("qmin", 0),
                               attr_int("qmax", 255), attr_int("to", (int64_t)DType::UInt8),
                               attr_int("kind", (int64_t)kind), attr_int("rounding", (int64_t)r)});
      gb.model().graph.nodes.back().domain = "lowbit.int";
      gb.model().opsets["lowbit.int"] = 1;
      gb.output(y, DType::UInt8);
      Tensor got = Executor(gb.build()).run({{"a", a}, {"b", b}}).begin()->second;
      ASSERT_EQ(got.numel(), 2 * n);
      int bad = 0;
      if (op[3] == 'A') {
        AddRequant p = make_add_requant(sa, sb, sy, kind, r, "test");
        p.za = za, p.zb = zb, p.zy = zy, p.qmin = 0, p.qmax = 255;
        for (int64_t i = 0; i < 2 * n; ++i)
          bad += got.data<uint8_t>()[i] != requantize_add(a.data<uint8_t>()[i], b.data<int8_t>()[i % n], p);
      } else {
        MulRequant p = make_mul_requant(sa, sb, sy, kind, r, "test");
        p.za = za, p.zb = zb, p.zy = zy, p.qmin = 0, p.qmax = 255;
        for (int64_t i = 0; i < 2 * n; ++i)
          bad += got.data<uint8_t>()[i] != requantize_mul(a.data<uint8_t>()[i], b.data<int8_t>()[i % n], p);
      }
      EXPECT_EQ(bad, 0) << op << " kind " << (int)kind;
    }
}
