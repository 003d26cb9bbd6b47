// Structural graph passes: topological order, rewiring, dead-node removal, constant folding.
#include "ir/passes.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace lowbit {

void topological_sort(Graph& g, const std::unordered_set<std::string>& outer) {
  std::unordered_map<std::string, int> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (auto& o : g.nodes[i].outputs) {
      if (o.empty()) continue;
      auto [it, fresh] = producer.emplace(o, (int)i);
      check(fresh, g.nodes[i].describe(), ": value '", o, "' is already produced by ",
            g.nodes[it->second].describe());
      check(!g.is_graph_input(o) && !g.is_initializer(o), g.nodes[i].describe(), ": output '", o,
            "' redefines a graph input or initializer");
    }
  size_t n = g.nodes.size();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> users(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> reads = g.nodes[i].inputs;
    for (auto& v : implicit_inputs(g.nodes[i])) reads.push_back(v);
    for (auto& in : reads) {
      if (in.empty()) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        check(g.is_graph_input(in) || g.is_initializer(in) || outer.count(in), g.nodes[i].describe(), ": input '",
              in, "' is not a graph input, an initializer or the output of any node",
              outer.empty() ? "" : " (in this or an enclosing graph)");
        continue;
      }
      users[it->second].push_back((int)i);
      ++pending[i];
    }
  }
  // Kahn's algorithm, taking ready nodes in their original order so that the result is stable.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0) ready.push((int)i);
  std::vector<int> order;
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i)
      if (pending[i] > 0) fail("graph has a cycle through ", g.nodes[i].describe());
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (int i : order) sorted.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(sorted);
  // Subgraphs see everything this graph defines, and what its enclosing graphs define.
  if (!std::any_of(g.nodes.begin(), g.nodes.end(), [](const Node& nd) { return has_subgraphs(nd); })) return;
  std::unordered_set<std::string> visible = outer;
  for (auto& i : g.inputs) visible.insert(i.name);
  for (auto& [k, _] : g.initializers) visible.insert(k);
  for (auto& nd : g.nodes)
    for (auto& o : nd.outputs) visible.insert(o);
  for (auto& nd : g.nodes)
    for (auto& a : nd.attrs) {
      if (a.g) topological_sort(*a.g, visible);
      for (auto& sg : a.graphs) topological_sort(*sg, visible);
    }
}

void replace_uses(Graph& g, const std::string& from, const std::string& to) {
  for (auto& nd : g.nodes)
    for (auto& in : nd.inputs)
      if (in == from) in = to;
  for (auto& o : g.outputs)
    if (o.name == from) o.name = to;
}

void insert_between(Graph& g, const std::string& value, Node node, const std::string& new_value) {
  check(std::find(node.inputs.begin(), node.inputs.end(), value) != node.inputs.end(),
        "insert_between: ", node.describe(), " does not read '", value, "'");
  check(std::find(node.outputs.begin(), node.outputs.end(), new_value) != node.outputs.end(),
        "insert_between: ", node.describe(), " does not write '", new_value, "'");
  int prod = g.producer(value);
  check(prod >= 0 || g.is_graph_input(value) || g.is_initializer(value), "insert_between: value '", value,
        "' does not exist");
  check(g.producer(new_value) < 0 && !g.is_initializer(new_value) && !g.is_graph_input(new_value),
        "insert_between: value '", new_value, "' already exists");
  replace_uses(g, value, new_value);
  // The inserted node itself keeps reading the original value.
  for (auto& in : node.inputs)
    if (in == new_value) in = value;
  g.nodes.insert(g.nodes.begin() + (prod + 1), std::move(node));
}

