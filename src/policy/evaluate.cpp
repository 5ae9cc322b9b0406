#include "policy/evaluate.hpp"

#include <emmintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <initializer_list>
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
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    // The run up to the next escape in one append (a prompt's escapes are far apart).
    const void* const at = std::memchr(raw.data() + i, '\\', raw.size() - i);
    const std::size_t esc = at ? static_cast<std::size_t>(static_cast<const char*>(at) - raw.data()) : raw.size();
    out.append(raw.data() + i, esc - i);
    i = esc;
    if (i == raw.size()) break;
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
// cited_text, tool calls' arguments and reasoning (an answer's, or a prompt's history's). An arguments string holds
// JSON text: both paths scan it as written once the outer string is decoded (the JSON's
// own escapes inside it are not decoded again by either).
// The six names differ in length, so the length picks the one name to compare with.
inline bool is_text_key(std::string_view key) noexcept {
  switch (key.size()) {
    case 4: return key == "text";
    case 7: return key == "content";
    case 8: return key == "thinking";
    case 9: return key == "arguments";
    case 10: return key == "cited_text";
    case 17: return key == "reasoning_content";
    default: return false;
  }
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

// Any JSON (`request`: a request, else an answer): walks its strings one by one, telling
// keys (a ':' follows) from values.
bool text_values_clean_escaped(std::string_view json, PiiMask mask, bool request) {
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
      if (request && is_document_key(str)) return false;
      key = str;
      continue;
    }
    // A type spelled with escapes could be "file" to a parser: the exact path decides.
    if (request && key == "type" && (escaped || is_document_type(key, str))) return false;
    if (!is_text_key(key)) continue;
    // Arguments are JSON text: an escape in it (\\u in the body) may spell what the
    // detectors look for; the exact path decodes it (decode_printable_escapes).
    if (key == "arguments" && str.find("\\\\u") != std::string_view::npos) return false;
    if (!text_clean(str, escaped, mask)) return false;
  }
}

// Which strings the walk below reads: those that may be a key is_text_key names or a
// document's marker, told by their first two bytes (a 1024-bit set of (first & 31,
// second & 31)), and every string after a text key until the next key. Bytes that share
// the low five bits of a listed letter pass too; the string is then read and compared.
struct Prefixes {
  std::array<std::uint64_t, 16> bits{};
  constexpr Prefixes(std::initializer_list<std::string_view> words) {
    for (std::string_view w : words) {
      const unsigned i = ((static_cast<unsigned>(w[0]) & 31U) << 5) | (static_cast<unsigned>(w[1]) & 31U);
      bits[i >> 6] |= std::uint64_t{1} << (i & 63);
    }
  }
  bool has(unsigned char a, unsigned char b) const noexcept {
    const unsigned i = ((a & 31U) << 5) | (b & 31U);
    return (bits[i >> 6] >> (i & 63)) & 1U;
  }
};
// content, text, cited_text, arguments, reasoning_content, thinking; a request's
// file_data and "file".
constexpr Prefixes kRequestPrefixes{"co", "te", "ci", "ar", "re", "th", "fi"};
constexpr Prefixes kAnswerPrefixes{"co", "te", "ci", "ar", "re", "th"};

// An escape the walk below cannot take: \" and \\ make a quote's role depend on what
// precedes it, and \u can spell any byte, a detector's or a key's ("cont\u0065nt").
bool hard_escape(char next) noexcept { return next == '"' || next == '\\' || next == 'u'; }

// Inclusive prefix XOR of a 32-bit mask: bit k is the parity of bits 0..k. Over quote
// positions that is "inside a string, or on its opening quote".
std::uint32_t prefix_xor(std::uint32_t x) noexcept {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  return x;
}

std::uint32_t bytes_equal(__m128i lo, __m128i hi, char c) noexcept {
  const __m128i k = _mm_set1_epi8(c);
  return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(lo, k))) |
         (static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(hi, k))) << 16);
}

// The first '"' in [p, end), or nullptr: inline, since the strings it is asked to cross
// are mostly short and a call to memchr costs as much as crossing them.
const char* find_quote(const char* p, const char* end) noexcept {
  const __m128i quote = _mm_set1_epi8('"');
  for (; end - p >= 16; p += 16) {
    const auto m = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), quote)));
    if (m != 0) return p + std::countr_zero(m);
  }
  for (; p < end; ++p)
    if (*p == '"') return p;
  return nullptr;
}

