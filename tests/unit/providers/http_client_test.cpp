// The upstream pool against a real loopback listener: reuse of kept-alive connections,
// and no reuse of one the peer closed.
#include "providers/http/client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

namespace http = bulwark::providers::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Answers each request with a tiny 200, keep-alive; closes after `serve` answers.
asio::awaitable<void> tiny_server(tcp::acceptor& acc, int connections, int per_connection, int& accepted) {
  for (int c = 0; c < connections; ++c) {
    tcp::socket s = co_await acc.async_accept(asio::use_awaitable);
    ++accepted;
    std::string buf;
    for (int i = 0; i < per_connection; ++i) {
      char data[4096];
      while (buf.find("\r\n\r\n") == std::string::npos) {
        const std::size_t n = co_await s.async_read_some(asio::buffer(data), asio::use_awaitable);
        buf.append(data, n);
      }
      buf.erase(0, buf.find("\r\n\r\n") + 4);
      static constexpr std::string_view kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      co_await asio::async_write(s, asio::buffer(kAnswer.data(), kAnswer.size()), asio::use_awaitable);
    }
    s.close();
  }
}

asio::awaitable<std::string> one_exchange(http::Pool& pool, const http::Destination& dest, bool& reused) {
  const auto deadline = http::Clock::now() + std::chrono::seconds(5);
  auto conn = co_await pool.acquire(dest, deadline);
  if (!conn) co_return "acquire failed: " + conn.error().message;
  reused = (*conn)->reused();
  boost::beast::http::request<boost::beast::http::string_body> req{boost::beast::http::verb::get, "/", 11};
  req.set(boost::beast::http::field::host, "x");
  http::Exchange ex(**conn);
  if (auto w = co_await ex.write(req, deadline); !w) co_return "write failed";
  if (auto h = co_await ex.read_head(deadline, 1024); !h) co_return "head failed: " + h.error().message;
  auto body = co_await ex.read_all(deadline, 1024);
  if (!body) co_return "body failed";
  if (ex.keep_alive()) pool.release(std::move(*conn));
  co_return *body;
}

// Runs the coroutine to completion, then stops the loop: idle pooled connections keep a
// lazily re-armed deadline wait pending, so run() alone would linger until it fires.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> result;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result = std::move(value);
    io.stop();
  });
  io.run();
  return std::move(*result);
}

}  // namespace

TEST(UpstreamPool, ReusesKeptAliveConnections) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  int accepted = 0;
  asio::co_spawn(io, tiny_server(acc, 1, 3, accepted), asio::detached);
  http::Pool pool(io.get_executor(), 4, std::chrono::seconds(30));
  const http::Destination dest{false, "127.0.0.1", acc.local_endpoint().port(), nullptr};
  std::vector<bool> reused(3);
  const std::string all_answers = run(
      io,
      [&]() -> asio::awaitable<std::string> {
        std::string all;
        for (int i = 0; i < 3; ++i) {
          bool r = false;
          all += co_await one_exchange(pool, dest, r);
          reused[static_cast<std::size_t>(i)] = r;
        }
        co_return all;
      }());
  EXPECT_EQ(all_answers, "okokok");
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(reused, (std::vector<bool>{false, true, true}));
}

TEST(UpstreamPool, DoesNotReuseAConnectionThePeerClosed) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  int accepted = 0;
  asio::co_spawn(io, tiny_server(acc, 2, 1, accepted), asio::detached);  // closes after each answer
  http::Pool pool(io.get_executor(), 4, std::chrono::seconds(30));
  const http::Destination dest{false, "127.0.0.1", acc.local_endpoint().port(), nullptr};
  const std::string outcome = run(
      io,
      [&]() -> asio::awaitable<std::string> {
        bool r1 = false, r2 = false;
        std::string a = co_await one_exchange(pool, dest, r1);
        asio::steady_timer t(io, std::chrono::milliseconds(200));  // idle long enough to be probed
        co_await t.async_wait(asio::use_awaitable);
        std::string b = co_await one_exchange(pool, dest, r2);
        co_return a + b + (r2 ? "-reused" : "-fresh");
      }());
  EXPECT_EQ(outcome, "okok-fresh");
  EXPECT_EQ(accepted, 2);
}

TEST(UpstreamPool, ConnectionRefusedIsARetryableConnectFailure) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acc.local_endpoint().port();
  acc.close();
  http::Pool pool(io.get_executor(), 4, std::chrono::seconds(30));
  auto r = run(io, pool.acquire({false, "127.0.0.1", port, nullptr}, http::Clock::now() + std::chrono::seconds(2)));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, bulwark::ErrorKind::connect_failed);
  EXPECT_TRUE(r.error().retryable);
}

