#pragma once
// The order in which a request tries upstream targets, and which of them it may still move
// to after the failures seen so far. Pure functions, separate from chat.cpp for testing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "pipeline/runtime.hpp"

namespace bulwark::pipeline {

// One upstream target in the order the request tries them.
struct Candidate {
  const ModelPlan* model;
  const TargetPlan* target;
};

// Which later candidates a request may still move to.
struct FailoverFilter {
  // Set after context_length_exceeded: only targets whose declared context window is
  // larger than the failed target's. When the failed target declared none, nothing is
  // known to be larger: no failover (the caller gets the provider's explanation).
  bool context = false;
  std::optional<std::uint64_t> failed_window;

  bool allows(const Candidate& c) const noexcept {
    if (!context) return true;
    if (!failed_window) return false;
    const auto& w = c.target->target->context_window;
    return w && *w > *failed_window;
  }
};

// The first candidate at or after `from` that the filter allows; cands.size() when none.
inline std::size_t next_allowed(const std::vector<Candidate>& cands, std::size_t from, const FailoverFilter& filter) {
  for (std::size_t j = from; j < cands.size(); ++j)
    if (filter.allows(cands[j])) return j;
  return cands.size();
}

// How long a request's first attempt may go without its first token before a hedge
// starts: the fixed delay, else the configured percentile of the target's recent times to
// first token, clamped to [min_delay, max_delay]; max_delay while samples are few.
inline Duration hedge_delay(const config::HedgeSettings& hs, const TargetHealth& primary) {
  if (hs.delay) return *hs.delay;
  const resilience::LatencyPercentiles p = primary.first_token->cached_percentiles();
  if (p.count < hs.min_samples) return hs.max_delay;
  const Duration observed = hs.percentile >= 0.99 ? p.p99 : hs.percentile >= 0.95 ? p.p95 : p.p50;
  return std::clamp<Duration>(observed, hs.min_delay, hs.max_delay);
}

}  // namespace bulwark::pipeline
