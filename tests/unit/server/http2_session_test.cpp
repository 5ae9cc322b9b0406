// server/http2_session: the framing seen by a real HTTP/2 client. The session runs on its
// own io_context thread over a loopback socket; the client is an nghttp2 client session
// driven by hand over a blocking socket in the test thread.
#include "server/http2_session.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using bulwark::Error;
using bulwark::ErrorKind;
using bulwark::pipeline::Downstream;
using bulwark::pipeline::Header;
using bulwark::server::Http2Handlers;
using bulwark::server::Http2Options;
using bulwark::server::Http2Request;
using bulwark::server::Http2Session;
using bulwark::server::StreamTransport;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// What the server's handlers saw, read by the test thread after the fact.
struct Seen {
  std::atomic<int> hangups{0};
  std::atomic<int> write_failures{0};
  std::atomic<std::size_t> accepted_before_block{0};
  std::atomic<int> busy{0};
  std::atomic<int> busy_peak{0};
  std::mutex mutex;
  std::vector<std::string> bodies, methods, hosts, auth;
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

// The routes of the test server.
asio::awaitable<void> handle(Seen* seen, Http2Request req, Downstream* ds) {
  const std::string target(req.target());
  {
    std::lock_guard lock(seen->mutex);
    seen->bodies.push_back(req.body());
    seen->methods.push_back(std::string(req.method_string()));
    seen->hosts.push_back(std::string(req[http::field::host]));
    seen->auth.push_back(std::string(req[http::field::authorization]));
  }
  if (target == "/hello") {
    const Header h[] = {{"x-test", "1"}, {"connection", "keep-alive"}};
    co_await ds->send(200, h, "text/plain", "hello");
  } else if (target == "/echo") {
    co_await ds->send(201, {}, "application/octet-stream", req.body());
  } else if (target == "/empty") {
    co_await ds->send(204, {}, "text/plain", "");
  } else if (target == "/slow") {
    co_await sleep_for(300ms);
    co_await ds->send(200, {}, "text/plain", "slow");
  } else if (target.starts_with("/stream/")) {  // /stream/<chunks>: chunks of 1000 bytes
    const int n = std::stoi(target.substr(8));
    co_await ds->begin_stream(200, {}, "text/event-stream");
    for (int i = 0; i < n; ++i) {
      const bool ok = co_await ds->write(std::string(1000, static_cast<char>('a' + i % 26)));
      if (!ok) ++seen->write_failures;
    }
    co_await ds->end_stream();
  } else if (target == "/hangup") {
    co_await ds->begin_stream(200, {}, "text/event-stream");
    co_await ds->write("data: first\n\n");
    const bool hung_up = co_await ds->wait_hangup();
    if (hung_up) ++seen->hangups;
  } else if (target == "/stall") {  // writes until the client's closed window stops it
    co_await ds->begin_stream(200, {}, "text/event-stream");
    std::size_t accepted = 0;
    for (int i = 0; i < 1000; ++i) {
      const bool ok = co_await ds->write(std::string(16 * 1024, 'z'));
      if (!ok) break;
      accepted += 16 * 1024;
    }
    seen->accepted_before_block = accepted;
    ++seen->write_failures;
  } else if (target == "/noanswer") {
    co_return;
  } else {
    co_await ds->send(404, {}, "text/plain", "no route");
  }
}

asio::awaitable<void> reject(Error e, Downstream* ds) {
  const unsigned status = e.kind == ErrorKind::payload_too_large   ? 413
                          : e.kind == ErrorKind::headers_too_large ? 431
                                                                   : 408;
  co_await ds->send(status, {}, "text/plain", e.message);
}

class TestServer {
 public:
  explicit TestServer(Http2Options options, bool shutdown_first = false)
      : options_(options), shutdown_first_(shutdown_first), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    asio::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto* s : sessions_) s->shutdown();
    });
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  Seen& seen() { return seen_; }
  void shutdown_all() {
    asio::post(io_, [this] {
      for (auto* s : sessions_) s->shutdown();
    });
  }
  std::atomic<int> finished{0};

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      asio::co_spawn(io_, connection(std::move(socket)), asio::detached);
    }
  }
  asio::awaitable<void> connection(tcp::socket socket) {
    StreamTransport<tcp::socket> transport(socket);
    Seen* seen = &seen_;
    Http2Handlers h;
    h.request = [seen](Http2Request req, Downstream& ds, std::chrono::steady_clock::time_point) {
      return handle(seen, std::move(req), &ds);
    };
    h.reject = [](Error e, Downstream& ds) { return reject(std::move(e), &ds); };
    h.busy = [seen](int d) {
      const int now = seen->busy += d;
      int peak = seen->busy_peak;
      while (now > peak && !seen->busy_peak.compare_exchange_weak(peak, now)) {
      }
    };
    Http2Session session(transport, options_, std::move(h));
    sessions_.push_back(&session);
    if (shutdown_first_) session.shutdown();
    co_await session.run({});
    std::erase(sessions_, &session);
    ++finished;
  }

  Http2Options options_;
  bool shutdown_first_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  std::vector<Http2Session*> sessions_;
  Seen seen_;
  std::thread thread_;
};

