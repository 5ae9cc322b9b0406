#include "resilience/circuit_breaker.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace bulwark::resilience {
namespace {

Error config_error(std::string msg) {
  return Error::gateway(ErrorKind::internal, "circuit breaker policy: " + std::move(msg));
}

// Keeps a breaker sane even when handed an unvalidated policy.
CircuitBreakerPolicy sanitized(CircuitBreakerPolicy p) {
  p.window_size = std::max<std::uint32_t>(p.window_size, 1);
  p.minimum_calls = std::max<std::uint32_t>(p.minimum_calls, 1);
  if (p.window_kind == WindowKind::count_based)
    p.minimum_calls = std::min(p.minimum_calls, p.window_size);
  p.permitted_probes = std::max<std::uint32_t>(p.permitted_probes, 1);
  p.probes_to_close = std::max<std::uint32_t>(p.probes_to_close, 1);
  p.open_multiplier = std::max(p.open_multiplier, 1.0);
  p.open_jitter = std::clamp(p.open_jitter, 0.0, 0.99);
  p.open_base = std::max(p.open_base, Duration{1});
  p.open_max = std::max(p.open_max, p.open_base);
  return p;
}

}  // namespace

std::string_view to_string(BreakerState s) noexcept {
  switch (s) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "half_open";
    case BreakerState::forced_open: return "forced_open";
    case BreakerState::disabled: return "disabled";
  }
  return "unknown";
}

std::string_view to_string(TransitionReason r) noexcept {
  switch (r) {
    case TransitionReason::failure_rate: return "failure_rate";
    case TransitionReason::slow_call_rate: return "slow_call_rate";
    case TransitionReason::open_elapsed: return "open_elapsed";
    case TransitionReason::probe_failed: return "probe_failed";
    case TransitionReason::probes_succeeded: return "probes_succeeded";
    case TransitionReason::forced_open: return "forced_open";
    case TransitionReason::disabled: return "disabled";
    case TransitionReason::reset: return "reset";
  }
  return "unknown";
}

Status CircuitBreakerPolicy::validate() const {
  if (window_size < 1) return std::unexpected(config_error("window_size must be >= 1"));
  if (minimum_calls < 1) return std::unexpected(config_error("minimum_calls must be >= 1"));
  if (window_kind == WindowKind::count_based && minimum_calls > window_size)
    return std::unexpected(config_error("minimum_calls exceeds a count-based window_size"));
  if (!(failure_rate_threshold > 0.0 && failure_rate_threshold <= 1.0))
    return std::unexpected(config_error("failure_rate_threshold must be in (0, 1]"));
  if (!(slow_call_rate_threshold > 0.0))
    return std::unexpected(config_error("slow_call_rate_threshold must be > 0"));
  if (slow_call_duration <= Duration::zero())
    return std::unexpected(config_error("slow_call_duration must be positive"));
  if (open_base <= Duration::zero() || open_max < open_base)
    return std::unexpected(config_error("need 0 < open_base <= open_max"));
  if (!(open_multiplier >= 1.0))
    return std::unexpected(config_error("open_multiplier must be >= 1"));
  if (!(open_jitter >= 0.0 && open_jitter < 1.0))
    return std::unexpected(config_error("open_jitter must be in [0, 1)"));
  if (permitted_probes < 1 || probes_to_close < 1)
    return std::unexpected(config_error("permitted_probes and probes_to_close must be >= 1"));
  return {};
}

Duration open_duration_ceiling(const CircuitBreakerPolicy& p, std::uint32_t trips) noexcept {
  const double base = static_cast<double>(p.open_base.count());
  const double cap = static_cast<double>(p.open_max.count());
  const double exp = static_cast<double>(std::max<std::uint32_t>(trips, 1) - 1);
  // pow may overflow to inf for many trips; min() with the cap handles that.
  const double d = std::min(cap, base * std::pow(p.open_multiplier, exp));
  return Duration{static_cast<Duration::rep>(d)};
}

// ---------------------------------------------------------------------------------------
// CallPermit

CallPermit& CallPermit::operator=(CallPermit&& o) noexcept {
  if (this != &o) {
    release();
    breaker_ = std::exchange(o.breaker_, nullptr);
    epoch_ = o.epoch_;
    probe_ = o.probe_;
    start_ = o.start_;
  }
  return *this;
}

void CallPermit::record(FailureClass outcome, Duration elapsed) noexcept {
  if (!breaker_) return;
  CircuitBreaker* b = std::exchange(breaker_, nullptr);
  b->on_record(*this, outcome, elapsed);
}

