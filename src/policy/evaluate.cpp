#include "policy/evaluate.hpp"

#include <emmintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "policy/compiled.hpp"
#include "policy/injection.hpp"
#include "policy/json_text.hpp"

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

void rewrite(std::string& text, const std::vector<Finding>& findings, std::size_t from, std::size_t to, TextForm form) {
  if (from == to) return;
  std::string out;
  out.reserve(text.size());
  const auto mine = std::span(findings).subspan(from, to - from);
  if (form == TextForm::json) {
    detail::JsonCursor cursor;
    detail::append_redacted_json(text, 0, text.size(), mine, cursor, out);
  } else {
    detail::append_redacted(text, 0, text.size(), mine, out);
  }
  text.swap(out);
}

// The text of a JSON string's raw bytes with escapes other than \uXXXX decoded (the
// parser's result for them); false for \u, which the exact path decodes instead.
bool unescape_simple(std::string_view raw, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out.push_back(raw[i]);
      continue;
    }
    if (++i >= raw.size()) return false;
    switch (raw[i]) {
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      default: return false;
    }
  }
  return true;
}

// Scans one text value, decoded, as the exact path scans a part.
bool text_clean(std::string_view raw, bool escaped, PiiMask mask) {
  thread_local std::vector<Finding> scratch;
  thread_local std::string decoded;
  std::string_view text = raw;
  if (escaped) {
    if (!unescape_simple(raw, decoded)) return false;
    text = decoded;
  }
  if (!pii_may_match(text, mask)) return true;  // most text: no segment a detector could take
  scratch.clear();
  detect_pii(text, mask, scratch);
  return scratch.empty();
}

// The keys of the strings the exact path reads: message and part text, citations'
// cited_text, tool calls' arguments and, in answers, reasoning. An arguments string holds
// JSON text: both paths scan it as written once the outer string is decoded (the JSON's
// own escapes inside it are not decoded again by either).
bool is_text_key(std::string_view key, bool answer) noexcept {
  return key == "content" || key == "text" || key == "cited_text" || key == "arguments" ||
         (answer && (key == "reasoning_content" || key == "thinking"));
}

// A request's document (a part of type "file", what request_texts reads as one): its text
// is base64 or unreadable, so only the exact path can judge it. The key "file_data" too,
// should a part's type come after it; not the key "file", which tools' schemas often use.
bool is_document_key(std::string_view key) noexcept { return key == "file_data"; }
bool is_document_type(std::string_view key, std::string_view value) noexcept { return value == "file" && key == "type"; }

