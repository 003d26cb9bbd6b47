// The op table.
#include "runtime/op_registry.h"

#include <algorithm>

namespace lowbit {

const OpRegistry& OpRegistry::builtin() {
  static const OpRegistry reg = [] {
    OpRegistry r;
    register_math_ops(r);
    register_nn_ops(r);
    register_shape_ops(r);
    register_quant_ops(r);
    register_index_ops(r);
    register_control_ops(r);
    register_rnn_ops(r);
    register_int_ops(r);
    // Kernels that handle channels-last inputs (see their code): convolution, batch norm, global average pooling,
    // element-wise maps and broadcasting arithmetic.
    r.set_layout_aware({"Conv", "BatchNormalization", "GlobalAveragePool", "Relu", "Clip", "Sigmoid", "Tanh",
                        "LeakyRelu", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Abs", "Neg", "Sqrt",
                        "Erf", "Gelu", "Exp", "Identity", "Add", "Sub", "Mul", "Div"});
    r.ops_.at("::Conv").fuses_clamp = true;
    return r;
  }();
  return reg;
}

void OpRegistry::add(OpDef def) {
  std::string key = def.domain + "::" + def.op_type;
  ops_[key] = std::move(def);
}

const OpDef* OpRegistry::find(const std::string& domain, const std::string& op_type, int64_t opset) const {
  auto it = ops_.find((domain == "ai.onnx" ? std::string() : domain) + "::" + op_type);
  if (it == ops_.end() || opset < it->second.since_version) return nullptr;
  return &it->second;
}

void OpRegistry::set_layout_aware(const std::vector<std::string>& op_types) {
  for (auto& t : op_types) {
    auto it = ops_.find("::" + t);
    check(it != ops_.end(), "set_layout_aware: no op ", t);
    it->second.layout_aware = true;
  }
}

std::vector<std::string> OpRegistry::op_types() const {
  std::vector<std::string> v;
  for (auto& [_, d] : ops_) v.push_back(d.domain.empty() ? d.op_type : d.domain + "." + d.op_type);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace lowbit
