// ONNX model import/export for the IR (official ONNX protobuf library underneath).
#pragma once
#include <cstddef>
#include <string>

#include "ir/graph.h"

namespace lowbit {

struct LoadOptions {
  bool infer_types = true;  // describe node outputs by element type (ir/infer_types.h) where the file does not
};

// Loads a model file; external-data initializers are read relative to the model's folder.
// Throws Error naming the file (and node/initializer) on malformed input.
Model load_onnx(const std::string& path, const LoadOptions& opt = {});
// Parses model bytes; `origin` names the source in messages, `base_dir` resolves external data.
Model parse_onnx(const std::string& bytes, const std::string& origin, const std::string& base_dir,
                 const LoadOptions& opt = {});

struct SaveOptions {
  // Initializers of at least this many bytes go to an external data file "<model file>.data".
  // 0 means: only when the model would not fit a 2 GB protobuf.
  size_t external_threshold = 0;
  bool run_checker = true;  // check versions, attributes and graph structure (lowbit's own checks) before writing
};

// Writes atomically (temporary file + rename): on any failure the destination is left untouched.
void save_onnx(const Model& m, const std::string& path, const SaveOptions& opt = {});
// Serialises to bytes (no external data).
std::string serialize_onnx(const Model& m, bool run_checker = true);

// Reads a serialized TensorProto file (as in ONNX test data, input_0.pb).
Tensor load_tensor_pb(const std::string& path);

// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace lowbit
