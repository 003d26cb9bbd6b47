// Range estimators: streaming min-max/EMA, histogram re-binning, percentile exactness, MSE against a brute-force
// search on the raw samples, and KL calibration behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <random>

#include "quant/range.h"

using namespace lowbit;
using namespace lowbit::quant;

namespace {
QuantizerSpec sym(int bits) {
  QuantizerSpec s;
  s.grid = {bits, true, false};
  s.symmetric = true;
  return s;
}
double direct_mse(const std::vector<float>& x, float lo, float hi, const QuantizerSpec& spec) {
  auto [s, z] = scale_zero_point(lo, hi, spec);
  double e = 0;
  for (float v : x) {
    float y = dequantize_one(quantize_one(v, s, z, spec.grid, spec.rounding), s, z);
    e += ((double)y - v) * ((double)y - v);
  }
  return e / (double)x.size();
}
std::vector<float> samples(int n, uint32_t seed, bool laplace) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::exponential_distribution<float> ex(1.f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = laplace ? (sign(rng) ? 1.f : -1.f) * ex(rng) : g(rng);
  return v;
}
}  // namespace

TEST(MinMax, StreamsOverBatches) {
  MinMaxObserver o;
  std::vector<float> a = {1, 2, 3}, b = {-4, 0};
  o.observe(a.data(), 3);
  o.observe(b.data(), 2);
  EXPECT_EQ(o.range(), std::make_pair(-4.f, 3.f));
  std::vector<float> bad = {1, NAN};
  EXPECT_THROW(o.observe(bad.data(), 2), Error);
}

TEST(EmaMinMax, BlendsBatches) {
  EmaMinMaxObserver o(0.5);
  std::vector<float> a = {-2, 2}, b = {-4, 6};
  o.observe(a.data(), 2);
  EXPECT_EQ(o.range(), std::make_pair(-2.f, 2.f));
  o.observe(b.data(), 2);
  EXPECT_EQ(o.range(), std::make_pair(-3.f, 4.f));
}

TEST(Histogram, GrowsWithoutLosingCounts) {
  HistogramObserver h(64);
  std::vector<float> a = {0.1f, 0.2f, 0.3f}, b = {-5.f, 10.f};
  h.observe(a.data(), 3);
  h.observe(b.data(), 2);
  EXPECT_EQ(h.total(), 5);
  EXPECT_LE(h.lo(), -5.f);
  EXPECT_GE(h.hi(), 10.f);
  double sum = 0;
  for (int i = 0; i < h.bins(); ++i) sum += h.count(i);
  EXPECT_EQ(sum, 5);
}

TEST(Histogram, PercentileIsExactOnUniformData) {
  HistogramObserver h(2000);
  std::vector<float> v(100000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (float)i / (float)v.size();  // uniform on [0, 1)
  h.observe(v.data(), (int64_t)v.size());
  auto [lo, hi] = h.percentile_range(99.0);
  EXPECT_NEAR(hi, 0.99, h.width());
  EXPECT_NEAR(lo, 0.01, h.width());
  EXPECT_THROW(h.percentile_range(40), Error);
}

// The histogram MSE search must find (nearly) the same clip as evaluating every candidate on the raw samples.
TEST(Histogram, MseRangeMatchesBruteForceOnGaussianAndLaplace) {
  for (bool laplace : {false, true})
    for (int bits : {3, 4, 8}) {
      auto x = samples(200000, laplace ? 7 : 8, laplace);
      HistogramObserver h(2048);
      for (size_t i = 0; i < x.size(); i += 10000) h.observe(x.data() + i, 10000);
      QuantizerSpec s = sym(bits);
      auto [lo, hi] = h.mse_range(s);
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::abs(v));
      double best = INFINITY;
      float best_a = amax;
      for (int k = 1; k <= 100; ++k) {
        float a = amax * k / 100.f;
        double e = direct_mse(x, -a, a, s);
        if (e < best) best = e, best_a = a;
      }
      double chosen = direct_mse(x, lo, hi, s);
      EXPECT_LE(chosen, best * 1.02) << (laplace ? "laplace " : "gauss ") << bits << " bits: clip " << hi << " vs " << best_a;
      EXPECT_LE(chosen, direct_mse(x, -amax, amax, s) * (1 + 1e-9));  // never worse than min-max
      if (bits <= 4) {
        EXPECT_LT(hi, 0.7f * amax) << "low bit widths clip the tails";
      }
    }
}

