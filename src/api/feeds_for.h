// The feeds of a batch for an executor: by name, or (the model having one required input and the batch one
// array) that array whatever the data calls it. Shared by evaluate() and measure_gap().
#pragma once
#include "lowbit/data.h"
#include "runtime/executor.h"

namespace lowbit {

inline TensorMap feeds_for(const Executor& ex, const Batch& b) {
  auto req = ex.required_inputs();
  if (req.size() == 1 && b.inputs.size() == 1 && !b.inputs.count(req[0]->name))
    return {{req[0]->name, b.inputs.begin()->second}};
  return b.inputs;
}

}  // namespace lowbit
