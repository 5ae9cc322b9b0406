#include "server/tls.hpp"

#include <openssl/err.h>

#include <system_error>

namespace bulwark::server {
namespace {

namespace ssl = boost::asio::ssl;

std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return {};
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const std::string_view offered(reinterpret_cast<const char*>(in), inlen);
  const std::string_view chosen = choose_alpn(offered, arg != nullptr);
  if (chosen.empty()) return SSL_TLSEXT_ERR_NOACK;  // go on without ALPN: HTTP/1.1
  *out = reinterpret_cast<const unsigned char*>(chosen.data());
  *outlen = static_cast<unsigned char>(chosen.size());
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::string_view choose_alpn(std::string_view list, bool allow_h2) noexcept {
  std::string_view h1;
  for (std::size_t i = 0; i < list.size();) {
    const std::size_t n = static_cast<unsigned char>(list[i]);
    if (n == 0 || i + 1 + n > list.size()) return {};  // malformed
    const std::string_view name = list.substr(i + 1, n);
    if (allow_h2 && name == "h2") return name;
    if (name == "http/1.1") h1 = name;
    i += 1 + n;
  }
  return h1;
}

std::expected<std::shared_ptr<ssl::context>, std::string> make_server_tls_context(const config::ListenTls& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(native, tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // TLS 1.2: forward-secret AEAD suites only (HTTP/2 forbids the rest, RFC 9113 §9.2.2).
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) return std::unexpected("tls.cert_file " + tls.cert_file + ": " + ec.message());
  ctx->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) return std::unexpected("tls.key_file " + tls.key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1)
    return std::unexpected("tls.key_file " + tls.key_file + " does not match tls.cert_file: " + openssl_reason());
  // The callback's argument only says whether h2 may be chosen.
  SSL_CTX_set_alpn_select_cb(native, select_alpn, tls.http2 ? native : nullptr);
  return ctx;
}

bool alpn_is_h2(SSL* ssl) noexcept {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  return len == 2 && data[0] == 'h' && data[1] == '2';
}

}  // namespace bulwark::server
