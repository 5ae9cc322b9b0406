#pragma once
// A blocking HTTP/1.1 client and server fixture for the loopback tests of the Anthropic
// and Bedrock formats: a real server on 127.0.0.1:0 in this process, spoken to with Beast.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mock/server.hpp"

namespace bulwark::mock::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

class Client {
 public:
  explicit Client(std::uint16_t port) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  static Request post(std::string_view target, std::string body,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    Request req{http::verb::post, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
  }

  void write(const Request& req) { http::write(sock_, req); }

  Response read(beast::error_code& ec) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(sock_, buffer_, parser, ec);
    return parser.release();
  }

  Response call(const Request& req) {
    write(req);
    beast::error_code ec;
    auto res = read(ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  Response get(std::string_view target) {
    Request req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    return call(req);
  }

 private:
  asio::io_context io_;
  tcp::socket sock_{io_};
  beast::flat_buffer buffer_;
};

inline Action act(ActionKind kind, std::uint32_t after_tokens = 0) {
  Action a;
  a.kind = kind;
  a.after_tokens = after_tokens;
  return a;
}

inline Action error_act(ErrorType type, int status, ActionKind kind = ActionKind::error,
                        std::uint32_t after_tokens = 0) {
  Action a = act(kind, after_tokens);
  a.error = type;
  a.status = status;
  return a;
}

inline Trigger always() {
  Trigger t;
  t.always = true;
  return t;
}

class MockServerTest : public ::testing::Test {
 protected:
  void start(Config config, ServerOptions opts = {}) {
    engine_ = std::make_unique<Engine>(std::move(config), SteadyClock::instance(), 7);
    opts.port = 0;
    server_ = std::make_unique<Server>(opts, *engine_, SteadyClock::instance());
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().message;
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  std::uint16_t port() const { return server_->port(); }

  // Parses `text` into a fresh document owned by the fixture (each call keeps its own
  // parser so earlier elements stay valid).
  simdjson::dom::element parse(std::string_view text) {
    parsers_.push_back(std::make_unique<simdjson::dom::parser>());
    simdjson::dom::element e;
    const auto err = parsers_.back()->parse(text.data(), text.size()).get(e);
    EXPECT_EQ(err, simdjson::SUCCESS) << text;
    return e;
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::vector<std::unique_ptr<simdjson::dom::parser>> parsers_;
};

}  // namespace bulwark::mock::testing
