// CLI subcommands: thin wrappers over the library.
#pragma once
#include <string>
#include <vector>

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

}  // namespace lowbit::cli
