// lowbit info / run / bench / export: argument handling and printing over the public API.
#include "cli/commands.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/checked.h"
#include "io/npy.h"
#include "ir/onnx_io.h"

namespace lowbit::cli {

int cmd_info(const InfoArgs& a) {
  Model m = Model::load(a.model);
  ModelInfo info = describe(m);
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["ir_version"] = info.ir_version;
    j["producer"] = info.producer;
    for (auto& [d, v] : info.opsets) j["opsets"][d] = v;
    auto values = [](const std::vector<ValueInfo>& vs) {
      nlohmann::json arr = nlohmann::json::array();
      for (auto& v : vs) arr.push_back({{"name", v.name}, {"dtype", dtype_name(v.dtype)}, {"shape", dims_string(v)}});
      return arr;
    };
    j["inputs"] = values(info.inputs);
    j["outputs"] = values(info.outputs);
    j["parameters"] = info.parameters;
    j["parameter_bytes"] = info.parameter_bytes;
    j["initializers"] = info.initializers;
    j["nodes"] = info.nodes;
    j["ops"] = info.ops;
    j["unsupported_ops"] = info.unsupported_ops;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model:       %s\n", a.model.c_str());
  std::printf("ir version:  %lld   producer: %s %s\n", (long long)m.ir_version, m.producer_name.c_str(),
              m.producer_version.c_str());
  std::printf("opsets:     ");
  for (auto& [d, v] : m.opsets) std::printf(" %s %lld", d.empty() ? "ai.onnx" : d.c_str(), (long long)v);
  std::printf("\ninputs:\n");
  for (auto& v : info.inputs)
    std::printf("  %-24s %-8s %s\n", v.name.c_str(), dtype_name(v.dtype), dims_string(v).c_str());
  std::printf("outputs:\n");
  for (auto& v : info.outputs)
    std::printf("  %-24s %-8s %s\n", v.name.c_str(), dtype_name(v.dtype), dims_string(v).c_str());
  std::printf("parameters:  %lld in %zu initializers (%s)\n", (long long)info.parameters, info.initializers,
              human_bytes((double)info.parameter_bytes).c_str());
  std::printf("ops (%zu nodes):\n", info.nodes);
  for (auto& [op, n] : info.ops) std::printf("  %-24s %d\n", op.c_str(), n);
  if (!info.unsupported_ops.empty()) {
    std::printf("unsupported by lowbit:");
    for (auto& o : info.unsupported_ops) std::printf(" %s", o.c_str());
    std::printf("\n");
  }
  return 0;
}

int cmd_run(const RunArgs& a) {
  Model m = model_for_engine(a.model, a.engine);
  Session session(m);
  auto required = session.input_names();
  TensorMap feeds;
  for (auto& spec : a.inputs) {
    auto eq = spec.find('=');
    if (eq != std::string::npos) {
      std::string name = spec.substr(0, eq), file = spec.substr(eq + 1);
      check(m.graph.is_graph_input(name), "--input ", spec, ": the model has no input named '", name, "'");
      feeds[name] = load_npy(file);
    } else if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npz") == 0) {
      for (auto& [k, t] : load_npz(spec)) feeds[k] = t;
    } else {
      check(required.size() == 1, "--input ", spec, ": the model has ", required.size(),
            " inputs; name them as NAME=FILE.npy");
      feeds[required[0]] = load_npy(spec);
    }
  }
  for (auto& r : required)
    check(feeds.count(r), "no value given for model input '", r, "' (use --input ", r, "=FILE.npy)");
  TensorMap outs = session.run(feeds);
  for (auto& [name, t] : outs) {
    std::printf("%-24s %-8s %s", name.c_str(), dtype_name(t.dtype()), shape_str(t.shape()).c_str());
    if (dtype_is_float(t.dtype()) && t.numel()) {
      auto v = t.to_f64();
      double mn = v[0], mx = v[0], sum = 0;
      for (double x : v) mn = std::min(mn, x), mx = std::max(mx, x), sum += x;
      std::printf("  min %.6g  max %.6g  mean %.6g", mn, mx, sum / (double)v.size());
    }
    std::printf("\n");
    // For a 2-D float output, print each row's argmax (the predicted class of a classifier).
    if (dtype_is_float(t.dtype()) && t.rank() == 2 && t.dim(1) > 1) {
      auto v = t.to_f64();
      std::printf("  argmax per row:");
      for (int64_t r = 0; r < t.dim(0); ++r) {
        int64_t best = 0;
        for (int64_t c = 1; c < t.dim(1); ++c)
          if (v[r * t.dim(1) + c] > v[r * t.dim(1) + best]) best = c;
        std::printf(" %lld", (long long)best);
      }
      std::printf("\n");
    }
  }
  if (!a.output.empty()) {
    if (a.output.size() > 4 && a.output.compare(a.output.size() - 4, 4, ".npy") == 0) {
      check(outs.size() == 1, "--output ", a.output, ": the model has ", outs.size(), " outputs; use a .npz file");
      save_npy(a.output, outs.begin()->second);
    } else {
      save_npz(a.output, outs);
    }
    std::printf("wrote %s\n", a.output.c_str());
  }
  return 0;
}

int cmd_bench(const BenchArgs& a) {
  Model m = model_for_engine(a.model, a.engine);
  analysis::BenchOptions o = a.opt;
  auto split_eq = [](const std::string& spec, const char* opt) {
    auto eq = spec.find('=');
    check(eq != std::string::npos && eq > 0, opt, " ", spec, ": expected NAME=VALUE");
    return std::pair{spec.substr(0, eq), spec.substr(eq + 1)};
  };
  for (auto& spec : a.shapes) {
    auto [name, dims] = split_eq(spec, "--shape");
    check(m.graph.is_graph_input(name), "--shape ", spec, ": the model has no input named '", name, "'");
    Shape s;
    size_t pos = 0;
    while (pos <= dims.size()) {
      size_t x = dims.find('x', pos);
      std::string d = dims.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
      char* end = nullptr;
      long long v = std::strtoll(d.c_str(), &end, 10);
      check(!d.empty() && end && *end == 0 && v >= 0, "--shape ", spec, ": '", d, "' is not a dimension");
      s.push_back(v);
      if (x == std::string::npos) break;
      pos = x + 1;
    }
    o.shapes[name] = s;
  }
  for (auto& spec : a.inputs) {
    auto [name, file] = split_eq(spec, "--input");
    check(m.graph.is_graph_input(name), "--input ", spec, ": the model has no input named '", name, "'");
    o.inputs[name] = load_npy(file);
  }
  std::string js = analysis::bench_json(a.model, analysis::bench_model(m, o),
                                        a.engine.engine == "int" ? "int:" + a.engine.profile : a.engine.engine);
  std::printf("%s\n", js.c_str());
  if (!a.output.empty()) write_file_atomic(a.output, js + "\n");
  return 0;
}

int cmd_export(const ExportArgs& a) {
  Model m = Model::load(a.model);
  size_t before = m.graph.nodes.size();
  if (a.fold_constants) {
    int folded = fold_constant_subgraphs(m);
    std::printf("folded %d constant nodes (%zu -> %zu nodes)\n", folded, before, m.graph.nodes.size());
  }
  SaveOptions so;
  so.external_threshold = a.external_threshold;
  save_onnx(m, a.output, so);
  std::printf("wrote %s\n", a.output.c_str());
  return 0;
}

}  // namespace lowbit::cli
