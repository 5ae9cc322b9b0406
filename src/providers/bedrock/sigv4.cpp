#include "providers/bedrock/sigv4.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "core/digits.hpp"

namespace bulwark::bedrock {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr char kHex[] = "0123456789abcdef";

using Digest = std::array<std::uint8_t, 32>;

// OpenSSL 3 looks the algorithm up again on every EVP_Digest() and HMAC() call (an
// implicit fetch, and HMAC() builds a whole EVP_MAC context): for the few short inputs of
// one signature that was most of the signing time. The digest is fetched once, the
// context is kept per thread, and HMAC (RFC 2104) is two digests over it.
const EVP_MD* sha256_md() {
  static EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw std::runtime_error("EVP_MD_fetch(SHA256) failed");
    return fetched;
  }();
  return md;
}

// Incremental SHA-256 on the thread's context: begin(), update()..., end().
class Sha256 {
 public:
  Sha256() : ctx_(context()) {
    if (EVP_DigestInit_ex2(ctx_, sha256_md(), nullptr) != 1) throw std::runtime_error("EVP_DigestInit(sha256) failed");
  }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256() = default;
  void update(const void* data, std::size_t size) {
    if (EVP_DigestUpdate(ctx_, data, size) != 1) throw std::runtime_error("EVP_DigestUpdate(sha256) failed");
  }
  Digest end() {
    Digest out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, out.data(), &len) != 1) throw std::runtime_error("EVP_DigestFinal(sha256) failed");
    return out;
  }

 private:
  // One per thread, reused: a digest never nests inside another on the same thread.
  static EVP_MD_CTX* context() {
    thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx) throw std::runtime_error("EVP_MD_CTX_new failed");
    return ctx.get();
  }
  EVP_MD_CTX* ctx_;
};

Digest sha256(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.end();
}

Digest hmac(std::span<const std::uint8_t> key, std::string_view data) {
  constexpr std::size_t kBlock = 64;
  std::array<std::uint8_t, kBlock> pad{};
  if (key.size() > kBlock) {
    const Digest k = sha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
    std::copy(k.begin(), k.end(), pad.begin());
  } else {
    std::copy(key.begin(), key.end(), pad.begin());
  }
  for (std::uint8_t& b : pad) b ^= 0x36;
  Digest inner;
  {
    Sha256 h;
    h.update(pad.data(), pad.size());
    h.update(data.data(), data.size());
    inner = h.end();
  }
  for (std::uint8_t& b : pad) b ^= 0x36 ^ 0x5c;
  Sha256 h;
  h.update(pad.data(), pad.size());
  h.update(inner.data(), inner.size());
  Digest out = h.end();
  OPENSSL_cleanse(pad.data(), pad.size());
  return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xF];
  }
  return out;
}

char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

bool unreserved(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Malformed escapes stay literal: the client signed whatever bytes it meant, and a
// lenient decode followed by a strict encode matches the SDKs on well-formed input.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_digit_value(s[i + 1]);
      const int lo = hex_digit_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string signature_of(const SigningKey& key, std::string_view sts) {
  return to_hex(hmac(key, sts));
}

}  // namespace

std::vector<std::pair<std::string_view, std::string_view>> SignedHeaders::fields() const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  out.emplace_back("authorization", authorization);
  out.emplace_back("x-amz-date", amz_date);
  if (!content_sha256.empty()) out.emplace_back("x-amz-content-sha256", content_sha256);
  if (!security_token.empty()) out.emplace_back("x-amz-security-token", security_token);
  return out;
}

SigningKey derive_signing_key(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service) {
  std::string k_secret;
  k_secret.reserve(4 + secret_access_key.size());
  k_secret.append("AWS4").append(secret_access_key);
  auto secret_bytes = std::span(reinterpret_cast<const std::uint8_t*>(k_secret.data()), k_secret.size());
  Digest k_date = hmac(secret_bytes, date);
  OPENSSL_cleanse(k_secret.data(), k_secret.size());
  Digest k_region = hmac(k_date, region);
  Digest k_service = hmac(k_region, service);
  return hmac(k_service, "aws4_request");
}

