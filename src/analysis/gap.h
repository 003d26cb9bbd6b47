// The deployment gap (MQBench's "hardware gap", issue 16): per hardware profile, the accuracy of the FP32 model, of
// lowbit's float simulation of the profile's QDQ model, and of the same file run by the integer engine under the
// profile's requantization arithmetic; and, per integer layer, how far the simulation's integer codes are from the
// engine's, two ways:
//  - isolated: the engine's layer gets the simulation's input codes (every quantized tensor the engine reads is
//    replaced by the simulation's codes as it is produced), so the difference is the layer's own arithmetic
//    (requantization multiplier and rounding, bias rounding) and nothing else;
//  - propagated: both runs start from the same model input and each carries its own codes forward, the divergence
//    a user sees on the device, including what earlier layers passed on.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit::analysis {

struct CodeDiff {
  int64_t elements = 0, differing = 0;
  int64_t max_steps = 0;  // max |code_sim - code_int| in steps of the output grid
  double differing_percent() const { return elements ? 100.0 * (double)differing / (double)elements : 0; }
  // Adds one batch: simulation and engine codes of one tensor (same shape, integer dtypes); `what` names it.
  void add(const Tensor& sim, const Tensor& engine, const std::string& what);
};

struct LayerGap {
  std::string node;    // the integer node (lowbit.int IntConv / IntMatMul / IntAdd)
  std::string tensor;  // its output codes (the QuantizeLinear output in the QDQ model)
  CodeDiff isolated, propagated;
};

struct ProfileGap {
  std::string profile;
  std::string multiplier, rounding;  // the profile's requantization arithmetic
  std::string softmax = "float";    // how it runs a quantized Softmax (backends/profile.h: float | exp_table)
  std::string bias = "int32";       // where a layer's bias enters (backends/profile.h: int32 | float)
  int integer_layers = 0;
  int float_output_layers = 0;  // integer layers whose output is float (float bias, no output quantizer): not compared
  std::map<std::string, int> float_islands;  // op type -> nodes computing in float between quantizers
  std::vector<std::string> left_in_float;    // LowerReport::skipped: "node: why" for layers the lowering did not take
  double sim_top1 = 0, int_top1 = 0;          // percent (labelled data)
  double top1_agreement = 0;                  // percent of samples where simulation and engine agree on top-1
  double output_identical_percent = 0;        // elements of the first output equal to the bit
  double output_max_abs_diff = 0;
  std::vector<LayerGap> layers;               // in the engine's execution order
};

struct GapReport {
  std::string model, data;
  int64_t samples = 0;
  bool labelled = false;
  bool has_fp32 = false;  // labelled data and the FP32 model known (not so for --qdq without --reference)
  double fp32_top1 = 0;
  std::vector<ProfileGap> profiles;
};

std::string gap_json(const GapReport& r);
// One profile's entry of gap_json (also in the analyze report's JSON).
nlohmann::json profile_gap_json(const ProfileGap& p, bool labelled);
// A self-contained HTML page (no scripts, no network), the tables of gap_json.
std::string gap_html(const GapReport& r);
// The per-profile section of that page (also embedded in the analyze report).
std::string gap_html_section(const ProfileGap& p, bool labelled);

}  // namespace lowbit::analysis
