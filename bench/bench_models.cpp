// FP32 inference throughput (images/s) of the executor on ResNet-18- and MobileNetV2-style networks,
// batch 1 and 32. Run: build/bench/bench_models  (lowbit bench and scripts/bench_vs_ort.sh measure real models).
#include <benchmark/benchmark.h>

#include "runtime/executor.h"
#include "synthetic_models.h"

using namespace lowbit;

namespace {

void run_model(benchmark::State& state, const Model& m) {
  Executor ex(m);
  int64_t batch = state.range(0);
  bench::NetBuilder rnd(7);
  Tensor x = rnd.random({batch, 3, 224, 224}, 1.f);
  for (auto _ : state) {
    auto out = ex.run({{"input", x}});
    benchmark::DoNotOptimize(out.begin()->second.raw());
  }
  state.counters["images/s"] = benchmark::Counter((double)(batch * state.iterations()), benchmark::Counter::kIsRate);
}

void BM_ResNet18(benchmark::State& state) {
  static const Model m = bench::resnet18();
  run_model(state, m);
}
void BM_MobileNetV2(benchmark::State& state) {
  static const Model m = bench::mobilenetv2();
  run_model(state, m);
}

}  // namespace

BENCHMARK(BM_ResNet18)->Arg(1)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_MobileNetV2)->Arg(1)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_MAIN();
