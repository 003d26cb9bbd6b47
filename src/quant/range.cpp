// Range estimators.
#include "kernels/elementwise.h"
#include "quant/range.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit::quant {

namespace {

// Candidate clipping ranges: [lo, hi] shrunk toward zero by k / steps (k = 1..steps), each widened to contain 0.
std::vector<std::pair<float, float>> shrinking_ranges(float lo, float hi, int steps) {
  std::vector<std::pair<float, float>> r;
  for (int k = 1; k <= steps; ++k) {
    float f = (float)k / (float)steps;
    r.emplace_back(std::min(0.f, lo * f), std::max(0.f, hi * f));
  }
  return r;
}

// The candidate (from the data range [lo, hi], made +-max|x| for symmetric specs) with the smallest err(lo, hi);
// the first one on ties.
template <typename Err>
std::pair<float, float> best_range(float lo, float hi, const QuantizerSpec& spec, int steps, Err err) {
  if (spec.symmetric) {
    float a = std::max(std::abs(lo), std::abs(hi));
    lo = -a, hi = a;
  }
  std::pair<float, float> best = {std::min(lo, 0.f), std::max(hi, 0.f)};
  double best_err = std::numeric_limits<double>::infinity();
  for (auto& c : shrinking_ranges(lo, hi, steps)) {
    double e = err(c.first, c.second);
    if (e < best_err) best_err = e, best = c;
  }
  return best;
}

std::pair<float, float> batch_minmax(const float* x, int64_t n) {
  float lo, hi;
  if (!minmax_f32(x, n, lo, hi))
    for (int64_t i = 0; i < n; ++i)
      check(std::isfinite(x[i]), "calibration data holds NaN or Inf (element ", i, " of the batch)");
  return {lo, hi};
}
}  // namespace

void MinMaxObserver::observe(const float* x, int64_t n) {
  if (n == 0) return;
  auto [lo, hi] = batch_minmax(x, n);
  lo_ = seen_ ? std::min(lo_, lo) : lo;
  hi_ = seen_ ? std::max(hi_, hi) : hi;
  seen_ = true;
}

void EmaMinMaxObserver::observe(const float* x, int64_t n) {
  if (n == 0) return;
  auto [lo, hi] = batch_minmax(x, n);
  if (!seen_) {
    lo_ = lo, hi_ = hi, seen_ = true;
    return;
  }
  lo_ = (1 - c_) * lo_ + c_ * lo;
  hi_ = (1 - c_) * hi_ + c_ * hi;
}

void HistogramObserver::widen(float lo, float hi) {
  if (total_ == 0) {
    lo_ = lo, hi_ = hi;
    if (hi_ <= lo_) hi_ = lo_ + std::max(1e-6f, std::abs(lo_) * 1e-6f);
    return;
  }
  double nlo = lo_, nhi = hi_;
  while (lo < nlo || hi > nhi) {  // double the width, growing toward the side that needs it
    double w = nhi - nlo;
    if (lo < nlo) nlo -= w;
    if (hi > nhi) nhi += w;
  }
  if (nlo == lo_ && nhi == hi_) return;
  std::vector<double> old = counts_;
  double ow = width();
  float olo = lo_;
  lo_ = (float)nlo, hi_ = (float)nhi;
  std::fill(counts_.begin(), counts_.end(), 0.0);
  double nw = width();
  int b = bins();
  for (int i = 0; i < b; ++i) {
    if (old[(size_t)i] == 0) continue;
    double c = olo + (i + 0.5) * ow;
    int k = std::clamp((int)((c - lo_) / nw), 0, b - 1);
    counts_[(size_t)k] += old[(size_t)i];
  }
}

void HistogramObserver::observe(const float* x, int64_t n) {
  if (n == 0) return;
  auto [lo, hi] = batch_minmax(x, n);
  widen(lo, hi);
  double w = width();
  int b = bins();
  for (int64_t i = 0; i < n; ++i) {
    int k = std::clamp((int)((x[i] - lo_) / w), 0, b - 1);
    counts_[(size_t)k] += 1;
  }
  total_ += (double)n;
}

std::pair<float, float> HistogramObserver::percentile_range(double p) const {
  check(!empty(), "percentile range of an empty histogram");
  check(p > 50 && p <= 100, "percentile ", p, " must be in (50, 100]");
  auto quantile = [&](double q) {
    double target = q * total_, acc = 0;
    for (int i = 0; i < bins(); ++i) {
      double c = count(i);
      if (acc + c >= target && c > 0) return lo_ + (i + (target - acc) / c) * width();
      acc += c;
    }
    return (double)hi_;
  };
  return {(float)quantile(1 - p / 100), (float)quantile(p / 100)};
}

