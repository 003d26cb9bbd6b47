// Reverse-mode gradient rules, one per op type, kept in one table (the training layer's; kernels never see them).
//
// A rule gets the node, its forward inputs and outputs, and the gradients of the outputs (undefined where nothing
// downstream needs one), and returns one gradient per input: undefined where the input has none (integer inputs,
// shapes, axes) or where `need[i]` is false. Every rule is checked against finite differences by one generic tester
// (tests/unit/test_grad.cpp).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit::train {

struct GradContext {
  const Node& node;
  int64_t opset;
  const std::vector<const Tensor*>& ins;   // nullptr for omitted optional inputs
  const std::vector<Tensor>& outs;
  const std::vector<Tensor>& gouts;        // undefined where an output has no gradient
  const std::vector<char>& need;           // per input: is its gradient wanted
  bool has(size_t i) const { return i < ins.size() && ins[i] && ins[i]->defined(); }
  const Tensor& in(size_t i) const {
    check(has(i), node.describe(), ": missing input ", i);
    return *ins[i];
  }
  bool wants(size_t i) const { return i < need.size() && need[i]; }
  // The gradient of output k, or zeros of its shape where none arrived.
  Tensor gout(size_t k) const;
  std::string where() const { return node.describe(); }
};

using GradRule = std::vector<Tensor> (*)(const GradContext&);

// The rule for a node's op (domain "" or "lowbit"), or nullptr when there is none.
GradRule find_grad_rule(const std::string& domain, const std::string& op_type);
// Every op type the table covers ("Conv", "lowbit::FakeQuant", ...).
std::vector<std::string> grad_rule_ops();

// Helpers shared by the rules (grad_util.cpp).
// g summed over the dimensions along which `target` was broadcast to g's shape.
Tensor reduce_to_shape(const Tensor& g, const Shape& target);
// a + b element-wise (same shape); either may be undefined.
Tensor add_grads(const Tensor& a, const Tensor& b);
Tensor zeros_like(const Tensor& t);
// t with its dimensions permuted (the Transpose op's kernel).
Tensor transposed(const Tensor& t, const std::vector<int64_t>& perm);

// Registration, one per op family.
struct GradTable {
  std::map<std::string, GradRule> rules;  // key: op type, or "lowbit::" + op type
  void add(const std::string& key, GradRule r) { rules[key] = r; }
};
void add_math_rules(GradTable& t);
void add_nn_rules(GradTable& t);
void add_move_rules(GradTable& t);
void add_quant_rules(GradTable& t);
// The generic data-movement rule (run the op on index tensors, scatter the gradient back), which the direct rules
// for Reshape, Transpose, Gather and Concat are tested against.
GradRule index_method_rule();

}  // namespace lowbit::train
