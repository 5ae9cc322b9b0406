#include "policy/segmenter.hpp"

#include <algorithm>

namespace bulwark::policy {
namespace {

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";
constexpr std::size_t kMaxPemLabel = 48;

using detail::Tri;

Tri starts_with(std::string_view t, std::size_t i, std::string_view lit) noexcept {
  const std::size_t m = std::min(t.size() - i, lit.size());
  if (t.substr(i, m) != lit.substr(0, m)) return Tri::no;
  return m == lit.size() ? Tri::yes : Tri::partial;
}

bool label_char(char c) noexcept { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' '; }
bool pem_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool chunk_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=' || c == ':' || c == ',' || c == '-';
}

struct Pem {
  Tri state;
  std::size_t end;
};

// Header, then chunks of base64 (or RFC 1421 header words) separated by whitespace or
// literal "\n" escapes, then an optional footer. Without a footer the block ends after
// the last chunk of at least 4 bytes, so a few words after a truncated key may be
// swallowed; that errs on the side of not leaking key material.
Pem pem_block(std::string_view t, std::size_t pos, bool eof) noexcept {
  const std::size_t n = t.size();
  const Pem need{eof ? Tri::no : Tri::partial, 0};
  switch (starts_with(t, pos, kBegin)) {
    case Tri::no: return {Tri::no, 0};
    case Tri::partial: return need;
    case Tri::yes: break;
  }
  std::size_t j = pos + kBegin.size();
  const std::size_t label_start = j;
  while (j < n && j - label_start < kMaxPemLabel && label_char(t[j])) ++j;
  if (j == n) return need;
  switch (starts_with(t, j, kDashes)) {
    case Tri::no: return {Tri::no, 0};
    case Tri::partial: return need;
    case Tri::yes: break;
  }
  if (!t.substr(label_start, j - label_start).ends_with("PRIVATE KEY")) return {Tri::no, 0};
  j += kDashes.size();

  const std::size_t limit = pos + kMaxPemBytes;
  const Pem pending{Tri::partial, 0};
  std::size_t good = j;
  for (;;) {
    std::size_t k = j;
    for (;;) {
      if (k >= limit) return {Tri::yes, good};
      if (k == n) return eof ? Pem{Tri::yes, good} : pending;
      if (pem_space(t[k])) {
        ++k;
        continue;
      }
      if (t[k] == '\\') {
        if (k + 1 == n) return eof ? Pem{Tri::yes, good} : pending;
        if (t[k + 1] == 'n' || t[k + 1] == 'r') {
          k += 2;
          continue;
        }
      }
      break;
    }
    if (t[k] == '-') {
      const Tri e = starts_with(t, k, kEnd);
      if (e == Tri::partial) return eof ? Pem{Tri::yes, good} : pending;
      if (e == Tri::yes) {
        std::size_t f = k + kEnd.size();
        const std::size_t ls = f;
        while (f < n && f - ls < kMaxPemLabel && label_char(t[f])) ++f;
        if (f == n) return eof ? Pem{Tri::yes, good} : pending;
        const Tri d = starts_with(t, f, kDashes);
        if (d == Tri::partial) return eof ? Pem{Tri::yes, good} : pending;
        if (d == Tri::no) return {Tri::yes, good};
        f += kDashes.size();
        return {Tri::yes, f > limit ? good : f};
      }
    }
    std::size_t c = k;
    while (c < n && c < limit && chunk_char(t[c])) {
      if (t[c] == '-') {
        const Tri d = starts_with(t, c, kDashes);
        if (d == Tri::yes) break;
        if (d == Tri::partial && !eof) return pending;
      }
      ++c;
    }
    if (c == limit) return {Tri::yes, limit};
    if (c == n && !eof) return pending;
    if (c - k < 4) return {Tri::yes, good};
    good = c;
    j = c;
  }
}

}  // namespace

namespace detail {

Tri pem_header_at(std::string_view t, std::size_t i) noexcept { return starts_with(t, i, kBegin); }

Step pem_step(std::string_view t, std::size_t pos, bool eof) noexcept {
  const Pem p = pem_block(t, pos, eof);
  if (p.state == Tri::partial) return {};
  if (p.state == Tri::yes) return {StepKind::pem, p.end, 0};
  return {StepKind::segment, 0, 0};  // not a PEM block: scan as an ordinary segment
}

}  // namespace detail

}  // namespace bulwark::policy