TEST(Histogram, LaplaceNeedsAWiderClipThanGaussianInSigmaUnits) {
  // Same standard deviation (Laplace b = 1/sqrt 2), 4 bits: heavier tails -> larger optimal clip (Banner et al.).
  auto g = samples(200000, 1, false), l = samples(200000, 2, true);
  for (auto& v : l) v /= std::sqrt(2.f);
  HistogramObserver hg(2048), hl(2048);
  hg.observe(g.data(), (int64_t)g.size());
  hl.observe(l.data(), (int64_t)l.size());
  EXPECT_GT(hl.mse_range(sym(4)).second, hg.mse_range(sym(4)).second);
}

// TensorRT's entropy calibration (issue 12 item 3). Mutation caught: dropping the outlier mass from P's last bin
// (the threshold collapses toward 0 on Gaussian data).
TEST(KlRange, ClipsGaussianTailsButNotUniformData) {
  auto g = samples(2000000, 3, false);
  float amax = 0;
  for (float v : g) amax = std::max(amax, std::fabs(v));
  AbsHistogram hg(amax);
  hg.observe(g.data(), (int64_t)g.size());
  QuantizerSpec s8 = sym(8);
  float gmin = *std::min_element(g.begin(), g.end()), gmax = *std::max_element(g.begin(), g.end());
  auto [glo, ghi] = kl_range(hg, gmin, gmax, s8);
  // 2,000,000 samples: with 200,000 the divergences of the last few hundred candidates differ by less than the
  // tail's sampling noise, and the argmin among them is noise.
  const float t = std::max(-glo, ghi);
  EXPECT_LT(t, 0.95f * amax);
  EXPECT_GT(t, 3.5f);
  EXPECT_EQ(glo, std::max(gmin, -t));  // the clip applies to both tails, never beyond the data
  EXPECT_EQ(ghi, std::min(gmax, t));
  // Data on one side mostly: the range never extends past the data (an asymmetric grid keeps its codes).
  auto [alo, ahi] = kl_range(hg, -0.25f, gmax, s8);
  EXPECT_EQ(alo, -0.25f);
  EXPECT_EQ(ahi, ghi);
  std::vector<float> u(100000);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> d(0.f, 1.f);
  for (auto& v : u) v = d(rng);
  AbsHistogram hu(1.f);
  hu.observe(u.data(), (int64_t)u.size());
  auto [ulo, uhi] = kl_range(hu, 0.f, 1.f, s8);
  EXPECT_EQ(ulo, 0.f);
  EXPECT_GT(uhi, 0.95f);
}

// The threshold is a function of the |x| histogram only: with every candidate's P and Q spelled out for a tiny
// histogram, the chosen bin count is the argmin computed here by brute force. Mutations caught (second histogram:
// its argmin is 7 bins; the last group taking the remainder, as MXNet splits them, and a search without smoothing
// both give 8).
TEST(KlRange, ThresholdIsTheArgminOverCandidates) {
  for (const std::vector<double>& h :
       {std::vector<double>{50, 30, 0, 12, 6, 0, 1, 1}, std::vector<double>{9, 39, 27, 18, 38, 32, 27, 0}}) {
    int levels = 2, best = -1;
    double best_kl = INFINITY;
    for (int i = levels; i <= 8; ++i) {
      std::vector<double> P(h.begin(), h.begin() + i), Q((size_t)i, 0.0);
      for (int k = i; k < 8; ++k) P[(size_t)i - 1] += h[(size_t)k];
      std::vector<double> mass((size_t)levels, 0.0), nz((size_t)levels, 0.0);
      for (int k = 0; k < i; ++k) {
        size_t g = (size_t)(k * levels / i);  // proportional groups: i = 5, 2 levels -> {0, 1, 2}, {3, 4}
        mass[g] += h[(size_t)k], nz[g] += h[(size_t)k] != 0;
      }
      for (int k = 0; k < i; ++k) {
        size_t g = (size_t)(k * levels / i);
        Q[(size_t)k] = h[(size_t)k] != 0 && P[(size_t)k] != 0 ? mass[g] / nz[g] : 0;
      }
      auto sm = [](std::vector<double>& v) {
        double z = 0;
        for (double x : v) z += x == 0;
        if (z == 0 || z == (double)v.size()) return;
        double take = 1e-4 * z / ((double)v.size() - z);
        for (double& x : v) x = x == 0 ? 1e-4 : x - take;
      };
      sm(P), sm(Q);
      double ps = 0, qs = 0, kl = 0;
      for (int k = 0; k < i; ++k) ps += P[(size_t)k], qs += Q[(size_t)k];
      for (int k = 0; k < i; ++k) kl += P[(size_t)k] / ps * std::log((P[(size_t)k] / ps) / (Q[(size_t)k] / qs));
      if (kl <= best_kl) best_kl = kl, best = i;
    }
    EXPECT_EQ(kl_threshold_bins(h, levels), best);
  }
}

