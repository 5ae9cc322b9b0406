#include "resilience/retry_policy.hpp"

#include <gtest/gtest.h>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;
using C = FailureClass;

class RetryPolicyTest : public ::testing::Test {
 protected:
  RetryState state(Duration time_left = 60s) { return RetryState(policy_, clock_.now() + time_left); }
  RetryDecision fail(RetryState& s, C cls, std::optional<Duration> retry_after = std::nullopt,
                     bool can_fail_over = true, RatioBudget* budget = nullptr) {
    return s.on_failure(AttemptFailure{cls, retry_after, can_fail_over}, clock_.now(), random_,
                        budget);
  }
  static GiveUpReason give_up(const RetryDecision& d) {
    EXPECT_TRUE(std::holds_alternative<GiveUp>(d));
    return std::holds_alternative<GiveUp>(d) ? std::get<GiveUp>(d).reason
                                             : GiveUpReason::not_a_failure;
  }

  RetryPolicy policy_ = RetryPolicy::defaults();
  ManualClock clock_;
  FastRandom random_{11};
};

TEST_F(RetryPolicyTest, DefaultsAreValid) {
  EXPECT_TRUE(policy_.validate().has_value());
  EXPECT_EQ(policy_.max_attempts_per_target, 2U);
  EXPECT_EQ(policy_.max_attempts_per_request, 4U);
}

TEST_F(RetryPolicyTest, ServerErrorRetriesOnTheSameTargetThenFailsOver) {
  auto s = state();
  const auto d1 = fail(s, C::http_5xx);
  ASSERT_TRUE(std::holds_alternative<RetrySame>(d1));
  const Duration delay = std::get<RetrySame>(d1).delay;
  EXPECT_GE(delay, 0ms);
  EXPECT_LT(delay, policy_.rule(C::http_5xx).backoff.base) << "first retry: [0, base)";
  EXPECT_EQ(s.attempts_on_target(), 1U);

  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::http_5xx)))
      << "2 attempts on this target used";
  EXPECT_EQ(s.attempts_on_target(), 0U);
  EXPECT_EQ(s.attempts(), 2U);
  // A fresh target gets its own same-target retry.
  EXPECT_TRUE(std::holds_alternative<RetrySame>(fail(s, C::connection_reset)));
  EXPECT_EQ(give_up(fail(s, C::http_5xx)), GiveUpReason::attempts_exhausted) << "4 attempts";
}

TEST_F(RetryPolicyTest, AHedgeCountsAgainstTheRequestsAttemptLimit) {
  auto s = state();
  s.count_extra_attempt();  // a hedge ran beside the first attempt
  EXPECT_EQ(s.attempts(), 1U);
  EXPECT_EQ(s.attempts_on_target(), 0U);
  EXPECT_TRUE(std::holds_alternative<RetrySame>(fail(s, C::http_5xx)));
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::http_5xx)));
  EXPECT_EQ(give_up(fail(s, C::http_5xx)), GiveUpReason::attempts_exhausted) << "4 attempts with the hedge";
}

TEST_F(RetryPolicyTest, BackoffGrowsWithAttemptsOnTheTarget) {
  policy_.max_attempts_per_target = 4;
  policy_.max_attempts_per_request = 10;
  auto& rule = policy_.rule(C::http_5xx);
  rule.backoff = BackoffPolicy{1s, 3s};
  for (int run = 0; run < 200; ++run) {
    auto s = state(1h);
    const std::vector<Duration> ceilings{1s, 2s, 3s};
    for (const auto ceiling : ceilings) {
      const auto d = fail(s, C::http_5xx);
      ASSERT_TRUE(std::holds_alternative<RetrySame>(d));
      EXPECT_LT(std::get<RetrySame>(d).delay, ceiling);
    }
  }
}

