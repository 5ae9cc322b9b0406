// Load-balancing strategies (distributions over many seeded draws, with tolerances) and
// the per-target statistics they read.
#include "router/balancer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <thread>

namespace bulwark::router {
namespace {

using Strategy = void (*)(std::span<const TargetView>, Random&, std::vector<std::uint32_t>&);

constexpr int kDraws = 20000;

// How often each target came first.
std::vector<double> first_shares(Strategy s, const std::vector<TargetView>& t, std::uint64_t seed = 7) {
  FastRandom rng(seed);
  std::vector<double> count(t.size(), 0);
  std::vector<std::uint32_t> out;
  for (int i = 0; i < kDraws; ++i) {
    s(t, rng, out);
    EXPECT_EQ(out.size(), t.size());
    count[out[0]] += 1;
  }
  for (double& c : count) c /= kDraws;
  return count;
}

bool is_permutation_of_all(const std::vector<std::uint32_t>& out, std::size_t n) {
  std::vector<bool> seen(n, false);
  for (auto i : out) {
    if (i >= n || seen[i]) return false;
    seen[i] = true;
  }
  return out.size() == n;
}

TargetView v(double weight = 1) {
  TargetView t;
  t.weight = weight;
  return t;
}

TEST(Balancer, WeightedFollowsWeights) {
  const auto s = first_shares(order_weighted, {v(1), v(3), v(6)});
  EXPECT_NEAR(s[0], 0.1, 0.015);
  EXPECT_NEAR(s[1], 0.3, 0.015);
  EXPECT_NEAR(s[2], 0.6, 0.015);
}

TEST(Balancer, WeightedSecondChoiceIsDrawnWithoutReplacement) {
  // With weights 1:1:2, when the heavy one comes first the others are second half each.
  FastRandom rng(3);
  std::vector<std::uint32_t> out;
  std::map<std::uint32_t, int> second_after_heavy;
  int heavy_first = 0;
  for (int i = 0; i < kDraws; ++i) {
    order_weighted(std::vector<TargetView>{v(1), v(1), v(2)}, rng, out);
    ASSERT_TRUE(is_permutation_of_all(out, 3));
    if (out[0] == 2) {
      ++heavy_first;
      ++second_after_heavy[out[1]];
    }
  }
  EXPECT_NEAR(static_cast<double>(second_after_heavy[0]) / heavy_first, 0.5, 0.03);
}

TEST(Balancer, ZeroWeightOnlyWhenNothingElse) {
  const auto s = first_shares(order_weighted, {v(0), v(1)});
  EXPECT_EQ(s[0], 0.0);
  FastRandom rng(1);
  std::vector<std::uint32_t> out;
  order_weighted(std::vector<TargetView>{v(0), v(0)}, rng, out);
  EXPECT_EQ(out, (std::vector<std::uint32_t>{0, 1}));
}

TEST(Balancer, UnhealthyTargetsComeLastInWeightOrder) {
  std::vector<TargetView> t{v(5), v(1), v(2), v(1)};
  t[0].healthy = false;
  t[2].healthy = false;
  for (Strategy s : {order_weighted, order_least_in_flight, order_latency, order_cost, order_headroom}) {
    FastRandom rng(11);
    std::vector<std::uint32_t> out;
    for (int i = 0; i < 200; ++i) {
      s(t, rng, out);
      ASSERT_TRUE(is_permutation_of_all(out, 4));
      EXPECT_TRUE(out[0] == 1 || out[0] == 3);
      EXPECT_EQ(out[2], 0u);
      EXPECT_EQ(out[3], 2u);
    }
  }
}

TEST(Balancer, LeastInFlightPicksTheIdlest) {
  std::vector<TargetView> t{v(), v(), v()};
  t[0].in_flight = 4;
  t[1].in_flight = 1;
  t[2].in_flight = 2;
  FastRandom rng(5);
  std::vector<std::uint32_t> out;
  order_least_in_flight(t, rng, out);
  EXPECT_EQ(out, (std::vector<std::uint32_t>{1, 2, 0}));
}

TEST(Balancer, LeastInFlightBreaksTiesRandomly) {
  std::vector<TargetView> t{v(), v(), v()};
  t[0].in_flight = 2;
  t[1].in_flight = 2;
  t[2].in_flight = 5;
  const auto s = first_shares(order_least_in_flight, t);
  EXPECT_NEAR(s[0], 0.5, 0.02);
  EXPECT_NEAR(s[1], 0.5, 0.02);
  EXPECT_EQ(s[2], 0.0);
}

TEST(Balancer, LeastInFlightScalesByWeight) {
  std::vector<TargetView> t{v(1), v(4)};
  t[0].in_flight = 1;
  t[1].in_flight = 3;  // 3/4 < 1/1
  FastRandom rng(5);
  std::vector<std::uint32_t> out;
  order_least_in_flight(t, rng, out);
  EXPECT_EQ(out[0], 1u);
}

// Concurrent requests, simulated: each step starts a request on the first choice and
// finishes a random in-flight one. Every start goes to a least-loaded target, and over
// time the four equal targets share the starts evenly.
TEST(Balancer, LeastInFlightSpreadsConcurrentLoadEvenly) {
  std::vector<TargetView> t{v(), v(), v(), v()};
  FastRandom rng(9), finish(10);
  std::vector<std::uint32_t> out;
  std::vector<int> started(4, 0);
  for (int step = 0; step < 20000; ++step) {
    order_least_in_flight(t, rng, out);
    std::uint32_t min_in = UINT32_MAX;
    for (const auto& x : t) min_in = std::min(min_in, x.in_flight);
    ASSERT_EQ(t[out[0]].in_flight, min_in);
    ++t[out[0]].in_flight;
    ++started[out[0]];
    if (step % 3 != 2) {  // finish one in-flight request on a random target
      const auto k = static_cast<std::size_t>(finish.uniform() * 4);
      if (t[k].in_flight > 0) --t[k].in_flight;
    }
  }
  for (int s : started) EXPECT_NEAR(s / 20000.0, 0.25, 0.02);
}

TEST(Balancer, LatencyPrefersTheFasterOfTwoChoices) {
  std::vector<TargetView> t{v(), v(), v()};
  t[0].ewma_ms = 100;
  t[1].ewma_ms = 200;
  t[2].ewma_ms = 400;
  // P2C with uniform draws: the fastest wins whenever drawn (2/3), the middle when paired
  // with the slowest (1/3), the slowest never.
  const auto s = first_shares(order_latency, t);
  EXPECT_NEAR(s[0], 2.0 / 3, 0.02);
  EXPECT_NEAR(s[1], 1.0 / 3, 0.02);
  EXPECT_EQ(s[2], 0.0);
}

TEST(Balancer, LatencyAccountsForInFlight) {
  std::vector<TargetView> t{v(), v()};
  t[0].ewma_ms = 100;
  t[0].in_flight = 3;  // 100 * 4 = 400
  t[1].ewma_ms = 150;  // 150 * 1
  const auto s = first_shares(order_latency, t);
  EXPECT_EQ(s[1], 1.0);
}

TEST(Balancer, LatencyTriesTargetsWithoutSamples) {
  std::vector<TargetView> t{v(), v()};
  t[0].ewma_ms = 100;  // t[1] has none: counts as the fastest known, so ties at 100
  const auto s = first_shares(order_latency, t);
  EXPECT_NEAR(s[1], 0.5, 0.02);
}

TEST(Balancer, LatencyRestIsOrderedByLoad) {
  std::vector<TargetView> t{v(), v(), v(), v()};
  t[0].ewma_ms = 40;
  t[1].ewma_ms = 10;
  t[2].ewma_ms = 30;
  t[3].ewma_ms = 20;
  FastRandom rng(2);
  std::vector<std::uint32_t> out;
  for (int i = 0; i < 100; ++i) {
    order_latency(t, rng, out);
    for (std::size_t k = 2; k < out.size(); ++k) EXPECT_LE(t[out[k - 1]].ewma_ms, t[out[k]].ewma_ms);
  }
}

TEST(Balancer, CostCheapestHealthyFirstTiesByWeight) {
  std::vector<TargetView> t{v(1), v(1), v(3), v(1)};
  t[0].cost = 5;
  t[1].cost = 1;
  t[2].cost = 1;
  t[3].cost = 0.5;
  t[3].healthy = false;  // cheapest, but down
  const auto s = first_shares(order_cost, t);
  EXPECT_NEAR(s[1], 0.25, 0.015);
  EXPECT_NEAR(s[2], 0.75, 0.015);
  FastRandom rng(1);
  std::vector<std::uint32_t> out;
  order_cost(t, rng, out);
  EXPECT_EQ(out[2], 0u);
  EXPECT_EQ(out[3], 3u);
}

TEST(Balancer, CostKeyFromRankOrPrice) {
  config::Target a, b, c;
  a.cost_rank = 2;
  b.price = config::TargetPrice{0.15, 0.60};
  EXPECT_DOUBLE_EQ(cost_key(a), 2);
  EXPECT_DOUBLE_EQ(cost_key(b), (3 * 0.15 + 0.60) / 4);
  EXPECT_DOUBLE_EQ(cost_key(c), 0);
}

TEST(Balancer, HeadroomSpreadsByRemainingCapacity) {
  std::vector<TargetView> t{v(), v(), v()};
  t[0].headroom = 0.8;
  t[1].headroom = 0.2;
  t[2].headroom = 0.0;  // exhausted: last
  const auto s = first_shares(order_headroom, t);
  EXPECT_NEAR(s[0], 0.8, 0.015);
  EXPECT_NEAR(s[1], 0.2, 0.015);
  EXPECT_EQ(s[2], 0.0);
}

TEST(Balancer, DispatchByStrategy) {
  std::vector<TargetView> t{v(), v()};
  t[0].cost = 9;
  t[1].cost = 1;
  FastRandom rng(1);
  std::vector<std::uint32_t> out;
  order_targets(config::Balancing::cost, t, rng, out);
  EXPECT_EQ(out[0], 1u);
  for (auto b : {config::Balancing::weighted, config::Balancing::least_in_flight, config::Balancing::latency,
                 config::Balancing::headroom}) {
    order_targets(b, t, rng, out);
    EXPECT_TRUE(is_permutation_of_all(out, 2));
  }
  order_targets(config::Balancing::weighted, std::vector<TargetView>{}, rng, out);
  EXPECT_TRUE(out.empty());
}

// ---- rate-limit headers ----

TEST(RateLimits, ResetDurations) {
  using namespace std::chrono;
  EXPECT_EQ(parse_reset_duration("1s"), seconds(1));
  EXPECT_EQ(parse_reset_duration("6m0s"), minutes(6));
  EXPECT_EQ(parse_reset_duration("59.5s"), milliseconds(59500));
  EXPECT_EQ(parse_reset_duration("20ms"), milliseconds(20));
  EXPECT_EQ(parse_reset_duration("1h2m3s"), hours(1) + minutes(2) + seconds(3));
  EXPECT_EQ(parse_reset_duration("12"), seconds(12));
  EXPECT_EQ(parse_reset_duration(" 3s "), seconds(3));
  EXPECT_FALSE(parse_reset_duration(""));
  EXPECT_FALSE(parse_reset_duration("soon"));
  EXPECT_FALSE(parse_reset_duration("1s2"));
  EXPECT_FALSE(parse_reset_duration("-1s"));
  EXPECT_FALSE(parse_reset_duration("2026-01-01T00:00:00Z"));
}

TEST(RateLimits, ParseHeaders) {
  std::map<std::string, std::string, std::less<>> h{{"x-ratelimit-remaining-requests", "499"},
                                                    {"x-ratelimit-limit-requests", "500"},
                                                    {"x-ratelimit-remaining-tokens", "149000"},
                                                    {"x-ratelimit-limit-tokens", "150000"},
                                                    {"x-ratelimit-reset-requests", "120ms"},
                                                    {"x-ratelimit-reset-tokens", "1m30s"}};
  auto lookup = [&h](std::string_view n) -> std::optional<std::string_view> {
    auto it = h.find(n);
    if (it == h.end()) return std::nullopt;
    return std::string_view(it->second);
  };
  const RateLimitReport r = parse_rate_limit_headers(HeaderLookup(lookup));
  EXPECT_EQ(r.remaining_requests, 499);
  EXPECT_EQ(r.limit_requests, 500);
  EXPECT_EQ(r.remaining_tokens, 149000);
  EXPECT_EQ(r.limit_tokens, 150000);
  EXPECT_EQ(r.reset_requests, std::chrono::milliseconds(120));
  EXPECT_EQ(r.reset_tokens, std::chrono::seconds(90));

  h = {{"anthropic-ratelimit-requests-remaining", "7"}, {"anthropic-ratelimit-tokens-limit", "80000"},
       {"x-ratelimit-remaining-tokens", "junk"}};
  const RateLimitReport a = parse_rate_limit_headers(HeaderLookup(lookup));
  EXPECT_EQ(a.remaining_requests, 7);
  EXPECT_EQ(a.limit_tokens, 80000);
  EXPECT_FALSE(a.remaining_tokens);
  h.clear();
  EXPECT_TRUE(parse_rate_limit_headers(HeaderLookup(lookup)).empty());
  EXPECT_TRUE(parse_rate_limit_headers(HeaderLookup()).empty());
}

// ---- TargetStats ----

TEST(TargetStats, InFlightCounting) {
  TargetStats s;
  {
    TargetStats::InFlight a(s), b(s);
    EXPECT_EQ(s.in_flight(), 2u);
    TargetStats::InFlight moved(std::move(a));
    EXPECT_EQ(s.in_flight(), 2u);
  }
  EXPECT_EQ(s.in_flight(), 0u);
}

TEST(TargetStats, InFlightUnderThreads) {
  TargetStats s;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&s] {
      for (int k = 0; k < 10000; ++k) {
        TargetStats::InFlight g(s);
        s.record_latency(std::chrono::milliseconds(10));
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(s.in_flight(), 0u);
  EXPECT_NEAR(s.ewma_ms(), 10.0, 1e-9);
}

TEST(TargetStats, Ewma) {
  TargetStats s;
  EXPECT_EQ(s.ewma_ms(), 0.0);
  s.record_latency(std::chrono::milliseconds(100));
  EXPECT_DOUBLE_EQ(s.ewma_ms(), 100);  // the first sample is taken as is
  s.record_latency(std::chrono::milliseconds(200));
  EXPECT_DOUBLE_EQ(s.ewma_ms(), 100 + TargetStats::kEwmaAlpha * 100);
  const double before = s.ewma_ms();
  s.record_failure(std::chrono::milliseconds(1));  // counts as 2 x EWMA
  EXPECT_DOUBLE_EQ(s.ewma_ms(), before + TargetStats::kEwmaAlpha * before);
}

TEST(TargetStats, HeadroomFromReportsDecaysWhenStale) {
  using namespace std::chrono;
  TargetStats s;
  const TimePoint t0 = TimePoint{} + hours(1);
  EXPECT_DOUBLE_EQ(s.headroom(t0, seconds(60)), 1.0);  // nothing reported
  RateLimitReport r;
  r.remaining_requests = 100;
  r.limit_requests = 400;
  r.remaining_tokens = 50000;
  r.limit_tokens = 100000;
  s.record_rate_limits(r, t0);
  EXPECT_DOUBLE_EQ(s.headroom(t0, seconds(60)), 0.25);  // min(100/400, 50000/100000)
  EXPECT_NEAR(s.headroom(t0 + seconds(30), seconds(60)), 0.5 * 0.25 + 0.5, 1e-9);
  EXPECT_DOUBLE_EQ(s.headroom(t0 + seconds(60), seconds(60)), 1.0);
  // A request needing more tokens than remain: none.
  EXPECT_DOUBLE_EQ(s.headroom(t0, seconds(60), 60000), 0.0);
}

TEST(TargetStats, HeadroomWindowResetRefills) {
  using namespace std::chrono;
  TargetStats s;
  const TimePoint t0 = TimePoint{} + hours(1);
  RateLimitReport r;
  r.remaining_requests = 0;
  r.limit_requests = 100;
  r.reset_requests = seconds(2);
  s.record_rate_limits(r, t0);
  EXPECT_NEAR(s.headroom(t0 + seconds(1), minutes(10)), 1.0 / 600, 1e-12);
  EXPECT_DOUBLE_EQ(s.headroom(t0 + seconds(3), minutes(10)), 1.0);
}

TEST(TargetStats, HeadroomWithoutLimitUsesThePeakSeen) {
  using namespace std::chrono;
  TargetStats s;
  const TimePoint t0 = TimePoint{} + hours(1);
  RateLimitReport r;
  r.remaining_requests = 1000;
  s.record_rate_limits(r, t0);
  r.remaining_requests = 250;
  s.record_rate_limits(r, t0);
  EXPECT_DOUBLE_EQ(s.headroom(t0, seconds(60)), 0.25);
}

TEST(TargetStats, ViewCombinesEverything) {
  using namespace std::chrono;
  TargetStats s;
  config::Target target;
  target.weight = 3;
  target.cost_rank = 2;
  s.begin();
  s.record_latency(milliseconds(40));
  const TargetView view = s.view(target, false, TimePoint{} + hours(1), seconds(60));
  EXPECT_EQ(view.weight, 3);
  EXPECT_FALSE(view.healthy);
  EXPECT_EQ(view.in_flight, 1u);
  EXPECT_DOUBLE_EQ(view.ewma_ms, 40);
  EXPECT_DOUBLE_EQ(view.cost, 2);
  EXPECT_DOUBLE_EQ(view.headroom, 1);
  s.end();
}

// Headroom end to end: two targets, one reports 10% left; picks follow weight x headroom.
TEST(Balancer, HeadroomFromStatsEndToEnd) {
  using namespace std::chrono;
  std::array<TargetStats, 2> stats;
  config::Target a, b;
  const TimePoint now = TimePoint{} + hours(1);
  RateLimitReport r;
  r.remaining_requests = 10;
  r.limit_requests = 100;
  stats[1].record_rate_limits(r, now);
  std::vector<TargetView> views{stats[0].view(a, true, now, seconds(60)), stats[1].view(b, true, now, seconds(60))};
  const auto s = first_shares(order_headroom, views);
  EXPECT_NEAR(s[0], 1.0 / 1.1, 0.015);
  EXPECT_NEAR(s[1], 0.1 / 1.1, 0.015);
}

}  // namespace
}  // namespace bulwark::router
