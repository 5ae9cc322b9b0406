// Anthropic Messages: decoding, encoding and the /v1/messages route on a real socket.
#include "mock/anthropic.hpp"

#include <gtest/gtest.h>

#include "mock/answer.hpp"
#include "mock_client.hpp"

namespace bulwark::mock {
namespace {

using namespace bulwark::mock::testing;

const AnthropicFormat kFormat;

TEST(MockAnthropicDecode, ReadsModelStreamMaxTokensAndCountsWords) {
  auto r = kFormat.decode_chat(R"({
    "model": "claude-x", "max_tokens": 64, "stream": true, "temperature": 0.1,
    "system": [{"type": "text", "text": "be very terse"}],
    "messages": [
      {"role": "user", "content": "two words"},
      {"role": "assistant", "content": [{"type": "text", "text": "three more words"}]},
      {"role": "user", "content": [{"type": "image", "source": {}}, {"type": "text", "text": "last one"}]}
    ]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->format, "anthropic");
  EXPECT_EQ(r->model, "claude-x");
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->max_tokens, 64u);
  EXPECT_EQ(r->prompt_tokens, 3u + 2u + 3u + 2u);
  EXPECT_FALSE(r->last_is_assistant);
}

TEST(MockAnthropicDecode, TrailingAssistantIsAPrefill) {
  auto r = kFormat.decode_chat(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"w1 w2"}]}]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->last_is_assistant);
  EXPECT_EQ(r->last_content, "w1 w2");
  // Anthropic refuses a prefill ending in whitespace.
  auto ws = kFormat.decode_chat(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":"w1 "}]})");
  ASSERT_FALSE(ws);
  EXPECT_NE(ws.error().message.find("trailing whitespace"), std::string::npos);
}

TEST(MockAnthropicDecode, RejectsBadBodies) {
  auto message = [](std::string_view body) {
    auto r = kFormat.decode_chat(body);
    return r ? std::string("ok") : r.error().message;
  };
  EXPECT_EQ(kFormat.decode_chat("{").error().kind, ErrorKind::invalid_json);
  EXPECT_EQ(message(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"), "max_tokens: Field required");
  EXPECT_EQ(message(R"({"max_tokens":3,"messages":[]})"), "model: Field required");
  EXPECT_EQ(message(R"({"model":"m","max_tokens":3})"), "messages: Field required");
  EXPECT_NE(message(R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})").find("greater than or equal to 1"), std::string::npos);
  EXPECT_NE(message(R"({"model":"m","max_tokens":3,"messages":[{"role":"system","content":"x"}]})").find("messages.0.role"), std::string::npos);
  EXPECT_NE(message(R"({"model":"m","max_tokens":3,"stream":"yes","messages":[{"role":"user","content":"x"}]})").find("stream"), std::string::npos);
}

TEST(MockAnthropicDecode, BedrockDialectWantsItsVersionAndNoModel) {
  using anthropic::Dialect;
  const std::string_view ok =
      R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"messages":[{"role":"user","content":"a b"}]})";
  auto r = anthropic::decode(ok, Dialect::bedrock);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->format, "bedrock");
  EXPECT_EQ(r->prompt_tokens, 2u);
  auto missing = anthropic::decode(R"({"max_tokens":9,"messages":[]})", Dialect::bedrock);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("required key [anthropic_version] not found"), std::string::npos);
  auto with_model = anthropic::decode(
      R"({"anthropic_version":"bedrock-2023-05-31","model":"claude","max_tokens":9,"messages":[]})",
      Dialect::bedrock);
  ASSERT_FALSE(with_model);
  EXPECT_NE(with_model.error().message.find("extraneous key [model]"), std::string::npos);
}

