// Gradient rules of data-movement ops (Reshape, Transpose, Slice, Gather, Concat, Split, Pad, ...), all by one
// method: the op is run forward on integer tensors holding each element's own index (1-based, so that 0 marks an
// element no input provides, such as padding), and the output gradient is added back at the indices that come out.
// The rule is thus exactly the op's own indexing: no second implementation of its semantics to get wrong.
#include "runtime/executor.h"
#include "train/grad.h"

namespace lowbit::train {

namespace {

using Grads = std::vector<Tensor>;

// The inputs whose elements the op moves: all of them for Concat, else input 0.
bool is_data_input(const std::string& op, size_t i) { return op == "Concat" ? true : i == 0; }

Grads g_move(const GradContext& c) {
  const std::string& op = c.node.op_type;
  check(!(op == "Dropout" && ((c.has(2) && c.in(2).to_i64().at(0) != 0) || c.node.attr_int("training_mode", 0))),
        c.where(), ": Dropout in training mode has no gradient rule (lowbit trains with dropout off)");
  std::vector<Tensor> ins(c.ins.size());
  std::vector<int64_t> first(c.ins.size(), 0);
  int64_t next = 1;
  bool any = false;
  for (size_t i = 0; i < c.ins.size(); ++i) {
    if (!c.has(i)) continue;
    if (is_data_input(op, i)) {
      const Tensor& x = c.in(i);
      Tensor idx(DType::Int64, x.shape());
      int64_t* p = idx.data<int64_t>();
      for (int64_t k = 0; k < idx.numel(); ++k) p[k] = next + k;
      first[i] = next;
      next += x.numel();
      ins[i] = idx;
      any = any || (c.wants(i) && x.dtype() == DType::Float32);
    } else if (op == "Pad" && i == 2) {
      ins[i] = Tensor(DType::Int64, c.in(i).shape());  // padding carries index 0: no source element
    } else {
      ins[i] = *c.ins[i];
    }
  }
  Grads r(c.ins.size());
  if (!any) return r;
  auto idx_outs = eval_node(c.node, c.opset, ins);
  // Gradients accumulated in one flat array over all data inputs (index - 1).
  std::vector<double> acc((size_t)(next - 1), 0.0);
  for (size_t k = 0; k < idx_outs.size() && k < c.gouts.size(); ++k) {
    if (!c.gouts[k].defined() || idx_outs[k].dtype() != DType::Int64) continue;
    const int64_t* pi = idx_outs[k].data<int64_t>();
    const float* pg = c.gouts[k].data<float>();
    check(idx_outs[k].numel() == c.gouts[k].numel(), c.where(), ": output gradient ", k, " has the wrong size");
    for (int64_t j = 0; j < idx_outs[k].numel(); ++j)
      if (pi[j] > 0) acc[(size_t)(pi[j] - 1)] += pg[j];
  }
  for (size_t i = 0; i < c.ins.size(); ++i) {
    if (!c.has(i) || !is_data_input(op, i) || !c.wants(i) || c.in(i).dtype() != DType::Float32) continue;
    Tensor g = Tensor::uninitialized(DType::Float32, c.in(i).shape());
    float* pg = g.data<float>();
    for (int64_t k = 0; k < g.numel(); ++k) pg[k] = (float)acc[(size_t)(first[i] - 1 + k)];
    r[i] = g;
  }
  return r;
}

}  // namespace

void add_move_rules(GradTable& t) {
  for (const char* op : {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice",
                         "Gather", "Concat", "Split", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth"})
    t.add(op, g_move);
}

}  // namespace lowbit::train
