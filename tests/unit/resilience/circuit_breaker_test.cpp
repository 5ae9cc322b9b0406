#include "resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;
using C = FailureClass;
using S = BreakerState;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  static CircuitBreakerPolicy base_policy() {
    CircuitBreakerPolicy p;
    p.window_kind = WindowKind::count_based;
    p.window_size = 10;
    p.minimum_calls = 5;
    p.failure_rate_threshold = 0.5;
    p.slow_call_rate_threshold = 2.0;  // off unless a test turns it on
    p.slow_call_duration = 1s;
    p.open_base = 10s;
    p.open_multiplier = 2.0;
    p.open_max = 80s;
    p.open_jitter = 0.0;
    p.permitted_probes = 2;
    p.probes_to_close = 2;
    return p;
  }

  CircuitBreaker& make(CircuitBreakerPolicy p = base_policy()) {
    EXPECT_TRUE(p.validate().has_value());
    breaker_ = std::make_unique<CircuitBreaker>(
        "target-a", p, clock_, random_, [this](const Transition& t) {
          std::lock_guard lock(events_mu_);
          events_.push_back(t);
        });
    return *breaker_;
  }

  void call(CircuitBreaker& b, C outcome, Duration took = 10ms) {
    auto permit = b.try_acquire();
    ASSERT_TRUE(permit.has_value()) << to_string(b.state());
    permit->record(outcome, took);
  }

  void trip(CircuitBreaker& b) {
    for (int i = 0; i < 5 && b.state() == S::closed; ++i) call(b, C::http_5xx);
    ASSERT_EQ(b.state(), S::open);
  }

  const Transition& last_event() {
    EXPECT_FALSE(events_.empty());
    return events_.back();
  }

  ManualClock clock_;
  FastRandom random_{42};
  std::mutex events_mu_;
  std::vector<Transition> events_;
  std::unique_ptr<CircuitBreaker> breaker_;
};

TEST_F(CircuitBreakerTest, StartsClosedAndAllows) {
  auto& b = make();
  EXPECT_EQ(b.state(), S::closed);
  auto p = b.try_acquire();
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->is_probe());
  EXPECT_TRUE(p->active());
  p->record(C::success, 5ms);
  EXPECT_FALSE(p->active());
  EXPECT_EQ(b.snapshot().calls_in_window, 1U);
}

TEST_F(CircuitBreakerTest, MinimumCallsGuardsTheTrip) {
  auto& b = make();
  for (int i = 0; i < 4; ++i) call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::closed) << "100% failures but only 4 of 5 minimum calls";
  call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::open);
  const auto& e = last_event();
  EXPECT_EQ(e.from, S::closed);
  EXPECT_EQ(e.to, S::open);
  EXPECT_EQ(e.reason, TransitionReason::failure_rate);
  EXPECT_EQ(e.stats, (WindowStats{5, 5, 0}));
  EXPECT_EQ(e.breaker, "target-a");
  EXPECT_EQ(e.consecutive_trips, 1U);
  EXPECT_EQ(e.open_for, 10s);
}

TEST_F(CircuitBreakerTest, TripsAtTheThresholdNotBelow) {
  auto& b = make();
  call(b, C::http_5xx);
  call(b, C::http_5xx);
  for (int i = 0; i < 3; ++i) call(b, C::success);
  EXPECT_EQ(b.state(), S::closed) << "2/5 = 40% < 50%";
  call(b, C::connect_timeout);
  EXPECT_EQ(b.state(), S::open) << "3/6 = 50% >= 50%";
}

TEST_F(CircuitBreakerTest, ClassesOutsideTheFailurePolicyAreIgnored) {
  auto& b = make();
  for (int i = 0; i < 20; ++i) call(b, C::client_fault);
  for (int i = 0; i < 20; ++i) call(b, C::context_length);
  EXPECT_EQ(b.state(), S::closed);
  EXPECT_EQ(b.snapshot().calls_in_window, 0U);
  // A policy may count more: here content filter refusals count against the target.
  auto p = base_policy();
  p.failures.add(C::content_filter);
  auto& b2 = make(p);
  for (int i = 0; i < 5; ++i) call(b2, C::content_filter);
  EXPECT_EQ(b2.state(), S::open);
}