TEST(MockAnthropicDecode, CitesTheFirstDocumentWithCitationsEnabled) {
  // Documents are numbered across the request; the first cited one is quoted by its first
  // five words (characters, not bytes, for the end index).
  auto r = kFormat.decode_chat(R"({"model":"m","max_tokens":5,"messages":[
    {"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Not cited."}}]},
    {"role":"assistant","content":"ok"},
    {"role":"user","content":[
      {"type":"document","title":"Café","source":{"type":"text","media_type":"text/plain","data":"Le café est très chaud ce matin."},"citations":{"enabled":true}},
      {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"citations":{"enabled":true}},
      {"type":"text","text":"Cite."}]}]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->citation,
            R"({"type":"char_location","cited_text":"Le café est très chaud","document_index":1,"document_title":"Café","start_char_index":0,"end_char_index":22})");
  auto pdf = kFormat.decode_chat(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"citations":{"enabled":true}}]}]})");
  ASSERT_TRUE(pdf);
  EXPECT_EQ(pdf->citation,
            R"({"type":"page_location","cited_text":"","document_index":0,"document_title":null,"start_page_number":1,"end_page_number":2})");
  auto none = kFormat.decode_chat(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->citation.empty());
}

TEST(MockAnthropicEncode, ErrorTypesFollowStatusThenError) {
  EXPECT_EQ(anthropic::error_type_name(ErrorType::overloaded, 529), "overloaded_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::server_error, 529), "overloaded_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::rate_limit, 429), "rate_limit_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::server_error, 500), "api_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::invalid_request, 400), "invalid_request_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::invalid_request, 403), "permission_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::invalid_request, 404), "not_found_error");
  EXPECT_EQ(anthropic::error_type_name(ErrorType::auth, 401), "authentication_error");
  Plan p;
  p.kind = ActionKind::error;
  p.error = ErrorType::overloaded;
  p.status = 503;
  EXPECT_EQ(kFormat.error_status(p), 529);
  p.status = 502;  // an explicit non-default status is kept
  EXPECT_EQ(kFormat.error_status(p), 502);
}

// ---- On a real socket ----

const std::vector<std::pair<std::string, std::string>> kVersion{{"anthropic-version", "2023-06-01"}};

std::string messages_body(std::string_view model, bool stream, std::uint32_t max_tokens = 1000,
                          std::string_view extra_message = "") {
  std::string b = R"({"model":")" + std::string(model) + R"(","max_tokens":)" +
                  std::to_string(max_tokens) +
                  R"(,"system":"be brief","messages":[{"role":"user","content":"say four words please"})";
  b += extra_message;
  b += "]";
  if (stream) b += R"(,"stream":true)";
  b += "}";
  return b;
}

struct SseEvent {
  std::string name;
  std::string data;
};

// Anthropic's SSE: "event: NAME\ndata: JSON\n\n" per event.
std::vector<SseEvent> sse_events(const std::string& body) {
  std::vector<SseEvent> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string_view ev(body.data() + pos, end - pos);
    pos = end + 2;
    EXPECT_TRUE(ev.starts_with("event: ")) << ev;
    const auto nl = ev.find('\n');
    SseEvent e;
    e.name = std::string(ev.substr(7, nl - 7));
    std::string_view data = ev.substr(nl + 1);
    EXPECT_TRUE(data.starts_with("data: ")) << ev;
    e.data = std::string(data.substr(6));
    out.push_back(std::move(e));
  }
  EXPECT_EQ(pos, body.size()) << "trailing bytes after the last event";
  return out;
}

class MockAnthropicServer : public MockServerTest {};

TEST_F(MockAnthropicServer, AnswersAMessagesResponse) {
  Config c;
  c.default_behavior.tokens = 5;
  start(c);
  Client client(port());
  const auto res = client.call(Client::post("/v1/messages", messages_body("claude-x", false), kVersion));
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res["x-mock-attempt"], "1");
  auto m = parse(res.body());
  EXPECT_TRUE(std::string_view(m["id"]).starts_with("msg_"));
  EXPECT_EQ(std::string_view(m["type"]), "message");
  EXPECT_EQ(std::string_view(m["role"]), "assistant");
  EXPECT_EQ(std::string_view(m["model"]), "claude-x");
  EXPECT_EQ(std::string_view(m["content"].at(0)["type"]), "text");
  EXPECT_EQ(std::string_view(m["content"].at(0)["text"]), expected_answer(5));
  EXPECT_EQ(std::string_view(m["stop_reason"]), "end_turn");
  EXPECT_TRUE(m["stop_sequence"].is_null());
  EXPECT_EQ(std::uint64_t(m["usage"]["input_tokens"]), 6u);  // "be brief" + 4 words
  EXPECT_EQ(std::uint64_t(m["usage"]["output_tokens"]), 5u);

  // max_tokens below the answer: cut short with stop_reason max_tokens.
  const auto capped = client.call(Client::post("/v1/messages", messages_body("claude-x", false, 2), kVersion));
  auto cm = parse(capped.body());
  EXPECT_EQ(std::string_view(cm["content"].at(0)["text"]), "w1 w2");
  EXPECT_EQ(std::string_view(cm["stop_reason"]), "max_tokens");
  EXPECT_EQ(std::uint64_t(cm["usage"]["output_tokens"]), 2u);
}

