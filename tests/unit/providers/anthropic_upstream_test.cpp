// providers/upstream.hpp for kind anthropic (providers/anthropic/): the request, the
// answer and stream conversions to OpenAI, error classification, the config that
// enables it, and a real exchange with the in-process bulwark-mock.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/json.hpp>

#include "api/anthropic/messages.hpp"
#include "api/openai/translate.hpp"
#include "config/config.hpp"
#include "mock/engine.hpp"
#include "mock/server.hpp"
#include "providers/upstream.hpp"
#include "upstream_support.hpp"

namespace bulwark::providers {
namespace {

using namespace testing;
namespace cn = api::canonical;

config::Provider anthropic_provider() {
  config::Provider p;
  p.name = "anthropic";
  p.kind = config::ProviderKind::anthropic;
  p.endpoint.tls = true;
  p.endpoint.host = "api.anthropic.com";
  p.endpoint.port = 443;
  p.api_key = Secret("sk-ant-test");
  return p;
}

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

simdjson::dom::element parse(simdjson::dom::parser& parser, std::string_view text) {
  simdjson::dom::element e;
  EXPECT_EQ(parser.parse(text.data(), text.size()).get(e), simdjson::SUCCESS) << text;
  return e;
}

TEST(AnthropicUpstream, BuildsMessagesRequestWithHeaders) {
  const auto p = anthropic_provider();
  auto req = build_chat_request(p, "claude-3-5-haiku-20241022", kOpenAIRequest, false, kNow);
  ASSERT_TRUE(req) << req.error().message;
  EXPECT_EQ(req->target(), "/v1/messages");
  EXPECT_EQ(req->method(), boost::beast::http::verb::post);
  EXPECT_EQ((*req)[boost::beast::http::field::host], "api.anthropic.com");
  EXPECT_EQ((*req)["x-api-key"], "sk-ant-test");
  EXPECT_EQ((*req)["anthropic-version"], "2023-06-01");
  EXPECT_EQ((*req)[boost::beast::http::field::authorization], "");  // no Bearer to Anthropic
  EXPECT_EQ((*req)[boost::beast::http::field::accept], "application/json");
  simdjson::dom::parser parser;
  auto body = parse(parser, req->body());
  EXPECT_EQ(std::string_view(body["model"].get_string().value()), "claude-3-5-haiku-20241022");
  EXPECT_EQ(body["max_tokens"].get_int64().value(), 50);
  EXPECT_NE(req->body().find("\"system\""), std::string::npos);
  EXPECT_NE(req->body().find("Be brief."), std::string::npos);
  EXPECT_EQ(std::string_view(body["messages"].at(0)["role"].get_string().value()), "user");
  EXPECT_EQ(req->body().find("stream\":true"), std::string::npos);
}

TEST(AnthropicUpstream, StreamRequestAndCustomVersionAndPrefix) {
  auto p = anthropic_provider();
  p.anthropic_version = "2024-10-22";
  p.endpoint.path_prefix = "/proxy";
  p.headers.emplace_back("anthropic-beta", "prompt-caching-2024-07-31");
  auto req = build_chat_request(p, "claude-x", kOpenAIRequest, true, kNow);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->target(), "/proxy/v1/messages");
  EXPECT_EQ((*req)["anthropic-version"], "2024-10-22");
  EXPECT_EQ((*req)["anthropic-beta"], "prompt-caching-2024-07-31");
  EXPECT_EQ((*req)[boost::beast::http::field::accept], "text/event-stream");
  EXPECT_NE(req->body().find("\"stream\":true"), std::string::npos);
}

TEST(AnthropicUpstream, RefusesWhatMessagesCannotExpress) {
  const auto p = anthropic_provider();
  auto req = build_chat_request(p, "claude-x", R"({"model":"m","messages":[{"role":"user","content":"hi"}],"n":2})", false, kNow);
  ASSERT_FALSE(req);
  EXPECT_EQ(req.error().kind, ErrorKind::bad_request);
  auto bad = build_chat_request(p, "claude-x", "{not json", false, kNow);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(is_callers_fault(bad.error().kind));
}

TEST(AnthropicUpstream, AnswerBecomesChatCompletionWithToolCallsAndCacheUsage) {
  const auto p = anthropic_provider();
  const std::string_view answer = R"({"id":"msg_01abc","type":"message","role":"assistant","model":"claude-x",
    "content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01xyz","name":"weather","input":{"city":"Paris"}}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":10,"output_tokens":7,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}})";
  auto out = openai_answer(p, "claude-x", answer, "req123");
  ASSERT_TRUE(out) << out.error().message;
  simdjson::dom::parser parser;
  auto doc = parse(parser, *out);
  EXPECT_EQ(std::string_view(doc["id"].get_string().value()), "chatcmpl-01abc");
  EXPECT_EQ(std::string_view(doc["object"].get_string().value()), "chat.completion");
  auto choice = doc["choices"].at(0);
  EXPECT_EQ(std::string_view(choice["finish_reason"].get_string().value()), "tool_calls");
  EXPECT_EQ(std::string_view(choice["message"]["content"].get_string().value()), "Let me check.");
  auto call = choice["message"]["tool_calls"].at(0);
  EXPECT_EQ(std::string_view(call["id"].get_string().value()), "call_01xyz");
  EXPECT_EQ(std::string_view(call["function"]["name"].get_string().value()), "weather");
  EXPECT_EQ(std::string_view(call["function"]["arguments"].get_string().value()), R"({"city":"Paris"})");
  EXPECT_EQ(doc["usage"]["prompt_tokens"].get_int64().value(), 130);
  EXPECT_EQ(doc["usage"]["completion_tokens"].get_int64().value(), 7);
  EXPECT_EQ(doc["usage"]["prompt_tokens_details"]["cached_tokens"].get_int64().value(), 100);
  EXPECT_EQ(doc["usage"]["cache_creation_input_tokens"].get_int64().value(), 20);
  // What the pipeline reads for billing.
  const auto u = openai::read_usage(*out);
  EXPECT_EQ(u.prompt_tokens, 130);
  EXPECT_EQ(u.cached_prompt_tokens, 100);

