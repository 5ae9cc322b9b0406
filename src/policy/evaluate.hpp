#pragma once
// Enforcing a PolicyProfile on a request before it goes upstream and on a complete answer.
// Neither throws on policy outcomes; decisions carry ids and counts, never matched text.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "policy/decision.hpp"
#include "policy/profile.hpp"

namespace bulwark::policy {

struct RequestFacts {
  std::string_view model;
  std::uint64_t estimated_input_tokens = 0;
  std::optional<std::uint64_t> max_tokens;  // as the caller asked; nullopt when absent
};

// Checks model allow-list, token caps, deny patterns, injection heuristics (when enabled)
// and PII on every part. When the verdict is `redacted` the parts have been rewritten in
// place; when `blocked` they are untouched. Each part is scanned on its own.
PolicyDecision evaluate_input(const PolicyProfile& profile, std::span<std::string> text_parts,
                              const RequestFacts& facts);

// Deny patterns and PII on a complete answer; rewrites `text` when redacting.
PolicyDecision evaluate_output(const PolicyProfile& profile, std::string& text);

// The error to answer a blocked decision with: policy_blocked for requests,
// content_filtered for answers. The message names policy, reason and detector only.
Error block_error(const PolicyDecision& decision, bool on_output);

}  // namespace bulwark::policy
