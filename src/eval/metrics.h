// Streaming evaluation metrics: top-k accuracy against labels, and fidelity of one model's outputs against a
// reference model's (error statistics, SQNR, cosine similarity, top-1 agreement). Memory is constant.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lowbit::eval {

class TopK {
 public:
  // logits [n, classes] (any float dtype); labels n entries.
  void add(const Tensor& logits, const std::vector<int64_t>& labels);
  int64_t count() const { return n_; }
  double top1() const { return n_ ? 100.0 * top1_ / n_ : 0; }  // percent
  double top5() const { return n_ ? 100.0 * top5_ / n_ : 0; }
  bool has_top5() const { return classes_ > 5; }

 private:
  int64_t n_ = 0, top1_ = 0, top5_ = 0, classes_ = 0;
};

class Fidelity {
 public:
  // Both [n, ...] with the same shape; rows are compared as flattened vectors.
  void add(const Tensor& out, const Tensor& ref);
  int64_t count() const { return n_; }
  double mean_abs_error() const { return elems_ ? sum_abs_ / (double)elems_ : 0; }
  double max_abs_error() const { return max_abs_; }
  // 10 log10(sum ref^2 / sum (out - ref)^2); +inf when identical.
  double sqnr_db() const;
  double mean_cosine() const { return n_ ? sum_cos_ / (double)n_ : 0; }
  double top1_agreement() const { return n_ ? 100.0 * agree_ / (double)n_ : 0; }  // percent of rows, same argmax

 private:
  int64_t n_ = 0, elems_ = 0, agree_ = 0;
  double sum_abs_ = 0, max_abs_ = 0, sig_ = 0, noise_ = 0, sum_cos_ = 0;
};

}  // namespace lowbit::eval