TEST_F(MockAnthropicServer, StreamsTheDocumentedEventSequence) {
  Config c;
  c.default_behavior.tokens = 3;
  start(c);
  Client client(port());
  const auto res = client.call(Client::post("/v1/messages", messages_body("claude-x", true), kVersion));
  ASSERT_EQ(res.result_int(), 200);
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(res[http::field::content_type], "text/event-stream; charset=utf-8");
  const auto events = sse_events(res.body());
  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"message_start", "content_block_start", "ping",
                                             "content_block_delta", "content_block_delta",
                                             "content_block_delta", "content_block_stop",
                                             "message_delta", "message_stop"}));
  std::string text;
  for (const auto& e : events) {
    auto j = parse(e.data);
    EXPECT_EQ(std::string_view(j["type"]), e.name);
    if (e.name == "message_start") {
      EXPECT_TRUE(std::string_view(j["message"]["id"]).starts_with("msg_"));
      EXPECT_EQ(std::uint64_t(j["message"]["usage"]["input_tokens"]), 6u);
    } else if (e.name == "content_block_delta") {
      EXPECT_EQ(std::string_view(j["delta"]["type"]), "text_delta");
      text += std::string_view(j["delta"]["text"]);
    } else if (e.name == "message_delta") {
      EXPECT_EQ(std::string_view(j["delta"]["stop_reason"]), "end_turn");
      EXPECT_EQ(std::uint64_t(j["usage"]["output_tokens"]), 3u);
    }
  }
  EXPECT_EQ(text, "w1 w2 w3.");
}

TEST_F(MockAnthropicServer, CitesADocumentPlainAndStreamed) {
  Config c;
  c.default_behavior.tokens = 3;
  start(c);
  Client client(port());
  constexpr std::string_view kCited =
      R"(,{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Grass is green."},"citations":{"enabled":true}},{"type":"text","text":"Cite."}]})";
  constexpr std::string_view kCitation =
      R"({"type":"char_location","cited_text":"Grass is green.","document_index":0,"document_title":null,"start_char_index":0,"end_char_index":15})";
  const auto plain = client.call(Client::post("/v1/messages", messages_body("m", false, 1000, kCited), kVersion));
  ASSERT_EQ(plain.result_int(), 200) << plain.body();
  EXPECT_NE(plain.body().find(R"("text":"w1 w2 w3.","citations":[)" + std::string(kCitation) + "]}"), std::string::npos) << plain.body();
  const auto res = client.call(Client::post("/v1/messages", messages_body("m", true, 1000, kCited), kVersion));
  ASSERT_EQ(res.result_int(), 200);
  const auto events = sse_events(res.body());
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[1].name, "content_block_start");
  EXPECT_EQ(events[2].name, "content_block_delta");
  EXPECT_EQ(events[2].data, R"({"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":)" + std::string(kCitation) + "}}");
}

TEST_F(MockAnthropicServer, PrefillContinuesTheAssistantMessage) {
  Config c;
  c.default_behavior.tokens = 6;
  start(c);
  Client client(port());
  const auto res = client.call(Client::post(
      "/v1/messages", messages_body("m", true, 1000, R"(,{"role":"assistant","content":"w1 w2 w"})"), kVersion));
  std::string text;
  for (const auto& e : sse_events(res.body()))
    if (e.name == "content_block_delta") text += std::string_view(parse(e.data)["delta"]["text"]);
  EXPECT_EQ(text, "3 w4 w5 w6.");
  const auto plain = client.call(Client::post(
      "/v1/messages", messages_body("m", false, 1000, R"(,{"role":"assistant","content":"w1 w2 w3"})"), kVersion));
  auto m = parse(plain.body());
  EXPECT_EQ(std::string_view(m["content"].at(0)["text"]), " w4 w5 w6.");
  EXPECT_EQ(std::uint64_t(m["usage"]["output_tokens"]), 3u);
}

