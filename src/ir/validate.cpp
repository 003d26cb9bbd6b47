// Model validation (see validate.h): attribute types and ranges as a table, conv/pool geometry, static ranks.
#include "ir/validate.h"

#include "core/checked.h"

#include <climits>
#include <string>
#include <set>
#include <unordered_map>

namespace lowbit {

namespace {

// The type every ai.onnx operator gives an attribute of this name (ONNX names attributes consistently; the few
// names whose type differs between ops, such as 'value' or 'k', are not listed).
const std::unordered_map<std::string, AttrType>& known_attribute_types() {
  static const std::unordered_map<std::string, AttrType> t = {
      {"axis", AttrType::Int},          {"axes", AttrType::Ints},         {"strides", AttrType::Ints},
      {"dilations", AttrType::Ints},    {"kernel_shape", AttrType::Ints}, {"pads", AttrType::Ints},
      {"group", AttrType::Int},         {"blocksize", AttrType::Int},     {"perm", AttrType::Ints},
      {"keepdims", AttrType::Int},      {"to", AttrType::Int},            {"auto_pad", AttrType::String},
      {"output_shape", AttrType::Ints}, {"output_padding", AttrType::Ints}, {"ceil_mode", AttrType::Int},
      {"transA", AttrType::Int},        {"transB", AttrType::Int},        {"epsilon", AttrType::Float},
      {"alpha", AttrType::Float},       {"beta", AttrType::Float},        {"split", AttrType::Ints},
      {"starts", AttrType::Ints},       {"ends", AttrType::Ints},         {"exclusive", AttrType::Int},
      {"reverse", AttrType::Int},       {"largest", AttrType::Int},       {"sorted", AttrType::Int},
      {"select_last_index", AttrType::Int}, {"storage_order", AttrType::Int}, {"count_include_pad", AttrType::Int},
      {"training_mode", AttrType::Int}, {"momentum", AttrType::Float},
      {"noop_with_empty_axes", AttrType::Int}, {"batch_dims", AttrType::Int}, {"saturate", AttrType::Int},
  };
  return t;
}

const char* type_name(AttrType t) {
  switch (t) {
    case AttrType::Float: return "a float";
    case AttrType::Int: return "an int";
    case AttrType::String: return "a string";
    case AttrType::Tensor: return "a tensor";
    case AttrType::Graph: return "a graph";
    case AttrType::Floats: return "a list of floats";
    case AttrType::Ints: return "a list of ints";
    case AttrType::Strings: return "a list of strings";
    case AttrType::Tensors: return "a list of tensors";
    case AttrType::Graphs: return "a list of graphs";
    default: return "of another kind";
  }
}

const std::set<std::string> kConvOps = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"};
const std::set<std::string> kPoolOps = {"MaxPool", "AveragePool", "LpPool", "MaxRoiPool"};
// Output rank = rank of input 0.
const std::set<std::string> kRankKeeping = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Mish", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil",
    "Round", "Sign", "Identity", "Dropout", "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "LRN", "Softmax", "LogSoftmax", "Hardmax",
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
    "GlobalLpPool", "CumSum", "Resize", "Upsample", "Pad", "DepthToSpace", "SpaceToDepth", "Transpose", "Slice",
    "Tile", "Not", "IsNaN", "IsInf"};
const std::set<std::string> kBroadcasting = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
                                             "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
                                             "Or", "Xor", "Mod", "Where", "BitShift"};

class Validator {
 public:
  explicit Validator(const std::string& origin) : origin_(origin) {}

  void graph(const Graph& g) {
    for (auto& v : g.inputs) {
      if (v.has_shape) rank_[v.name] = (int64_t)v.shape.size();
      int64_t elements = 1;
      bool overflow = false;
      for (auto& d : v.shape) {
        check(!d.fixed() || d.value >= 0, origin_, ": input '", v.name, "' declares the negative dimension ", d.value);
        if (d.fixed()) overflow |= __builtin_mul_overflow(elements, d.value, &elements);
      }
      check(!overflow, origin_, ": input '", v.name, "' declares a shape with more elements than int64 can count");
    }
    for (auto& v : g.value_info)
      if (v.has_shape) rank_[v.name] = (int64_t)v.shape.size();
    for (auto& [name, t] : g.initializers) {
      rank_[name] = t.rank();
      init_[name] = &t;
    }
    // Nodes may be listed out of order; two passes let ranks flow forward through most graphs.
    for (int pass = 0; pass < 2; ++pass)
      for (auto& n : g.nodes) propagate(n);
    for (auto& n : g.nodes) node(n);
  }

