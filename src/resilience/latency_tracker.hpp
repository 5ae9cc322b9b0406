#pragma once
// Recent latency of one target: percentiles over a sliding time window and an EWMA.
// The pipeline keeps one tracker per target and metric (e.g. time to first token, for
// the hedging delay; total time, for the admin page); the balancer reads the EWMA.
//
// The window is a ring of per-second histograms with log-scale bins (each bin 10% wider
// than the previous one), so a percentile is reported within ~5% of the true sample
// value. Recording is lock-free (relaxed atomic increments) and safe from any thread;
// only the first sample of a new second takes a short mutex to recycle that second's
// slot. A sample racing with that recycling may be counted in the adjacent second.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "core/clock.hpp"

namespace bulwark::resilience {

struct LatencyPercentiles {
  std::uint64_t count = 0;  // samples in the window; the values are 0 when count is 0
  Duration p50{};
  Duration p95{};
  Duration p99{};
};

class LatencyTracker {
 public:
  /// Samples below the first bin's bound (100 us) are reported as 50 us; the last bin
  /// collects everything above ~4.4 hours.
  static constexpr Duration kMinTracked = std::chrono::microseconds(100);
  static constexpr double kGrowth = 1.1;
  static constexpr std::size_t kBins = 200;

  /// `window_seconds`: how far back percentiles look (>= 1). `ewma_alpha` in (0, 1]:
  /// the weight of each new sample in the EWMA.
  explicit LatencyTracker(const Clock& clock, std::uint32_t window_seconds = 30,
                          double ewma_alpha = 0.1);
  LatencyTracker(const LatencyTracker&) = delete;
  LatencyTracker& operator=(const LatencyTracker&) = delete;

  /// Records one sample (negative durations count as 0).
  void record(Duration d) noexcept;

  /// The q-quantile (0 < q <= 1, nearest rank) of the window; nullopt when empty.
  std::optional<Duration> quantile(double q) const noexcept;
  /// p50/p95/p99 of the window, computed now (a pass over window_seconds * kBins
  /// counters: fine for the admin page).
  LatencyPercentiles percentiles() const noexcept;
  /// Same, recomputed at most once per second and otherwise read from a cache: for the
  /// per-request hot path (hedging delay). The three values may come from different
  /// seconds' computations while one is being refreshed.
  LatencyPercentiles cached_percentiles() const noexcept;
  /// Exponentially weighted moving average of all samples; nullopt before the first.
  std::optional<Duration> ewma() const noexcept;

  /// The bin a duration falls in, and the value reported for a bin (its geometric
  /// middle): exposed for tests.
  static std::size_t bin_of(Duration d) noexcept;
  static Duration bin_value(std::size_t bin) noexcept;

 private:
  struct Slot {
    std::atomic<std::int64_t> second{-1};
    std::array<std::atomic<std::uint32_t>, kBins> bins{};
  };
  Slot& slot_for(std::int64_t second) noexcept;
  // Sums the window ending at `second` into `out`; returns the sample count.
  std::uint64_t collect(std::int64_t second, std::array<std::uint64_t, kBins>& out) const noexcept;
  static Duration rank_value(const std::array<std::uint64_t, kBins>& bins, std::uint64_t count,
                             double q) noexcept;
  LatencyPercentiles compute(std::int64_t second) const noexcept;

  const Clock& clock_;
  const std::uint32_t window_;
  const double alpha_;
  std::unique_ptr<Slot[]> slots_;
  std::mutex rotate_mu_;
  std::atomic<double> ewma_ns_;

  mutable std::atomic<std::int64_t> cache_second_{-1};
  mutable std::atomic<std::uint64_t> cache_count_{0};
  mutable std::atomic<Duration::rep> cache_p50_{0}, cache_p95_{0}, cache_p99_{0};
};

}  // namespace bulwark::resilience
