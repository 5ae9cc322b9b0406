#include "router/balancer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace bulwark::router {

double cost_key(const config::Target& t) noexcept {
  if (t.cost_rank) return *t.cost_rank;
  if (t.price) return (3 * t.price->input + t.price->output) / 4;
  return 0;
}

namespace {

// Appends the indices in `pool` to `out` by successive draws without replacement, each
// with probability proportional to w(i); those with w <= 0 follow in pool order.
template <class W>
void weighted_draws(std::vector<std::uint32_t>& pool, const W& w, Random& rng, std::vector<std::uint32_t>& out) {
  std::size_t live = pool.size();
  // Move the zero-weight ones to the back, keeping their order.
  const auto zero_begin = std::stable_partition(pool.begin(), pool.end(), [&](std::uint32_t i) { return w(i) > 0; });
  live = static_cast<std::size_t>(zero_begin - pool.begin());
  double total = 0;
  for (std::size_t k = 0; k < live; ++k) total += w(pool[k]);
  while (live > 0) {
    std::size_t pick = live - 1;
    if (live > 1) {
      double x = rng.uniform() * total;
      for (std::size_t k = 0; k + 1 < live; ++k) {
        x -= w(pool[k]);
        if (x < 0) {
          pick = k;
          break;
        }
      }
    }
    const std::uint32_t chosen = pool[pick];
    out.push_back(chosen);
    total -= w(chosen);
    pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(pick));
    --live;
  }
  out.insert(out.end(), pool.begin(), pool.end());
}

// Splits [0, n) into healthy and unhealthy; unhealthy are appended by the caller.
void split(std::span<const TargetView> t, std::vector<std::uint32_t>& healthy, std::vector<std::uint32_t>& sick) {
  healthy.clear();
  sick.clear();
  for (std::uint32_t i = 0; i < t.size(); ++i) (t[i].healthy ? healthy : sick).push_back(i);
}

void append_unhealthy(std::span<const TargetView> t, std::vector<std::uint32_t>& sick, std::vector<std::uint32_t>& out) {
  std::stable_sort(sick.begin(), sick.end(), [&](std::uint32_t a, std::uint32_t b) { return t[a].weight > t[b].weight; });
  out.insert(out.end(), sick.begin(), sick.end());
}

// A weighted-random permutation of the healthy ones, then stable-sorted by key: equal keys
// stay in weighted-random order.
template <class Key>
void sorted_with_random_ties(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out, const Key& key) {
  std::vector<std::uint32_t> healthy, sick;
  split(t, healthy, sick);
  const std::size_t start = out.size();
  weighted_draws(healthy, [&](std::uint32_t i) { return t[i].weight; }, rng, out);
  std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return key(a) < key(b); });
  append_unhealthy(t, sick, out);
}

}  // namespace

void order_weighted(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> healthy, sick;
  split(t, healthy, sick);
  weighted_draws(healthy, [&](std::uint32_t i) { return t[i].weight; }, rng, out);
  append_unhealthy(t, sick, out);
}

void order_least_in_flight(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  out.clear();
  sorted_with_random_ties(t, rng, out, [&](std::uint32_t i) {
    return t[i].weight > 0 ? t[i].in_flight / t[i].weight : HUGE_VAL;
  });
}

void order_cost(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  out.clear();
  sorted_with_random_ties(t, rng, out, [&](std::uint32_t i) { return t[i].cost; });
}

void order_latency(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> healthy, sick;
  split(t, healthy, sick);
  double fastest = 0;
  for (std::uint32_t i : healthy)
    if (t[i].ewma_ms > 0 && (fastest == 0 || t[i].ewma_ms < fastest)) fastest = t[i].ewma_ms;
  if (fastest == 0) fastest = 1;  // no samples anywhere: in-flight alone decides
  auto load = [&](std::uint32_t i) { return (t[i].ewma_ms > 0 ? t[i].ewma_ms : fastest) * (t[i].in_flight + 1.0); };
  // Draw two distinct candidates by weight (a full weighted permutation, then its first two).
  std::vector<std::uint32_t> drawn;
  drawn.reserve(healthy.size());
  weighted_draws(healthy, [&](std::uint32_t i) { return t[i].weight; }, rng, drawn);
  if (drawn.size() >= 2 && load(drawn[1]) < load(drawn[0])) std::swap(drawn[0], drawn[1]);
  if (drawn.size() > 2)
    std::stable_sort(drawn.begin() + 1, drawn.end(), [&](std::uint32_t a, std::uint32_t b) { return load(a) < load(b); });
  out.insert(out.end(), drawn.begin(), drawn.end());
  append_unhealthy(t, sick, out);
}

