#pragma once
// Fixed-width decimal and hex fields (dates, fractions of a second or a dollar, request
// ids) written by hand: snprintf was a visible share of the request path where these are
// made.
#include <cstddef>
#include <cstdint>

namespace bulwark {

// The last `width` decimal digits of v at out[0, width), zero-padded on the left.
inline void put_padded_digits(char* out, std::uint64_t v, std::size_t width) noexcept {
  for (std::size_t i = width; i-- > 0; v /= 10) out[i] = static_cast<char>('0' + v % 10);
}

// The value of a hex digit (either case); -1 for any other byte.
inline int hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// v as 16 lower-case hex digits at out[0, 16).
inline void put_hex16(char* out, std::uint64_t v) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 16; i-- > 0; v >>= 4) out[i] = kHex[v & 0xf];
}

}  // namespace bulwark