  auto broken = openai_answer(p, "claude-x", R"({"type":"message"})", "r");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().kind, ErrorKind::upstream_protocol);
}

std::string sse(std::string_view type, std::string_view data) {
  return "event: " + std::string(type) + "\ndata: " + std::string(data) + "\n\n";
}

std::string tool_stream() {
  std::string s;
  s += sse("message_start", R"({"type":"message_start","message":{"id":"msg_9","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1,"cache_read_input_tokens":30,"cache_creation_input_tokens":5}}})");
  s += sse("content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  s += sse("ping", R"({"type": "ping"})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" now."}})");
  s += sse("content_block_stop", R"({"type":"content_block_stop","index":0})");
  s += sse("content_block_start", R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_7","name":"weather","input":{}}})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\": \"Par"}})");
  s += sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}})");
  s += sse("content_block_stop", R"({"type":"content_block_stop","index":1})");
  s += sse("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":25}})");
  s += sse("message_stop", R"({"type":"message_stop"})");
  return s;
}

TEST(AnthropicUpstream, StreamBecomesOpenAIChunksSplitAnywhere) {
  const auto p = anthropic_provider();
  auto stream = OpenAIStream::make(p, "claude-x", "req9");
  Status st;
  const std::string out = convert_bytewise(*stream, tool_stream(), &st);
  ASSERT_TRUE(st) << st.error().message;
  auto r = read_openai_sse(out);
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.error_message);
  ASSERT_TRUE(r.built.stopped());
  const cn::ChatResponse& resp = r.built.response();
  EXPECT_EQ(cn::text_of(resp), "Checking now.");
  ASSERT_EQ(resp.content.size(), 2u);
  const auto* call = std::get_if<cn::ToolCallPart>(&resp.content[1]);
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(call->id, "call_7");
  EXPECT_EQ(call->name, "weather");
  EXPECT_EQ(call->arguments, R"({"city": "Paris"})");
  EXPECT_EQ(resp.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(resp.usage, (cn::Usage{12, 25, 30, 5}));
  // The pipeline's view: a usage-only chunk with the whole prompt and the cached part.
  bool usage_seen = false;
  for (const auto& ev : r.inspected)
    if (ev.usage_only) {
      usage_seen = true;
      EXPECT_EQ(ev.usage.prompt_tokens, 47);
      EXPECT_EQ(ev.usage.completion_tokens, 25);
      EXPECT_EQ(ev.usage.cached_prompt_tokens, 30);
    }
  EXPECT_TRUE(usage_seen);
  EXPECT_TRUE(r.events.front().find("chatcmpl-9") != std::string::npos) << r.events.front();
  // The same bytes in one piece give the same text.
  auto whole = OpenAIStream::make(p, "claude-x", "req9");
  std::string out2;
  ASSERT_TRUE(whole->feed(tool_stream(), out2));
  ASSERT_TRUE(whole->finish(out2));
  EXPECT_EQ(read_openai_sse(out2).built.response().content.size(), 2u);
}

