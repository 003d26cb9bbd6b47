// Hardware profiles as data: what a deployment target can run, as one JSON file per target (profiles/*.json,
// compiled into the library; a user's own file loads by path). A profile is a quantization config (the same keys
// as a config file: quantizers, int32 bias, Concat scales, placement of quantizers) plus what the target allows
// beyond its defaults and how it requantizes:
//
// {
//   "profile": "tflite",                 // the name --profile takes
//   "comment": "where the rules come from (specs, source files, papers)",
//   "config": { ...a lowbit quantization config (quant/config.h)... },
//   "allowed": {"weight_bits": [8], "activation_bits": [8], "weight_granularity": ["per_channel", "per_tensor"],
//               "modes": ["static"]},     // optional; each defaults to the config's own value
//   "requantize": {"multiplier": "float" | "fixed_point" | "shift", "rounding": "half_even" | "half_away" | "half_up",
//                  "bias": "int32" | "float"},  // bias: optional, default int32 (see BiasArith)
//   "encodings": "lowbit" | "aimet",     // optional: the format --save-encodings writes by default
//   "integer_ops": {"softmax": "float" | "exp_table"}   // optional: how the target runs ops beyond the linear
//                                        // layers and Add; "float" (the default) leaves them float islands
// }
//
// Everything else the config sets is fixed by the target: a user's config or flags may change bit widths,
// granularity and mode within "allowed", range methods and the PTQ pipeline, but not signedness, symmetry, narrow
// range, scale form, bias handling, Concat handling or placement; check_profile names what breaks the target.
#pragma once
#include <string>
#include <vector>

#include "quant/config.h"

namespace lowbit::backends {

// The integer arithmetic of requantization (int32 accumulator -> next layer's integer grid) on the target: a float
// multiplier, a fixed-point multiplier with a right shift (gemmlowp/TFLite), or a shift only (power-of-two scales).
enum class Multiplier { Float, FixedPoint, Shift };
enum class IntRounding { HalfEven, HalfAway, HalfUp };
// The encodings file the target's tools read: lowbit's own, or AIMET's (Qualcomm's converters).
enum class EncodingsFormat { Lowbit, Aimet };
// How the target runs a quantized Softmax (DequantizeLinear -> Softmax -> QuantizeLinear): in float (an island of
// the integer program), or on the codes with an exponential table (kernels/int_softmax.h; ONNX Runtime's CPU
// QLinearSoftmax).
enum class SoftmaxArith { Float, ExpTable };
// Where a layer's bias enters: rounded onto the accumulator's grid s_x * s_w and added to the int32 accumulator
// (ONNX Runtime's QLinearConv, TFLite, gemmlowp), or kept in float and added after the accumulator is dequantized,
// the sum then quantized in float (OpenVINO's CPU plugin: oneDNN's output scales and float bias, then the
// FakeQuantize post-op). Float needs a float multiplier. kernels/requantize.h: dequantize_acc, quantize_float.
enum class BiasArith { Int32, Float };

struct Profile {
  std::string name, comment, origin;  // origin: "shipped" or the file it was read from
  quant::QuantConfig config;
  std::vector<int> weight_bits, activation_bits;
  std::vector<quant::Granularity> weight_granularity;
  std::vector<quant::Mode> modes;
  Multiplier multiplier = Multiplier::Float;
  IntRounding rounding = IntRounding::HalfEven;
  EncodingsFormat encodings = EncodingsFormat::Lowbit;
  SoftmaxArith softmax = SoftmaxArith::Float;
  BiasArith bias = BiasArith::Int32;
};

// Parses and validates a profile; Error naming `origin` and the key.
Profile parse_profile(const std::string& json_text, const std::string& origin);
// A shipped profile by name, or a JSON file by path (anything with a '/' or ending in .json).
Profile load_profile(const std::string& name_or_path);
// The names of the shipped profiles, sorted.
std::vector<std::string> profile_names();
// Throws Error, naming the profile and the config key, when `c` asks for something the target cannot run.
void check_profile(const quant::QuantConfig& c, const Profile& p);
const char* multiplier_name(Multiplier m);
const char* int_rounding_name(IntRounding r);
const char* softmax_arith_name(SoftmaxArith s);
const char* bias_arith_name(BiasArith b);
EncodingsFormat parse_encodings_format(const std::string& s, const std::string& where);

}  // namespace lowbit::backends
