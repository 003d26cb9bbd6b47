// lowbit public API: the quantization workflow (load -> prepare -> calibrate -> PTQ steps -> export), evaluation
// and analysis. The CLI's `quantize`, `eval` and `analyze` are these calls plus argument parsing and printing.
//
//   lowbit::Model m = lowbit::Model::load("model.onnx");
//   auto data = lowbit::open_data({"fashion-mnist:train"}, m, {.batch_size = 100, .num_samples = 1000});
//   lowbit::QuantConfig cfg = lowbit::default_config();
//   cfg.weights.spec.grid.bits = 4;
//   lowbit::QuantizedModel q = lowbit::quantize(m, data.get(), cfg);
//   q.export_qdq("model.qdq.onnx");
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "backends/lower.h"
#include "backends/profile.h"
#include "data.h"
#include "ptq/pipeline.h"
#include "quant/config.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "session.h"

namespace lowbit {

// The config file's content as a typed struct (quant/config.h documents every field and its JSON key).
using QuantConfig = quant::QuantConfig;
using quant::config_to_json;   // the config as JSON that parse_config reads back to the same config
using quant::default_config;
using quant::parse_config;     // (json_text, origin): JSON over the defaults; Error naming origin and the key
// Reads a config JSON file over `base` (the defaults, or a profile's config); Error naming the file and the key.
QuantConfig load_config(const std::string& path, const QuantConfig& base = default_config());

// Hardware profiles (backends/profile.h): what a target runs, as data. load_profile takes a shipped name
// ("tflite", "tensorrt", ...; profile_names() lists them) or a path to a JSON file; profile.config is the config to
// start from, and quantize() checks the final config against the profile.
using backends::Profile;
using backends::EncodingsFormat;
using backends::load_profile;
using backends::profile_names;
// The integer engine: a QDQ model (lowbit's or another tool's) lowered to integer Conv/Gemm/MatMul with the
// profile's requantization arithmetic (kernels/requantize.h); run or evaluate the result like any model.
using backends::LowerReport;
using backends::lower_to_integer;

// Progress of a long step: `what` ("calibrate", "adaround", "eval", ...), samples or items done out of total
// (total <= 0: unknown). Called from the calling thread.
using ProgressFn = std::function<void(const std::string& what, int64_t done, int64_t total)>;
// The CLI's progress display on stderr (a bar on a terminal, a line every 10 % otherwise), as a ProgressFn.
ProgressFn console_progress();

struct QuantizeOptions {
  const Profile* profile = nullptr;  // the target: the config must fit it (check_profile), named in the notes
  std::string load_encodings;  // apply the encodings in this JSON file instead of calibrating (static/weight-only)
  bool strict = false;         // Error, listing them, if any op would stay in float
  ProgressFn progress;         // none: silent
};

// Counts and choices for a summary (what `lowbit quantize` prints).
struct QuantizeSummary {
  int batch_norms_folded = 0, constants_folded = 0;
  size_t weight_quantizers = 0, activation_quantizers = 0, dynamic_activations = 0;
  size_t unsigned_activations = 0;  // static activation quantizers on an unsigned grid ("signed": "auto" picks per tensor)
  std::map<std::string, int> float_ops;  // op type -> nodes that compute in float in the exported model (static)
};

// Accuracy against labels and fidelity against a reference model (what `lowbit eval` prints).
struct EvalResult {
  int64_t samples = 0;
  double seconds = 0;
  bool has_labels = false, has_top5 = false, has_reference = false;
  double top1 = 0, top5 = 0, reference_top1 = 0;  // percent
  double mean_abs_error = 0, max_abs_error = 0, sqnr_db = 0, cosine_similarity = 0, top1_agreement = 0;
};
struct EvalOptions {
  const Model* reference = nullptr;  // compare outputs with this model's
  ProgressFn progress;
};
// Runs `model` over one pass of `data` (first graph output: the logits). Errors name the model's `source_path`
// and the data's describe() when the data does not fit the model's input.
EvalResult evaluate(const Model& model, DataSource& data, const EvalOptions& opt = {});

struct QatOptions;

class QuantizedModel {
 public:
  QuantizedModel();
  ~QuantizedModel();
  QuantizedModel(QuantizedModel&&) noexcept;
  QuantizedModel& operator=(QuantizedModel&&) noexcept;

  const Model& original() const;  // as loaded
  const Model& prepared() const;  // the float model the quantizers see (BN folded, CLE, bias correction, AdaRound)
  const QuantConfig& config() const;
  const quant::QuantSimPlan& plan() const;  // every quantizer with its encoding
  const std::vector<ptq::StepLog>& logs() const;
  const std::vector<std::string>& notes() const;  // lines for the summary (opset converted, ops left in float, ...)
  QuantizeSummary summary() const;

  // The QDQ ONNX model (QuantizeLinear/DequantizeLinear pairs): built once, on first use.
  const Model& qdq_model() const;
  int int32_biases() const;  // biases stored as int32 (config int32_bias)
  // Writes the QDQ model (atomically; refuses to overwrite the original model's file).
  void export_qdq(const std::string& path) const;
  // Every quantizer's encoding as JSON: lowbit's format (quant/encodings_io.h; --load-encodings reads it back) or
  // AIMET's 0.6.1 format (quant/aimet_encodings.h; names the prepared model's tensors, for Qualcomm's converters).
  std::string encodings_json(EncodingsFormat format = EncodingsFormat::Lowbit) const;
  void save_encodings(const std::string& path, EncodingsFormat format = EncodingsFormat::Lowbit) const;
  void save_prepared(const std::string& path) const;
  // Evaluates the QDQ model: the numbers the exported file gives.
  EvalResult evaluate(DataSource& data, const EvalOptions& opt = {}) const;
  // The white paper's debugging flow (per-quantizer sensitivity, SQNR, recommendations, optional mixed-precision
  // fix) on `calib_samples` calibration samples from `calib` and every sample of `eval`.
  analysis::Report analyze(DataSource& calib, DataSource& eval, const analysis::AnalyzeOptions& opt = {},
                           int64_t calib_samples = 64, const ProgressFn& progress = {}) const;

 private:
  friend QuantizedModel quantize(const Model&, DataSource*, QuantConfig, const QuantizeOptions&);
  friend QuantizedModel qat(const Model&, DataSource&, DataSource*, QuantConfig, const QatOptions&);
  struct State;
  std::unique_ptr<State> s_;
};

// Quantizes `model` as `cfg` says: BN folding, the PTQ steps of cfg.pipeline, weight encodings, activation ranges
// from `data` (null: none; static mode then needs data_free or BN ranges, or opt.load_encodings). Throws Error for
// a config that cannot run on this model or these data, naming the key or the node.
QuantizedModel quantize(const Model& model, DataSource* data, QuantConfig cfg, const QuantizeOptions& opt = {});

// The analysis report as files in `dir`: index.html, report.json and (with a mixed-precision fix) config.json.
void write_report(const analysis::Report& r, const QuantConfig& cfg, const std::string& dir, const std::string& model_name);

}  // namespace lowbit
