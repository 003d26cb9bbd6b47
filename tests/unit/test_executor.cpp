// Executor: hooks that observe and replace values, input validation, unsupported-op reporting.
#include <gtest/gtest.h>

#include <set>

#include "ir/builder.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

TEST(Executor, HooksSeeEveryValueInOrder) {
  Model m = small_cnn();
  Executor ex(m);
  std::vector<std::string> seen;
  ex.add_hook([&](const Node* n, const std::string& name, Tensor&) { seen.push_back((n ? n->name : "<input>") + ":" + name); });
  ex.run({{"x", random_tensor({1, 3, 8, 8}, 1)}});
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0], "<input>:x");
  EXPECT_EQ(seen[1], "conv:conv_out0");
  EXPECT_EQ(seen[5], "fc:fc_out0");
}

TEST(Executor, HookCanReplaceAValue) {
  Model m = small_cnn();
  Executor ex(m);
  Tensor x = random_tensor({1, 3, 8, 8}, 2);
  // Zeroing the Relu output leaves only the Gemm bias in the result.
  ex.add_hook([&](const Node* n, const std::string&, Tensor& v) {
    if (n && n->name == "relu") v = Tensor(DType::Float32, v.shape());
  });
  Tensor y = ex.run({{"x", x}}).begin()->second;
  auto fb = m.graph.initializers.at("fb").to_f64();
  EXPECT_EQ(y.to_f64(), (std::vector<double>{(double)(float)fb[0], (double)(float)fb[1]}));
}

TEST(Executor, FetchIntermediateValues) {
  Model m = small_cnn();
  auto r = Executor(m).run({{"x", random_tensor({2, 3, 8, 8}, 3)}}, {"relu_out0"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r.at("relu_out0").shape(), (Shape{2, 4, 8, 8}));
  for (float v : r.at("relu_out0").span<float>()) EXPECT_GE(v, 0.f);
}

TEST(Executor, WrongInputShapeOrDtypeIsAClearError) {
  Executor ex(small_cnn());
  try {
    ex.run({{"x", random_tensor({1, 3, 9, 8}, 1)}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "input 'x': expected shape [N,3,8,8], got [1,3,9,8]");
  }
  try {
    ex.run({{"x", Tensor(DType::Float64, {1, 3, 8, 8})}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "input 'x': expected dtype float32, got float64");
  }
  EXPECT_THROW(ex.run({}), Error);
  EXPECT_THROW(ex.run({{"x", random_tensor({1, 3, 8, 8}, 1)}, {"nope", Tensor()}}), Error);
}

TEST(Executor, UnsupportedOpsAreAllNamedInOneMessage) {
  Model m = small_cnn();
  m.graph.nodes[1].op_type = "FancyAct";
  m.graph.nodes[2].op_type = "FancyPool";
  Node extra = m.graph.nodes[1];
  try {
    Executor ex(m);
    FAIL();
  } catch (const Unsupported& e) {
    EXPECT_STREQ(e.what(), "unsupported ops: FancyAct (first at node 'relu'), FancyPool (first at node 'gap')");
  }
}

TEST(Executor, KernelErrorsNameTheNode) {
  GraphBuilder b(13);
  b.input("a", DType::Float32, {2, 3});
  b.input("b", DType::Float32, {4, 5});
  b.output(b.node("MatMul", {"a", "b"}, {}, 1, "mm"));
  try {
    Executor(b.build()).run({{"a", Tensor(DType::Float32, {2, 3})}, {"b", Tensor(DType::Float32, {4, 5})}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MatMul node 'mm'"), std::string::npos) << e.what();
  }
}

// The executor's own accounting: a chain of N elementwise ops holds at most two values (the input of the running
// node and its output) at any time. Removing the release of consumed values makes the peak N + 1 values and fails
// this; so does dropping the release of outputs nothing reads (the unused Dropout masks).
TEST(Executor, IntermediatesAreFreedAfterLastUse) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {1, 1000});
  std::string v = "x";
  for (int i = 0; i < 6; ++i) {
    v = b.node(i % 2 ? "Relu" : "Neg", {v}, {}, 1, "op" + std::to_string(i));
    v = b.node("Dropout", {v}, {}, 2, "drop" + std::to_string(i));  // its mask output is never read
  }
  b.output(v);
  Executor ex(b.build());
  RunStats st;
  auto r = ex.run({{"x", random_tensor({1, 1000}, 1)}}, {}, &st);
  EXPECT_EQ(r.size(), 1u);  // only the requested output is returned
  EXPECT_EQ(st.peak_live_values, 3);  // Dropout: its input, its output and its mask, until the mask is released
  EXPECT_EQ(st.peak_live_bytes, 2 * 4000 + 1000);
}
