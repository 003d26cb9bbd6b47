// What a QuantizedModel holds (shared by the PTQ and QAT entry points of the API).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lowbit/quantize.h"

namespace lowbit {

struct QuantizedModel::State {
  Model original, prepared;
  QuantConfig cfg;
  quant::PrepareStats prep;
  quant::QuantSimPlan plan;
  std::vector<ptq::StepLog> logs;
  std::vector<std::string> notes;
  mutable std::unique_ptr<Model> qdq;
  mutable int int32_biases = 0;
};

}  // namespace lowbit
