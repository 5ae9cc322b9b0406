#pragma once
// Minimal JSON writing into a caller-owned buffer: hot paths (the gateway's logs and
// error bodies, the fake provider's answers) append into one pre-sized string instead
// of building a DOM.
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bulwark::json {

// Appends `s` escaped as the inside of a JSON string literal (no quotes). Text rarely needs
// escaping: runs of plain bytes are found eight at a time and appended in one go.
inline void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  // A byte of the word is < 0x20, '"' or '\\' (bit tricks from "Bit Twiddling Hacks").
  constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const auto needs_escape = [](std::uint64_t w) {
    const std::uint64_t lt20 = (w - kOnes * 0x20) & ~w;
    const std::uint64_t q = w ^ (kOnes * '"'), b = w ^ (kOnes * '\\');
    return ((lt20 | ((q - kOnes) & ~q) | ((b - kOnes) & ~b)) & kHigh) != 0;
  };
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  std::size_t i = 0;
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!needs_escape(w)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out.append(s.data() + run, i - run);
    run = ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(s.data() + run, s.size() - run);
}

// Appends `s` as a JSON string literal, quotes included.
inline void append_string(std::string& out, std::string_view s) {
  out.push_back('"');
  append_escaped(out, s);
  out.push_back('"');
}

template <std::integral T>
inline void append_int(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 bytes hold any 64-bit integer
  out.append(buf, static_cast<std::size_t>(end - buf));
}

inline void append_double(std::string& out, double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // shortest round-trip form fits in 32 bytes
  out.append(buf, static_cast<std::size_t>(end - buf));
}

inline void append_bool(std::string& out, bool v) { out += v ? "true" : "false"; }

}  // namespace bulwark::json