// A minimal HTTP/2 client over a blocking socket.
class Client {
 public:
  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
    bool closed = false;
    std::uint32_t error_code = 0;
  };

  explicit Client(std::uint16_t port, std::vector<nghttp2_settings_entry> settings = {}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
                std::size_t vl, std::uint8_t, void* ud) -> int {
          auto& r = static_cast<Client*>(ud)->responses[f->hd.stream_id];
          const std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
          if (name == ":status") r.status = std::stoi(value);
          else r.headers[name] = value;
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t len, void* ud) -> int {
          static_cast<Client*>(ud)->responses[id].body.append(reinterpret_cast<const char*>(d), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, std::int32_t id, std::uint32_t code, void* ud) -> int {
      auto& r = static_cast<Client*>(ud)->responses[id];
      r.closed = true;
      r.error_code = code;
      return 0;
    });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* ud) -> int {
      if (f->hd.type == NGHTTP2_GOAWAY) static_cast<Client*>(ud)->goaway = true;
      return 0;
    });
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  }
  ~Client() {
    nghttp2_session_del(session_);
    if (fd_ >= 0) ::close(fd_);
  }

  std::int32_t request(const std::string& method, const std::string& path, const std::string& body = {},
                       std::vector<std::pair<std::string, std::string>> extra = {}, bool hold = false) {
    bodies_.push_back(std::make_unique<Body>(Body{body, 0, hold}));
    std::vector<std::pair<std::string, std::string>> fields{
        {":method", method}, {":path", path}, {":scheme", "http"}, {":authority", "example.test"}};
    for (auto& e : extra) fields.push_back(std::move(e));
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : fields)
      nva.push_back({reinterpret_cast<std::uint8_t*>(k.data()), reinterpret_cast<std::uint8_t*>(v.data()), k.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    nghttp2_data_provider provider{};
    provider.source.ptr = bodies_.back().get();
    provider.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                                nghttp2_data_source* src, void*) -> ssize_t {
      auto* b = static_cast<Body*>(src->ptr);
      if (b->hold) return NGHTTP2_ERR_DEFERRED;
      const std::size_t n = std::min(len, b->data.size() - b->offset);
      std::memcpy(buf, b->data.data() + b->offset, n);
      b->offset += n;
      if (b->offset == b->data.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), body.empty() ? nullptr : &provider, nullptr);
  }

  void reset(std::int32_t id) { nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL); }

  // Sends what is queued and reads until `done` holds, the server closes, or the timeout.
  bool pump(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (;;) {
        const std::uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n <= 0) break;
        if (::send(fd_, data, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) return done();
      }
      if (done()) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || eof) return done();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 50))) <= 0) continue;
      std::uint8_t buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof = true;
        continue;
      }
      if (nghttp2_session_mem_recv(session_, buf, static_cast<std::size_t>(n)) < 0) return false;
    }
  }
  bool wait(std::int32_t id, std::chrono::milliseconds timeout = 5s) {
    return pump([&] { return responses[id].closed; }, timeout);
  }

  bool connected_ = false;
  bool goaway = false;
  bool eof = false;
  std::map<std::int32_t, Response> responses;

 private:
  struct Body {
    std::string data;
    std::size_t offset;
    bool hold;  // never send it: the request stays incomplete
  };
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Body>> bodies_;
};

Http2Options small_options() {
  Http2Options o;
  o.max_body_bytes = 64 * 1024;
  o.max_header_bytes = 4 * 1024;
  o.read_timeout = 2s;
  o.write_timeout = 500ms;
  o.idle_timeout = 10s;
  return o;
}

