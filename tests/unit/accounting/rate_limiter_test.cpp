#include "accounting/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace bulwark::accounting {
namespace {

using namespace std::chrono_literals;

TEST(Gcra, AdmitsExactlyTheLimitThenSpacesRequests) {
  ManualClock clock;
  Gcra g(10, 1min);
  for (int i = 0; i < 10; ++i) {
    const auto d = g.acquire(clock.now());
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.limit, 10);
    EXPECT_EQ(d.remaining, 9 - i);
  }
  const auto denied = g.acquire(clock.now());
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.remaining, 0);
  EXPECT_EQ(denied.retry_after, 6s);  // one emission interval: 60s / 10
  EXPECT_EQ(denied.reset, 60s);
  clock.advance(5999ms);
  EXPECT_FALSE(g.acquire(clock.now()).allowed);
  clock.advance(1ms);
  EXPECT_TRUE(g.acquire(clock.now()).allowed);
  EXPECT_FALSE(g.acquire(clock.now()).allowed);
  clock.advance(1min);
  EXPECT_EQ(g.peek(clock.now()).remaining, 10);
}

TEST(Gcra, CostAboveBurstIsDeniedWithoutCharging) {
  ManualClock clock;
  Gcra g(100, 1min);
  const auto d = g.acquire(clock.now(), 101);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(g.peek(clock.now()).remaining, 100);
  EXPECT_TRUE(g.acquire(clock.now(), 100).allowed);
}

TEST(Gcra, AdjustChargesAndRefunds) {
  ManualClock clock;
  Gcra g(1000, 1min);
  ASSERT_TRUE(g.acquire(clock.now(), 400).allowed);
  EXPECT_EQ(g.peek(clock.now()).remaining, 600);
  g.adjust(-300);  // the true count was 100
  EXPECT_EQ(g.peek(clock.now()).remaining, 900);
  g.adjust(2000);  // far above the estimate: overdrawn, nothing passes
  EXPECT_EQ(g.peek(clock.now()).remaining, 0);
  EXPECT_FALSE(g.acquire(clock.now(), 0).allowed);
  // Refunds never build credit beyond a full bucket.
  Gcra h(10, 1min);
  h.adjust(-1000);
  EXPECT_EQ(h.peek(clock.now()).remaining, 10);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(h.acquire(clock.now()).allowed);
  EXPECT_FALSE(h.acquire(clock.now()).allowed);
}

// Many threads race for one bucket at a single instant: exactly the limit gets through,
// which a lost update (two callers reading the same TAT) would break.
TEST(Gcra, ExactUnderConcurrency) {
  ManualClock clock;
  for (const std::int64_t cost : {1, 7}) {
    Gcra g(7000, 1min);
    std::atomic<std::int64_t> admitted{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < 2000; ++i) {
          if (g.acquire(clock.now(), cost).allowed) admitted += cost;
        }
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(admitted.load(), 7000) << "cost " << cost;
  }
}

TEST(RateLimiter, TightestSubjectWinsAndDenialRollsBack) {
  ManualClock clock;
  RateLimiter rl(clock);
  const RateSubject key{"key:a", 5, 0};
  const RateSubject team{"team:t", 3, 0};
  const RateSubject both[] = {key, team};
  for (int i = 0; i < 3; ++i) {
    auto a = rl.admit(both, 0);
    ASSERT_TRUE(a.allowed);
    EXPECT_EQ(a.requests.limit, 3);
    EXPECT_EQ(a.requests.remaining, 2 - i);
  }
  auto denied = rl.admit(both, 0);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.denied_by, "team:t rpm");
  EXPECT_EQ(denied.retry_after, 20s);
  // The key was not charged for the denied request: 2 left of 5.
  const RateSubject key_only[] = {key};
  EXPECT_TRUE(rl.admit(key_only, 0).allowed);
  EXPECT_TRUE(rl.admit(key_only, 0).allowed);
  EXPECT_FALSE(rl.admit(key_only, 0).allowed);
}

