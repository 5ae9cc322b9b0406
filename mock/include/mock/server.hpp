#pragma once
// The HTTP side of bulwark-mock: one event loop per worker thread, each with its own
// SO_REUSEPORT acceptor on the same port, executing the engine's plans on real sockets.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "mock/engine.hpp"

namespace bulwark::mock {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port (see Server::port())
  unsigned workers = 1;
  // Required on /v1/*: "Authorization: Bearer <key>" (OpenAI routes) or "x-api-key: <key>"
  // (POST /v1/messages).
  std::optional<std::string> api_key;
  // Bedrock routes (/model/...). With either set, every Bedrock request must carry a valid
  // SigV4 signature by these keys or the bearer token; with neither, no check is made.
  struct AwsKeys {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  // non-empty: requests must carry x-amz-security-token
  };
  std::optional<AwsKeys> aws_keys;
  std::optional<std::string> aws_bearer_token;  // a Bedrock API key
  std::string aws_region;  // expected in the SigV4 scope; empty accepts any region
  std::chrono::seconds aws_max_skew{300};  // x-amz-date may be this far from now
  std::uint64_t seed = 0;              // seeds response ids
  std::size_t body_limit = 64u << 20;
};

class Server {
 public:
  // `engine` and `clock` must outlive the server.
  Server(ServerOptions options, Engine& engine, const Clock& clock);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every worker's acceptor and starts the worker threads.
  Status start();
  // The bound port, valid after a successful start().
  std::uint16_t port() const noexcept;
  // Stops every loop (open connections are dropped) and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bulwark::mock
