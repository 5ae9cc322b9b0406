#pragma once
// Budgets that keep extra attempts a small fraction of real traffic, so an outage is
// never multiplied by retries (after gRPC retry throttling, Envoy retry budgets and
// Finagle/Linkerd retry budgets).
//
// Per target, over a sliding window of `window_seconds` (bucketed per second): an extra
// attempt is allowed while
//     extras_in_window + 1 <= max(ratio * requests_in_window, min_per_second * window_seconds)
// The floor only matters at low traffic, where a few retries cannot hurt anyone. At any
// steady rate above the floor, extras over any whole window are at most `ratio` of the
// requests, so attempts per request stay <= 1 + ratio.
//
// Thread safety: all members may be called from any thread (a short internal mutex).
#include <cstdint>
#include <mutex>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "resilience/sliding_window.hpp"

namespace bulwark::resilience {

struct BudgetPolicy {
  /// Extra attempts allowed per request in the window (0.1 = 10%).
  double ratio = 0.1;
  /// Extras always allowed per second of window, whatever the traffic; may be 0.
  double min_per_second = 1.0;
  std::uint32_t window_seconds = 10;

  /// ratio >= 0, min_per_second >= 0, window_seconds >= 1.
  Status validate() const;
};

/// Retries: 10% of requests, at least 1 per second.
BudgetPolicy default_retry_budget() noexcept;
/// Hedged requests: 5% of requests, at least one per 10 seconds.
BudgetPolicy default_hedge_budget() noexcept;

struct BudgetSnapshot {
  std::uint32_t requests = 0;    // in the window
  std::uint32_t extras = 0;      // extra attempts taken in the window
  double allowed = 0.0;          // extras the window allows right now
  std::uint64_t refused_total = 0;  // since construction
};

/// The shared mechanism; use RetryBudget or HedgeBudget.
class RatioBudget {
 public:
  RatioBudget(BudgetPolicy policy, const Clock& clock);
  RatioBudget(const RatioBudget&) = delete;
  RatioBudget& operator=(const RatioBudget&) = delete;

  /// Counts one client request routed to this target (its first attempt here).
  void record_request() noexcept;
  /// Asks for one extra attempt (a retry, a hedge). When allowed it is counted at once,
  /// so the caller must make the attempt or accept that it was spent.
  bool try_acquire() noexcept;
  BudgetSnapshot snapshot() const;
  const BudgetPolicy& policy() const noexcept { return policy_; }

 private:
  struct Counts {
    std::uint32_t requests = 0;
    std::uint32_t extras = 0;
    Counts& operator+=(const Counts& o) noexcept {
      requests += o.requests;
      extras += o.extras;
      return *this;
    }
    Counts& operator-=(const Counts& o) noexcept {
      requests -= o.requests;
      extras -= o.extras;
      return *this;
    }
  };
  double allowed(const Counts& c) const noexcept;

  const BudgetPolicy policy_;
  const Clock& clock_;
  mutable std::mutex mu_;
  mutable SecondRing<Counts> ring_;
  std::uint64_t refused_ = 0;
};

/// Budget for retries on one target.
class RetryBudget final : public RatioBudget {
 public:
  explicit RetryBudget(const Clock& clock, BudgetPolicy policy = default_retry_budget())
      : RatioBudget(policy, clock) {}
};

/// Budget for hedged (speculative) attempts on one target.
class HedgeBudget final : public RatioBudget {
 public:
  explicit HedgeBudget(const Clock& clock, BudgetPolicy policy = default_hedge_budget())
      : RatioBudget(policy, clock) {}
};

}  // namespace bulwark::resilience
