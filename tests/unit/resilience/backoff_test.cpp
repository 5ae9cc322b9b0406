#include "resilience/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, CeilingDoublesUpToTheCap) {
  const BackoffPolicy p{100ms, 1s};
  EXPECT_EQ(backoff_ceiling(p, 0), 100ms);
  EXPECT_EQ(backoff_ceiling(p, 1), 200ms);
  EXPECT_EQ(backoff_ceiling(p, 2), 400ms);
  EXPECT_EQ(backoff_ceiling(p, 3), 800ms);
  EXPECT_EQ(backoff_ceiling(p, 4), 1s);
  EXPECT_EQ(backoff_ceiling(p, 63), 1s);
  EXPECT_EQ(backoff_ceiling(p, 4000000000U), 1s) << "saturates instead of overflowing";
  EXPECT_EQ(backoff_ceiling(BackoffPolicy{0ms, 1s}, 3), 0ms);
}

TEST(Backoff, FullJitterStaysInRangeAndCoversIt) {
  FastRandom rnd(7);
  const BackoffPolicy p{100ms, 1s};
  for (std::uint32_t n = 0; n < 8; ++n) {
    const Duration ceiling = backoff_ceiling(p, n);
    Duration lo = Duration::max(), hi = Duration::zero();
    double sum = 0.0;
    constexpr int kSamples = 20000;
    for (int i = 0; i < kSamples; ++i) {
      const Duration d = backoff_delay(p, n, rnd);
      ASSERT_GE(d, Duration::zero());
      ASSERT_LT(d, ceiling);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      sum += static_cast<double>(d.count());
    }
    // Uniform on [0, ceiling): the samples reach both ends and average about half.
    EXPECT_LT(lo, ceiling / 100) << n;
    EXPECT_GT(hi, ceiling * 99 / 100) << n;
    const double mean = sum / kSamples / static_cast<double>(ceiling.count());
    EXPECT_NEAR(mean, 0.5, 0.02) << n;
  }
}

TEST(Backoff, DeterministicForASeed) {
  FastRandom a(3), b(3);
  const BackoffPolicy p{};
  for (std::uint32_t n = 0; n < 10; ++n) EXPECT_EQ(backoff_delay(p, n, a), backoff_delay(p, n, b));
}

}  // namespace
}  // namespace bulwark::resilience
