// Opset upgrade: the converted graph computes the same values, bit for bit, as the original under its own opset;
// the feed loader covers multi-input models.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/feeds.h"
#include "io/npy.h"
#include "ir/builder.h"
#include "ir/onnx_io.h"
#include "ir/opset.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::random_tensor;

// Every op whose form or meaning changes between opsets 11 and 18, in its opset-11 form.
Model opset11_model() {
  GraphBuilder b(11);
  std::string x = b.input("x", DType::Float32, {2, 3, 4, 5});
  std::string sm = b.node("Softmax", {x}, {attr_int("axis", 1)});          // 2-D coercion at axis 1
  std::string lsm = b.node("LogSoftmax", {x}, {attr_int("axis", 2)});      // ... at axis 2
  std::string hm = b.node("Hardmax", {x}, {});                             // default axis 1
  std::string rs = b.node("ReduceSum", {x}, {attr_ints("axes", {1, 3}), attr_int("keepdims", 1)});
  std::string sq = b.node("Squeeze", {rs}, {attr_ints("axes", {3})});
  std::string us = b.node("Unsqueeze", {sq}, {attr_ints("axes", {0})});
  std::string rm = b.node("ReduceMean", {x}, {attr_ints("axes", {2}), attr_int("keepdims", 0)});
  std::string sp = b.node("Split", {x}, {attr_int("axis", 3), attr_ints("split", {2, 3})}, 2);
  b.output(sm);
  b.output(lsm);
  b.output(hm);
  b.output(us);
  b.output(rm);
  b.output(sp);
  b.output(b.model().graph.nodes.back().outputs[1]);
  return b.build();
}

TEST(Opset, UpgradeKeepsEveryOutputBitExact) {
  Model m11 = opset11_model();
  Tensor x = random_tensor({2, 3, 4, 5}, 3, -4.f, 4.f);
  TensorMap want = Executor(m11).run({{"x", x}});
  for (int64_t target : {13, 18}) {
    Model m = m11;
    auto lines = upgrade_opset(m, target);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(m.opset(""), target);
    EXPECT_GE(m.ir_version, 7);
    // No attribute that became an input is left behind.
    for (auto& n : m.graph.nodes) {
      bool moved13 = n.op_type == "Squeeze" || n.op_type == "Unsqueeze" || n.op_type == "ReduceSum";
      if (moved13) {
        EXPECT_FALSE(n.has_attr("axes")) << n.describe();
      }
      if (n.op_type == "Split") {
        EXPECT_FALSE(n.has_attr("split"));
      }
      if (n.op_type == "ReduceMean") {
        EXPECT_EQ(n.has_attr("axes"), target < 18);
      }
    }
    TensorMap got = Executor(m).run({{"x", x}});
    ASSERT_EQ(got.size(), want.size());
    for (auto& [k, t] : want) EXPECT_TRUE(got.at(k).bit_equal(t)) << k << " at opset " << target;
    // The written model loads again and still agrees.
    Model again = parse_onnx(serialize_onnx(m), "upgraded", ".");
    TensorMap got2 = Executor(again).run({{"x", x}});
    for (auto& [k, t] : want) EXPECT_TRUE(got2.at(k).bit_equal(t)) << k;
  }
}

TEST(Opset, SoftmaxOnTheLastAxisStaysOneNode) {
  GraphBuilder b(11);
  std::string x = b.input("x", DType::Float32, {3, 7});
  b.output(b.node("Softmax", {x}, {}));
  Model m = b.build();
  upgrade_opset(m, 13);
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].attr_int("axis", 0), -1);
}

TEST(Opset, NewerThanKnownIsRefusedNamingBothVersions) {
  GraphBuilder b(kMaxOpset + 1);
  std::string x = b.input("x", DType::Float32, {1});
  b.output(b.node("Relu", {x}));
  std::string bytes = serialize_onnx(b.build(), false);
  try {
    parse_onnx(bytes, "m.onnx", ".");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("opset " + std::to_string(kMaxOpset + 1)), std::string::npos) << msg;
    EXPECT_NE(msg.find("up to " + std::to_string(kMaxOpset)), std::string::npos) << msg;
  }
  Model ok = b.build();
  ok.opsets[""] = kMaxOpset;
  ok.ir_version = kMaxIrVersion + 1;
  try {
    parse_onnx(serialize_onnx(ok, false), "m.onnx", ".");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("IR version " + std::to_string(kMaxIrVersion + 1)), std::string::npos) << msg;
    EXPECT_NE(msg.find("up to " + std::to_string(kMaxIrVersion)), std::string::npos) << msg;
  }
  ok.ir_version = kMaxIrVersion;
  EXPECT_NO_THROW(parse_onnx(serialize_onnx(ok), "m.onnx", "."));
}