TEST(RateLimiter, TokenEstimateIsChargedThenCorrected) {
  ManualClock clock;
  RateLimiter rl(clock);
  const RateSubject s[] = {{"key:a", 100, 1000}};
  auto a = rl.admit(s, 600);
  ASSERT_TRUE(a.allowed);
  EXPECT_EQ(a.tokens.remaining, 400);
  auto b = rl.admit(s, 600);
  EXPECT_FALSE(b.allowed);
  EXPECT_EQ(b.denied_by, "key:a tpm");
  rl.settle_tokens(a, 100);  // the response was short
  rl.settle_tokens(a, 100);  // settling twice changes nothing
  auto c = rl.admit(s, 600);
  ASSERT_TRUE(c.allowed);
  EXPECT_EQ(c.tokens.remaining, 300);
  // A token denial also returns the request it had charged.
  EXPECT_EQ(c.requests.remaining, 98);
  auto d = rl.admit(s, 0);
  EXPECT_EQ(d.requests.remaining, 97);
}

TEST(RateLimiter, SharedTeamLimitIsExactAcrossThreads) {
  ManualClock clock;
  RateLimiter rl(clock);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "key:" + std::to_string(t);
      const RateSubject s[] = {{key, 1000, 0}, {"team:shared", 300, 0}};
      for (int i = 0; i < 200; ++i) {
        if (rl.admit(s, 0).allowed) ++admitted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 300);
}

TEST(RateLimiter, ChangedLimitStartsAFreshBucket) {
  ManualClock clock;
  RateLimiter rl(clock);
  const RateSubject small[] = {{"key:a", 1, 0}};
  ASSERT_TRUE(rl.admit(small, 0).allowed);
  ASSERT_FALSE(rl.admit(small, 0).allowed);
  const RateSubject bigger[] = {{"key:a", 2, 0}};
  EXPECT_TRUE(rl.admit(bigger, 0).allowed);
}

// One id named twice with other limits: each lookup finds the other's buckets unfit and
// remakes them; admission must still end, charging the buckets as last made.
TEST(RateLimiter, OneSubjectNamedTwiceWithOtherLimitsStillAdmits) {
  ManualClock clock;
  RateLimiter rl(clock);
  const RateSubject twice[] = {{"key:a", 1, 0}, {"key:a", 5, 0}};
  const auto a = rl.admit(twice, 0);
  EXPECT_TRUE(a.allowed);
  EXPECT_EQ(a.requests.limit, 5);
}

TEST(ParallelLimiter, SlotsAreRaiiAndCapped) {
  ParallelLimiter pl;
  std::vector<ParallelLimiter::Slot> held;
  for (int i = 0; i < 3; ++i) {
    auto s = pl.try_acquire("key:a", 3);
    ASSERT_TRUE(s);
    held.push_back(std::move(*s));
  }
  EXPECT_FALSE(pl.try_acquire("key:a", 3));
  EXPECT_EQ(pl.in_flight("key:a"), 3);
  EXPECT_TRUE(pl.try_acquire("key:b", 3));  // other subjects are independent
  held.pop_back();
  EXPECT_EQ(pl.in_flight("key:a"), 2);
  {
    auto s = pl.try_acquire("key:a", 3);
    EXPECT_TRUE(s);
    EXPECT_FALSE(pl.try_acquire("key:a", 3));
  }
  EXPECT_EQ(pl.in_flight("key:a"), 2);
  EXPECT_TRUE(pl.try_acquire("key:a", 0));  // 0: unlimited
}

TEST(ParallelLimiter, NeverExceedsMaxUnderContention) {
  ParallelLimiter pl;
  std::atomic<int> now_in{0}, peak{0}, granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto s = pl.try_acquire("k", 3);
        if (!s) continue;
        ++granted;
        const int n = ++now_in;
        int p = peak.load();
        while (n > p && !peak.compare_exchange_weak(p, n)) {
        }
        --now_in;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(pl.in_flight("k"), 0);
}

}  // namespace
}  // namespace bulwark::accounting
