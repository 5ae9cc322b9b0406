#pragma once
// Percent-decoding (RFC 3986) of URL path segments and query values: model ids and
// target ids arrive encoded ("anthropic.claude-3%3A0", "openai%2Fgpt-4o").
#include <optional>
#include <string>
#include <string_view>

#include "core/digits.hpp"

namespace bulwark {

// nullopt for a malformed escape ("%2", "%zz") or an encoded NUL. `plus_is_space` for
// query values in form encoding.
inline std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space = false) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit_value(s[i + 1]), lo = hex_digit_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return std::nullopt;
    out.push_back(c);
    i += 2;
  }
  return out;
}

}  // namespace bulwark
