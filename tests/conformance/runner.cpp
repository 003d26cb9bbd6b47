// Runs the ONNX backend node tests (model.onnx + test_data_set_*/{input,output}_*.pb) through lowbit.
// For every test: load, run, compare with the reference outputs (rtol 1e-3, atol 1e-7 as ONNX's backend
// test runner), then export -> re-import and require the same graph (identical re-export) and bit-identical
// outputs (round trip).
// Status per test: PASS, FAIL (a supported op gave a wrong answer or error) or UNSUPPORTED (lowbit
// does not implement something the test needs). With --expect FILE the run fails unless the set of tests
// that do not pass (UNSUPPORTED, or FAIL for a documented reason) equals the list in FILE exactly.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "ir/onnx_io.h"
#include "runtime/executor.h"

namespace fs = std::filesystem;
using namespace lowbit;

namespace {

struct Result {
  std::string status, detail;
};

// ONNX's test data stores bfloat16 tensors as uint16 (NumPy has no bfloat16): reinterpret the bits.
Tensor as_bits_of(const Tensor& t, DType want) {
  if (t.dtype() == DType::UInt16 && want == DType::BFloat16) {
    Tensor r(DType::BFloat16, t.shape());
    std::memcpy(r.raw_mut(), t.raw(), t.nbytes());
    return r;
  }
  return t;
}

std::string compare(const Tensor& got, const Tensor& want_in, double rtol, double atol) {
  Tensor want = as_bits_of(want_in, got.dtype());
  if (got.dtype() != want.dtype())
    return std::string("dtype ") + dtype_name(got.dtype()) + ", expected " + dtype_name(want.dtype());
  if (got.shape() != want.shape()) return "shape " + shape_str(got.shape()) + ", expected " + shape_str(want.shape());
  if (want.dtype() == DType::String) {  // exactly
    for (size_t i = 0; i < want.strings().size(); ++i)
      if (got.strings()[i] != want.strings()[i])
        return "element " + std::to_string(i) + ": got '" + got.strings()[i] + "', expected '" + want.strings()[i] + "'";
    return "";
  }
  auto g = got.to_f64(), w = want.to_f64();
  bool exact = !dtype_is_float(want.dtype());
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    if (std::isinf(w[i]) && g[i] == w[i]) continue;
    double tol = exact ? 0 : atol + rtol * std::abs(w[i]);
    if (!(std::abs(g[i] - w[i]) <= tol)) {
      std::ostringstream os;
      os << "element " << i << ": got " << g[i] << ", expected " << w[i];
      return os.str();
    }
  }
  return "";
}

std::vector<std::string> sorted_files(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, std::string>> v;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && n.size() > 3 && n.substr(n.size() - 3) == ".pb")
      v.emplace_back(std::stoi(n.substr(prefix.size())), e.path().string());
  }
  std::sort(v.begin(), v.end());
  std::vector<std::string> r;
  for (auto& [_, p] : v) r.push_back(p);
  return r;
}