TEST_F(CircuitBreakerTest, OpenRefusesWithTimeLeftUntilHalfOpen) {
  auto& b = make();
  trip(b);
  auto r = b.try_acquire();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().state, S::open);
  EXPECT_EQ(r.error().retry_in, std::optional<Duration>(10s));
  clock_.advance(4s);
  r = b.try_acquire();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().retry_in, std::optional<Duration>(6s));
  const auto snap = b.snapshot();
  EXPECT_EQ(snap.state, S::open);
  EXPECT_EQ(snap.until_half_open, 6s);
  EXPECT_EQ(snap.consecutive_trips, 1U);
  EXPECT_EQ(snap.total_transitions, 1U);
  EXPECT_DOUBLE_EQ(snap.failure_rate, 1.0);
}

TEST_F(CircuitBreakerTest, AdmitsNowOnceTheOpenTimeIsUpSoTheProbeCanBeSent) {
  auto& b = make();
  EXPECT_TRUE(b.admits_now());
  trip(b);
  EXPECT_FALSE(b.admits_now());
  clock_.advance(9s);
  EXPECT_FALSE(b.admits_now());
  clock_.advance(1s);
  // Still OPEN until someone asks for the probe: admits_now() must say yes, or a target
  // that is ordered behind healthy ones is never probed.
  EXPECT_EQ(b.state(), S::open);
  EXPECT_TRUE(b.admits_now());
  auto probe = b.try_acquire();
  ASSERT_TRUE(probe.has_value());
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_TRUE(b.admits_now());
  b.force_open();
  EXPECT_FALSE(b.admits_now());
  b.disable();
  EXPECT_TRUE(b.admits_now());
}

TEST_F(CircuitBreakerTest, HalfOpenAdmitsLimitedProbesThenCloses) {
  auto& b = make();
  trip(b);
  clock_.advance(10s);
  auto p1 = b.try_acquire();
  ASSERT_TRUE(p1.has_value());
  EXPECT_TRUE(p1->is_probe());
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_EQ(last_event().reason, TransitionReason::open_elapsed);
  auto p2 = b.try_acquire();
  ASSERT_TRUE(p2.has_value());
  auto p3 = b.try_acquire();
  ASSERT_FALSE(p3.has_value());
  EXPECT_EQ(p3.error().state, S::half_open);
  EXPECT_EQ(p3.error().retry_in, std::optional<Duration>(Duration::zero()));
  EXPECT_EQ(b.snapshot().probes_in_flight, 2U);

  p1->record(C::success, 10ms);
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_EQ(b.snapshot().probe_successes, 1U);
  p2->record(C::success, 10ms);
  EXPECT_EQ(b.state(), S::closed);
  EXPECT_EQ(last_event().reason, TransitionReason::probes_succeeded);
  const auto snap = b.snapshot();
  EXPECT_EQ(snap.calls_in_window, 0U) << "closing starts a fresh window";
  EXPECT_EQ(snap.consecutive_trips, 0U);
  EXPECT_EQ(snap.total_transitions, 3U);
}

TEST_F(CircuitBreakerTest, ProbeFailureReopensForLongerAndGrowthIsCapped) {
  auto& b = make();
  trip(b);
  const std::vector<Duration> expected{20s, 40s, 80s, 80s};
  Duration open_for = 10s;
  for (const auto next : expected) {
    clock_.advance(open_for);
    auto probe = b.try_acquire();
    ASSERT_TRUE(probe.has_value());
    probe->record(C::http_5xx, 10ms);
    ASSERT_EQ(b.state(), S::open);
    EXPECT_EQ(last_event().reason, TransitionReason::probe_failed);
    EXPECT_EQ(last_event().open_for, next);
    EXPECT_EQ(b.snapshot().until_half_open, next);
    open_for = next;
  }
  EXPECT_EQ(b.snapshot().consecutive_trips, 5U);
  // Closing resets the growth: the next trip opens for the base time again.
  clock_.advance(open_for);
  for (int i = 0; i < 2; ++i) {
    auto probe = b.try_acquire();
    ASSERT_TRUE(probe.has_value());
    probe->record(C::success, 10ms);
  }
  ASSERT_EQ(b.state(), S::closed);
  trip(b);
  EXPECT_EQ(last_event().open_for, 10s);
  EXPECT_EQ(last_event().consecutive_trips, 1U);
}

