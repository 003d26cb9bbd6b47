// IR editing API: topological order, rewiring, dead-node removal, constant folding of shape sub-graphs.
#include <gtest/gtest.h>

#include <set>

#include "ir/passes.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

namespace {
std::vector<std::string> op_order(const Graph& g) {
  std::vector<std::string> v;
  for (auto& n : g.nodes) v.push_back(n.name);
  return v;
}
}  // namespace

TEST(TopologicalSort, ReordersNodes) {
  Model m = small_cnn();
  std::reverse(m.graph.nodes.begin(), m.graph.nodes.end());
  topological_sort(m.graph);
  EXPECT_EQ(op_order(m.graph), (std::vector<std::string>{"conv", "relu", "gap", "flatten", "fc"}));
}

TEST(TopologicalSort, CycleIsAnErrorNamingANode) {
  Model m = small_cnn();
  m.graph.nodes[0].inputs[0] = m.graph.nodes[1].outputs[0];  // conv reads relu's output
  try {
    topological_sort(m.graph);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cycle"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("node '"), std::string::npos) << e.what();
  }
}

TEST(TopologicalSort, UndefinedInputIsAnError) {
  Model m = small_cnn();
  m.graph.nodes[2].inputs[0] = "nowhere";
  EXPECT_THROW(topological_sort(m.graph), Error);
}

TEST(TopologicalSort, DuplicateProducerIsAnError) {
  Model m = small_cnn();
  m.graph.nodes[2].outputs[0] = m.graph.nodes[1].outputs[0];
  EXPECT_THROW(topological_sort(m.graph), Error);
}

TEST(InsertBetween, RewiresAllConsumersAndRunsUnchanged) {
  Model m = small_cnn();
  Tensor x = random_tensor({2, 3, 8, 8}, 7);
  auto before = Executor(m).run({{"x", x}});
  std::string relu_out = m.graph.nodes[1].outputs[0];
  Node id;
  id.op_type = "Identity";
  id.name = "probe";
  id.inputs = {relu_out};
  id.outputs = {"probe_out"};
  insert_between(m.graph, relu_out, id, "probe_out");
  ASSERT_EQ(m.graph.nodes[2].name, "probe");
  EXPECT_EQ(m.graph.nodes[3].inputs[0], "probe_out");
  EXPECT_EQ(m.graph.consumers(relu_out).size(), 1u);
  auto after = Executor(m).run({{"x", x}});
  EXPECT_TRUE(before.begin()->second.bit_equal(after.begin()->second));
}

TEST(InsertBetween, OnGraphOutputRenamesTheOutput) {
  Model m = small_cnn();
  std::string y = m.graph.outputs[0].name;
  Node id;
  id.op_type = "Identity";
  id.inputs = {y};
  id.outputs = {"y2"};
  insert_between(m.graph, y, id, "y2");
  EXPECT_EQ(m.graph.outputs[0].name, "y2");
  EXPECT_EQ(m.graph.nodes.back().inputs[0], y);
}

TEST(InsertBetween, RejectsExistingValue) {
  Model m = small_cnn();
  Node id;
  id.op_type = "Identity";
  id.inputs = {"x"};
  id.outputs = {"w"};
  EXPECT_THROW(insert_between(m.graph, "x", id, "w"), Error);
}

TEST(ReplaceUses, ReplacesInputsAndOutputs) {
  Model m = small_cnn();
  std::string relu_out = m.graph.nodes[1].outputs[0];
  replace_uses(m.graph, relu_out, m.graph.nodes[0].outputs[0]);  // bypass the Relu
  EXPECT_EQ(m.graph.nodes[2].inputs[0], m.graph.nodes[0].outputs[0]);
  EXPECT_EQ(remove_dead_nodes(m.graph), 1);
  EXPECT_EQ(m.graph.nodes.size(), 4u);
}

TEST(RemoveDeadNodes, DropsUnusedNodesAndInitializers) {
  Model m = small_cnn();
  GraphBuilder b;
  m.graph.initializers["unused"] = Tensor::scalar<float>(1.f);
  Node extra;
  extra.op_type = "Relu";
  extra.name = "dangling";
  extra.inputs = {"x"};
  extra.outputs = {"dangling_out"};
  m.graph.nodes.push_back(extra);
  EXPECT_EQ(remove_dead_nodes(m.graph), 1);
  EXPECT_FALSE(m.graph.is_initializer("unused"));
  EXPECT_TRUE(m.graph.is_initializer("w"));
}

