// The inputs a caller feeds: graph inputs that have no initializer (an input with one has a default value). One
// definition for the executor, the data sources, calibration, quantization and training.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

std::vector<const ValueInfo*> fed_inputs(const Graph& g);
// The name of the single fed input; otherwise the error "<why> (this model has N inputs: a, b)".
std::string single_fed_input(const Graph& g, const std::string& why);

}  // namespace lowbit
