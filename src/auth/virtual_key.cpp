#include "auth/virtual_key.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>

namespace bulwark::auth {
namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// The bytes a key's body may hold: exactly the alphabet keys are generated from.
constexpr std::array<bool, 256> kIsBase62 = [] {
  std::array<bool, 256> t{};
  for (const char c : kBase62) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

Error rng_error() {
  return Error::gateway(ErrorKind::internal, "CSPRNG failure (RAND_bytes)");
}

}  // namespace

Result<GeneratedSecret> generate_secret() {
  GeneratedSecret g;
  g.secret.reserve(kKeyPrefix.size() + kKeyBodyLength);
  g.secret = kKeyPrefix;
  std::array<unsigned char, 64> buf{};
  std::size_t used = buf.size();
  while (g.secret.size() < kKeyPrefix.size() + kKeyBodyLength) {
    if (used == buf.size()) {
      if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) return std::unexpected(rng_error());
      used = 0;
    }
    const unsigned char b = buf[used++];
    // Rejection sampling: 248 = 4 * 62, so b % 62 is uniform over the accepted bytes.
    if (b < 248) g.secret.push_back(kBase62[b % 62]);
  }
  OPENSSL_cleanse(buf.data(), buf.size());
  g.hash = sha256(g.secret);
  g.display_prefix = g.secret.substr(0, kKeyPrefix.size() + kDisplayPrefixBodyChars);
  return g;
}

namespace {
// SHA-256 of a || b into out[32], with OpenSSL's low-level SHA-256 functions: the same
// hardware-accelerated (SHA-NI) block code as EVP, without EVP's per-digest engine lookup,
// context allocation and cleanse, which cost more than the hash of a key-sized input
// (perf on the request path: ~0.7 us per governed request against ~0.2 for the hash).
// They are deprecated in OpenSSL 3 in favour of EVP, not removed; see docs/governance.md.
void sha256_into(std::string_view a, std::string_view b, unsigned char* out) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, a.data(), a.size());
  SHA256_Update(&ctx, b.data(), b.size());
  SHA256_Final(out, &ctx);
  OPENSSL_cleanse(&ctx, sizeof ctx);  // the state holds the key's last block
#pragma GCC diagnostic pop
}
}  // namespace

void sha256_into(std::string_view data, Digest& out) noexcept {
  sha256_into(data, {}, reinterpret_cast<unsigned char*>(out.data()));
}

std::string sha256(std::string_view data) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  sha256_into(data, {}, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

void sha256_hex(std::string_view a, std::string_view b, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char d[SHA256_DIGEST_LENGTH];
  sha256_into(a, b, d);
  out.resize(2 * SHA256_DIGEST_LENGTH);
  for (std::size_t i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 0xf];
  }
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 0xf]);
  }
  return out;
}

bool looks_like_key(std::string_view s) noexcept {
  if (s.size() != kKeyPrefix.size() + kKeyBodyLength || !s.starts_with(kKeyPrefix)) return false;
  // Every byte, without an early exit: the loop has no branch to mispredict.
  bool ok = true;
  for (const char c : s.substr(kKeyPrefix.size())) ok &= kIsBase62[static_cast<unsigned char>(c)];
  return ok;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> random_id(std::string_view prefix) {
  std::array<unsigned char, 16> buf{};
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) return std::unexpected(rng_error());
  std::string out(prefix);
  out += to_hex(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
  return out;
}

}  // namespace bulwark::auth
