#pragma once
// Upstream HTTP/1.1 client: one pool of keep-alive connections per worker (no locks: a
// worker's pool is only touched from its own event loop), plain TCP or TLS with
// certificate verification and SNI. Every operation takes an absolute deadline; the
// caller decides which timeout (connect, first token, idle, total) that deadline encodes.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/error.hpp"
#include "providers/http/deadline.hpp"

namespace bulwark::providers::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

struct Destination {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  asio::ssl::context* tls_context = nullptr;  // required when tls
  // Connections are shared only between destinations with the same trust settings: a
  // connection verified against one provider's CA bundle must never serve another's.
  std::string key() const {
    std::string k = (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
    if (tls) k += "#" + std::to_string(reinterpret_cast<std::uintptr_t>(tls_context));
    return k;
  }
};

// A TLS context that verifies peers against the system store or a CA bundle.
std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify, const std::string& ca_file);

class Connection {
 public:
  using Plain = asio::ip::tcp::socket;
  using Tls = asio::ssl::stream<asio::ip::tcp::socket>;

  Connection(asio::any_io_executor ex, std::string key);                              // plain
  Connection(asio::any_io_executor ex, asio::ssl::context& tls, std::string key);     // TLS

  asio::ip::tcp::socket& lowest() noexcept;
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), stream_);
  }
  Tls* tls() noexcept { return std::get_if<Tls>(&stream_); }
  const std::string& key() const noexcept { return key_; }
  bool reused() const noexcept { return uses_ > 0; }
  // A pooled connection the peer has closed (or that has unread bytes) must not be reused.
  bool looks_alive() noexcept;
  void close() noexcept;

  static constexpr std::size_t kReadBytes = 16 * 1024;  // a socket read's size (see the constructors)
  beast::flat_buffer buffer;
  std::array<char, 16 * 1024> chunk;  // body bytes land here; deliberately not zero-filled
  Deadline deadline;                  // closes the socket when it passes
  Clock::time_point idle_since{};

 private:
  friend class Pool;
  std::variant<Plain, Tls> stream_;
  std::string key_;
  unsigned uses_ = 0;
};

class Pool {
 public:
  Pool(asio::any_io_executor executor, std::size_t max_idle_per_destination, std::chrono::milliseconds idle_ttl);
  // A connection to dest (by value: coroutine parameters must not dangle): a live idle
  // one if any, else a new one. connect_by bounds DNS,
  // TCP connect and the TLS handshake together.
  asio::awaitable<Result<std::unique_ptr<Connection>>> acquire(Destination dest, Clock::time_point connect_by);
  // Returns a connection whose last exchange completed cleanly, for reuse.
  void release(std::unique_ptr<Connection> conn);
  std::size_t idle_count() const noexcept;

 private:
  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(Destination dest, Clock::time_point connect_by);
  asio::any_io_executor executor_;
  std::size_t max_idle_;
  std::chrono::milliseconds idle_ttl_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

// One request/response exchange on a connection, with the body read incrementally.
class Exchange {
 public:
  explicit Exchange(Connection& conn) : conn_(conn) {}
  asio::awaitable<Status> write(const bhttp::request<bhttp::string_body>& req, Clock::time_point deadline);
  // Reads the status line and headers.
  asio::awaitable<Status> read_head(Clock::time_point deadline, std::size_t body_limit);
  const bhttp::response_header<>& head() const { return parser_->get().base(); }
  unsigned status() const { return parser_->get().result_int(); }
  // Next piece of the body as it arrives (empty once the body is complete).
  asio::awaitable<Result<std::string_view>> read_some(Clock::time_point deadline);
  // The rest of the body, at most limit bytes.
  asio::awaitable<Result<std::string>> read_all(Clock::time_point deadline, std::size_t limit);
  bool done() const { return parser_ && parser_->is_done(); }
  bool keep_alive() const { return parser_ && parser_->is_done() && parser_->keep_alive(); }
  bool received_anything() const noexcept { return received_; }

 private:
  Connection& conn_;
  // A failed operation is a timeout when the connection's deadline closed the socket.
  Error fail(const boost::system::error_code& ec, std::string_view during) const;

  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  std::string head_;
  bool received_ = false;
};

// Maps a transport failure to the error the rest of the gateway reasons about.
Error transport_error(const boost::system::error_code& ec, std::string_view during);

}  // namespace bulwark::providers::http