 private:
  template <typename... A>
  [[noreturn]] void bad(const Node& n, const A&... what) {
    fail(origin_, ": node '", n.name, "' (", n.op_type, "): ", what...);
  }

  int64_t rank_of(const std::string& v) const {
    auto it = rank_.find(v);
    return v.empty() || it == rank_.end() ? -1 : it->second;
  }

  void propagate(const Node& n) {
    if (!n.domain.empty() || n.inputs.empty() || n.outputs.empty()) return;
    int64_t r = -1;
    if (kRankKeeping.count(n.op_type)) {
      r = rank_of(n.inputs[0]);
    } else if (kBroadcasting.count(n.op_type)) {
      for (auto& in : n.inputs) {
        int64_t ri = rank_of(in);
        if (ri < 0) return;
        r = std::max(r, ri);
      }
    } else if (n.op_type == "Flatten") {
      r = 2;
    }
    if (r >= 0 && !rank_.count(n.outputs[0])) rank_[n.outputs[0]] = r;
  }

  void attribute_types(const Node& n) {
    for (auto& a : n.attrs) {
      if (!a.ref_attr_name.empty()) continue;
      auto it = known_attribute_types().find(a.name);
      if (it == known_attribute_types().end()) continue;
      if (a.type != it->second && !(it->second == AttrType::Float && a.type == AttrType::Int))
        bad(n, "attribute '", a.name, "' must be ", type_name(it->second), ", got ", type_name(a.type));
    }
  }

  void all_at_least(const Node& n, const char* name, int64_t lo, const char* why) {
    const Attribute* a = n.attr(name);
    if (!a) return;
    for (auto v : a->ints)
      if (v < lo) bad(n, "attribute '", name, "' has ", v, "; ", why);
  }

  void conv_pool(const Node& n, bool conv) {
    all_at_least(n, "strides", 1, "strides must be positive");
    all_at_least(n, "dilations", 1, "dilations must be positive");
    all_at_least(n, "kernel_shape", 1, "kernel_shape entries must be positive");
    all_at_least(n, "pads", 0, "pads must not be negative");
    all_at_least(n, "output_padding", 0, "output_padding must not be negative");
    all_at_least(n, "output_shape", 0, "output_shape must not be negative");
    std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" && auto_pad != "VALID")
      bad(n, "attribute 'auto_pad' is '", auto_pad, "'; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID");
    if (conv && n.attr_int("group", 1) < 1) bad(n, "attribute 'group' is ", n.attr_int("group", 1), "; it must be >= 1");
    // Spatial rank: every list attribute, the weight's rank and the input's rank must agree.
    int64_t spatial = -1;
    std::string from;
    auto agree = [&](int64_t s, const std::string& what) {
      if (s < 0) return;
      if (spatial < 0) {
        spatial = s;
        from = what;
      } else if (s != spatial) {
        bad(n, what, " implies ", s, " spatial dimensions but ", from, " implies ", spatial, " (rank mismatch)");
      }
    };
    for (const char* name : {"kernel_shape", "strides", "dilations", "output_padding", "output_shape"})
      if (const Attribute* a = n.attr(name)) agree((int64_t)a->ints.size(), std::string("attribute '") + name + "'");
    if (const Attribute* a = n.attr("pads")) {
      if (a->ints.size() % 2) bad(n, "attribute 'pads' has ", a->ints.size(), " entries; it needs two per spatial axis");
      agree((int64_t)a->ints.size() / 2, "attribute 'pads'");
    }
    size_t w_index = n.op_type == "QLinearConv" ? 3 : 1;
    int64_t rx = rank_of(n.inputs.empty() ? "" : n.inputs[0]);
    if (rx >= 0 && rx < 3) bad(n, "input '", n.inputs[0], "' has rank ", rx, "; it needs a batch, a channel and at least one spatial axis");
    if (rx >= 0) agree(rx - 2, "input '" + n.inputs[0] + "' (rank " + std::to_string(rx) + ")");
    if (conv && n.inputs.size() > w_index) {
      int64_t rw = rank_of(n.inputs[w_index]);
      if (rw >= 0 && rw < 3) bad(n, "weight '", n.inputs[w_index], "' has rank ", rw, "; it needs at least 3");
      if (rw >= 0) agree(rw - 2, "weight '" + n.inputs[w_index] + "' (rank " + std::to_string(rw) + ")");
      auto it = init_.find(n.inputs[w_index]);
      if (it != init_.end() && it->second->rank() >= 3) {
        const Shape& ws = it->second->shape();
        int64_t group = n.attr_int("group", 1);
        if (n.op_type != "ConvTranspose" && ws[0] % group)
          bad(n, "weight '", n.inputs[w_index], "' has ", ws[0], " output channels, not a multiple of group ", group);
        if (const Attribute* k = n.attr("kernel_shape"))
          for (size_t i = 0; i < k->ints.size(); ++i)
            if (k->ints[i] != ws[i + 2])
              bad(n, "attribute 'kernel_shape' ", shape_str(k->ints), " disagrees with weight shape ", shape_str(ws));
      }
    }
    if (!conv && n.op_type != "MaxRoiPool" && !n.has_attr("kernel_shape")) bad(n, "attribute 'kernel_shape' is required");
  }