// Beast reads at least 512 bytes and otherwise the buffer's spare room: a connection's
// buffer is reserved so that the head's read takes the whole answer the socket holds (one
// system call and one reactor poll, not one per 512 bytes).
TEST(UpstreamPool, TheHeadsReadTakesAllTheSocketHolds) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string body(3000, 'x');
  const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + body;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::socket s = co_await acc.async_accept(asio::use_awaitable);
        char data[4096];
        std::string got;
        while (got.find("\r\n\r\n") == std::string::npos) got.append(data, co_await s.async_read_some(asio::buffer(data), asio::use_awaitable));
        co_await asio::async_write(s, asio::buffer(answer), asio::use_awaitable);
        asio::steady_timer hold(s.get_executor(), std::chrono::seconds(2));  // keep the connection open
        co_await hold.async_wait(asio::use_awaitable);
      },
      asio::detached);
  http::Pool pool(io.get_executor(), 4, std::chrono::seconds(30));
  const http::Destination dest{false, "127.0.0.1", acc.local_endpoint().port(), nullptr};
  const std::string outcome = run(
      io,
      [&]() -> asio::awaitable<std::string> {
        const auto deadline = http::Clock::now() + std::chrono::seconds(5);
        auto conn = co_await pool.acquire(dest, deadline);
        if (!conn) co_return "acquire failed";
        boost::beast::http::request<boost::beast::http::string_body> req{boost::beast::http::verb::get, "/", 11};
        req.set(boost::beast::http::field::host, "x");
        http::Exchange ex(**conn);
        if (auto w = co_await ex.write(req, deadline); !w) co_return "write failed";
        asio::steady_timer settle(io, std::chrono::milliseconds(100));  // the whole answer is in the socket
        co_await settle.async_wait(asio::use_awaitable);
        if (auto h = co_await ex.read_head(deadline, 1 << 20); !h) co_return "head failed";
        const std::size_t buffered = (*conn)->buffer.size();
        auto all = co_await ex.read_all(deadline, 1 << 20);
        if (!all) co_return "body failed";
        co_return std::to_string(buffered) + " " + std::to_string(all->size());
      }());
  EXPECT_EQ(outcome, "3000 3000");
}

// A burst of chunked stream events that came in with the head goes to the caller as one
// piece, as a burst read from the socket later does: one write downstream, not one per event.
TEST(UpstreamPool, EventsBufferedWithTheHeadComeOutInOnePiece) {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string answer =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
      "8\r\ndata: a\n\r\n8\r\ndata: b\n\r\n8\r\ndata: c\n\r\n0\r\n\r\n";
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::socket s = co_await acc.async_accept(asio::use_awaitable);
        char data[4096];
        std::string got;
        while (got.find("\r\n\r\n") == std::string::npos) got.append(data, co_await s.async_read_some(asio::buffer(data), asio::use_awaitable));
        co_await asio::async_write(s, asio::buffer(answer), asio::use_awaitable);
        asio::steady_timer hold(s.get_executor(), std::chrono::seconds(2));
        co_await hold.async_wait(asio::use_awaitable);
      },
      asio::detached);
  http::Pool pool(io.get_executor(), 4, std::chrono::seconds(30));
  const http::Destination dest{false, "127.0.0.1", acc.local_endpoint().port(), nullptr};
  const std::string pieces = run(
      io,
      [&]() -> asio::awaitable<std::string> {
        const auto deadline = http::Clock::now() + std::chrono::seconds(5);
        auto conn = co_await pool.acquire(dest, deadline);
        if (!conn) co_return "acquire failed";
        boost::beast::http::request<boost::beast::http::string_body> req{boost::beast::http::verb::get, "/", 11};
        req.set(boost::beast::http::field::host, "x");
        http::Exchange ex(**conn);
        if (auto w = co_await ex.write(req, deadline); !w) co_return "write failed";
        asio::steady_timer settle(io, std::chrono::milliseconds(100));  // the whole answer is in the socket
        co_await settle.async_wait(asio::use_awaitable);
        if (auto h = co_await ex.read_head(deadline, 1 << 20); !h) co_return "head failed";
        std::string out;
        for (;;) {
          auto piece = co_await ex.read_some(deadline);
          if (!piece) co_return "read failed";
          if (piece->empty()) break;
          out += "[" + std::string(*piece) + "]";
        }
        co_return out;
      }());
  EXPECT_EQ(pieces, "[data: a\ndata: b\ndata: c\n]");
}
