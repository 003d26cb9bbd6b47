// lowbit public API: the deployment gap (what `lowbit gap` prints). Per hardware profile: FP32 accuracy, the
// accuracy of lowbit's float simulation of the profile's QDQ model, the accuracy of the same file run by the
// integer engine with the profile's requantization arithmetic, and per integer layer the divergence of the two runs'
// integer codes (analysis/gap.h).
//
//   lowbit::Model m = lowbit::Model::load("model.onnx");
//   auto calib = lowbit::open_data({"fashion-mnist:train"}, m, {.num_samples = 1000});
//   auto test = lowbit::open_data({"fashion-mnist:test"}, m, {});
//   lowbit::GapReport r = lowbit::measure_gap(m, calib.get(), *test, {lowbit::load_profile("tflite")});
//   lowbit::write_gap_report(r, "gap/");  // gap/index.html, gap/gap.json
#pragma once
#include <string>
#include <vector>

#include "analysis/gap.h"
#include "quantize.h"

namespace lowbit {

using analysis::GapReport;
using analysis::LayerGap;
using analysis::ProfileGap;

// Quantizes `fp32` with each profile's own config (calibrated on `calib`; null: data-free, which needs BN ranges)
// and measures each QDQ model against its integer lowering on one pass of `eval`. A profile whose quantization or
// lowering fails stops the call with the Error, naming the profile.
GapReport measure_gap(const Model& fp32, DataSource* calib, DataSource& eval, const std::vector<Profile>& profiles,
                      const ProgressFn& progress = {});
// A QDQ model made already (by lowbit or another tool) against its lowering under `profile`; `fp32`, if given, adds
// the FP32 accuracy.
GapReport measure_gap(const Model& qdq, const Profile& profile, DataSource& eval, const Model* fp32 = nullptr,
                      const ProgressFn& progress = {});
// Writes `dir`/gap.json and `dir`/index.html (the folder is created).
void write_gap_report(const GapReport& r, const std::string& dir);

}  // namespace lowbit