TEST(Http2Session, AnswersARequestWithHeadersAndABody) {
  TestServer server(small_options());
  Client c(server.port());
  ASSERT_TRUE(c.connected_);
  const auto id = c.request("GET", "/hello", {}, {{"authorization", "Bearer k"}});
  ASSERT_TRUE(c.wait(id));
  const auto& r = c.responses[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.error_code, NGHTTP2_NO_ERROR);
  EXPECT_EQ(r.headers.at("content-type"), "text/plain");
  EXPECT_EQ(r.headers.at("content-length"), "5");
  EXPECT_EQ(r.headers.at("x-test"), "1");
  EXPECT_EQ(r.headers.at("server"), "bulwark");
  EXPECT_FALSE(r.headers.contains("connection")) << "connection-specific fields are dropped";
  std::lock_guard lock(server.seen().mutex);
  EXPECT_EQ(server.seen().methods.back(), "GET");
  EXPECT_EQ(server.seen().hosts.back(), "example.test") << ":authority becomes Host";
  EXPECT_EQ(server.seen().auth.back(), "Bearer k");
}

TEST(Http2Session, PassesTheRequestBodyAndAnswersEmptyBodies) {
  TestServer server(small_options());
  Client c(server.port());
  const std::string body(40000, 'q');
  const auto echo = c.request("POST", "/echo", body);
  const auto empty = c.request("GET", "/empty");
  ASSERT_TRUE(c.pump([&] { return c.responses[echo].closed && c.responses[empty].closed; }));
  EXPECT_EQ(c.responses[echo].status, 201);
  EXPECT_EQ(c.responses[echo].body, body);
  EXPECT_EQ(c.responses[empty].status, 204);
  EXPECT_EQ(c.responses[empty].body, "");
  EXPECT_FALSE(c.responses[empty].headers.contains("content-length")) << "204 has no content-length";
}

TEST(Http2Session, StreamsMoreThanTheClientWindowThroughFlowControl) {
  TestServer server(small_options());
  Client c(server.port());  // the default 64 KiB window: the 1 MB answer waits for WINDOW_UPDATEs
  const auto id = c.request("GET", "/stream/1000");
  ASSERT_TRUE(c.wait(id, 10s));
  const auto& r = c.responses[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("cache-control"), "no-cache");
  EXPECT_FALSE(r.headers.contains("content-length"));
  ASSERT_EQ(r.body.size(), 1'000'000u);
  for (std::size_t i = 0; i < 1000; ++i) ASSERT_EQ(r.body[i * 1000], static_cast<char>('a' + i % 26)) << i;
  EXPECT_EQ(server.seen().write_failures, 0);
}

TEST(Http2Session, RunsStreamsConcurrently) {
  TestServer server(small_options());
  Client c(server.port());
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(c.request("GET", "/slow"));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.pump([&] { return std::ranges::all_of(ids, [&](auto id) { return c.responses[id].closed; }); }));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "ten 300 ms answers overlap";
  for (auto id : ids) EXPECT_EQ(c.responses[id].body, "slow");
  EXPECT_GE(server.seen().busy_peak, 5);
}

TEST(Http2Session, RefusesABodyOverTheLimitWith413) {
  TestServer server(small_options());
  Client c(server.port());
  const auto big = c.request("POST", "/echo", std::string(100 * 1024, 'x'));
  ASSERT_TRUE(c.wait(big));
  EXPECT_EQ(c.responses[big].status, 413);
  EXPECT_NE(c.responses[big].body.find("exceeds"), std::string::npos);
  // A declared length over the limit is refused from the headers alone.
  const auto declared = c.request("POST", "/echo", std::string(70 * 1024, 'x'), {{"content-length", std::to_string(70 * 1024)}});
  ASSERT_TRUE(c.wait(declared));
  EXPECT_EQ(c.responses[declared].status, 413);
  // The connection goes on.
  const auto next = c.request("GET", "/hello");
  ASSERT_TRUE(c.wait(next));
  EXPECT_EQ(c.responses[next].status, 200);
}

TEST(Http2Session, RefusesHeadersOverTheLimitWith431) {
  TestServer server(small_options());
  Client c(server.port());
  const auto id = c.request("GET", "/hello", {}, {{"x-big", std::string(5000, 'h')}});
  ASSERT_TRUE(c.wait(id));
  EXPECT_EQ(c.responses[id].status, 431);
}

TEST(Http2Session, AnswersAnIncompleteRequestWith408) {
  auto o = small_options();
  o.read_timeout = 300ms;
  TestServer server(o);
  Client c(server.port());
  const auto id = c.request("POST", "/echo", "never sent", {}, /*hold=*/true);  // headers, then nothing
  ASSERT_TRUE(c.pump([&] { return c.responses[id].status != 0; }, 3s));
  EXPECT_EQ(c.responses[id].status, 408);
  EXPECT_EQ(c.responses[id].body, "Timed out reading the request.");
}

