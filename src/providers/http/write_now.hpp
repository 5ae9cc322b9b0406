#pragma once
// Writing to a plain TCP socket without a trip through the reactor. Asio posts the
// completion of an asynchronous write even when the socket took every byte at once, and
// the scheduler polls the reactor (epoll_wait, a system call) before it runs the posted
// completion: two such writes a proxied request cost two polls. A socket usually takes
// a response whole, so the write is tried at once and only the rest, if any, goes the
// asynchronous way. TLS streams write asynchronously as before (their records are built
// by the stream).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>

namespace bulwark::providers::http {

struct WrittenNow {
  std::size_t bytes = 0;
  boost::system::error_code error;  // a failure other than "would block"
};

// Writes what the socket takes now. The socket's user-level non-blocking flag (which only
// synchronous operations read) is set on first use.
template <class Buffers>
WrittenNow write_now(boost::asio::ip::tcp::socket& socket, const Buffers& buffers) {
  WrittenNow out;
  if (!socket.non_blocking()) socket.non_blocking(true, out.error);
  if (out.error) return out;
  out.bytes = boost::asio::write(socket, buffers, out.error);
  if (out.error == boost::asio::error::would_block || out.error == boost::asio::error::try_again) out.error = {};
  return out;
}

// The part of `buffers` after the first `n` bytes.
template <class Buffers>
boost::beast::buffers_suffix<Buffers> rest_of(const Buffers& buffers, std::size_t n) {
  boost::beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(n);
  return rest;
}

}  // namespace bulwark::providers::http
