#include "resilience/latency_tracker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "core/random.hpp"

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;

double rel_error(Duration estimate, Duration exact) {
  return std::abs(double(estimate.count()) - double(exact.count())) / double(exact.count());
}

Duration nearest_rank(std::vector<Duration> v, double q) {
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * double(v.size())));
  return v[std::max<std::size_t>(rank, 1) - 1];
}

TEST(LatencyTracker, BinsHaveAboutFivePercentError) {
  FastRandom rnd(5);
  double worst = 0.0;
  for (int i = 0; i < 100000; ++i) {
    // Log-uniform between 100 us and 1 hour.
    const double ns = 1e5 * std::pow(3.6e7, rnd.uniform());
    const Duration d{static_cast<Duration::rep>(ns)};
    worst = std::max(worst, rel_error(LatencyTracker::bin_value(LatencyTracker::bin_of(d)), d));
  }
  EXPECT_LE(worst, 0.0490);
  EXPECT_EQ(LatencyTracker::bin_of(10us), 0U);
  EXPECT_EQ(LatencyTracker::bin_of(std::chrono::hours(1000)), LatencyTracker::kBins - 1);
  EXPECT_LT(LatencyTracker::bin_of(999us), LatencyTracker::bin_of(1100us));
}

TEST(LatencyTracker, PercentilesWithinTheBucketError) {
  ManualClock clock;
  LatencyTracker t(clock, 30);
  FastRandom rnd(9);
  std::vector<Duration> samples;
  for (int i = 0; i < 20000; ++i) {
    // A skewed mix: mostly 200-800 ms, a slow tail up to 20 s.
    const double ms = rnd.uniform() < 0.9 ? 200 + 600 * rnd.uniform() : 800 + 19200 * rnd.uniform();
    const Duration d = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
    samples.push_back(d);
    t.record(d);
    if (i % 1000 == 999) clock.advance(1s);  // spread over 20 seconds of the window
  }
  const auto p = t.percentiles();
  EXPECT_EQ(p.count, samples.size());
  EXPECT_LE(rel_error(p.p50, nearest_rank(samples, 0.50)), 0.05);
  EXPECT_LE(rel_error(p.p95, nearest_rank(samples, 0.95)), 0.05);
  EXPECT_LE(rel_error(p.p99, nearest_rank(samples, 0.99)), 0.05);
  const auto p90 = t.quantile(0.90);
  ASSERT_TRUE(p90.has_value());
  EXPECT_LE(rel_error(*p90, nearest_rank(samples, 0.90)), 0.05);
}

TEST(LatencyTracker, OldSecondsLeaveTheWindow) {
  ManualClock clock;
  LatencyTracker t(clock, 10);
  EXPECT_EQ(t.quantile(0.5), std::nullopt);
  EXPECT_EQ(t.percentiles().count, 0U);
  for (int i = 0; i < 100; ++i) t.record(10ms);
  clock.advance(5s);
  for (int i = 0; i < 100; ++i) t.record(100ms);
  EXPECT_EQ(t.percentiles().count, 200U);
  EXPECT_LE(rel_error(*t.quantile(0.25), 10ms), 0.05);
  clock.advance(5s);  // the 10 ms samples are 10 s old now
  const auto p = t.percentiles();
  EXPECT_EQ(p.count, 100U);
  EXPECT_LE(rel_error(p.p50, 100ms), 0.05);
  clock.advance(5s);
  EXPECT_EQ(t.quantile(0.5), std::nullopt);
}

TEST(LatencyTracker, ARecycledSlotStartsEmpty) {
  ManualClock clock;
  LatencyTracker t(clock, 3);
  for (int i = 0; i < 50; ++i) t.record(1s);
  clock.advance(3s);  // same slot of the ring, three seconds later
  t.record(20ms);
  const auto p = t.percentiles();
  EXPECT_EQ(p.count, 1U);
  EXPECT_LE(rel_error(p.p99, 20ms), 0.05);
}

TEST(LatencyTracker, CachedPercentilesRefreshOncePerSecond) {
  ManualClock clock;
  LatencyTracker t(clock, 10);
  for (int i = 0; i < 10; ++i) t.record(100ms);
  const auto first = t.cached_percentiles();
  EXPECT_EQ(first.count, 10U);
  for (int i = 0; i < 1000; ++i) t.record(5s);
  const auto same = t.cached_percentiles();
  EXPECT_EQ(same.count, 10U) << "served from the cache within the same second";
  EXPECT_EQ(same.p95, first.p95);
  clock.advance(1s);
  const auto fresh = t.cached_percentiles();
  EXPECT_EQ(fresh.count, 1010U);
  EXPECT_LE(rel_error(fresh.p95, 5s), 0.05);
  EXPECT_EQ(t.cached_percentiles().p95, fresh.p95);
}

TEST(LatencyTracker, Ewma) {
  ManualClock clock;
  LatencyTracker t(clock, 10, 0.5);
  EXPECT_EQ(t.ewma(), std::nullopt);
  t.record(100ms);
  EXPECT_EQ(t.ewma(), Duration(100ms)) << "the first sample sets it";
  t.record(200ms);
  EXPECT_EQ(t.ewma(), Duration(150ms));
  t.record(-5ms);  // clamped to 0
  EXPECT_EQ(t.ewma(), Duration(75ms));
}

TEST(LatencyTracker, ConcurrentRecordingLosesNothingWithinASecond) {
  ManualClock clock;
  LatencyTracker t(clock, 10, 0.1);
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id)
    threads.emplace_back([&t, id] {
      for (int i = 0; i < kEach; ++i) t.record(std::chrono::milliseconds(10 + 10 * id));
    });
  for (auto& th : threads) th.join();
  const auto p = t.percentiles();
  EXPECT_EQ(p.count, std::uint64_t{kThreads * kEach});
  const auto e = t.ewma();
  ASSERT_TRUE(e.has_value());
  EXPECT_GE(*e, 10ms);
  EXPECT_LE(*e, 40ms);
}

}  // namespace
}  // namespace bulwark::resilience
