// server/tls and the `tls:` config section: ALPN choice, the server context from PEM
// files (a key pair made here with OpenSSL), and what the config accepts.
#include "server/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <string>

#include "config/config.hpp"
#include "support/temp_dir.hpp"

namespace {

using bulwark::server::choose_alpn;
using bulwark::server::make_server_tls_context;
namespace config = bulwark::config;

std::string wire(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto n : names) {
    out += static_cast<char>(n.size());
    out += n;
  }
  return out;
}

TEST(ChooseAlpn, PrefersH2ThenHttp11) {
  EXPECT_EQ(choose_alpn(wire({"http/1.1", "h2"}), true), "h2");
  EXPECT_EQ(choose_alpn(wire({"h2", "http/1.1"}), false), "http/1.1");
  EXPECT_EQ(choose_alpn(wire({"http/1.1"}), true), "http/1.1");
  EXPECT_EQ(choose_alpn(wire({"h2"}), false), "");
  EXPECT_EQ(choose_alpn(wire({"spdy/3", "h2c"}), true), "");
  EXPECT_EQ(choose_alpn(std::string("\x05h2"), true), "") << "a truncated list is ignored";
  EXPECT_EQ(choose_alpn("", true), "");
}

// Writes a self-signed certificate and its key (P-256) as PEM files.
void write_pair(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST(ServerTlsContext, LoadsAMatchingPair) {
  bulwark::test::TempDir dir;
  write_pair((dir / "cert.pem").string(), (dir / "key.pem").string());
  config::ListenTls t{(dir / "cert.pem").string(), (dir / "key.pem").string(), "1.3", true};
  auto ctx = make_server_tls_context(t);
  ASSERT_TRUE(ctx) << ctx.error();
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*ctx)->native_handle()), TLS1_3_VERSION);
}

TEST(ServerTlsContext, NamesTheFileThatFails) {
  bulwark::test::TempDir dir;
  write_pair((dir / "cert.pem").string(), (dir / "key.pem").string());
  write_pair((dir / "other.pem").string(), (dir / "other.key").string());
  auto missing = make_server_tls_context({(dir / "nope.pem").string(), (dir / "key.pem").string(), "1.2", true});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("tls.cert_file"), std::string::npos) << missing.error();
  auto mismatch = make_server_tls_context({(dir / "cert.pem").string(), (dir / "other.key").string(), "1.2", true});
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().find("tls.key_file"), std::string::npos) << mismatch.error();
  EXPECT_NE(mismatch.error().find("mismatch"), std::string::npos) << mismatch.error();
}

constexpr std::string_view kModels = "models:\n  m: {targets: [{provider: p, model: x}]}\nproviders:\n  p: {kind: openai, base_url: http://127.0.0.1:1/v1}\n";

config::LoadResult load(std::string top) {
  return config::load_string(top + std::string(kModels), [](std::string_view) { return std::nullopt; });
}

TEST(ListenTlsConfig, OffByDefault) {
  auto c = load("");
  ASSERT_TRUE(c);
  EXPECT_FALSE((*c)->tls);
}

TEST(ListenTlsConfig, ReadsFilesVersionAndHttp2) {
  auto c = load("tls:\n  cert_file: /etc/bulwark/cert.pem\n  key_file: /etc/bulwark/key.pem\n  min_version: 1.3\n  http2: false\n");
  ASSERT_TRUE(c);
  ASSERT_TRUE((*c)->tls);
  EXPECT_EQ((*c)->tls->cert_file, "/etc/bulwark/cert.pem");
  EXPECT_EQ((*c)->tls->key_file, "/etc/bulwark/key.pem");
  EXPECT_EQ((*c)->tls->min_version, "1.3");
  EXPECT_FALSE((*c)->tls->http2);
  auto d = load("tls: {cert_file: c.pem, key_file: k.pem}\n");
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->tls->min_version, "1.2");
  EXPECT_TRUE((*d)->tls->http2);
}

TEST(ListenTlsConfig, RejectsMistakes) {
  auto first = [](const config::LoadResult& r) { return r ? std::string() : r.error().front().message; };
  EXPECT_NE(first(load("tls: {cert_file: c.pem}\n")).find("needs 'key_file'"), std::string::npos);
  EXPECT_NE(first(load("tls: {cert_file: c.pem, key_file: k.pem, min_version: '1.1'}\n")).find("min_version"), std::string::npos);
  EXPECT_NE(first(load("tls: {cert_file: c.pem, key_file: k.pem, ciphers: x}\n")).find("unknown key 'ciphers' in tls"), std::string::npos);
  EXPECT_NE(first(load("tls: {cert_file: '', key_file: ''}\n")).find("must not be empty"), std::string::npos);
}

}  // namespace
