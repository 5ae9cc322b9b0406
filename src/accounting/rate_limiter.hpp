#pragma once
// Request and token rate limits (GCRA) and a parallel-requests limiter.
//
// GCRA keeps one number per bucket, the theoretical arrival time (TAT). A request of
// cost c at time t is allowed when TAT' = max(TAT, t) + c*T is at most t + tau, where T is
// the emission interval (window / limit) and tau = limit * T the burst tolerance. The TAT
// is updated with compare-and-swap, so concurrent callers never lose an update: exactly
// `limit` units are admitted at once from a full bucket, whatever the interleaving.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"

namespace bulwark::accounting {

// What the x-ratelimit-* headers need.
struct RateDecision {
  bool allowed = true;
  std::int64_t limit = 0;      // units per window; 0: unlimited
  std::int64_t remaining = 0;  // units that could still be admitted now
  Duration reset{};            // until the bucket is full again
  Duration retry_after{};      // when denied: until this cost would be admitted
};

class Gcra {
 public:
  // `limit` units per `window`, bursting up to `limit` at once. limit must be > 0.
  Gcra(std::int64_t limit, Duration window);

  RateDecision acquire(TimePoint now, std::int64_t cost = 1) noexcept;
  // The state without charging anything.
  RateDecision peek(TimePoint now) const noexcept;
  // Charge (delta > 0) or refund (delta < 0) without a check: corrects an estimate.
  void adjust(std::int64_t delta) noexcept;

  std::int64_t limit() const noexcept { return limit_; }
  Duration window() const noexcept { return window_; }

 private:
  RateDecision describe(TimePoint now, std::int64_t tat, bool allowed, std::int64_t retry_ns) const noexcept;
  std::int64_t limit_;
  Duration window_;
  std::int64_t interval_;   // T, ns per unit
  std::int64_t tolerance_;  // tau, ns
  std::atomic<std::int64_t> tat_;  // ns since the clock's epoch
};

// The limits of one subject (a key or a team). 0: no limit on that dimension.
struct RateSubject {
  std::string_view id;  // unique across kinds, e.g. "key:<id>" or "team:<id>"
  std::int64_t rpm = 0;
  std::int64_t tpm = 0;
};

class RateLimiter {
 public:
  static constexpr std::size_t kMaxSubjects = 4;

  // Per-request outcome. Keep it until the true token count is known, then call
  // settle_tokens so the token buckets are charged the truth rather than the estimate.
  struct Admission {
    bool allowed = false;
    std::string denied_by;  // "<subject id> rpm" or "<subject id> tpm" when denied
    RateDecision requests;  // most restrictive request bucket (for headers)
    RateDecision tokens;    // most restrictive token bucket (for headers)
    Duration retry_after{};
    std::int64_t charged_tokens = 0;
    std::array<std::shared_ptr<Gcra>, kMaxSubjects> token_buckets{};
  };

  explicit RateLimiter(const Clock& clock, Duration window = std::chrono::minutes(1)) noexcept
      : clock_(clock), window_(window) {}

  // Admits only if every subject's request and token buckets admit; on denial nothing
  // stays charged. At most kMaxSubjects subjects.
  Admission admit(std::span<const RateSubject> subjects, std::int64_t estimated_tokens);
  // Charges the difference between the true token count and what admission charged.
  // Idempotent for the same actual count.
  void settle_tokens(Admission& admission, std::int64_t actual_tokens) noexcept;

  struct Buckets {
    std::shared_ptr<Gcra> requests;
    std::shared_ptr<Gcra> tokens;
  };

 private:
  const Buckets* find_buckets(const RateSubject& s) const;
  void make_buckets(const RateSubject& s);

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  const Clock& clock_;
  Duration window_;
  std::shared_mutex mu_;
  std::unordered_map<std::string, Buckets, StringHash, std::equal_to<>> buckets_;
};

// Caps requests in flight per subject. A Slot releases its place when destroyed.
class ParallelLimiter {
 public:
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : counter_(std::move(o.counter_)) {}
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        release();
        counter_ = std::move(o.counter_);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    void release() noexcept {
      if (counter_) {
        counter_->fetch_sub(1, std::memory_order_acq_rel);
        counter_.reset();
      }
    }

   private:
    friend class ParallelLimiter;
    explicit Slot(std::shared_ptr<std::atomic<std::int64_t>> c) noexcept : counter_(std::move(c)) {}
    std::shared_ptr<std::atomic<std::int64_t>> counter_;
  };

  // nullopt when `max` requests are already in flight for subject. max <= 0: unlimited
  // (an empty Slot is returned).
  std::optional<Slot> try_acquire(std::string_view subject, std::int64_t max);
  std::int64_t in_flight(std::string_view subject) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<std::atomic<std::int64_t>>, StringHash, std::equal_to<>>
      counters_;
};

}  // namespace bulwark::accounting
