#pragma once
// What a policy evaluation decided, in the form the audit trail records: policy id, which
// rule fired (detector kind, deny pattern or heuristic), the action and how often. Never
// the matched text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/pii.hpp"

namespace bulwark::policy {

enum class Action : std::uint8_t { off, flag, redact, block };
std::string_view name_of(Action action) noexcept;

enum class Verdict : std::uint8_t { allow, redacted, blocked };
std::string_view name_of(Verdict verdict) noexcept;

enum class Rule : std::uint8_t {
  pii,
  deny_pattern,
  prompt_injection,
  model_not_allowed,
  input_tokens_exceeded,
  max_tokens_exceeded,
  document_not_inspectable,  // a document whose text the gateway cannot read (a PDF, say)
  answer_not_inspectable,    // an answer the output rules must act on that the gateway cannot read or rewrite
};
// Also the reason code of a block: "pii", "deny_pattern", "prompt_injection", ...
std::string_view name_of(Rule rule) noexcept;

struct RuleHit {
  Rule rule = Rule::pii;
  Action action = Action::flag;
  std::uint8_t detail = 0;   // PiiKind for pii, InjectionHeuristic for prompt_injection
  std::uint16_t index = 0;   // position of the deny pattern in PolicySpec::deny
  std::uint32_t count = 0;
  friend bool operator==(const RuleHit&, const RuleHit&) = default;
};

struct PolicyDecision {
  Verdict verdict = Verdict::allow;
  std::string policy_id;
  // Every rule that fired (flag, redact or block), one entry per rule/detail/index.
  std::vector<RuleHit> hits;
  // Set when verdict == blocked.
  std::optional<RuleHit> blocked_by;
  std::string_view reason_code;  // name_of(blocked_by->rule); static storage
  std::string detector;          // "card", the deny pattern's id, "role_override", ...

  bool blocked() const noexcept { return verdict == Verdict::blocked; }
  // How many findings of `kind` were replaced.
  std::uint32_t redactions(PiiKind kind) const noexcept;
  std::uint32_t redactions() const noexcept;
  // Hits whose action is flag (audit only).
  std::uint32_t flags() const noexcept;

  // Adds `n` occurrences to the matching hit (or a new one).
  void record(Rule rule, Action action, std::uint8_t detail, std::uint16_t index, std::uint32_t n = 1);
  // Marks the decision blocked by this rule; the first block wins.
  void block(Rule rule, std::uint8_t detail, std::uint16_t index, std::string detector_name);
};

}  // namespace bulwark::policy