void CallPermit::record(FailureClass outcome) noexcept {
  if (!breaker_) return;
  record(outcome, breaker_->clock_.now() - start_);
}

void CallPermit::release() noexcept {
  if (!breaker_) return;
  CircuitBreaker* b = std::exchange(breaker_, nullptr);
  // Only probes hold a slot; an ordinary permit ends without touching the breaker.
  if (probe_) b->on_release(*this);
}

// ---------------------------------------------------------------------------------------
// CircuitBreaker

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerPolicy policy, const Clock& clock,
                               Random& random, TransitionListener listener)
    : name_(std::move(name)),
      policy_(sanitized(std::move(policy))),
      clock_(clock),
      random_(random),
      listener_(std::move(listener)),
      word_(pack(0, BreakerState::closed)),
      window_(policy_.window_kind, policy_.window_size) {}

BreakerState CircuitBreaker::state() const noexcept {
  return state_of(word_.load(std::memory_order_acquire));
}

bool CircuitBreaker::admits_now() const noexcept {
  switch (state()) {
    case BreakerState::closed:
    case BreakerState::disabled:
    case BreakerState::half_open:
      return true;
    case BreakerState::forced_open:
      return false;
    case BreakerState::open:
      return clock_.now() >= TimePoint{TimePoint::duration{open_until_.load(std::memory_order_acquire)}};
  }
  return false;
}

std::expected<CallPermit, BreakerRejection> CircuitBreaker::try_acquire() noexcept {
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  const BreakerState fast = state_of(w);
  if (fast == BreakerState::closed || fast == BreakerState::disabled)
    return CallPermit(this, epoch_of(w), false, clock_.now());
  if (fast == BreakerState::forced_open)
    return std::unexpected(BreakerRejection{BreakerState::forced_open, std::nullopt});
  const TimePoint now = clock_.now();
  if (fast == BreakerState::open) {
    const TimePoint until{TimePoint::duration{open_until_.load(std::memory_order_acquire)}};
    if (now < until) return std::unexpected(BreakerRejection{BreakerState::open, until - now});
  }

  std::optional<Transition> ev;
  std::expected<CallPermit, BreakerRejection> result =
      std::unexpected(BreakerRejection{BreakerState::half_open, Duration::zero()});
  {
    std::lock_guard lock(mu_);
    // Re-read under the lock: another thread may have moved the state meanwhile.
    switch (state_) {
      case BreakerState::closed:
      case BreakerState::disabled:
        result = CallPermit(this, epoch_, false, now);
        break;
      case BreakerState::forced_open:
        result = std::unexpected(BreakerRejection{BreakerState::forced_open, std::nullopt});
        break;
      case BreakerState::open: {
        const TimePoint until{TimePoint::duration{open_until_.load(std::memory_order_relaxed)}};
        if (now < until) {
          result = std::unexpected(BreakerRejection{BreakerState::open, until - now});
          break;
        }
        ev = transition_locked(BreakerState::half_open, TransitionReason::open_elapsed, now);
        [[fallthrough]];
      }
      case BreakerState::half_open:
        // Probes of an earlier HALF_OPEN phase still in flight keep their slots: the
        // target never sees more than permitted_probes trial calls at once.
        if (probes_in_flight_ < policy_.permitted_probes &&
            phase_probes_ + probe_successes_ < policy_.probes_to_close) {
          ++probes_in_flight_;
          ++phase_probes_;
          result = CallPermit(this, epoch_, true, now);
        }
        break;
    }
  }
  publish(ev);
  return result;
}

