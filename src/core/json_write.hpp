#pragma once
// Minimal JSON writing into a caller-owned buffer: hot paths (the gateway's logs and
// error bodies, the fake provider's answers) append into one pre-sized string instead
// of building a DOM.
#include <charconv>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace bulwark::json {

// Appends `s` as a JSON string literal, quotes included.
inline void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
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
