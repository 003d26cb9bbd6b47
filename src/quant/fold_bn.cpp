// Batch-norm folding.
#include "quant/fold_bn.h"

#include <cmath>
#include <set>

#include "ir/passes.h"
#include "runtime/executor.h"

namespace lowbit::quant {

void fold_bn(float* w, float* b, int64_t outer, int64_t channels, int64_t inner, const float* gamma, const float* beta,
             const float* mean, const float* var, float eps) {
  for (int64_t c = 0; c < channels; ++c) {
    double f = (double)gamma[c] / std::sqrt((double)var[c] + (double)eps);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        float& v = w[(o * channels + c) * inner + i];
        v = (float)(v * f);
      }
    b[c] = (float)(beta[c] + ((double)b[c] - mean[c]) * f);
  }
}

namespace {

// Float32 copy of a constant input (initializer), or an undefined tensor.
Tensor constant_f32(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end() || g.is_graph_input(name)) return Tensor();
  return it->second.dtype() == DType::Float32 ? it->second.clone() : Tensor();
}

}  // namespace

int fold_batch_norms(Model& m, std::map<std::string, BnParams>* record) {
  Graph& g = m.graph;
  topological_sort(g);
  int folded = 0;
  std::vector<size_t> dead;
  for (size_t bi = 0; bi < g.nodes.size(); ++bi) {
    Node& bn = g.nodes[bi];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.size() < 5) continue;
    if (bn.attr_int("training_mode", 0) != 0 || bn.outputs.size() > 1) continue;
    int pi = g.producer(bn.inputs[0]);
    if (pi < 0) continue;
    Node& layer = g.nodes[(size_t)pi];
    bool conv = layer.op_type == "Conv" && layer.domain.empty();
    bool gemm = layer.op_type == "Gemm" && layer.domain.empty() && layer.attr_int("transA", 0) == 0 &&
                layer.attr_float("alpha", 1.f) == 1.f && layer.attr_float("beta", 1.f) == 1.f;
    if (!(conv || gemm) || g.consumers(bn.inputs[0]).size() != 1 || g.is_graph_output(bn.inputs[0])) continue;
    Tensor w = constant_f32(g, layer.inputs.at(1));
    Tensor gamma = constant_f32(g, bn.inputs[1]), beta = constant_f32(g, bn.inputs[2]), mean = constant_f32(g, bn.inputs[3]),
           var = constant_f32(g, bn.inputs[4]);
    if (!w.defined() || !gamma.defined() || !beta.defined() || !mean.defined() || !var.defined()) continue;
    int64_t outer, channels, inner;
    if (conv) {
      channels = w.dim(0), outer = 1, inner = w.numel() / std::max<int64_t>(channels, 1);
    } else {
      check(w.rank() == 2, layer.describe(), ": Gemm weight must be 2-D");
      bool tb = layer.attr_int("transB", 0) != 0;
      channels = tb ? w.dim(0) : w.dim(1);
      outer = tb ? 1 : w.dim(0);
      inner = tb ? w.dim(1) : 1;
    }
    if (gamma.numel() != channels || beta.numel() != channels || mean.numel() != channels || var.numel() != channels) continue;
    Tensor b(DType::Float32, {channels});
    if (layer.inputs.size() > 2 && !layer.inputs[2].empty()) {
      Tensor old = constant_f32(g, layer.inputs[2]);
      if (!old.defined() || old.numel() != channels) continue;  // e.g. a broadcast Gemm bias: leave unfolded
      b = old;
    }
    fold_bn(w.data<float>(), b.data<float>(), outer, channels, inner, gamma.data<float>(), beta.data<float>(),
            mean.data<float>(), var.data<float>(), bn.attr_float("epsilon", 1e-5f));
    std::string wname = g.unique_name(layer.inputs[1] + "_bnfold"), bname = g.unique_name(layer.name + "_bias_bnfold");
    g.initializers[wname] = w;
    g.initializers[bname] = b;
    layer.inputs[1] = wname;
    if (layer.inputs.size() < 3) layer.inputs.resize(3);
    layer.inputs[2] = bname;
    // The layer takes over the BatchNormalization's output name (so graph outputs keep their names); the
    // BatchNormalization, its only reader, goes.
    layer.outputs[0] = bn.outputs[0];
    if (record) {
      auto vec = [](const Tensor& t) { return std::vector<float>(t.span<float>().begin(), t.span<float>().end()); };
      BnParams p;
      p.beta = vec(beta), p.gamma = vec(gamma), p.mean = vec(mean), p.var = vec(var);
      p.eps = bn.attr_float("epsilon", 1e-5f);
      p.layer = layer.name;
      (*record)[bn.outputs[0]] = p;
    }
    dead.push_back(bi);
    ++folded;
  }
  for (auto it = dead.rbegin(); it != dead.rend(); ++it) g.nodes.erase(g.nodes.begin() + (std::ptrdiff_t)*it);
  remove_dead_nodes(g);
  return folded;
}

PrepareStats prepare_for_quantization(Model& m) {
  PrepareStats st;
  // Quantizers refer to nodes by name: give unnamed or duplicate-named nodes unique names.
  std::set<std::string> seen;
  for (auto& n : m.graph.nodes) {
    if (n.name.empty() || seen.count(n.name)) n.name = m.graph.unique_name(n.op_type + "_" + (n.outputs.empty() ? "" : n.outputs[0]));
    seen.insert(n.name);
  }
  int64_t opset = m.opset("");
  st.constants_folded = fold_constants(
      m.graph, [&](const Node& n, const std::vector<Tensor>& in) { return eval_node(n, opset, in); }, shape_subgraph_ops());
  st.batch_norms_folded = fold_batch_norms(m, &st.batch_norms);
  return st;
}

}  // namespace lowbit::quant
