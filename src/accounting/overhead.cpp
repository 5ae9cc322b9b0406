#include "accounting/overhead.hpp"

#include <algorithm>

namespace bulwark::accounting {
namespace {
constexpr std::array<std::string_view, kOverheadReasons> kNames{"hedge_cancelled", "stream_broken", "timeout",
                                                               "failed",          "discarded",     "client_gone"};
}  // namespace

std::string_view name_of(OverheadReason r) noexcept { return kNames[static_cast<std::size_t>(r)]; }

std::optional<OverheadReason> parse_overhead_reason(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == s) return static_cast<OverheadReason>(i);
  return std::nullopt;
}

AttemptCharge attempt_charge(const ModelPrice* price, const AttemptSeen& seen) noexcept {
  AttemptCharge out;
  bool estimated = false;
  const Usage* rep = seen.reported ? &*seen.reported : nullptr;
  // What was not reported is estimated by estimate_usage's rule, as for the caller's cost.
  const Usage est = estimate_usage(seen.prompt_bytes, seen.output_text_bytes);
  if (rep && rep->input_tokens + rep->cached_input_tokens + rep->cache_write_tokens > 0) {
    out.usage.input_tokens = rep->input_tokens;
    out.usage.cached_input_tokens = rep->cached_input_tokens;
    out.usage.cache_write_tokens = rep->cache_write_tokens;
  } else {
    out.usage.input_tokens = est.input_tokens;
    estimated = true;
  }
  if (rep && seen.output_final) {
    out.usage.output_tokens = rep->output_tokens;
  } else {
    const std::int64_t from_text = est.output_tokens;
    const std::int64_t reported = rep ? rep->output_tokens : 0;
    out.usage.output_tokens = std::max(reported, from_text);
    if (from_text > reported) estimated = true;
  }
  out.cost = price ? cost_of(*price, out.usage, estimated) : Cost{0, estimated};
  return out;
}

}  // namespace bulwark::accounting
