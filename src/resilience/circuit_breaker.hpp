#pragma once
// A circuit breaker per upstream target, after Resilience4j / Polly / Envoy outlier
// detection: CLOSED counts outcomes in a sliding window and trips to OPEN on a high
// failure rate or slow-call rate; OPEN refuses calls for a time that grows with
// consecutive trips; HALF_OPEN admits a few trial calls (probes) and closes when enough
// succeed, reopening on the first probe failure. An operator may force it open or
// disable it (always allow, still record).
//
// Thread safety: one breaker is shared by all worker threads. acquire() on a CLOSED or
// DISABLED breaker is one atomic load and a clock read, no lock; so is a refusal while
// OPEN before the open time has elapsed. Recording an outcome, the OPEN -> HALF_OPEN
// switch and every HALF_OPEN admission take a short internal mutex. The transition
// listener runs after that mutex is released, on the thread that caused the transition.
#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "resilience/outcome.hpp"
#include "resilience/sliding_window.hpp"

namespace bulwark::resilience {

enum class BreakerState : std::uint8_t {
  closed,
  open,
  half_open,
  forced_open,  // set by an operator: refuses everything until reset()
  disabled,     // set by an operator: allows everything, still records, never trips
};
std::string_view to_string(BreakerState s) noexcept;

enum class TransitionReason : std::uint8_t {
  failure_rate,      // CLOSED -> OPEN
  slow_call_rate,    // CLOSED -> OPEN
  open_elapsed,      // OPEN -> HALF_OPEN
  probe_failed,      // HALF_OPEN -> OPEN
  probes_succeeded,  // HALF_OPEN -> CLOSED
  forced_open,       // operator
  disabled,          // operator
  reset,             // operator: back to CLOSED with a fresh window
};
std::string_view to_string(TransitionReason r) noexcept;

/// Immutable configuration of a breaker. Rates are fractions in [0, 1].
struct CircuitBreakerPolicy {
  WindowKind window_kind = WindowKind::count_based;
  /// Calls (count_based) or seconds (time_based) in the window.
  std::uint32_t window_size = 100;
  /// No trip decision before the window holds this many calls.
  std::uint32_t minimum_calls = 20;
  /// Trip when failures / calls >= this.
  double failure_rate_threshold = 0.5;
  /// Trip when slow calls / calls >= this; a value above 1 turns slow-call tripping off.
  double slow_call_rate_threshold = 1.0;
  /// A call that took longer than this is slow (success or failure alike).
  Duration slow_call_duration = std::chrono::seconds(60);
  /// OPEN lasts open_base * open_multiplier^(trips-1), capped at open_max, then reduced
  /// by up to open_jitter (a fraction) at random so targets do not reopen in lockstep.
  Duration open_base = std::chrono::seconds(5);
  double open_multiplier = 2.0;
  Duration open_max = std::chrono::minutes(5);
  double open_jitter = 0.2;
  /// HALF_OPEN admits at most this many concurrent probes...
  std::uint32_t permitted_probes = 2;
  /// ...and closes once this many probes succeeded (no more are admitted than needed).
  std::uint32_t probes_to_close = 3;
  /// Which outcome classes are failures; other non-success classes are ignored.
  FailurePolicy failures = FailurePolicy::defaults();

  /// Checks ranges: window_size >= 1, 1 <= minimum_calls (<= window_size when
  /// count_based), thresholds in (0, 1] (slow may exceed 1 = off), positive durations,
  /// open_base <= open_max, multiplier >= 1, jitter in [0, 1), probes >= 1.
  Status validate() const;
};

/// Open time for the given number of consecutive trips (>= 1), before jitter.
Duration open_duration_ceiling(const CircuitBreakerPolicy& p, std::uint32_t trips) noexcept;

/// What the listener is told about one state change.
struct Transition {
  std::string_view breaker;  // the breaker's name (valid during the callback only)
  BreakerState from;
  BreakerState to;
  TransitionReason reason;
  WindowStats stats;               // the window at the time of the change
  std::uint32_t consecutive_trips;  // after the change
  Duration open_for{};              // when `to` is OPEN: how long it stays open
  std::uint64_t sequence;           // 1, 2, ...: orders events that race to the listener
  TimePoint at;
};
/// Must not throw; should be quick (hand off to a queue for webhooks).
using TransitionListener = std::function<void(const Transition&)>;

/// Why a call was refused. A refused call never reached the target: the caller must not
/// count it as an attempt (fail over instead).
struct BreakerRejection {
  BreakerState state;  // open, half_open (all probe slots taken) or forced_open
  /// When OPEN: time left until probes are admitted. 0 when HALF_OPEN is full.
  /// nullopt when FORCED_OPEN (until an operator says otherwise).
  std::optional<Duration> retry_in;
};

/// For the admin page.
struct BreakerSnapshot {
  BreakerState state;
  WindowStats stats;
  double failure_rate;
  double slow_rate;
  std::uint32_t calls_in_window;
  Duration until_half_open{};  // 0 unless OPEN with time left
  std::uint32_t consecutive_trips;
  std::uint64_t total_transitions;
  std::uint32_t probes_in_flight;  // trial calls still running, from any HALF_OPEN phase
  std::uint32_t probe_successes;   // in the current HALF_OPEN phase
};

class CircuitBreaker;

/// Permission to make one call. Report the outcome with record(); dropping the permit
/// unrecorded (e.g. the request was cancelled) returns a probe slot without counting
/// anything. A probe holds its slot until it ends, even if the breaker moved on to
/// another phase meanwhile. Move-only; must not outlive its breaker.
class CallPermit {
 public:
  CallPermit() = default;
  CallPermit(CallPermit&& o) noexcept { *this = std::move(o); }
  CallPermit& operator=(CallPermit&& o) noexcept;
  CallPermit(const CallPermit&) = delete;
  CallPermit& operator=(const CallPermit&) = delete;
  ~CallPermit() { release(); }

