#pragma once
// Virtual key secrets: "bwk_" + 40 base62 characters drawn from OpenSSL's CSPRNG
// (40 * log2(62) ~= 238 bits of entropy). Only SHA-256(secret) is stored: with that much
// entropy a fast hash is enough, since no dictionary or brute force can reach the
// preimage; a slow KDF would add cost to every request for no gain.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace bulwark::auth {

inline constexpr std::string_view kKeyPrefix = "bwk_";
inline constexpr std::size_t kKeyBodyLength = 40;
inline constexpr std::size_t kDisplayPrefixBodyChars = 6;

struct GeneratedSecret {
  std::string secret;          // shown to the caller once, never stored
  std::string hash;            // raw 32-byte SHA-256 of secret
  std::string display_prefix;  // "bwk_" + first 6 body characters
};

Result<GeneratedSecret> generate_secret();

// Raw 32-byte SHA-256.
std::string sha256(std::string_view data);
// The same digest into a caller's buffer: no allocation, for the request path.
using Digest = std::array<char, 32>;
void sha256_into(std::string_view data, Digest& out) noexcept;
std::string to_hex(std::string_view bytes);
// Lower-case hex SHA-256 of a || b written over out (64 characters): the audit chain's
// link, computed without concatenating or allocating once out has capacity.
void sha256_hex(std::string_view a, std::string_view b, std::string& out);

// True when s has the shape of a virtual key (prefix, length, alphabet). Cheap filter
// before hashing; says nothing about validity.
bool looks_like_key(std::string_view s) noexcept;

// Constant-time equality (CRYPTO_memcmp). Different lengths compare unequal; the length
// itself is not secret for the values compared here (digests of fixed size).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// 128-bit random identifier as 32 hex characters (key ids, ledger entry ids).
Result<std::string> random_id(std::string_view prefix = {});

}  // namespace bulwark::auth
