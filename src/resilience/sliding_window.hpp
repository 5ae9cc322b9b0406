#pragma once
// Sliding windows shared by the circuit breaker and the budgets. Not thread-safe: the
// owner serialises access (each owner holds a short mutex around these).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "core/clock.hpp"

namespace bulwark::resilience {

/// Whole seconds since the clock's epoch: the key of a per-second bucket.
inline std::int64_t second_of(TimePoint t) noexcept {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

/// A ring of per-second buckets covering the last `seconds` seconds (the current one
/// included) with a running total, so adding and reading are O(1) amortised.
/// Counts needs a default constructor (empty), += and -=.
template <class Counts>
class SecondRing {
 public:
  explicit SecondRing(std::uint32_t seconds) : buckets_(std::max<std::uint32_t>(seconds, 1)) {}

  /// Makes `second` the newest second of the window, dropping buckets that fall out.
  /// A second older than the newest one is treated as the newest (clocks read on
  /// different threads may be a hair apart; never move the window backwards).
  void advance(std::int64_t second) noexcept {
    if (!started_) {
      head_ = second;
      started_ = true;
      return;
    }
    if (second <= head_) return;
    const auto n = static_cast<std::int64_t>(buckets_.size());
    if (second - head_ >= n) {
      std::fill(buckets_.begin(), buckets_.end(), Counts{});
      total_ = Counts{};
    } else {
      for (std::int64_t s = head_ + 1; s <= second; ++s) {
        auto& b = buckets_[index(s)];
        total_ -= b;
        b = Counts{};
      }
    }
    head_ = second;
  }

  void add(std::int64_t second, const Counts& c) noexcept {
    advance(second);
    buckets_[index(head_)] += c;
    total_ += c;
  }

  /// Sum over the window ending at `second`.
  const Counts& total(std::int64_t second) noexcept {
    advance(second);
    return total_;
  }

  void clear() noexcept {
    std::fill(buckets_.begin(), buckets_.end(), Counts{});
    total_ = Counts{};
    started_ = false;
  }

  std::uint32_t seconds() const noexcept { return static_cast<std::uint32_t>(buckets_.size()); }

 private:
  std::size_t index(std::int64_t s) const noexcept {
    const auto n = static_cast<std::int64_t>(buckets_.size());
    return static_cast<std::size_t>(((s % n) + n) % n);
  }

  std::vector<Counts> buckets_;
  Counts total_{};
  std::int64_t head_ = 0;
  bool started_ = false;
};

/// Calls, failures and slow calls in a window.
struct WindowStats {
  std::uint32_t calls = 0;
  std::uint32_t failures = 0;
  std::uint32_t slow = 0;

  /// Fractions in [0, 1]; 0 for an empty window.
  double failure_rate() const noexcept { return calls ? double(failures) / double(calls) : 0.0; }
  double slow_rate() const noexcept { return calls ? double(slow) / double(calls) : 0.0; }

  WindowStats& operator+=(const WindowStats& o) noexcept {
    calls += o.calls;
    failures += o.failures;
    slow += o.slow;
    return *this;
  }
  WindowStats& operator-=(const WindowStats& o) noexcept {
    calls -= o.calls;
    failures -= o.failures;
    slow -= o.slow;
    return *this;
  }
  friend bool operator==(const WindowStats&, const WindowStats&) = default;
};

enum class WindowKind : std::uint8_t {
  count_based,  // the last N recorded calls
  time_based,   // the calls of the last N seconds, bucketed per second
};

/// The breaker's window of call outcomes, count- or time-based.
class CallWindow {
 public:
  /// `size` is a number of calls (count_based) or of seconds (time_based); at least 1.
  CallWindow(WindowKind kind, std::uint32_t size);

  void record(TimePoint now, bool failure, bool slow) noexcept;
  WindowStats stats(TimePoint now) noexcept;
  void clear() noexcept;
  WindowKind kind() const noexcept { return kind_; }

 private:
  static constexpr std::uint8_t kFailure = 1;
  static constexpr std::uint8_t kSlow = 2;

  WindowKind kind_;
  // count_based: one flag byte per call in a ring.
  std::vector<std::uint8_t> calls_;
  std::size_t next_ = 0;
  WindowStats count_total_{};
  // time_based
  SecondRing<WindowStats> seconds_;
};

}  // namespace bulwark::resilience
