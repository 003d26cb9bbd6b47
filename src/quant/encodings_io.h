// Encodings file: every quantizer of a quantized model as JSON, written next to the model and applicable again to
// the FP32 model (lowbit quantize --load-encodings) for an identical result without calibration.
//
// { "format": "lowbit-encodings", "version": 1,
//   "activations": { "<tensor>": Q, ... },
//   "weights":     { "<weight tensor>@<node>": Q, ... } }
// Q = { "bits": 8, "dtype": "uint8" | "int8" | "uint16" | "int16", "signed": false, "narrow": false,
//       "symmetric": false, "granularity": "per_tensor" | "per_channel" | "per_group", "axis": 0, "block_size": 0,
//       "scale_form": "float" | "power_of_two", "rounding": "half_even" | "half_away",
//       "scale": [..], "zero_point": [..], "offset": [..] }     // offset = -zero_point (AIMET's convention)
#pragma once
#include <string>

#include "quant/quantsim.h"

namespace lowbit::quant {

std::string encodings_to_json(const QuantSimPlan& plan);
// Sets the encodings of `plan` from the file's entries. Throws Error naming the file and the tensor when an entry is
// missing, names a tensor the plan does not quantize, or does not fit the tensor (slice count, bit width).
void apply_encodings(QuantSimPlan& plan, const Model& m, const std::string& json_text, const std::string& origin);

}  // namespace lowbit::quant