TEST_F(CircuitBreakerTest, OpenTimeCeilingFollowsTheFormula) {
  auto p = base_policy();
  EXPECT_EQ(open_duration_ceiling(p, 1), 10s);
  EXPECT_EQ(open_duration_ceiling(p, 2), 20s);
  EXPECT_EQ(open_duration_ceiling(p, 3), 40s);
  EXPECT_EQ(open_duration_ceiling(p, 4), 80s);
  EXPECT_EQ(open_duration_ceiling(p, 5), 80s);
  EXPECT_EQ(open_duration_ceiling(p, 100000), 80s) << "no overflow for many trips";
  p.open_multiplier = 1.5;
  EXPECT_EQ(open_duration_ceiling(p, 2), 15s);
}

TEST_F(CircuitBreakerTest, JitterStaysWithinBoundsAndNeverExceedsTheCap) {
  auto p = base_policy();
  p.open_jitter = 0.5;
  auto& b = make(p);
  trip(b);
  std::vector<Duration> seen;
  for (int i = 0; i < 200; ++i) {
    const auto& e = last_event();
    const Duration ceiling = open_duration_ceiling(p, e.consecutive_trips);
    EXPECT_LE(e.open_for, ceiling);
    EXPECT_LE(e.open_for, p.open_max);
    EXPECT_GT(e.open_for, ceiling / 2);
    seen.push_back(e.open_for);
    clock_.advance(e.open_for);
    auto probe = b.try_acquire();
    ASSERT_TRUE(probe.has_value());
    probe->record(C::http_5xx, 10ms);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 100) << "jitter varies";
}

TEST_F(CircuitBreakerTest, CancelledProbeReturnsItsSlot) {
  auto p = base_policy();
  p.permitted_probes = 2;
  p.probes_to_close = 3;
  auto& b = make(p);
  trip(b);
  clock_.advance(10s);
  auto p1 = b.try_acquire();
  auto p2 = b.try_acquire();
  ASSERT_TRUE(p1 && p2);
  EXPECT_FALSE(b.try_acquire().has_value());
  { auto gone = std::move(*p1); }  // destroyed unrecorded: a cancelled request
  EXPECT_FALSE(p1->active());
  EXPECT_EQ(b.snapshot().probes_in_flight, 1U);
  auto p3 = b.try_acquire();
  ASSERT_TRUE(p3.has_value());
  p3->release();
  p3->release();  // idempotent
  EXPECT_EQ(b.snapshot().probes_in_flight, 1U);
  EXPECT_EQ(b.state(), S::half_open) << "cancellation is neither success nor failure";
}

TEST_F(CircuitBreakerTest, AProbeFromAnEarlierPhaseKeepsItsSlot) {
  auto& b = make();  // 2 probes at once
  trip(b);
  clock_.advance(10s);
  auto slow_probe = b.try_acquire();
  auto failing = b.try_acquire();
  ASSERT_TRUE(slow_probe && failing);
  failing->record(C::http_5xx, 10ms);
  ASSERT_EQ(b.state(), S::open);
  clock_.advance(20s);
  auto next = b.try_acquire();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_FALSE(b.try_acquire().has_value()) << "the earlier probe is still running";
  EXPECT_EQ(b.snapshot().probes_in_flight, 2U);
  slow_probe->record(C::http_5xx, 10ms);  // stale: frees the slot, says nothing
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_TRUE(b.try_acquire().has_value());
}

TEST_F(CircuitBreakerTest, NoMoreProbesThanNeededToClose) {
  auto p = base_policy();
  p.permitted_probes = 3;
  p.probes_to_close = 2;
  auto& b = make(p);
  trip(b);
  clock_.advance(10s);
  auto p1 = b.try_acquire();
  ASSERT_TRUE(p1.has_value());
  p1->record(C::success, 10ms);
  auto p2 = b.try_acquire();
  ASSERT_TRUE(p2.has_value());
  EXPECT_FALSE(b.try_acquire().has_value()) << "1 success + 1 in flight already may close it";
  p2->record(C::success, 10ms);
  EXPECT_EQ(b.state(), S::closed);
}