  /// True until recorded or released.
  bool active() const noexcept { return breaker_ != nullptr; }
  /// A HALF_OPEN trial call.
  bool is_probe() const noexcept { return probe_; }
  TimePoint started() const noexcept { return start_; }

  /// Reports the outcome and how long the call took; ends the permit.
  void record(FailureClass outcome, Duration elapsed) noexcept;
  /// Same, with the elapsed time measured by the breaker's clock since acquire().
  void record(FailureClass outcome) noexcept;
  /// Ends the permit without an outcome (cancellation). Idempotent.
  void release() noexcept;

 private:
  friend class CircuitBreaker;
  CallPermit(CircuitBreaker* b, std::uint64_t epoch, bool probe, TimePoint start) noexcept
      : breaker_(b), epoch_(epoch), probe_(probe), start_(start) {}

  CircuitBreaker* breaker_ = nullptr;
  std::uint64_t epoch_ = 0;
  bool probe_ = false;
  TimePoint start_{};
};

class CircuitBreaker {
 public:
  /// `clock` and `random` must outlive the breaker. `random` is only used under the
  /// breaker's mutex, so give each breaker its own (or a thread-safe one).
  /// The policy should have passed validate(); out-of-range values are clamped.
  CircuitBreaker(std::string name, CircuitBreakerPolicy policy, const Clock& clock,
                 Random& random, TransitionListener listener = {});
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  /// Asks to make one call now. Cheap when CLOSED (see the thread-safety note above).
  std::expected<CallPermit, BreakerRejection> try_acquire() noexcept;

  /// Current state, one atomic load. An OPEN breaker whose time is up still reports
  /// OPEN until the next try_acquire() moves it to HALF_OPEN.
  BreakerState state() const noexcept;
  /// Whether try_acquire() could give a permit now: CLOSED, DISABLED, HALF_OPEN, and an
  /// OPEN breaker whose open time is up (its next try_acquire() is the half-open probe).
  /// Callers that order or skip targets must ask this, not state(): an OPEN target that
  /// is never tried never gets its probe, and never heals. Lock-free; a half-open breaker
  /// whose probe slots are all taken still says yes (try_acquire() then refuses).
  bool admits_now() const noexcept;
  BreakerSnapshot snapshot() const;
  const std::string& name() const noexcept { return name_; }
  const CircuitBreakerPolicy& policy() const noexcept { return policy_; }

  // Operator controls. Each is a no-op when already in the target state (reset() still
  // clears the window). All calls in flight at the change are forgotten.
  void force_open();
  void disable();
  /// Back to CLOSED with an empty window and the trip count at zero.
  void reset();

 private:
  friend class CallPermit;
  void on_record(const CallPermit& p, FailureClass outcome, Duration elapsed) noexcept;
  void on_release(const CallPermit& p) noexcept;
  void end_probe_locked(const CallPermit& p) noexcept;

  // Under mu_. Returns the event to publish once mu_ is released.
  Transition transition_locked(BreakerState to, TransitionReason reason, TimePoint now);
  void trip_locked(TransitionReason reason, TimePoint now, std::optional<Transition>& ev);
  void publish(const std::optional<Transition>& ev) const noexcept;
  bool slow_tripping() const noexcept { return policy_.slow_call_rate_threshold <= 1.0; }

  static constexpr std::uint64_t pack(std::uint64_t epoch, BreakerState s) noexcept {
    return (epoch << 8) | static_cast<std::uint64_t>(s);
  }
  static constexpr BreakerState state_of(std::uint64_t w) noexcept {
    return static_cast<BreakerState>(w & 0xff);
  }
  static constexpr std::uint64_t epoch_of(std::uint64_t w) noexcept { return w >> 8; }

  const std::string name_;
  const CircuitBreakerPolicy policy_;
  const Clock& clock_;
  Random& random_;
  const TransitionListener listener_;

  // State and epoch packed in one word: the lock-free path reads both at once. The epoch
  // grows on every transition so outcomes of calls admitted before it are ignored.
  // Written only under mu_.
  std::atomic<std::uint64_t> word_;
  std::atomic<TimePoint::rep> open_until_{0};

  mutable std::mutex mu_;
  mutable CallWindow window_;
  BreakerState state_ = BreakerState::closed;
  std::uint64_t epoch_ = 0;
  std::uint32_t trips_ = 0;
  std::uint64_t transitions_ = 0;
  std::uint32_t probes_in_flight_ = 0;  // all probe permits not yet ended, any phase
  std::uint32_t phase_probes_ = 0;      // those admitted in the current HALF_OPEN phase
  std::uint32_t probe_successes_ = 0;
};

}  // namespace bulwark::resilience