TEST_F(MockAnthropicServer, ErrorsHaveAnthropicsShapeAndStatuses) {
  Config c;
  Action overloaded = error_act(ErrorType::overloaded, 503);
  overloaded.retry_after = Millis{2000};
  c.models["busy"].faults.push_back(Fault{always(), overloaded});
  c.models["limited"].faults.push_back(Fault{always(), error_act(ErrorType::rate_limit, 429)});
  c.models["gone"].faults.push_back(Fault{always(), error_act(ErrorType::not_found, 404)});
  c.models["denied"].faults.push_back(Fault{always(), error_act(ErrorType::permission, 403)});
  c.models["broken"].faults.push_back(Fault{always(), error_act(ErrorType::server_error, 500)});
  c.models["small"].context_window = 3;
  start(c);
  Client client(port());
  struct Case {
    const char* model;
    int status;
    const char* type;
  };
  for (const Case& k : {Case{"busy", 529, "overloaded_error"}, Case{"limited", 429, "rate_limit_error"},
                        Case{"gone", 404, "not_found_error"}, Case{"denied", 403, "permission_error"},
                        Case{"broken", 500, "api_error"}, Case{"small", 400, "invalid_request_error"}}) {
    const auto res = client.call(Client::post("/v1/messages", messages_body(k.model, true), kVersion));
    EXPECT_EQ(res.result_int(), k.status) << k.model;
    EXPECT_EQ(res[http::field::content_type], "application/json");
    auto e = parse(res.body());
    EXPECT_EQ(std::string_view(e["type"]), "error");
    EXPECT_EQ(std::string_view(e["error"]["type"]), k.type) << k.model;
    EXPECT_FALSE(std::string_view(e["error"]["message"]).empty());
    EXPECT_EQ(res["x-should-retry"], k.status >= 429 && k.status != 403 && k.status != 404 ? "true" : "false") << k.model;
    if (std::string_view(k.model) == "busy") {
      EXPECT_EQ(res[http::field::retry_after], "2");
      EXPECT_EQ(std::string_view(e["error"]["message"]), "Overloaded");
    }
    if (std::string_view(k.model) == "small") {
      EXPECT_EQ(std::string_view(e["error"]["message"]), "prompt is too long: 6 tokens > 3 maximum");
    }
  }
}

TEST_F(MockAnthropicServer, ErrorEventMidStreamAndOtherStreamFaults) {
  Config c;
  for (auto name : {"mid", "cut", "bad", "nodone"}) c.models[name].tokens = 5;
  c.models["mid"].faults.push_back(
      Fault{always(), error_act(ErrorType::overloaded, 529, ActionKind::stream_error, 2)});
  c.models["cut"].faults.push_back(Fault{always(), act(ActionKind::cut, 2)});
  c.models["bad"].faults.push_back(Fault{always(), act(ActionKind::malformed, 1)});
  c.models["nodone"].faults.push_back(Fault{always(), act(ActionKind::omit_done)});
  start(c);
  {
    Client client(port());
    const auto res = client.call(Client::post("/v1/messages", messages_body("mid", true), kVersion));
    EXPECT_EQ(res.result_int(), 200);
    const auto events = sse_events(res.body());
    ASSERT_EQ(events.size(), 3u + 2 + 1);  // start, block start, ping, 2 deltas, error
    EXPECT_EQ(events[4].name, "content_block_delta");
    EXPECT_EQ(events.back().name, "error");
    auto e = parse(events.back().data);
    EXPECT_EQ(std::string_view(e["type"]), "error");
    EXPECT_EQ(std::string_view(e["error"]["type"]), "overloaded_error");
    // The body ended properly: the connection is reusable.
    EXPECT_EQ(client.get("/healthz").result_int(), 200);
    // Non-streaming, the same fault is a plain error answer.
    const auto plain = client.call(Client::post("/v1/messages", messages_body("mid", false), kVersion));
    EXPECT_EQ(plain.result_int(), 529);
  }
  {
    Client client(port());
    client.write(Client::post("/v1/messages", messages_body("cut", true), kVersion));
    beast::error_code ec;
    const auto partial = client.read(ec);
    EXPECT_TRUE(ec);
    EXPECT_NE(partial.body().find(R"("text":" w2")"), std::string::npos) << partial.body();
    EXPECT_EQ(partial.body().find("message_stop"), std::string::npos);
  }
  {
    Client client(port());
    const auto res = client.call(Client::post("/v1/messages", messages_body("bad", true), kVersion));
    const auto events = sse_events(res.body());
    ASSERT_FALSE(events.empty());
    simdjson::dom::parser p;
    simdjson::dom::element ignored;
    EXPECT_NE(p.parse(events.back().data).get(ignored), simdjson::SUCCESS);
    const auto nodone = client.call(Client::post("/v1/messages", messages_body("nodone", true), kVersion));
    const auto ev = sse_events(nodone.body());
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev.back().name, "message_delta");
  }
}

