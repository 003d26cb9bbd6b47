// Opset upgrade: the ai.onnx changes between opsets 7 and 26 that alter how a node is written (attributes that
// became inputs) or what it means (the Softmax family at 13).
#include "ir/opset.h"

#include <algorithm>
#include <map>

namespace lowbit {

namespace {

// Attribute -> input moves: op type -> (opset where it happened, attribute, input index).
struct Move {
  int64_t at;
  const char* attr;
  size_t index;
};
const std::map<std::string, Move>& moves() {
  static const std::map<std::string, Move> m = {
      {"Squeeze", {13, "axes", 1}},       {"Unsqueeze", {13, "axes", 1}},      {"ReduceSum", {13, "axes", 1}},
      {"Split", {13, "split", 1}},        {"ReduceMean", {18, "axes", 1}},     {"ReduceMax", {18, "axes", 1}},
      {"ReduceMin", {18, "axes", 1}},     {"ReduceProd", {18, "axes", 1}},     {"ReduceL1", {18, "axes", 1}},
      {"ReduceL2", {18, "axes", 1}},      {"ReduceLogSum", {18, "axes", 1}},   {"ReduceLogSumExp", {18, "axes", 1}},
      {"ReduceSumSquare", {18, "axes", 1}},
  };
  return m;
}

struct Upgrader {
  int64_t from, to;
  std::map<std::string, int> counts;  // what was rewritten, for the summary

  bool crosses(int64_t v) const { return from < v && to >= v; }

  void graph(Graph& g) {
    NameAllocator names(g);
    std::vector<Node> out;
    for (auto& n : g.nodes) {
      for (auto& a : n.attrs) {
        if (a.g) graph(*a.g);
        for (auto& sg : a.graphs) graph(*sg);
      }
      if (!n.domain.empty() && n.domain != "ai.onnx") {
        out.push_back(std::move(n));
        continue;
      }
      if (auto it = moves().find(n.op_type); it != moves().end() && crosses(it->second.at)) {
        const Move& mv = it->second;
        if (const Attribute* a = n.attr(mv.attr)) {
          check(a->type == AttrType::Ints, n.describe(), ": attribute '", mv.attr, "' must be a list of ints");
          std::string v = names.fresh(n.name.empty() ? n.outputs.at(0) + "/" + mv.attr : n.name + "/" + mv.attr);
          g.initializers[v] = Tensor::from_vector<int64_t>({(int64_t)a->ints.size()}, a->ints);
          if (n.inputs.size() <= mv.index) n.inputs.resize(mv.index + 1);
          n.inputs[mv.index] = v;
          n.attrs.erase(std::remove_if(n.attrs.begin(), n.attrs.end(),
                                       [&](const Attribute& x) { return x.name == mv.attr; }),
                        n.attrs.end());
          ++counts[n.op_type + " " + mv.attr + " attribute -> input"];
        }
        out.push_back(std::move(n));
        continue;
      }
      if (n.op_type == "Dropout" && crosses(12)) {
        if (const Attribute* a = n.attr("ratio")) {
          std::string v = names.fresh(n.name.empty() ? n.outputs.at(0) + "/ratio" : n.name + "/ratio");
          g.initializers[v] = Tensor::scalar<float>(a->f);
          n.inputs.resize(std::max<size_t>(n.inputs.size(), 2));
          n.inputs[1] = v;
          n.attrs.erase(std::remove_if(n.attrs.begin(), n.attrs.end(), [](auto& x) { return x.name == "ratio"; }),
                        n.attrs.end());
          ++counts["Dropout ratio attribute -> input"];
        }
        out.push_back(std::move(n));
        continue;
      }
      if ((n.op_type == "Softmax" || n.op_type == "LogSoftmax" || n.op_type == "Hardmax") && crosses(13)) {
        softmax(g, names, n, out);
        continue;
      }
      if (n.op_type == "GroupNormalization") check(!crosses(21), n.describe(), ": GroupNormalization's scale and bias change from per-group to per-channel at opset 21; converting it is not supported");
      out.push_back(std::move(n));
    }
    g.nodes = std::move(out);
  }

  // Before 13 the op worked on x flattened to 2-D at `axis`; from 13 on one axis. Same result when the axis is
  // the last; otherwise Flatten(axis) -> op(axis -1) -> Reshape(Shape(x)) keeps the old meaning exactly.
  void softmax(Graph& g, NameAllocator& names, Node& n, std::vector<Node>& out) {
    int64_t axis = n.attr_int("axis", 1);
    const ValueInfo* vi = n.inputs.empty() ? nullptr : g.find_value_info(n.inputs[0]);
    int64_t rank = vi && vi->has_shape ? (int64_t)vi->shape.size() : -1;
    if (rank > 0 && (axis == rank - 1 || axis == -1)) {
      Attribute a;
      a.name = "axis", a.type = AttrType::Int, a.i = -1;
      n.set_attr(a);
      ++counts[n.op_type + " axis kept (the last)"];
      out.push_back(std::move(n));
      return;
    }
    std::string base = n.name.empty() ? n.outputs.at(0) : n.name;
    std::string x = n.inputs.at(0), flat = names.fresh(base + "/flat"), shape = names.fresh(base + "/shape"),
                y2 = names.fresh(base + "/2d");
    Node fl;
    fl.op_type = "Flatten", fl.name = names.fresh(base + "/Flatten"), fl.inputs = {x}, fl.outputs = {flat};
    Attribute fa;
    fa.name = "axis", fa.type = AttrType::Int, fa.i = axis;
    fl.attrs = {fa};
    Node sh;
    sh.op_type = "Shape", sh.name = names.fresh(base + "/Shape"), sh.inputs = {x}, sh.outputs = {shape};
    std::string y = n.outputs.at(0);
    Node op = n;
    op.inputs = {flat};
    op.outputs = {y2};
    Attribute oa;
    oa.name = "axis", oa.type = AttrType::Int, oa.i = -1;
    op.set_attr(oa);
    Node rs;
    rs.op_type = "Reshape", rs.name = names.fresh(base + "/Reshape"), rs.inputs = {y2, shape}, rs.outputs = {y};
    out.push_back(std::move(fl));
    out.push_back(std::move(sh));
    out.push_back(std::move(op));
    out.push_back(std::move(rs));
    ++counts[n.op_type + " (opset < 13 axis) -> Flatten/" + n.op_type + "/Reshape"];
  }
};

}  // namespace

std::vector<std::string> upgrade_opset(Model& m, int64_t target) {
  int64_t from = m.opset("");
  check(target <= kMaxOpset, "opset ", target, " is newer than lowbit knows (up to ", kMaxOpset, ")");
  if (from >= target) return {};
  Upgrader u{from, target, {}};
  u.graph(m.graph);
  m.opsets[""] = target;
  // The IR version each opset first shipped with: runtimes refuse an opset newer than the declared IR allows.
  int64_t ir = target >= 23 ? 11 : target >= 21 ? 10 : target >= 19 ? 9 : target >= 15 ? 8 : target >= 12 ? 7 : 6;
  m.ir_version = std::max(m.ir_version, ir);
  std::vector<std::string> lines{"opset " + std::to_string(from) + " -> " + std::to_string(target)};
  for (auto& [what, k] : u.counts) lines.push_back("  " + what + ": " + std::to_string(k));
  return lines;
}

}  // namespace lowbit
