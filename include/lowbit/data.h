// lowbit public API: where calibration and evaluation data come from.
//
// A DataSource yields batches: a map from model input name to a tensor whose axis 0 is the batch, and optionally one
// integer label per row. Implement it for your own data, or open a built-in one:
//   open_data({"fashion-mnist:train"}, model, opt)      one spec for a single-input model (labels when the data has them)
//   open_data({"ids=npy:ids.npy", "mask=npy:m.npy"}, ..) one NAME=SPEC per input of a multi-input model
//   open_data({"npz:calib.npz"}, ...)                    arrays keyed by input name
//   open_data({"batches:DIR"}, ...)                      each DIR/*.npz is one batch (shapes may differ)
//   ArraySource(arrays, labels, batch_size)              arrays already in memory
// The spec syntax is the CLI's --data syntax (data/loader.h and data/feeds.h list every kind).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/loader.h"
#include "ir/graph.h"

namespace lowbit {

using TensorMap = std::map<std::string, Tensor>;

// One batch: every model input by name, and one label per row (empty when the data has none).
struct Batch {
  TensorMap inputs;
  std::vector<int64_t> labels;
};

// Batching, sample selection and image preprocessing of the built-in sources (batch_size, num_samples: a seeded
// random subset of that many records, seed, pre: resize/crop/scale/mean/std/channels/bgr).
using DataOptions = data::LoaderOptions;

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Fills the next batch; false when one pass is over. Must not be called again after false without reset().
  virtual bool next(Batch& b) = 0;
  // Starts a new pass (range methods that need two passes, evaluation after calibration).
  virtual void reset() = 0;
  // Samples in one pass, or -1 when unknown (progress bars then show no total).
  virtual int64_t size() const { return -1; }
  // What the source decided that the user should see (a batch size forced by the model, a dropped remainder).
  virtual std::vector<std::string> notes() const { return {}; }
  // A name for messages (the spec string for the built-in sources).
  virtual std::string describe() const { return "data"; }
  // Up to n samples of one input as one tensor [n, ...]: what AdaRound, empirical bias correction and the analysis
  // keep in memory. The default stacks the first rows of a pass (batches whose other dimensions differ from the
  // first batch's are skipped) and resets the source afterwards; the built-in sources draw their own seeded
  // subset of n records instead, as the CLI does.
  virtual Tensor take(const std::string& input, int64_t n, std::vector<int64_t>* labels = nullptr);
};

// The built-in sources for `model`'s inputs (initializers that are also graph inputs are not fed). Throws Error for
// a spec that does not parse or does not cover the model's inputs.
std::unique_ptr<DataSource> open_data(const std::vector<std::string>& specs, const Model& model,
                                      const DataOptions& opt = {});

// Arrays already in memory, split into batches of batch_size rows along axis 0 (0-d arrays are fed unchanged with
// every batch). All arrays with a batch axis must have the same number of rows, and labels (if given) one per row.
class ArraySource : public DataSource {
 public:
  ArraySource(TensorMap arrays, std::vector<int64_t> labels = {}, int64_t batch_size = 100);
  bool next(Batch& b) override;
  void reset() override { cursor_ = 0; }
  int64_t size() const override { return rows_; }
  std::string describe() const override { return "arrays"; }

 private:
  TensorMap arrays_;
  std::vector<int64_t> labels_;
  int64_t batch_size_, rows_ = 0, cursor_ = 0;
};

}  // namespace lowbit