SigningKey SigningKeyCache::get(const Credentials& creds, std::string_view date,
                                std::string_view region, std::string_view service) {
  std::string id;
  id.reserve(creds.access_key_id.size() + region.size() + service.size() + 2);
  id.append(creds.access_key_id).append(1, '\0').append(region).append(1, '\0').append(service);
  Digest fingerprint = sha256(creds.secret_access_key);
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.date == date &&
        CRYPTO_memcmp(it->second.secret_fingerprint.data(), fingerprint.data(), fingerprint.size()) == 0)
      return it->second.key;
  }
  SigningKey key = derive_signing_key(creds.secret_access_key, date, region, service);
  std::lock_guard lock(mu_);
  // Bounded: distinct (key id, region, service) triples are few; a flood means misuse.
  if (entries_.size() >= 1024) entries_.clear();
  entries_[id] = Entry{fingerprint, std::string(date), key};
  return key;
}

std::size_t SigningKeyCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::string format_amz_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto days = floor<std::chrono::days>(secs);
  const year_month_day ymd{days};
  const hh_mm_ss hms{secs - days};
  // Digits by hand: snprintf was a visible share of signing a small request.
  std::string out(16, '0');
  const auto put = [&](std::size_t at, unsigned v, std::size_t width) { put_padded_digits(out.data() + at, v, width); };
  put(0, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  put(4, static_cast<unsigned>(ymd.month()), 2);
  put(6, static_cast<unsigned>(ymd.day()), 2);
  out[8] = 'T';
  put(9, static_cast<unsigned>(hms.hours().count()), 2);
  put(11, static_cast<unsigned>(hms.minutes().count()), 2);
  put(13, static_cast<unsigned>(hms.seconds().count()), 2);
  out[15] = 'Z';
  return out;
}

std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s) {
  using namespace std::chrono;
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len) -> int {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  int y = num(0, 4), mo = num(4, 2), d = num(6, 2), h = num(9, 2), mi = num(11, 2), se = num(13, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0) return std::nullopt;
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days{ymd} + hours{h} + minutes{mi} + seconds{se};
}

std::string hex_sha256(std::string_view data) { return to_hex(sha256(data)); }

std::string uri_encode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  for (unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back("0123456789ABCDEF"[c >> 4]);
      out.push_back("0123456789ABCDEF"[c & 0xF]);
    }
  }
  return out;
}

std::string canonical_uri(std::string_view wire_path, const SigningOptions& options) {
  if (wire_path.empty()) return "/";
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
  if (options.normalize_path) {
    // RFC 3986 dot-segment removal plus empty-segment collapse, as every SDK does for
    // non-S3 services ("//example//" -> "/example/").
    auto raw = split(wire_path, '/');
    for (std::size_t i = 0; i < raw.size(); ++i) {
      std::string_view seg = raw[i];
      bool last = i + 1 == raw.size();
      if (seg.empty() || seg == ".") {
        if (last) trailing_slash = true;
      } else if (seg == "..") {
        if (!segments.empty()) segments.pop_back();
        if (last) trailing_slash = true;
      } else {
        segments.push_back(seg);
      }
    }
    if (segments.empty()) return "/";
  } else {
    std::string_view p = wire_path;
    if (p.front() == '/') p.remove_prefix(1);
    segments = split(p, '/');
  }
  std::string out;
  out.reserve(wire_path.size() + 16);
  for (auto seg : segments) {
    out.push_back('/');
    // The wire path is already encoded once; encoding it again is the "double" encoding
    // AWS specifies for non-S3 services ("v1%3A0" -> "v1%253A0").
    if (options.double_encode_path)
      out += uri_encode(seg, false);
    else
      out.append(seg);
  }
  if (trailing_slash) out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view wire_query) {
  if (wire_query.empty()) return {};
  std::vector<std::pair<std::string, std::string>> params;
  for (auto piece : split(wire_query, '&')) {
    if (piece.empty()) continue;
    auto eq = piece.find('=');
    std::string_view k = piece.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
    params.emplace_back(uri_encode(percent_decode(k), false), uri_encode(percent_decode(v), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out.append(k).push_back('=');
    out.append(v);
  }
  return out;
}

CanonicalHeaders canonical_headers(std::span<const HeaderField> headers) {
  // Normalized names and values go into one buffer (one allocation) and are sorted as
  // offsets into it: this runs for every signed request.
  struct Item {
    std::uint32_t name, name_size, value, value_size, order;
  };
  std::size_t total = 0;
  for (const auto& h : headers) total += h.name.size() + h.value.size();
  std::string buf;
  buf.reserve(total);
  std::vector<Item> items;
  items.reserve(headers.size());
  for (const auto& h : headers) {
    Item item{};
    item.order = static_cast<std::uint32_t>(items.size());
    item.name = static_cast<std::uint32_t>(buf.size());
    for (const char c : trim(h.name)) buf.push_back(ascii_lower(c));
    item.name_size = static_cast<std::uint32_t>(buf.size() - item.name);
    item.value = static_cast<std::uint32_t>(buf.size());
    // Trimmed, runs of spaces collapsed to one.
    bool in_space = false;
    for (const char c : trim(h.value)) {
      if (is_space(c)) {
        if (!in_space) buf.push_back(' ');
        in_space = true;
      } else {
        buf.push_back(c);
        in_space = false;
      }
    }
    item.value_size = static_cast<std::uint32_t>(buf.size() - item.value);
    items.push_back(item);
  }
  const auto name_of = [&](const Item& i) { return std::string_view(buf).substr(i.name, i.name_size); };
  const auto value_of = [&](const Item& i) { return std::string_view(buf).substr(i.value, i.value_size); };
  // Repeated names keep their order of appearance when joined.
  std::sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    const int c = name_of(a).compare(name_of(b));
    return c != 0 ? c < 0 : a.order < b.order;
  });
  CanonicalHeaders out;
  out.block.reserve(buf.size() + 2 * items.size());
  out.names.reserve(buf.size());
  for (std::size_t i = 0; i < items.size();) {
    const std::string_view name = name_of(items[i]);
    out.block.append(name).push_back(':');
    out.block.append(value_of(items[i]));
    std::size_t j = i + 1;
    for (; j < items.size() && name_of(items[j]) == name; ++j) out.block.append(",").append(value_of(items[j]));
    out.block.push_back('\n');
    if (!out.names.empty()) out.names.push_back(';');
    out.names.append(name);
    i = j;
  }
  return out;
}

