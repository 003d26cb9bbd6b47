// CLI subcommands: thin wrappers over the library.
#pragma once
#include <string>
#include <vector>

#include "data/source.h"

namespace lowbit::cli {

struct InfoArgs {
  std::string model;
  bool json = false;
};
int cmd_info(const InfoArgs& a);

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;  // NAME=FILE.npy, FILE.npy (single-input model) or FILE.npz
  std::string output;               // .npz or .npy; empty = print summary only
};
int cmd_run(const RunArgs& a);

struct ExportArgs {
  std::string model, output;
  bool fold_constants = false;
  size_t external_threshold = 0;
};
int cmd_export(const ExportArgs& a);

struct EvalArgs {
  std::string model, data, reference;
  int64_t batch_size = 100, num_samples = -1;
  uint64_t seed = 0;
  bool json = false;
  data::Preprocess pre;
};
int cmd_eval(const EvalArgs& a);

struct QuantizeArgs {
  std::string model, output, data, config, weights, acts, range, weight_range, mode;
  int64_t batch_size = 100, num_samples = 1000, group = 0;
  uint64_t seed = 0;
  bool per_tensor = false, per_channel = false;
  data::Preprocess pre;
};
int cmd_quantize(const QuantizeArgs& a);

}  // namespace lowbit::cli
