// Loopback tests: a real server on 127.0.0.1:0 in this process, spoken to with Beast.
#include "mock/server.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "mock/answer.hpp"

namespace bulwark::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Response = http::response<http::string_body>;

class Client {
 public:
  explicit Client(std::uint16_t port) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  void send(http::verb verb, std::string_view target, std::string body = {},
            std::string_view bearer = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + std::string(bearer));
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(sock_, req);
  }

  void write(http::request<http::string_body>& req) { http::write(sock_, req); }

  // Reads one response; `ec` receives a transport error instead of throwing.
  Response read(beast::error_code& ec) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(sock_, buffer_, parser, ec);
    return parser.release();
  }

  Response call(http::verb verb, std::string_view target, std::string body = {},
                std::string_view bearer = {}) {
    send(verb, target, std::move(body), bearer);
    beast::error_code ec;
    auto res = read(ec);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

 private:
  asio::io_context io_;
  tcp::socket sock_{io_};
  beast::flat_buffer buffer_;
};

Action act(ActionKind kind, std::uint32_t after_tokens = 0) {
  Action a;
  a.kind = kind;
  a.after_tokens = after_tokens;
  return a;
}

std::string chat_body(std::string_view model, bool stream, bool usage = false,
                      std::string_view extra_message = "") {
  std::string b = R"({"model":")" + std::string(model) + R"(","messages":[{"role":"user","content":"say four words please"})";
  b += extra_message;
  b += "]";
  if (stream) b += R"(,"stream":true)";
  if (usage) b += R"(,"stream_options":{"include_usage":true})";
  b += "}";
  return b;
}

// The data payloads of an SSE body, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string_view event(body.data() + pos, end - pos);
    EXPECT_TRUE(event.starts_with("data: ")) << event;
    out.emplace_back(event.substr(6));
    pos = end + 2;
  }
  EXPECT_EQ(pos, body.size()) << "trailing bytes after the last event";
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  void start(Config config, ServerOptions opts = {}) {
    engine_ = std::make_unique<Engine>(std::move(config), SteadyClock::instance(), 7);
    opts.port = 0;
    server_ = std::make_unique<Server>(opts, *engine_, SteadyClock::instance());
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().message;
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  std::uint16_t port() const { return server_->port(); }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  simdjson::dom::parser json_;
};

TEST_F(ServerTest, StreamsTheDeterministicAnswerWithUsage) {
  Config c;
  c.default_behavior.tokens = 5;
  start(c);
  Client client(port());
  const auto res = client.call(http::verb::post, "/v1/chat/completions", chat_body("gpt-x", true, true));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(res[http::field::content_type], "text/event-stream; charset=utf-8");
  EXPECT_EQ(res["x-mock-attempt"], "1");
  EXPECT_TRUE(res["x-request-id"].starts_with("req_"));

  const auto events = sse_data(res.body());
  ASSERT_EQ(events.size(), 5u + 1 + 1 + 1);  // tokens, finish, usage, [DONE]
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  std::string id;
  for (std::size_t i = 0; i < 5; ++i) {
    simdjson::dom::element chunk;
    ASSERT_EQ(json_.parse(events[i]).get(chunk), simdjson::SUCCESS) << events[i];
    EXPECT_EQ(std::string_view(chunk["object"]), "chat.completion.chunk");
    EXPECT_EQ(std::string_view(chunk["model"]), "gpt-x");
    if (i == 0) id = std::string(std::string_view(chunk["id"]));
    EXPECT_EQ(std::string_view(chunk["id"]), id);
    EXPECT_TRUE(chunk["usage"].is_null());
    auto delta = chunk["choices"].at(0)["delta"];
    EXPECT_EQ(delta["role"].error() == simdjson::SUCCESS, i == 0);
    text += std::string_view(delta["content"]);
  }
  EXPECT_EQ(text, expected_answer(5));

  simdjson::dom::element finish;
  ASSERT_EQ(json_.parse(events[5]).get(finish), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(finish["choices"].at(0)["finish_reason"]), "stop");
  simdjson::dom::element usage;
  ASSERT_EQ(json_.parse(events[6]).get(usage), simdjson::SUCCESS);
  EXPECT_EQ(simdjson::dom::array(usage["choices"]).size(), 0u);
  EXPECT_EQ(std::uint64_t(usage["usage"]["prompt_tokens"]), 4u);
  EXPECT_EQ(std::uint64_t(usage["usage"]["completion_tokens"]), 5u);
  EXPECT_EQ(std::uint64_t(usage["usage"]["total_tokens"]), 9u);

  // Same connection, non-streaming.
  const auto plain = client.call(http::verb::post, "/v1/chat/completions", chat_body("gpt-x", false));
  EXPECT_EQ(plain.result_int(), 200);
  EXPECT_EQ(plain["x-mock-attempt"], "2");
  simdjson::dom::element body;
  ASSERT_EQ(json_.parse(plain.body()).get(body), simdjson::SUCCESS) << plain.body();
  EXPECT_EQ(std::string_view(body["choices"].at(0)["message"]["content"]), "w1 w2 w3 w4 w5.");
  EXPECT_EQ(std::uint64_t(body["usage"]["completion_tokens"]), 5u);
}

