// In-process inference benchmark: warm-up, then repeated timed runs of the executor on fixed random (or given)
// inputs; per-op profile on request. Speed is measured here, never asserted by a test.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"

namespace lowbit::analysis {

struct BenchOptions {
  int64_t batch = 1;   // fills the leading dimension of inputs whose dim 0 is not fixed
  int threads = 0;     // 0: leave the thread count as it is (OMP_NUM_THREADS or all cores)
  int warmup = 3;
  int reps = 20;       // timed runs; at least one
  double min_seconds = 0;  // keep repeating past `reps` until this much time is spent timing
  bool profile_ops = false;
  // Full shapes for inputs with other symbolic dims, e.g. {"x", {1, 3, 640, 640}}; and inputs given as tensors.
  std::map<std::string, Shape> shapes;
  TensorMap inputs;
  uint64_t seed = 1;
};

struct OpProfileRow {
  std::string op_type;
  int64_t nodes = 0;
  double ms = 0;  // median run's share: mean per run over the profiled runs
  double share = 0;  // of the total kernel time
};

struct BenchResult {
  int64_t batch = 0;
  int threads = 0;
  int runs = 0;
  double median_ms = 0, p90_ms = 0, min_ms = 0;
  double images_per_s = 0;  // batch / median
  int64_t peak_rss_bytes = 0;        // this process's peak resident memory (model, weights, runtime, buffers)
  int64_t peak_live_bytes = 0;       // activations the executor held at once (its own count)
  bool fast_kernels = true;          // false under LOWBIT_REFERENCE_KERNELS=1
  int64_t folded_clamps = 0, channels_last_outputs = 0;  // per run (RunStats)
  std::vector<OpProfileRow> ops;     // by op type, most expensive first (profile_ops only)
  std::vector<std::pair<std::string, double>> slowest_nodes;  // node, mean ms per run (top 15)
};

// Feeds for one run: given inputs as they are, others random in [0, 1) (floats) or zeros (integers), shaped from
// the declared shape with symbolic dim 0 = batch. Throws naming the input when a shape cannot be resolved.
TensorMap bench_inputs(const Model& m, const BenchOptions& o);
// This process's peak resident memory (VmHWM) in bytes.
int64_t peak_rss_bytes();

BenchResult bench_model(const Model& m, const BenchOptions& o);
// `engine` names what ran: "fp32", or "int:PROFILE" for the integer engine under a profile.
std::string bench_json(const std::string& model_path, const BenchResult& r, const std::string& engine = "fp32");

}  // namespace lowbit::analysis