double HistogramObserver::expected_sq_error(float lo, float hi, const QuantizerSpec& spec) const {
  auto [s, z] = scale_zero_point(lo, hi, spec);
  double err = 0;
  for (int i = 0; i < bins(); ++i) {
    double c = count(i);
    if (c == 0) continue;
    float x = (float)bin_center(i);
    float y = dequantize_one(quantize_one(x, s, z, spec.grid, spec.rounding), s, z);
    err += c * ((double)y - x) * ((double)y - x);
  }
  return err / total_;
}

std::pair<float, float> HistogramObserver::mse_range(const QuantizerSpec& spec, int steps) const {
  check(!empty(), "MSE range of an empty histogram");
  // The observed data range (bins that hold counts), not the histogram's padded range.
  int first = 0, last = bins() - 1;
  while (first < last && count(first) == 0) ++first;
  while (last > first && count(last) == 0) --last;
  float dlo = (float)(lo_ + first * width()), dhi = (float)(lo_ + (last + 1) * width());
  return best_range(dlo, dhi, spec, steps, [&](float lo, float hi) { return expected_sq_error(lo, hi, spec); });
}

AbsHistogram::AbsHistogram(float amax, int bins) : amax_(amax), counts_((size_t)bins, 0.0) {
  check(bins > 0 && std::isfinite(amax) && amax >= 0, "AbsHistogram: bad range [0, ", amax, "] or bin count ", bins);
}

void AbsHistogram::observe(const float* x, int64_t n) {
  const int nb = (int)counts_.size();
  if (amax_ == 0) {
    counts_[0] += (double)n;
    return;
  }
  const double scale = nb / (double)amax_;
  for (int64_t i = 0; i < n; ++i) {
    double a = std::fabs((double)x[i]);
    counts_[(size_t)std::min<int64_t>(nb - 1, (int64_t)(a * scale))] += 1;
  }
}

namespace {
// Empty bins get eps; the non-empty ones give it up evenly (as TensorRT's and MXNet's entropy calibrators do).
void smooth(std::vector<double>& p) {
  const double eps = 1e-4;
  size_t zeros = 0;
  for (double v : p) zeros += v == 0;
  size_t nonzeros = p.size() - zeros;
  if (zeros == 0 || nonzeros == 0) return;
  double take = eps * (double)zeros / (double)nonzeros;
  for (double& v : p) v = v == 0 ? eps : v - take;
}
}  // namespace

std::vector<double> flatten_point_masses(const std::vector<double>& hist) {
  const int nb = (int)hist.size(), half = 4;
  const double z = 5;
  std::vector<double> out = hist, window;
  for (int k = 1; k < nb; ++k) {
    window.clear();
    for (int j = std::max(1, k - half); j <= std::min(nb - 1, k + half); ++j)
      if (j != k) window.push_back(hist[(size_t)j]);
    if (window.empty()) continue;
    std::nth_element(window.begin(), window.begin() + (ptrdiff_t)(window.size() / 2), window.end());
    const double med = window[window.size() / 2];
    if (med >= 1 && hist[(size_t)k] > med + z * std::sqrt(med) + z) out[(size_t)k] = med;
  }
  return out;
}

int kl_threshold_bins(const std::vector<double>& hist, int levels) {
  const int nb = (int)hist.size();
  check(levels >= 1 && levels <= nb, "KL calibration: ", levels, " levels for ", nb, " bins");
  std::vector<double> tail((size_t)nb + 1, 0.0);  // tail[i] = sum of hist[i..]
  for (int k = nb - 1; k >= 0; --k) tail[(size_t)k] = tail[(size_t)k + 1] + hist[(size_t)k];
  double best = std::numeric_limits<double>::infinity();
  int best_i = nb;
  std::vector<double> P, Q;
  for (int i = levels; i <= nb; ++i) {
    P.assign(hist.begin(), hist.begin() + i);
    P[(size_t)i - 1] += tail[(size_t)i];
    Q.assign((size_t)i, 0.0);
    for (int j = 0; j < levels; ++j) {  // bin k belongs to group floor(k * levels / i)
      const int b0 = (int)(((int64_t)j * i + levels - 1) / levels);
      const int b1 = (int)(((int64_t)(j + 1) * i + levels - 1) / levels);
      double mass = 0;
      int nonzero = 0;
      for (int k = b0; k < b1; ++k) mass += hist[(size_t)k], nonzero += hist[(size_t)k] != 0;
      for (int k = b0; k < b1; ++k)
        if (hist[(size_t)k] != 0) Q[(size_t)k] = mass / nonzero;
    }
    for (int k = 0; k < i; ++k)
      if (P[(size_t)k] == 0) Q[(size_t)k] = 0;
    smooth(P);
    smooth(Q);
    double ps = 0, qs = 0;
    for (int k = 0; k < i; ++k) ps += P[(size_t)k], qs += Q[(size_t)k];
    if (ps <= 0 || qs <= 0) continue;
    double kl = 0;
    for (int k = 0; k < i; ++k) {
      double p = P[(size_t)k] / ps, q = Q[(size_t)k] / qs;
      if (p > 0) kl += p * std::log(p / q);
    }
    if (kl <= best) best = kl, best_i = i;  // ties: the larger threshold (less clipping)
  }
  return best_i;
}