TEST(AnthropicUpstream, StreamReportsThePromptsTokensAtTheStart) {
  const auto p = anthropic_provider();
  auto stream = OpenAIStream::make(p, "claude-x", "r");
  std::string out;
  ASSERT_TRUE(stream->feed("event: ping\ndata: {\"type\":\"ping\"}\n\n", out));
  EXPECT_FALSE(stream->start_usage());
  // Split inside the event: known once the event is whole.
  const std::string start = sse("message_start", R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":12,"cache_read_input_tokens":30,"cache_creation_input_tokens":5,"output_tokens":1}}})");
  ASSERT_TRUE(stream->feed(start.substr(0, 40), out));
  EXPECT_FALSE(stream->start_usage());
  ASSERT_TRUE(stream->feed(start.substr(40), out));
  ASSERT_TRUE(stream->start_usage());
  EXPECT_EQ(*stream->start_usage(), (cn::Usage{12, 1, 30, 5}));
}

TEST(AnthropicUpstream, InStreamErrorBecomesOpenAIErrorEvent) {
  const auto p = anthropic_provider();
  auto stream = OpenAIStream::make(p, "claude-x", "r");
  std::string in;
  in += sse("message_start", R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"usage":{"input_tokens":3,"output_tokens":1}}})");
  in += sse("content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  in += sse("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w1"}})");
  in += sse("error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  std::string out;
  ASSERT_TRUE(stream->feed(in, out));
  ASSERT_TRUE(stream->finish(out));
  auto r = read_openai_sse(out);
  ASSERT_TRUE(r.error_message);
  EXPECT_EQ(*r.error_message, "Overloaded");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.inspected.back().kind, openai::StreamEvent::Kind::error);
}

TEST(AnthropicUpstream, TruncatedStreamEndsWithErrorEvent) {
  const auto p = anthropic_provider();
  auto stream = OpenAIStream::make(p, "claude-x", "r");
  std::string in = tool_stream();
  in.resize(in.find("event: message_delta"));
  std::string out;
  ASSERT_TRUE(stream->feed(in, out));
  ASSERT_TRUE(stream->finish(out));
  auto r = read_openai_sse(out);
  EXPECT_FALSE(r.done);
  EXPECT_TRUE(r.error_message);
}

TEST(AnthropicUpstream, MalformedEventIsAProtocolError) {
  const auto p = anthropic_provider();
  auto stream = OpenAIStream::make(p, "claude-x", "r");
  std::string out;
  auto st = stream->feed("event: content_block_delta\ndata: {\"type\":\"content_bl\n\n", out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::upstream_protocol);
}

struct ClassifyCase {
  unsigned status;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  ErrorKind kind;
  bool retryable;
};

TEST(AnthropicUpstream, ClassifiesErrors) {
  const auto p = anthropic_provider();
  auto body = [](std::string_view type, std::string_view msg) {
    return R"({"type":"error","error":{"type":")" + std::string(type) + R"(","message":")" + std::string(msg) + R"("}})";
  };
  const std::vector<ClassifyCase> cases = {
      {529, body("overloaded_error", "Overloaded"), {}, ErrorKind::upstream_overloaded, true},
      {429, body("rate_limit_error", "slow down"), {}, ErrorKind::upstream_rate_limited, true},
      {400, body("invalid_request_error", "prompt is too long: 200049 tokens > 200000 maximum"), {}, ErrorKind::context_length_exceeded, false},
      {400, body("invalid_request_error", "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000"), {}, ErrorKind::context_length_exceeded, false},
      {400, body("invalid_request_error", "messages: roles must alternate"), {}, ErrorKind::upstream_bad_request, false},
      {413, body("request_too_large", "Request exceeds the maximum size"), {}, ErrorKind::upstream_bad_request, false},
      {401, body("authentication_error", "invalid x-api-key sk-ant-abcd"), {}, ErrorKind::upstream_auth, false},
      {403, body("permission_error", "no"), {}, ErrorKind::upstream_auth, false},
      {404, body("not_found_error", "model: claude-9"), {}, ErrorKind::upstream_not_found, false},
      {500, body("api_error", "Internal server error"), {}, ErrorKind::upstream_server_error, true},
      {500, body("api_error", "Internal server error"), {{"x-should-retry", "false"}}, ErrorKind::upstream_server_error, false},
      {503, "<html>bad gateway</html>", {}, ErrorKind::upstream_overloaded, true},
      {504, "", {}, ErrorKind::upstream_server_error, true},
  };
  for (const auto& c : cases) {
    const Error e = classify_error(p, c.status, headers_of(c.headers), c.body, "anthropic/claude");
    EXPECT_EQ(e.kind, c.kind) << c.status << " " << c.body;
    EXPECT_EQ(e.retryable, c.retryable) << c.status << " " << c.body;
    EXPECT_EQ(e.upstream_status, static_cast<int>(c.status));
    EXPECT_EQ(e.origin, Origin::upstream);
    EXPECT_EQ(e.message.find("sk-ant"), std::string::npos) << e.message;
  }
}

