// Control flow: If, Loop, Scan. Their bodies run through the executor's SubgraphRunner in the node's scope.
#include <algorithm>
#include <cstring>

#include "core/checked.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

const SubgraphRunner& runner(const OpContext& c) {
  check(c.subgraphs != nullptr, c.where(), ": control flow needs the executor (it cannot be constant-folded)");
  return *c.subgraphs;
}

const Graph& body_attr(const OpContext& c, const char* name) {
  const Attribute* a = c.node.attr(name);
  check(a && a->type == AttrType::Graph && a->g, c.where(), ": attribute '", name, "' must be a graph");
  return *a->g;
}

bool scalar_bool(const OpContext& c, const Tensor& t, const char* what) {
  check(t.numel() == 1, c.where(), ": ", what, " must hold exactly one value, got shape ", shape_str(t.shape()));
  return t.to_f64()[0] != 0;
}

// x with index i taken along `axis` (the axis removed).
Tensor take(const Tensor& x, int64_t axis, int64_t i) {
  int64_t outer, n, inner;
  split_dims(x.shape(), axis, outer, n, inner);
  Shape s = x.shape();
  s.erase(s.begin() + axis);
  Tensor r(x.dtype(), s);
  size_t es = dtype_size(x.dtype()), row = (size_t)inner * es;
  auto* src = static_cast<const std::byte*>(x.raw());
  auto* dst = static_cast<std::byte*>(r.raw_mut());
  for (int64_t o = 0; o < outer && row; ++o) std::memcpy(dst + o * row, src + (o * n + i) * row, row);
  return r;
}

// Stacks equally shaped parts along a new axis `axis` (parts[k] lands at index k).
Tensor stack(const OpContext& c, const std::vector<Tensor>& parts, int64_t axis, const ValueInfo& declared) {
  if (parts.empty()) {
    // No iteration ran: a zero-length axis in front of the body output's declared shape (fixed dims only).
    Shape s{0};
    for (auto& d : declared.shape) s.push_back(d.fixed() ? d.value : 0);
    return Tensor(declared.dtype != DType::Undefined ? declared.dtype : DType::Float32, s);
  }
  const Tensor& p0 = parts[0];
  for (auto& p : parts)
    check(p.dtype() == p0.dtype() && p.shape() == p0.shape(), c.where(),
          ": scan output parts differ in shape across iterations (", shape_str(p0.shape()), " vs ",
          shape_str(p.shape()), ")");
  int64_t r = p0.rank() + 1;
  check(axis >= -r && axis < r, c.where(), ": scan output axis ", axis, " out of range for rank ", r);
  if (axis < 0) axis += r;
  Shape s = p0.shape();
  s.insert(s.begin() + axis, (int64_t)parts.size());
  Tensor out(p0.dtype(), s);
  int64_t outer, n, inner;
  split_dims(s, axis, outer, n, inner);
  size_t es = dtype_size(p0.dtype()), row = (size_t)inner * es;
  auto* dst = static_cast<std::byte*>(out.raw_mut());
  for (int64_t k = 0; k < n; ++k) {
    auto* src = static_cast<const std::byte*>(parts[k].raw());
    for (int64_t o = 0; o < outer && row; ++o) std::memcpy(dst + (o * n + k) * row, src + o * row, row);
  }
  return out;
}

Outs op_If(const OpContext& c) {
  bool cond = scalar_bool(c, c.in(0), "the condition");
  const Graph& branch = body_attr(c, cond ? "then_branch" : "else_branch");
  Outs outs = runner(c).run(branch, {});
  check(outs.size() == c.node.outputs.size(), c.where(), ": the ", cond ? "then" : "else", " branch gives ",
        outs.size(), " outputs, the node has ", c.node.outputs.size());
  return outs;
}

