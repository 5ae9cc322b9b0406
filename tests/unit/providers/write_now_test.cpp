// write_now against a real loopback socket: a write the socket takes whole, and one too
// large for it, finished asynchronously from where write_now stopped.
#include "providers/http/write_now.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <string>

namespace http = bulwark::providers::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

struct Pair {
  asio::io_context io;
  tcp::socket writer{io}, reader{io};
  Pair() {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    writer.connect(acc.local_endpoint());
    reader = acc.accept();
  }
};

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

}  // namespace

TEST(WriteNow, ASocketWithRoomTakesTheWholeWriteAtOnce) {
  Pair p;
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n", body = pattern(3000);
  const std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
  const http::WrittenNow now = http::write_now(p.writer, bufs);
  EXPECT_FALSE(now.error);
  EXPECT_EQ(now.bytes, head.size() + body.size());
  std::string got(head.size() + body.size(), '\0');
  asio::read(p.reader, asio::buffer(got));
  EXPECT_EQ(got, head + body);
}

TEST(WriteNow, AWriteTooLargeForTheSocketStopsWithoutBlockingAndTheRestFollows) {
  Pair p;
  const std::string head(100, 'h'), body = pattern(32u << 20);  // far beyond loopback's buffers
  const std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
  const http::WrittenNow now = http::write_now(p.writer, bufs);
  ASSERT_FALSE(now.error) << now.error.message();
  ASSERT_GT(now.bytes, 0u);
  ASSERT_LT(now.bytes, head.size() + body.size());
  std::string got;
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        co_await asio::async_write(p.writer, http::rest_of(bufs, now.bytes), asio::use_awaitable);
        p.writer.shutdown(tcp::socket::shutdown_send);
      },
      asio::detached);
  asio::co_spawn(
      p.io,
      [&]() -> asio::awaitable<void> {
        std::array<char, 65536> chunk;
        for (;;) {
          auto [ec, n] = co_await p.reader.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
          got.append(chunk.data(), n);
          if (ec) break;
        }
      },
      asio::detached);
  p.io.run();
  ASSERT_EQ(got.size(), head.size() + body.size());
  EXPECT_TRUE(got == head + body);
}

TEST(WriteNow, APeerThatHasGoneIsAnErrorNotASignal) {
  Pair p;
  p.reader.close();
  const std::string body = pattern(1 << 20);
  http::WrittenNow now;
  for (int i = 0; i < 50 && !now.error; ++i) now = http::write_now(p.writer, asio::buffer(body));  // the RST arrives after a first write
  EXPECT_TRUE(now.error);
}
