// Graph and Node queries.
#include "ir/graph.h"

#include <algorithm>
#include <set>
#include <unordered_set>

#include "ir/fed_inputs.h"

namespace lowbit {

std::optional<Shape> ValueInfo::static_shape() const {
  if (!has_shape) return std::nullopt;
  Shape s;
  for (auto& d : shape) {
    if (!d.fixed()) return std::nullopt;
    s.push_back(d.value);
  }
  return s;
}

const Attribute* Node::attr(const std::string& n) const {
  for (auto& a : attrs)
    if (a.name == n) return &a;
  return nullptr;
}

int64_t Node::attr_int(const std::string& n, int64_t dflt) const {
  auto* a = attr(n);
  if (!a) return dflt;
  check(a->type == AttrType::Int, describe(), ": attribute '", n, "' must be an int");
  return a->i;
}

float Node::attr_float(const std::string& n, float dflt) const {
  auto* a = attr(n);
  if (!a) return dflt;
  if (a->type == AttrType::Int) return (float)a->i;
  check(a->type == AttrType::Float, describe(), ": attribute '", n, "' must be a float");
  return a->f;
}

std::string Node::attr_string(const std::string& n, const std::string& dflt) const {
  auto* a = attr(n);
  if (!a) return dflt;
  check(a->type == AttrType::String, describe(), ": attribute '", n, "' must be a string");
  return a->s;
}

std::vector<int64_t> Node::attr_ints(const std::string& n, std::vector<int64_t> dflt) const {
  auto* a = attr(n);
  if (!a) return dflt;
  check(a->type == AttrType::Ints, describe(), ": attribute '", n, "' must be a list of ints");
  return a->ints;
}

std::vector<float> Node::attr_floats(const std::string& n) const {
  auto* a = attr(n);
  if (!a) return {};
  check(a->type == AttrType::Floats, describe(), ": attribute '", n, "' must be a list of floats");
  return a->floats;
}

void Node::set_attr(Attribute a) {
  for (auto& x : attrs)
    if (x.name == a.name) {
      x = std::move(a);
      return;
    }
  attrs.push_back(std::move(a));
}

std::string Node::describe() const {
  std::string s = op_type + " node '" + (name.empty() ? (outputs.empty() ? std::string("?") : outputs[0]) : name) + "'";
  return s;
}

bool Graph::is_graph_input(const std::string& v) const {
  for (auto& i : inputs)
    if (i.name == v) return true;
  return false;
}

bool Graph::is_graph_output(const std::string& v) const {
  for (auto& o : outputs)
    if (o.name == v) return true;
  return false;
}

int Graph::producer(const std::string& v) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (auto& o : nodes[i].outputs)
      if (o == v) return (int)i;
  return -1;
}

std::vector<int> Graph::consumers(const std::string& v) const {
  std::vector<int> r;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (auto& in : nodes[i].inputs)
      if (in == v) {
        r.push_back((int)i);
        break;
      }
  return r;
}

const ValueInfo* Graph::find_value_info(const std::string& v) const {
  for (auto* list : {&inputs, &outputs, &value_info})
    for (auto& vi : *list)
      if (vi.name == v) return &vi;
  return nullptr;
}

GraphIndex::GraphIndex(const Graph& g) {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer_.emplace(o, (int)i);  // first producer wins, as in Graph::producer
    for (auto& in : g.nodes[i].inputs) {
      auto& r = consumers_[in];
      if (r.empty() || r.back() != (int)i) r.push_back((int)i);
    }
  }
  for (auto* list : {&g.inputs, &g.outputs, &g.value_info})
    for (auto& vi : *list) info_.emplace(vi.name, &vi);  // first entry wins, as in Graph::find_value_info
}

int GraphIndex::producer(const std::string& v) const {
  auto it = producer_.find(v);
  return it == producer_.end() ? -1 : it->second;
}

const std::vector<int>& GraphIndex::consumers(const std::string& v) const {
  auto it = consumers_.find(v);
  return it == consumers_.end() ? none_ : it->second;
}

const ValueInfo* GraphIndex::value_info(const std::string& v) const {
  auto it = info_.find(v);
  return it == info_.end() ? nullptr : it->second;
}

