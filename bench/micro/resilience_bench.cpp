// Micro-benchmarks of the resilience hot paths. Registrations only: the bench target's
// main comes from benchmark::benchmark_main.
#include <benchmark/benchmark.h>

#include <optional>
#include <string_view>

#include "core/clock.hpp"
#include "core/random.hpp"
#include "resilience/backoff.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/latency_tracker.hpp"
#include "resilience/retry_after.hpp"
#include "resilience/retry_budget.hpp"

namespace {

using namespace bulwark;
using namespace bulwark::resilience;
using namespace std::chrono_literals;

// The per-attempt cost on a healthy target: lock-free admission, a short lock to record.
void BM_BreakerAcquireRecordClosed(benchmark::State& state) {
  static CircuitBreaker* breaker = nullptr;
  static FastRandom random(1);
  if (state.thread_index() == 0) {
    CircuitBreakerPolicy p;
    p.window_kind = state.range(0) ? WindowKind::time_based : WindowKind::count_based;
    breaker = new CircuitBreaker("bench", p, SteadyClock::instance(), random);
  }
  for (auto _ : state) {
    auto permit = breaker->try_acquire();
    benchmark::DoNotOptimize(permit);
    permit->record(FailureClass::success, 100ms);
  }
  if (state.thread_index() == 0) {
    delete breaker;
    breaker = nullptr;
  }
}
BENCHMARK(BM_BreakerAcquireRecordClosed)->Arg(0)->Arg(1)->ThreadRange(1, 4)->UseRealTime();

void BM_BreakerRejectOpen(benchmark::State& state) {
  FastRandom random(1);
  CircuitBreakerPolicy p;
  p.minimum_calls = 1;
  p.open_base = std::chrono::hours(1);
  p.open_max = std::chrono::hours(1);
  CircuitBreaker breaker("bench", p, SteadyClock::instance(), random);
  breaker.try_acquire()->record(FailureClass::http_5xx, 1ms);
  for (auto _ : state) benchmark::DoNotOptimize(breaker.try_acquire());
}
BENCHMARK(BM_BreakerRejectOpen);

void BM_BackoffDelay(benchmark::State& state) {
  FastRandom random(1);
  const BackoffPolicy p{};
  std::uint32_t n = 0;
  for (auto _ : state) benchmark::DoNotOptimize(backoff_delay(p, n++ & 7, random));
}
BENCHMARK(BM_BackoffDelay);

std::optional<std::string_view> find(std::string_view name, std::string_view want,
                                     std::string_view value) {
  if (name == want) return value;
  return std::nullopt;
}

void BM_RetryAfterParse(benchmark::State& state) {
  const auto now = std::chrono::system_clock::now();
  HeaderLookup seconds = [](std::string_view n) { return find(n, "retry-after", "12"); };
  HeaderLookup date = [](std::string_view n) {
    return find(n, "retry-after", "Wed, 21 Oct 2015 07:28:00 GMT");
  };
  HeaderLookup openai = [](std::string_view n) {
    return find(n, "x-ratelimit-reset-tokens", "1h2m3.5s");
  };
  const HeaderLookup* lookups[] = {&seconds, &date, &openai};
  const HeaderLookup& h = *lookups[state.range(0)];
  for (auto _ : state) benchmark::DoNotOptimize(parse_retry_after(h, 429, now, 60s));
}
BENCHMARK(BM_RetryAfterParse)->Arg(0)->Arg(1)->Arg(2);

void BM_RetryBudgetAcquire(benchmark::State& state) {
  RetryBudget budget(SteadyClock::instance());
  for (auto _ : state) {
    budget.record_request();
    benchmark::DoNotOptimize(budget.try_acquire());
  }
}
BENCHMARK(BM_RetryBudgetAcquire);

void BM_LatencyRecord(benchmark::State& state) {
  static LatencyTracker* tracker = nullptr;
  if (state.thread_index() == 0) tracker = new LatencyTracker(SteadyClock::instance());
  Duration d = 1ms;
  for (auto _ : state) {
    tracker->record(d);
    d += 1us;
  }
  if (state.thread_index() == 0) {
    delete tracker;
    tracker = nullptr;
  }
}
BENCHMARK(BM_LatencyRecord)->ThreadRange(1, 4)->UseRealTime();

void BM_LatencyCachedPercentiles(benchmark::State& state) {
  LatencyTracker tracker(SteadyClock::instance());
  for (int i = 0; i < 10000; ++i) tracker.record(std::chrono::microseconds(100 * i));
  for (auto _ : state) benchmark::DoNotOptimize(tracker.cached_percentiles());
}
BENCHMARK(BM_LatencyCachedPercentiles);

}  // namespace