void order_headroom(std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> healthy, sick;
  split(t, healthy, sick);
  weighted_draws(healthy, [&](std::uint32_t i) { return t[i].weight * std::clamp(t[i].headroom, 0.0, 1.0); }, rng, out);
  append_unhealthy(t, sick, out);
}

void order_targets(config::Balancing strategy, std::span<const TargetView> t, Random& rng, std::vector<std::uint32_t>& out) {
  switch (strategy) {
    case config::Balancing::weighted: return order_weighted(t, rng, out);
    case config::Balancing::least_in_flight: return order_least_in_flight(t, rng, out);
    case config::Balancing::latency: return order_latency(t, rng, out);
    case config::Balancing::cost: return order_cost(t, rng, out);
    case config::Balancing::headroom: return order_headroom(t, rng, out);
  }
  order_weighted(t, rng, out);
}

// ---- rate-limit headers ----

std::optional<Duration> parse_reset_duration(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  double total_ns = 0;
  bool any = false;
  while (!s.empty()) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p == s.data() || v < 0 || !std::isfinite(v)) return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    double unit = 1e9;  // bare number: seconds (only as the whole value)
    if (s.starts_with("ms")) unit = 1e6, s.remove_prefix(2);
    else if (s.starts_with("us")) unit = 1e3, s.remove_prefix(2);
    else if (s.starts_with("ns")) unit = 1, s.remove_prefix(2);
    else if (s.starts_with("h")) unit = 3600e9, s.remove_prefix(1);
    else if (s.starts_with("m")) unit = 60e9, s.remove_prefix(1);
    else if (s.starts_with("s")) unit = 1e9, s.remove_prefix(1);
    else if (!s.empty() || any) return std::nullopt;
    total_ns += v * unit;
    any = true;
  }
  if (total_ns > 1e18) return std::nullopt;
  return Duration(static_cast<Duration::rep>(total_ns));
}

namespace {
std::optional<std::int64_t> header_int(const HeaderLookup& h, std::string_view name) {
  auto v = h(name);
  if (!v) return std::nullopt;
  std::string_view s = *v;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || p != s.data() + s.size() || n < 0) return std::nullopt;
  return n;
}
}  // namespace

RateLimitReport parse_rate_limit_headers(const HeaderLookup& h) {
  RateLimitReport r;
  if (!h) return r;
  r.remaining_requests = header_int(h, "x-ratelimit-remaining-requests");
  r.limit_requests = header_int(h, "x-ratelimit-limit-requests");
  r.remaining_tokens = header_int(h, "x-ratelimit-remaining-tokens");
  r.limit_tokens = header_int(h, "x-ratelimit-limit-tokens");
  if (auto v = h("x-ratelimit-reset-requests")) r.reset_requests = parse_reset_duration(*v);
  if (auto v = h("x-ratelimit-reset-tokens")) r.reset_tokens = parse_reset_duration(*v);
  if (!r.remaining_requests) r.remaining_requests = header_int(h, "anthropic-ratelimit-requests-remaining");
  if (!r.limit_requests) r.limit_requests = header_int(h, "anthropic-ratelimit-requests-limit");
  if (!r.remaining_tokens) r.remaining_tokens = header_int(h, "anthropic-ratelimit-tokens-remaining");
  if (!r.limit_tokens) r.limit_tokens = header_int(h, "anthropic-ratelimit-tokens-limit");
  return r;
}

// ---- TargetStats ----

void TargetStats::add_sample(double ms) noexcept {
  double old = ewma_ms_.load(std::memory_order_relaxed);
  for (;;) {
    const double next = old == 0 ? ms : old + kEwmaAlpha * (ms - old);
    if (ewma_ms_.compare_exchange_weak(old, next, std::memory_order_relaxed)) return;
  }
}