// The pattern exporters emit for x.view(x.size(0), -1) on a static input.
TEST(FoldConstants, FoldsShapeGatherUnsqueezeConcatChain) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {2, 3, 4});
  b.initializer("i0", Tensor::scalar<int64_t>(0));
  b.initializer("ax", Tensor::from_vector<int64_t>({1}, {0}));
  b.initializer("m1", Tensor::from_vector<int64_t>({1}, {-1}));
  auto s = b.node("Shape", {"x"});
  auto g = b.node("Gather", {s, "i0"});
  auto u = b.node("Unsqueeze", {g, "ax"});
  auto c = b.node("Concat", {u, "m1"}, {attr_int("axis", 0)});
  auto r = b.node("Reshape", {"x", c});
  b.output(r);
  Model m = b.build();
  Tensor x = random_tensor({2, 3, 4}, 3);
  auto before = Executor(m).run({{"x", x}});
  int folded = fold_constants(m.graph, [&](const Node& n, const std::vector<Tensor>& in) { return eval_node(n, 13, in); },
                              shape_subgraph_ops());
  EXPECT_EQ(folded, 4);  // Shape, Gather, Unsqueeze, Concat
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].op_type, "Reshape");
  EXPECT_EQ(m.graph.initializers.at(m.graph.nodes[0].inputs[1]).to_i64(), (std::vector<int64_t>{2, -1}));
  auto after = Executor(m).run({{"x", x}});
  EXPECT_TRUE(before.begin()->second.bit_equal(after.begin()->second));
}

TEST(FoldConstants, LeavesDynamicShapesAlone) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 3});
  auto s = b.node("Shape", {"x"});
  b.output(s, DType::Int64);
  Model m = b.build();
  EXPECT_EQ(fold_constants(m.graph, [&](const Node& n, const std::vector<Tensor>& in) { return eval_node(n, 13, in); },
                           shape_subgraph_ops()),
            0);
  EXPECT_EQ(m.graph.nodes.size(), 1u);
}

TEST(ClampRange, ReluClipAttributesClipInputsAndOthers) {
  GraphBuilder b(13);
  auto x = b.input("x", DType::Float32, {-1, 4});
  auto lo = b.initializer("lo", Tensor::scalar<float>(-1.5f));
  auto hi = b.initializer("hi", Tensor::scalar<float>(6.f));
  auto dyn = b.input("dyn", DType::Float32, {});
  b.node("Relu", {x});
  b.node("Clip", {x, lo, hi});
  b.node("Clip", {x, "", hi});                                           // omitted min
  b.node("Clip", {x}, {attr_float("min", 0.f), attr_float("max", 6.f)});  // opset < 11 style
  b.node("Clip", {x, dyn});                                              // bound known only at run time
  b.node("Sigmoid", {x});
  Model m = b.build();
  auto r = [&](size_t i) { return clamp_range(m.graph, m.graph.nodes[i]); };
  ASSERT_TRUE(r(0));
  EXPECT_EQ(r(0)->lo, 0.f);
  EXPECT_EQ(r(0)->hi, INFINITY);
  ASSERT_TRUE(r(1));
  EXPECT_EQ(r(1)->lo, -1.5f);
  EXPECT_EQ(r(1)->hi, 6.f);
  ASSERT_TRUE(r(2));
  EXPECT_EQ(r(2)->lo, -INFINITY);
  EXPECT_EQ(r(2)->hi, 6.f);
  ASSERT_TRUE(r(3));
  EXPECT_EQ(r(3)->lo, 0.f);
  EXPECT_EQ(r(3)->hi, 6.f);
  EXPECT_FALSE(r(4));
  EXPECT_FALSE(r(5));
  EXPECT_TRUE(ClampRange{}.none());
  EXPECT_FALSE(is_float_constant(m.graph, "dyn"));
  EXPECT_TRUE(is_float_constant(m.graph, "lo"));
}

// The use-def index answers exactly what the scanning Graph methods answer, for every value of a model with fan-out,
// a node reading one value twice, graph inputs, initializers and an unknown name.
TEST(GraphIndex, AgreesWithTheGraphScans) {
  Model m = small_cnn();
  GraphBuilder b(13);
  b.input("x", DType::Float32, {2, 3});
  auto r = b.node("Relu", {"x"}, {}, 1, "relu");
  auto sq = b.node("Mul", {r, r}, {}, 1, "square");
  auto s = b.node("Add", {sq, r}, {}, 1, "sum");
  b.output(s);
  b.output(r);
  for (const Model& model : {m, b.build()}) {
    const Graph& g = model.graph;
    GraphIndex ix(g);
    std::set<std::string> values = {"nope"};
    for (auto& n : g.nodes) {
      values.insert(n.inputs.begin(), n.inputs.end());
      values.insert(n.outputs.begin(), n.outputs.end());
    }
    for (auto& v : values) {
      EXPECT_EQ(ix.producer(v), g.producer(v)) << v;
      EXPECT_EQ(ix.consumers(v), g.consumers(v)) << v;
      EXPECT_EQ(ix.value_info(v), g.find_value_info(v)) << v;
    }
  }
}