void CircuitBreaker::on_record(const CallPermit& p, FailureClass outcome,
                               Duration elapsed) noexcept {
  std::optional<Transition> ev;
  {
    std::lock_guard lock(mu_);
    end_probe_locked(p);
    // Admitted under an earlier state: its outcome says nothing about the current one.
    if (p.epoch_ != epoch_) return;
    const TimePoint now = clock_.now();
    const bool failure = policy_.failures.counts(outcome);
    const bool success = outcome == FailureClass::success;
    const bool slow = elapsed > policy_.slow_call_duration;

    if (state_ == BreakerState::half_open) {
      if (failure || (success && slow && slow_tripping())) {
        trip_locked(TransitionReason::probe_failed, now, ev);
      } else if (success && ++probe_successes_ >= policy_.probes_to_close) {
        ev = transition_locked(BreakerState::closed, TransitionReason::probes_succeeded, now);
      }
      // Any other class is neither proof of health nor of failure: the slot is just freed.
    } else if (state_ == BreakerState::closed || state_ == BreakerState::disabled) {
      if (!failure && !success) return;
      window_.record(now, failure, slow);
      if (state_ == BreakerState::closed) {
        const WindowStats s = window_.stats(now);
        if (s.calls >= policy_.minimum_calls) {
          if (s.failure_rate() >= policy_.failure_rate_threshold)
            trip_locked(TransitionReason::failure_rate, now, ev);
          else if (slow_tripping() && s.slow_rate() >= policy_.slow_call_rate_threshold)
            trip_locked(TransitionReason::slow_call_rate, now, ev);
        }
      }
    }
  }
  publish(ev);
}

void CircuitBreaker::on_release(const CallPermit& p) noexcept {
  std::lock_guard lock(mu_);
  end_probe_locked(p);
}

void CircuitBreaker::end_probe_locked(const CallPermit& p) noexcept {
  if (!p.probe_) return;
  if (probes_in_flight_ > 0) --probes_in_flight_;
  if (p.epoch_ == epoch_ && phase_probes_ > 0) --phase_probes_;
}

void CircuitBreaker::trip_locked(TransitionReason reason, TimePoint now,
                                 std::optional<Transition>& ev) {
  ++trips_;
  const Duration ceiling = open_duration_ceiling(policy_, trips_);
  // Subtractive jitter keeps the result within (ceiling * (1 - jitter), ceiling]: never
  // above the cap.
  const double cut = policy_.open_jitter * random_.uniform();
  const Duration open_for{
      static_cast<Duration::rep>(static_cast<double>(ceiling.count()) * (1.0 - cut))};
  open_until_.store((now + open_for).time_since_epoch().count(), std::memory_order_release);
  ev = transition_locked(BreakerState::open, reason, now);
  ev->open_for = open_for;
}

Transition CircuitBreaker::transition_locked(BreakerState to, TransitionReason reason,
                                             TimePoint now) {
  const BreakerState from = state_;
  const WindowStats stats = window_.stats(now);
  // A new phase: probes still in flight stay counted in probes_in_flight_ until they end.
  phase_probes_ = 0;
  probe_successes_ = 0;
  if (to == BreakerState::closed) {
    // A fresh start: a new window, and the next trip opens for the base time again.
    window_.clear();
    trips_ = 0;
  }
  if (to == BreakerState::disabled) window_.clear();
  state_ = to;
  ++epoch_;
  ++transitions_;
  word_.store(pack(epoch_, to), std::memory_order_release);
  return Transition{name_, from, to, reason, stats, trips_, Duration::zero(), transitions_, now};
}

void CircuitBreaker::publish(const std::optional<Transition>& ev) const noexcept {
  if (ev && listener_) listener_(*ev);
}

BreakerSnapshot CircuitBreaker::snapshot() const {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.now();
  const WindowStats s = window_.stats(now);
  Duration until{};
  if (state_ == BreakerState::open) {
    const TimePoint t{TimePoint::duration{open_until_.load(std::memory_order_relaxed)}};
    if (t > now) until = t - now;
  }
  return BreakerSnapshot{state_,         s,      s.failure_rate(),  s.slow_rate(),
                         s.calls,        until,  trips_,            transitions_,
                         probes_in_flight_, probe_successes_};
}

void CircuitBreaker::force_open() {
  std::optional<Transition> ev;
  {
    std::lock_guard lock(mu_);
    if (state_ != BreakerState::forced_open)
      ev = transition_locked(BreakerState::forced_open, TransitionReason::forced_open,
                             clock_.now());
  }
  publish(ev);
}

void CircuitBreaker::disable() {
  std::optional<Transition> ev;
  {
    std::lock_guard lock(mu_);
    if (state_ != BreakerState::disabled)
      ev = transition_locked(BreakerState::disabled, TransitionReason::disabled, clock_.now());
  }
  publish(ev);
}

void CircuitBreaker::reset() {
  std::optional<Transition> ev;
  {
    std::lock_guard lock(mu_);
    if (state_ != BreakerState::closed) {
      ev = transition_locked(BreakerState::closed, TransitionReason::reset, clock_.now());
    } else {
      window_.clear();
      trips_ = 0;
    }
  }
  publish(ev);
}

}  // namespace bulwark::resilience
