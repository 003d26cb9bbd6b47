// GraphBuilder implementation.
#include "ir/builder.h"

namespace lowbit {

Attribute attr_int(const std::string& name, int64_t v) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Int;
  a.i = v;
  return a;
}
Attribute attr_float(const std::string& name, float v) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Float;
  a.f = v;
  return a;
}
Attribute attr_ints(const std::string& name, std::vector<int64_t> v) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Ints;
  a.ints = std::move(v);
  return a;
}
Attribute attr_floats(const std::string& name, std::vector<float> v) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Floats;
  a.floats = std::move(v);
  return a;
}
Attribute attr_string(const std::string& name, const std::string& v) {
  Attribute a;
  a.name = name;
  a.type = AttrType::String;
  a.s = v;
  return a;
}
Attribute attr_tensor(const std::string& name, const Tensor& t) {
  Attribute a;
  a.name = name;
  a.type = AttrType::Tensor;
  a.t = t;
  return a;
}

GraphBuilder::GraphBuilder(int64_t opset, const std::string& name) {
  model_.opsets[""] = opset;
  model_.producer_name = "lowbit";
  model_.graph.name = name;
}

std::string GraphBuilder::input(const std::string& name, DType dt, const std::vector<int64_t>& dims) {
  ValueInfo vi;
  vi.name = name;
  vi.dtype = dt;
  vi.has_shape = true;
  for (size_t i = 0; i < dims.size(); ++i) {
    Dim d;
    if (dims[i] >= 0) d.value = dims[i];
    else d.param = i == 0 ? "N" : "d" + std::to_string(i);
    vi.shape.push_back(d);
  }
  model_.graph.inputs.push_back(vi);
  return name;
}

std::string GraphBuilder::initializer(const std::string& name, Tensor t) {
  model_.graph.initializers[name] = std::move(t);
  return name;
}

std::string GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                               std::vector<Attribute> attrs, int num_outputs, const std::string& name) {
  Node n;
  n.op_type = op;
  n.name = name.empty() ? op + "_" + std::to_string(counter_++) : name;
  n.inputs = inputs;
  n.attrs = std::move(attrs);
  for (int i = 0; i < num_outputs; ++i) n.outputs.push_back(n.name + "_out" + std::to_string(i));
  std::string first = n.outputs.empty() ? "" : n.outputs[0];
  model_.graph.nodes.push_back(std::move(n));
  return first;
}

void GraphBuilder::output(const std::string& value, DType dt) {
  ValueInfo vi;
  vi.name = value;
  vi.dtype = dt;
  model_.graph.outputs.push_back(vi);
}

}  // namespace lowbit
