// lowbit public API: loading, describing and running models.
//
//   lowbit::Model m = lowbit::Model::load("model.onnx");   // checked: a bad file is an Error naming file and value
//   lowbit::Session s(m);
//   lowbit::TensorMap out = s.run({{"image", x}});          // every output by name
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ir/graph.h"
#include "runtime/executor.h"

namespace lowbit {

// What `lowbit info` shows: versions, inputs/outputs, parameters, op counts and ops lowbit cannot run.
struct ModelInfo {
  int64_t ir_version = 0;
  std::string producer;
  std::map<std::string, int64_t> opsets;  // "ai.onnx" for the default domain
  std::vector<ValueInfo> inputs, outputs; // inputs without initializers
  int64_t parameters = 0;
  size_t parameter_bytes = 0, initializers = 0, nodes = 0;
  std::map<std::string, int> ops;         // "Conv" or "domain.Op" -> count
  std::vector<std::string> unsupported_ops;
};
ModelInfo describe(const Model& m);
// "[?,3,224,224]" (symbolic dims by name, unknown as ?), "?" without a shape.
std::string dims_string(const ValueInfo& v);

// Folds constant sub-graphs (Shape/Gather/Concat/Unsqueeze chains); returns the number of nodes folded. Throws for
// ops lowbit cannot run before folding anything.
int fold_constant_subgraphs(Model& m);

// Runs a model in FP32 (or whatever its QDQ nodes compute). One run() at a time per Session (kernels cache their
// prepared weights per node); use one Session per thread.
class Session {
 public:
  explicit Session(const Model& model);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // The inputs run() needs (graph inputs that are not initializers) and the graph outputs.
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
  // Runs on named inputs; returns the fetched values (all graph outputs when `fetch` is empty). A missing input is
  // an Error naming it.
  TensorMap run(const TensorMap& feeds, const std::vector<std::string>& fetch = {}) const;
  // Calls `hook` with every value named in `values` as it is computed (all values when empty).
  void add_hook(ValueHook hook, const std::vector<std::string>& values = {});
  const Model& model() const;

 private:
  std::unique_ptr<Executor> ex_;
};

}  // namespace lowbit
