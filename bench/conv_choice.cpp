// Why oneDNN for float convolution: the reference path (im2col + OpenBLAS sgemm, depthwise direct loop) against
// oneDNN with plain NCHW in and out (reorders included) and with channels-last activations (what the executor
// hands between layout-aware kernels), on convolution shapes from the zoo and 224x224 networks, one thread.
// Prints a Markdown table; scripts/conv_choice.sh writes it to docs/results/conv_choice.md.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "kernels/conv_dnnl.h"

using namespace lowbit;

namespace {
struct Case {
  const char* what;
  int64_t n, c, m, group, hw, k, stride;
};

template <typename F>
double time_ms(F&& f) {
  f();
  int reps = 0;
  double total = 0;
  while (reps < 5 || total < 0.5) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++reps;
  }
  return total * 1e3 / reps;
}
}  // namespace

int main() {
  omp_set_num_threads(1);
  const Case cases[] = {
      {"zoo 3x3, 28x28, batch 17", 17, 32, 32, 1, 28, 3, 1},
      {"zoo 3x3, 14x14, batch 17", 17, 64, 64, 1, 14, 3, 1},
      {"zoo depthwise 3x3, 14x14", 17, 96, 96, 96, 14, 3, 1},
      {"ResNet-18 stem 7x7/2, 224", 1, 3, 64, 1, 224, 7, 2},
      {"ResNet-18 3x3, 56x56", 1, 64, 64, 1, 56, 3, 1},
      {"ResNet-18 3x3, 14x14", 1, 256, 256, 1, 14, 3, 1},
      {"MobileNetV2 1x1 16->96, 112x112", 1, 16, 96, 1, 112, 1, 1},
      {"MobileNetV2 depthwise 3x3, 56x56", 1, 144, 144, 144, 56, 3, 1},
      {"MobileNetV2 1x1 960->160, 7x7", 1, 960, 160, 1, 7, 1, 1},
  };
  std::printf("| convolution | reference ms | oneDNN, NCHW in/out ms | oneDNN, channels-last ms | speed-up (channels-last) |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (auto& k : cases) {
    ConvGeom g;
    g.batch = k.n, g.in_ch = k.c, g.out_ch = k.m, g.group = k.group;
    g.in = {k.hw, k.hw};
    g.kernel = {k.k, k.k};
    g.stride = {k.stride, k.stride};
    g.dilation = {1, 1};
    g.pad_begin = {k.k / 2, k.k / 2};
    g.pad_end = {k.k / 2, k.k / 2};
    resolve_auto_pad("NOTSET", g);
    std::vector<float> x((size_t)(g.batch * g.in_ch * g.in_size()), 0.5f), w((size_t)(g.out_ch * g.in_ch / g.group * g.kernel_size()), 0.01f),
        b((size_t)g.out_ch, 0.1f), y((size_t)(g.batch * g.out_ch * g.out_size()));
    double ref = time_ms([&] { conv_f32(g, x.data(), w.data(), b.data(), y.data()); });
    DnnlConv conv(g, true);
    auto wp = conv.prepare_weights(w.data());
    double plain = time_ms([&] { conv.run(x.data(), wp, b.data(), y.data(), false, false); });
    double cl = time_ms([&] { conv.run(x.data(), wp, b.data(), y.data(), true, true); });
    std::printf("| %s | %.3f | %.3f | %.3f | %.1fx |\n", k.what, ref, plain, cl, ref / cl);
  }
  return 0;
}
