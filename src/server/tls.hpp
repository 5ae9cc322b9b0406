#pragma once
// TLS on the gateway's own listener: the server context (certificate chain, key, minimum
// version, ALPN advertising h2 and http/1.1) and what the handshake negotiated.
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <expected>
#include <memory>
#include <string>

#include "config/config.hpp"

namespace bulwark::server {

// Reads the certificate and key files now; the message names the file and OpenSSL's reason.
std::expected<std::shared_ptr<boost::asio::ssl::context>, std::string> make_server_tls_context(const config::ListenTls& tls);

// True when ALPN selected "h2" on this connection.
bool alpn_is_h2(SSL* ssl) noexcept;

// The ALPN choice from a client's list (wire format: length-prefixed names): h2 when
// offered and allowed, else http/1.1, else none (empty). Exposed for tests.
std::string_view choose_alpn(std::string_view client_list, bool allow_h2) noexcept;

}  // namespace bulwark::server
