#include "core/digits.hpp"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <string>

namespace bulwark {
namespace {

TEST(Digits, PaddedDigitsKeepTheLastWidthDigits) {
  char out[8];
  put_padded_digits(out, 42, 4);
  EXPECT_EQ(std::string(out, 4), "0042");
  put_padded_digits(out, 1234567, 3);
  EXPECT_EQ(std::string(out, 3), "567");
  put_padded_digits(out, 0, 2);
  EXPECT_EQ(std::string(out, 2), "00");
}

// The same as printf's %016llx, which it replaces, on the edges and on a spread of values.
TEST(Digits, Hex16MatchesPrintf) {
  std::uint64_t v = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t x = i == 0 ? 0 : i == 1 ? UINT64_MAX : i == 2 ? 1 : (v = v * 6364136223846793005ULL + 1442695040888963407ULL);
    char want[17];
    std::snprintf(want, sizeof want, "%016" PRIx64, x);
    char got[16];
    put_hex16(got, x);
    ASSERT_EQ(std::string(got, 16), std::string(want, 16));
  }
}

TEST(Digits, HexDigitValueOfEveryByte) {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const int want = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
    ASSERT_EQ(hex_digit_value(c), want) << b;
  }
}

}  // namespace
}  // namespace bulwark
