// Quantization simulation with any subset of a plan's quantizers switched on, for analysis: weights are fake-
// quantized in a copy of the prepared FP32 model, activations by executor hooks at the planned tensors. These are
// the numbers the QDQ model of build_quantized_model computes (the same encodings, the same rounding), without
// building and re-validating a model for every one of the hundreds of configurations an analysis tries.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"

namespace lowbit::analysis {

struct Quantizer {
  bool weight = false;
  size_t index = 0;      // into plan.weights or plan.acts
  std::string tensor;    // the quantized tensor
  std::string node;      // weights: the layer; activations: the producer ("" for a model input)
  std::string label() const;  // "weight of conv1" / "activation 'relu1_out'"
};

// The encoding for another bit width over the same range (per slice): for raising a quantizer's precision.
quant::Encoding with_bits(const quant::Encoding& e, int bits);

class QuantSimRunner {
 public:
  // `prepared`: the model after prepare_for_quantization; `plan` with every encoding set; `mode` as given to
  // build_quantized_model (fp16: weights round to half precision; dynamic: activations are quantized per batch by
  // the DynamicQuantizeLinear / DequantizeLinear kernels the QDQ model runs, at 8 bits whatever the setting says).
  QuantSimRunner(const Model& prepared, const quant::QuantSimPlan& plan, quant::Mode mode = quant::Mode::Static);
  const std::vector<Quantizer>& quantizers() const { return q_; }

  // Per quantizer: on/off and bit width (0 = as planned).
  struct Setting {
    std::vector<char> on;
    std::vector<int> bits;
  };
  Setting all(bool on) const;
  // An executor of the model under the setting; `observe` (optional) sees every planned activation tensor (after
  // its quantizer where that is on). Feed it {input_name(): batch}.
  using Observer = std::function<void(const std::string& tensor, const Tensor& value)>;
  std::unique_ptr<Executor> executor(const Setting& s, Observer observe = {}) const;
  const std::string& input_name() const { return input_; }

 private:
  Model model_;
  quant::QuantSimPlan plan_;
  quant::Mode mode_;
  std::vector<Quantizer> q_;
  std::string input_;
};

}  // namespace lowbit::analysis
