// CLI subcommands: argument structs, parsed by main.cpp, and the commands that call the public API
// (include/lowbit/) and print its results.
#pragma once
#include <string>
#include <vector>

#include "analysis/bench.h"
#include "lowbit/lowbit.h"

namespace lowbit::cli {

struct InfoArgs {
  std::string model;
  bool json = false;
};
int cmd_info(const InfoArgs& a);

// --engine int --profile P: the model (a QDQ model) runs as lowbit's integer program under P's arithmetic.
struct EngineArgs {
  std::string engine = "fp32", profile;
};
// The model to run: as loaded, or lowered to the integer program (summary line on stderr).
Model model_for_engine(const std::string& path, const EngineArgs& e, LowerReport* report = nullptr);

struct RunArgs {
  EngineArgs engine;
  std::string model;
  std::vector<std::string> inputs;  // NAME=FILE.npy, FILE.npy (single-input model) or FILE.npz
  std::string output;               // .npz or .npy; empty = print summary only
};
int cmd_run(const RunArgs& a);

struct BenchArgs {
  EngineArgs engine;
  std::string model, output;
  std::vector<std::string> shapes, inputs;  // NAME=D0xD1x..., NAME=FILE.npy
  analysis::BenchOptions opt;
};
int cmd_bench(const BenchArgs& a);

struct ExportArgs {
  std::string model, output;
  bool fold_constants = false;
  size_t external_threshold = 0;
};
int cmd_export(const ExportArgs& a);

// Where data comes from and how it is read (shared by eval and quantize).
struct DataArgs {
  std::string spec;                // the first --data (empty: no data)
  std::vector<std::string> specs;  // every --data (one per model input: NAME=SPEC)
  int64_t batch_size = 100, num_samples = -1;
  uint64_t seed = 0;
  std::string crop;  // "HxW" or "N", parsed by loader_options()
  data::Preprocess pre;
};
// Loader options from the arguments; throws Error for a malformed --crop.
data::LoaderOptions loader_options(const DataArgs& d);

struct EvalArgs {
  EngineArgs engine;
  std::string model, reference;
  DataArgs data;
  bool json = false;
};
int cmd_eval(const EvalArgs& a);

struct QuantizeArgs {
  std::string model, output, config, weights, acts, range, weight_range, mode;
  std::string profile;  // a shipped profile name or a profile JSON file
  std::string save_encodings, load_encodings;  // encodings JSON out / in
  std::string encodings_format;                // lowbit | aimet (default: the profile's)
  DataArgs data;  // num_samples defaults to 1000 calibration samples
  int64_t group = 0;
  bool per_tensor = false, per_channel = false, strict = false;
  // PTQ pipeline (ptq/): preset and per-step switches (+1 on, -1 off, 0 as the preset/config says).
  std::string pipeline, bias_correction, relu6, input_range, save_prepared;
  int cle = 0, high_bias_absorption = 0, adaround = 0;
  int adaround_iters = -1;
  int64_t ptq_samples = -1;
  bool data_free = false;
};
int cmd_quantize(const QuantizeArgs& a);

// The quantization config from a config file and the command line (shared by quantize and analyze).
quant::QuantConfig config_from_args(const QuantizeArgs& a);
// Loads the model and the --data sources and quantizes as `cfg` says, with progress on stderr.
QuantizedModel quantize_from_args(const QuantizeArgs& a, const quant::QuantConfig& cfg);

// Peak resident memory of this process in MiB.
inline double peak_rss_mib() { return (double)analysis::peak_rss_bytes() / (1024.0 * 1024.0); }

struct AnalyzeArgs {
  QuantizeArgs q;          // model, calibration data, config and bit-width options (output unused)
  std::string eval_data;   // evaluation data spec (default: --data)
  int64_t eval_samples = 1000;
  std::string metric = "accuracy", out_dir;
  double target_drop = -1;
  int raise_bits = 0;
};
int cmd_analyze(const AnalyzeArgs& a);
// lowbit gap: per profile, FP32 / simulation / integer-engine accuracy and the per-layer code divergence.
struct GapArgs {
  std::string model, out_dir;
  std::vector<std::string> profiles;  // empty: every shipped profile (FP32 model)
  DataArgs data;                      // calibration data (FP32 model)
  std::string eval_data, reference;   // evaluation data; with --qdq, the FP32 model for its accuracy
  int64_t eval_samples = -1;
  bool qdq = false, json = false;
};
int cmd_gap(const GapArgs& a);

// lowbit qat: PTQ initialisation with the quantize options, then training (train/qat.h), then quantize's export.
struct QatArgs {
  QuantizeArgs q;              // model, -o, config/profile/bits/ranges/pipeline, --data (training data), encodings
  std::string val;             // validation data spec (each epoch); empty: none
  int64_t val_samples = -1, calib_samples = 1000;
  std::string method = "lsq", optimizer = "adam", schedule = "cosine";
  int epochs = 1, bn_fold = 0, stop_after = 0;
  int64_t steps_per_epoch = 0, warmup = 0, freeze_bn_step = 0;
  double lr = 1e-4, quant_lr = 1.0, momentum = 0.9, weight_decay = 0, distill = 0, temperature = 1;
  bool nesterov = false, resume = false, profile_ops = false;
  std::string checkpoint;
};
int cmd_qat(const QatArgs& a);

}  // namespace lowbit::cli