std::string Graph::unique_name(const std::string& base) const { return NameAllocator(*this).fresh(base); }

NameAllocator::NameAllocator(const Graph& g) {
  for (auto& n : g.nodes) {
    used_.insert(n.name);
    for (auto& x : n.inputs) used_.insert(x);
    for (auto& x : n.outputs) used_.insert(x);
  }
  for (auto& i : g.inputs) used_.insert(i.name);
  for (auto& o : g.outputs) used_.insert(o.name);
  for (auto& [k, _] : g.initializers) used_.insert(k);
}

std::string NameAllocator::fresh(const std::string& base) {
  std::string c = base;
  for (int i = 1; used_.count(c); ++i) c = base + "_" + std::to_string(i);
  used_.insert(c);
  return c;
}

int64_t Model::opset(const std::string& d) const {
  auto it = opsets.find(d == "ai.onnx" ? "" : d);
  return it == opsets.end() ? 0 : it->second;
}

bool is_float_constant(const Graph& g, const std::string& v) {
  auto it = g.initializers.find(v);
  return it != g.initializers.end() && !g.is_graph_input(v) && it->second.dtype() == DType::Float32;
}

std::optional<ClampRange> clamp_range(const Graph& g, const Node& n) {
  if (!n.domain.empty()) return std::nullopt;
  if (n.op_type == "Relu") return ClampRange{0.f, INFINITY};
  if (n.op_type != "Clip") return std::nullopt;
  ClampRange r;
  if (n.has_attr("min") || n.has_attr("max")) {  // opset < 11
    r.lo = n.attr_float("min", -INFINITY);
    r.hi = n.attr_float("max", INFINITY);
    return r;
  }
  for (size_t i = 1; i < n.inputs.size() && i < 3; ++i) {
    if (n.inputs[i].empty()) continue;
    if (!is_float_constant(g, n.inputs[i]) || g.initializers.at(n.inputs[i]).numel() != 1) return std::nullopt;
    (i == 1 ? r.lo : r.hi) = g.initializers.at(n.inputs[i]).data<float>()[0];
  }
  return r;
}

std::vector<std::string> outer_reads(const Graph& sub) {
  std::set<std::string> defined, reads;
  for (auto& i : sub.inputs) defined.insert(i.name);
  for (auto& [k, _] : sub.initializers) defined.insert(k);
  for (auto& n : sub.nodes)
    for (auto& o : n.outputs) defined.insert(o);
  for (auto& n : sub.nodes) {
    for (auto& in : n.inputs)
      if (!in.empty()) reads.insert(in);
    for (auto& in : implicit_inputs(n)) reads.insert(in);
  }
  for (auto& o : sub.outputs) reads.insert(o.name);
  std::vector<std::string> r;
  for (auto& v : reads)
    if (!defined.count(v)) r.push_back(v);
  return r;
}

bool has_subgraphs(const Node& n) {
  return std::any_of(n.attrs.begin(), n.attrs.end(), [](const Attribute& a) { return a.g || !a.graphs.empty(); });
}

std::vector<std::string> implicit_inputs(const Node& n) {
  std::set<std::string> r;
  for (auto& a : n.attrs) {
    if (a.g)
      for (auto& v : outer_reads(*a.g)) r.insert(v);
    for (auto& g : a.graphs)
      for (auto& v : outer_reads(*g)) r.insert(v);
  }
  return {r.begin(), r.end()};
}

}  // namespace lowbit

namespace lowbit {

std::vector<const ValueInfo*> fed_inputs(const Graph& g) {
  std::vector<const ValueInfo*> r;
  for (auto& i : g.inputs)
    if (!g.is_initializer(i.name)) r.push_back(&i);
  return r;
}

std::string single_fed_input(const Graph& g, const std::string& why) {
  auto in = fed_inputs(g);
  if (in.size() == 1) return in[0]->name;
  std::string names;
  for (auto* i : in) names += (names.empty() ? ": " : ", ") + i->name;
  fail(why, " (this model has ", in.size(), in.size() == 1 ? " input" : " inputs", names, ")");
}

}  // namespace lowbit