TEST_F(ServerTest, RateLimitThenSuccessViaTheControlApi) {
  start(Config{});
  Client client(port());
  const auto put = client.call(http::verb::put, "/_mock/behaviors/flaky",
                               R"({"tokens": 3, "faults": [{"when": {"times": 1},
                                   "action": {"status": 429, "error": "rate_limit", "retry_after_s": 2}}]})");
  ASSERT_EQ(put.result_int(), 200) << put.body();

  const auto limited = client.call(http::verb::post, "/v1/chat/completions", chat_body("flaky", true));
  EXPECT_EQ(limited.result_int(), 429);
  EXPECT_EQ(limited[http::field::retry_after], "2");
  EXPECT_EQ(limited["x-mock-attempt"], "1");
  EXPECT_EQ(limited[http::field::content_type], "application/json");
  simdjson::dom::element err;
  ASSERT_EQ(json_.parse(limited.body()).get(err), simdjson::SUCCESS) << limited.body();
  EXPECT_EQ(std::string_view(err["error"]["type"]), "requests");
  EXPECT_EQ(std::string_view(err["error"]["code"]), "rate_limit_exceeded");
  EXPECT_TRUE(err["error"]["param"].is_null());

  const auto ok = client.call(http::verb::post, "/v1/chat/completions", chat_body("flaky", false));
  EXPECT_EQ(ok.result_int(), 200);
  EXPECT_EQ(ok["x-mock-attempt"], "2");
  EXPECT_NE(ok.body().find(R"("content":"w1 w2 w3.")"), std::string::npos);

  const auto stats = client.call(http::verb::get, "/_mock/stats");
  simdjson::dom::element s;
  ASSERT_EQ(json_.parse(stats.body()).get(s), simdjson::SUCCESS) << stats.body();
  auto flaky = s["models"]["flaky"];
  EXPECT_EQ(std::uint64_t(flaky["attempts"]), 2u);
  EXPECT_EQ(std::uint64_t(flaky["requests"].at(0)["status"]), 429u);
  EXPECT_EQ(std::string_view(flaky["requests"].at(0)["outcome"]), "error");
  EXPECT_GT(std::int64_t(flaky["requests"].at(0)["at_ms"]), 1'600'000'000'000);
  EXPECT_EQ(std::uint64_t(flaky["requests"].at(1)["status"]), 200u);

  EXPECT_EQ(client.call(http::verb::post, "/_mock/reset").result_int(), 200);
  const auto again = client.call(http::verb::post, "/v1/chat/completions", chat_body("flaky", false));
  // Reset restarts the fault counters: the one-shot 429 fires again.
  EXPECT_EQ(again.result_int(), 429);
  EXPECT_EQ(again["x-mock-attempt"], "1");

  const auto bad = client.call(http::verb::put, "/_mock/behaviors/flaky", R"({"tokenz": 3})");
  EXPECT_EQ(bad.result_int(), 400);
  EXPECT_NE(bad.body().find("unknown key 'tokenz'"), std::string::npos) << bad.body();
  EXPECT_EQ(client.call(http::verb::delete_, "/_mock/behaviors/flaky").result_int(), 200);
  EXPECT_EQ(client.call(http::verb::delete_, "/_mock/behaviors/flaky").result_int(), 404);
}

