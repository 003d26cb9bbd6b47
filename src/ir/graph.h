// Graph IR independent of protobuf: values, nodes with typed attributes, initializers, opsets.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"

namespace lowbit {

// One dimension of a value's shape: a fixed size, or a named symbolic size (e.g. "batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string param;   // symbolic name when not fixed
  bool fixed() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::Undefined;
  bool has_shape = false;  // false: rank unknown
  std::vector<Dim> shape;
  std::string doc;
  // Static shape when every dim is fixed.
  std::optional<Shape> static_shape() const;
  bool operator==(const ValueInfo&) const = default;
};

struct Graph;

enum class AttrType : int32_t {
  Undefined = 0, Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5, SparseTensor = 11, TypeProto = 13,
  Floats = 6, Ints = 7, Strings = 8, Tensors = 9, Graphs = 10, SparseTensors = 12, TypeProtos = 14,
};

struct Attribute {
  std::string name;
  AttrType type = AttrType::Undefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::string ref_attr_name;  // attribute reference inside function bodies
  std::string doc;
  std::string opaque;  // serialized AttributeProto for kinds kept only for round trip (sparse tensors, type protos)
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<Attribute> attrs;
  std::string doc;

  const Attribute* attr(const std::string& n) const;
  bool has_attr(const std::string& n) const { return attr(n) != nullptr; }
  int64_t attr_int(const std::string& n, int64_t dflt) const;
  float attr_float(const std::string& n, float dflt) const;
  std::string attr_string(const std::string& n, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const std::string& n, std::vector<int64_t> dflt = {}) const;
  std::vector<float> attr_floats(const std::string& n) const;
  void set_attr(Attribute a);
  // "Conv 'conv1'" or "Conv #3" for messages.
  std::string describe() const;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_info;
  std::map<std::string, Tensor> initializers;
  std::string doc;

  bool is_initializer(const std::string& v) const { return initializers.count(v) > 0; }
  bool is_graph_input(const std::string& v) const;
  bool is_graph_output(const std::string& v) const;
  // Index of the node producing value v, or -1 (graph input, initializer, or unknown).
  int producer(const std::string& v) const;
  // Indices of nodes reading value v.
  std::vector<int> consumers(const std::string& v) const;
  // Shape/dtype info known for a value (input, output or value_info), or nullptr.
  const ValueInfo* find_value_info(const std::string& v) const;
  // A value name not used anywhere in the graph, derived from base.
  std::string unique_name(const std::string& base) const;
};

// Use-def index of one graph, built in one pass: the producer and the readers of every value, and value infos by
// name. Graph::producer/consumers/find_value_info scan the whole graph on every call, which makes a pass that asks
// once per node quadratic (minutes on a 40,000-node graph); passes build this once instead. It describes the graph
// as it was when built: a pass that edits nodes builds a new one.
class GraphIndex {
 public:
  explicit GraphIndex(const Graph& g);
  int producer(const std::string& v) const;  // node index, or -1 (graph input, initializer, unknown)
  const std::vector<int>& consumers(const std::string& v) const;  // each reading node once, in node order
  const ValueInfo* value_info(const std::string& v) const;

 private:
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<int>> consumers_;
  std::unordered_map<std::string, const ValueInfo*> info_;
  std::vector<int> none_;
};

// Hands out names unused in a graph (and by each other): collects the graph's names once, so a pass that adds
// many nodes does not rescan the graph for every new name.
class NameAllocator {
 public:
  explicit NameAllocator(const Graph& g);
  std::string fresh(const std::string& base);

 private:
  std::unordered_set<std::string> used_;
};

// Values a subgraph (an If branch, a Loop or Scan body) reads from enclosing scopes: names its nodes (and their
// own subgraphs, recursively) read that it neither declares as input or initializer nor produces. Sorted.
std::vector<std::string> outer_reads(const Graph& sub);
// The outer values all subgraphs of node n read: its implicit inputs, beside n.inputs. Sorted, unique.
std::vector<std::string> implicit_inputs(const Node& n);
// True when a node carries subgraph attributes (If, Loop, Scan).
bool has_subgraphs(const Node& n);

// Bounds of an element-wise clamp y = clamp(x, lo, hi); (-inf, inf) is no clamp.
struct ClampRange {
  float lo = -INFINITY, hi = INFINITY;
  bool none() const { return lo == -INFINITY && hi == INFINITY; }
};
// Relu -> [0, inf); Clip with constant bounds (attributes before opset 11, scalar float initializers from
// opset 11; an omitted bound is unbounded) -> its bounds; any other node, or a Clip whose bounds are computed
// at run time -> nullopt.
std::optional<ClampRange> clamp_range(const Graph& g, const Node& n);
// A float initializer that is not also a graph input (a graph input could override it at run time).
bool is_float_constant(const Graph& g, const std::string& v);

struct Model {
  int64_t ir_version = 8;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc;
  std::vector<std::pair<std::string, std::string>> metadata;
  Graph graph;
  std::string source_path;  // the file it was loaded from (messages, refusing to overwrite it); empty if built

  int64_t opset(const std::string& domain_name = "") const;
  // load_onnx / save_onnx (ir/onnx_io.h) with default options.
  static Model load(const std::string& path);
  void save(const std::string& path) const;
};

}  // namespace lowbit
