// Encodings in AIMET's JSON format (version 0.6.1), the file Qualcomm's converters take as quantization overrides
// (qnn-onnx-converter / snpe-onnx-to-dlc --quantization_overrides) next to the float model it names.
//
// { "version": "0.6.1",
//   "activation_encodings": { "<tensor>": [E] },
//   "param_encodings":      { "<weight initializer>": [E, E, ...] },   // one E per output channel when per-channel
//   "excluded_layers": [],
//   "quantizer_args": { "activation_bitwidth", "param_bitwidth", "dtype", "is_symmetric",
//                       "per_channel_quantization", "quant_scheme" } }
// E = { "bitwidth": b, "dtype": "int", "is_symmetric": "True" | "False", "scale": s, "offset": o,
//       "min": o * s, "max": (2^b - 1 + o) * s }
//
// AIMET's grid is always unsigned, q_u = clamp(round(x / s) - o, 0, 2^b - 1), so o = -(the zero point on the
// unsigned grid): for lowbit's unsigned grids o = -z, for signed ones o = -(z + 2^(b-1)) (an int8 code c is the
// uint8 code c + 128). The same integer codes, scale and real values as lowbit's QDQ export; min and max are the
// ends of the grid in real values. The tensor names are those of the prepared float model (after BN folding and
// the PTQ steps), which must be written with it.
//
// Not expressible in 0.6.1, and refused with an Error naming the tensor: narrow grids (one code fewer than 2^b),
// per-group weights, dynamic and fp16 modes, and a weight shared by two layers with different encodings.
#pragma once
#include <string>

#include "quant/quantsim.h"

namespace lowbit::quant {

std::string aimet_encodings_json(const QuantSimPlan& plan, const QuantConfig& cfg);

}  // namespace lowbit::quant
