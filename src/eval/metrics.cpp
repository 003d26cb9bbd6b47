// TopK and Fidelity accumulators.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit::eval {

void TopK::add(const Tensor& logits, const std::vector<int64_t>& labels) {
  check(logits.rank() == 2, "top-k accuracy needs [batch, classes] outputs, got ", shape_str(logits.shape()));
  int64_t n = logits.dim(0), c = logits.dim(1);
  check((int64_t)labels.size() == n, "top-k accuracy: ", labels.size(), " labels for ", n, " outputs");
  classes_ = c;
  auto v = logits.to_f64();
  for (int64_t i = 0; i < n; ++i) {
    check(labels[i] >= 0 && labels[i] < c, "label ", labels[i], " is outside the model's ", c, " classes");
    const double* row = v.data() + i * c;
    double target = row[labels[i]];
    // Rank of the label: classes scoring strictly higher, ties broken toward the lower class index (as argmax).
    int64_t better = 0;
    for (int64_t k = 0; k < c; ++k)
      if (row[k] > target || (row[k] == target && k < labels[i])) ++better;
    top1_ += better == 0;
    top5_ += better < 5;
  }
  n_ += n;
}

void Fidelity::add(const Tensor& out, const Tensor& ref) {
  check(out.shape() == ref.shape(), "fidelity: output shapes differ (", shape_str(out.shape()), " vs ",
        shape_str(ref.shape()), ")");
  check(out.rank() >= 1, "fidelity needs batched outputs");
  auto a = out.to_f64(), b = ref.to_f64();
  int64_t n = out.dim(0), per = n ? out.numel() / n : 0;
  for (int64_t i = 0; i < n; ++i) {
    double dot = 0, na = 0, nb = 0;
    int64_t am = 0, bm = 0;
    for (int64_t k = 0; k < per; ++k) {
      double x = a[i * per + k], y = b[i * per + k], d = x - y;
      sum_abs_ += std::abs(d);
      max_abs_ = std::max(max_abs_, std::abs(d));
      sig_ += y * y;
      noise_ += d * d;
      dot += x * y;
      na += x * x;
      nb += y * y;
      if (x > a[i * per + am]) am = k;
      if (y > b[i * per + bm]) bm = k;
    }
    sum_cos_ += (na == 0 && nb == 0) ? 1.0 : dot / (std::sqrt(na) * std::sqrt(nb) + 1e-300);
    agree_ += am == bm;
  }
  n_ += n;
  elems_ += n * per;
}

double Fidelity::sqnr_db() const {
  if (noise_ == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sig_ / noise_);
}

}  // namespace lowbit::eval
