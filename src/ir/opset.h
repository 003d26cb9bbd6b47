// ONNX versions lowbit reads and writes, and the conversion of a graph to a newer default-domain opset.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

// The newest IR version and ai.onnx opset lowbit loads and writes: those ONNX Runtime 1.31 (the peer runtime in
// the tests) accepts. A model declaring newer versions is refused at load, naming both versions.
constexpr int64_t kMaxIrVersion = 13;
constexpr int64_t kMaxOpset = 26;

// Raises the ai.onnx opset of m (and of every subgraph) to `target` without changing what the model computes:
// attributes that became inputs move to int64 initializers (Squeeze/Unsqueeze/ReduceSum/Split axes at 13, the other
// Reduce ops' axes at 18, Dropout's ratio at 12), and the Softmax family, whose axis changed meaning at 13, keeps
// its old semantics through Flatten -> op(axis -1) -> Reshape where the axis is not provably the last. Fails,
// naming the node, for a change it cannot express. Returns one line per kind of rewrite (empty if none was needed).
// A model already at or above `target` is left as it is.
std::vector<std::string> upgrade_opset(Model& m, int64_t target);

}  // namespace lowbit