namespace {
std::string canonical_request_from(const SigningInput& in, const CanonicalHeaders& ch,
                                   std::string_view payload_hash, const SigningOptions& options) {
  std::string out;
  out.reserve(256 + ch.block.size() + in.path.size() + in.query.size());
  out.append(in.method).push_back('\n');
  out.append(canonical_uri(in.path, options)).push_back('\n');
  out.append(canonical_query(in.query)).push_back('\n');
  out.append(ch.block).push_back('\n');
  out.append(ch.names).push_back('\n');
  out.append(payload_hash);
  return out;
}
}  // namespace

std::string canonical_request(const SigningInput& in, std::string_view payload_hash,
                              const SigningOptions& options) {
  return canonical_request_from(in, canonical_headers(in.headers), payload_hash, options);
}

std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service) {
  std::string out;
  out.append(date).append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  std::string out;
  out.append(kAlgorithm).push_back('\n');
  out.append(amz_date).push_back('\n');
  out.append(scope).push_back('\n');
  out.append(hex_sha256(canonical_request));
  return out;
}

SignedHeaders sign(const SigningInput& in, const Credentials& creds, std::string_view region,
                   std::string_view service, std::chrono::system_clock::time_point now,
                   const SigningOptions& options, SigningKeyCache* cache) {
  SignedHeaders out;
  out.amz_date = format_amz_date(now);
  std::string_view date = std::string_view(out.amz_date).substr(0, 8);
  std::string payload_hash =
      options.payload_hash ? std::string(*options.payload_hash) : hex_sha256(in.payload);
  if (options.sign_content_sha256) out.content_sha256 = payload_hash;
  if (creds.has_session_token()) out.security_token = creds.session_token;

  std::vector<HeaderField> headers;
  headers.reserve(in.headers.size() + 3);
  for (const auto& h : in.headers) {
    std::string_view n = trim(h.name);
    if (iequals(n, "authorization") || iequals(n, "x-amz-date")) continue;
    if (creds.has_session_token() && iequals(n, "x-amz-security-token")) continue;
    if (options.sign_content_sha256 && iequals(n, "x-amz-content-sha256")) continue;
    headers.push_back(h);
  }
  headers.push_back({"x-amz-date", out.amz_date});
  if (!out.security_token.empty()) headers.push_back({"x-amz-security-token", out.security_token});
  if (!out.content_sha256.empty()) headers.push_back({"x-amz-content-sha256", out.content_sha256});

  CanonicalHeaders ch = canonical_headers(headers);
  std::string creq = canonical_request_from(in, ch, payload_hash, options);
  std::string scope = credential_scope(date, region, service);
  std::string sts = string_to_sign(out.amz_date, scope, creq);
  SigningKey key = cache ? cache->get(creds, date, region, service)
                         : derive_signing_key(creds.secret_access_key, date, region, service);
  out.signature = signature_of(key, sts);
  OPENSSL_cleanse(key.data(), key.size());
  out.signed_headers = std::move(ch.names);

  out.authorization.reserve(kAlgorithm.size() + 64 + creds.access_key_id.size() + scope.size() +
                            out.signed_headers.size() + out.signature.size());
  out.authorization.append(kAlgorithm)
      .append(" Credential=")
      .append(creds.access_key_id)
      .append("/")
      .append(scope)
      .append(", SignedHeaders=")
      .append(out.signed_headers)
      .append(", Signature=")
      .append(out.signature);
  return out;
}