TEST_F(MockAnthropicServer, ChecksApiKeyAndVersionHeader) {
  ServerOptions opts;
  opts.api_key = "sk-ant-secret";
  start(Config{}, opts);
  Client client(port());
  const auto no_version = client.call(Client::post("/v1/messages", messages_body("m", false),
                                                   {{"x-api-key", "sk-ant-secret"}}));
  EXPECT_EQ(no_version.result_int(), 400);
  EXPECT_NE(no_version.body().find("anthropic-version: header is required"), std::string::npos);
  EXPECT_EQ(no_version["x-mock-attempt"], "");

  const auto missing = client.call(Client::post("/v1/messages", messages_body("m", false), kVersion));
  EXPECT_EQ(missing.result_int(), 401);
  auto e = parse(missing.body());
  EXPECT_EQ(std::string_view(e["error"]["type"]), "authentication_error");
  auto wrong_headers = kVersion;
  wrong_headers.emplace_back("x-api-key", "sk-other");
  EXPECT_EQ(client.call(Client::post("/v1/messages", messages_body("m", false), wrong_headers)).result_int(), 401);
  // A Bearer header is OpenAI's scheme, not Anthropic's.
  auto bearer = kVersion;
  bearer.emplace_back("authorization", "Bearer sk-ant-secret");
  EXPECT_EQ(client.call(Client::post("/v1/messages", messages_body("m", false), bearer)).result_int(), 401);
  auto good = kVersion;
  good.emplace_back("x-api-key", "sk-ant-secret");
  good.emplace_back("anthropic-beta", "tools-2024-04-04");
  EXPECT_EQ(client.call(Client::post("/v1/messages", messages_body("m", false), good)).result_int(), 200);

  // Stats count per format; the last request is recorded with the key redacted.
  auto stats = parse(client.get("/_mock/stats").body());
  EXPECT_EQ(std::uint64_t(stats["formats"]["anthropic"]["requests"]), 4u);
  EXPECT_EQ(std::uint64_t(stats["formats"]["anthropic"]["rejected"]), 1u);
  EXPECT_EQ(std::string_view(stats["models"]["m"]["requests"].at(0)["format"]), "anthropic");
  const auto last_text = client.get("/_mock/last-request/anthropic").body();
  EXPECT_EQ(last_text.find("sk-ant-secret"), std::string::npos) << last_text;
  auto last = parse(last_text);
  EXPECT_EQ(std::string_view(last["api"]), "messages");
  EXPECT_EQ(std::string_view(last["target"]), "/v1/messages");
  EXPECT_EQ(std::string_view(last["model"]), "m");
  EXPECT_EQ(std::string_view(last["headers"]["anthropic-beta"]), "tools-2024-04-04");
  EXPECT_EQ(std::string_view(last["headers"]["x-api-key"]), "<redacted>");
  EXPECT_EQ(std::string_view(last["body"]), messages_body("m", false));
  EXPECT_EQ(client.get("/_mock/last-request/bedrock").result_int(), 404);

  // Anthropic's model list for Anthropic clients.
  Request list{http::verb::get, "/v1/models", 11};
  list.set(http::field::host, "127.0.0.1");
  list.set("anthropic-version", "2023-06-01");
  list.set("x-api-key", "sk-ant-secret");
  const auto models = client.call(list);
  EXPECT_EQ(models.result_int(), 200);
  EXPECT_NE(models.body().find(R"("has_more":false)"), std::string::npos) << models.body();
}

}  // namespace
}  // namespace bulwark::mock
