// Range estimators (TECHNIQUES.md §2) that stream over calibration data in constant memory.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "quant/encoding.h"

namespace lowbit::quant {

// Running min and max.
class MinMaxObserver {
 public:
  void observe(const float* x, int64_t n);
  bool empty() const { return !seen_; }
  std::pair<float, float> range() const { return {lo_, hi_}; }

 private:
  bool seen_ = false;
  float lo_ = 0, hi_ = 0;
};

// Exponential moving average of per-batch min and max: m <- (1 - c) m + c * batch_min (first batch taken as is).
class EmaMinMaxObserver {
 public:
  explicit EmaMinMaxObserver(double momentum = 0.01) : c_(momentum) {}
  void observe(const float* x, int64_t n);
  std::pair<float, float> range() const { return {(float)lo_, (float)hi_}; }

 private:
  double c_, lo_ = 0, hi_ = 0;
  bool seen_ = false;
};

// Equal-width histogram over a range that grows with the data: when a batch falls outside, the range is widened
// (doubled around the old one as needed) and old counts are moved to the bins their centres fall in. Bins stay fixed
// in number, so memory does not grow with the number of samples.
class HistogramObserver {
 public:
  explicit HistogramObserver(int bins = 2048) : counts_((size_t)bins, 0.0) {}
  void observe(const float* x, int64_t n);
  bool empty() const { return total_ == 0; }
  double total() const { return total_; }
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  int bins() const { return (int)counts_.size(); }
  double count(int i) const { return counts_[(size_t)i]; }
  double bin_center(int i) const { return lo_ + (i + 0.5) * width(); }
  double width() const { return ((double)hi_ - lo_) / counts_.size(); }

  // Clip at the p-th percentile of each tail (p in (50, 100]): [q(1 - p/100), q(p/100)], linear inside bins.
  std::pair<float, float> percentile_range(double p) const;
  // The range minimising the expected squared quantization error of the histogram under `spec`, searched over
  // `steps` shrinking fractions of the observed range (both ends scaled together; symmetric specs use max|x|).
  std::pair<float, float> mse_range(const QuantizerSpec& spec, int steps = 100) const;
  // Expected squared error of quantizing the histogram with range [lo, hi] under spec (per sample).
  double expected_sq_error(float lo, float hi, const QuantizerSpec& spec) const;

 private:
  void widen(float lo, float hi);
  std::vector<double> counts_;
  float lo_ = 0, hi_ = 0;
  double total_ = 0;
};

// Entropy calibration as TensorRT defines it, on a histogram of |x| collected for this purpose: `bins` (2048)
// equal bins over [0, amax], where amax = max|x| comes from a first pass over the data, so the result does not
// depend on how any other histogram was binned or in which order the data arrived.
class AbsHistogram {
 public:
  explicit AbsHistogram(float amax, int bins = 2048);
  void observe(const float* x, int64_t n);
  const std::vector<double>& counts() const { return counts_; }
  float amax() const { return amax_; }

 private:
  float amax_;
  std::vector<double> counts_;
};
// Point masses flattened: a bin k >= 1 whose count exceeds the median m of its 8 neighbours (4 each side, bin 0
// left out) by more than 5 Poisson standard deviations (count > m + 5 sqrt(m) + 5, with m >= 1) is set to m. A point
// mass is many exactly equal values (a channel's constant output over an image's uniform background, padding): it
// falls in one bin of the 2048 whatever the threshold, a grid represents it with one code like any other value, yet
// when Q spreads its group's mass over the group, the spike alone decides the divergence and pulls the threshold to
// where groups are one bin wide (on Fashion-MNIST's stem ReLUs, a clip at a quarter of the range and 1-4 points of
// top-1 lost). Only the local density's share is kept, as TensorRT's calibrators already do for the zero bin.
std::vector<double> flatten_point_masses(const std::vector<double>& hist);
// The number of histogram bins i (levels <= i <= hist.size()) whose threshold minimises KL(P || Q): P is the first i
// bins with the mass beyond them added to bin i-1; Q merges the first i bins into `levels` groups (bin k in group
// floor(k * levels / i), as NVIDIA's pytorch-quantization calibrator splits them), spreads each group's mass evenly
// over the bins that are non-empty in the data, and is zero where P is; both are smoothed (empty bins get 1e-4, taken evenly from the others) and
// normalised before KL. Ties keep the largest i.
int kl_threshold_bins(const std::vector<double>& hist, int levels);
// The range for `spec` from the |x| histogram and the data's own range [lo, hi]: the threshold t = amax * i / bins
// clips |x| at t, so the range is [max(lo, -t), min(hi, t)] (an asymmetric grid keeps all its codes for where the data
// is; a symmetric spec widens it to [-t', t'] itself). Levels: 2^(b-1) (TensorRT's 128 for int8) when the data has both signs or the grid is signed
// symmetric; 2^b when non-negative data meets an unsigned or asymmetric grid, which spends all its codes on [0, t].
// With more levels than bins the full range is kept. Point masses are flattened first (flatten_point_masses), then
// the zero bin takes the count of bin 1 (see range.cpp).
std::pair<float, float> kl_range(const AbsHistogram& h, float lo, float hi, const QuantizerSpec& spec);

// Cross-entropy range search for classifier logits: candidate ranges are fractions (1/steps .. 1) of a min-max range;
// add() accumulates, for every candidate at once, H(softmax(v), softmax(fake_quant(v))) over rows of [batch, classes].
class CrossEntropySearch {
 public:
  CrossEntropySearch(float lo, float hi, const QuantizerSpec& spec, int steps = 50);
  void add(const float* logits, int64_t rows, int64_t classes);
  std::pair<float, float> best() const;

 private:
  QuantizerSpec spec_;
  std::vector<std::pair<float, float>> candidates_;
  std::vector<double> loss_;
};

// MSE range computed on the values themselves (weights): the same candidate search as the histogram version.
std::pair<float, float> mse_range_direct(const std::vector<float>& values, const QuantizerSpec& spec, int steps = 100);

}  // namespace lowbit::quant
