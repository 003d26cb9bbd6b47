// Gradient rules of data-movement ops (Reshape, Transpose, Slice, Gather, Concat, Split, Pad, ...), all by one
// method: the op is run forward on integer tensors holding each element's own index (1-based, so that 0 marks an
// element no input provides, such as padding), and the output gradient is added back at the indices that come out.
// The rule is thus exactly the op's own indexing: no second implementation of its semantics to get wrong.
#include <algorithm>

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

// Direct rules for the busiest movers (Reshape-likes, Transpose, Gather, Concat), each checked against g_move's
// index method (tests/unit/test_grad.cpp) as well as against finite differences.

// Ops that keep every element in place (Reshape, Flatten, Squeeze, Unsqueeze, Identity, inference Dropout): the
// gradient is the output's gradient in the input's shape.
Grads g_reshape(const GradContext& c) {
  if (c.node.op_type == "Dropout") return g_move(c);  // its training-mode check lives there
  Grads r(c.ins.size());
  if (c.wants(0) && c.in(0).dtype() == DType::Float32) r[0] = c.gout(0).reshaped(c.in(0).shape());
  return r;
}

// Transpose: the output's gradient transposed back by the inverse permutation.
Grads g_transpose(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0) || c.in(0).dtype() != DType::Float32) return r;
  const int64_t rank = c.in(0).rank();
  std::vector<int64_t> perm = c.node.attr_ints("perm");
  if (perm.empty())
    for (int64_t d = rank - 1; d >= 0; --d) perm.push_back(d);
  check((int64_t)perm.size() == rank, c.where(), ": perm has ", perm.size(), " entries for rank ", rank);
  std::vector<int64_t> inv((size_t)rank);
  for (int64_t d = 0; d < rank; ++d) inv[(size_t)perm[(size_t)d]] = d;
  r[0] = transposed(c.gout(0), inv);
  return r;
}

// Gather along `axis`: the output's gradient added back at the gathered positions (repeated indices accumulate).
Grads g_gather(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0) || c.in(0).dtype() != DType::Float32) return r;
  const Tensor& x = c.in(0);
  const int64_t rank = x.rank();
  int64_t axis = c.node.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  check(axis >= 0 && axis < rank, c.where(), ": axis out of range");
  const std::vector<int64_t> idx = c.in(1).to_i64();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim((int)d);
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.dim((int)d);
  const int64_t n = x.dim((int)axis), m = (int64_t)idx.size();
  const Tensor g = c.gout(0);
  check(g.numel() == outer * m * inner, c.where(), ": output gradient has the wrong size");
  std::vector<int64_t> pos((size_t)m);
  std::vector<char> seen((size_t)n, 0);
  bool repeats = false;
  for (int64_t j = 0; j < m; ++j) {
    int64_t k = idx[(size_t)j] < 0 ? idx[(size_t)j] + n : idx[(size_t)j];
    check(k >= 0 && k < n, c.where(), ": index ", idx[(size_t)j], " out of range for ", n);
    repeats = repeats || seen[(size_t)k];
    seen[(size_t)k] = 1, pos[(size_t)j] = k;
  }
  const float* pg = g.data<float>();
  Tensor gx(DType::Float32, x.shape());
  if (!repeats) {  // each position receives at most one value: copied
    float* px = gx.data<float>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < m; ++j)
        std::copy(pg + (o * m + j) * inner, pg + (o * m + j + 1) * inner, px + (o * n + pos[(size_t)j]) * inner);
  } else {  // summed in double, then rounded once (as the index method does), so repeated indices round alike
    std::vector<double> acc((size_t)x.numel(), 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < m; ++j) {
        double* dst = acc.data() + (o * n + pos[(size_t)j]) * inner;
        const float* src = pg + (o * m + j) * inner;
        for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
      }
    for (int64_t i = 0; i < x.numel(); ++i) gx.data<float>()[i] = (float)acc[(size_t)i];
  }
  r[0] = gx;
  return r;
}

// Concat: each input's gradient is its slab of the output's gradient along the axis.
Grads g_concat(const GradContext& c) {
  Grads r(c.ins.size());
  const Tensor g = c.gout(0);
  const int64_t rank = g.rank();
  int64_t axis = c.node.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  check(axis >= 0 && axis < rank, c.where(), ": axis out of range");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= g.dim((int)d);
  for (int64_t d = axis + 1; d < rank; ++d) inner *= g.dim((int)d);
  const int64_t row = g.dim((int)axis) * inner;
  const float* pg = g.data<float>();
  int64_t at = 0;  // this input's first element within an output row
  for (size_t i = 0; i < c.ins.size(); ++i) {
    if (!c.has(i)) continue;
    const Tensor& x = c.in(i);
    check(x.rank() == rank, c.where(), ": input ", i, " has rank ", x.rank(), ", the output ", rank);
    const int64_t len = x.dim((int)axis) * inner;
    if (c.wants(i) && x.dtype() == DType::Float32) {
      Tensor gx = Tensor::uninitialized(DType::Float32, x.shape());
      float* px = gx.data<float>();
#pragma omp parallel for schedule(static) if (outer * len > 65536)
      for (int64_t o = 0; o < outer; ++o) std::copy(pg + o * row + at, pg + o * row + at + len, px + o * len);
      r[i] = gx;
    }
    at += len;
  }
  check(at == row, c.where(), ": the inputs' sizes along the axis do not add up to the output's");
  return r;
}

}  // namespace

void add_move_rules(GradTable& t) {
  for (const char* op : {"Slice", "Split", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth"})
    t.add(op, g_move);
  for (const char* op : {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}) t.add(op, g_reshape);
  t.add("Transpose", g_transpose);
  t.add("Gather", g_gather);
  t.add("Concat", g_concat);
}

GradRule index_method_rule() { return g_move; }

}  // namespace lowbit::train