// ---- Verification ----

std::string_view VerifyError::aws_type() const noexcept {
  switch (failure) {
    case VerifyFailure::missing_authentication: return "MissingAuthenticationTokenException";
    case VerifyFailure::incomplete_signature: return "IncompleteSignatureException";
    case VerifyFailure::unrecognized_client: return "UnrecognizedClientException";
    case VerifyFailure::invalid_signature: return "InvalidSignatureException";
    // JSON-protocol services report a stale signature as InvalidSignatureException with a
    // "Signature expired" message.
    case VerifyFailure::request_expired: return "InvalidSignatureException";
  }
  return "InvalidSignatureException";
}

int VerifyError::http_status() const noexcept {
  return failure == VerifyFailure::incomplete_signature ? 400 : 403;
}

namespace {

std::unexpected<VerifyError> fail(VerifyFailure f, std::string msg) {
  return std::unexpected(VerifyError{f, std::move(msg)});
}

std::optional<std::string_view> find_header(std::span<const HeaderField> headers,
                                            std::string_view name) {
  for (const auto& h : headers)
    if (iequals(trim(h.name), name)) return trim(h.value);
  return std::nullopt;
}

struct ParsedAuthorization {
  std::string_view access_key_id, date, region, service;
  std::string_view signed_headers;
  std::string_view signature;
};

std::expected<ParsedAuthorization, VerifyError> parse_authorization(std::string_view value) {
  if (value.size() <= kAlgorithm.size() || value.substr(0, kAlgorithm.size()) != kAlgorithm ||
      value[kAlgorithm.size()] != ' ')
    return fail(VerifyFailure::incomplete_signature, "Unsupported authorization type");
  std::string_view credential, signed_headers, signature;
  for (auto part : split(value.substr(kAlgorithm.size() + 1), ',')) {
    part = trim(part);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = part.substr(0, eq);
    std::string_view v = part.substr(eq + 1);
    if (k == "Credential") credential = v;
    else if (k == "SignedHeaders") signed_headers = v;
    else if (k == "Signature") signature = v;
  }
  std::string missing;
  if (credential.empty()) missing += "Authorization header requires 'Credential' parameter. ";
  if (signed_headers.empty()) missing += "Authorization header requires 'SignedHeaders' parameter. ";
  if (signature.empty()) missing += "Authorization header requires 'Signature' parameter. ";
  if (!missing.empty()) {
    missing.pop_back();
    return fail(VerifyFailure::incomplete_signature, std::move(missing));
  }
  auto scope = split(credential, '/');
  if (scope.size() != 5 || scope[4] != "aws4_request" || scope[0].empty() || scope[1].size() != 8)
    return fail(VerifyFailure::incomplete_signature,
                "Credential should be of the form <access key>/<date>/<region>/<service>/aws4_request");
  return ParsedAuthorization{scope[0], scope[1], scope[2], scope[3], signed_headers, signature};
}

}  // namespace

