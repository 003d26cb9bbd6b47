// libFuzzer target: the model loader as a user meets it. Bytes -> parse + validate (+ ONNX shape inference on
// validated models) -> Executor -> one run on small deterministic inputs. lowbit::Error (and any other exception,
// which the CLI prints as one error line) is a correct answer; a crash, a sanitizer report, a leak or a run over
// libFuzzer's -timeout is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/checked.h"
#include "ir/onnx_io.h"
#include "runtime/executor.h"

using namespace lowbit;

namespace {
// Inputs get their declared shape with every unknown dimension set to 2; larger inputs are not fed.
constexpr int64_t kMaxInputElements = 1 << 16;

bool make_input(const ValueInfo& v, Tensor* out) {
  if (!v.has_shape) return false;
  Shape s;
  for (auto& d : v.shape) s.push_back(d.fixed() ? d.value : 2);
  int64_t n = 1;
  for (auto d : s) {
    if (d < 0 || (d > 0 && n > kMaxInputElements / d)) return false;
    n *= d;
  }
  if (v.dtype == DType::Undefined || dtype_size(v.dtype) == 0) return false;
  Tensor t(v.dtype, s);
  auto* p = static_cast<uint8_t*>(t.raw_mut());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = (uint8_t)(i * 37 + 11);  // arbitrary bits; floats may be NaN
  if (v.dtype == DType::Bool)
    for (int64_t i = 0; i < t.numel(); ++i) p[i] &= 1;
  *out = t;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Tensors a fuzzed model may ask for stay small, so the fuzzer finds crashes rather than running out of memory.
  set_memory_budget(int64_t(256) << 20);
  set_loop_iteration_limit(10000);  // a Loop with a huge trip count is refused, not run
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    // An empty folder as base: external data can only be refused.
    Model m = parse_onnx(bytes, "fuzz.onnx", "/nonexistent-lowbit-fuzz-dir");
    Executor ex(m);
    TensorMap feeds;
    for (auto* v : ex.required_inputs()) {
      Tensor t;
      if (!make_input(*v, &t)) return 0;
      feeds[v->name] = t;
    }
    ex.run(feeds);
  } catch (const std::exception&) {
  }
  return 0;
}
