// FeedLoader: batches for every input of a model (multi-input models, integer and bool inputs, scalars, batches
// of different shapes), built from one or more data specs:
//   SPEC              a single-input model: any DataLoader spec (fashion-mnist:..., idx:..., images:..., npy:...)
//   NAME=SPEC         the model input NAME: npy:FILE keeps the array's dtype (token ids, sample rates; a 0-d array
//                     is fed unchanged with every batch); other kinds, and uint8 arrays for float inputs, go through
//                     the DataLoader's preprocessing
//   npz:FILE          arrays keyed by input name, each split along axis 0 (0-d arrays fed with every batch)
//   batches:DIR       each DIR/*.npz (sorted by name) is one batch, fed as it is: shapes may differ between
//                     batches (OCR crops of different widths), ranges are shared across them
// Every required input must be covered exactly once; names, dtypes and row counts are checked here (shapes by
// the executor when it runs). A model whose inputs all fix their leading dimension (e.g. [1,3,640,640]) sets the batch size.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "ir/graph.h"

namespace lowbit::data {

using Feeds = std::map<std::string, Tensor>;

class FeedLoader {
 public:
  FeedLoader(const std::vector<std::string>& specs, const std::vector<ValueInfo>& inputs, LoaderOptions opt);
  ~FeedLoader();
  // Samples in one pass (rows of the split arrays, or of all batch files).
  int64_t size() const { return size_; }
  int64_t batch_size() const { return opt_.batch_size; }
  // The next batch; with `labels`, also one label per row from the first input whose data has labels (fashion-mnist,
  // idx/images/npy with labels=FILE), or none.
  bool next(Feeds& feeds, std::vector<int64_t>* labels = nullptr);
  bool has_labels() const;
  void reset();
  // What the loader decided for the user to see (a batch size forced by the model, dropped remainders).
  const std::vector<std::string>& notes() const { return notes_; }
  // Rows in a feed map (axis 0 of the first input that has one; 1 when every input is a scalar).
  static int64_t rows(const Feeds& f);

 private:
  struct Column;
  std::vector<std::unique_ptr<Column>> cols_;
  std::vector<std::string> batch_files_;
  std::vector<ValueInfo> inputs_;
  size_t file_cursor_ = 0;
  int64_t size_ = 0, cursor_ = 0;
  bool fixed_batch_ = false;  // the model fixes the batch size: only full batches
  LoaderOptions opt_;
  std::vector<std::string> notes_;
};

}  // namespace lowbit::data