// Point masses (issue 12 item 3: the stem ReLUs of the zoo, whose channels output their bias over the uniform image
// background). Mutations caught: without flatten_point_masses the threshold with the masses falls far below the one
// without them (2.1 against 4.2); a test that flagged ordinary Poisson fluctuation would change the smooth histogram.
TEST(KlRange, PointMassesDoNotMoveTheThreshold) {
  auto g = samples(400000, 7, false);
  for (auto& v : g) v = std::fabs(v);
  float amax = *std::max_element(g.begin(), g.end());
  AbsHistogram smooth(amax);
  smooth.observe(g.data(), (int64_t)g.size());
  // Smooth data: nothing is flagged (every bin's count is within 5 standard deviations of its neighbours').
  EXPECT_EQ(flatten_point_masses(smooth.counts()), smooth.counts());
  // The same data with six constants, each repeated as often as 5 % of the samples, inside the range.
  std::vector<float> spiky = g;
  for (float c : {0.05f, 0.2f, 0.4f, 0.9f, 1.3f, 2.1f}) spiky.insert(spiky.end(), 20000, c);
  AbsHistogram hs(amax);
  hs.observe(spiky.data(), (int64_t)spiky.size());
  auto flat = flatten_point_masses(hs.counts());
  int changed = 0;
  for (size_t k = 0; k < flat.size(); ++k) changed += flat[k] != hs.counts()[k];
  EXPECT_EQ(changed, 6);
  QuantizerSpec u8 = sym(8);
  u8.symmetric = false, u8.grid.is_signed = false;
  float t_smooth = kl_range(smooth, 0.f, amax, u8).second, t_spiky = kl_range(hs, 0.f, amax, u8).second;
  // Within 2 % of the range: the masses also shift the Poisson noise of six bins, so not bit for bit.
  EXPECT_NEAR(t_spiky, t_smooth, 0.02f * amax) << "smooth " << t_smooth << " spiky " << t_spiky;
}

namespace {
double mean_ce(const std::vector<float>& v, int64_t rows, int64_t classes, std::pair<float, float> r, const QuantizerSpec& s) {
  auto [sc, z] = scale_zero_point(r.first, r.second, s);
  double total = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = v.data() + i * classes;
    double mx = *std::max_element(row, row + classes), zp = 0, zq = 0, qmx = -INFINITY;
    std::vector<double> q((size_t)classes);
    for (int64_t c = 0; c < classes; ++c) {
      zp += std::exp(row[c] - mx);
      q[(size_t)c] = dequantize_one(quantize_one(row[c], sc, z, s.grid, s.rounding), sc, z);
      qmx = std::max(qmx, q[(size_t)c]);
    }
    for (int64_t c = 0; c < classes; ++c) zq += std::exp(q[(size_t)c] - qmx);
    for (int64_t c = 0; c < classes; ++c) total -= std::exp(row[c] - mx) / zp * (q[(size_t)c] - qmx - std::log(zq));
  }
  return total / (double)rows;
}
}  // namespace

TEST(CrossEntropy, ClipsAnOutlierAndBeatsMinMaxOnLogits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 2.f);
  int64_t rows = 500, classes = 10;
  std::vector<float> v((size_t)(rows * classes));
  for (auto& x : v) x = d(rng);
  v[7] = 60.f;  // one outlier logit stretches the min-max range
  QuantizerSpec s;
  s.grid = {3, false, false};
  s.symmetric = false;
  MinMaxObserver mm;
  mm.observe(v.data(), (int64_t)v.size());
  auto [lo, hi] = mm.range();
  CrossEntropySearch ce(lo, hi, s);
  ce.add(v.data(), rows, classes);
  auto best = ce.best();
  EXPECT_LT(best.second, hi);
  EXPECT_LT(mean_ce(v, rows, classes, best, s), mean_ce(v, rows, classes, {lo, hi}, s));
}
