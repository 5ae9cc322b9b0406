// core/json_write.hpp: the escaping must match the byte-at-a-time definition for every byte
// value at every position of the 8-byte scan (the word test may only add false alarms).
#include "core/json_write.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

// The plain definition: JSON's mandatory escapes, short forms where JSON has them.
std::string reference(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out += '"';
  return out;
}

std::string escaped(std::string_view s) {
  std::string out;
  bulwark::json::append_string(out, s);
  return out;
}

TEST(JsonWrite, EveryByteAtEveryOffsetOfTheWordScan) {
  for (int c = 0; c < 256; ++c) {
    for (std::size_t at = 0; at < 19; ++at) {
      std::string s(19, 'a');
      s[at] = static_cast<char>(c);
      ASSERT_EQ(escaped(s), reference(s)) << "byte " << c << " at " << at;
    }
  }
}

TEST(JsonWrite, Utf8AndMixedRunsPassThroughUnchanged) {
  const std::string text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \"quoted\"\\path\n\tend\x01\x7f\xff";
  EXPECT_EQ(escaped(text), reference(text));
  EXPECT_EQ(escaped(""), "\"\"");
  EXPECT_EQ(escaped("12345678"), "\"12345678\"");
  EXPECT_EQ(escaped("1234567\""), "\"1234567\\\"\"");
}

TEST(JsonWrite, AppendEscapedAddsNoQuotes) {
  std::string out = "x";
  bulwark::json::append_escaped(out, "a\"b");
  EXPECT_EQ(out, "xa\\\"b");
}

}  // namespace