std::expected<VerifiedRequest, VerifyError> verify(const SigningInput& received,
                                                   const SecretLookup& lookup,
                                                   std::chrono::system_clock::time_point now,
                                                   const VerifyOptions& options) {
  auto authz = find_header(received.headers, "authorization");
  if (!authz) return fail(VerifyFailure::missing_authentication, "Missing Authentication Token");
  auto parsed = parse_authorization(*authz);
  if (!parsed) return std::unexpected(std::move(parsed.error()));
  const ParsedAuthorization& a = *parsed;

  auto amz_date = find_header(received.headers, "x-amz-date");
  if (!amz_date)
    return fail(VerifyFailure::incomplete_signature,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  auto signed_at = parse_amz_date(*amz_date);
  if (!signed_at)
    return fail(VerifyFailure::incomplete_signature, "X-Amz-Date must be in the ISO8601 Long Format");
  if (a.date != amz_date->substr(0, 8))
    return fail(VerifyFailure::invalid_signature,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
                    std::string(a.date) + "' != '" + std::string(amz_date->substr(0, 8)) + "'");
  if (!options.region.empty() && a.region != options.region)
    return fail(VerifyFailure::invalid_signature, "Credential should be scoped to a valid region.");
  if (!options.service.empty() && a.service != options.service)
    return fail(VerifyFailure::invalid_signature,
                "Credential should be scoped to correct service: '" + std::string(options.service) + "'.");

  auto secret = lookup(a.access_key_id);
  if (!secret)
    return fail(VerifyFailure::unrecognized_client, "The security token included in the request is invalid.");
  auto token = find_header(received.headers, "x-amz-security-token");
  if (!secret->session_token.empty() || token) {
    if (!token || !equal_constant_time(*token, secret->session_token))
      return fail(VerifyFailure::unrecognized_client,
                  "The security token included in the request is invalid.");
  }

  // Only the headers the client said it signed, in any case and any order.
  auto names = split(a.signed_headers, ';');
  if (std::find(names.begin(), names.end(), "host") == names.end())
    return fail(VerifyFailure::invalid_signature,
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  std::vector<HeaderField> signed_fields;
  for (const auto& h : received.headers) {
    std::string name = lower(trim(h.name));
    if (std::find(names.begin(), names.end(), name) != names.end()) signed_fields.push_back(h);
  }
  CanonicalHeaders ch = canonical_headers(signed_fields);
  const std::string_view kMismatch =
      "The request signature we calculated does not match the signature you provided. Check your "
      "AWS Secret Access Key and signing method. Consult the service documentation for details.";
  if (ch.names != a.signed_headers) return fail(VerifyFailure::invalid_signature, std::string(kMismatch));

  std::string payload_hash = hex_sha256(received.payload);
  if (auto claimed = find_header(received.headers, "x-amz-content-sha256");
      claimed && *claimed != payload_hash)
    return fail(VerifyFailure::invalid_signature,
                "The provided 'x-amz-content-sha256' header does not match what was computed.");

  std::string creq = canonical_request_from(received, ch, payload_hash, options.signing);
  std::string scope = credential_scope(a.date, a.region, a.service);
  std::string sts = string_to_sign(*amz_date, scope, creq);
  SigningKey key = options.keys != nullptr
                       ? options.keys->get(Credentials{std::string(a.access_key_id), secret->secret_access_key, secret->session_token},
                                           a.date, a.region, a.service)
                       : derive_signing_key(secret->secret_access_key, a.date, a.region, a.service);
  std::string expected = signature_of(key, sts);
  OPENSSL_cleanse(key.data(), key.size());
  if (!equal_constant_time(expected, a.signature))
    return fail(VerifyFailure::invalid_signature, std::string(kMismatch));

  auto skew = now - *signed_at;
  if (skew > options.max_skew || -skew > options.max_skew) {
    auto minutes = std::chrono::duration_cast<std::chrono::minutes>(options.max_skew).count();
    std::string msg;
    if (skew > options.max_skew)
      msg = "Signature expired: " + std::string(*amz_date) + " is now earlier than " +
            format_amz_date(now - options.max_skew) + " (" + format_amz_date(now) + " - " +
            std::to_string(minutes) + " min.)";
    else
      msg = "Signature not yet current: " + std::string(*amz_date) + " is still later than " +
            format_amz_date(now + options.max_skew) + " (" + format_amz_date(now) + " + " +
            std::to_string(minutes) + " min.)";
    return fail(VerifyFailure::request_expired, std::move(msg));
  }
  return VerifiedRequest{std::string(a.access_key_id), std::string(a.region), std::string(a.service)};
}

}  // namespace bulwark::bedrock