TEST_F(CircuitBreakerTest, IgnoredOutcomeOfAProbeOnlyFreesTheSlot) {
  auto& b = make();
  trip(b);
  clock_.advance(10s);
  auto p1 = b.try_acquire();
  ASSERT_TRUE(p1.has_value());
  p1->record(C::client_fault, 10ms);
  const auto snap = b.snapshot();
  EXPECT_EQ(snap.state, S::half_open);
  EXPECT_EQ(snap.probes_in_flight, 0U);
  EXPECT_EQ(snap.probe_successes, 0U);
}

TEST_F(CircuitBreakerTest, SlowCallsTripWhenEnabled) {
  auto p = base_policy();
  p.slow_call_rate_threshold = 0.6;
  auto& b = make(p);
  for (int i = 0; i < 2; ++i) call(b, C::success, 500ms);
  for (int i = 0; i < 2; ++i) call(b, C::success, 2s);
  call(b, C::success, 1s);  // exactly the threshold is not slow
  EXPECT_EQ(b.state(), S::closed) << "2/5 slow";
  call(b, C::http_5xx, 3s);  // slow failures are slow too: 3/6 slow, 1/6 failed
  EXPECT_EQ(b.state(), S::closed);
  call(b, C::success, 2s);  // 4/7 = 57%
  EXPECT_EQ(b.state(), S::closed);
  call(b, C::success, 2s);  // 5/8 = 62.5%
  EXPECT_EQ(b.state(), S::open);
  EXPECT_EQ(last_event().reason, TransitionReason::slow_call_rate);
  EXPECT_EQ(last_event().stats, (WindowStats{8, 1, 5}));
}

TEST_F(CircuitBreakerTest, SlowCallsAreHarmlessWhenSlowTrippingIsOff) {
  auto& b = make();  // slow threshold 2.0 = off
  for (int i = 0; i < 20; ++i) call(b, C::success, 10s);
  EXPECT_EQ(b.state(), S::closed);
  EXPECT_EQ(b.snapshot().stats.slow, 10U) << "still counted for the admin page";
}

TEST_F(CircuitBreakerTest, SlowProbeReopensWhenSlowTrippingIsOn) {
  auto p = base_policy();
  p.slow_call_rate_threshold = 0.5;
  auto& b = make(p);
  trip(b);
  clock_.advance(10s);
  auto probe = b.try_acquire();
  ASSERT_TRUE(probe.has_value());
  probe->record(C::success, 5s);
  EXPECT_EQ(b.state(), S::open);
  EXPECT_EQ(last_event().reason, TransitionReason::probe_failed);
}

TEST_F(CircuitBreakerTest, CountWindowForgetsOldCalls) {
  auto& b = make();  // last 10 calls, 5 minimum, 50%
  for (int i = 0; i < 6; ++i) call(b, C::success);
  for (int i = 0; i < 4; ++i) call(b, C::http_5xx);
  EXPECT_EQ(b.snapshot().stats, (WindowStats{10, 4, 0}));
  for (int i = 0; i < 10; ++i) call(b, C::success);  // push the failures out
  EXPECT_EQ(b.snapshot().stats, (WindowStats{10, 0, 0}));
  for (int i = 0; i < 4; ++i) call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::closed) << "4/10 counted, the older 4 failures are gone";
  call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::open) << "5/10";
}

TEST_F(CircuitBreakerTest, TimeWindowForgetsOldCalls) {
  auto p = base_policy();
  p.window_kind = WindowKind::time_based;
  p.window_size = 10;  // seconds
  auto& b = make(p);
  for (int i = 0; i < 4; ++i) call(b, C::http_5xx);
  clock_.advance(10s);
  EXPECT_EQ(b.snapshot().calls_in_window, 0U);
  for (int i = 0; i < 4; ++i) call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::closed) << "only 4 calls in the last 10 s";
  clock_.advance(9s);
  call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::open) << "5 failures within 10 s";
  EXPECT_EQ(last_event().stats.calls, 5U);
}

