#pragma once
// Per-target health state that outlives any one configuration: each upstream target
// ("provider/model") has one circuit breaker, one retry budget and one latency tracker
// for the whole process, shared by every worker and kept across reloads.
//
// A Runtime asks the registry for each target it references (at build time, never on the
// request path) and keeps a shared_ptr to that target's `TargetHealth`. A reload whose
// settings for a target are unchanged gets the same object back, with its state. A
// changed breaker or budget setting replaces that part with a fresh one (the breaker
// starts CLOSED); requests still running on the old Runtime finish on the old one. The
// latency tracker and the counters are kept whatever changes.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "accounting/overhead.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/latency_tracker.hpp"
#include "resilience/retry_budget.hpp"
#include "resilience/retry_policy.hpp"

namespace bulwark::telemetry {
class Registry;
class EventNotifier;
}

namespace bulwark::pipeline {

// Counters kept per target (process-wide, relaxed atomics), exported by the collector.
struct TargetCounters {
  std::atomic<std::uint64_t> retries{0};             // same-target retries started
  std::atomic<std::uint64_t> failovers{0};           // moved on to another target after a failure here
  std::atomic<std::uint64_t> breaker_rejections{0};  // skipped because the breaker refused
  // Hedging, counted on the primary target (the one whose first token was late).
  std::atomic<std::uint64_t> hedges{0};          // hedge attempts started
  std::atomic<std::uint64_t> hedge_wins{0};      // ... that answered first
  std::atomic<std::uint64_t> hedges_refused{0};  // wanted, refused by the hedge budget
  // Estimated provider cost of attempts cancelled because the other one won (nano-USD),
  // counted on the cancelled attempt's target: gateway overhead, never billed to callers.
  std::atomic<std::uint64_t> hedge_cancelled_nano_usd{0};
  std::array<std::atomic<std::uint64_t>, 5> transitions_to{};  // by the BreakerState entered
};

// Gateway overhead, process-wide by reason: what providers charge for attempts that did
// not become the caller's answer (accounting/overhead.hpp), counted when booked.
struct OverheadCounters {
  std::array<std::atomic<std::uint64_t>, accounting::kOverheadReasons> attempts{};
  std::array<std::atomic<std::uint64_t>, accounting::kOverheadReasons> nano_usd{};
};
OverheadCounters& overhead_counters();

// One target's health. The breaker and budget are immutable objects (their policies are
// const); the registry swaps in new ones when a reload changes their settings.
struct TargetHealth {
  std::string id;
  std::shared_ptr<resilience::CircuitBreaker> breaker;
  std::shared_ptr<resilience::RetryBudget> budget;
  std::shared_ptr<resilience::LatencyTracker> latency;  // successful attempts' durations
  // Successful attempts' time to first token (streams) or to the answer (unary): the
  // adaptive hedging delay reads its percentile.
  std::shared_ptr<resilience::LatencyTracker> first_token;
  std::shared_ptr<resilience::HedgeBudget> hedge_budget;  // hedges started from this target
  std::shared_ptr<TargetCounters> counters;
};

// Converts config settings to the library's policies. Errors name the failure class and
// the place in the file.
Result<resilience::CircuitBreakerPolicy> breaker_policy(const config::BreakerSettings& s, std::string_view source);
resilience::BudgetPolicy budget_policy(const config::RetrySettings& s);
resilience::RetryPolicy retry_policy(const config::RetrySettings& s);
resilience::BudgetPolicy hedge_budget_policy(const config::HedgeSettings& s);

class HealthRegistry {
 public:
  // The process-wide registry (its breakers publish transitions to the process-wide
  // event notifier).
  static HealthRegistry& instance();

  // `events`: where breaker transitions are published as "breaker.transition" events
  // (none: only logged); must outlive the registry.
  explicit HealthRegistry(const Clock& clock = SteadyClock::instance(), telemetry::EventNotifier* events = nullptr);
  HealthRegistry(const HealthRegistry&) = delete;
  HealthRegistry& operator=(const HealthRegistry&) = delete;

  // The health of target `id`, created on first use; the breaker and budget follow the
  // given settings (replaced when they differ from the last ones seen for this target).
  std::shared_ptr<const TargetHealth> get(const std::string& id, const resilience::CircuitBreakerPolicy& breaker,
                                          const config::BreakerSettings& breaker_settings,
                                          const config::RetrySettings& retry_settings,
                                          const config::HedgeSettings& hedge_settings = {});

  // The current health of every target, by id.
  std::vector<std::shared_ptr<const TargetHealth>> all() const;

  // Appends the Prometheus text of the resilience metrics (breaker state gauge, breaker
  // transitions, retries, failovers, breaker rejections).
  void render_metrics(std::string& out) const;

  telemetry::EventNotifier* events() const noexcept { return events_; }

 private:
  struct Entry {
    config::BreakerSettings breaker_settings;
    config::RetrySettings retry_settings;
    config::HedgeSettings hedge_settings;
    std::shared_ptr<const TargetHealth> current;
  };
  const Clock& clock_;
  telemetry::EventNotifier* events_ = nullptr;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::uint64_t seed_ = 0x6b72656b;
};

// Registers the resilience metrics of the process-wide registry, and the event notifier's
// (bulwark_events_*), with `registry`.
void install_health_metrics(telemetry::Registry& registry);

}  // namespace bulwark::pipeline
