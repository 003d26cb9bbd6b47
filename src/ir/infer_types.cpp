// Element-type propagation (see infer_types.h): one rule per op family, default "same as input 0".
#include "ir/infer_types.h"

#include <set>
#include <unordered_map>

namespace lowbit {

namespace {

const std::set<std::string> kBoolOut = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And",
                                        "Or", "Xor", "IsNaN", "IsInf"};
const std::set<std::string> kInt64Out = {"Shape", "Size", "ArgMax", "ArgMin", "NonZero", "NonMaxSuppression"};
const std::set<std::string> kUnknown = {"If", "Loop", "Scan", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
                                        "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalGetElement"};

DType attr_dtype(const Node& n, const char* name, DType dflt) {
  const Attribute* a = n.attr(name);
  if (!a || a->type != AttrType::Int) return dflt;
  try {
    return dtype_from_onnx((int32_t)a->i);
  } catch (const Error&) {
    return DType::Undefined;
  }
}

DType constant_dtype(const Node& n) {
  for (auto& a : n.attrs) {
    if (a.name == "value" && a.type == AttrType::Tensor) return a.t.dtype();
    if (a.name == "value_float" || a.name == "value_floats") return DType::Float32;
    if (a.name == "value_int" || a.name == "value_ints") return DType::Int64;
    if (a.name == "value_string" || a.name == "value_strings") return DType::String;
  }
  return DType::Undefined;
}

// Output types of one node given a lookup of input types (Undefined where unknown).
std::vector<DType> output_types(const Node& n, const std::vector<DType>& in) {
  size_t k = n.outputs.size();
  auto input = [&](size_t i) { return i < in.size() ? in[i] : DType::Undefined; };
  std::vector<DType> out(k, input(0));
  if (!n.domain.empty() || kUnknown.count(n.op_type)) return std::vector<DType>(k, DType::Undefined);
  const std::string& op = n.op_type;
  auto all = [&](DType t) { std::fill(out.begin(), out.end(), t); };
  if (kBoolOut.count(op)) all(DType::Bool);
  else if (kInt64Out.count(op)) all(DType::Int64);
  else if (op == "Cast") all(attr_dtype(n, "to", DType::Undefined));
  else if (op == "CastLike") all(input(1));
  else if (op == "Constant") all(constant_dtype(n));
  else if (op == "ConstantOfShape") {
    const Attribute* a = n.attr("value");
    all(a && a->type == AttrType::Tensor ? a->t.dtype() : DType::Float32);
  } else if (op == "QuantizeLinear") all(in.size() > 2 && input(2) != DType::Undefined ? input(2) : DType::UInt8);
  else if (op == "DequantizeLinear") all(input(1));
  else if (op == "DynamicQuantizeLinear") out = {DType::UInt8, DType::Float32, DType::UInt8};
  else if (op == "ConvInteger" || op == "MatMulInteger") all(DType::Int32);
  else if (op == "QLinearConv" || op == "QLinearMatMul") all(input(7) != DType::Undefined ? input(7) : DType::UInt8);
  else if (op == "Where") all(input(1));
  else if (op == "OneHot") all(input(2));
  else if (op == "EyeLike" || op == "RandomNormalLike" || op == "RandomUniformLike" || op == "Bernoulli")
    all(attr_dtype(n, "dtype", input(0)));
  else if (op == "RandomNormal" || op == "RandomUniform") all(attr_dtype(n, "dtype", DType::Float32));
  else if (op == "Multinomial") all(attr_dtype(n, "dtype", DType::Int32));
  else if (op == "HannWindow" || op == "HammingWindow" || op == "BlackmanWindow" || op == "MelWeightMatrix")
    all(attr_dtype(n, "output_datatype", DType::Float32));
  else if (op == "TfIdfVectorizer") all(DType::Float32);
  else if (op == "TopK" || op == "MaxPool" || op == "Unique") {
    for (size_t i = 1; i < k; ++i) out[i] = DType::Int64;
  } else if (op == "Dropout") {
    for (size_t i = 1; i < k; ++i) out[i] = DType::Bool;
  } else if (op == "LayerNormalization") {
    for (size_t i = 1; i < k; ++i) out[i] = DType::Float32;
  }
  out.resize(k, DType::Undefined);
  return out;
}

}  // namespace

void infer_value_types(Graph& g) {
  std::unordered_map<std::string, DType> type;
  for (auto* list : {&g.inputs, &g.value_info, &g.outputs})
    for (auto& v : *list)
      if (v.dtype != DType::Undefined) type.emplace(v.name, v.dtype);
  for (auto& [name, t] : g.initializers) type.emplace(name, t.dtype());
  std::set<std::string> described;
  for (auto* list : {&g.inputs, &g.value_info, &g.outputs})
    for (auto& v : *list)
      if (v.dtype != DType::Undefined) described.insert(v.name);
  // Nodes in file order; a second pass covers graphs listed out of order.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& n : g.nodes) {
      std::vector<DType> in;
      for (auto& i : n.inputs) {
        auto it = type.find(i);
        in.push_back(i.empty() || it == type.end() ? DType::Undefined : it->second);
      }
      auto out = output_types(n, in);
      for (size_t i = 0; i < n.outputs.size(); ++i)
        if (!n.outputs[i].empty() && out[i] != DType::Undefined) type.emplace(n.outputs[i], out[i]);
    }
  }
  for (auto& n : g.nodes)
    for (auto& o : n.outputs) {
      auto it = type.find(o);
      if (o.empty() || described.count(o) || it == type.end()) continue;
      ValueInfo vi;
      vi.name = o;
      vi.dtype = it->second;
      g.value_info.push_back(vi);
      described.insert(o);
    }
}

}  // namespace lowbit
