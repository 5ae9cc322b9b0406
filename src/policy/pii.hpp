#pragma once
// PII and secret detectors. Candidates come from cheap byte checks and RE2 patterns
// (compiled once per process); checksums and ranges are validated in code. Only ASCII
// forms are recognised. What each detector accepts:
//
// email  local@domain.tld: local part [A-Za-z0-9._%+-]{1,64}, dot-separated domain labels
//        of letters, digits and inner '-', a 2-24 letter TLD. Image names such as
//        "icon@2x.png" (TLD png/jpg/jpeg/gif/svg/webp) are not addresses. A UTF-8 local
//        part is covered whole; internationalised (non-ASCII) domains are not recognised.
// phone  (a) international: '+', country code, then groups separated by space, '.', '-' or
//        a parenthesised area code; 8-15 digits not counting a "(0)" trunk prefix.
//        (b) North American: "(415) 555-2671", "415-555-2671", "415.555.2671",
//        "415 555 2671", optional "1-" prefix; area and exchange start with 2-9 and both
//        separators are the same. (c) national with trunk 0: "020 7946 0958",
//        "06 12 34 56 78", "030-12345678": one separator kind throughout, 10-12 digits.
//        Not phones: bare digit runs, groups inside a longer spaced number, "00"
//        international prefixes, numbers after '#' or after order/invoice/ticket/
//        tracking/ref/account/case/sku/serial (optionally followed by no/nr/number/id),
//        dates, versions.
// card   13-19 digits, either unseparated or in groups of 3-6 joined by one kind of
//        separator (space or '-'); Luhn-valid and with a known IIN and length (Visa,
//        Mastercard incl. 2221-2720, Amex, Discover, Diners, JCB, UnionPay, Maestro, Mir).
//        Digits glued to a letter or a decimal point are not a card.
// iban   Uppercase country code with a known length, two check digits, then the BBAN;
//        unspaced or with single spaces after every 4 characters; ISO 7064 mod-97 valid.
// ssn    US SSN written AAA-GG-SSSS; area 000, 666 and 900-999, group 00 and serial 0000
//        are never issued and are rejected. Bare 9-digit runs are not reported.
// ipv4   Dotted quad, each part 0-255 without leading zeros; not after a letter
//        ("v1.2.3.4"), not part of a longer dotted number, not after the word "version".
// ipv6   Full and "::"-compressed forms, with an optional dotted-quad tail; at least two
//        groups and one decimal digit, so "::", "::1", "std::string" and "dead::beef"
//        are not reported.
// secret sk-... (OpenAI incl. sk-proj-, Anthropic sk-ant-; 20+ chars with a digit and a
//        letter), AKIA/ASIA + 16 [0-9A-Z] (AWS access key ids), ghp_/gho_/ghu_/ghs_/ghr_
//        + 36+ (GitHub), github_pat_ + 22+, xox[baprs]- + 10+ (Slack), JWTs
//        (eyJ...eyJ...sig), PEM "PRIVATE KEY" blocks, and any token of 16+ chars of
//        [A-Za-z0-9_-+/.#$%] with 2+ character classes and Shannon entropy >= 3 bits/char
//        right after a word containing key/secret/token/password/pwd/credential/bearer/
//        auth followed by ':', '=', ':=', '=>', "is" or a space (quotes allowed).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "policy/segmenter.hpp"

namespace bulwark::policy {

enum class PiiKind : std::uint8_t { email, phone, card, iban, ssn, ipv4, ipv6, secret };
inline constexpr std::size_t kPiiKindCount = 8;
inline constexpr std::array<PiiKind, kPiiKindCount> kAllPiiKinds = {
    PiiKind::email, PiiKind::phone, PiiKind::card, PiiKind::iban,
    PiiKind::ssn,   PiiKind::ipv4,  PiiKind::ipv6, PiiKind::secret};

// Stable lower-case name for config, logs and audit records ("email", "card", ...).
std::string_view name_of(PiiKind kind) noexcept;
// The text that replaces a redacted finding: "[REDACTED:EMAIL]".
std::string_view redaction_label(PiiKind kind) noexcept;

// How a scanned text is written. Detection is the same for both; a redaction of JSON
// text (a tool call's `arguments`) keeps it valid JSON: a label never cuts an escape
// sequence, and a finding in a number (a card number written as 4111111111111111)
// replaces the whole number with the label as a string ("[REDACTED:CARD]").
enum class TextForm : std::uint8_t { plain, json };

using PiiMask = std::uint16_t;
constexpr PiiMask mask_of(PiiKind kind) noexcept {
  return static_cast<PiiMask>(1U << static_cast<unsigned>(kind));
}
inline constexpr PiiMask kAllPii = (1U << kPiiKindCount) - 1;

struct Finding {
  PiiKind kind;
  std::size_t offset;  // bytes into the scanned text
  std::size_t length;
  friend bool operator==(const Finding&, const Finding&) = default;
};

// Validators, exposed for tests and for callers that already hold a candidate.
bool luhn_valid(std::string_view digits) noexcept;               // digits only
bool card_number_plausible(std::string_view digits) noexcept;    // IIN + length + Luhn
std::size_t iban_length(std::string_view country) noexcept;      // 0 when unknown
bool iban_valid(std::string_view compact) noexcept;              // no spaces, uppercase
bool ssn_valid(int area, int group, int serial) noexcept;
bool is_ipv4(std::string_view text) noexcept;
bool is_ipv6(std::string_view text) noexcept;  // syntax only, any number of groups
double shannon_entropy(std::string_view text) noexcept;          // bits per byte

// Whether any enabled detector could match a segment with these traits and length;
// false for most words, which are then skipped without a call.
inline bool segment_may_match(std::uint8_t traits, std::size_t len, bool pem,
                              PiiMask enabled) noexcept {
  if (pem) return true;
  if (len < 5) return false;
  if (len >= 15 && (enabled & mask_of(PiiKind::secret))) return true;
  // Every other detector needs a digit, an '@' or a ':'.
  return (traits & (seg_trait::digit | seg_trait::at | seg_trait::colon)) != 0;
}

// False when no segment of `text` can pass segment_may_match (so detect_pii finds
// nothing): one pass over the bytes with the segmenter's classes and soft joins, no
// detector. True when one might, or when the text holds "-----" (a PEM block's rules).
bool pii_may_match(std::string_view text, PiiMask enabled) noexcept;
namespace detail {
// pii_may_match's answer by a walk over every byte, without the PEM rule and the SSE2
// pass in front (exposed for the test that the two agree).
bool pii_may_match_bytes(std::string_view text, PiiMask enabled) noexcept;
}  // namespace detail

// Appends the findings of one segment [begin, end) of `text` (see segmenter.hpp), sorted
// and non-overlapping. Only text[begin - kLookbehindBytes, end) is read.
void scan_segment(std::string_view text, std::size_t begin, std::size_t end, bool pem,
                  std::uint8_t traits, PiiMask enabled, std::vector<Finding>& out);

// One-shot scan of a whole text; appends sorted, non-overlapping findings.
void detect_pii(std::string_view text, PiiMask enabled, std::vector<Finding>& out);
std::vector<Finding> detect_pii(std::string_view text, PiiMask enabled = kAllPii);

}  // namespace bulwark::policy
