// lowbit public API: the quantization workflow. The steps are those of ptq/pipeline.h in the white paper's order;
// this file only decides which run, feeds them data and keeps what the summary reports.
#include <filesystem>
#include <functional>

#include "analysis/report.h"
#include "ir/fed_inputs.h"
#include "api/progress.h"
#include "api/quantize_state.h"
#include "ir/onnx_io.h"
#include "ir/opset.h"
#include "lowbit/lowbit.h"
#include "quant/aimet_encodings.h"
#include "quant/encodings_io.h"

namespace lowbit {

namespace fs = std::filesystem;

QuantConfig load_config(const std::string& path, const QuantConfig& base) {
  return quant::parse_config(read_file(path), path, base);
}

ProgressFn console_progress() {
  // One bar per step: a new one whenever the step or its total changes.
  struct Bar {
    std::unique_ptr<Progress> bar;
    std::string what;
    int64_t total = 0;
  };
  auto state = std::make_shared<Bar>();
  return [state](const std::string& what, int64_t done, int64_t total) {
    if (!state->bar || what != state->what || total != state->total) {
      state->bar = std::make_unique<Progress>(what, total);
      state->what = what, state->total = total;
    }
    state->bar->update(done);
  };
}


QuantizedModel::QuantizedModel() : s_(std::make_unique<State>()) {}
QuantizedModel::~QuantizedModel() = default;
QuantizedModel::QuantizedModel(QuantizedModel&&) noexcept = default;
QuantizedModel& QuantizedModel::operator=(QuantizedModel&&) noexcept = default;

const Model& QuantizedModel::original() const { return s_->original; }
const Model& QuantizedModel::prepared() const { return s_->prepared; }
const QuantConfig& QuantizedModel::config() const { return s_->cfg; }
const quant::QuantSimPlan& QuantizedModel::plan() const { return s_->plan; }
const std::vector<ptq::StepLog>& QuantizedModel::logs() const { return s_->logs; }
const std::vector<std::string>& QuantizedModel::notes() const { return s_->notes; }

QuantizeSummary QuantizedModel::summary() const {
  QuantizeSummary r;
  r.batch_norms_folded = s_->prep.batch_norms_folded;
  r.constants_folded = s_->prep.constants_folded;
  r.weight_quantizers = s_->plan.weights.size();
  r.activation_quantizers = s_->plan.acts.size();
  for (auto& x : s_->plan.acts) {
    r.dynamic_activations += x.dynamic;
    r.unsigned_activations += !x.dynamic && !x.enc.scale.empty() && !x.enc.spec.grid.is_signed;
  }
  if (s_->cfg.mode == quant::Mode::Static)
    for (auto& f : quant::float_ops(s_->prepared, s_->plan)) ++r.float_ops[f.substr(0, f.find(' '))];
  return r;
}

const Model& QuantizedModel::qdq_model() const {
  if (!s_->qdq)
    s_->qdq = std::make_unique<Model>(
        quant::build_quantized_model(s_->prepared, s_->plan, s_->cfg.mode, s_->cfg.int32_bias, &s_->int32_biases));
  return *s_->qdq;
}

int QuantizedModel::int32_biases() const {
  qdq_model();
  return s_->int32_biases;
}

void QuantizedModel::export_qdq(const std::string& path) const {
  check(!path.empty(), "export: the output path is empty");
  const std::string& src = s_->original.source_path;
  check(src.empty() || !fs::exists(path) || !fs::equivalent(path, src), "refusing to overwrite the input model '",
        src, "'");
  save_onnx(qdq_model(), path);
}

std::string QuantizedModel::encodings_json(EncodingsFormat format) const {
  return format == EncodingsFormat::Aimet ? quant::aimet_encodings_json(s_->plan, s_->cfg)
                                          : quant::encodings_to_json(s_->plan);
}
void QuantizedModel::save_encodings(const std::string& path, EncodingsFormat format) const {
  write_file_atomic(path, encodings_json(format));
}
void QuantizedModel::save_prepared(const std::string& path) const { save_onnx(s_->prepared, path); }

EvalResult QuantizedModel::evaluate(DataSource& data, const EvalOptions& opt) const {
  return lowbit::evaluate(qdq_model(), data, opt);
}

namespace {

// Nodes inside If/Loop/Scan bodies (not quantized).
int count_subgraph_nodes(const Graph& g) {
  int k = 0;
  for (auto& n : g.nodes)
    for (auto& a : n.attrs) {
      if (a.g) k += (int)a.g->nodes.size() + count_subgraph_nodes(*a.g);
      for (auto& sg : a.graphs) k += (int)sg->nodes.size() + count_subgraph_nodes(*sg);
    }
  return k;
}

std::string single_input(const Model& m, const char* why) { return single_fed_input(m.graph, why); }

// The checks of a config against itself and the options, before any work.
void check_config(const QuantConfig& cfg, const QuantizeOptions& opt) {
  check(cfg.weights.range == quant::RangeMethod::MinMax || cfg.weights.range == quant::RangeMethod::Mse,
        "weight ranges are minmax or mse");
  const quant::PipelineConfig& pc = cfg.pipeline;
  bool weight_steps = pc.adaround || pc.bias_correction != quant::BiasCorrectionKind::None;
  check(!weight_steps || (opt.load_encodings.empty() && cfg.mode != quant::Mode::Fp16),
        "AdaRound and bias correction need weight encodings computed here (not --load-encodings or fp16 mode)");
}

}  // namespace

QuantizedModel quantize(const Model& model, DataSource* data, QuantConfig cfg, const QuantizeOptions& opt) {
  check_config(cfg, opt);
  if (opt.profile) backends::check_profile(cfg, *opt.profile);
  QuantizedModel out;
  QuantizedModel::State& st = *out.s_;
  if (opt.profile)
    st.notes.push_back("profile " + opt.profile->name + ": requantization " +
                       backends::multiplier_name(opt.profile->multiplier) + " multiplier, rounding " +
                       backends::int_rounding_name(opt.profile->rounding) + ", softmax " +
                       backends::softmax_arith_name(opt.profile->softmax) + ", bias " +
                       backends::bias_arith_name(opt.profile->bias));
  bool have_data = data != nullptr;
  const quant::PipelineConfig& pc = cfg.pipeline;
  bool weight_steps = pc.adaround || pc.bias_correction != quant::BiasCorrectionKind::None;
  st.original = model;
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
  // 4-bit weights are stored as int4 and per-group weights as blocked DequantizeLinear, both of opset 21: a model
  // below it is converted, or keeps its opset (8-bit containers, per-group weights fake-quantized in float) where
  // the conversion cannot express one of its ops, and the summary says which.
  bool four_bit = cfg.weights.spec.grid.bits <= 4;
  for (auto& o : cfg.overrides) four_bit |= o.weight_bits && *o.weight_bits <= 4;
  bool grouped = cfg.weights.spec.granularity == quant::Granularity::PerGroup;
  // A target that reads AIMET encodings beside the float model (snpe, qnn) gets the model at its own opset: its
  // converters need not know opset 21.
  const bool aimet = opt.profile && opt.profile->encodings == backends::EncodingsFormat::Aimet;
  if ((four_bit || grouped) && cfg.mode != quant::Mode::Fp16 && m.opset("") < 21 && aimet)
    st.notes.push_back("kept opset " + std::to_string(m.opset("")) + " for profile " + opt.profile->name +
                       " (its converters read AIMET encodings beside the float model): 4-bit weights stay in 8-bit "
                       "containers in the QDQ file");
  else if ((four_bit || grouped) && cfg.mode != quant::Mode::Fp16 && m.opset("") < 21) {
    Model up = m;
    const char* why = grouped ? " (blocked per-group DequantizeLinear and int4 weights need opset 21)"
                              : " (int4 weights need opset 21)";
    try {
      auto lines = upgrade_opset(up, 21);
      lines[0] = "converted " + lines[0] + why;
      m = std::move(up);
      st.notes.insert(st.notes.end(), lines.begin(), lines.end());
    } catch (const Error& e) {
      st.notes.push_back("kept opset " + std::to_string(m.opset("")) + ": " + e.what() +
                         "; 4-bit weights stay in 8-bit containers and per-group weights are fake-quantized in float");
    }
  }
  int recurrent = 0;
  for (auto& n : m.graph.nodes) recurrent += n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN";
  if (recurrent)
    st.notes.push_back("left in float: the weights and recurrent state of " + std::to_string(recurrent) +
                       " LSTM/GRU/RNN node(s) (their inputs and outputs are quantized)");
  if (int k = count_subgraph_nodes(m.graph))
    st.notes.push_back("left in float: " + std::to_string(k) +
                       " nodes inside If/Loop/Scan subgraphs (lowbit quantizes the main graph only)");
  st.prep = quant::prepare_for_quantization(m);
  ptq::check_pipeline(m, pc, st.prep.batch_norms, have_data);
  if (auto l = ptq::run_equalization(m, st.prep.batch_norms, pc)) st.logs.push_back(*l);
  if (pc.logits_cross_entropy && have_data && cfg.activations.range == quant::RangeMethod::Mse)
    for (auto& o : m.graph.outputs)  // cross-entropy ranges for the logits (a [batch, classes] output)
      if (o.has_shape && o.shape.size() == 2 && o.dtype == DType::Float32) {
        quant::Override ov;
        ov.tensor = o.name;
        ov.range = quant::RangeMethod::CrossEntropy;
        cfg.overrides.push_back(ov);
      }
  st.plan = quant::plan_quantizers(m, cfg);
  if (opt.strict) {
    auto left = quant::float_ops(m, st.plan);
    if (!left.empty()) {
      std::string list;
      for (size_t i = 0; i < left.size(); ++i) list += (i ? ", " : "") + left[i];
      fail("--strict: ", left.size(), " op", left.size() > 1 ? "s" : "", " would stay in float: ", list);
    }
  }
  if (!opt.load_encodings.empty()) {
    check(cfg.mode == quant::Mode::Static || cfg.mode == quant::Mode::WeightOnly,
          "--load-encodings applies to static and weight-only quantization");
    quant::apply_encodings(st.plan, m, read_file(opt.load_encodings), opt.load_encodings);
  } else {
    if (cfg.mode != quant::Mode::Fp16) quant::compute_weight_encodings(m, st.plan);
    if (weight_steps) {
      Tensor samples;
      if (have_data)
        samples = data->take(single_input(m, "AdaRound and empirical bias correction need a single-input model; use "
                                             "--no-adaround --bias-correction none, or --bias-correction analytical"),
                             pc.samples);
      check(!have_data || samples.dtype() == DType::Float32,
            "AdaRound and empirical bias correction need float32 samples");
      auto s = ptq::run_weight_steps(m, st.plan, pc, st.prep.batch_norms, samples,
                                     [&](const std::string& what, size_t done, size_t total) {
                                       if (opt.progress) opt.progress(what, (int64_t)done, (int64_t)total);
                                     });
      st.logs.insert(st.logs.end(), s.begin(), s.end());
    }
    if (cfg.mode == quant::Mode::Static && pc.data_free) {
      st.logs.push_back(ptq::run_data_free_ranges(m, st.plan, st.prep.batch_norms, pc));
    } else if (cfg.mode == quant::Mode::Static) {
      check(have_data || cfg.activations.range == quant::RangeMethod::Bn,
            "static quantization needs calibration data: pass --data SPEC (or --data-free, or --range bn for "
            "BN-based ranges)");
      if (have_data) {
        data->reset();
        for (auto& n : data->notes()) st.notes.push_back("calibration: " + n);
      }
      int64_t total = have_data ? data->size() : 0;
      if (opt.progress) opt.progress("calibrate", 0, total);
      Batch b;
      quant::calibrate(
          m, st.plan,
          quant::FeedSource([&](std::map<std::string, Tensor>& f) {
            if (!have_data || !data->next(b)) return false;
            f = std::move(b.inputs);
            return true;
          }),
          [&](int64_t n) { if (opt.progress) opt.progress("calibrate", n, total); },
          [&] { if (have_data) data->reset(); }, st.prep.batch_norms);
    }
  }
  if (cfg.concat_shared_scale && opt.load_encodings.empty()) quant::share_concat_encodings(m, st.plan);
  else if (opt.load_encodings.empty() && cfg.mode == quant::Mode::Static)
    for (auto& l : quant::relax_mixed_range_output_concats(m, st.plan))
      st.notes.push_back("output Concat left unquantized (its inputs' ranges differ too much for one grid): " + l);
  st.cfg = std::move(cfg);
  return out;
}

analysis::Report QuantizedModel::analyze(DataSource& calib, DataSource& eval, const analysis::AnalyzeOptions& opt,
                                         int64_t calib_samples, const ProgressFn& progress) const {
  check(s_->cfg.mode == quant::Mode::Static || s_->cfg.mode == quant::Mode::WeightOnly,
        "analyze covers static and weight-only quantization");
  std::string input = single_input(s_->prepared, "analyze needs a single-input model");
  analysis::EvalSet set;
  eval.reset();
  int64_t n = 0;
  Batch b;
  std::vector<Tensor> parts;
  bool labelled = true;
  while (eval.next(b)) {
    auto it = b.inputs.find(input);
    check(it != b.inputs.end(), eval.describe(), ": a batch has no input '", input, "'");
    parts.push_back(it->second);
    labelled = labelled && (int64_t)b.labels.size() == it->second.dim(0);
    set.labels.insert(set.labels.end(), b.labels.begin(), b.labels.end());
    n += it->second.dim(0);
  }
  check(n > 0, eval.describe(), ": no evaluation samples");
  set.x = concat_rows(parts);
  if (!labelled) set.labels.clear();
  check(opt.metric == analysis::Metric::Sqnr || !set.labels.empty(), "the evaluation data '", eval.describe(),
        "' has no labels: use --metric sqnr");
  Tensor calib_x = calib.take(input, calib_samples);
  return analysis::analyze(s_->original, s_->prepared, s_->plan, s_->cfg, calib_x, set, opt,
                           [&](const std::string& what, size_t done, size_t total) {
                             if (progress) progress(what, (int64_t)done, (int64_t)total);
                           });
}

void write_report(const analysis::Report& r, const QuantConfig& cfg, const std::string& dir, const std::string& name) {
  check(!fs::exists(dir) || fs::is_directory(dir), "-o '", dir, "' exists and is not a folder");
  fs::create_directories(dir);
  if (r.fix) write_file_atomic((fs::path(dir) / "config.json").string(), analysis::fixed_config_json(cfg, *r.fix));
  write_file_atomic((fs::path(dir) / "report.json").string(), analysis::report_json(r, name));
  write_file_atomic((fs::path(dir) / "index.html").string(), analysis::report_html(r, name));
}

}  // namespace lowbit
