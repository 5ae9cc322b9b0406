#pragma once
// What to do after a failed attempt: retry on the same target after a delay, fail over
// to the next target (or fallback model) now, or give up. RetryPolicy is immutable and
// built from config; RetryState is a small per-request object.
//
// Decision order in RetryState::on_failure():
//   1. success / request attempts exhausted / not even one more attempt fits the
//      deadline                                                    -> GiveUp
//   2. Retry-After longer than the class's max_retry_after        -> FailOver (or GiveUp)
//   3. class allows retry_same, target attempts left, delay + min_attempt_time fits the
//      deadline, and the target's retry budget grants a retry     -> RetrySame{delay}
//   4. class allows fail_over and another target exists           -> FailOver
//   5.                                                            -> GiveUp
// The pipeline must not ask once response bytes have reached the client: such a request
// cannot be retried anywhere.
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "resilience/backoff.hpp"
#include "resilience/outcome.hpp"
#include "resilience/retry_budget.hpp"

namespace bulwark::resilience {

/// How one failure class is handled.
struct ClassRule {
  /// Retry on the target that just failed.
  bool retry_same = false;
  /// Delay between retries on the same target when the upstream gave no Retry-After.
  BackoffPolicy backoff{};
  /// Longest Retry-After honoured by waiting; a longer one fails over at once.
  Duration max_retry_after = std::chrono::seconds(10);
  /// Move on to the next target / fallback model.
  bool fail_over = false;
};

/// Classes never retried on the same target, whatever the config: the same request on
/// the same target would fail the same way (the caller's mistakes, our rejected
/// credential, a model the target does not serve) or say nothing about it.
bool never_retry_same(FailureClass c) noexcept;
/// Classes that never fail over: the request itself is wrong (or it is not a failure).
bool never_fail_over(FailureClass c) noexcept;

struct RetryPolicy {
  /// Attempts on one target, the first included.
  std::uint32_t max_attempts_per_target = 2;
  /// Attempts for the whole request over all targets, the first included.
  std::uint32_t max_attempts_per_request = 4;
  /// The shortest time an attempt can be expected to take: no attempt starts unless
  /// its delay plus this fits in the time left before the request's deadline.
  Duration min_attempt_time = std::chrono::seconds(1);
  /// One rule per FailureClass, indexed by its value. The `success` slot is unused.
  std::array<ClassRule, kFailureClassCount> rules{};

  /// Sensible defaults for LLM upstreams: transient transport errors, 5xx, 429 and
  /// overload retry on the same target then fail over; timeouts after the response
  /// started to be late (first-token, total) and target misconfiguration (upstream_auth,
  /// upstream_not_found) fail over at once; context_length fails over (a fallback model
  /// may have a larger context); content_filter and the caller's other faults give up.
  static RetryPolicy defaults();

  const ClassRule& rule(FailureClass c) const noexcept {
    return rules[static_cast<std::size_t>(c)];
  }
  ClassRule& rule(FailureClass c) noexcept { return rules[static_cast<std::size_t>(c)]; }

  /// Rejects retry_same on a never_retry_same class, fail_over on a never_fail_over
  /// class, attempt limits below 1, per-target above per-request, negative durations,
  /// base > cap.
  Status validate() const;
};

struct RetrySame {
  Duration delay;
};
struct FailOver {};
enum class GiveUpReason : std::uint8_t {
  not_a_failure,              // asked about a success
  not_retryable,              // the class neither retries nor fails over (caller's 400)
  attempts_exhausted,         // max_attempts_per_request reached
  target_attempts_exhausted,  // max_attempts_per_target reached and no fail over
  deadline,                   // no further attempt (or not the retry's delay) fits
  budget_exhausted,           // the target's retry budget refused, no fail over
  retry_after_too_long,       // the upstream asks to wait too long, no fail over
  no_target_left,             // would fail over at once, but nothing is left
};
// When a class would fail over but can_fail_over is false, the reason that stopped the
// same-target retry is reported (budget_exhausted, deadline, ...), or no_target_left
// when the class does not retry on the same target at all.
std::string_view to_string(GiveUpReason r) noexcept;
struct GiveUp {
  GiveUpReason reason;
};
using RetryDecision = std::variant<RetrySame, FailOver, GiveUp>;

/// What the pipeline knows about the attempt that just failed.
struct AttemptFailure {
  FailureClass cls;
  /// The upstream's requested wait, unclamped (RetryAfter::requested / Error::retry_after).
  std::optional<Duration> retry_after;
  /// Another target or fallback model remains for this request.
  bool can_fail_over = true;
};

/// Per-request retry bookkeeping. Not thread-safe (one request, one owner).
/// The policy must outlive the state.
class RetryState {
 public:
  /// `deadline`: when the whole request must be finished.
  RetryState(const RetryPolicy& policy, TimePoint deadline) noexcept
      : policy_(policy), deadline_(deadline) {}

  /// Decides after a failed attempt, which it counts. `budget` is the failed target's
  /// retry budget (nullptr: unlimited); a retry is taken from it only when RetrySame is
  /// returned. When FailOver is returned the next attempt counts as a new target's
  /// first; when the pipeline switches target for another reason (e.g. the next one's
  /// breaker was open and it moved on again) nothing needs to be told: refused calls
  /// are not attempts.
  RetryDecision on_failure(const AttemptFailure& failure, TimePoint now, Random& random,
                           RatioBudget* budget = nullptr);
  /// Same, from the error of the attempt.
  RetryDecision on_failure(const Error& error, bool can_fail_over, TimePoint now,
                           Random& random, RatioBudget* budget = nullptr);

  /// Counts an attempt made beside the one being decided on (a hedge), against the
  /// request's attempt limit; decides nothing.
  void count_extra_attempt() noexcept { ++attempts_; }

  std::uint32_t attempts() const noexcept { return attempts_; }
  std::uint32_t attempts_on_target() const noexcept { return on_target_; }
  /// Retries on the same target that were refused by the retry budget.
  std::uint32_t budget_refusals() const noexcept { return budget_refusals_; }
  TimePoint deadline() const noexcept { return deadline_; }

 private:
  const RetryPolicy& policy_;
  TimePoint deadline_;
  std::uint32_t attempts_ = 0;
  std::uint32_t on_target_ = 0;
  std::uint32_t budget_refusals_ = 0;
};

}  // namespace bulwark::resilience