// A two-input model: float images and an int64 scalar; a fixed batch dimension of 1.
std::vector<ValueInfo> two_inputs(bool fixed_batch) {
  ValueInfo a;
  a.name = "images", a.dtype = DType::Float32, a.has_shape = true;
  Dim batch, three;
  batch.value = fixed_batch ? 1 : -1;
  batch.param = fixed_batch ? "" : "N";
  three.value = 3;
  a.shape = {batch, three};
  ValueInfo s;
  s.name = "sr", s.dtype = DType::Int64, s.has_shape = true;
  return {a, s};
}

TEST(FeedLoader, NamedInputsScalarsAndFixedBatch) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "lowbit_feeds_test";
  fs::create_directories(dir);
  Tensor imgs = random_tensor({5, 3}, 1);
  save_npy((dir / "imgs.npy").string(), imgs);
  save_npy((dir / "sr.npy").string(), Tensor::scalar<int64_t>(16000));
  save_npy((dir / "ids.npy").string(), Tensor::from_vector<int32_t>({5, 3}, std::vector<int32_t>(15, 7)));
  data::LoaderOptions o;
  o.batch_size = 2;
  std::vector<std::string> specs{"images=npy:" + (dir / "imgs.npy").string(), "sr=npy:" + (dir / "sr.npy").string()};
  data::FeedLoader fl(specs, two_inputs(false), o);
  EXPECT_EQ(fl.size(), 5);
  data::Feeds f;
  std::vector<int64_t> rows;
  while (fl.next(f)) {
    rows.push_back(f.at("images").dim(0));
    EXPECT_EQ(f.at("sr").rank(), 0);
    EXPECT_EQ(f.at("sr").data<int64_t>()[0], 16000);
  }
  EXPECT_EQ(rows, (std::vector<int64_t>{2, 2, 1}));
  // A fixed batch dimension overrides --batch-size and says so.
  data::FeedLoader fixed(specs, two_inputs(true), o);
  rows.clear();
  while (fixed.next(f)) rows.push_back(f.at("images").dim(0));
  EXPECT_EQ(rows, (std::vector<int64_t>(5, 1)));
  ASSERT_FALSE(fixed.notes().empty());
  EXPECT_NE(fixed.notes()[0].find("batch size 1"), std::string::npos);
  // Missing input, unknown name, wrong dtype, unnamed data for a two-input model: errors naming the input.
  auto err = [&](std::vector<std::string> s) {
    try {
      data::FeedLoader bad(s, two_inputs(false), o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err({specs[0]}).find("nothing feeds model input 'sr'"), std::string::npos);
  EXPECT_NE(err({specs[0], specs[1], "mask=npy:" + (dir / "sr.npy").string()}).find("no input 'mask'"), std::string::npos);
  EXPECT_NE(err({specs[0], "sr=npy:" + (dir / "ids.npy").string()}).find("model input 'sr' is int64, the data is int32"),
            std::string::npos);
  EXPECT_NE(err({"npy:" + (dir / "imgs.npy").string()}).find("name the one this data feeds"), std::string::npos);
  fs::remove_all(dir);
}

// batches:DIR feeds each file as it is (different widths per batch); npz:FILE splits arrays keyed by input name.
TEST(FeedLoader, BatchFoldersAndNpz) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "lowbit_feeds_batches";
  fs::remove_all(dir);
  fs::create_directories(dir / "b");
  ValueInfo x;
  x.name = "x", x.dtype = DType::Float32, x.has_shape = true;
  x.shape.resize(2);  // [N, W], both symbolic
  save_npz((dir / "b" / "0.npz").string(), {{"x", random_tensor({2, 160}, 1)}});
  save_npz((dir / "b" / "1.npz").string(), {{"x", random_tensor({3, 320}, 2)}});
  data::LoaderOptions o;
  data::FeedLoader fl({"batches:" + (dir / "b").string()}, {x}, o);
  EXPECT_EQ(fl.size(), 5);
  data::Feeds f;
  std::vector<Shape> shapes;
  while (fl.next(f)) shapes.push_back(f.at("x").shape());
  EXPECT_EQ(shapes, (std::vector<Shape>{{2, 160}, {3, 320}}));
  fl.reset();
  ASSERT_TRUE(fl.next(f));
  EXPECT_EQ(f.at("x").shape(), (Shape{2, 160}));
  // A batch file without the model's input is refused up front, naming the file and the input.
  save_npz((dir / "b" / "2.npz").string(), {{"y", random_tensor({1, 4}, 3)}});
  try {
    data::FeedLoader bad({"batches:" + (dir / "b").string()}, {x}, o);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2.npz"), std::string::npos) << e.what();
  }
  save_npz((dir / "all.npz").string(), {{"x", random_tensor({7, 5}, 4)}});
  o.batch_size = 3;
  data::FeedLoader nz({"npz:" + (dir / "all.npz").string()}, {x}, o);
  std::vector<int64_t> rows;
  while (nz.next(f)) rows.push_back(f.at("x").dim(0));
  EXPECT_EQ(rows, (std::vector<int64_t>{3, 3, 1}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit
