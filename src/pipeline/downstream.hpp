#pragma once
// How the pipeline answers its caller. The server implements this over the client's
// connection; the pipeline never sees sockets, so it stays testable and server-agnostic.
#include <boost/asio/awaitable.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace bulwark::pipeline {

using Header = std::pair<std::string_view, std::string_view>;

class Downstream {
 public:
  virtual ~Downstream() = default;
  // A complete response. Returns false when the client is gone.
  virtual boost::asio::awaitable<bool> send(unsigned status, std::span<const Header> headers, std::string_view content_type,
                                            std::string body) = 0;
  // A streamed response: head, then chunks, then the end.
  virtual boost::asio::awaitable<bool> begin_stream(unsigned status, std::span<const Header> headers,
                                                    std::string_view content_type) = 0;
  virtual boost::asio::awaitable<bool> write(std::string_view bytes) = 0;
  virtual boost::asio::awaitable<bool> end_stream() = 0;
  // Completes when the client hangs up; cancellable (it is raced against the relay).
  // True when the client hung up; false when cancelled (the response finished first).
  virtual boost::asio::awaitable<bool> wait_hangup() = 0;
};

}  // namespace bulwark::pipeline
