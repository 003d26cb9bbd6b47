// lowbit public API: quantization-aware training (the white paper's Fig. 12 pipeline).
//
//   auto train = lowbit::open_data({"fashion-mnist:train"}, m);
//   auto val = lowbit::open_data({"fashion-mnist:test"}, m);
//   lowbit::QatOptions opt;  opt.train.epochs = 2;
//   lowbit::QuantizedModel q = lowbit::qat(m, *train, val.get(), cfg, opt);
//   q.export_qdq("model.qat.onnx");
//
// The quantizers start from PTQ (quantize() with `cfg` on calib_samples training rows: BN folding, CLE and the
// other steps cfg.pipeline names, ranges as cfg says), train with the weights, and end in the same QuantizedModel
// as PTQ gives: the same export, encodings and evaluation.
#pragma once
#include <functional>

#include "lowbit/quantize.h"
#include "train/qat.h"

namespace lowbit {

using QatProgress = train::QatProgress;
using EpochLog = train::EpochLog;

struct QatOptions {
  train::QatOptions train;          // method, epochs, batch, optimizer, schedule, distillation, seed, checkpoint
  int64_t calib_samples = 1000;     // training rows (a seeded subset) that set the initial ranges
  int64_t train_samples = -1;       // training rows kept in memory (-1: all the data has)
  const Profile* profile = nullptr; // the config must fit it (as quantize())
  ProgressFn ptq_progress;          // the PTQ initialisation's steps
  std::function<void(const QatProgress&)> progress;
  std::function<void(const EpochLog&)> on_epoch;
};

// Trains `model`'s quantizers and weights on `train` (single-input models with labels), validating on `val` after
// each epoch when given. Throws Error for what QAT does not cover (train/qat.h).
QuantizedModel qat(const Model& model, DataSource& train, DataSource* val, QuantConfig cfg, const QatOptions& opt = {});

}  // namespace lowbit