void TargetStats::record_latency(Duration d) noexcept {
  add_sample(std::max(std::chrono::duration<double, std::milli>(d).count(), 0.001));
}

void TargetStats::record_failure(Duration d) noexcept {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  add_sample(std::max({ms, 2 * ewma_ms(), 0.001}));
}

void TargetStats::record_rate_limits(const RateLimitReport& r, TimePoint now) noexcept {
  if (r.empty()) return;
  const std::int64_t at = now.time_since_epoch().count();
  auto store = [](std::atomic<std::int64_t>& a, const std::optional<std::int64_t>& v) {
    a.store(v ? *v : -1, std::memory_order_relaxed);
  };
  auto peak = [](std::atomic<std::int64_t>& a, const std::optional<std::int64_t>& v) {
    if (v && *v > a.load(std::memory_order_relaxed)) a.store(*v, std::memory_order_relaxed);
  };
  store(remaining_requests_, r.remaining_requests);
  store(limit_requests_, r.limit_requests);
  store(remaining_tokens_, r.remaining_tokens);
  store(limit_tokens_, r.limit_tokens);
  peak(peak_requests_, r.remaining_requests);
  peak(peak_tokens_, r.remaining_tokens);
  requests_reset_at_.store(r.reset_requests ? at + r.reset_requests->count() : 0, std::memory_order_relaxed);
  tokens_reset_at_.store(r.reset_tokens ? at + r.reset_tokens->count() : 0, std::memory_order_relaxed);
  reported_at_.store(at, std::memory_order_relaxed);
}

std::uint32_t TargetStats::in_flight() const noexcept {
  const auto n = in_flight_.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<std::uint32_t>(n) : 0;
}

double TargetStats::headroom(TimePoint now, Duration stale_after, std::uint64_t tokens_needed) const noexcept {
  const std::int64_t at = reported_at_.load(std::memory_order_relaxed);
  if (at == 0) return 1.0;
  const std::int64_t t = now.time_since_epoch().count();
  const double age = static_cast<double>(t - at);
  const double stale = static_cast<double>(stale_after.count());
  if (stale <= 0 || age >= stale) return 1.0;
  const double fresh = age <= 0 ? 1.0 : 1.0 - age / stale;
  auto share = [t](std::int64_t remaining, std::int64_t limit, std::int64_t peak, std::int64_t reset_at) {
    if (remaining < 0) return 1.0;
    if (reset_at != 0 && t >= reset_at) return 1.0;
    const std::int64_t denom = limit > 0 ? limit : peak;
    if (denom <= 0) return remaining > 0 ? 1.0 : 0.0;
    return std::clamp(static_cast<double>(remaining) / static_cast<double>(denom), 0.0, 1.0);
  };
  const std::int64_t rt = remaining_tokens_.load(std::memory_order_relaxed);
  const std::int64_t tokens_reset = tokens_reset_at_.load(std::memory_order_relaxed);
  double f = std::min(share(remaining_requests_.load(std::memory_order_relaxed), limit_requests_.load(std::memory_order_relaxed),
                            peak_requests_.load(std::memory_order_relaxed), requests_reset_at_.load(std::memory_order_relaxed)),
                      share(rt, limit_tokens_.load(std::memory_order_relaxed), peak_tokens_.load(std::memory_order_relaxed),
                            tokens_reset));
  // Not enough tokens left for this request in the current window.
  if (tokens_needed > 0 && rt >= 0 && static_cast<std::uint64_t>(rt) < tokens_needed && !(tokens_reset != 0 && t >= tokens_reset))
    f = 0;
  return fresh * f + (1.0 - fresh);
}

TargetView TargetStats::view(const config::Target& target, bool healthy, TimePoint now, Duration stale_after,
                             std::uint64_t tokens_needed) const noexcept {
  TargetView v;
  v.weight = target.weight;
  v.healthy = healthy;
  v.in_flight = in_flight();
  v.ewma_ms = ewma_ms();
  v.cost = cost_key(target);
  v.headroom = headroom(now, stale_after, tokens_needed);
  return v;
}

}  // namespace bulwark::router