// No PII finding in any string value of the JSON under a key is_text_key names (`request`:
// a request; otherwise an answer), each scanned on its own as the exact path scans each
// part. False also when it cannot tell: a string that does not end, and in a request a
// document (a key "file_data" or a value "file", whatever its key). A body with an escape
// other than \n \t \r \b \f \/ goes to the escaped walker above.
// Without those escapes every quote delimits a string, so which quotes open strings is a
// prefix parity of the quote mask, 32 bytes at a time with SSE2. Only the strings that
// open with the first letter of a text key (or of a document marker) are looked at; the
// walk then reads a text key's strings up to the next key, the escaped walker's rule (a
// string value is judged when the last key before it is a text key). Most strings are
// never visited one by one.
bool text_values_clean(std::string_view json, PiiMask mask, bool request) {
  const std::size_t n = json.size();
  const char* const d = json.data();
  const char* const end = d + n;
  const Prefixes& prefixes = request ? kRequestPrefixes : kAnswerPrefixes;
  std::size_t next = 0;  // quotes before this belong to strings already read
  enum class Read : std::uint8_t { clean, dirty, escaped };
  // Reads the string opening at o and, when it is a text key, every string after it up
  // to the next key that is not one.
  const auto read = [&](std::size_t o) {
    bool region = false;  // the last key read is a text key
    for (;;) {
      const char* const b = d + o + 1;
      const char* const close = find_quote(b, end);
      if (close == nullptr) return Read::dirty;
      // Read ahead of the chunks checked for escapes: a quote after a backslash may be
      // escaped, and only the walker above can tell.
      if (close[-1] == '\\') return Read::escaped;
      next = static_cast<std::size_t>(close - d) + 1;
      const std::string_view str(b, static_cast<std::size_t>(close - b));
      const char* const after = after_ws(close + 1, end);
      if (after < end && *after == ':') {
        if (request && is_document_key(str)) return Read::dirty;
        region = is_text_key(str);
      } else if (request && str == "file") {
        return Read::dirty;  // a document part's type, or so near one that the exact path decides
      } else if (region && !text_clean(str, std::memchr(str.data(), '\\', str.size()) != nullptr, mask)) {
        return Read::dirty;
      }
      if (!region) return Read::clean;
      // After a closing quote, the next quote opens a string.
      const char* const open = find_quote(d + next, end);
      if (open == nullptr) return Read::clean;
      o = static_cast<std::size_t>(open - d);
    }
  };
  // First letters of the prefixes (a request's 'f' too).
  const char first_a = 'c', first_b = 't', first_c = 'a', first_d = 'r', first_e = request ? 'f' : 'r';
  std::uint32_t carry = 0;  // all ones when the chunk starts inside a string
  alignas(16) char last[48];
  for (std::size_t i = 0; i < n; i += 32) {
    const char* chunk = d + i;
    if (n - i < 33) {  // the last chunk (and the byte after it), padded with zeros
      std::memset(last, 0, sizeof last);
      std::memcpy(last, chunk, n - i);
      chunk = last;
    }
    const auto load = [&](std::size_t at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk + at)); };
    const __m128i lo = load(0), hi = load(16);
    // Strings read ahead of this chunk were judged before its escapes were seen: a \u in
    // one of them made it dirty (as it does in the walker), and an escape here that this
    // walk cannot take hands the whole body to the walker.
    for (std::uint32_t s = bytes_equal(lo, hi, '\\'); s != 0; s &= s - 1) {
      const std::size_t at = i + static_cast<std::size_t>(std::countr_zero(s));
      if (at + 1 >= n || hard_escape(d[at + 1])) return text_values_clean_escaped(json, mask, request);
    }
    const std::uint32_t quotes = bytes_equal(lo, hi, '"');
    const std::uint32_t inside = prefix_xor(quotes) ^ carry;
    carry = static_cast<std::uint32_t>(static_cast<std::int32_t>(inside) >> 31);
    std::uint32_t opens = quotes & inside;
    if (opens == 0) continue;
    const __m128i lo1 = load(1), hi1 = load(17);  // the byte after each
    opens &= bytes_equal(lo1, hi1, first_a) | bytes_equal(lo1, hi1, first_b) | bytes_equal(lo1, hi1, first_c) |
             bytes_equal(lo1, hi1, first_d) | bytes_equal(lo1, hi1, first_e);
    for (; opens != 0; opens &= opens - 1) {
      const std::size_t at = i + static_cast<std::size_t>(std::countr_zero(opens));
      if (at < next) continue;
      if (at + 2 < n && !prefixes.has(static_cast<unsigned char>(d[at + 1]), static_cast<unsigned char>(d[at + 2])))
        continue;
      switch (read(at)) {
        case Read::clean: break;
        case Read::dirty: return false;
        case Read::escaped: return text_values_clean_escaped(json, mask, request);
      }
    }
  }
  return carry == 0;  // else a string that does not end
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
  const auto is_json = [&](std::size_t i) { return std::ranges::binary_search(json_parts, i); };  // ascending
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string& part = parts[i];
    if (is_json(i)) detail::decode_printable_escapes(part);
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
  for (std::size_t i = 0; i < parts.size(); ++i)
    rewrite(parts[i], redact, bounds[i], bounds[i + 1], is_json(i) ? TextForm::json : TextForm::plain);
  d.verdict = Verdict::redacted;
  return d;
}

PolicyDecision evaluate_output(const PolicyProfile& profile, std::string& text, TextForm form) {
  const detail::CompiledPolicy& c = profile.compiled();
  PolicyDecision d;
  d.policy_id = c.spec.id;
  if (form == TextForm::json) detail::decode_printable_escapes(text);
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

PolicyDecision answer_not_inspectable(const PolicyProfile& profile, std::string what) {
  PolicyDecision d;
  d.policy_id = profile.compiled().spec.id;
  block_on(d, Rule::answer_not_inspectable, std::move(what));
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