TEST(AnthropicUpstream, OpenAIKindForwardsUnchanged) {
  config::Provider p;
  p.kind = config::ProviderKind::openai;
  p.endpoint = loopback(8080);
  p.endpoint.path_prefix = "/v1";
  p.api_key = Secret("sk-openai");
  auto req = build_chat_request(p, "gpt-x", R"({"model":"gpt-x","messages":[]})", true, kNow);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->target(), "/v1/chat/completions");
  EXPECT_EQ((*req)[boost::beast::http::field::authorization], "Bearer sk-openai");
  EXPECT_EQ(req->body(), R"({"model":"gpt-x","messages":[]})");
  auto answer = openai_answer(p, "gpt-x", "{\"id\":1}", "r");
  ASSERT_TRUE(answer);
  EXPECT_EQ(*answer, "{\"id\":1}");
  auto stream = OpenAIStream::make(p, "gpt-x", "r");
  std::string out;
  ASSERT_TRUE(stream->feed("data: {}\n\n", out));
  EXPECT_EQ(out, "data: {}\n\n");
  EXPECT_EQ(classify_error(p, 429, {}, "{}", "t").kind, ErrorKind::upstream_rate_limited);
}

TEST(AnthropicUpstream, ConfigLoadsKindAnthropicWithDefaults) {
  const std::string yaml = R"(
providers:
  claude:
    kind: anthropic
    api_key: ${ANTHROPIC_KEY}
  claude-proxy:
    kind: anthropic
    base_url: http://127.0.0.1:9000
    anthropic_version: "2024-01-01"
models:
  sonnet:
    targets:
      - provider: claude
        model: claude-3-5-sonnet-20241022
)";
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "ANTHROPIC_KEY") return "sk-ant-env";
    return std::nullopt;
  };
  auto cfg = config::load_string(yaml, env);
  ASSERT_TRUE(cfg) << cfg.error().front().to_string();
  const auto* claude = (*cfg)->find_provider("claude");
  ASSERT_NE(claude, nullptr);
  EXPECT_EQ(claude->kind, config::ProviderKind::anthropic);
  EXPECT_EQ(claude->endpoint.host, "api.anthropic.com");
  EXPECT_TRUE(claude->endpoint.tls);
  EXPECT_EQ(claude->endpoint.port, 443);
  EXPECT_EQ(claude->anthropic_version, "2023-06-01");
  EXPECT_EQ(claude->api_key.reveal(), "sk-ant-env");
  const auto* proxy = (*cfg)->find_provider("claude-proxy");
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(proxy->endpoint.port, 9000);
  EXPECT_EQ(proxy->anthropic_version, "2024-01-01");

  auto bad = config::load_string("providers:\n  o:\n    kind: openai\n    base_url: http://x\n    anthropic_version: x\n", env);
  ASSERT_FALSE(bad);
  std::string all;
  for (const auto& e : bad.error()) all += e.to_string() + "\n";
  EXPECT_NE(all.find("unknown key 'anthropic_version'"), std::string::npos) << all;
}

// A real exchange: the request built here, over a socket, to bulwark-mock's Anthropic
// endpoint (which requires x-api-key and anthropic-version), and its answer converted.
TEST(AnthropicUpstream, MockAcceptsBuiltRequestUnaryAndStreamed) {
  mock::Engine engine(mock::Config{}, SteadyClock::instance(), 7);
  mock::ServerOptions opts;
  opts.api_key = "provider-key";
  mock::Server server(opts, engine, SteadyClock::instance());
  ASSERT_TRUE(server.start());
  auto p = anthropic_provider();
  p.endpoint = loopback(server.port());
  p.api_key = Secret("provider-key");

  auto req = build_chat_request(p, "claude-mock", kOpenAIRequest, false, std::chrono::system_clock::now());
  ASSERT_TRUE(req);
  auto res = roundtrip(server.port(), *req);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  auto answer = openai_answer(p, "claude-mock", res.body(), "r1");
  ASSERT_TRUE(answer) << answer.error().message;
  auto resp = api::openai::decode_response(*answer);
  ASSERT_TRUE(resp);
  EXPECT_EQ(cn::text_of(*resp), "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16.");
  EXPECT_EQ(resp->usage.input, 6);  // "Be brief." + "say four words please"

  auto sreq = build_chat_request(p, "claude-mock", kOpenAIRequest, true, std::chrono::system_clock::now());
  ASSERT_TRUE(sreq);
  auto sres = roundtrip(server.port(), *sreq);
  ASSERT_EQ(sres.result_int(), 200u) << sres.body();
  auto stream = OpenAIStream::make(p, "claude-mock", "r2");
  Status st;
  auto out = convert_bytewise(*stream, sres.body(), &st);
  ASSERT_TRUE(st);
  auto r = read_openai_sse(out);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(cn::text_of(r.built.response()), "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16.");
  EXPECT_EQ(r.built.response().usage.output, 16);

  // A wrong key: the mock's 401 classified as the gateway's credentials being refused.
  p.api_key = Secret("wrong");
  auto bad = build_chat_request(p, "claude-mock", kOpenAIRequest, false, std::chrono::system_clock::now());
  auto bres = roundtrip(server.port(), *bad);
  EXPECT_EQ(bres.result_int(), 401u);
  EXPECT_EQ(classify_error(p, 401, {}, bres.body(), "t").kind, ErrorKind::upstream_auth);
  server.stop();
}