int remove_dead_nodes(Graph& g) {
  std::unordered_set<std::string> live;
  for (auto& o : g.outputs) live.insert(o.name);
  std::vector<bool> keep(g.nodes.size(), false);
  for (int i = (int)g.nodes.size() - 1; i >= 0; --i) {
    auto& nd = g.nodes[i];
    bool used = std::any_of(nd.outputs.begin(), nd.outputs.end(), [&](auto& o) { return live.count(o) > 0; });
    if (!used) continue;
    keep[i] = true;
    for (auto& in : nd.inputs) live.insert(in);
    // Values read by subgraphs (If/Loop bodies) from the outer scope stay live too.
    for (auto& a : nd.attrs) {
      std::vector<std::shared_ptr<Graph>> subs = a.graphs;
      if (a.g) subs.push_back(a.g);
      for (auto& sg : subs)
        for (auto& sn : sg->nodes)
          for (auto& in : sn.inputs) live.insert(in);
    }
  }
  int removed = 0;
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(g.nodes[i]));
    else ++removed;
  }
  g.nodes = std::move(kept);
  for (auto it = g.initializers.begin(); it != g.initializers.end();) {
    if (!live.count(it->first) && !g.is_graph_input(it->first)) it = g.initializers.erase(it);
    else ++it;
  }
  return removed;
}

const std::vector<std::string>& shape_subgraph_ops() {
  static const std::vector<std::string> ops = {
      "Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Cast", "Slice", "Reshape", "Transpose", "Mul", "Add", "Sub",
      "Div", "Equal", "Where", "ConstantOfShape", "Constant", "Identity", "Expand", "Range", "ReduceProd"};
  return ops;
}

int fold_constants(Graph& g, const NodeEvaluator& eval, const std::vector<std::string>& foldable_ops) {
  topological_sort(g);
  std::unordered_map<std::string, Shape> known_shape;
  for (auto* list : {&g.inputs, &g.value_info})
    for (auto& vi : *list)
      if (auto s = vi.static_shape()) known_shape[vi.name] = *s;
  auto is_const = [&](const std::string& v) { return v.empty() || (g.is_initializer(v) && !g.is_graph_input(v)); };
  int folded = 0;
  std::vector<Node> kept;
  for (auto& nd : g.nodes) {
    bool foldable = std::find(foldable_ops.begin(), foldable_ops.end(), nd.op_type) != foldable_ops.end() &&
                    nd.domain.empty();
    std::vector<Tensor> outs;
    if (foldable && nd.op_type == "Shape" && !nd.inputs.empty()) {
      Shape s;
      if (is_const(nd.inputs[0])) s = g.initializers.at(nd.inputs[0]).shape();
      else if (known_shape.count(nd.inputs[0])) s = known_shape[nd.inputs[0]];
      else foldable = false;
      if (foldable) {
        // Shape-15 start/end: clamp to [0, rank] after adding rank to negative values.
        int64_t r = (int64_t)s.size();
        auto clampi = [r](int64_t v) { return std::clamp(v < 0 ? v + r : v, (int64_t)0, r); };
        int64_t b = clampi(nd.attr_int("start", 0)), e = clampi(nd.attr_int("end", r));
        Shape sub(s.begin() + b, s.begin() + std::max(b, e));
        outs = {Tensor::from_vector<int64_t>({(int64_t)sub.size()}, sub)};
      }
    } else if (foldable) {
      foldable = std::all_of(nd.inputs.begin(), nd.inputs.end(), is_const);
      if (foldable) {
        std::vector<Tensor> ins;
        for (auto& in : nd.inputs) ins.push_back(in.empty() ? Tensor() : g.initializers.at(in));
        outs = eval(nd, ins);
      }
    }
    if (!foldable || g.is_graph_output(nd.outputs.empty() ? "" : nd.outputs[0])) {
      kept.push_back(std::move(nd));
      continue;
    }
    for (size_t k = 0; k < nd.outputs.size() && k < outs.size(); ++k)
      if (!nd.outputs[k].empty()) g.initializers[nd.outputs[k]] = outs[k];
    ++folded;
  }
  g.nodes = std::move(kept);
  remove_dead_nodes(g);
  return folded;
}

}  // namespace lowbit
