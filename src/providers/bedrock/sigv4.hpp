#pragma once
// AWS Signature Version 4 (header signing) for Bedrock, and the matching verifier the fake
// provider uses to check what the gateway sends. Pure functions over the request's wire
// pieces; nothing here does I/O.
#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "providers/bedrock/credentials.hpp"

namespace bulwark::bedrock {

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// The request as it goes on the wire. Views: the caller keeps the bytes alive.
struct SigningInput {
  std::string_view method;   // "POST"
  std::string_view path;     // percent-encoded as sent: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
  std::string_view query;    // without '?', as sent; may be empty
  std::span<const HeaderField> headers;  // must include "host"; every one given is signed
  std::string_view payload;
};

struct SigningOptions {
  // Every service but S3 normalizes the path (drops "." / ".." and empty segments) and
  // URI-encodes each segment of the already-encoded wire path once more.
  bool normalize_path = true;
  bool double_encode_path = true;
  // Sends and signs x-amz-content-sha256 with the payload hash.
  bool sign_content_sha256 = true;
  // A precomputed payload hash (hex) or "UNSIGNED-PAYLOAD"; hashed from payload when unset.
  std::optional<std::string_view> payload_hash;
};

// Headers to add to the request. The caller sends these alongside the ones it signed.
struct SignedHeaders {
  std::string authorization;   // "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
  std::string amz_date;        // x-amz-date: "20150830T123600Z"
  std::string content_sha256;  // x-amz-content-sha256, empty unless sign_content_sha256
  std::string security_token;  // x-amz-security-token, empty without a session token
  std::string signature;       // hex, also inside authorization
  std::string signed_headers;  // "host;x-amz-date", also inside authorization

  // (name, value) pairs of the non-empty headers above, lower-case names. Views into
  // *this: keep the SignedHeaders alive while using them.
  std::vector<std::pair<std::string_view, std::string_view>> fields() const;
};

using SigningKey = std::array<std::uint8_t, 32>;

// kSecret -> kDate -> kRegion -> kService -> kSigning. date is "YYYYMMDD".
SigningKey derive_signing_key(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service);

// Derived keys live for a UTC day per (key id, region, service); deriving one costs four
// HMACs, which is most of a small request's signing time. Thread-safe.
class SigningKeyCache {
 public:
  SigningKey get(const Credentials& creds, std::string_view date, std::string_view region,
                 std::string_view service);
  std::size_t size() const;

 private:
  struct Entry {
    std::array<std::uint8_t, 32> secret_fingerprint;  // a changed secret misses the cache
    std::string date;
    SigningKey key;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
};

// "20150830T123600Z"
std::string format_amz_date(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s);

std::string hex_sha256(std::string_view data);

// RFC 3986 unreserved characters pass, every other byte becomes %XX (upper-case hex).
std::string uri_encode(std::string_view s, bool keep_slash);
std::string canonical_uri(std::string_view wire_path, const SigningOptions& options = {});
std::string canonical_query(std::string_view wire_query);

struct CanonicalHeaders {
  std::string block;   // "name:value\n" per header, sorted by name
  std::string names;   // "host;x-amz-date"
};
// Lower-cases names, trims values and collapses runs of spaces, joins repeated names with ','.
CanonicalHeaders canonical_headers(std::span<const HeaderField> headers);

// The canonical request of exactly these headers (nothing added).
std::string canonical_request(const SigningInput& in, std::string_view payload_hash,
                              const SigningOptions& options = {});
std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service);
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);

// Signs in.headers plus x-amz-date, x-amz-security-token (when creds carry a session token)
// and x-amz-content-sha256 (when asked). Any of those three already in in.headers, and any
// Authorization header, is replaced rather than signed twice.
SignedHeaders sign(const SigningInput& in, const Credentials& creds, std::string_view region,
                   std::string_view service, std::chrono::system_clock::time_point now,
                   const SigningOptions& options = {}, SigningKeyCache* cache = nullptr);

// ---- Verification (the fake provider's side) ----

enum class VerifyFailure : std::uint8_t {
  missing_authentication,  // no Authorization header
  incomplete_signature,    // malformed Authorization, missing x-amz-date, bad scope
  unrecognized_client,     // unknown access key id or wrong session token
  invalid_signature,       // signature or payload hash does not match
  request_expired,         // x-amz-date more than the allowed skew away from now
};

struct VerifyError {
  VerifyFailure failure = VerifyFailure::invalid_signature;
  std::string message;  // AWS's wording where AWS has one
  // The x-amzn-errortype AWS sends for it, and its HTTP status.
  std::string_view aws_type() const noexcept;
  int http_status() const noexcept;
};

struct VerifierSecret {
  std::string secret_access_key;
  std::string session_token;  // non-empty: requests must carry exactly this token
};
using SecretLookup = std::function<std::optional<VerifierSecret>(std::string_view access_key_id)>;

struct VerifyOptions {
  std::string_view region;   // expected in the credential scope; empty accepts any
  std::string_view service;  // expected in the credential scope; empty accepts any
  std::chrono::seconds max_skew{300};  // AWS rejects requests dated over 5 minutes away
  SigningOptions signing;
  // Derived keys reused across requests (four HMACs each otherwise); nullptr derives anew.
  SigningKeyCache* keys = nullptr;
};

struct VerifiedRequest {
  std::string access_key_id;
  std::string region;
  std::string service;
};

// received.headers are all the request's headers (Authorization and x-amz-* included);
// only those the Authorization header names are canonicalized. Compares in constant time.
std::expected<VerifiedRequest, VerifyError> verify(const SigningInput& received,
                                                   const SecretLookup& lookup,
                                                   std::chrono::system_clock::time_point now,
                                                   const VerifyOptions& options = {});

}  // namespace bulwark::bedrock
