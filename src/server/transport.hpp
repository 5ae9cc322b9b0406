#pragma once
// The byte pipe an HTTP/2 session runs over: a plain TCP socket (h2c with prior
// knowledge) or a TLS stream (h2 negotiated by ALPN). The session code only sees this.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstddef>
#include <span>
#include <utility>

namespace bulwark::server {

class Transport {
 public:
  using Result = std::pair<boost::system::error_code, std::size_t>;
  virtual ~Transport() = default;
  virtual boost::asio::awaitable<Result> read_some(boost::asio::mutable_buffer into) = 0;
  // Writes all of it (or fails).
  virtual boost::asio::awaitable<Result> write(boost::asio::const_buffer bytes) = 0;
  // Pending operations fail with operation_aborted; the connection stays open.
  virtual void cancel() noexcept = 0;
  // Closes the socket: pending and later operations fail.
  virtual void close() noexcept = 0;
  // Sends FIN after what was written (the peer sees the end; reads go on).
  virtual void shutdown_send() noexcept = 0;
  virtual boost::asio::any_io_executor executor() = 0;
};

namespace detail {
inline boost::asio::ip::tcp::socket& lowest(boost::asio::ip::tcp::socket& s) { return s; }
inline boost::asio::ip::tcp::socket& lowest(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& s) {
  return s.next_layer();
}
}  // namespace detail

// Over a stream the caller owns (it outlives the transport).
template <class Stream>
class StreamTransport final : public Transport {
 public:
  explicit StreamTransport(Stream& s) : stream_(s) {}

  boost::asio::awaitable<Result> read_some(boost::asio::mutable_buffer into) override {
    auto [ec, n] = co_await stream_.async_read_some(into, boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return Result{ec, n};
  }
  boost::asio::awaitable<Result> write(boost::asio::const_buffer bytes) override {
    auto [ec, n] = co_await boost::asio::async_write(stream_, bytes, boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return Result{ec, n};
  }
  void cancel() noexcept override {
    boost::system::error_code ignored;
    detail::lowest(stream_).cancel(ignored);
  }
  void close() noexcept override {
    boost::system::error_code ignored;
    detail::lowest(stream_).shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    detail::lowest(stream_).close(ignored);
  }
  void shutdown_send() noexcept override {
    boost::system::error_code ignored;
    detail::lowest(stream_).shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
  }
  boost::asio::any_io_executor executor() override { return stream_.get_executor(); }

 private:
  Stream& stream_;
};

}  // namespace bulwark::server