  // A constant shape input (Reshape's target, Expand's shape, ConstantOfShape's, Resize's sizes): its element count
  // must fit int64 and, at one byte per element at least, the memory budget. Entries below `lowest` are refused
  // (Reshape allows -1 and 0, which copy or infer a dim; they add nothing here).
  void shape_input(const Node& n, size_t i, int64_t lowest) {
    if (n.inputs.size() <= i) return;
    auto it = init_.find(n.inputs[i]);
    if (it == init_.end() || it->second->dtype() != DType::Int64 || it->second->rank() > 1) return;
    auto dims = it->second->to_i64();
    int64_t elements = 1;
    bool overflow = false;
    for (auto d : dims) {
      if (d < lowest) bad(n, "shape input '", n.inputs[i], "' ", shape_str(dims), " has the entry ", d);
      // Reshape's 0 and -1 stand for dims not known here; elsewhere 0 is a real, empty dim.
      if (d > 0 || lowest == 0) overflow |= __builtin_mul_overflow(elements, d, &elements);
    }
    if (!overflow && elements == 0) return;  // an empty tensor (a wrapped product is not)
    if (overflow) bad(n, "shape input '", n.inputs[i], "' ", shape_str(dims), " has more elements than int64 can count");
    if (elements > memory_budget())
      bad(n, "shape input '", n.inputs[i], "' ", shape_str(dims), " describes ", elements,
          " elements, more than the memory budget of ", human_bytes((double)memory_budget()), " (LOWBIT_MEMORY_LIMIT)");
  }

  void node(const Node& n) {
    if (n.op_type.empty()) bad(n, "the node has no op type");
    if (!n.domain.empty()) return;
    for (auto& a : n.attrs)
      for (auto& sub : a.graphs) graph(*sub);
    for (auto& a : n.attrs)
      if (a.g) graph(*a.g);
    attribute_types(n);
    const std::string& op = n.op_type;
    if (kConvOps.count(op)) conv_pool(n, true);
    if (kPoolOps.count(op)) conv_pool(n, false);
    if (op == "Reshape") shape_input(n, 1, -1);
    if (op == "Expand" || op == "ConstantOfShape") shape_input(n, op == "Expand" ? 1 : 0, 0);
    if (op == "Resize") shape_input(n, 3, 0);
    if (op == "DepthToSpace" || op == "SpaceToDepth") {
      int64_t b = n.attr_int("blocksize", 0);
      // b * b must fit int64 (ONNX's shape inference divides by it).
      if (b < 1 || b > INT32_MAX) bad(n, "attribute 'blocksize' is ", b, "; it must be in [1, 2^31)");
    }
  }

  std::string origin_;
  std::unordered_map<std::string, int64_t> rank_;
  std::unordered_map<std::string, const Tensor*> init_;
};

}  // namespace

void validate_model(const Model& m, const std::string& origin) { Validator(origin).graph(m.graph); }

}  // namespace lowbit