TEST_F(ServerTest, ApiKeyIsEnforcedAndNeverRecorded) {
  ServerOptions opts;
  opts.api_key = "sk-very-secret";
  start(Config{}, opts);
  Client client(port());
  const auto missing = client.call(http::verb::post, "/v1/chat/completions", chat_body("m", false));
  EXPECT_EQ(missing.result_int(), 401);
  EXPECT_NE(missing.body().find(R"("code":"invalid_api_key")"), std::string::npos);
  const auto wrong = client.call(http::verb::post, "/v1/chat/completions", chat_body("m", false), "sk-other");
  EXPECT_EQ(wrong.result_int(), 401);
  const auto good = client.call(http::verb::post, "/v1/chat/completions", chat_body("m", false), "sk-very-secret");
  EXPECT_EQ(good.result_int(), 200);
  EXPECT_EQ(client.call(http::verb::get, "/v1/models").result_int(), 401);
  EXPECT_EQ(client.call(http::verb::get, "/v1/models", "", "sk-very-secret").result_int(), 200);
  EXPECT_EQ(client.call(http::verb::get, "/healthz").result_int(), 200);

  const auto stats = client.call(http::verb::get, "/_mock/stats").body();
  EXPECT_EQ(stats.find("sk-"), std::string::npos);
  EXPECT_NE(stats.find(R"("status":401,"error":"auth","stream":false,"authorization":false)"), std::string::npos) << stats;
  EXPECT_NE(stats.find(R"("status":200,"error":null,"stream":false,"authorization":true)"), std::string::npos) << stats;
}

TEST_F(ServerTest, PrefillStreamsOnlyTheRemainder) {
  Config c;
  c.default_behavior.tokens = 6;
  start(c);
  Client client(port());
  const auto res = client.call(http::verb::post, "/v1/chat/completions",
                               chat_body("m", true, true, R"(,{"role":"assistant","content":"w1 w2 w3"})"));
  ASSERT_EQ(res.result_int(), 200);
  const auto events = sse_data(res.body());
  ASSERT_EQ(events.size(), 3u + 3);
  std::string text;
  for (std::size_t i = 0; i < 3; ++i) {
    simdjson::dom::element chunk;
    ASSERT_EQ(json_.parse(events[i]).get(chunk), simdjson::SUCCESS);
    text += std::string_view(chunk["choices"].at(0)["delta"]["content"]);
  }
  EXPECT_EQ(text, " w4 w5 w6.");
  EXPECT_NE(events[4].find(R"("completion_tokens":3)"), std::string::npos) << events[4];
}

