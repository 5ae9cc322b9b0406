#pragma once
// Time is injected everywhere state changes with it (breakers, backoff, budgets, rate
// limits) so those units are tested deterministically with ManualClock.
#include <atomic>
#include <chrono>

namespace bulwark {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const noexcept = 0;
  // Wall-clock time for records that leave the process (ledger, audit, logs).
  virtual std::chrono::system_clock::time_point wall() const noexcept = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const noexcept override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall() const noexcept override {
    return std::chrono::system_clock::now();
  }
  static SteadyClock& instance() noexcept {
    static SteadyClock clock;
    return clock;
  }
};

// A clock that only moves when told to. Thread-safe so tests may share it across workers.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{} + std::chrono::hours(1)) noexcept
      : now_(start.time_since_epoch().count()) {}
  TimePoint now() const noexcept override {
    return TimePoint{TimePoint::duration{now_.load(std::memory_order_acquire)}};
  }
  std::chrono::system_clock::time_point wall() const noexcept override {
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(now().time_since_epoch())};
  }
  void advance(Duration d) noexcept {
    now_.fetch_add(std::chrono::duration_cast<TimePoint::duration>(d).count(),
                   std::memory_order_acq_rel);
  }

 private:
  std::atomic<TimePoint::duration::rep> now_;
};

}  // namespace bulwark
