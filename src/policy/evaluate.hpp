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

// Checks model allow-list, token caps, the documents it cannot read, deny patterns,
// injection heuristics (when enabled) and PII on every part. When the verdict is
// `redacted` the parts have been rewritten in place; when `blocked` they are untouched.
// Each part is scanned on its own (a plain-text document's decoded text is a part).
// `uninspectable_documents` names each document whose text the caller's body does not
// let the gateway read ("pdf", "file_id", ...): the profile's uninspectable_documents
// action applies to each (a block names the first as its detector). `json_parts` lists
// (ascending) the parts that are JSON text (tool-call arguments): they are scanned as
// written and redacted as TextForm::json.
PolicyDecision evaluate_input(const PolicyProfile& profile, std::span<std::string> text_parts,
                              const RequestFacts& facts,
                              std::span<const std::string_view> uninspectable_documents = {},
                              std::span<const std::size_t> json_parts = {});

// Deny patterns and PII on a complete answer (or one text of it); rewrites `text` when
// redacting, keeping JSON text JSON when `form` is TextForm::json.
PolicyDecision evaluate_output(const PolicyProfile& profile, std::string& text, TextForm form = TextForm::plain);

// Fast paths on the raw JSON, without parsing it into a document: when the profile has
// no deny patterns and no injection heuristics, and no PII detector finds anything in any
// string value keyed "content", "text", "cited_text", "arguments", "reasoning_content"
// or "thinking" (a superset of what request_texts / answer_texts
// extract; each decoded and scanned on its own, as the exact path does),
// the verdict is the exact path's: no hits (for a request, after the same model and
// token-cap checks). nullopt when that cannot be shown (a rule to run, a finding to
// redact or block, a \u escape in a text value, any escape in a key, malformed JSON, or
// a request with a document, i.e. a value "file" under any key or a key "file_data": its
// text is base64 or unreadable): run the exact path.
std::optional<PolicyDecision> evaluate_input_raw(const PolicyProfile& profile, std::string_view body_json,
                                                 const RequestFacts& facts);
std::optional<PolicyDecision> evaluate_output_raw(const PolicyProfile& profile, std::string_view answer_json);

// The error to answer a blocked decision with: policy_blocked for requests,
// content_filtered for answers. The message names policy, reason and detector only.
Error block_error(const PolicyDecision& decision, bool on_output);

// The output rules fail closed: an answer they may have to act on that the gateway cannot
// read (not the JSON it expects) or cannot rewrite after redacting is withheld, not relayed
// as the upstream sent it. A blocked decision with reason answer_not_inspectable; `what`
// (e.g. "unreadable", "rewrite") becomes its detector.
PolicyDecision answer_not_inspectable(const PolicyProfile& profile, std::string what);

}  // namespace bulwark::policy
