#pragma once
// What a provider charges for an attempt that did not become the caller's answer: a
// stream that broke and was finished elsewhere, a timeout after the upstream started
// answering, a hedge race's loser, an answer the gateway discarded. The caller is never
// billed for it; the gateway records it as overhead (spend rows with a reason, a metric,
// the audit record's attempt list).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "accounting/pricing.hpp"

namespace bulwark::accounting {

enum class OverheadReason : std::uint8_t {
  hedge_cancelled,  // lost a hedge race (the other attempt had its first token first)
  stream_broken,    // broke after its first token; the answer was finished on another target
  timeout,          // accepted (2xx), then an idle, first-token or total timeout
  failed,           // accepted, then reset, truncated, an error event or an unreadable answer
  discarded,        // a complete answer the output policy refused (the caller got an error)
  client_gone,      // accepted, but the caller hung up before its first token
};
inline constexpr std::size_t kOverheadReasons = 6;
std::string_view name_of(OverheadReason r) noexcept;
std::optional<OverheadReason> parse_overhead_reason(std::string_view s) noexcept;

// What was seen of one attempt.
struct AttemptSeen {
  // Usage the upstream reported, if any. Input counts are used when non-zero (Anthropic
  // reports them in message_start, before any text); output counts are trusted only when
  // output_final (the usage came with or after the end of the answer).
  std::optional<Usage> reported;
  bool output_final = false;
  std::size_t prompt_bytes = 0;       // the request body the attempt sent
  std::size_t output_text_bytes = 0;  // answer text received (content and tool arguments)
};

struct AttemptCharge {
  Usage usage;
  Cost cost;  // estimated when any count came from byte counts
};

// Prompt tokens as reported, else estimated from prompt_bytes (4 bytes a token); output
// tokens as reported when final, else the larger of the reported count and the estimate
// from the text received. Priced at the attempt's target price (none: zero, but the
// tokens are still returned).
AttemptCharge attempt_charge(const ModelPrice* price, const AttemptSeen& seen) noexcept;

}  // namespace bulwark::accounting
