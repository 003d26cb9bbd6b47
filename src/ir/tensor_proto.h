// Conversions between lowbit::Tensor and onnx::TensorProto (internal to the ir layer and tests).
#pragma once
#include <string>

#include "core/tensor.h"
#include "onnx/onnx_pb.h"

namespace lowbit {

// `what` names the tensor in errors; `base_dir` resolves external data.
Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& what, const std::string& base_dir);
void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* p);

}  // namespace lowbit
