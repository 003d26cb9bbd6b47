// lowbit command-line entry point: parses arguments, dispatches, turns errors into one line and exit code 1.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

namespace {
// The data options of eval and quantize: spec, batching, subset, image preprocessing.
void add_data_options(CLI::App* cmd, lowbit::cli::DataArgs& d, const char* spec_help, const char* subset_help) {
  cmd->add_option_function<std::vector<std::string>>(
      "-d,--data",
      [&d](const std::vector<std::string>& v) {
        d.specs = v;
        d.spec = v.empty() ? "" : v[0];
      },
      spec_help);
  cmd->add_option("-b,--batch-size", d.batch_size, "Samples per batch")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("-n,--num-samples", d.num_samples, subset_help)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", d.seed, "Seed for --num-samples")->capture_default_str();
  cmd->add_option("--channels", d.pre.channels, "Convert images to 1 (grey) or 3 (RGB) channels")->check(CLI::IsMember({1, 3}));
  cmd->add_option("--resize", d.pre.resize, "Resize images so the shorter side has this many pixels");
  cmd->add_option("--crop", d.crop, "Center crop HxW (or N for NxN)");
  cmd->add_option("--scale", d.pre.scale, "Pixel scale before mean/std")->capture_default_str();
  cmd->add_option("--mean", d.pre.mean, "Per-channel mean subtracted after scaling")->delimiter(',');
  cmd->add_option("--std", d.pre.std, "Per-channel std divided after subtracting the mean")->delimiter(',');
  cmd->add_flag("--bgr", d.pre.bgr, "Feed 3-channel images in BGR order");
}
// --engine / --profile of run, eval and bench: FP32 as the file says, or the integer engine under a target profile.
void add_engine_options(CLI::App* cmd, lowbit::cli::EngineArgs& e) {
  cmd->add_option("--engine", e.engine, "fp32 (as the file says) or int (a QDQ model as integer kernels)");
  cmd->add_option("--profile", e.profile, "With --engine int: the target profile whose arithmetic to run");
}
// The quantizer options analyze and qat share with quantize (help texts differ where the meaning does).
void add_quant_options(CLI::App* cmd, lowbit::cli::QuantizeArgs& q, const char* range_help,
                       const char* weight_range_help, const char* pipeline_help, const char* cle_help) {
  cmd->add_option("--config", q.config, "Quantization config JSON");
  cmd->add_option("--profile", q.profile, "Hardware profile name or JSON file (see quantize --help)");
  cmd->add_option("--weights", q.weights, "Weight bit width, e.g. w8, w4");
  cmd->add_option("--acts", q.acts, "Activation bit width, e.g. a8, a4");
  auto* pt = cmd->add_flag("--per-tensor", q.per_tensor, "Per-tensor weight quantization");
  auto* pc = cmd->add_flag("--per-channel", q.per_channel, "Per-channel weight quantization (default)");
  pt->excludes(pc);
  cmd->add_option("--range", q.range, range_help);
  cmd->add_option("--weight-range", q.weight_range, weight_range_help);
  cmd->add_option("--pipeline", q.pipeline, pipeline_help);
  cmd->add_flag("--cle,!--no-cle", q.cle, cle_help);
}
// Output paths must name something: an empty -o used to surface as a filesystem exception.
const CLI::Validator kNonEmptyPath(
    [](std::string& s) { return s.empty() ? std::string("the path is empty") : std::string(); }, "PATH", "NonEmptyPath");

const char* kSpecHelp =
    "Dataset spec: fashion-mnist:test, fashion-mnist:train[0:1000], idx:FILE[,labels=FILE], images:DIR[,labels=FILE], "
    "npy:FILE[,labels=FILE]. quantize: once per model input as NAME=npy:FILE (dtype kept; a 0-d array is fed with "
    "every batch), or npz:FILE keyed by input name, or batches:DIR of .npz batches whose shapes may differ";
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lowbit: neural-network quantization toolkit"};
  app.require_subcommand(1);
  lowbit::cli::InfoArgs info;
  auto* ci = app.add_subcommand("info", "Show a model's opsets, inputs/outputs, parameters and ops");
  ci->add_option("model", info.model, "ONNX model file")->required();
  ci->add_flag("--json", info.json, "Print JSON");
  lowbit::cli::RunArgs run;
  auto* cr = app.add_subcommand("run", "Run a model in FP32 on NumPy inputs");
  cr->add_option("model", run.model, "ONNX model file")->required();
  cr->add_option("-i,--input", run.inputs, "NAME=FILE.npy, FILE.npy (single-input model) or FILE.npz");
  cr->add_option("-o,--output", run.output, "Write outputs to FILE.npz (or FILE.npy for one output)")->check(kNonEmptyPath);
  add_engine_options(cr, run.engine);
  lowbit::cli::ExportArgs ex;
  auto* cx = app.add_subcommand("export", "Re-export a model through lowbit's IR (checked before it is written)");
  cx->add_option("model", ex.model, "ONNX model file")->required();
  cx->add_option("-o,--output", ex.output, "Output ONNX file")->required()->check(kNonEmptyPath);
  cx->add_flag("--fold-constants", ex.fold_constants, "Fold Shape/Gather/Concat/Unsqueeze-style constant sub-graphs");
  cx->add_option("--external-data", ex.external_threshold,
                 "Store initializers of at least this many bytes in OUTPUT.data");
  lowbit::cli::QuantizeArgs qa;
  auto* cq = app.add_subcommand("quantize", "Quantize an FP32 model: calibrate and write a QDQ ONNX model");
  cq->add_option("model", qa.model, "FP32 ONNX model")->required();
  cq->add_option("-o,--output", qa.output, "Quantized ONNX model to write")->required()->check(kNonEmptyPath);
  qa.data.num_samples = 1000;
  add_data_options(cq, qa.data, kSpecHelp, "Calibration samples (a seeded random subset)");
  cq->add_option("--config", qa.config, "Quantization config JSON (over the profile's config with --profile)");
  cq->add_option("--profile", qa.profile,
                 "Hardware profile: academic, onnxruntime-cpu, openvino-cpu, tensorrt, snpe, qnn, tflite, fbgemm, "
                 "qnnpack, tvm, vitis, or a profile JSON file; the config starts from it and must fit it");
  cq->add_option("--weights", qa.weights, "Weight bit width, e.g. w8, w4");
  cq->add_option("--acts", qa.acts, "Activation bit width, e.g. a8, a16");
  auto* pt = cq->add_flag("--per-tensor", qa.per_tensor, "Per-tensor weight quantization");
  auto* pc = cq->add_flag("--per-channel", qa.per_channel, "Per-channel weight quantization (default)");
  pt->excludes(pc);
  cq->add_option("--group", qa.group, "Per-group weight quantization with blocks of G");
  cq->add_option("--range", qa.range, "Activation range: minmax, ema, percentile, mse, kl");
  cq->add_option("--weight-range", qa.weight_range, "Weight range: minmax or mse");
  cq->add_option("--mode", qa.mode, "static (default), weight-only, dynamic or fp16");
  cq->add_flag("--strict", qa.strict, "Fail, listing them, if any op would stay in float (integer-only targets)");
  cq->add_option("--save-encodings", qa.save_encodings, "Also write every quantizer's encoding to this JSON file");
  cq->add_option("--encodings-format", qa.encodings_format,
                 "lowbit (default; --load-encodings reads it) or aimet (AIMET 0.6.1, for Qualcomm's converters, with "
                 "--save-prepared); the snpe and qnn profiles default to aimet");
  cq->add_option("--load-encodings", qa.load_encodings, "Apply encodings from this JSON file instead of calibrating");
  cq->add_option("--pipeline", qa.pipeline,
                 "standard: the white paper's PTQ pipeline (CLE, MSE weight ranges, AdaRound with --data or analytical "
                 "bias correction without, MSE + cross-entropy activation ranges); none (default)");
  cq->add_flag("--data-free", qa.data_free,
               "The standard pipeline with no data: BN-based activation ranges, analytical bias correction");
  cq->add_flag("--cle,!--no-cle", qa.cle, "Cross-layer equalization on/off");
  cq->add_flag("--high-bias-absorption,!--no-high-bias-absorption", qa.high_bias_absorption,
               "High-bias absorption after CLE on/off");
  cq->add_option("--relu6", qa.relu6, "CLE across ReLU6: relu (replace by ReLU, as the paper) or skip");
  cq->add_option("--bias-correction", qa.bias_correction, "none, empirical (needs --data) or analytical (needs BatchNorms)");
  cq->add_flag("--adaround,!--no-adaround", qa.adaround, "AdaRound weight rounding on/off (needs --data)");
  cq->add_option("--adaround-iters", qa.adaround_iters, "AdaRound Adam steps per layer");
  cq->add_option("--ptq-samples", qa.ptq_samples, "Calibration samples kept for AdaRound / empirical bias correction");
  cq->add_option("--input-range", qa.input_range, "Data-free: the model input's value range LO,HI (e.g. 0,1)");
  cq->add_option("--save-prepared", qa.save_prepared,
                 "Also write the float model the quantizers see (after BN folding, CLE, bias correction, AdaRound)");
  lowbit::cli::EvalArgs ev;
  auto* ce = app.add_subcommand("eval", "Top-1/top-5 accuracy on a dataset, and fidelity against a reference model");
  ce->add_option("model", ev.model, "ONNX model file")->required();
  add_data_options(ce, ev.data, kSpecHelp, "Evaluate a seeded random subset of this many samples");
  ce->get_option("--data")->required();
  ce->add_option("--reference", ev.reference, "Compare outputs with this model (mean/max error, SQNR, cosine, agreement)");
  ce->add_flag("--json", ev.json, "Print the results as JSON (no progress output)");
  add_engine_options(ce, ev.engine);
  lowbit::cli::AnalyzeArgs an;
  auto* ca = app.add_subcommand("analyze", "Find which quantizers lose accuracy and why: an HTML + JSON report, "
                                           "recommendations and an optional mixed-precision config");
  ca->add_option("model", an.q.model, "FP32 ONNX model")->required();
  an.q.data.num_samples = 1000;
  add_data_options(ca, an.q.data, kSpecHelp, "Calibration samples (a seeded random subset)");
  ca->get_option("--data")->required();
  ca->add_option("--eval-data", an.eval_data, "Evaluation data spec (default: --data), e.g. fashion-mnist:test");
  ca->add_option("--eval-samples", an.eval_samples, "Evaluation samples (a seeded random subset)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  ca->add_option("--metric", an.metric, "accuracy (top-1, needs labels) or sqnr (output SQNR against FP32)")
      ->capture_default_str();
  ca->add_option("-o,--output", an.out_dir, "Report folder (index.html, report.json, config.json)")->required()->check(kNonEmptyPath);
  ca->add_option("--target-drop", an.target_drop,
                 "Mixed-precision fix: raise the most sensitive quantizers until the accuracy drop is within this");
  ca->add_option("--raise-bits", an.raise_bits, "Bits for raised quantizers (default: 8 below 8 bits, else 16)");
  add_quant_options(ca, an.q, "Activation range method", "Weight range: minmax or mse",
                    "standard: analyze the model after the standard PTQ pipeline", "Cross-layer equalization on/off");
  lowbit::cli::GapArgs gp;
  auto* cg = app.add_subcommand("gap", "The deployment gap per hardware profile: FP32, simulated and integer-engine "
                                       "accuracy, and per integer layer how many codes the simulation gets wrong");
  cg->add_option("model", gp.model, "FP32 ONNX model (quantized here with each profile), or a QDQ model with --qdq")
      ->required();
  gp.data.num_samples = 1000;
  add_data_options(cg, gp.data, kSpecHelp, "Calibration samples (a seeded random subset)");
  cg->add_option("--eval-data", gp.eval_data, "Evaluation data spec, e.g. fashion-mnist:test")->required();
  cg->add_option("--eval-samples", gp.eval_samples, "Evaluation samples (a seeded random subset; default all)")
      ->check(CLI::PositiveNumber);
  cg->add_option("--profile", gp.profiles, "A profile to measure (repeat for several; default every shipped one)");
  cg->add_flag("--qdq", gp.qdq, "The model is a QDQ model already (lowbit's or another tool's): measure it under --profile");
  cg->add_option("--reference", gp.reference, "With --qdq: the FP32 model, for its accuracy");
  cg->add_option("-o,--output", gp.out_dir, "Report folder (index.html, gap.json)")->required()->check(kNonEmptyPath);
  cg->add_flag("--json", gp.json, "Print gap.json instead of the table (no progress output)");
  lowbit::cli::QatArgs qt;
  auto* cqt = app.add_subcommand("qat", "Quantization-aware training: PTQ initialisation, training with quantizers "
                                        "in the loop, then the same QDQ export as quantize");
  cqt->add_option("model", qt.q.model, "FP32 ONNX model")->required();
  cqt->add_option("-o,--output", qt.q.output, "Trained QDQ ONNX model to write")->required()->check(kNonEmptyPath);
  qt.q.data.batch_size = 64;
  add_data_options(cqt, qt.q.data, kSpecHelp, "Training rows kept (a seeded random subset; default all)");
  cqt->get_option("--data")->required();
  cqt->add_option("--val", qt.val, "Validation data spec, evaluated after each epoch (e.g. fashion-mnist:test)");
  cqt->add_option("--val-samples", qt.val_samples, "Validation samples (a seeded subset; default all)")
      ->check(CLI::PositiveNumber);
  cqt->add_option("--calib-samples", qt.calib_samples, "Training rows that set the initial ranges")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cqt->add_option("--epochs", qt.epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
  cqt->add_option("--steps-per-epoch", qt.steps_per_epoch, "Stop each epoch after this many steps (default: a full pass)")
      ->check(CLI::PositiveNumber);
  cqt->add_option("--method", qt.method, "ste (scales fixed), lsq (learned scales), lsq+ (scales and offsets) or pact (learned activation clipping)")
      ->capture_default_str();
  cqt->add_option("--bn-fold", qt.bn_fold,
                  "BatchNorm folding (MQBench 0-4): 0 fold once before training, 1 fold in the graph with gamma/beta "
                  "trained, 2 fold batch statistics of a float copy, 3 fold running statistics and correct to batch "
                  "statistics, 4 BatchNorm with batch statistics after the quantized layer")
      ->capture_default_str();
  cqt->add_option("--freeze-bn-step", qt.freeze_bn_step, "--bn-fold 2-4: use and keep the running statistics from this step on")
      ->check(CLI::PositiveNumber);
  cqt->add_option("--optimizer", qt.optimizer, "sgd, adam or adamw")->capture_default_str();
  cqt->add_option("--lr", qt.lr, "Learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cqt->add_option("--quant-lr", qt.quant_lr, "Learning-rate multiplier for scales and offsets")->capture_default_str();
  cqt->add_option("--momentum", qt.momentum, "SGD momentum")->capture_default_str();
  cqt->add_flag("--nesterov", qt.nesterov, "SGD with Nesterov momentum");
  cqt->add_option("--weight-decay", qt.weight_decay, "Weight decay (L2; decoupled with adamw)")->capture_default_str();
  cqt->add_option("--schedule", qt.schedule, "constant, step or cosine")->capture_default_str();
  cqt->add_option("--warmup", qt.warmup, "Linear warm-up steps")->capture_default_str();
  cqt->add_option("--distill", qt.distill, "Weight of the distillation loss against the FP32 model (0-1)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cqt->add_option("--temperature", qt.temperature, "Distillation temperature")->capture_default_str();
  cqt->add_option("--checkpoint", qt.checkpoint, "Write a checkpoint (.npz) after every epoch")->check(kNonEmptyPath);
  cqt->add_flag("--resume", qt.resume, "Continue from --checkpoint");
  cqt->add_flag("--profile-ops", qt.profile_ops, "Print the forward and reverse seconds per op type after each epoch");
  cqt->add_option("--stop-after", qt.stop_after, "End after this many of the --epochs (continue later with --resume)")
      ->check(CLI::PositiveNumber);
  add_quant_options(cqt, qt.q, "Initial activation ranges (default mse)",
                    "Initial weight ranges: minmax or mse (default mse)", "standard: start from the standard PTQ pipeline",
                    "Cross-layer equalization before training on/off");
  cqt->add_option("--save-encodings", qt.q.save_encodings, "Also write the trained encodings to this JSON file");
  lowbit::cli::BenchArgs bn;
  auto* cb = app.add_subcommand("bench", "Time inference in-process, FP32 or the integer engine (warm-up, median "
                                         "and p90, images/s, peak memory; per-op profile) and print JSON");
  cb->add_option("model", bn.model, "ONNX model file")->required();
  cb->add_option("-b,--batch", bn.opt.batch, "Batch size (fills a symbolic leading dimension)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cb->add_option("-t,--threads", bn.opt.threads, "Threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::PositiveNumber);
  cb->add_option("--warmup", bn.opt.warmup, "Untimed runs first")->capture_default_str()->check(CLI::NonNegativeNumber);
  cb->add_option("--reps", bn.opt.reps, "Timed runs")->capture_default_str()->check(CLI::PositiveNumber);
  cb->add_option("--min-time", bn.opt.min_seconds, "Keep timing until this many seconds are spent")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cb->add_flag("--profile-ops", bn.opt.profile_ops, "Add the time per op type and the slowest nodes");
  add_engine_options(cb, bn.engine);
  cb->add_option("--shape", bn.shapes, "Full input shape NAME=D0xD1x... for inputs with symbolic dims");
  cb->add_option("-i,--input", bn.inputs, "Feed an input from NAME=FILE.npy instead of random values");
  cb->add_option("-o,--output", bn.output, "Also write the JSON to this file")->check(kNonEmptyPath);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Bad arguments are bad input like any other: one line, exit code 1.
    std::fprintf(stderr, "lowbit: error: %s (see lowbit --help)\n", e.what());
    return 1;
  }
  try {
    if (*ci) return lowbit::cli::cmd_info(info);
    if (*cr) return lowbit::cli::cmd_run(run);
    if (*cx) return lowbit::cli::cmd_export(ex);
    if (*cq) return lowbit::cli::cmd_quantize(qa);
    if (*ca) return lowbit::cli::cmd_analyze(an);
    if (*cb) return lowbit::cli::cmd_bench(bn);
    if (*cqt) return lowbit::cli::cmd_qat(qt);
    if (*cg) return lowbit::cli::cmd_gap(gp);
    if (*ce) {
      return lowbit::cli::cmd_eval(ev);
    }
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lowbit: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