const char* after_ws(const char* q, const char* end) noexcept {
  while (q < end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t')) ++q;
  return q;
}

// Any JSON: walks its strings one by one, telling keys (a ':' follows) from values.
bool text_values_clean_escaped(std::string_view json, PiiMask mask, bool documents) {
  std::string_view key;
  const char* const end = json.data() + json.size();
  const char* p = json.data();
  for (;;) {
    p = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
    if (p == nullptr) return true;
    const char* const b = ++p;
    // The closing quote: the next one not escaped (preceded by an even run of '\').
    for (;;) {
      p = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
      if (p == nullptr) return false;
      const char* k = p;
      while (k > b && k[-1] == '\\') --k;
      if ((p - k) % 2 == 0) break;
      ++p;
    }
    const bool escaped = std::memchr(b, '\\', static_cast<std::size_t>(p - b)) != nullptr;
    const std::string_view str(b, static_cast<std::size_t>(p - b));
    ++p;  // the closing quote
    const char* q = after_ws(p, end);
    if (q < end && *q == ':') {  // a key
      if (escaped) return false;
      if (documents && is_document_key(str)) return false;
      key = str;
      continue;
    }
    // A type spelled with escapes could be "file" to a parser: the exact path decides.
    if (documents && key == "type" && (escaped || is_document_type(key, str))) return false;
    if (is_text_key(key, !documents) && !text_clean(str, escaped, mask)) return false;
  }
}

// No PII finding in any string value of the JSON under a key is_text_key names (`documents`:
// a request; otherwise an answer), each scanned on its own as the exact path scans each part. False also when it cannot
// tell: a \u escape in such a value or any escape in a key ("cont\u0065nt" is "content"
// to a parser), a string that does not end, and with `documents` (a request) a document.
// Most bodies have no backslash at all: then every quote delimits a string, and one SSE2
// pass finds and judges them all.
bool text_values_clean(std::string_view json, PiiMask mask, bool documents) {
  const std::size_t n = json.size();
  const char* const d = json.data();
  const char* const end = d + n;
  std::string_view key;
  const char* open = nullptr;  // the opening quote of the string being read
  // One quote: opens a string, or closes one and judges it. False: not shown clean.
  const auto at_quote = [&](const char* q) {
    if (open == nullptr) {
      open = q;
      return true;
    }
    const std::string_view str(open + 1, static_cast<std::size_t>(q - open - 1));
    open = nullptr;
    const char* after = after_ws(q + 1, end);
    if (after < end && *after == ':') {
      if (documents && is_document_key(str)) return false;
      key = str;
      return true;
    }
    if (documents && is_document_type(key, str)) return false;
    return !is_text_key(key, !documents) || text_clean(str, false, mask);
  };
  // Strings are judged as their closing quote is found, block by block. A backslash sends
  // the whole body to the escaped walker; every quote before it, in blocks without one,
  // delimited a string, so what was judged on the way stands.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i slash = _mm_set1_epi8('\\');
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, slash)) != 0) return text_values_clean_escaped(json, mask, documents);
    for (auto m = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote))); m != 0; m &= m - 1)
      if (!at_quote(d + i + static_cast<std::size_t>(__builtin_ctz(m)))) return false;
  }
  for (; i < n; ++i) {
    if (d[i] == '\\') return text_values_clean_escaped(json, mask, documents);
    if (d[i] == '"' && !at_quote(d + i)) return false;
  }
  return open == nullptr;  // else a string that does not end
}

}  // namespace

std::optional<PolicyDecision> evaluate_input_raw(const PolicyProfile& profile, std::string_view body_json,
                                                 const RequestFacts& facts) {
  const detail::CompiledPolicy& c = profile.compiled();
  if (!c.deny.empty() || c.spec.injection != Action::off) return std::nullopt;
  // The model and token caps come first, as in evaluate_input.
  PolicyDecision d = evaluate_input(profile, {}, facts);
  if (d.blocked()) return d;
  // A profile with PII detectors reads documents' text; one that acts on documents it
  // cannot read must see them: either way a document takes the exact path.
  if ((c.pii_mask != 0 || c.documents != Action::off) && !text_values_clean(body_json, c.pii_mask, true))
    return std::nullopt;
  return d;
}

std::optional<PolicyDecision> evaluate_output_raw(const PolicyProfile& profile, std::string_view answer_json) {
  const detail::CompiledPolicy& c = profile.compiled();
  if (!c.deny.empty()) return std::nullopt;
  PolicyDecision d;
  d.policy_id = c.spec.id;
  if (c.pii_mask != 0 && !text_values_clean(answer_json, c.pii_mask, false)) return std::nullopt;
  return d;
}

PolicyDecision evaluate_input(const PolicyProfile& profile, std::span<std::string> parts,
                              const RequestFacts& facts, std::span<const std::string_view> uninspectable_documents,
                              std::span<const std::size_t> json_parts) {
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
  // Before any text: a document that blocks ends the request with nothing else scanned.
  if (c.documents != Action::off && !uninspectable_documents.empty()) {
    if (c.documents == Action::block) {
      block_on(d, Rule::document_not_inspectable, std::string(uninspectable_documents.front()));
      return d;
    }
    d.record(Rule::document_not_inspectable, c.documents, 0, 0,
             static_cast<std::uint32_t>(uninspectable_documents.size()));
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
  std::size_t next_json = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    while (next_json < json_parts.size() && json_parts[next_json] < i) ++next_json;
    const bool json = next_json < json_parts.size() && json_parts[next_json] == i;
    rewrite(parts[i], redact, bounds[i], bounds[i + 1], json ? TextForm::json : TextForm::plain);
  }
  d.verdict = Verdict::redacted;
  return d;
}

PolicyDecision evaluate_output(const PolicyProfile& profile, std::string& text, TextForm form) {
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
  rewrite(text, scratch, 0, scratch.size(), form);
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
