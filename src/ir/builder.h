// GraphBuilder: builds IR models in code (tests, benchmarks, and passes that emit new nodes).
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

Attribute attr_int(const std::string& name, int64_t v);
Attribute attr_float(const std::string& name, float v);
Attribute attr_ints(const std::string& name, std::vector<int64_t> v);
Attribute attr_floats(const std::string& name, std::vector<float> v);
Attribute attr_string(const std::string& name, const std::string& v);
Attribute attr_tensor(const std::string& name, const Tensor& t);

class GraphBuilder {
 public:
  explicit GraphBuilder(int64_t opset = 17, const std::string& name = "graph");
  // Declares a graph input; dims < 0 become symbolic ("N" for the first, "d<i>" otherwise).
  std::string input(const std::string& name, DType dt, const std::vector<int64_t>& dims);
  std::string initializer(const std::string& name, Tensor t);
  // Adds a node and returns its first output (outputs are named "<name>_out<i>").
  std::string node(const std::string& op, const std::vector<std::string>& inputs, std::vector<Attribute> attrs = {},
                   int num_outputs = 1, const std::string& name = "");
  void output(const std::string& value, DType dt = DType::Float32);
  Model build() const { return model_; }
  Model& model() { return model_; }

 private:
  Model model_;
  int counter_ = 0;
};

}  // namespace lowbit
