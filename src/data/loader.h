// DataLoader: opens a dataset from a spec string and streams preprocessed batches with bounded memory.
//
// Spec strings:  KIND:ARG[BEGIN:END][,key=value...]
//   fashion-mnist:test | fashion-mnist:train     Debian's dataset-fashion-mnist (dir=PATH overrides the folder)
//   idx:IMAGES[,labels=LABELS]                   any IDX image file (gzipped or not) and optional IDX labels
//   images:DIR[,labels=FILE]                     PNG/JPEG/BMP files; classes from sub-folders or a labels file
//   npy:FILE.npy[,labels=FILE.npy]               an array [N, ...] (float32 or uint8) and optional labels
// [BEGIN:END] selects records (Python slice without step; either end may be omitted, negatives count from the end).
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "data/source.h"

namespace lowbit::data {

struct DataSpec {
  std::string kind, path, labels, split;
  int64_t begin = 0, end = INT64_MAX;  // slice bounds before normalisation
  bool has_begin = false, has_end = false;
};
DataSpec parse_data_spec(const std::string& spec);
std::unique_ptr<Source> open_source(const DataSpec& spec, const Preprocess& pre);

struct LoaderOptions {
  int64_t batch_size = 100;
  int64_t num_samples = -1;    // < 0: every selected record; else a seeded random subset of that many
  uint64_t seed = 0;
  int64_t shuffle_buffer = 0;  // > 0: shuffle through a buffer of this many samples (seeded, bounded memory)
  Preprocess pre;
};

struct Batch {
  Tensor x;                     // [n, *sample_shape] float32
  std::vector<int64_t> labels;  // n labels, or empty when the dataset has none
};

class DataLoader {
 public:
  DataLoader(const std::string& spec, const LoaderOptions& opt);
  int64_t size() const { return (int64_t)indices_.size(); }
  Shape sample_shape() const { return source_->sample_shape(); }
  bool has_labels() const { return source_->has_labels(); }
  const std::string& spec() const { return spec_; }
  // Fills the next batch; false when the data is exhausted. reset() starts again in the same order.
  bool next(Batch& b);
  void reset();

 private:
  bool pull(std::vector<float>& sample, int64_t& label);  // next sample in source order, false at end
  std::string spec_;
  LoaderOptions opt_;
  std::unique_ptr<Source> source_;
  std::vector<int64_t> indices_;  // selected record indices, ascending (one int64 per selected record)
  size_t cursor_ = 0;
  std::mt19937_64 shuffle_rng_;
  std::vector<std::pair<std::vector<float>, int64_t>> buffer_;
};

// Seeded choice of num_samples of the records in `indices` (partial Fisher-Yates), back in ascending order; all of
// them when num_samples < 0 or covers them. The DataLoader and the FeedLoader pick the same records.
void select_records(std::vector<int64_t>& indices, int64_t num_samples, uint64_t seed);

// Every remaining batch of the loader as one batch (labels kept only when every sample has one).
Batch read_all(DataLoader& loader);

}  // namespace lowbit::data
