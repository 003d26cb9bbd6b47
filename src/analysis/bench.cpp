// lowbit bench: times the executor in-process. The clock covers Executor::run only (inputs are built once), so the
// figure is what a caller pays per batch, without process start or model load.
#include "analysis/bench.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/dispatch.h"

namespace lowbit::analysis {

TensorMap bench_inputs(const Model& m, const BenchOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  TensorMap feeds;
  for (auto& vi : m.graph.inputs) {
    if (m.graph.is_initializer(vi.name)) continue;
    if (auto it = o.inputs.find(vi.name); it != o.inputs.end()) {
      feeds[vi.name] = it->second;
      continue;
    }
    Shape shape;
    if (auto it = o.shapes.find(vi.name); it != o.shapes.end()) {
      shape = it->second;
    } else {
      check(vi.has_shape, "input '", vi.name, "' has no declared shape; give it with --shape ", vi.name, "=D0xD1x...");
      for (size_t d = 0; d < vi.shape.size(); ++d) {
        if (vi.shape[d].fixed()) shape.push_back(vi.shape[d].value);
        else if (d == 0) shape.push_back(o.batch);
        else fail("input '", vi.name, "' has symbolic dimension ", d, " ('", vi.shape[d].param,
                  "'); give its full shape with --shape ", vi.name, "=D0xD1x...");
      }
    }
    check(vi.dtype != DType::Undefined, "input '", vi.name, "' has no declared dtype; feed it with --input");
    Tensor t(vi.dtype, shape);
    if (dtype_is_float(vi.dtype)) {
      visit_dtype(vi.dtype, [&](auto* tag) {
        using T = std::remove_pointer_t<decltype(tag)>;
        if constexpr (!std::is_same_v<T, bool>) {
          T* p = t.data<T>();
          for (int64_t i = 0; i < t.numel(); ++i) p[i] = from_double<T>(uni(rng));
        }
      });
    }
    feeds[vi.name] = std::move(t);
  }
  return feeds;
}

// This process's own high-water mark (VmHWM). getrusage's ru_maxrss would do on its own, but Linux carries it
// over exec from the process that started us (a benchmark script holding other runtimes would inflate it).
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;  // "VmHWM:   12345 kB"
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_maxrss * 1024;
}

namespace {
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  double pos = q * (double)(v.size() - 1);
  size_t lo = (size_t)pos;
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}
}  // namespace

BenchResult bench_model(const Model& m, const BenchOptions& o) {
  check(o.reps >= 1, "bench: --reps must be at least 1");
  check(o.warmup >= 0, "bench: --warmup must not be negative");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  Executor ex(m);
  TensorMap feeds = bench_inputs(ex.model(), o);
  BenchResult r;
  r.threads = omp_get_max_threads();
  r.batch = o.batch;
  for (int i = 0; i < o.warmup; ++i) ex.run(feeds);
  std::vector<double> ms;
  RunStats st;
  double spent = 0;
  while ((int)ms.size() < o.reps || spent < o.min_seconds) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = ex.run(feeds, {}, &st);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ms.push_back(s * 1e3);
    spent += s;
    r.peak_live_bytes = std::max(r.peak_live_bytes, st.peak_live_bytes);
  }
  r.folded_clamps = st.folded_clamps;
  r.channels_last_outputs = st.channels_last_outputs;
  r.fast_kernels = fast_kernels_enabled();
  r.runs = (int)ms.size();
  r.median_ms = percentile(ms, 0.5);
  r.p90_ms = percentile(ms, 0.9);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.images_per_s = r.median_ms > 0 ? (double)o.batch * 1e3 / r.median_ms : 0;
  if (o.profile_ops) {
    // Separate runs, so the clock reads of profiling do not touch the timings above.
    ex.set_profiling(true);
    const auto& nodes = ex.model().graph.nodes;
    std::vector<double> sum(nodes.size(), 0.0);
    int runs = std::max(3, std::min(o.reps, 10));
    for (int i = 0; i < runs; ++i) {
      ex.run(feeds, {}, &st);
      for (size_t k = 0; k < sum.size(); ++k) sum[k] += st.node_seconds[k];
    }
    std::map<std::string, OpProfileRow> by_type;
    double total = 0;
    std::vector<std::pair<std::string, double>> per_node;
    for (size_t k = 0; k < nodes.size(); ++k) {
      double node_ms = sum[k] * 1e3 / runs;
      auto& row = by_type[nodes[k].op_type];
      row.op_type = nodes[k].op_type;
      ++row.nodes;
      row.ms += node_ms;
      total += node_ms;
      per_node.push_back({nodes[k].name.empty() ? nodes[k].outputs.at(0) : nodes[k].name, node_ms});
    }
    for (auto& [_, row] : by_type) {
      row.share = total > 0 ? row.ms / total : 0;
      r.ops.push_back(row);
    }
    std::sort(r.ops.begin(), r.ops.end(), [](auto& a, auto& b) { return a.ms > b.ms; });
    std::sort(per_node.begin(), per_node.end(), [](auto& a, auto& b) { return a.second > b.second; });
    if (per_node.size() > 15) per_node.resize(15);
    r.slowest_nodes = per_node;
  }
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

std::string bench_json(const std::string& model_path, const BenchResult& r, const std::string& engine) {
  nlohmann::ordered_json j;
  j["model"] = model_path;
  j["engine"] = engine;
  j["batch"] = r.batch;
  j["threads"] = r.threads;
  j["runs"] = r.runs;
  j["median_ms"] = r.median_ms;
  j["p90_ms"] = r.p90_ms;
  j["min_ms"] = r.min_ms;
  j["images_per_s"] = r.images_per_s;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["peak_live_activation_bytes"] = r.peak_live_bytes;
  j["kernels"] = r.fast_kernels ? "fast" : "reference";
  j["folded_clamps"] = r.folded_clamps;
  j["channels_last_outputs"] = r.channels_last_outputs;
  if (!r.ops.empty()) {
    auto ops = nlohmann::ordered_json::array();
    for (auto& o : r.ops)
      ops.push_back({{"op", o.op_type}, {"nodes", o.nodes}, {"ms", o.ms}, {"share", o.share}});
    j["ops"] = ops;
    auto nodes = nlohmann::ordered_json::array();
    for (auto& [n, ms] : r.slowest_nodes) nodes.push_back({{"node", n}, {"ms", ms}});
    j["slowest_nodes"] = nodes;
  }
  return j.dump(2);
}

}  // namespace lowbit::analysis
