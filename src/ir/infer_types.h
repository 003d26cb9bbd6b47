// lowbit's own element-type propagation: which values of a graph are float32, int64, bool, ... (quantizer
// placement needs it). It replaces ONNX's shape inference on loaded models, which crashes on malformed ones.
#pragma once
#include "ir/graph.h"

namespace lowbit {

// Adds a value_info entry (element type only, no shape) for every node output whose type follows from its inputs
// and attributes and that the graph does not already describe. Outputs of ops whose types it cannot tell (control
// flow, unknown domains) stay undescribed. Never throws on a validated graph.
void infer_value_types(Graph& g);

}  // namespace lowbit
