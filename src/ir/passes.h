// Graph editing API and structural passes used by later transforms (quant-sim insertion, folding).
#pragma once
#include <functional>
#include <unordered_set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

// Checks that every node input is defined (graph input, initializer or an earlier node's output) and
// that no value is produced twice; reorders nodes topologically. Throws Error naming the node on a cycle
// or an undefined input.
// Subgraphs (If/Loop/Scan bodies) are sorted too; a node's implicit inputs (outer values its subgraphs read)
// count as its inputs. `outer`: the values of enclosing scopes a subgraph may read.
void topological_sort(Graph& g, const std::unordered_set<std::string>& outer = {});

// Inserts `node` after the producer of `value` and rewires every consumer of `value` (nodes and graph
// outputs) to read `new_value` instead. `node` must read `value` and write `new_value`.
void insert_between(Graph& g, const std::string& value, Node node, const std::string& new_value);

// Replaces every use of value `from` (node inputs and graph outputs) with `to`.
void replace_uses(Graph& g, const std::string& from, const std::string& to);

// Removes nodes whose outputs reach no graph output, and initializers nothing reads. Returns nodes removed.
int remove_dead_nodes(Graph& g);

// Evaluates one node on constant inputs (provided by the runtime layer).
using NodeEvaluator = std::function<std::vector<Tensor>(const Node&, const std::vector<Tensor>&)>;

// Folds Shape nodes of statically known shapes and every node of `foldable_ops` whose inputs are all
// constant (initializers / Constant outputs) into initializers. Returns the number of nodes folded.
int fold_constants(Graph& g, const NodeEvaluator& eval, const std::vector<std::string>& foldable_ops);

// The op types exporters use in shape computations (Shape/Gather/Concat/Unsqueeze chains and friends).
const std::vector<std::string>& shape_subgraph_ops();

}  // namespace lowbit