std::pair<float, float> kl_range(const AbsHistogram& h, float lo, float hi, const QuantizerSpec& spec) {
  validate(spec);
  const int nb = (int)h.counts().size();
  // The bin at zero holds every exact zero (half of a ReLU output): merging that spike with its neighbours dominates
  // every candidate's divergence and drives the threshold down. As NVIDIA's pytorch-quantization does for TensorRT,
  // the first bin takes the count of the second.
  std::vector<double> hist = flatten_point_masses(h.counts());
  if (nb > 1) hist[0] = hist[1];
  const bool nonneg = lo >= 0;
  const int bits = spec.grid.bits;
  const int64_t levels = nonneg && !(spec.symmetric && spec.grid.is_signed) ? (int64_t(1) << bits) : (int64_t(1) << (bits - 1));
  float t = levels >= nb ? h.amax() : (float)((double)h.amax() * kl_threshold_bins(hist, (int)levels) / nb);
  return {std::max(lo, -t), std::min(hi, t)};
}

CrossEntropySearch::CrossEntropySearch(float lo, float hi, const QuantizerSpec& spec, int steps)
    : spec_(spec), candidates_(shrinking_ranges(lo, hi, steps)), loss_(candidates_.size(), 0.0) {}

void CrossEntropySearch::add(const float* v, int64_t rows, int64_t classes) {
  std::vector<double> p((size_t)classes), qv((size_t)classes);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v + r * classes;
    double mx = *std::max_element(row, row + classes), z = 0;
    for (int64_t c = 0; c < classes; ++c) z += (p[(size_t)c] = std::exp(row[c] - mx));
    for (auto& x : p) x /= z;
    for (size_t k = 0; k < candidates_.size(); ++k) {
      auto [s, zp] = scale_zero_point(candidates_[k].first, candidates_[k].second, spec_);
      double qmx = -INFINITY;
      for (int64_t c = 0; c < classes; ++c) {
        qv[(size_t)c] = dequantize_one(quantize_one(row[c], s, zp, spec_.grid, spec_.rounding), s, zp);
        qmx = std::max(qmx, qv[(size_t)c]);
      }
      double lz = 0;
      for (int64_t c = 0; c < classes; ++c) lz += std::exp(qv[(size_t)c] - qmx);
      lz = std::log(lz) + qmx;  // log-sum-exp of the quantized logits
      double h = 0;
      for (int64_t c = 0; c < classes; ++c) h -= p[(size_t)c] * (qv[(size_t)c] - lz);
      loss_[k] += h;
    }
  }
}

std::pair<float, float> CrossEntropySearch::best() const {
  size_t k = (size_t)(std::min_element(loss_.begin(), loss_.end()) - loss_.begin());
  return candidates_[k];
}

std::pair<float, float> mse_range_direct(const std::vector<float>& v, const QuantizerSpec& spec, int steps) {
  if (v.empty()) return {0.f, 0.f};
  auto [dlo, dhi] = std::minmax_element(v.begin(), v.end());
  return best_range(*dlo, *dhi, spec, steps, [&](float lo, float hi) {
    auto [s, z] = scale_zero_point(lo, hi, spec);
    double e = 0;
    for (float x : v) {
      float y = dequantize_one(quantize_one(x, s, z, spec.grid, spec.rounding), s, z);
      e += ((double)y - x) * ((double)y - x);
    }
    return e;
  });
}

}  // namespace lowbit::quant
