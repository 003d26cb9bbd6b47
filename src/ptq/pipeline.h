// The PTQ steps of the white paper's pipeline (Fig. 8) as calls the CLI (and tests) compose:
//   prepare_for_quantization -> run_equalization (CLE + high-bias absorption) -> plan_quantizers ->
//   compute_weight_encodings -> run_weight_steps (bias correction, AdaRound) -> activation ranges
//   (calibrate, or set_data_free_ranges) -> build_quantized_model.
// Each step returns a log of what it did, for the summary.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "quant/config.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"

namespace lowbit::ptq {

struct StepLog {
  std::string name;
  double seconds = 0;
  std::vector<std::string> lines;
  std::vector<std::string> warnings;  // for stderr: something the user asked for was not done
};

// Throws Error when the pipeline cannot run on this model as configured (e.g. data-free without BatchNorms).
void check_pipeline(const Model& m, const quant::PipelineConfig& p, const std::map<std::string, quant::BnParams>& bn,
                    bool have_data);

// CLE and high-bias absorption per `p` (nothing when p.cle is off). Updates `bn` with the rescaled parameters.
std::optional<StepLog> run_equalization(Model& m, std::map<std::string, quant::BnParams>& bn, const quant::PipelineConfig& p);

// Bias correction and/or AdaRound per `p`, after compute_weight_encodings. `samples`: one batch of calibration
// input (needed by empirical bias correction and AdaRound).
std::vector<StepLog> run_weight_steps(Model& m, const quant::QuantSimPlan& plan, const quant::PipelineConfig& p,
                                      const std::map<std::string, quant::BnParams>& bn, const Tensor& samples,
                                      const std::function<void(const std::string& what, size_t done, size_t total)>& progress = {});

// Data-free activation ranges (BN statistics propagated through the graph).
StepLog run_data_free_ranges(const Model& m, quant::QuantSimPlan& plan, const std::map<std::string, quant::BnParams>& bn,
                             const quant::PipelineConfig& p);

}  // namespace lowbit::ptq
