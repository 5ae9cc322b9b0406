#pragma once
// Load balancing among one model's targets (`models.NAME.load_balancing:`, docs/routing.md).
// The pipeline keeps a `TargetStats` per target (updated after each attempt), takes a
// `TargetView` of each candidate per request, and asks `order_targets` for the order to
// try them in: first choice first, the rest as the failover order. Unhealthy targets
// (breaker open) come last, in weight order. Randomness is injected.
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "router/request_features.hpp"

namespace bulwark::router {

// What a strategy sees of one candidate target.
struct TargetView {
  double weight = 1.0;      // config weight; 0: only when nothing else is left
  bool healthy = true;      // false: the breaker refuses it now (ordered last)
  std::uint32_t in_flight = 0;
  double ewma_ms = 0;       // latency EWMA; 0: no sample yet
  double cost = 0;          // lower is cheaper (cost_key)
  double headroom = 1.0;    // remaining rate-limit share in [0, 1]; 1 when unknown or stale
};

// `cost_rank` when set, else the blended price (3 input : 1 output, USD per million
// tokens), else 0. Within one model use one kind or the other.
double cost_key(const config::Target& target) noexcept;

// Strategies. Each writes a permutation of [0, targets.size()) to `out`.
// weighted: successive weighted draws without replacement (the first is drawn by weight).
void order_weighted(std::span<const TargetView> targets, Random& rng, std::vector<std::uint32_t>& out);
// least_in_flight: ascending in_flight / weight; ties in weighted-random order.
void order_least_in_flight(std::span<const TargetView> targets, Random& rng, std::vector<std::uint32_t>& out);
// latency: power of two choices, two distinct targets drawn by weight, the one with the
// lower ewma_ms * (in_flight + 1) first (a target without samples counts as the fastest
// known, so it gets tried); the rest by that load, ascending.
void order_latency(std::span<const TargetView> targets, Random& rng, std::vector<std::uint32_t>& out);
// cost: ascending cost; ties in weighted-random order.
void order_cost(std::span<const TargetView> targets, Random& rng, std::vector<std::uint32_t>& out);
// headroom: weighted draws by weight * headroom (targets with no headroom after the rest).
void order_headroom(std::span<const TargetView> targets, Random& rng, std::vector<std::uint32_t>& out);
// Dispatch on the model's strategy.
void order_targets(config::Balancing strategy, std::span<const TargetView> targets, Random& rng,
                   std::vector<std::uint32_t>& out);

// Rate-limit state an upstream reported on one response.
struct RateLimitReport {
  std::optional<std::int64_t> remaining_requests, limit_requests;
  std::optional<std::int64_t> remaining_tokens, limit_tokens;
  std::optional<Duration> reset_requests, reset_tokens;  // time until the window refills
  bool empty() const noexcept { return !remaining_requests && !remaining_tokens; }
};
// x-ratelimit-{remaining,limit,reset}-{requests,tokens} (OpenAI, Azure, Groq, ...; reset as
// "1s", "6m0s", "59.5s", "20ms", "1h2m" or plain seconds) and
// anthropic-ratelimit-{requests,tokens}-{remaining,limit} (its RFC 3339 reset is ignored).
RateLimitReport parse_rate_limit_headers(const HeaderLookup& header);
// "6m0s", "1.5s", "20ms", "1h2m3s", "12" (seconds): nullopt if malformed.
std::optional<Duration> parse_reset_duration(std::string_view text) noexcept;

// One target's live statistics, shared by all workers (relaxed atomics: a view may mix
// two updates, which a load balancer tolerates). Keep one per target id, across reloads.
class TargetStats {
 public:
  static constexpr double kEwmaAlpha = 0.3;  // weight of the newest latency sample

  // In-flight accounting: call begin() when an attempt starts and end() when it is over.
  void begin() noexcept { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void end() noexcept { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  class InFlight {  // RAII: begin() now, end() on destruction
   public:
    explicit InFlight(TargetStats& s) noexcept : s_(&s) { s.begin(); }
    InFlight(InFlight&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    InFlight& operator=(InFlight&&) = delete;
    ~InFlight() {
      if (s_) s_->end();
    }

   private:
    TargetStats* s_;
  };

  // A successful attempt's latency (time to response head / first token).
  void record_latency(Duration d) noexcept;
  // A failed attempt: counts as max(d, 2 x the current EWMA), so slow failures push away.
  void record_failure(Duration d) noexcept;
  // Rate-limit headers of a response (ignored when empty).
  void record_rate_limits(const RateLimitReport& r, TimePoint now) noexcept;

  std::uint32_t in_flight() const noexcept;
  double ewma_ms() const noexcept { return ewma_ms_.load(std::memory_order_relaxed); }
  // Remaining share of the rate limits in [0, 1]: min over requests and tokens of
  // remaining / limit (limit: reported, else the largest remaining ever seen); a window
  // whose reset time passed counts as full; a request needing more tokens than remain
  // gets 0. The share decays linearly to 1 ("no information") as the report ages to
  // `stale_after`. 1 when nothing was reported.
  double headroom(TimePoint now, Duration stale_after, std::uint64_t tokens_needed = 0) const noexcept;

  // Everything a strategy needs. `healthy`: the breaker's verdict, from the pipeline.
  TargetView view(const config::Target& target, bool healthy, TimePoint now, Duration stale_after,
                  std::uint64_t tokens_needed = 0) const noexcept;

 private:
  void add_sample(double ms) noexcept;
  std::atomic<std::int32_t> in_flight_{0};
  std::atomic<double> ewma_ms_{0};
  std::atomic<std::int64_t> remaining_requests_{-1}, limit_requests_{-1}, peak_requests_{-1};
  std::atomic<std::int64_t> remaining_tokens_{-1}, limit_tokens_{-1}, peak_tokens_{-1};
  std::atomic<std::int64_t> reported_at_{0};      // TimePoint ticks; 0: never
  std::atomic<std::int64_t> requests_reset_at_{0};  // 0: unknown
  std::atomic<std::int64_t> tokens_reset_at_{0};
};

}  // namespace bulwark::router
