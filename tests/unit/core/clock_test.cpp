#include "core/clock.hpp"

#include <gtest/gtest.h>

#include "core/random.hpp"

TEST(ManualClock, MovesOnlyWhenAdvanced) {
  bulwark::ManualClock clock;
  const auto t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(std::chrono::milliseconds(1500));
  EXPECT_EQ(clock.now() - t0, std::chrono::milliseconds(1500));
}

TEST(FastRandom, IsDeterministicPerSeedAndInUnitInterval) {
  bulwark::FastRandom a(42), b(42);
  for (int i = 0; i < 1000; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
}
