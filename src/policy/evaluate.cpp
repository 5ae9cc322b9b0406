#include "policy/evaluate.hpp"

#include <vector>

#include "policy/compiled.hpp"
#include "policy/injection.hpp"

namespace bulwark::policy {
namespace {

void block_on(PolicyDecision& d, Rule rule, std::string name) {
  d.record(rule, Action::block, 0, 0);
  d.block(rule, 0, 0, std::move(name));
}

// Records every heuristic that fired; false when the policy blocks on them.
bool apply_injection(const detail::CompiledPolicy& c, std::string_view text, PolicyDecision& d) {
  const InjectionMask found = scan_injection(text);
  if (found == 0) return true;
  for (std::size_t i = 0; i < kInjectionHeuristicCount; ++i) {
    const auto h = static_cast<InjectionHeuristic>(i);
    if ((found & mask_of(h)) == 0) continue;
    d.record(Rule::prompt_injection, c.spec.injection, static_cast<std::uint8_t>(h), 0);
    if (c.spec.injection == Action::block) {
      d.block(Rule::prompt_injection, static_cast<std::uint8_t>(h), 0, std::string(name_of(h)));
      return false;
    }
  }
  return true;
}

void rewrite(std::string& text, const std::vector<Finding>& findings, std::size_t from, std::size_t to) {
  if (from == to) return;
  std::string out;
  out.reserve(text.size());
  detail::append_redacted(text, 0, text.size(), std::span(findings).subspan(from, to - from), out);
  text.swap(out);
}

}  // namespace

PolicyDecision evaluate_input(const PolicyProfile& profile, std::span<std::string> parts,
                              const RequestFacts& facts) {
  const detail::CompiledPolicy& c = profile.compiled();
  PolicyDecision d;
  d.policy_id = c.spec.id;
  if (!profile.model_allowed(facts.model)) {
    block_on(d, Rule::model_not_allowed, "model");
    return d;
  }
  if (c.spec.max_input_tokens && facts.estimated_input_tokens > *c.spec.max_input_tokens) {
    block_on(d, Rule::input_tokens_exceeded, "input_tokens");
    return d;
  }
  if (c.spec.max_tokens && facts.max_tokens && *facts.max_tokens > *c.spec.max_tokens) {
    block_on(d, Rule::max_tokens_exceeded, "max_tokens");
    return d;
  }

  thread_local std::vector<Finding> scratch;
  thread_local std::vector<Finding> redact;  // kept findings of all parts, in part order
  thread_local std::vector<std::size_t> bounds;
  redact.clear();
  bounds.clear();
  for (const std::string& part : parts) {
    bounds.push_back(redact.size());
    if (!detail::apply_deny(c, part, 0, 0, d)) return d;
    if (c.spec.injection != Action::off && !apply_injection(c, part, d)) return d;
    if (c.pii_mask == 0) continue;
    scratch.clear();
    detect_pii(part, c.pii_mask, scratch);
    if (scratch.empty()) continue;
    if (!detail::apply_findings(c, part, scratch, d)) return d;
    redact.insert(redact.end(), scratch.begin(), scratch.end());
  }
  bounds.push_back(redact.size());
  if (redact.empty()) return d;
  for (std::size_t i = 0; i < parts.size(); ++i) rewrite(parts[i], redact, bounds[i], bounds[i + 1]);
  d.verdict = Verdict::redacted;
  return d;
}

PolicyDecision evaluate_output(const PolicyProfile& profile, std::string& text) {
  const detail::CompiledPolicy& c = profile.compiled();
  PolicyDecision d;
  d.policy_id = c.spec.id;
  if (!detail::apply_deny(c, text, 0, 0, d)) return d;
  if (c.pii_mask == 0) return d;
  thread_local std::vector<Finding> scratch;
  scratch.clear();
  detect_pii(text, c.pii_mask, scratch);
  if (scratch.empty()) return d;
  if (!detail::apply_findings(c, text, scratch, d)) return d;
  if (scratch.empty()) return d;
  rewrite(text, scratch, 0, scratch.size());
  d.verdict = Verdict::redacted;
  return d;
}

Error block_error(const PolicyDecision& d, bool on_output) {
  std::string msg = on_output ? "response blocked by policy '" : "request blocked by policy '";
  msg += d.policy_id;
  msg += "': ";
  msg += d.reason_code;
  if (!d.detector.empty()) {
    msg += " (";
    msg += d.detector;
    msg += ')';
  }
  if (on_output) return Error::gateway(ErrorKind::content_filtered, std::move(msg));
  return Error::client(ErrorKind::policy_blocked, std::move(msg));
}

}  // namespace bulwark::policy
