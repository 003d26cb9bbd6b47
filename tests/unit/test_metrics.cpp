// Evaluation metrics on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/metrics.h"

using namespace lowbit;
using namespace lowbit::eval;

TEST(TopK, CountsTop1AndTop5WithTiesLikeArgmax) {
  TopK t;
  // 7 classes. Row 0: label 2 is the max. Row 1: label 0 ties with class 3 (lower index wins: top-1).
  // Row 2: label 6 is 6th best (not in top 5). Row 3: label 1 is 2nd best.
  Tensor logits = Tensor::from_vector<float>({4, 7}, {0, 1, 9, 2, 3, 4, 5,  //
                                                      5, 1, 2, 5, 0, 0, 0,  //
                                                      6, 5, 4, 3, 2, 0, 1,  //
                                                      0, 8, 1, 9, 2, 3, 4});
  t.add(logits, {2, 0, 6, 1});
  EXPECT_EQ(t.count(), 4);
  EXPECT_DOUBLE_EQ(t.top1(), 50.0);
  EXPECT_DOUBLE_EQ(t.top5(), 75.0);
  EXPECT_THROW(t.add(logits, {0, 1}), Error);
  EXPECT_THROW(t.add(logits, {0, 1, 2, 7}), Error);
}

TEST(Fidelity, KnownErrorsAndSqnr) {
  Fidelity f;
  Tensor ref = Tensor::from_vector<float>({2, 2}, {3, 4, 0, 2});
  f.add(ref, ref);
  EXPECT_TRUE(std::isinf(f.sqnr_db()));
  EXPECT_DOUBLE_EQ(f.mean_cosine(), 1.0);
  Fidelity g;
  Tensor out = Tensor::from_vector<float>({2, 2}, {3, 5, 0, 1});  // errors +1 and -1
  g.add(out, ref);
  EXPECT_DOUBLE_EQ(g.max_abs_error(), 1.0);
  EXPECT_DOUBLE_EQ(g.mean_abs_error(), 0.5);
  EXPECT_NEAR(g.sqnr_db(), 10 * std::log10(29.0 / 2.0), 1e-12);  // signal 9+16+0+4, noise 2
  EXPECT_DOUBLE_EQ(g.top1_agreement(), 100.0);
  EXPECT_NEAR(g.mean_cosine(), 0.5 * (29 / (5 * std::sqrt(34.0)) + 1.0), 1e-12);
}