TEST_F(ServerTest, ResetCutAndMalformedFaults) {
  Config c;
  c.default_behavior.tokens = 5;
  Trigger always;
  always.always = true;
  c.models["reset"].faults.push_back(Fault{always, act(ActionKind::reset)});
  c.models["cut"].faults.push_back(Fault{always, act(ActionKind::cut, 2)});
  c.models["bad"].faults.push_back(Fault{always, act(ActionKind::malformed, 1)});
  for (auto name : {"reset", "cut", "bad", "nodone"}) c.models[name].tokens = 5;
  c.models["nodone"].faults.push_back(Fault{always, act(ActionKind::omit_done)});
  start(c);

  {
    Client client(port());
    client.send(http::verb::post, "/v1/chat/completions", chat_body("reset", false));
    beast::error_code ec;
    client.read(ec);
    EXPECT_EQ(ec, asio::error::connection_reset) << ec.message();
  }
  {
    Client client(port());
    client.send(http::verb::post, "/v1/chat/completions", chat_body("cut", true));
    beast::error_code ec;
    const auto partial = client.read(ec);
    EXPECT_TRUE(ec) << "a cut stream must not end cleanly";
    EXPECT_NE(partial.body().find(R"("content":" w2")"), std::string::npos) << partial.body();
    EXPECT_EQ(partial.body().find("w3"), std::string::npos);
    EXPECT_EQ(partial.body().find("[DONE]"), std::string::npos);
  }
  {
    Client client(port());
    const auto res = client.call(http::verb::post, "/v1/chat/completions", chat_body("bad", true));
    const auto events = sse_data(res.body());
    ASSERT_EQ(events.size(), 2u);
    simdjson::dom::element ignored;
    EXPECT_EQ(json_.parse(events[0]).get(ignored), simdjson::SUCCESS);
    EXPECT_NE(json_.parse(events[1]).get(ignored), simdjson::SUCCESS);
    // The connection survives a malformed stream.
    EXPECT_EQ(client.call(http::verb::get, "/healthz").result_int(), 200);

    const auto nodone = client.call(http::verb::post, "/v1/chat/completions", chat_body("nodone", true));
    const auto ev = sse_data(nodone.body());
    ASSERT_EQ(ev.size(), 6u);  // 5 tokens + finish, no [DONE]
    EXPECT_NE(ev.back().find(R"("finish_reason":"stop")"), std::string::npos);
  }
  {
    // Non-streaming malformed: a complete HTTP answer whose JSON stops after token 1.
    Client client(port());
    const auto res = client.call(http::verb::post, "/v1/chat/completions", chat_body("bad", false));
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.body().ends_with(R"("content":"w1)")) << res.body();
    simdjson::dom::element ignored;
    EXPECT_NE(json_.parse(res.body()).get(ignored), simdjson::SUCCESS);
  }
  {
    // Non-streaming cut: Content-Length promises more than arrives.
    Client client(port());
    client.send(http::verb::post, "/v1/chat/completions", chat_body("cut", false));
    beast::error_code ec;
    const auto partial = client.read(ec);
    EXPECT_EQ(ec, http::error::partial_message) << ec.message();
  }
}

TEST_F(ServerTest, BadRequestsAndRoutes) {
  Config c;
  c.models["listed"] = Behavior{};
  c.models["small"].context_window = 2;
  start(c);
  Client client(port());
  const auto bad_json = client.call(http::verb::post, "/v1/chat/completions", "{not json");
  EXPECT_EQ(bad_json.result_int(), 400);
  EXPECT_NE(bad_json.body().find("could not parse the JSON body"), std::string::npos);
  EXPECT_EQ(bad_json["x-mock-attempt"], "");

  const auto too_long = client.call(http::verb::post, "/v1/chat/completions", chat_body("small", false));
  EXPECT_EQ(too_long.result_int(), 400);
  EXPECT_NE(too_long.body().find("context_length_exceeded"), std::string::npos);

  EXPECT_EQ(client.call(http::verb::get, "/nope").result_int(), 404);
  EXPECT_EQ(client.call(http::verb::get, "/v1/chat/completions").result_int(), 405);
  const auto models = client.call(http::verb::get, "/v1/models");
  EXPECT_NE(models.body().find(R"("id":"listed")"), std::string::npos) << models.body();
  const auto behaviors = client.call(http::verb::get, "/_mock/behaviors");
  auto parsed = parse_config(behaviors.body());
  ASSERT_TRUE(parsed) << behaviors.body();
  EXPECT_EQ(parsed->models.at("small").context_window, 2u);
  EXPECT_EQ(engine_->rejected(), 1u);
}

TEST_F(ServerTest, AnswersExpectContinue) {
  start(Config{});
  Client client(port());
  http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::expect, "100-continue");
  req.body() = chat_body("m", false);
  req.prepare_payload();
  client.write(req);
  beast::error_code ec;
  EXPECT_EQ(client.read(ec).result_int(), 100);
  const auto res = client.read(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result_int(), 200);
}

TEST_F(ServerTest, SeveralWorkersShareThePort) {
  ServerOptions opts;
  opts.workers = 3;
  start(Config{}, opts);
  for (int i = 0; i < 12; ++i) {
    Client client(port());
    EXPECT_EQ(client.call(http::verb::post, "/v1/chat/completions", chat_body("m", false)).result_int(), 200);
  }
  EXPECT_EQ(engine_->stats_of("m").attempts, 12u);
  // An idle open connection must not block shutdown.
  Client idle(port());
  server_->stop();
}

}  // namespace
}  // namespace bulwark::mock
