#include "resilience/latency_tracker.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "resilience/sliding_window.hpp"

namespace bulwark::resilience {
namespace {

const double kLogGrowth = std::log(LatencyTracker::kGrowth);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

LatencyTracker::LatencyTracker(const Clock& clock, std::uint32_t window_seconds, double ewma_alpha)
    : clock_(clock),
      window_(std::max<std::uint32_t>(window_seconds, 1)),
      alpha_(std::clamp(ewma_alpha, 1e-6, 1.0)),
      slots_(std::make_unique<Slot[]>(window_)),
      ewma_ns_(kNaN) {}

std::size_t LatencyTracker::bin_of(Duration d) noexcept {
  if (d < kMinTracked) return 0;
  const double ratio = static_cast<double>(d.count()) / static_cast<double>(kMinTracked.count());
  const double k = std::floor(std::log(ratio) / kLogGrowth);
  return std::min(kBins - 1, static_cast<std::size_t>(k) + 1);
}

Duration LatencyTracker::bin_value(std::size_t bin) noexcept {
  if (bin == 0) return kMinTracked / 2;
  // Bin i >= 1 spans [min * g^(i-1), min * g^i); report its geometric middle.
  const double v = static_cast<double>(kMinTracked.count()) *
                   std::pow(kGrowth, static_cast<double>(bin) - 0.5);
  return Duration{static_cast<Duration::rep>(v)};
}

LatencyTracker::Slot& LatencyTracker::slot_for(std::int64_t second) noexcept {
  const auto w = static_cast<std::int64_t>(window_);
  Slot& slot = slots_[static_cast<std::size_t>(((second % w) + w) % w)];
  if (slot.second.load(std::memory_order_acquire) < second) {
    std::lock_guard lock(rotate_mu_);
    // Another thread may have recycled it while we waited.
    if (slot.second.load(std::memory_order_relaxed) < second) {
      for (auto& b : slot.bins) b.store(0, std::memory_order_relaxed);
      slot.second.store(second, std::memory_order_release);
    }
  }
  return slot;
}

void LatencyTracker::record(Duration d) noexcept {
  d = std::max(d, Duration::zero());
  const std::int64_t s = second_of(clock_.now());
  slot_for(s).bins[bin_of(d)].fetch_add(1, std::memory_order_relaxed);

  const double x = static_cast<double>(d.count());
  double old = ewma_ns_.load(std::memory_order_relaxed);
  double next;
  do {
    next = std::isnan(old) ? x : old + alpha_ * (x - old);
  } while (!ewma_ns_.compare_exchange_weak(old, next, std::memory_order_relaxed));
}

std::uint64_t LatencyTracker::collect(std::int64_t second,
                                      std::array<std::uint64_t, kBins>& out) const noexcept {
  out.fill(0);
  std::uint64_t count = 0;
  for (std::uint32_t i = 0; i < window_; ++i) {
    const Slot& slot = slots_[i];
    const std::int64_t tag = slot.second.load(std::memory_order_acquire);
    if (tag < 0 || tag <= second - static_cast<std::int64_t>(window_) || tag > second) continue;
    for (std::size_t b = 0; b < kBins; ++b) {
      const auto n = slot.bins[b].load(std::memory_order_relaxed);
      out[b] += n;
      count += n;
    }
  }
  return count;
}

Duration LatencyTracker::rank_value(const std::array<std::uint64_t, kBins>& bins,
                                    std::uint64_t count, double q) noexcept {
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest sample with at least q * count samples at or below it.
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBins; ++b) {
    seen += bins[b];
    if (seen >= rank) return bin_value(b);
  }
  return bin_value(kBins - 1);
}

std::optional<Duration> LatencyTracker::quantile(double q) const noexcept {
  std::array<std::uint64_t, kBins> bins;
  const auto count = collect(second_of(clock_.now()), bins);
  if (count == 0) return std::nullopt;
  return rank_value(bins, count, q);
}

LatencyPercentiles LatencyTracker::compute(std::int64_t second) const noexcept {
  std::array<std::uint64_t, kBins> bins;
  const auto count = collect(second, bins);
  if (count == 0) return {};
  return LatencyPercentiles{count, rank_value(bins, count, 0.50), rank_value(bins, count, 0.95),
                            rank_value(bins, count, 0.99)};
}

LatencyPercentiles LatencyTracker::percentiles() const noexcept {
  return compute(second_of(clock_.now()));
}

LatencyPercentiles LatencyTracker::cached_percentiles() const noexcept {
  const std::int64_t s = second_of(clock_.now());
  std::int64_t cached = cache_second_.load(std::memory_order_acquire);
  // One thread per second wins the refresh; the others keep reading the cache.
  if (cached < s && cache_second_.compare_exchange_strong(cached, s, std::memory_order_acq_rel)) {
    const LatencyPercentiles p = compute(s);
    cache_count_.store(p.count, std::memory_order_relaxed);
    cache_p50_.store(p.p50.count(), std::memory_order_relaxed);
    cache_p95_.store(p.p95.count(), std::memory_order_relaxed);
    cache_p99_.store(p.p99.count(), std::memory_order_release);
    return p;
  }
  return LatencyPercentiles{cache_count_.load(std::memory_order_acquire),
                            Duration{cache_p50_.load(std::memory_order_relaxed)},
                            Duration{cache_p95_.load(std::memory_order_relaxed)},
                            Duration{cache_p99_.load(std::memory_order_relaxed)}};
}

std::optional<Duration> LatencyTracker::ewma() const noexcept {
  const double v = ewma_ns_.load(std::memory_order_relaxed);
  if (std::isnan(v)) return std::nullopt;
  return Duration{static_cast<Duration::rep>(v)};
}

}  // namespace bulwark::resilience