TEST_F(CircuitBreakerTest, ForcedOpenRefusesUntilReset) {
  auto& b = make();
  auto inflight = b.try_acquire();
  ASSERT_TRUE(inflight.has_value());
  b.force_open();
  EXPECT_EQ(b.state(), S::forced_open);
  EXPECT_EQ(last_event().reason, TransitionReason::forced_open);
  clock_.advance(std::chrono::hours(24));
  auto r = b.try_acquire();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().state, S::forced_open);
  EXPECT_EQ(r.error().retry_in, std::nullopt);
  inflight->record(C::success, 1ms);  // from before: ignored
  EXPECT_EQ(b.state(), S::forced_open);
  b.force_open();  // already there: no event
  EXPECT_EQ(events_.size(), 1U);
  b.reset();
  EXPECT_EQ(b.state(), S::closed);
  EXPECT_EQ(last_event().from, S::forced_open);
  EXPECT_EQ(last_event().reason, TransitionReason::reset);
  EXPECT_TRUE(b.try_acquire().has_value());
}

TEST_F(CircuitBreakerTest, DisabledAllowsEverythingAndStillRecords) {
  auto& b = make();
  b.disable();
  EXPECT_EQ(last_event().to, S::disabled);
  for (int i = 0; i < 30; ++i) call(b, C::http_5xx);
  EXPECT_EQ(b.state(), S::disabled);
  const auto snap = b.snapshot();
  EXPECT_EQ(snap.stats, (WindowStats{10, 10, 0}));
  EXPECT_DOUBLE_EQ(snap.failure_rate, 1.0);
  b.reset();
  EXPECT_EQ(b.state(), S::closed);
  EXPECT_EQ(b.snapshot().calls_in_window, 0U);
}

TEST_F(CircuitBreakerTest, OperatorCanDisableAnOpenBreaker) {
  auto& b = make();
  trip(b);
  b.disable();
  EXPECT_EQ(last_event().from, S::open);
  EXPECT_TRUE(b.try_acquire().has_value());
}

TEST_F(CircuitBreakerTest, ResultsOfCallsAdmittedBeforeATransitionAreIgnored) {
  auto& b = make();
  auto early = b.try_acquire();
  ASSERT_TRUE(early.has_value());
  trip(b);
  clock_.advance(10s);
  auto probe = b.try_acquire();
  ASSERT_TRUE(probe.has_value());
  early->record(C::http_5xx, 10ms);  // admitted while CLOSED: must not fail the probe phase
  EXPECT_EQ(b.state(), S::half_open);
  EXPECT_EQ(b.snapshot().probes_in_flight, 1U);
}

TEST_F(CircuitBreakerTest, RecordWithoutDurationUsesTheClock) {
  auto p = base_policy();
  p.slow_call_rate_threshold = 1.0;
  p.minimum_calls = 1;
  auto& b = make(p);
  auto permit = b.try_acquire();
  ASSERT_TRUE(permit.has_value());
  clock_.advance(2s);
  permit->record(C::success);
  EXPECT_EQ(b.state(), S::open);
  EXPECT_EQ(last_event().reason, TransitionReason::slow_call_rate);
}

TEST_F(CircuitBreakerTest, ListenerRunsOutsideTheLockInOrder) {
  std::vector<S> seen_in_callback;
  CircuitBreaker* self = nullptr;
  CircuitBreaker b("t", base_policy(), clock_, random_, [&](const Transition& t) {
    // snapshot() takes the breaker's mutex: this would deadlock if called under it.
    seen_in_callback.push_back(self->snapshot().state);
    EXPECT_EQ(t.sequence, seen_in_callback.size());
  });
  self = &b;
  for (int i = 0; i < 5; ++i) call(b, C::http_5xx);
  clock_.advance(10s);
  auto probe = b.try_acquire();
  ASSERT_TRUE(probe.has_value());
  probe->record(C::http_5xx, 1ms);
  EXPECT_EQ(seen_in_callback, (std::vector<S>{S::open, S::half_open, S::open}));
}

