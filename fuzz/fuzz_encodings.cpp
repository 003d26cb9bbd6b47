// libFuzzer target: encodings JSON (--load-encodings) applied to the bundled model's quantizer plan. Any text is
// applied or refused with lowbit::Error; nothing else may happen.
#include <cstdint>
#include <string>

#include "ir/onnx_io.h"
#include "quant/encodings_io.h"
#include "quant/fold_bn.h"

using namespace lowbit;

namespace {
struct Fixture {
  Model model;
  quant::QuantSimPlan plan;
};
Fixture& fixture() {
  static Fixture f = [] {
    Fixture x{load_onnx(LOWBIT_SOURCE_DIR "/models/fashion_cnn.onnx"), {}};
    quant::prepare_for_quantization(x.model);
    x.plan = quant::plan_quantizers(x.model, quant::default_config());
    return x;
  }();
  return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  Fixture& f = fixture();
  quant::QuantSimPlan plan = f.plan;
  try {
    quant::apply_encodings(plan, f.model, text, "fuzz.encodings.json");
  } catch (const Error&) {
  }
  return 0;
}
