#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/util/random.hpp"

namespace sb {
namespace {

TEST(CounterRng, SameKeySameStream) {
  CounterRng a(stream_key(7, StreamPurpose::kSymbols, Split::kTrain, 3));
  CounterRng b(stream_key(7, StreamPurpose::kSymbols, Split::kTrain, 3));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(CounterRng, EveryKeyComponentChangesTheStream) {
  const std::uint64_t base = stream_key(7, StreamPurpose::kSymbols, Split::kTrain, 3, 0);
  std::set<std::uint64_t> keys = {
      base,
      stream_key(8, StreamPurpose::kSymbols, Split::kTrain, 3, 0),
      stream_key(7, StreamPurpose::kGaps, Split::kTrain, 3, 0),
      stream_key(7, StreamPurpose::kSymbols, Split::kTest, 3, 0),
      stream_key(7, StreamPurpose::kSymbols, Split::kTrain, 4, 0),
      stream_key(7, StreamPurpose::kSymbols, Split::kTrain, 3, 1),
  };
  EXPECT_EQ(keys.size(), 6U);
  // The reference's seed*idx made sample 0 ignore the seed (B2); ours must not.
  EXPECT_NE(stream_key(1, StreamPurpose::kSymbols, Split::kTrain, 0),
            stream_key(2, StreamPurpose::kSymbols, Split::kTrain, 0));
}

TEST(CounterRng, UniformIsInUnitIntervalWithMeanOneHalf) {
  CounterRng rng(12345);
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(CounterRng, BelowIsUniform) {
  // Chi-square test with 6 cells, fixed seed: the 99.9% quantile of chi2(5) is 20.5.
  CounterRng rng(99);
  const int n = 60000;
  std::vector<int> counts(6, 0);
  for (int i = 0; i < n; ++i) {
    const auto k = rng.below(6);
    ASSERT_LT(k, 6U);
    ++counts[k];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += (c - n / 6.0) * (c - n / 6.0) / (n / 6.0);
  EXPECT_LT(chi2, 20.5);
  EXPECT_EQ(rng.below(1), 0U);
}

TEST(CounterRng, CountsDraws) {
  CounterRng rng(1);
  rng.next_u64();
  rng.uniform();
  EXPECT_EQ(rng.draws(), 2U);
}

}  // namespace
}  // namespace sb
