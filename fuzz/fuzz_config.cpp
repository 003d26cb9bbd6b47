// libFuzzer target: the quantization config JSON (--config). Any text gives a config or a lowbit::Error; a
// config that parses also serialises and parses back.
#include <cstdint>
#include <string>

#include "quant/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  lowbit::quant::QuantConfig c;
  try {
    c = lowbit::quant::parse_config(text, "fuzz.json");
  } catch (const lowbit::Error&) {
    return 0;
  }
  // What lowbit writes it must read back: an exception here escapes and is a finding.
  lowbit::quant::parse_config(lowbit::quant::config_to_json(c), "roundtrip.json");
  return 0;
}
