#include "ptq/layer.h"

namespace lowbit::ptq {

namespace {

std::optional<LinearLayer> reject(std::string* why, const std::string& reason) {
  if (why) *why = reason;
  return std::nullopt;
}

}  // namespace

std::optional<LinearLayer> linear_layer(const Graph& g, int node, std::string* why) {
  const Node& n = g.nodes.at((size_t)node);
  LinearLayer l;
  l.node = node;
  l.name = n.name;
  if (!n.domain.empty()) return reject(why, "not an ONNX-domain op");
  if (n.op_type == "Conv") l.kind = LayerKind::Conv;
  else if (n.op_type == "Gemm") l.kind = LayerKind::Gemm;
  else if (n.op_type == "MatMul") l.kind = LayerKind::MatMul;
  else return reject(why, n.op_type + " is not a Conv, Gemm or MatMul");
  if (n.inputs.size() < 2 || !is_float_constant(g, n.inputs[1])) return reject(why, "its weight is not a constant float initializer");
  l.input = n.inputs[0];
  l.output = n.outputs.at(0);
  l.weight = n.inputs[1];
  const Shape& ws = g.initializers.at(l.weight).shape();
  LayerShape& s = l.shape;
  if (l.kind == LayerKind::Conv) {
    if (ws.size() < 3) return reject(why, "its weight is not [M, C/group, k...]");
    s.groups = n.attr_int("group", 1);
    s.out_channels = ws[0];
    s.in_channels = ws[1] * s.groups;
    s.kernel = 1;
    for (size_t i = 2; i < ws.size(); ++i) s.kernel *= ws[i];
    if (s.groups <= 0 || s.out_channels % s.groups) return reject(why, "its group does not divide the output channels");
  } else {
    if (ws.size() != 2) return reject(why, "its weight is not 2-D");
    if (l.kind == LayerKind::Gemm &&
        (n.attr_int("transA", 0) != 0 || n.attr_float("alpha", 1.f) != 1.f || n.attr_float("beta", 1.f) != 1.f))
      return reject(why, "Gemm with transA, alpha or beta is not handled");
    s.transposed = !(l.kind == LayerKind::Gemm && n.attr_int("transB", 0) != 0);
    s.out_channels = s.transposed ? ws[1] : ws[0];
    s.in_channels = s.transposed ? ws[0] : ws[1];
  }
  if (l.kind != LayerKind::MatMul) {
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      if (!is_float_constant(g, n.inputs[2]) || g.initializers.at(n.inputs[2]).numel() != s.out_channels)
        return reject(why, "its bias is not a constant with one value per output channel");
      l.bias = n.inputs[2];
    }
  } else {
    // nn.Linear on a 3-D input exports as MatMul + Add(bias): that Add holds the layer's bias.
    auto cons = g.consumers(l.output);
    if (cons.size() == 1 && !g.is_graph_output(l.output)) {
      const Node& add = g.nodes[(size_t)cons[0]];
      if (add.op_type == "Add" && add.inputs.size() == 2) {
        const std::string& other = add.inputs[0] == l.output ? add.inputs[1] : add.inputs[0];
        if (is_float_constant(g, other) && g.initializers.at(other).numel() == s.out_channels &&
            g.initializers.at(other).rank() == 1) {
          l.bias = other;
          l.bias_node = add.name;
        }
      }
    }
  }
  return l;
}

int output_channel_axis(const LinearLayer& l) { return l.kind == LayerKind::Conv ? 1 : -1; }

std::vector<float> get_bias(const Graph& g, const LinearLayer& l) {
  if (l.bias.empty()) return std::vector<float>((size_t)l.shape.out_channels, 0.f);
  auto sp = g.initializers.at(l.bias).span<float>();
  return {sp.begin(), sp.end()};
}

bool set_bias(Graph& g, LinearLayer& l, const std::vector<float>& b) {
  check((int64_t)b.size() == l.shape.out_channels, "set_bias: ", b.size(), " values for ", l.shape.out_channels, " channels");
  if (l.bias.empty()) {
    if (l.kind == LayerKind::MatMul) return false;
    Node& n = g.nodes.at((size_t)l.node);
    l.bias = g.unique_name(l.name + "_bias");
    n.inputs.resize(3);
    n.inputs[2] = l.bias;
  }
  g.initializers[l.bias] = Tensor::from_vector<float>({l.shape.out_channels}, b);
  return true;
}

std::vector<float> get_weight(const Graph& g, const LinearLayer& l) {
  auto sp = g.initializers.at(l.weight).span<float>();
  return {sp.begin(), sp.end()};
}

void set_weight(Graph& g, const LinearLayer& l, const std::vector<float>& w) {
  Shape s = g.initializers.at(l.weight).shape();
  g.initializers[l.weight] = Tensor::from_vector<float>(s, w);
}

Activation fused_activation(const Graph& g, const std::string& value, std::string* output) {
  if (output) *output = value;
  auto cons = g.consumers(value);
  if (cons.size() != 1 || g.is_graph_output(value)) return {};
  const Node& n = g.nodes[(size_t)cons[0]];
  auto a = clamp_range(g, n);
  if (!a || n.inputs[0] != value) return {};
  if (output) *output = n.outputs[0];
  return *a;
}

}  // namespace lowbit::ptq
