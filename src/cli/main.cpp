// lowbit command-line entry point: parses arguments, dispatches, turns errors into one line and exit code 1.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: neural-network quantization toolkit"};
  app.require_subcommand(1);
  lowbit::cli::InfoArgs info;
  auto* ci = app.add_subcommand("info", "Show a model's opsets, inputs/outputs, parameters and ops");
  ci->add_option("model", info.model, "ONNX model file")->required();
  ci->add_flag("--json", info.json, "Print JSON");
  lowbit::cli::RunArgs run;
  auto* cr = app.add_subcommand("run", "Run a model in FP32 on NumPy inputs");
  cr->add_option("model", run.model, "ONNX model file")->required();
  cr->add_option("-i,--input", run.inputs, "NAME=FILE.npy, FILE.npy (single-input model) or FILE.npz")->required();
  cr->add_option("-o,--output", run.output, "Write outputs to FILE.npz (or FILE.npy for one output)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*ci) return lowbit::cli::cmd_info(info);
    if (*cr) return lowbit::cli::cmd_run(run);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lowbit: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
