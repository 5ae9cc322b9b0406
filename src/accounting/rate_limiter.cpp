#include "accounting/rate_limiter.hpp"

#include <algorithm>
#include <limits>
#include <mutex>

namespace bulwark::accounting {
namespace {

// 128-bit intermediates keep products of token counts and prices exact.
__extension__ typedef __int128 i128;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max() / 4;

// Saturating a*b for the TAT arithmetic: a huge token correction must not wrap around.
std::int64_t mul_sat(std::int64_t a, std::int64_t b) noexcept {
  const i128 r = static_cast<i128>(a) * b;
  if (r > kMax) return kMax;
  if (r < -kMax) return -kMax;
  return static_cast<std::int64_t>(r);
}

std::int64_t add_sat(std::int64_t a, std::int64_t b) noexcept {
  const i128 r = static_cast<i128>(a) + b;
  if (r > kMax) return kMax;
  if (r < -kMax) return -kMax;
  return static_cast<std::int64_t>(r);
}

}  // namespace

Gcra::Gcra(std::int64_t limit, Duration window)
    : limit_(std::max<std::int64_t>(limit, 1)),
      window_(window),
      interval_(std::max<std::int64_t>(window.count() / limit_, 1)),
      tolerance_(interval_ * limit_),
      tat_(std::numeric_limits<std::int64_t>::min() / 2) {}

RateDecision Gcra::describe(TimePoint now, std::int64_t tat, bool allowed,
                            std::int64_t retry_ns) const noexcept {
  const std::int64_t t = now.time_since_epoch().count();
  const std::int64_t base = std::max(tat, t);
  RateDecision d;
  d.allowed = allowed;
  d.limit = limit_;
  d.remaining = std::clamp<std::int64_t>((t + tolerance_ - base) / interval_, 0, limit_);
  d.reset = Duration(base - t);
  d.retry_after = Duration(retry_ns);
  return d;
}

RateDecision Gcra::acquire(TimePoint now, std::int64_t cost) noexcept {
  const std::int64_t t = now.time_since_epoch().count();
  cost = std::max<std::int64_t>(cost, 0);
  std::int64_t tat = tat_.load(std::memory_order_acquire);
  for (;;) {
    const std::int64_t base = std::max(tat, t);
    const std::int64_t new_tat = add_sat(base, mul_sat(cost, interval_));
    const std::int64_t allow_at = new_tat - tolerance_;
    if (t < allow_at) {
      // A cost above the whole burst can never pass; say so with the longest wait.
      const std::int64_t retry = cost > limit_ ? window_.count() : allow_at - t;
      return describe(now, tat, false, retry);
    }
    if (tat_.compare_exchange_weak(tat, new_tat, std::memory_order_acq_rel, std::memory_order_acquire)) {
      return describe(now, new_tat, true, 0);
    }
  }
}

RateDecision Gcra::peek(TimePoint now) const noexcept {
  const std::int64_t tat = tat_.load(std::memory_order_acquire);
  const std::int64_t t = now.time_since_epoch().count();
  return describe(now, tat, tat - tolerance_ <= t, 0);
}

void Gcra::adjust(std::int64_t delta) noexcept {
  const std::int64_t d = mul_sat(delta, interval_);
  std::int64_t tat = tat_.load(std::memory_order_acquire);
  while (!tat_.compare_exchange_weak(tat, add_sat(tat, d), std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
  }
}

namespace {
bool fits(const RateLimiter::Buckets& b, const RateSubject& s) noexcept {
  const std::int64_t r = b.requests ? b.requests->limit() : 0;
  const std::int64_t t = b.tokens ? b.tokens->limit() : 0;
  return r == s.rpm && t == s.tpm;
}
}  // namespace

// Called with mu_ held shared. Null when the subject has no buckets yet or they were made
// for other limits.
const RateLimiter::Buckets* RateLimiter::find_buckets(const RateSubject& s) const {
  auto it = buckets_.find(s.id);
  return it != buckets_.end() && fits(it->second, s) ? &it->second : nullptr;
}

void RateLimiter::make_buckets(const RateSubject& s) {
  std::unique_lock lock(mu_);
  auto it = buckets_.find(s.id);
  if (it != buckets_.end() && fits(it->second, s)) return;  // another thread made them
  // New subject, or its limits changed: start from a full bucket under the new limits.
  Buckets b;
  if (s.rpm > 0) b.requests = std::make_shared<Gcra>(s.rpm, window_);
  if (s.tpm > 0) b.tokens = std::make_shared<Gcra>(s.tpm, window_);
  buckets_.insert_or_assign(std::string(s.id), std::move(b));
}

namespace {
// Keeps the decision with fewer units left, for the response headers.
void keep_tightest(RateDecision& acc, const RateDecision& d, bool& have) {
  if (!have || d.remaining < acc.remaining || (!d.allowed && acc.allowed)) {
    acc = d;
    have = true;
  }
}
}  // namespace

RateLimiter::Admission RateLimiter::admit(std::span<const RateSubject> subjects,
                                          std::int64_t estimated_tokens) {
  Admission a;
  const TimePoint now = clock_.now();
  estimated_tokens = std::max<std::int64_t>(estimated_tokens, 0);
  const std::size_t n = std::min(subjects.size(), kMaxSubjects);
  // The buckets are used under the map's shared lock (the charges are compare-and-swap, so
  // no request waits on another), which keeps them alive without a reference count each.
  // Entries are never erased and a node-based map's elements keep their address, so a
  // pointer found before the lock was dropped to make another subject's buckets stays good.
  std::array<const Buckets*, kMaxSubjects> b{};
  std::shared_lock lock(mu_);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = find_buckets(subjects[i]);
    if (b[i] != nullptr) continue;
    lock.unlock();
    make_buckets(subjects[i]);
    lock.lock();
    b[i] = &buckets_.find(subjects[i].id)->second;  // as made, or as a racing change left them
  }

  bool have_r = false, have_t = false;
  std::size_t req_charged = 0, tok_charged = 0;
  auto rollback = [&] {
    for (std::size_t i = 0; i < req_charged; ++i) {
      if (b[i]->requests) b[i]->requests->adjust(-1);
    }
    for (std::size_t i = 0; i < tok_charged; ++i) {
      if (b[i]->tokens) b[i]->tokens->adjust(-estimated_tokens);
    }
  };
  for (std::size_t i = 0; i < n; ++i, ++req_charged) {
    if (!b[i]->requests) continue;
    const RateDecision d = b[i]->requests->acquire(now, 1);
    keep_tightest(a.requests, d, have_r);
    if (!d.allowed) {
      rollback();
      a.denied_by = std::string(subjects[i].id) + " rpm";
      a.retry_after = d.retry_after;
      return a;
    }
  }
  for (std::size_t i = 0; i < n; ++i, ++tok_charged) {
    if (!b[i]->tokens) continue;
    const RateDecision d = b[i]->tokens->acquire(now, estimated_tokens);
    keep_tightest(a.tokens, d, have_t);
    if (!d.allowed) {
      rollback();
      a.denied_by = std::string(subjects[i].id) + " tpm";
      a.retry_after = d.retry_after;
      return a;
    }
  }
  a.allowed = true;
  a.charged_tokens = estimated_tokens;
  for (std::size_t i = 0; i < n; ++i) a.token_buckets[i] = b[i]->tokens;
  return a;
}

void RateLimiter::settle_tokens(Admission& a, std::int64_t actual_tokens) noexcept {
  if (!a.allowed) return;
  actual_tokens = std::max<std::int64_t>(actual_tokens, 0);
  const std::int64_t delta = actual_tokens - a.charged_tokens;
  if (delta == 0) return;
  for (auto& bucket : a.token_buckets) {
    if (bucket) bucket->adjust(delta);
  }
  a.charged_tokens = actual_tokens;
}

std::optional<ParallelLimiter::Slot> ParallelLimiter::try_acquire(std::string_view subject,
                                                                  std::int64_t max) {
  if (max <= 0) return Slot{};
  std::shared_ptr<std::atomic<std::int64_t>> c;
  {
    std::shared_lock lock(mu_);
    if (auto it = counters_.find(subject); it != counters_.end()) c = it->second;
  }
  if (!c) {
    std::unique_lock lock(mu_);
    auto [it, inserted] = counters_.try_emplace(std::string(subject), nullptr);
    if (inserted) it->second = std::make_shared<std::atomic<std::int64_t>>(0);
    c = it->second;
  }
  // CAS rather than add-then-undo, so a racing caller is never turned away spuriously.
  std::int64_t cur = c->load(std::memory_order_acquire);
  do {
    if (cur >= max) return std::nullopt;
  } while (!c->compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_acquire));
  return Slot(std::move(c));
}

std::int64_t ParallelLimiter::in_flight(std::string_view subject) const {
  std::shared_lock lock(mu_);
  auto it = counters_.find(subject);
  return it == counters_.end() ? 0 : it->second->load(std::memory_order_acquire);
}

}  // namespace bulwark::accounting
