#include "ptq/cle.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "ir/passes.h"

namespace lowbit::ptq {

std::vector<float> output_channel_ranges(const LayerArrays& l) {
  std::vector<float> r((size_t)l.shape.out_channels, 0.f);
  for (int64_t o = 0; o < l.shape.out_channels; ++o)
    for (int64_t k = 0; k < l.shape.k(); ++k) r[(size_t)o] = std::max(r[(size_t)o], std::fabs(l.w[(size_t)l.shape.index(o, k)]));
  return r;
}

std::vector<float> input_channel_ranges(const LayerArrays& l) {
  std::vector<float> r((size_t)l.shape.in_channels, 0.f);
  for (int64_t o = 0; o < l.shape.out_channels; ++o)
    for (int64_t k = 0; k < l.shape.k(); ++k) {
      float& v = r[(size_t)l.shape.input_channel(o, k)];
      v = std::max(v, std::fabs(l.w[(size_t)l.shape.index(o, k)]));
    }
  return r;
}

std::vector<float> equalization_scales(const std::vector<float>& r1, const std::vector<float>& r2) {
  check(r1.size() == r2.size(), "equalization_scales: ", r1.size(), " output channels meet ", r2.size(), " input channels");
  std::vector<float> s(r1.size(), 1.f);
  for (size_t i = 0; i < s.size(); ++i)
    if (r1[i] > 0 && r2[i] > 0 && std::isfinite(r1[i]) && std::isfinite(r2[i]))
      s[i] = (float)std::sqrt((double)r1[i] / (double)r2[i]);
  return s;
}

void scale_output_channels(LayerArrays& l, const std::vector<float>& s) {
  check((int64_t)s.size() == l.shape.out_channels, "scale_output_channels: ", s.size(), " scales for ",
        l.shape.out_channels, " channels");
  for (int64_t o = 0; o < l.shape.out_channels; ++o) {
    for (int64_t k = 0; k < l.shape.k(); ++k) l.w[(size_t)l.shape.index(o, k)] /= s[(size_t)o];
    if (!l.b.empty()) l.b[(size_t)o] /= s[(size_t)o];
  }
}

void scale_input_channels(LayerArrays& l, const std::vector<float>& s) {
  check((int64_t)s.size() == l.shape.in_channels, "scale_input_channels: ", s.size(), " scales for ",
        l.shape.in_channels, " channels");
  for (int64_t o = 0; o < l.shape.out_channels; ++o)
    for (int64_t k = 0; k < l.shape.k(); ++k) l.w[(size_t)l.shape.index(o, k)] *= s[(size_t)l.shape.input_channel(o, k)];
}

ChainResult equalize_chain(const std::vector<LayerArrays*>& chain, int max_sweeps, float tol) {
  check(chain.size() >= 2, "equalize_chain: a chain needs two layers");
  ChainResult res;
  for (size_t p = 0; p + 1 < chain.size(); ++p) res.scales.emplace_back((size_t)chain[p]->shape.out_channels, 1.f);
  for (res.sweeps = 1; res.sweeps <= max_sweeps; ++res.sweeps) {
    float worst = 0;
    for (size_t p = 0; p + 1 < chain.size(); ++p) {
      auto s = equalization_scales(output_channel_ranges(*chain[p]), input_channel_ranges(*chain[p + 1]));
      scale_output_channels(*chain[p], s);
      scale_input_channels(*chain[p + 1], s);
      for (size_t i = 0; i < s.size(); ++i) {
        res.scales[p][i] *= s[i];
        worst = std::max(worst, std::fabs(s[i] - 1.f));
      }
    }
    if (worst <= tol) break;
  }
  res.sweeps = std::min(res.sweeps, max_sweeps);
  return res;
}

std::vector<float> absorb_high_bias(LayerArrays& a, LayerArrays& b, std::vector<float>& beta, const std::vector<float>& gamma) {
  int64_t C = a.shape.out_channels;
  check(b.shape.in_channels == C && (int64_t)beta.size() == C && (int64_t)gamma.size() == C,
        "absorb_high_bias: channel counts differ");
  if (a.b.empty()) a.b.assign((size_t)C, 0.f);
  if (b.b.empty()) b.b.assign((size_t)b.shape.out_channels, 0.f);
  std::vector<float> c((size_t)C, 0.f);
  for (int64_t i = 0; i < C; ++i) c[(size_t)i] = std::max(0.f, beta[(size_t)i] - 3.f * std::fabs(gamma[(size_t)i]));
  for (int64_t i = 0; i < C; ++i) {
    a.b[(size_t)i] -= c[(size_t)i];
    beta[(size_t)i] -= c[(size_t)i];
  }
  for (int64_t o = 0; o < b.shape.out_channels; ++o) {
    double add = 0;
    for (int64_t k = 0; k < b.shape.k(); ++k)
      add += (double)b.w[(size_t)b.shape.index(o, k)] * c[(size_t)b.shape.input_channel(o, k)];
    b.b[(size_t)o] = (float)(b.b[(size_t)o] + add);
  }
  return c;
}

namespace {

struct Link {
  int next = -1;                 // node index of the following layer
  std::vector<int> relu6;        // Clip(0, x) nodes to turn into Relu
  bool relu_only = false;        // joined by exactly one Relu (high-bias absorption applies)
};

bool single_reader(const Graph& g, const std::string& v) { return g.consumers(v).size() == 1 && !g.is_graph_output(v); }

bool cle_layer(const Graph& g, int node, LinearLayer* out) {
  auto l = linear_layer(g, node);
  if (!l || l->kind == LayerKind::MatMul) return false;
  // Weight and bias must belong to this node alone: equalization rewrites them.
  if (g.consumers(l->weight).size() != 1 || (!l->bias.empty() && g.consumers(l->bias).size() != 1)) return false;
  if (out) *out = *l;
  return true;
}

// Follows `from`'s output through positively homogeneous single-reader ops to the next layer, if any.
Link follow(const Graph& g, const LinearLayer& from, const CleOptions& opt, int* skipped_relu6) {
  Link link;
  std::string v = from.output;
  std::vector<std::string> path;
  std::vector<int> relu6;
  while (single_reader(g, v)) {
    int ci = g.consumers(v)[0];
    const Node& n = g.nodes[(size_t)ci];
    LinearLayer next;
    if (cle_layer(g, ci, &next) && n.inputs[0] == v) {
      if (next.shape.in_channels != from.shape.out_channels) return link;
      link.next = ci;
      link.relu6 = relu6;
      link.relu_only = path.size() == 1 && path[0] == "Relu";
      return link;
    }
    if (!n.domain.empty() || n.inputs.empty() || n.inputs[0] != v) return link;
    std::string op = n.op_type;
    if (op == "Clip") {
      auto b = clamp_range(g, n);
      if (!b || b->lo != 0.f) return link;
      if (std::isfinite(b->hi)) {
        if (opt.relu6 == Relu6Policy::Skip) {
          ++*skipped_relu6;
          return link;
        }
        relu6.push_back(ci);
      }
      op = "Relu";
    } else if (op == "Flatten") {
      if (path.empty() || (path.back() != "GlobalAveragePool" && path.back() != "GlobalMaxPool")) return link;
    } else if (op != "Relu" && op != "LeakyRelu" && op != "MaxPool" && op != "AveragePool" &&
               op != "GlobalAveragePool" && op != "GlobalMaxPool" && op != "Identity") {
      return link;
    }
    path.push_back(op);
    v = n.outputs.at(0);
  }
  return link;
}

}  // namespace

CleReport equalize_model(Model& m, std::map<std::string, quant::BnParams>& bn, const CleOptions& opt) {
  Graph& g = m.graph;
  topological_sort(g);
  CleReport rep;
  std::map<int, Link> links;
  std::set<int> has_prev;
  for (int i = 0; i < (int)g.nodes.size(); ++i) {
    LinearLayer l;
    if (!cle_layer(g, i, &l)) continue;
    Link link = follow(g, l, opt, &rep.relu6_skipped);
    if (link.next < 0) continue;
    links[i] = link;
    has_prev.insert(link.next);
  }
  rep.min_scale = INFINITY;
  rep.max_scale = 0;
  double absorbed_sum = 0;
  int64_t absorbed_channels = 0;
  for (auto& [head, _] : links) {
    if (has_prev.count(head)) continue;  // not the start of a chain
    std::vector<int> nodes = {head};
    while (links.count(nodes.back())) nodes.push_back(links[nodes.back()].next);
    std::vector<LinearLayer> layers;
    std::vector<LayerArrays> arrays;
    for (int ni : nodes) {
      layers.push_back(*linear_layer(g, ni));
      const LinearLayer& l = layers.back();
      arrays.push_back({l.shape, get_weight(g, l), get_bias(g, l)});
    }
    for (size_t p = 0; p + 1 < nodes.size(); ++p)
      for (int ci : links[nodes[p]].relu6) {
        Node& c = g.nodes[(size_t)ci];
        c.op_type = "Relu";
        c.inputs.resize(1);
        c.attrs.clear();
        ++rep.relu6_replaced;
      }
    std::vector<LayerArrays*> ptrs;
    for (auto& a : arrays) ptrs.push_back(&a);
    ChainResult r = equalize_chain(ptrs, opt.max_sweeps);
    std::string names;
    for (size_t p = 0; p < nodes.size(); ++p) {
      names += (p ? " -> " : "") + layers[p].name;
      if (p + 1 == nodes.size()) break;
      for (float s : r.scales[p]) {
        rep.min_scale = std::min(rep.min_scale, s);
        rep.max_scale = std::max(rep.max_scale, s);
      }
      if (auto it = bn.find(layers[p].output); it != bn.end())
        for (size_t i = 0; i < r.scales[p].size(); ++i) {
          it->second.beta[i] /= r.scales[p][i];
          it->second.gamma[i] /= r.scales[p][i];
        }
    }
    rep.chain_names.push_back(names);
    ++rep.chains;
    rep.pairs += (int)nodes.size() - 1;
    if (opt.high_bias_absorption)
      for (size_t p = 0; p + 1 < nodes.size(); ++p) {
        auto it = bn.find(layers[p].output);
        if (!links[nodes[p]].relu_only || it == bn.end()) continue;
        auto c = absorb_high_bias(arrays[p], arrays[p + 1], it->second.beta, it->second.gamma);
        for (float v : c) absorbed_sum += v;
        absorbed_channels += (int64_t)c.size();
        ++rep.absorbed_pairs;
      }
    for (size_t p = 0; p < nodes.size(); ++p) {
      set_weight(g, layers[p], arrays[p].w);
      set_bias(g, layers[p], arrays[p].b);
    }
  }
  if (rep.pairs == 0) rep.min_scale = rep.max_scale = 1.f;
  rep.mean_absorbed = absorbed_channels ? absorbed_sum / (double)absorbed_channels : 0.0;
  return rep;
}

}  // namespace lowbit::ptq