TEST_F(RetryPolicyTest, NoTargetLeftMeansGiveUp) {
  auto s = state();
  EXPECT_EQ(give_up(fail(s, C::context_length, std::nullopt, false)),
            GiveUpReason::no_target_left);
  policy_.max_attempts_per_target = 1;
  auto s2 = state();
  EXPECT_EQ(give_up(fail(s2, C::http_5xx, std::nullopt, false)),
            GiveUpReason::target_attempts_exhausted)
      << "says why the same target was not retried";
}

TEST_F(RetryPolicyTest, SameTargetExhaustedWithoutFailOverGivesUp) {
  policy_.rule(C::http_5xx).fail_over = false;
  auto s = state();
  EXPECT_TRUE(std::holds_alternative<RetrySame>(fail(s, C::http_5xx)));
  EXPECT_EQ(give_up(fail(s, C::http_5xx)), GiveUpReason::target_attempts_exhausted);
}

TEST_F(RetryPolicyTest, RateLimitHonoursRetryAfterUpToTheMaximum) {
  auto s = state();
  const auto d = fail(s, C::rate_limited, 3s);
  ASSERT_TRUE(std::holds_alternative<RetrySame>(d));
  EXPECT_EQ(std::get<RetrySame>(d).delay, 3s);

  auto s2 = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s2, C::rate_limited, 30s)))
      << "longer than max_retry_after (10 s): fail over at once";
  EXPECT_EQ(s2.attempts_on_target(), 0U);

  auto s3 = state();
  EXPECT_EQ(give_up(fail(s3, C::rate_limited, 30s, false)), GiveUpReason::retry_after_too_long);
  policy_.rule(C::rate_limited).fail_over = false;
  auto s4 = state();
  EXPECT_EQ(give_up(fail(s4, C::rate_limited, 30s)), GiveUpReason::retry_after_too_long);
}

TEST_F(RetryPolicyTest, CallersFaultsAreNeverRetriedOnTheSameTarget) {
  auto s = state();
  EXPECT_EQ(give_up(fail(s, C::client_fault)), GiveUpReason::not_retryable);
  auto s2 = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s2, C::context_length)))
      << "a larger-context model may take it";
  auto s3 = state();
  EXPECT_EQ(give_up(fail(s3, C::content_filter)), GiveUpReason::not_retryable)
      << "content filter fails over only if configured";
  policy_.rule(C::content_filter).fail_over = true;
  auto s4 = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s4, C::content_filter)));
  auto s5 = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s5, C::upstream_auth)))
      << "our credential for that target is bad: another target, never the same";
  auto s6 = state();
  EXPECT_EQ(give_up(fail(s6, C::success)), GiveUpReason::not_a_failure);
  EXPECT_EQ(s6.attempts(), 0U);
}

TEST_F(RetryPolicyTest, NeverRetrySameHoldsEvenIfMisconfigured) {
  policy_.rule(C::context_length).retry_same = true;
  policy_.rule(C::client_fault).fail_over = true;
  EXPECT_FALSE(policy_.validate().has_value());
  auto s = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::context_length)));
  auto s2 = state();
  EXPECT_EQ(give_up(fail(s2, C::client_fault)), GiveUpReason::not_retryable);
  for (const auto c : {C::client_fault, C::context_length, C::content_filter, C::upstream_auth,
                       C::upstream_not_found, C::gateway_fault})
    EXPECT_TRUE(never_retry_same(c)) << to_string(c);
}

TEST_F(RetryPolicyTest, FirstTokenTimeoutFailsOverAtOnceByDefault) {
  auto s = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::first_token_timeout)));
}

TEST_F(RetryPolicyTest, NeverStartsARetryThatCannotFinish) {
  // min_attempt_time = 1 s by default.
  auto s = state(1500ms);
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::rate_limited, 1s)))
      << "1 s wait + 1 s attempt > 1.5 s left: fail over now instead";
  auto s2 = state(2s);
  EXPECT_TRUE(std::holds_alternative<RetrySame>(fail(s2, C::rate_limited, 1s))) << "exactly fits";
  auto s3 = state(900ms);
  EXPECT_EQ(give_up(fail(s3, C::http_5xx)), GiveUpReason::deadline) << "not even a fail over fits";
  auto s4 = state(1500ms);
  EXPECT_EQ(give_up(fail(s4, C::rate_limited, 1s, false)), GiveUpReason::deadline);
  policy_.rule(C::rate_limited).fail_over = false;
  auto s5 = state(1500ms);
  EXPECT_EQ(give_up(fail(s5, C::rate_limited, 1s)), GiveUpReason::deadline);
}

