#include "resilience/retry_budget.hpp"

#include <gtest/gtest.h>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;

TEST(RetryBudget, FloorAllowsAFewRetriesWithoutTraffic) {
  ManualClock clock;
  RetryBudget budget(clock, BudgetPolicy{0.1, 1.0, 10});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.try_acquire()) << i;
  EXPECT_FALSE(budget.try_acquire()) << "1/s over a 10 s window is 10";
  const auto snap = budget.snapshot();
  EXPECT_EQ(snap.extras, 10U);
  EXPECT_EQ(snap.refused_total, 1U);
  EXPECT_DOUBLE_EQ(snap.allowed, 10.0);
  clock.advance(10s);  // all of them aged out
  EXPECT_TRUE(budget.try_acquire());
}

TEST(RetryBudget, RatioOfRequestsInTheWindow) {
  ManualClock clock;
  RetryBudget budget(clock, BudgetPolicy{0.1, 0.0, 10});
  EXPECT_FALSE(budget.try_acquire()) << "no floor, no traffic: no retries";
  for (int i = 0; i < 100; ++i) budget.record_request();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.try_acquire()) << i;
  EXPECT_FALSE(budget.try_acquire());
  budget.record_request();  // 101 requests: 10.1 allowed, still 10
  EXPECT_FALSE(budget.try_acquire());
  for (int i = 0; i < 9; ++i) budget.record_request();
  EXPECT_TRUE(budget.try_acquire()) << "110 requests allow 11";
  const auto snap = budget.snapshot();
  EXPECT_EQ(snap.requests, 110U);
  EXPECT_EQ(snap.extras, 11U);
}

TEST(RetryBudget, OldRequestsStopFundingRetries) {
  ManualClock clock;
  RetryBudget budget(clock, BudgetPolicy{0.5, 0.0, 5});
  for (int i = 0; i < 10; ++i) budget.record_request();
  clock.advance(5s);
  EXPECT_FALSE(budget.try_acquire()) << "the 10 requests left the 5 s window";
  EXPECT_EQ(budget.snapshot().requests, 0U);
}

TEST(RetryBudget, PolicyValidation) {
  EXPECT_TRUE(default_retry_budget().validate().has_value());
  EXPECT_TRUE(default_hedge_budget().validate().has_value());
  EXPECT_FALSE((BudgetPolicy{-0.1, 1.0, 10}).validate().has_value());
  EXPECT_FALSE((BudgetPolicy{0.1, -1.0, 10}).validate().has_value());
  EXPECT_FALSE((BudgetPolicy{0.1, 1.0, 0}).validate().has_value());
}

struct OutageResult {
  long requests = 0;
  long attempts = 0;
};

// A steady stream of client requests against a target that fails every attempt; each
// request retries for as long as the budget allows (the worst case for amplification).
OutageResult total_outage(RatioBudget& budget, ManualClock& clock, int per_second, int seconds) {
  OutageResult r;
  const Duration gap = std::chrono::seconds(1) / per_second;
  for (int i = 0; i < per_second * seconds; ++i) {
    budget.record_request();
    ++r.requests;
    ++r.attempts;  // the first attempt fails...
    while (budget.try_acquire()) ++r.attempts;  // ...and so does every retry
    clock.advance(gap);
  }
  return r;
}

TEST(RetryBudget, TotalOutageIsNotAmplifiedBeyondTheRatio) {
  ManualClock clock;
  RetryBudget budget(clock);  // defaults: 10%, floor 1/s
  const auto r = total_outage(budget, clock, 50, 60);
  ASSERT_EQ(r.requests, 3000);
  const double per_request = double(r.attempts) / double(r.requests);
  EXPECT_LE(per_request, 1.1);
  EXPECT_GE(per_request, 1.09) << "the budget is actually spent, not refused outright";
}

TEST(RetryBudget, AtLowTrafficTheFloorRules) {
  ManualClock clock;
  RetryBudget budget(clock);  // 10%, floor 1/s over 10 s
  const auto r = total_outage(budget, clock, 1, 60);
  // 1 request/s earns 0.1 retry/s; the floor gives 1/s: 60 requests, at most 60 retries.
  EXPECT_LE(r.attempts, 2 * r.requests);
  EXPECT_GT(r.attempts, r.requests + 50);
}

TEST(HedgeBudget, CapsExtraAttemptsAtItsOwnRatio) {
  ManualClock clock;
  HedgeBudget budget(clock, BudgetPolicy{0.05, 0.0, 10});
  const auto r = total_outage(budget, clock, 100, 60);
  const double per_request = double(r.attempts) / double(r.requests);
  EXPECT_LE(per_request, 1.05);
  EXPECT_GE(per_request, 1.04);
  EXPECT_DOUBLE_EQ(HedgeBudget(clock).policy().ratio, default_hedge_budget().ratio);
}

}  // namespace
}  // namespace bulwark::resilience