TEST(Http2Session, AClientResetReachesWaitHangup) {
  TestServer server(small_options());
  Client c(server.port());
  const auto id = c.request("GET", "/hangup");
  ASSERT_TRUE(c.pump([&] { return c.responses[id].body.size() > 0; }));
  EXPECT_EQ(c.responses[id].body, "data: first\n\n");
  c.reset(id);
  ASSERT_TRUE(c.pump([&] { return server.seen().hangups.load() == 1; }));
  ASSERT_TRUE(c.pump([&] { return server.seen().busy.load() == 0; }));
}

TEST(Http2Session, AConnectionDropReachesWaitHangup) {
  TestServer server(small_options());
  {
    Client c(server.port());
    const auto id = c.request("GET", "/hangup");
    ASSERT_TRUE(c.pump([&] { return c.responses[id].body.size() > 0; }));
  }  // closes the socket
  for (int i = 0; i < 100 && server.seen().hangups == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.seen().hangups, 1);
  for (int i = 0; i < 100 && server.finished == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.finished, 1) << "the session ended after its streams";
}

TEST(Http2Session, BackpressureIsBoundedAndAStalledReaderIsCutOff) {
  TestServer server(small_options());  // write timeout 500 ms
  Client c(server.port(), {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0}});  // nothing may be sent
  const auto id = c.request("GET", "/stall");
  ASSERT_TRUE(c.wait(id, 3s));
  EXPECT_EQ(c.responses[id].status, 200);
  EXPECT_EQ(c.responses[id].error_code, NGHTTP2_CANCEL) << "the stream was reset";
  EXPECT_EQ(server.seen().write_failures, 1);
  EXPECT_LE(server.seen().accepted_before_block.load(), bulwark::server::kStreamHighWater + 16 * 1024);
  // The connection survives the stream.
  const auto next = c.request("GET", "/hello");
  ASSERT_TRUE(c.wait(next));
  EXPECT_EQ(c.responses[next].status, 200);
}

TEST(Http2Session, AHandlerThatDoesNotAnswerResetsItsStream) {
  TestServer server(small_options());
  Client c(server.port());
  const auto id = c.request("GET", "/noanswer");
  ASSERT_TRUE(c.wait(id));
  EXPECT_EQ(c.responses[id].error_code, NGHTTP2_INTERNAL_ERROR);
}

TEST(Http2Session, ShutdownSendsGoawayAndLetsTheStreamInFlightFinish) {
  TestServer server(small_options());
  Client c(server.port());
  const auto id = c.request("GET", "/slow");
  ASSERT_TRUE(c.pump([&] { return server.seen().busy.load() == 1; }));
  server.shutdown_all();
  ASSERT_TRUE(c.pump([&] { return c.responses[id].closed && c.eof; }, 5s));
  EXPECT_TRUE(c.goaway);
  EXPECT_EQ(c.responses[id].status, 200);
  EXPECT_EQ(c.responses[id].body, "slow");
}

TEST(Http2Session, ShutdownBeforeItRunsRefusesEveryStream) {
  TestServer server(small_options(), /*shutdown_first=*/true);  // as a connection accepted mid-drain
  Client c(server.port());
  const auto id = c.request("GET", "/hello");
  ASSERT_TRUE(c.pump([&] { return c.responses[id].closed && c.eof; }, 3s));
  EXPECT_TRUE(c.goaway);
  EXPECT_EQ(c.responses[id].status, 0);
  EXPECT_EQ(c.responses[id].error_code, NGHTTP2_REFUSED_STREAM);
}

TEST(Http2Session, AnIdleConnectionIsClosedWithGoaway) {
  auto o = small_options();
  o.idle_timeout = 200ms;
  TestServer server(o);
  Client c(server.port());
  const auto id = c.request("GET", "/hello");
  ASSERT_TRUE(c.wait(id));
  ASSERT_TRUE(c.pump([&] { return c.eof; }, 3s));
  EXPECT_TRUE(c.goaway);
}

TEST(Http2Session, AClientWithoutThePrefaceIsDropped) {
  TestServer server(small_options());
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  char buf[512];
  ssize_t n = 1;
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (n > 0 && std::chrono::steady_clock::now() < until) n = ::recv(fd, buf, sizeof buf, 0);
  EXPECT_LE(n, 0) << "closed";
  ::close(fd);
  for (int i = 0; i < 100 && server.finished == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.finished, 1);
}

}  // namespace
