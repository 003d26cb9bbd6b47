// Data-free activation ranges (TECHNIQUES.md §2, "BN-based", extended through the whole graph).
//
// Every value gets per-channel Gaussian statistics (mean, std) and a range:
//  - the output of a folded BatchNorm: N(beta_c, gamma_c^2), range [min(beta - 6|gamma|), max(beta + 6|gamma|)];
//  - the model input: uniform over the user's input range;
//  - Relu / Clip: clipped-normal mean and std; the range is the input's range clamped to the bounds;
//  - Conv / Gemm / MatMul without a BatchNorm: mean W.mu + b, variance (W^2).sigma^2 (inputs independent),
//    range mean +- 6 std; Add of two values: means and variances add; Add of a constant vector: mean shifts;
//  - pooling, Flatten after global pooling, Identity: statistics and range pass through (MaxPool's mean shift is
//    covered by the 6-sigma range); Concat along channels: channels concatenate.
// Values reached by any other op have no statistics; quantizers on them cannot be set without data.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"

namespace lowbit::ptq {

struct ValueStats {
  std::vector<double> mean, std;  // per channel (size 1: the same for every channel)
  double lo = 0, hi = 0;          // the range a quantizer of this value gets
  bool exact_mean = true;         // false after a max pool or from the assumed-uniform model input
};

// E[clamp(z, lo, hi)] for z ~ N(mu, sigma^2) (lo may be -inf, hi +inf; sigma 0 gives clamp(mu, lo, hi)):
//   lo*Phi(a) + hi*(1 - Phi(b)) + mu*(Phi(b) - Phi(a)) + sigma*(phi(a) - phi(b)),  a = (lo-mu)/sigma, b = (hi-mu)/sigma.
double clipped_normal_mean(double mu, double sigma, double lo, double hi);
// E[clamp(z, lo, hi)^2] - E[clamp(z, lo, hi)]^2 for z ~ N(mu, sigma^2), as a standard deviation.
double clipped_normal_std(double mu, double sigma, double lo, double hi);

std::map<std::string, ValueStats> propagate_statistics(const Model& m, const std::map<std::string, quant::BnParams>& bn,
                                                      const std::vector<float>& input_range);

// Sets every static activation quantizer of the plan from the statistics; throws Error naming the quantized
// tensors (and the op that stopped the propagation) when some cannot be set.
void set_data_free_ranges(const Model& m, quant::QuantSimPlan& plan, const std::map<std::string, ValueStats>& stats);

}  // namespace lowbit::ptq