Result run_test(const fs::path& dir) {
  try {
    Model m = load_onnx((dir / "model.onnx").string());
    Executor ex(m);
    // Round trip: export (through the ONNX checker), re-import, and run both.
    std::string exported = serialize_onnx(m);
    Model m2 = parse_onnx(exported, "(re-exported " + dir.filename().string() + ")", dir.string());
    // Same graph: exporting the re-imported model reproduces the first export byte for byte.
    if (serialize_onnx(m2) != exported) return {"FAIL", "round trip changed the graph (re-export differs)"};
    Executor ex2(m2);
    std::vector<std::string> input_names;
    for (auto* vi : ex.required_inputs()) input_names.push_back(vi->name);
    int sets = 0;
    for (auto& e : fs::directory_iterator(dir)) {
      if (!e.is_directory() || e.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
      ++sets;
      auto ins = sorted_files(e.path(), "input_");
      auto outs = sorted_files(e.path(), "output_");
      TensorMap feeds;
      // Inputs follow the graph's input order (initializer-backed inputs may be fed too).
      for (size_t i = 0; i < ins.size() && i < m.graph.inputs.size(); ++i)
        feeds[m.graph.inputs[i].name] = as_bits_of(load_tensor_pb(ins[i]), m.graph.inputs[i].dtype);
      TensorMap got = ex.run(feeds);
      TensorMap got2 = ex2.run(feeds);
      for (size_t i = 0; i < outs.size() && i < m.graph.outputs.size(); ++i) {
        const std::string& name = m.graph.outputs[i].name;
        Tensor want = load_tensor_pb(outs[i]);
        std::string err = compare(got.at(name), want, 1e-3, 1e-7);
        if (!err.empty()) return {"FAIL", "output '" + name + "' " + err};
        if (!got.at(name).bit_equal(got2.at(name))) return {"FAIL", "round trip changed output '" + name + "'"};
      }
    }
    if (sets == 0) return {"UNSUPPORTED", "no test data sets"};
    return {"PASS", ""};
  } catch (const Unsupported& e) {
    return {"UNSUPPORTED", e.what()};
  } catch (const std::exception& e) {
    return {"FAIL", e.what()};
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data/node", expect_file, filter;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) data = argv[++i];
    else if (a == "--expect" && i + 1 < argc) expect_file = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "-v") verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--data DIR] [--expect FILE] [--filter SUBSTR] [-v]\n", argv[0]);
      return 2;
    }
  }
  if (!fs::is_directory(data)) {
    std::fprintf(stderr,
                 "conformance: test data folder '%s' not found (the ONNX 1.12 corpus: install libonnx-testdata; the "
                 "ONNX 1.21 corpus: bash scripts/onnx_testdata.sh)\n",
                 data.c_str());
    return 2;
  }
  std::vector<fs::path> tests;
  for (auto& e : fs::directory_iterator(data))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx") &&
        (filter.empty() || e.path().filename().string().find(filter) != std::string::npos))
      tests.push_back(e.path());
  std::sort(tests.begin(), tests.end());
  std::map<std::string, int> counts;
  std::set<std::string> unsupported_set, failed;
  for (auto& t : tests) {
    Result r = run_test(t);
    std::string name = t.filename().string();
    counts[r.status]++;
    if (r.status == "UNSUPPORTED") unsupported_set.insert(name);
    if (r.status == "FAIL") failed.insert(name);
    if (verbose || r.status == "FAIL")
      std::printf("%-12s %s%s%s\n", r.status.c_str(), name.c_str(), r.detail.empty() ? "" : "  ", r.detail.c_str());
  }
  std::printf("conformance: %d passed, %d failed, %d unsupported (of %zu tests in %s)\n", counts["PASS"], counts["FAIL"],
              counts["UNSUPPORTED"], tests.size(), data.c_str());
  int rc = counts["FAIL"] ? 1 : 0;
  if (!expect_file.empty()) {
    rc = 0;
    std::ifstream f(expect_file);
    if (!f) {
      std::fprintf(stderr, "conformance: cannot read %s\n", expect_file.c_str());
      return 2;
    }
    std::set<std::string> expected;
    std::string line;
    while (std::getline(f, line)) {
      line = line.substr(0, line.find('#'));
      line.erase(std::remove_if(line.begin(), line.end(), ::isspace), line.end());
      if (!line.empty()) expected.insert(line);
    }
    for (auto& n : failed)
      if (!expected.count(n)) {
        std::printf("UNEXPECTED failure: %s\n", n.c_str());
        rc = 1;
      }
    for (auto& n : unsupported_set)
      if (!expected.count(n)) {
        std::printf("UNEXPECTED unsupported: %s (add it to %s with a reason, or implement it)\n", n.c_str(), expect_file.c_str());
        rc = 1;
      }
    if (filter.empty())
      for (auto& n : expected)
        if (!unsupported_set.count(n) && !failed.count(n)) {
          std::printf("STALE entry: %s is listed but now passes (remove it from the list)\n", n.c_str());
          rc = 1;
        }
    std::printf("conformance: %zu tests listed in %s as expected not to pass; %s\n", expected.size(),
                expect_file.c_str(), rc ? "MISMATCH" : "all as expected");
  }
  return rc;
}
