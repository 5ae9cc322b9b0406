#include "providers/http/client.hpp"

#include "providers/http/write_now.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

namespace bulwark::providers::http {

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using tcp = asio::ip::tcp;
}  // namespace

std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify, const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  if (verify) {
    ctx->set_verify_mode(asio::ssl::verify_peer);
    if (ca_file.empty()) ctx->set_default_verify_paths();
    else ctx->load_verify_file(ca_file);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);
  }
  return ctx;
}

// Beast reads from the socket as much as the buffer's spare capacity, but at least 512
// bytes: an empty buffer reads 512 at a time, so an ordinary answer (head and JSON) took
// two reads, each with its reactor poll, and a burst of stream events several. Reserved
// once, one read takes what the socket holds.
Connection::Connection(asio::any_io_executor ex, std::string key)
    : deadline(ex, [this] { close(); }), stream_(std::in_place_type<Plain>, ex), key_(std::move(key)) {
  buffer.reserve(kReadBytes);
}
Connection::Connection(asio::any_io_executor ex, asio::ssl::context& tls, std::string key)
    : deadline(ex, [this] { close(); }), stream_(std::in_place_type<Tls>, ex, tls), key_(std::move(key)) {
  buffer.reserve(kReadBytes);
}

tcp::socket& Connection::lowest() noexcept {
  if (auto* t = std::get_if<Tls>(&stream_)) return t->next_layer();
  return std::get<Plain>(stream_);
}

bool Connection::looks_alive() noexcept {
  auto& sock = lowest();
  if (!sock.is_open()) return false;
  char probe;
  const ssize_t n = ::recv(sock.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  return false;  // 0: the peer closed; >0: bytes nobody asked for, the stream is out of step
}

void Connection::close() noexcept {
  boost::system::error_code ec;
  lowest().shutdown(tcp::socket::shutdown_both, ec);
  lowest().close(ec);
}

Error transport_error(const boost::system::error_code& ec, std::string_view during) {
  std::string msg = "upstream ";
  msg += during;
  msg += ": ";
  msg += ec.message();
  if (ec == beast::error::timeout) return Error::transport(ErrorKind::total_timeout, std::move(msg));
  if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable || ec == asio::error::host_not_found ||
      ec == asio::error::host_not_found_try_again)
    return Error::transport(ErrorKind::connect_failed, std::move(msg));
  if (ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated)
    return Error::transport(ErrorKind::connect_failed, std::move(msg));
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == asio::error::eof ||
      ec == beast::http::error::end_of_stream || ec == asio::error::connection_aborted ||
      ec == beast::http::error::partial_message)
    return Error::transport(ErrorKind::connection_reset, std::move(msg));
  if (ec == asio::error::operation_aborted) return Error::transport(ErrorKind::connection_reset, std::move(msg), false);
  if (ec == beast::http::error::body_limit)
    return Error::transport(ErrorKind::upstream_protocol, std::move(msg));
  return Error::transport(ErrorKind::upstream_protocol, std::move(msg));
}

Pool::Pool(asio::any_io_executor executor, std::size_t max_idle_per_destination, std::chrono::milliseconds idle_ttl)
    : executor_(std::move(executor)), max_idle_(max_idle_per_destination), idle_ttl_(idle_ttl) {}

std::size_t Pool::idle_count() const noexcept {
  std::size_t n = 0;
  for (const auto& [_, v] : idle_) n += v.size();
  return n;
}

asio::awaitable<Result<std::unique_ptr<Connection>>> Pool::acquire(Destination dest, Clock::time_point connect_by) {
  if (auto it = idle_.find(dest.key()); it != idle_.end()) {
    auto& list = it->second;
    const auto now = Clock::now();
    while (!list.empty()) {
      std::unique_ptr<Connection> c = std::move(list.back());
      list.pop_back();
      // Under load a connection comes back within microseconds; those skip the liveness
      // probe (a syscall), and if the peer did close one, the exchange's retry-once covers it.
      const auto idle = now - c->idle_since;
      if (idle < idle_ttl_ && (idle < std::chrono::milliseconds(100) || c->looks_alive())) co_return c;
      c->close();
    }
  }
  co_return co_await connect(dest, connect_by);
}

void Pool::release(std::unique_ptr<Connection> conn) {
  if (!conn || conn->buffer.size() != 0) return;
  auto& list = idle_[conn->key()];
  if (list.size() >= max_idle_) {
    conn->close();
    return;
  }
  ++conn->uses_;
  conn->deadline.disarm();
  conn->idle_since = Clock::now();
  list.push_back(std::move(conn));
}