// Citations: a request whose document asks for them (the gateway's OpenAI form, as the
// ingress writes it for an Anthropic caller) gets the mock's cited text block, plain and
// streamed; the stream, converted one byte at a time, keeps the citation on its block.
TEST(AnthropicUpstream, MockCitationsReachTheOpenAIFormPlainAndStreamed) {
  mock::Engine engine(mock::Config{}, SteadyClock::instance(), 7);
  mock::Server server(mock::ServerOptions{}, engine, SteadyClock::instance());
  ASSERT_TRUE(server.start());
  auto p = anthropic_provider();
  p.endpoint = loopback(server.port());
  auto caller = api::anthropic::decode_request(R"({"model":"claude","max_tokens":50,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"text","media_type":"text/plain","data":"The sky is blue today, said the forecast."},
     "title":"Weather","citations":{"enabled":true}},
    {"type":"text","text":"What colour is the sky?"}]}]})");
  ASSERT_TRUE(caller) << caller.error().message;
  auto body = api::openai::encode_request(*caller, "claude", api::openai::RequestOptions{true});
  ASSERT_TRUE(body) << body.error().message;
  const boost::json::value expected = boost::json::parse(
      R"([{"type":"char_location","cited_text":"The sky is blue today,","document_index":0,"document_title":"Weather","start_char_index":0,"end_char_index":22}])");

  auto req = build_chat_request(p, "claude-mock", *body, false, std::chrono::system_clock::now());
  ASSERT_TRUE(req) << req.error().message;
  auto res = roundtrip(server.port(), *req);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  auto answer = openai_answer(p, "claude-mock", res.body(), "r1");
  ASSERT_TRUE(answer) << answer.error().message;
  auto resp = api::openai::decode_response(*answer);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->content.size(), 1u);
  EXPECT_EQ(boost::json::parse(std::get<cn::TextPart>(resp->content[0]).citations), expected);

  auto sreq = build_chat_request(p, "claude-mock", *body, true, std::chrono::system_clock::now());
  ASSERT_TRUE(sreq);
  auto sres = roundtrip(server.port(), *sreq);
  ASSERT_EQ(sres.result_int(), 200u) << sres.body();
  EXPECT_NE(sres.body().find(R"("delta":{"type":"citations_delta","citation":{"type":"char_location")"), std::string::npos) << sres.body();
  auto stream = OpenAIStream::make(p, "claude-mock", "r2");
  Status st;
  const std::string out = convert_bytewise(*stream, sres.body(), &st);
  ASSERT_TRUE(st) << st.error().message;
  auto r = read_openai_sse(out);
  EXPECT_TRUE(r.done);
  const cn::ChatResponse& streamed = r.built.response();
  ASSERT_EQ(streamed.content.size(), 1u);
  EXPECT_EQ(cn::text_of(streamed), cn::text_of(*resp));
  EXPECT_EQ(boost::json::parse(std::get<cn::TextPart>(streamed.content[0]).citations), expected);
  // The citation's chunk is no token: the pipeline does not count it as the first output.
  bool citation_seen = false;
  for (std::size_t i = 0; i < r.events.size(); ++i) {
    if (r.events[i].find("\"citation\":") == std::string::npos) continue;
    citation_seen = true;
    EXPECT_EQ(r.inspected[i].content_deltas, 0) << r.events[i];
  }
  EXPECT_TRUE(citation_seen);
  server.stop();
}

}  // namespace
}  // namespace bulwark::providers