TEST_F(CircuitBreakerTest, StateNamesAreStable) {
  EXPECT_EQ(to_string(S::half_open), "half_open");
  EXPECT_EQ(to_string(S::forced_open), "forced_open");
  EXPECT_EQ(to_string(TransitionReason::slow_call_rate), "slow_call_rate");
}

TEST_F(CircuitBreakerTest, PolicyValidation) {
  EXPECT_TRUE(CircuitBreakerPolicy{}.validate().has_value());
  auto p = base_policy();
  p.minimum_calls = 11;
  EXPECT_FALSE(p.validate().has_value()) << "can never be reached in a 10-call window";
  p.window_kind = WindowKind::time_based;
  EXPECT_TRUE(p.validate().has_value());
  p = base_policy();
  p.failure_rate_threshold = 0.0;
  EXPECT_FALSE(p.validate().has_value());
  p = base_policy();
  p.open_max = 1s;
  EXPECT_FALSE(p.validate().has_value());
  p = base_policy();
  p.open_jitter = 1.0;
  EXPECT_FALSE(p.validate().has_value());
  p = base_policy();
  p.permitted_probes = 0;
  EXPECT_FALSE(p.validate().has_value());
}

// Many threads acquire and record against one breaker, moving the clock on when refused.
// The invariant checked: never more than permitted_probes probes in flight at once, and
// no probe slot is leaked when permits are recorded, released or dropped.
TEST_F(CircuitBreakerTest, ProbeLimitHoldsUnderConcurrency) {
  auto p = base_policy();
  p.window_size = 20;
  p.minimum_calls = 10;
  p.open_base = 1s;
  p.open_max = 1s;
  p.permitted_probes = 3;
  p.probes_to_close = 5;
  auto& b = make(p);

  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  std::atomic<int> active_probes{0};
  std::atomic<int> max_active{0};
  std::atomic<int> violations{0};
  std::atomic<long> probes_granted{0};

  std::latch start(kThreads);
  auto worker = [&](int id) {
    FastRandom rnd(1000 + static_cast<std::uint64_t>(id));
    start.arrive_and_wait();  // all threads compete from the first iteration
    for (int i = 0; i < kIterations; ++i) {
      auto permit = b.try_acquire();
      if (!permit) {
        if (permit.error().state == S::open) clock_.advance(250ms);
        continue;
      }
      if (permit->is_probe()) {
        probes_granted.fetch_add(1, std::memory_order_relaxed);
        const int now_active = active_probes.fetch_add(1) + 1;
        if (now_active > 3) violations.fetch_add(1);
        int seen = max_active.load();
        while (now_active > seen && !max_active.compare_exchange_weak(seen, now_active)) {
        }
        std::this_thread::yield();  // widen the window in which others compete
        active_probes.fetch_sub(1);
      }
      const double u = rnd.uniform();
      if (u < 0.1) {
        permit->release();
      } else if (u < 0.15) {
        // dropped without a word: the destructor releases it
      } else {
        permit->record(u < 0.55 ? C::http_5xx : C::success, 10ms);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();

  EXPECT_EQ(violations.load(), 0);
  EXPECT_LE(max_active.load(), 3);
  EXPECT_GT(probes_granted.load(), 0) << "the test must reach HALF_OPEN";
  const auto snap = b.snapshot();
  EXPECT_EQ(snap.probes_in_flight, 0U) << "every permit ended: no slot may stay taken";
  EXPECT_GT(snap.total_transitions, 3U);
  RecordProperty("probes_granted", std::to_string(probes_granted.load()));
  RecordProperty("transitions", std::to_string(snap.total_transitions));
  RecordProperty("max_active_probes", std::to_string(max_active.load()));
  // Events are numbered without gaps even when they race to the listener.
  std::lock_guard lock(events_mu_);
  std::vector<std::uint64_t> seqs;
  for (const auto& e : events_) seqs.push_back(e.sequence);
  std::sort(seqs.begin(), seqs.end());
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
}

}  // namespace
}  // namespace bulwark::resilience
