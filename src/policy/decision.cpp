#include "policy/decision.hpp"

namespace bulwark::policy {

std::string_view name_of(Action action) noexcept {
  switch (action) {
    case Action::off: return "off";
    case Action::flag: return "flag";
    case Action::redact: return "redact";
    case Action::block: return "block";
  }
  return "unknown";
}

std::string_view name_of(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::allow: return "allow";
    case Verdict::redacted: return "redacted";
    case Verdict::blocked: return "blocked";
  }
  return "unknown";
}

std::string_view name_of(Rule rule) noexcept {
  switch (rule) {
    case Rule::pii: return "pii";
    case Rule::deny_pattern: return "deny_pattern";
    case Rule::prompt_injection: return "prompt_injection";
    case Rule::model_not_allowed: return "model_not_allowed";
    case Rule::input_tokens_exceeded: return "input_tokens_exceeded";
    case Rule::max_tokens_exceeded: return "max_tokens_exceeded";
    case Rule::document_not_inspectable: return "document_not_inspectable";
    case Rule::answer_not_inspectable: return "answer_not_inspectable";
  }
  return "unknown";
}

std::uint32_t PolicyDecision::redactions(PiiKind kind) const noexcept {
  for (const RuleHit& h : hits)
    if (h.rule == Rule::pii && h.action == Action::redact && h.detail == static_cast<std::uint8_t>(kind))
      return h.count;
  return 0;
}

std::uint32_t PolicyDecision::redactions() const noexcept {
  std::uint32_t n = 0;
  for (const RuleHit& h : hits)
    if (h.action == Action::redact) n += h.count;
  return n;
}

std::uint32_t PolicyDecision::flags() const noexcept {
  std::uint32_t n = 0;
  for (const RuleHit& h : hits)
    if (h.action == Action::flag) n += h.count;
  return n;
}

void PolicyDecision::record(Rule rule, Action action, std::uint8_t detail, std::uint16_t index,
                            std::uint32_t n) {
  for (RuleHit& h : hits) {
    if (h.rule == rule && h.action == action && h.detail == detail && h.index == index) {
      h.count += n;
      return;
    }
  }
  hits.push_back({rule, action, detail, index, n});
}

void PolicyDecision::block(Rule rule, std::uint8_t detail, std::uint16_t index,
                           std::string detector_name) {
  if (verdict == Verdict::blocked) return;
  verdict = Verdict::blocked;
  RuleHit hit{rule, Action::block, detail, index, 1};
  for (const RuleHit& h : hits)
    if (h.rule == rule && h.action == Action::block && h.detail == detail && h.index == index) hit = h;
  blocked_by = hit;
  reason_code = name_of(rule);
  detector = std::move(detector_name);
}

}  // namespace bulwark::policy
