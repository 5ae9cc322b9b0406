#pragma once
// Cuts text into segments that no PII detector match can cross, so the one-shot scan and
// the streaming redactor see exactly the same units: a segment is complete once the byte
// that ends it has arrived, and its findings never depend on later text.
//
// A segment is a run of token bytes (letters, digits, any byte >= 0x80 and # $ % ( ) + - .
// / : = @ _). Separators (whitespace, control bytes and ! " & ' * , ; < > ? [ \ ] ^ ` { |
// } ~) end it, except a single ' ' between [0-9A-Z)] and [0-9A-Z(+], which joins the
// groups of "4111 1111 1111 1111", "GB82 WEST 1234", "+44 20 7946 0958". A PEM private key
// block (header, base64 lines, footer) is one segment even though it spans lines.
// Segments are capped (kMaxSegmentBytes, kMaxPemBytes) so a stream never holds back more.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bulwark::policy {

inline constexpr std::size_t kMaxSegmentBytes = 4096;
inline constexpr std::size_t kMaxPemBytes = 16384;
// Detectors may look this far before a segment (keywords before a secret, "order #" before
// a number); the streaming redactor keeps that much already-forwarded text.
inline constexpr std::size_t kLookbehindBytes = 64;

// Which byte classes a segment contains; detectors that cannot match are skipped.
namespace seg_trait {
inline constexpr std::uint8_t digit = 1;
inline constexpr std::uint8_t upper = 2;
inline constexpr std::uint8_t at = 4;
inline constexpr std::uint8_t colon = 8;
inline constexpr std::uint8_t dot = 16;
inline constexpr std::uint8_t dash = 32;
}  // namespace seg_trait

enum class StepKind : std::uint8_t {
  gap,        // separators only: never part of a finding
  segment,    // scan it with the detectors
  pem,        // a whole "-----BEGIN ... PRIVATE KEY-----" block
  need_more,  // the end is not decided yet; only when !at_eof
};

struct Step {
  StepKind kind = StepKind::need_more;
  std::size_t end = 0;  // exclusive
  std::uint8_t traits = 0;
};

namespace detail {

inline constexpr std::uint8_t kSep = 0x80;
inline constexpr std::uint8_t kDash = 0x40;  // may start a PEM header: leaves the fast loop

constexpr std::array<std::uint8_t, 256> make_byte_table() {
  std::array<std::uint8_t, 256> t{};
  for (std::size_t c = 0; c < 32; ++c) t[c] = kSep;
  t[127] = kSep;
  constexpr std::string_view seps = " !\"&'*,;<>?[\\]^`{|}~";
  for (char c : seps) t[static_cast<unsigned char>(c)] = kSep;
  for (std::size_t c = '0'; c <= '9'; ++c) t[c] = seg_trait::digit;
  for (std::size_t c = 'A'; c <= 'Z'; ++c) t[c] = seg_trait::upper;
  t['@'] = seg_trait::at;
  t[':'] = seg_trait::colon;
  t['.'] = seg_trait::dot;
  t['-'] = seg_trait::dash | kDash;
  return t;
}
inline constexpr std::array<std::uint8_t, 256> kByteTable = make_byte_table();

enum class Tri : std::uint8_t { no, partial, yes };
// Whether "-----BEGIN " starts at i (partial: the text ends inside it).
Tri pem_header_at(std::string_view text, std::size_t i) noexcept;
// At a '-' that starts a segment: a pem step, need_more, or kind == segment when it is
// not a private key block.
Step pem_step(std::string_view text, std::size_t pos, bool at_eof) noexcept;

inline bool soft_left(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || c == ')';
}
inline bool soft_right(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || c == '(' || c == '+';
}

}  // namespace detail

inline bool is_separator(unsigned char c) noexcept { return (detail::kByteTable[c] & detail::kSep) != 0; }

// The step starting at `pos` (< text.size()). With at_eof the text is complete and the
// answer is never need_more. Inline: it runs once per word of every prompt.
inline Step next_step(std::string_view t, std::size_t pos, bool eof) noexcept {
  using namespace detail;
  const std::size_t n = t.size();
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(t[i]); };
  if (kByteTable[byte(pos)] & kSep) {
    std::size_t i = pos + 1;
    while (i < n && (kByteTable[byte(i)] & kSep)) ++i;
    return {StepKind::gap, i, 0};
  }
  if (t[pos] == '-') {
    const Step p = pem_step(t, pos, eof);
    if (p.kind != StepKind::segment) return p;
  }
  std::size_t i = pos;
  std::uint8_t traits = 0;
  const std::size_t cap = pos + kMaxSegmentBytes;
  const std::size_t fast_end = n < cap ? n : cap;
  for (;;) {
    while (i < fast_end) {
      const std::uint8_t tr = kByteTable[byte(i)];
      if (tr & (kSep | kDash)) break;
      traits |= tr;
      ++i;
    }
    if (i == n) return eof ? Step{StepKind::segment, i, traits} : Step{};
    if (i >= cap) {
      // Never cut inside a UTF-8 sequence.
      std::size_t cut = i;
      while (cut > pos + 1 && (byte(cut) & 0xC0) == 0x80) --cut;
      return {StepKind::segment, cut, traits};
    }
    const unsigned char c = byte(i);
    if (c == '-') {
      if (i > pos) {
        // A PEM block starts its own segment so its header is recognised.
        const Tri p = pem_header_at(t, i);
        if (p == Tri::yes) return {StepKind::segment, i, traits};
        if (p == Tri::partial && !eof) return {};
      }
      traits |= seg_trait::dash;
      ++i;
      continue;
    }
    if (c == ' ' && soft_left(t[i - 1])) {
      if (i + 1 == n) return eof ? Step{StepKind::segment, i, traits} : Step{};
      if (soft_right(t[i + 1])) {
        ++i;
        continue;
      }
    }
    return {StepKind::segment, i, traits};
  }
}

}  // namespace bulwark::policy