asio::awaitable<Result<std::unique_ptr<Connection>>> Pool::connect(Destination dest, Clock::time_point connect_by) {
  using namespace asio::experimental::awaitable_operators;
  std::vector<tcp::endpoint> endpoints;
  boost::system::error_code ec;
  const auto literal = asio::ip::make_address(dest.host, ec);
  if (!ec) {
    endpoints.emplace_back(literal, dest.port);
  } else {
    tcp::resolver resolver(executor_);
    asio::steady_timer timer(executor_, connect_by);
    auto outcome = co_await (resolver.async_resolve(dest.host, std::to_string(dest.port), use_tuple) ||
                             timer.async_wait(use_tuple));
    if (outcome.index() == 1)
      co_return std::unexpected(Error::transport(ErrorKind::connect_timeout, "upstream DNS lookup timed out"));
    auto [rec, results] = std::get<0>(std::move(outcome));
    if (rec) co_return std::unexpected(transport_error(rec, "DNS lookup"));
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  auto conn = dest.tls ? std::make_unique<Connection>(executor_, *dest.tls_context, dest.key())
                      : std::make_unique<Connection>(executor_, dest.key());
  conn->deadline.arm(connect_by);
  auto [cec, ep] = co_await asio::async_connect(conn->lowest(), endpoints, use_tuple);
  if (cec) {
    Error e = transport_error(conn->deadline.expired() ? beast::error::timeout : cec, "connect");
    if (conn->deadline.expired()) e.kind = ErrorKind::connect_timeout;
    co_return std::unexpected(std::move(e));
  }
  conn->lowest().set_option(tcp::no_delay(true), ec);
  if (auto* tls = conn->tls()) {
    if (!SSL_set_tlsext_host_name(tls->native_handle(), dest.host.c_str()))
      co_return std::unexpected(Error::transport(ErrorKind::connect_failed, "upstream TLS: cannot set SNI"));
    tls->set_verify_callback(asio::ssl::host_name_verification(dest.host));
    auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hec) {
      Error e = transport_error(conn->deadline.expired() ? beast::error::timeout : hec, "TLS handshake");
      if (conn->deadline.expired()) e.kind = ErrorKind::connect_timeout;
      // A certificate that does not verify will not verify on the next try either.
      else if (hec.category() == asio::error::get_ssl_category()) e.retryable = false;
      co_return std::unexpected(std::move(e));
    }
  }
  co_return conn;
}

Error Exchange::fail(const boost::system::error_code& ec, std::string_view during) const {
  return transport_error(conn_.deadline.expired() ? beast::error::timeout : ec, during);
}

asio::awaitable<Status> Exchange::write(const bhttp::request<bhttp::string_body>& req, Clock::time_point deadline) {
  // The head is a handful of fields: writing it by hand costs less than Beast's serializer.
  head_.clear();
  head_ += req.method_string();
  head_ += ' ';
  head_ += req.target();
  head_ += " HTTP/1.1\r\n";
  for (const auto& field : req) {
    head_ += field.name_string();
    head_ += ": ";
    head_ += field.value();
    head_ += "\r\n";
  }
  head_ += "\r\n";
  const std::array<asio::const_buffer, 2> bufs{asio::buffer(head_), asio::buffer(req.body())};
  std::size_t written = 0;
  if (conn_.tls() == nullptr) {
    // What the socket takes at once skips the reactor (write_now.hpp).
    const WrittenNow now = write_now(conn_.lowest(), bufs);
    if (now.error) co_return std::unexpected(fail(now.error, "write"));
    written = now.bytes;
    if (written == asio::buffer_size(bufs)) co_return Status{};
  }
  conn_.deadline.arm(deadline);
  const auto rest = rest_of(bufs, written);
  auto [ec, n] = co_await conn_.visit([&](auto& s) { return asio::async_write(s, rest, use_tuple); });
  if (ec) co_return std::unexpected(fail(ec, "write"));
  co_return Status{};
}

asio::awaitable<Status> Exchange::read_head(Clock::time_point deadline, std::size_t body_limit) {
  parser_.emplace();
  parser_->header_limit(64 * 1024);
  parser_->body_limit(body_limit);
  conn_.deadline.arm(deadline);
  auto [ec, n] = co_await conn_.visit([&](auto& s) { return bhttp::async_read_header(s, conn_.buffer, *parser_, use_tuple); });
  if (ec) co_return std::unexpected(fail(ec, "response headers"));
  received_ = true;
  co_return Status{};
}

asio::awaitable<Result<std::string_view>> Exchange::read_some(Clock::time_point deadline) {
  auto& body = parser_->get().body();
  char* const chunk = conn_.chunk.data();
  const std::size_t cap = conn_.chunk.size();
  // Bytes already buffered (the head's read usually brought the whole body) are parsed
  // before the socket is read: Beast's read of buffered bytes posts its completion, which
  // costs a reactor poll.
  bool read_socket = conn_.buffer.size() == 0;
  while (!parser_->is_done()) {
    body.data = chunk;
    body.size = cap;
    if (read_socket) {
      conn_.deadline.arm(deadline);
      auto [ec, n] = co_await conn_.visit([&](auto& s) { return bhttp::async_read_some(s, conn_.buffer, *parser_, use_tuple); });
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return std::unexpected(fail(ec, "response body"));
    }
    read_socket = true;  // what the parse below leaves is at most a partial token
    // Everything the buffer holds, so a burst of stream events goes out to the caller in
    // one write instead of one write per event.
    while (!parser_->is_done() && body.size > 0 && conn_.buffer.size() > 0) {
      boost::system::error_code pec;
      const std::size_t used = parser_->put(conn_.buffer.data(), pec);
      conn_.buffer.consume(used);
      if (pec && pec != bhttp::error::need_more && pec != bhttp::error::need_buffer)
        co_return std::unexpected(fail(pec, "response body"));
      if (pec || used == 0) break;
    }
    const std::size_t got = cap - body.size;
    if (got > 0) co_return std::string_view(chunk, got);
  }
  co_return std::string_view{};
}
asio::awaitable<Result<std::string>> Exchange::read_all(Clock::time_point deadline, std::size_t limit) {
  std::string out;
  if (auto len = parser_->content_length()) out.reserve(std::min<std::uint64_t>(*len, limit) + 64);
  for (;;) {
    auto piece = co_await read_some(deadline);
    if (!piece) co_return std::unexpected(std::move(piece.error()));
    if (piece->empty()) break;
    if (out.size() + piece->size() > limit)
      co_return std::unexpected(Error::transport(ErrorKind::upstream_protocol, "upstream response body too large", false));
    out.append(*piece);
  }
  co_return out;
}

}  // namespace bulwark::providers::http