TEST_F(RetryPolicyTest, DeadlineIsMeasuredFromNow) {
  auto s = state(5s);
  clock_.advance(4500ms);
  EXPECT_EQ(give_up(fail(s, C::http_5xx)), GiveUpReason::deadline);
}

TEST_F(RetryPolicyTest, RetryBudgetIsConsultedOnlyForSameTargetRetries) {
  RetryBudget budget(clock_, BudgetPolicy{0.1, 0.0, 10});  // nothing to spend yet
  auto s = state();
  EXPECT_TRUE(std::holds_alternative<FailOver>(fail(s, C::http_5xx, std::nullopt, true, &budget)));
  EXPECT_EQ(s.budget_refusals(), 1U);
  auto s2 = state();
  EXPECT_EQ(give_up(fail(s2, C::http_5xx, std::nullopt, false, &budget)),
            GiveUpReason::budget_exhausted);
  auto s3 = state();
  fail(s3, C::context_length, std::nullopt, true, &budget);
  EXPECT_EQ(budget.snapshot().refused_total, 2U) << "fail over does not ask the budget";

  for (int i = 0; i < 10; ++i) budget.record_request();
  auto s4 = state();
  EXPECT_TRUE(std::holds_alternative<RetrySame>(fail(s4, C::http_5xx, std::nullopt, true, &budget)));
  EXPECT_EQ(budget.snapshot().extras, 1U);
}

TEST_F(RetryPolicyTest, DecidesFromAnError) {
  Error e = Error::transport(ErrorKind::upstream_rate_limited, "429");
  e.retry_after = std::chrono::milliseconds(2000);
  auto s = state();
  const auto d = s.on_failure(e, true, clock_.now(), random_);
  ASSERT_TRUE(std::holds_alternative<RetrySame>(d));
  EXPECT_EQ(std::get<RetrySame>(d).delay, 2s);
  auto s2 = state();
  EXPECT_EQ(give_up(s2.on_failure(Error::client(ErrorKind::bad_request, "bad"), true, clock_.now(),
                                  random_)),
            GiveUpReason::not_retryable);
}

TEST_F(RetryPolicyTest, ValidationRejectsBadLimits) {
  policy_.max_attempts_per_target = 5;
  EXPECT_FALSE(policy_.validate().has_value());
  policy_ = RetryPolicy::defaults();
  policy_.max_attempts_per_request = 0;
  EXPECT_FALSE(policy_.validate().has_value());
  policy_ = RetryPolicy::defaults();
  policy_.rule(C::http_5xx).backoff = BackoffPolicy{2s, 1s};
  EXPECT_FALSE(policy_.validate().has_value());
}

// The retry policy and the budget together: a total outage of the only target at
// 50 requests/s for 60 s costs at most 1.1 upstream attempts per client request.
TEST_F(RetryPolicyTest, TotalOutageWithBudgetStaysUnderTenPercentExtra) {
  policy_.max_attempts_per_target = 10;
  policy_.max_attempts_per_request = 10;
  RetryBudget budget(clock_);
  long requests = 0, attempts = 0;
  for (int i = 0; i < 50 * 60; ++i) {
    auto s = state(1h);
    budget.record_request();
    ++requests;
    for (;;) {
      ++attempts;
      const auto d = fail(s, C::http_5xx, std::nullopt, false, &budget);
      if (!std::holds_alternative<RetrySame>(d)) break;
    }
    clock_.advance(20ms);
  }
  const double per_request = double(attempts) / double(requests);
  EXPECT_LE(per_request, 1.1);
  EXPECT_GT(per_request, 1.05);
}

}  // namespace
}  // namespace bulwark::resilience
