#pragma once
// One HTTP/2 connection on the server side (nghttp2), over any Transport: h2c with prior
// knowledge on plain TCP, or h2 negotiated by ALPN over TLS.
//
// Each request stream becomes its own coroutine on the connection's executor (so on the
// worker's thread: no locks), answered through a pipeline::Downstream whose writes are
// bounded by HTTP/2 flow control: write() completes once the bytes fit in the stream's
// send buffer (at most kStreamHighWater unsent bytes per stream), and a client that stops
// reading is cut off after the write timeout with RST_STREAM(CANCEL).
//
// The connection runs two loops: the reader feeds bytes to nghttp2 (whose callbacks
// collect each stream's headers and body and start its coroutine when the request is
// complete or refused), the writer drains nghttp2's output to the transport whenever
// anything woke it. Graceful shutdown sends GOAWAY: streams in flight finish, new ones are
// refused; an idle connection (no open stream for idle_timeout) does the same.
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "pipeline/downstream.hpp"
#include "server/transport.hpp"

namespace bulwark::server {

struct Http2Options {
  std::size_t max_header_bytes = 16 * 1024;       // name + value + 32 per field (RFC 9113 §6.5.2): beyond, 431
  std::size_t max_body_bytes = 4 * 1024 * 1024;   // beyond: 413
  std::chrono::milliseconds read_timeout{30'000};  // a request's headers and body: beyond, 408
  std::chrono::milliseconds idle_timeout{75'000};  // no open stream: GOAWAY and close
  std::chrono::milliseconds write_timeout{30'000};  // a stream (or the socket) that cannot send: reset (closed)
  std::uint32_t max_concurrent_streams = 128;
  std::uint32_t initial_window = 1u << 20;     // per stream, for request bodies
  std::uint32_t connection_window = 16u << 20;  // whole connection, for request bodies
};

// At most this many unsent response bytes per stream before write() waits.
inline constexpr std::size_t kStreamHighWater = 64 * 1024;

using Http2Request = boost::beast::http::request<boost::beast::http::string_body>;

struct Http2Handlers {
  // A complete request. The downstream is valid until the returned coroutine finishes.
  std::function<boost::asio::awaitable<void>(Http2Request, pipeline::Downstream&, std::chrono::steady_clock::time_point)>
      request;
  // A request the session refused itself (413, 431, 408): answer it on the downstream.
  std::function<boost::asio::awaitable<void>(Error, pipeline::Downstream&)> reject;
  // +1 when a stream's handler starts, -1 once its answer has been written out (or the
  // connection died): the server's drain waits for these.
  std::function<void(int)> busy;
};

class Http2Session {
 public:
  Http2Session(Transport& transport, Http2Options options, Http2Handlers handlers);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Runs the connection until it ends (the peer closed, a protocol error, GOAWAY done, or
  // the idle timeout), then waits for every stream's coroutine. `initial` holds bytes
  // already read from the transport (the client preface, when it was sniffed).
  // The transport must outlive the returned coroutine.
  boost::asio::awaitable<void> run(std::string initial);

  // Graceful shutdown: GOAWAY now, then close once the streams in flight have finished.
  void shutdown();

  struct Stats {
    std::uint64_t streams = 0;  // request streams seen
  };
  Stats stats() const noexcept;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace bulwark::server