Outs op_Loop(const OpContext& c) {
  const Graph& body = body_attr(c, "body");
  bool has_m = c.has(0), has_cond = c.has(1);
  int64_t m = has_m ? first_i64(c, 0) : -1;
  bool cond = has_cond ? scalar_bool(c, c.in(1), "the initial condition") : true;
  check(has_m || has_cond, c.where(), ": a Loop with neither a trip count nor a condition never ends");
  size_t n_carried = c.num_inputs() >= 2 ? c.num_inputs() - 2 : 0;
  check(body.inputs.size() == n_carried + 2, c.where(), ": the body takes ", body.inputs.size(),
        " inputs, expected 2 + ", n_carried, " loop-carried values");
  check(body.outputs.size() >= n_carried + 1, c.where(), ": the body gives ", body.outputs.size(),
        " outputs, expected at least 1 + ", n_carried);
  size_t n_scan = body.outputs.size() - 1 - n_carried;
  check(c.node.outputs.size() <= n_carried + n_scan, c.where(), ": the node has ", c.node.outputs.size(),
        " outputs, the body gives ", n_carried + n_scan);
  std::vector<Tensor> carried;
  for (size_t i = 0; i < n_carried; ++i) carried.push_back(c.in(2 + i));
  std::vector<std::vector<Tensor>> scans(n_scan);
  int64_t limit = loop_iteration_limit();
  for (int64_t it = 0; cond && (!has_m || it < m); ++it) {
    check(it < limit, c.where(), ": the loop runs past ", limit, " iterations (lowbit's limit)");
    std::vector<Tensor> in{Tensor::scalar<int64_t>(it), Tensor::scalar<bool>(cond)};
    for (auto& t : carried) in.push_back(t);
    Outs out = runner(c).run(body, in);
    cond = scalar_bool(c, out[0], "the body's condition output");
    for (size_t i = 0; i < n_carried; ++i) carried[i] = std::move(out[1 + i]);
    for (size_t k = 0; k < n_scan; ++k) {
      Tensor& t = out[1 + n_carried + k];
      check_allocation(t.dtype(), Shape{(int64_t)scans[k].size() + 1, t.numel()});
      scans[k].push_back(std::move(t));
    }
  }
  Outs result = carried;
  for (size_t k = 0; k < n_scan; ++k) result.push_back(stack(c, scans[k], 0, body.outputs[1 + n_carried + k]));
  return result;
}

Outs op_Scan(const OpContext& c) {
  const Graph& body = body_attr(c, "body");
  int64_t m = c.node.attr_int("num_scan_inputs", -1);
  int64_t n_in = (int64_t)c.num_inputs();
  check(m >= 1 && m <= n_in, c.where(), ": num_scan_inputs ", m, " must be in [1, ", n_in, "]");
  int64_t n_state = n_in - m;
  check((int64_t)body.inputs.size() == n_in, c.where(), ": the body takes ", body.inputs.size(), " inputs, expected ",
        n_in);
  int64_t n_scan_out = (int64_t)body.outputs.size() - n_state;
  check(n_scan_out >= 0, c.where(), ": the body gives ", body.outputs.size(), " outputs, fewer than its ", n_state,
        " states");
  auto in_axes = c.node.attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
  auto in_dirs = c.node.attr_ints("scan_input_directions", std::vector<int64_t>(m, 0));
  auto out_axes = c.node.attr_ints("scan_output_axes", std::vector<int64_t>(n_scan_out, 0));
  auto out_dirs = c.node.attr_ints("scan_output_directions", std::vector<int64_t>(n_scan_out, 0));
  check((int64_t)in_axes.size() == m && (int64_t)in_dirs.size() == m, c.where(),
        ": scan_input_axes/directions need ", m, " entries");
  check((int64_t)out_axes.size() == n_scan_out && (int64_t)out_dirs.size() == n_scan_out, c.where(),
        ": scan_output_axes/directions need ", n_scan_out, " entries");
  int64_t len = -1;
  for (int64_t k = 0; k < m; ++k) {
    const Tensor& x = c.in(n_state + k);
    in_axes[k] = norm_axis(in_axes[k], x.rank(), c);
    int64_t l = x.shape()[in_axes[k]];
    check(len < 0 || l == len, c.where(), ": scan inputs have different lengths (", len, " and ", l, ")");
    len = l;
  }
  check(len <= loop_iteration_limit(), c.where(), ": the scan runs ", len, " iterations, past lowbit's limit of ",
        loop_iteration_limit());
  std::vector<Tensor> state;
  for (int64_t i = 0; i < n_state; ++i) state.push_back(c.in(i));
  std::vector<std::vector<Tensor>> scans(n_scan_out);
  for (int64_t t = 0; t < len; ++t) {
    std::vector<Tensor> in = state;
    for (int64_t k = 0; k < m; ++k) {
      const Tensor& x = c.in(n_state + k);
      in.push_back(take(x, in_axes[k], in_dirs[k] ? len - 1 - t : t));
    }
    Outs out = runner(c).run(body, in);
    for (int64_t i = 0; i < n_state; ++i) state[i] = std::move(out[i]);
    for (int64_t k = 0; k < n_scan_out; ++k) scans[k].push_back(std::move(out[n_state + k]));
  }
  Outs result = state;
  for (int64_t k = 0; k < n_scan_out; ++k) {
    if (out_dirs[k]) std::reverse(scans[k].begin(), scans[k].end());
    result.push_back(stack(c, scans[k], out_axes[k], body.outputs[n_state + k]));
  }
  return result;
}

}  // namespace

void register_control_ops(OpRegistry& r) {
  r.add({"If", "", 1, op_If});
  r.add({"Loop", "", 1, op_Loop});
  r.add({"Scan", "", 9, op_Scan});
}

}  // namespace lowbit
