#pragma once
// Fixed-width decimal fields (dates, fractions of a second or a dollar) written by hand:
// snprintf was a visible share of the request path where these are made.
#include <cstddef>
#include <cstdint>

namespace bulwark {

// The last `width` decimal digits of v at out[0, width), zero-padded on the left.
inline void put_padded_digits(char* out, std::uint64_t v, std::size_t width) noexcept {
  for (std::size_t i = width; i-- > 0; v /= 10) out[i] = static_cast<char>('0' + v % 10);
}

}  // namespace bulwark
