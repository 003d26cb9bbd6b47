// Validation of a freshly parsed model, before anything else (ONNX shape inference included) touches the graph.
#pragma once
#include <string>

#include "ir/graph.h"

namespace lowbit {

// Checks every node of the default ONNX domain against the attribute and input constraints lowbit and ONNX's
// shape inference rely on: attribute types (an 'axis' is an int, 'strides' a list of ints), ranges (strides,
// dilations, kernel sizes, groups and block sizes positive; pads not negative), consistent lengths of the
// conv/pool attribute lists, and ranks where they are known statically (declared inputs, initializers, and what
// follows from them through rank-preserving ops). Throws Error "<origin>: node '<name>' (<op>): <what is wrong>".
// Nested graphs (If/Loop bodies) are checked too.
void validate_model(const Model& m, const std::string& origin);

}  // namespace lowbit
