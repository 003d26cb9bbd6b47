// lowbit quantize: FP32 ONNX model + calibration data -> simulated (QDQ) quantized ONNX model.
#include <cstring>
#include <functional>
#include <map>
#include <filesystem>

#include "cli/commands.h"
#include "cli/progress.h"
#include "data/feeds.h"
#include "data/loader.h"
#include "ir/onnx_io.h"
#include "ir/opset.h"
#include "quant/encodings_io.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "ptq/pipeline.h"
#include "runtime/executor.h"

namespace lowbit::cli {

namespace {

int parse_bits(const std::string& s, char prefix, const char* flag) {
  check(s.size() >= 2 && s[0] == prefix, flag, " '", s, "': expected ", prefix, "<bits>, e.g. ", prefix, "8");
  int b = 0;
  try {
    b = std::stoi(s.substr(1));
  } catch (const std::exception&) {
    fail(flag, " '", s, "': expected ", prefix, "<bits>");
  }
  check(b >= 2 && b <= 16, flag, " '", s, "': bit width must be 2..16");
  return b;
}

// Applies the PTQ preset and the per-step switches of the command line over the config file's pipeline.
void apply_pipeline_args(const QuantizeArgs& a, quant::QuantConfig& cfg, bool have_data) {
  if (a.pipeline == "standard" || a.data_free) quant::apply_standard_pipeline(cfg, have_data && !a.data_free);
  else check(a.pipeline.empty() || a.pipeline == "none", "--pipeline '", a.pipeline, "': expected standard or none");
  quant::PipelineConfig& p = cfg.pipeline;
  if (a.cle) p.cle = a.cle > 0;
  if (a.high_bias_absorption) p.high_bias_absorption = a.high_bias_absorption > 0;
  if (!a.relu6.empty()) {
    check(a.relu6 == "relu" || a.relu6 == "skip", "--relu6 '", a.relu6, "': expected relu or skip");
    p.relu6_to_relu = a.relu6 == "relu";
  }
  if (!a.bias_correction.empty()) p.bias_correction = quant::parse_bias_correction(a.bias_correction);
  if (a.adaround) p.adaround = a.adaround > 0;
  if (a.adaround_iters >= 0) p.adaround_iterations = a.adaround_iters;
  if (a.ptq_samples > 0) p.samples = a.ptq_samples;
  if (!a.input_range.empty()) {
    float lo = 0, hi = 0;
    char extra = 0;
    check(std::sscanf(a.input_range.c_str(), "%f,%f%c", &lo, &hi, &extra) == 2 && lo <= hi, "--input-range '",
          a.input_range, "': expected LO,HI with LO <= HI, e.g. 0,1");
    p.input_range = {lo, hi};
  }
}

// The first `n` samples of the calibration subset as one batch (AdaRound and empirical bias correction).
Tensor load_samples(const DataArgs& d, int64_t n, const Model& m) {
  std::vector<ValueInfo> inputs;
  for (auto& i : m.graph.inputs)
    if (!m.graph.is_initializer(i.name)) inputs.push_back(i);
  check(inputs.size() == 1, "AdaRound and empirical bias correction need a single-input model (this one has ",
        inputs.size(), " inputs); use --no-adaround --bias-correction none, or --bias-correction analytical");
  data::LoaderOptions o = loader_options(d);
  o.num_samples = d.num_samples > 0 ? std::min(n, d.num_samples) : n;
  bool plain = d.specs.size() == 1 && d.spec.find('=') == std::string::npos && d.spec.rfind("npz:", 0) != 0 &&
               d.spec.rfind("batches:", 0) != 0;
  if (plain) {
    data::DataLoader loader(d.spec, o);
    return data::read_all(loader).x;
  }
  // Named arrays, npz or a folder of batches: the first n samples of the first batch's shape.
  data::FeedLoader fl(d.specs, inputs, o);
  std::vector<Tensor> parts;
  int64_t got = 0;
  data::Feeds f;
  while (got < n && fl.next(f)) {
    const Tensor& t = f.at(inputs[0].name);
    check(t.dtype() == DType::Float32 && t.rank() >= 1, "AdaRound and empirical bias correction need float32 samples");
    // Batches of other shapes (OCR crops of other widths) are skipped: the layer-wise steps stack samples.
    if (!parts.empty() && Shape(t.shape().begin() + 1, t.shape().end()) !=
                              Shape(parts[0].shape().begin() + 1, parts[0].shape().end()))
      continue;
    parts.push_back(t);
    got += t.dim(0);
  }
  check(!parts.empty(), "no samples for AdaRound / bias correction");
  Tensor all = concat_rows(parts);
  return all.dim(0) > n ? all.slice_rows(0, n) : all;
}

}  // namespace

quant::QuantConfig config_from_args(const QuantizeArgs& a) {
  quant::QuantConfig cfg = a.config.empty() ? quant::default_config() : quant::parse_config(read_file(a.config), a.config);
  bool have_data = !a.data.spec.empty();
  apply_pipeline_args(a, cfg, have_data);
  if (!a.weights.empty()) cfg.weights.spec.grid.bits = parse_bits(a.weights, 'w', "--weights");
  if (!a.acts.empty()) cfg.activations.spec.grid.bits = parse_bits(a.acts, 'a', "--acts");
  if (a.per_tensor) cfg.weights.spec.granularity = quant::Granularity::PerTensor;
  if (a.per_channel) cfg.weights.spec.granularity = quant::Granularity::PerChannel;
  if (a.group > 0) {
    cfg.weights.spec.granularity = quant::Granularity::PerGroup;
    cfg.weights.spec.group_size = a.group;
  }
  if (!a.range.empty()) cfg.activations.range = quant::parse_range_method(a.range);
  if (!a.weight_range.empty()) cfg.weights.range = quant::parse_range_method(a.weight_range);
  if (!a.mode.empty()) {
    if (a.mode == "static") cfg.mode = quant::Mode::Static;
    else if (a.mode == "weight-only") cfg.mode = quant::Mode::WeightOnly;
    else if (a.mode == "dynamic") cfg.mode = quant::Mode::Dynamic;
    else if (a.mode == "fp16") cfg.mode = quant::Mode::Fp16;
    else fail("--mode '", a.mode, "': expected static, weight-only, dynamic or fp16");
  }
  check(cfg.weights.range == quant::RangeMethod::MinMax || cfg.weights.range == quant::RangeMethod::Mse,
        "weight ranges are minmax or mse");
  const quant::PipelineConfig& pc = cfg.pipeline;
  bool weight_steps = pc.adaround || pc.bias_correction != quant::BiasCorrectionKind::None;
  check(!weight_steps || (a.load_encodings.empty() && cfg.mode != quant::Mode::Fp16),
        "AdaRound and bias correction need weight encodings computed here (not --load-encodings or fp16 mode)");
  return cfg;
}

QuantState run_quantization(const QuantizeArgs& a, quant::QuantConfig& cfg) {
  QuantState st;
  bool have_data = !a.data.spec.empty();
  const quant::PipelineConfig& pc = cfg.pipeline;
  bool weight_steps = pc.adaround || pc.bias_correction != quant::BiasCorrectionKind::None;
  st.original = load_onnx(a.model);
  Executor validate(st.original);  // names every unsupported op before any work
  Model& m = st.prepared;
  m = st.original;
  // QDQ features that need a newer opset than the model's: the graph is converted first (and the summary says so).
  bool per_axis = cfg.weights.spec.granularity == quant::Granularity::PerChannel && cfg.weights.spec.grid.bits <= 8 &&
                  cfg.mode != quant::Mode::Fp16;
  if ((per_axis || cfg.mode == quant::Mode::Dynamic) && m.opset("") < 13) {
    auto lines = upgrade_opset(m, 13);
    lines[0] = "converted " + lines[0] + (per_axis ? " (per-channel QDQ needs opset 13)" : " (dynamic QDQ needs opset 13)");
    st.notes.insert(st.notes.end(), lines.begin(), lines.end());
  }
  quant::PrepareStats& prep = st.prep;
  // Subgraphs (If/Loop/Scan bodies) are not quantized: say how much of the model that leaves in float.
  std::function<int(const Graph&)> count_sub = [&](const Graph& g) {
    int k = 0;
    for (auto& n : g.nodes)
      for (auto& a : n.attrs) {
        if (a.g) k += (int)a.g->nodes.size() + count_sub(*a.g);
        for (auto& sg : a.graphs) k += (int)sg->nodes.size() + count_sub(*sg);
      }
    return k;
  };
  int recurrent = 0;
  for (auto& n : m.graph.nodes) recurrent += n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN";
  if (recurrent)
    st.notes.push_back("left in float: the weights and recurrent state of " + std::to_string(recurrent) +
                       " LSTM/GRU/RNN node(s) (their inputs and outputs are quantized)");
  if (int k = count_sub(m.graph))
    st.notes.push_back("left in float: " + std::to_string(k) + " nodes inside If/Loop/Scan subgraphs (lowbit quantizes the main graph only)");
  prep = quant::prepare_for_quantization(m);
  ptq::check_pipeline(m, pc, prep.batch_norms, have_data);
  std::vector<ptq::StepLog>& logs = st.logs;
  if (auto l = ptq::run_equalization(m, prep.batch_norms, pc)) logs.push_back(*l);
  if (a.pipeline == "standard" && have_data && cfg.activations.range == quant::RangeMethod::Mse)
    for (auto& o : m.graph.outputs)  // cross-entropy ranges for the logits (a [batch, classes] output)
      if (o.has_shape && o.shape.size() == 2 && o.dtype == DType::Float32) {
        quant::Override ov;
        ov.tensor = o.name;
        ov.range = quant::RangeMethod::CrossEntropy;
        cfg.overrides.push_back(ov);
      }
  quant::QuantSimPlan& plan = st.plan;
  plan = quant::plan_quantizers(m, cfg);
  if (a.strict) {
    auto left = quant::float_ops(m, plan);
    if (!left.empty()) {
      std::string list;
      for (size_t i = 0; i < left.size(); ++i) list += (i ? ", " : "") + left[i];
      fail("--strict: ", left.size(), " op", left.size() > 1 ? "s" : "", " would stay in float: ", list);
    }
  }
  if (!a.load_encodings.empty()) {
    check(cfg.mode == quant::Mode::Static || cfg.mode == quant::Mode::WeightOnly,
          "--load-encodings applies to static and weight-only quantization");
    quant::apply_encodings(plan, m, read_file(a.load_encodings), a.load_encodings);
  } else {
    if (cfg.mode != quant::Mode::Fp16) quant::compute_weight_encodings(m, plan);
    if (weight_steps) {
      Tensor samples;
      if (have_data) samples = load_samples(a.data, pc.samples, m);
      std::unique_ptr<Progress> bar;
      auto s = ptq::run_weight_steps(m, plan, pc, prep.batch_norms, samples,
                                     [&](const std::string& what, size_t done, size_t total) {
                                       if (!bar) bar = std::make_unique<Progress>(what, (int64_t)total);
                                       bar->update((int64_t)done);
                                     });
      logs.insert(logs.end(), s.begin(), s.end());
    }
    if (cfg.mode == quant::Mode::Static && pc.data_free) {
      logs.push_back(ptq::run_data_free_ranges(m, plan, prep.batch_norms, pc));
    } else if (cfg.mode == quant::Mode::Static) {
      check(have_data || cfg.activations.range == quant::RangeMethod::Bn,
            "static quantization needs calibration data: pass --data SPEC (or --data-free, or --range bn for "
            "BN-based ranges)");
      std::unique_ptr<data::FeedLoader> lp;
      if (have_data) {
        std::vector<ValueInfo> inputs;
        for (auto& i : m.graph.inputs)
          if (!m.graph.is_initializer(i.name)) inputs.push_back(i);
        lp = std::make_unique<data::FeedLoader>(a.data.specs, inputs, loader_options(a.data));
        for (auto& n : lp->notes()) st.notes.push_back("calibration: " + n);
      }
      Progress progress("calibrate", lp ? lp->size() : 0);
      quant::calibrate(
          m, plan, quant::FeedSource([&](std::map<std::string, Tensor>& f) { return lp && lp->next(f); }),
          [&](int64_t n) { progress.update(n); }, [&] { if (lp) lp->reset(); }, prep.batch_norms);
    }
  }
  if (cfg.concat_shared_scale && a.load_encodings.empty()) quant::share_concat_encodings(m, plan);
  else if (a.load_encodings.empty() && cfg.mode == quant::Mode::Static)
    for (auto& l : quant::relax_mixed_range_output_concats(m, plan))
      st.notes.push_back("output Concat left unquantized (its inputs' ranges differ too much for one grid): " + l);
  return st;
}

int cmd_quantize(const QuantizeArgs& a) {
  Progress clock("quantize", 0, false);
  quant::QuantConfig cfg = config_from_args(a);
  namespace fs = std::filesystem;
  check(fs::absolute(a.output) != fs::absolute(a.model), "refusing to overwrite the input model '", a.model, "'");
  QuantState st = run_quantization(a, cfg);
  Model& m = st.prepared;
  const quant::QuantSimPlan& plan = st.plan;
  const quant::PrepareStats& prep = st.prep;
  const quant::PipelineConfig& pc = cfg.pipeline;
  int int32_biases = 0;
  Model q = quant::build_quantized_model(m, plan, cfg.mode, cfg.int32_bias, &int32_biases);
  if (!a.save_prepared.empty()) save_onnx(m, a.save_prepared);
  save_onnx(q, a.output);
  if (!a.save_encodings.empty()) write_file_atomic(a.save_encodings, quant::encodings_to_json(plan));
  size_t before = fs::file_size(a.model), after = fs::file_size(a.output);
  int dynamic = 0;
  for (auto& x : plan.acts) dynamic += x.dynamic;
  std::printf("quantized %s -> %s\n", a.model.c_str(), a.output.c_str());
  std::printf("  batch norms folded:      %d (after folding %d constant nodes)\n", prep.batch_norms_folded, prep.constants_folded);
  std::printf("  weight quantizers:       %zu (%d-bit, %s, %s)\n", plan.weights.size(), cfg.weights.spec.grid.bits,
              cfg.weights.spec.granularity == quant::Granularity::PerChannel ? "per-channel"
              : cfg.weights.spec.granularity == quant::Granularity::PerGroup ? "per-group" : "per-tensor",
              quant::range_method_name(cfg.weights.range));
  std::printf("  activation quantizers:   %zu (%d-bit, %s)%s\n", plan.acts.size(), cfg.activations.spec.grid.bits,
              pc.data_free ? "data-free" : quant::range_method_name(cfg.activations.range), dynamic ? ", dynamic" : "");
  for (auto& l : st.logs)
    for (auto& w : l.warnings) std::fprintf(stderr, "lowbit: warning: %s\n", w.c_str());
  for (auto& l : st.logs) {
    std::printf("  %s (%.1f s):\n", l.name.c_str(), l.seconds);
    for (auto& line : l.lines) std::printf("    %s\n", line.c_str());
  }
  for (auto& n : st.notes) std::printf("  %s\n", n.c_str());
  if (cfg.mode == quant::Mode::Static) {
    // Which ops compute in float in the exported model, by type (recurrent layers, control flow, uncovered ops).
    std::map<std::string, int> by_type;
    for (auto& f : quant::float_ops(m, plan)) ++by_type[f.substr(0, f.find(' '))];
    if (!by_type.empty()) {
      std::string list;
      for (auto& [op, k] : by_type) list += (list.empty() ? "" : ", ") + std::to_string(k) + " " + op;
      std::printf("  ops left in float:       %s (--strict lists them)\n", list.c_str());
    }
  }
  if (cfg.int32_bias) std::printf("  int32 biases:            %d\n", int32_biases);
  std::printf("  model size:              %.1f KiB -> %.1f KiB\n", before / 1024.0, after / 1024.0);
  if (!a.save_encodings.empty()) std::printf("  encodings:               %s\n", a.save_encodings.c_str());
  if (!a.save_prepared.empty()) std::printf("  prepared float model:    %s\n", a.save_prepared.c_str());
  std::printf("  time:                    %.1f s, peak memory %.0f MiB\n", clock.seconds(), peak_rss_mib());
  return 0;
}

}  // namespace lowbit::cli
