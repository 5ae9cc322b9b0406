#include "resilience/retry_policy.hpp"

#include <string>

namespace bulwark::resilience {
namespace {

using C = FailureClass;
using namespace std::chrono_literals;

Error config_error(std::string msg) {
  return Error::gateway(ErrorKind::internal, "retry policy: " + std::move(msg));
}

}  // namespace

bool never_retry_same(FailureClass c) noexcept {
  return c == C::success || is_client_fault(c) || c == C::upstream_auth ||
         c == C::upstream_not_found || c == C::gateway_fault;
}

bool never_fail_over(FailureClass c) noexcept {
  return c == C::success || c == C::client_fault || c == C::gateway_fault;
}

std::string_view to_string(GiveUpReason r) noexcept {
  switch (r) {
    case GiveUpReason::not_a_failure: return "not_a_failure";
    case GiveUpReason::not_retryable: return "not_retryable";
    case GiveUpReason::attempts_exhausted: return "attempts_exhausted";
    case GiveUpReason::target_attempts_exhausted: return "target_attempts_exhausted";
    case GiveUpReason::deadline: return "deadline";
    case GiveUpReason::budget_exhausted: return "budget_exhausted";
    case GiveUpReason::retry_after_too_long: return "retry_after_too_long";
    case GiveUpReason::no_target_left: return "no_target_left";
  }
  return "unknown";
}

RetryPolicy RetryPolicy::defaults() {
  RetryPolicy p;
  const auto set = [&p](C c, bool same, BackoffPolicy b, bool over) {
    auto& r = p.rule(c);
    r.retry_same = same;
    r.backoff = b;
    r.fail_over = over;
  };
  const BackoffPolicy transport{100ms, 2s};  // a fresh connection often just works
  const BackoffPolicy server{250ms, 4s};
  const BackoffPolicy pressure{1s, 8s};  // 429/overload: give the upstream room
  set(C::http_5xx, true, server, true);
  set(C::rate_limited, true, pressure, true);
  set(C::overloaded, true, pressure, true);
  set(C::connect_error, true, transport, true);
  set(C::connect_timeout, true, transport, true);
  // A late first token or a blown total limit: the target is slow right now; another
  // target is likelier to answer in time than a second wait here.
  set(C::first_token_timeout, false, server, true);
  set(C::total_timeout, false, server, true);
  set(C::idle_timeout, true, server, true);
  set(C::connection_reset, true, transport, true);
  set(C::protocol_error, true, server, true);
  set(C::upstream_auth, false, {}, true);
  set(C::upstream_not_found, false, {}, true);
  set(C::context_length, false, {}, true);
  set(C::content_filter, false, {}, false);
  set(C::client_fault, false, {}, false);
  set(C::gateway_fault, false, {}, false);
  return p;
}

Status RetryPolicy::validate() const {
  if (max_attempts_per_target < 1 || max_attempts_per_request < 1)
    return std::unexpected(config_error("attempt limits must be >= 1"));
  if (max_attempts_per_target > max_attempts_per_request)
    return std::unexpected(config_error("max_attempts_per_target exceeds max_attempts_per_request"));
  if (min_attempt_time < Duration::zero())
    return std::unexpected(config_error("min_attempt_time must not be negative"));
  for (const auto c : all_failure_classes()) {
    const auto& r = rule(c);
    const std::string name(to_string(c));
    if (r.retry_same && never_retry_same(c))
      return std::unexpected(config_error(name + " can never be retried on the same target"));
    if (r.fail_over && never_fail_over(c))
      return std::unexpected(config_error(name + " can never fail over"));
    if (r.backoff.base < Duration::zero() || r.backoff.cap < r.backoff.base)
      return std::unexpected(config_error(name + ": need 0 <= backoff base <= cap"));
    if (r.max_retry_after < Duration::zero())
      return std::unexpected(config_error(name + ": max_retry_after must not be negative"));
  }
  return {};
}

RetryDecision RetryState::on_failure(const AttemptFailure& failure, TimePoint now,
                                     Random& random, RatioBudget* budget) {
  const C cls = failure.cls;
  if (cls == C::success) return GiveUp{GiveUpReason::not_a_failure};
  ++attempts_;
  ++on_target_;
  const ClassRule& rule = policy_.rule(cls);

  // Fail over if this class may, otherwise give up for `why`. With nowhere left to go,
  // what stopped a retry here (budget, deadline, ...) explains more than "no target".
  const auto fail_over_or = [&](GiveUpReason why) -> RetryDecision {
    if (!rule.fail_over || never_fail_over(cls)) return GiveUp{why};
    if (!failure.can_fail_over)
      return GiveUp{why == GiveUpReason::not_retryable ? GiveUpReason::no_target_left : why};
    on_target_ = 0;
    return FailOver{};
  };

  if (attempts_ >= policy_.max_attempts_per_request)
    return GiveUp{GiveUpReason::attempts_exhausted};
  const Duration remaining = deadline_ - now;
  if (remaining < policy_.min_attempt_time) return GiveUp{GiveUpReason::deadline};

  if (failure.retry_after && *failure.retry_after > rule.max_retry_after)
    return fail_over_or(GiveUpReason::retry_after_too_long);

  GiveUpReason why = GiveUpReason::not_retryable;
  if (rule.retry_same && !never_retry_same(cls)) {
    if (on_target_ >= policy_.max_attempts_per_target) {
      why = GiveUpReason::target_attempts_exhausted;
    } else {
      const Duration delay = failure.retry_after
                                 ? *failure.retry_after
                                 : backoff_delay(rule.backoff, on_target_ - 1, random);
      if (delay + policy_.min_attempt_time > remaining) {
        why = GiveUpReason::deadline;
      } else if (budget == nullptr || budget->try_acquire()) {
        return RetrySame{delay};
      } else {
        ++budget_refusals_;
        why = GiveUpReason::budget_exhausted;
      }
    }
  }
  return fail_over_or(why);
}

RetryDecision RetryState::on_failure(const Error& error, bool can_fail_over, TimePoint now,
                                     Random& random, RatioBudget* budget) {
  std::optional<Duration> retry_after;
  if (error.retry_after) retry_after = *error.retry_after;
  return on_failure(AttemptFailure{classify(error), retry_after, can_fail_over}, now, random,
                    budget);
}

}  // namespace bulwark::resilience
