// pipeline/ingress.hpp: routes, caller bodies to OpenAI, and the translating Downstream
// (OpenAI answers, SSE and errors back to Anthropic and Bedrock shapes, decoded again here:
// Anthropic SSE with the Anthropic decoder, Bedrock event streams with CRCs checked).
#include "pipeline/ingress.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/bedrock/invoke.hpp"
#include "api/canonical/stream.hpp"
#include "api/openai/chat.hpp"
#include "api/openai/translate.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "providers/openai/openai.hpp"

namespace bulwark::pipeline {
namespace {

namespace asio = boost::asio;
namespace cn = api::canonical;
namespace es = bedrock::eventstream;

class Recorder final : public Downstream {
 public:
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  std::string body;
  bool streaming = false, ended = false;

  asio::awaitable<bool> send(unsigned s, std::span<const Header> h, std::string_view ct, std::string b) override {
    record(s, h, ct);
    body = std::move(b);
    co_return true;
  }
  asio::awaitable<bool> begin_stream(unsigned s, std::span<const Header> h, std::string_view ct) override {
    record(s, h, ct);
    streaming = true;
    co_return true;
  }
  asio::awaitable<bool> write(std::string_view bytes) override {
    body.append(bytes);
    co_return true;
  }
  asio::awaitable<bool> end_stream() override {
    ended = true;
    co_return true;
  }
  asio::awaitable<bool> wait_hangup() override { co_return false; }
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }

 private:
  void record(unsigned s, std::span<const Header> h, std::string_view ct) {
    status = s;
    for (const auto& [k, v] : h) headers.emplace_back(k, v);
    content_type = ct;
  }
};

// Runs what the pipeline would do on the downstream.
void run(asio::awaitable<void> work) {
  asio::io_context io;
  auto done = asio::co_spawn(io, std::move(work), asio::use_future);
  io.run();
  done.get();
}

const std::vector<Header> kPipelineHeaders = {{"x-bulwark-request-id", "0123456789abcdef"},
                                              {"x-bulwark-target", "aws/claude"},
                                              {"x-ratelimit-remaining-requests", "9"}};

// An OpenAI answer as the pipeline relays it.
cn::ChatResponse sample_response() {
  cn::ChatResponse r;
  r.id = "chatcmpl-xyz";
  r.model = "upstream-model";
  r.created = 1'700'000'000;
  r.content.emplace_back(cn::TextPart{"Looking it up."});
  r.content.emplace_back(cn::ToolCallPart{"call_k1", "weather", R"({"city":"Lima"})"});
  r.stop_reason = cn::StopReason::tool_use;
  r.usage = {10, 5, 20, 3};
  return r;
}

// The OpenAI SSE the pipeline writes for a streamed answer: the translator's chunks with
// tool arguments in fragments, the usage chunk, the cost comment and [DONE].
std::vector<std::string> pipeline_sse() {
  api::openai::StreamEncoder enc(api::openai::StreamOptions{"chatcmpl-s1", "upstream-model", 1'700'000'000, true, 1});
  const std::vector<cn::StreamEvent> events = {
      cn::MessageStart{"chatcmpl-s1", "upstream-model", {}},
      cn::TextDelta{0, "Hel"},
      cn::TextDelta{0, "lo."},
      cn::BlockStop{0},
      cn::ToolCallStart{1, "call_t9", "weather"},
      cn::ToolArgsDelta{1, "{\"ci"},
      cn::ToolArgsDelta{1, "ty\":\"Lima\"}"},
      cn::BlockStop{1},
      cn::MessageDelta{cn::StopReason::tool_use, {}, cn::Usage{4, 9, 6, 1}, std::nullopt},
  };
  std::vector<std::string> writes;
  for (const auto& e : events) {
    std::string out;
    enc.encode(e, out);
    if (!out.empty()) writes.push_back(std::move(out));
  }
  std::string stop;
  enc.encode(cn::MessageStop{}, stop);
  // The pipeline holds back the upstream's [DONE] and writes its own tail.
  stop.resize(stop.find("data: [DONE]"));
  writes.push_back(stop);
  writes.push_back(": x-bulwark-cost-usd 0.000123\n\ndata: [DONE]\n\n");
  return writes;
}

asio::awaitable<void> stream_through(Downstream& ds, std::vector<std::string> writes) {
  co_await ds.begin_stream(200, kPipelineHeaders, "text/event-stream");
  for (const std::string& w : writes) {
    // Split each write in two to cross event boundaries.
    const std::size_t half = w.size() / 2;
    co_await ds.write(std::string_view(w).substr(0, half));
    co_await ds.write(std::string_view(w).substr(half));
  }
  co_await ds.end_stream();
}

// ---- routes ----

TEST(Ingress, MatchesRoutes) {
  auto m = match_ingress("POST", "/v1/messages");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->format, Format::anthropic);
  EXPECT_TRUE(match_ingress("POST", "/v1/messages?beta=true"));
  EXPECT_FALSE(match_ingress("GET", "/v1/messages"));
  EXPECT_FALSE(match_ingress("POST", "/v1/chat/completions"));

  auto c = match_ingress("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->format, Format::bedrock_converse);
  EXPECT_EQ(c->model, "anthropic.claude-3-haiku-20240307-v1:0");
  EXPECT_FALSE(c->stream);
  auto cs = match_ingress("POST", "/model/my-model/converse-stream");
  ASSERT_TRUE(cs);
  EXPECT_TRUE(cs->stream);
  EXPECT_EQ(cs->model, "my-model");
  auto arn = match_ingress("POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/invoke");
  ASSERT_TRUE(arn);
  EXPECT_EQ(arn->format, Format::bedrock_invoke);
  EXPECT_EQ(arn->model, "arn:aws:bedrock:us-east-1:1:inference-profile/us.x");
  auto is = match_ingress("POST", "/model/m/invoke-with-response-stream");
  ASSERT_TRUE(is);
  EXPECT_TRUE(is->stream);
  EXPECT_FALSE(match_ingress("POST", "/model/m/chat"));
  EXPECT_FALSE(match_ingress("POST", "/model//converse"));
  EXPECT_FALSE(match_ingress("POST", "/model/bad%zz/converse"));
  EXPECT_FALSE(match_ingress("POST", "/model/converse"));
}

// ---- requests ----

TEST(Ingress, AnthropicRequestToOpenAI) {
  const std::string body = R"({"model":"claude-gw","max_tokens":64,"system":"Be brief.","stream":true,
    "messages":[{"role":"user","content":[{"type":"text","text":"Weather?"}]},
      {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Lima"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}],
    "tools":[{"name":"weather","input_schema":{"type":"object"}}],"stop_sequences":["END"]})";
  auto out = to_openai_request(Format::anthropic, body, "", false);
  ASSERT_TRUE(out) << out.error().message;
  // What the pipeline decodes.
  auto chat = api::openai::decode_chat_request(*out);
  ASSERT_TRUE(chat) << *out;
  EXPECT_EQ(chat->model, "claude-gw");
  EXPECT_TRUE(chat->stream);
  EXPECT_TRUE(chat->include_usage);
  EXPECT_EQ(chat->max_tokens, 64);
  auto req = api::openai::decode_request(*out);
  ASSERT_TRUE(req);
  ASSERT_EQ(req->system.size(), 1u);
  EXPECT_EQ(req->system[0], "Be brief.");
  ASSERT_EQ(req->messages.size(), 3u);
  EXPECT_EQ(req->messages[2].role, cn::Role::tool);
  EXPECT_EQ(req->stop, std::vector<std::string>{"END"});
  ASSERT_EQ(req->tools.size(), 1u);

  auto bad = to_openai_request(Format::anthropic, R"({"model":"m","messages":[]})", "", false);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(is_callers_fault(bad.error().kind));
}

TEST(Ingress, BedrockRequestsToOpenAI) {
  auto conv = to_openai_request(Format::bedrock_converse,
                                R"({"messages":[{"role":"user","content":[{"text":"Hi"}]}],"system":[{"text":"S"}],"inferenceConfig":{"maxTokens":7}})",
                                "gw-model", true);
  ASSERT_TRUE(conv) << conv.error().message;
  auto chat = api::openai::decode_chat_request(*conv);
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->model, "gw-model");
  EXPECT_TRUE(chat->stream);
  EXPECT_EQ(chat->max_tokens, 7);

  auto claude = to_openai_request(Format::bedrock_invoke,
                                  R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":9,"messages":[{"role":"user","content":"Hi"}]})",
                                  "claude-gw", false);
  ASSERT_TRUE(claude) << claude.error().message;
  auto c = api::openai::decode_chat_request(*claude);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->model, "claude-gw");
  EXPECT_FALSE(c->stream);

  auto llama = to_openai_request(Format::bedrock_invoke, R"({"prompt":"Tell me a joke","max_gen_len":20})",
                                 "meta.llama3-8b-instruct-v1:0", true);
  ASSERT_TRUE(llama) << llama.error().message;
  auto lr = api::openai::decode_request(*llama);
  ASSERT_TRUE(lr);
  EXPECT_EQ(lr->max_tokens, 20);

  auto titan = to_openai_request(Format::bedrock_invoke, R"({"inputText":"Hello"})", "titan-gw", false);
  ASSERT_TRUE(titan) << titan.error().message;

  auto unknown = to_openai_request(Format::bedrock_invoke, R"({"foo":1})", "gw", false);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::bad_request);

  EXPECT_EQ(*to_openai_request(Format::openai, "{\"model\":\"x\"}", "", false), "{\"model\":\"x\"}");
}

// ---- answers ----

TEST(Ingress, AnthropicUnaryAnswerAndErrors) {
  Recorder rec;
  auto ds = translating_downstream(Format::anthropic, rec, "claude-gw");
  run([&]() -> asio::awaitable<void> {
    co_await ds->send(200, kPipelineHeaders, "application/json", api::openai::encode_response(sample_response()));
  }());
  EXPECT_EQ(rec.status, 200u);
  EXPECT_EQ(rec.header("x-bulwark-target"), "aws/claude");
  EXPECT_EQ(rec.header("x-ratelimit-remaining-requests"), "9");
  auto resp = api::anthropic::decode_response(rec.body);
  ASSERT_TRUE(resp) << rec.body;
  EXPECT_EQ(resp->model, "claude-gw");
  EXPECT_EQ(resp->id, "msg_xyz");
  EXPECT_EQ(resp->stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(resp->usage, (cn::Usage{10, 5, 20, 3}));
  ASSERT_EQ(resp->content.size(), 2u);
  EXPECT_EQ(std::get<cn::ToolCallPart>(resp->content[1]).id, "toolu_k1");

  Recorder err;
  auto eds = translating_downstream(Format::anthropic, err, "claude-gw");
  Error limited = Error::client(ErrorKind::rate_limited, "Rate limit reached for this key: requests per minute.");
  const std::vector<Header> h = {{"retry-after", "2"}};
  run([&]() -> asio::awaitable<void> {
    co_await eds->send(429, h, "application/json", api::openai::error_body(limited));
  }());
  EXPECT_EQ(err.status, 429u);
  EXPECT_EQ(err.header("retry-after"), "2");
  EXPECT_NE(err.body.find(R"("type":"error")"), std::string::npos) << err.body;
  EXPECT_NE(err.body.find(R"("type":"rate_limit_error")"), std::string::npos) << err.body;
  EXPECT_NE(err.body.find("requests per minute"), std::string::npos);
}

// Decodes Anthropic SSE with the Anthropic decoder, checking the event sequence.
TEST(Ingress, AnthropicStreamIsValidSse) {
  Recorder rec;
  auto ds = translating_downstream(Format::anthropic, rec, "claude-gw");
  run(stream_through(*ds, pipeline_sse()));
  EXPECT_EQ(rec.content_type, "text/event-stream");
  EXPECT_TRUE(rec.ended);
  std::vector<std::string> types;
  api::anthropic::StreamDecoder dec;
  cn::ResponseBuilder built;
  providers::openai::SseSplitter split;
  split.feed(rec.body, [&](std::string_view ev) {
    if (ev.starts_with(":")) return;  // the pipeline's cost comment, kept as an SSE comment
    ASSERT_TRUE(ev.starts_with("event: ")) << ev;
    types.emplace_back(ev.substr(7, ev.find('\n') - 7));
    std::vector<cn::StreamEvent> out;
    ASSERT_TRUE(dec.feed_sse(ev, out)) << ev;
    for (const auto& e : out) built.add(e);
  });
  const std::vector<std::string> expected = {"message_start",       "content_block_start", "content_block_delta",
                                             "content_block_delta", "content_block_stop",  "content_block_start",
                                             "content_block_delta", "content_block_delta", "content_block_stop",
                                             "message_delta",       "message_stop"};
  EXPECT_EQ(types, expected);
  ASSERT_TRUE(built.stopped());
  EXPECT_EQ(cn::text_of(built.response()), "Hello.");
  EXPECT_EQ(std::get<cn::ToolCallPart>(built.response().content[1]).arguments, R"({"city":"Lima"})");
  EXPECT_EQ(built.response().usage.output, 9);
  EXPECT_EQ(built.response().model, "claude-gw");
  EXPECT_NE(rec.body.find(": x-bulwark-cost-usd"), std::string::npos);
}

TEST(Ingress, AnthropicStreamErrorEvent) {
  Recorder rec;
  auto ds = translating_downstream(Format::anthropic, rec, "claude-gw");
  auto writes = pipeline_sse();
  writes.resize(2);
  writes.push_back("data: " + api::openai::error_body(Error::transport(ErrorKind::stream_truncated, "upstream cut the stream")) + "\n\n");
  run(stream_through(*ds, writes));
  const auto at = rec.body.find("event: error\n");
  ASSERT_NE(at, std::string::npos) << rec.body;
  EXPECT_NE(rec.body.find("upstream cut the stream", at), std::string::npos);
  EXPECT_EQ(rec.body.find("message_stop"), std::string::npos);
}

// Decodes the binary stream back, both CRCs checked by the decoder.
std::vector<es::Message> decode_frames(std::string_view bytes) {
  es::Decoder dec;
  dec.feed(bytes);
  std::vector<es::Message> out;
  for (;;) {
    auto next = dec.next();
    EXPECT_TRUE(next) << next.error().message;
    if (!next || !*next) break;
    out.push_back(std::move(**next));
  }
  EXPECT_TRUE(dec.finish());
  return out;
}

TEST(Ingress, ConverseStreamIsValidEventStream) {
  Recorder rec;
  auto ds = translating_downstream(Format::bedrock_converse, rec, "gw-model");
  run(stream_through(*ds, pipeline_sse()));
  EXPECT_EQ(rec.content_type, "application/vnd.amazon.eventstream");
  EXPECT_EQ(rec.header("x-amzn-RequestId"), "0123456789abcdef");
  auto frames = decode_frames(rec.body);
  ASSERT_FALSE(frames.empty());
  api::bedrock::converse::StreamDecoder dec;
  cn::ResponseBuilder built;
  std::vector<std::string> types;
  for (const auto& m : frames) {
    EXPECT_EQ(es::message_type(m), es::MessageType::event);
    const std::string type(es::event_type(m).value_or(""));
    types.push_back(type);
    std::vector<cn::StreamEvent> out;
    ASSERT_TRUE(dec.feed(type, m.payload, out)) << m.payload;
    for (const auto& e : out) built.add(e);
  }
  EXPECT_EQ(types.front(), "messageStart");
  EXPECT_EQ(types.back(), "metadata");
  ASSERT_TRUE(built.stopped());
  EXPECT_EQ(cn::text_of(built.response()), "Hello.");
  const auto& call = std::get<cn::ToolCallPart>(built.response().content[1]);
  EXPECT_EQ(call.id, "tooluse_t9");
  EXPECT_EQ(call.arguments, R"({"city":"Lima"})");
  EXPECT_EQ(built.response().usage, (cn::Usage{4, 9, 6, 1}));
}

TEST(Ingress, ConverseStreamErrorIsAnExceptionMessage) {
  Recorder rec;
  auto ds = translating_downstream(Format::bedrock_converse, rec, "gw-model");
  auto writes = pipeline_sse();
  writes.resize(2);
  writes.push_back("data: " + api::openai::error_body(Error::transport(ErrorKind::upstream_overloaded, "overloaded")) + "\n\n");
  run(stream_through(*ds, writes));
  auto frames = decode_frames(rec.body);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(es::message_type(frames.back()), es::MessageType::exception);
  EXPECT_EQ(es::exception_type(frames.back()).value_or(""), "serviceUnavailableException");
}

TEST(Ingress, InvokeStreamChunksPerFamily) {
  for (const auto& [model, family] : {std::pair{std::string("anthropic.claude-3-haiku-20240307-v1:0"), api::bedrock::invoke::Family::anthropic},
                                      std::pair{std::string("amazon.nova-lite-v1:0"), api::bedrock::invoke::Family::nova}}) {
    Recorder rec;
    auto ds = translating_downstream(Format::bedrock_invoke, rec, model);
    auto writes = pipeline_sse();
    // Text only: Llama and Titan cannot carry tool calls, Claude and Nova can.
    run(stream_through(*ds, writes));
    auto frames = decode_frames(rec.body);
    ASSERT_FALSE(frames.empty());
    api::bedrock::invoke::StreamDecoder dec(family);
    cn::ResponseBuilder built;
    for (const auto& m : frames) {
      EXPECT_EQ(es::event_type(m).value_or(""), "chunk");
      auto json = api::bedrock::invoke::chunk_json(m.payload);
      ASSERT_TRUE(json) << m.payload;
      std::vector<cn::StreamEvent> out;
      ASSERT_TRUE(dec.feed(*json, out)) << *json;
      for (const auto& e : out) built.add(e);
    }
    std::vector<cn::StreamEvent> tail;
    dec.finish(tail);
    for (const auto& e : tail) built.add(e);
    EXPECT_TRUE(built.stopped()) << model;
    EXPECT_FALSE(built.error()) << model;
    EXPECT_EQ(cn::text_of(built.response()), "Hello.") << model;
  }
}

// The pipeline's SSE for an answer with a cited text block between two plain ones (the
// gateway's form: citation and text_block delta fields), as the pipeline writes it.
std::vector<std::string> cited_pipeline_sse() {
  api::openai::StreamEncoder enc(api::openai::StreamOptions{"chatcmpl-c1", "upstream-model", 1'700'000'000, true, 1});
  const std::vector<cn::StreamEvent> events = {
      cn::MessageStart{"chatcmpl-c1", "upstream-model", {}},
      cn::TextDelta{0, "Per the notes, "},
      cn::BlockStop{0},
      cn::CitationDelta{1, R"({"type":"char_location","cited_text":"Sky: blue.","document_index":0,"document_title":null,"start_char_index":0,"end_char_index":10})"},
      cn::TextDelta{1, "the sky is "},
      cn::TextDelta{1, "blue"},
      cn::BlockStop{1},
      cn::TextDelta{2, "."},
      cn::BlockStop{2},
      cn::MessageDelta{cn::StopReason::end_turn, {}, cn::Usage{4, 9, 0, 0}, std::nullopt},
  };
  std::vector<std::string> writes;
  std::string all;
  for (const auto& e : events) enc.encode(e, all);
  enc.encode(cn::MessageStop{}, all);
  all.resize(all.find("data: [DONE]"));
  // Written in pieces of 11 bytes: events cut anywhere.
  for (std::size_t i = 0; i < all.size(); i += 11) writes.push_back(all.substr(i, 11));
  writes.push_back("data: [DONE]\n\n");
  return writes;
}

void expect_cited(const cn::ChatResponse& r) {
  ASSERT_EQ(r.content.size(), 3u);
  EXPECT_EQ(std::get<cn::TextPart>(r.content[0]).text, "Per the notes, ");
  EXPECT_TRUE(std::get<cn::TextPart>(r.content[0]).citations.empty());
  EXPECT_EQ(std::get<cn::TextPart>(r.content[1]).text, "the sky is blue");
  EXPECT_EQ(std::get<cn::TextPart>(r.content[1]).citations,
            R"([{"type":"char_location","cited_text":"Sky: blue.","document_index":0,"document_title":null,"start_char_index":0,"end_char_index":10}])");
  EXPECT_EQ(std::get<cn::TextPart>(r.content[2]).text, ".");
  EXPECT_TRUE(std::get<cn::TextPart>(r.content[2]).citations.empty());
}

TEST(Ingress, AnthropicAndClaudeInvokeStreamsCarryCitations) {
  Recorder rec;
  auto ds = translating_downstream(Format::anthropic, rec, "claude-gw");
  run(stream_through(*ds, cited_pipeline_sse()));
  EXPECT_NE(rec.body.find(R"("delta":{"type":"citations_delta","citation":{"type":"char_location")"), std::string::npos) << rec.body;
  api::anthropic::StreamDecoder dec;
  cn::ResponseBuilder built;
  providers::openai::SseSplitter split;
  split.feed(rec.body, [&](std::string_view ev) {
    std::vector<cn::StreamEvent> out;
    ASSERT_TRUE(dec.feed_sse(ev, out)) << ev;
    for (const auto& e : out) built.add(e);
  });
  ASSERT_TRUE(built.stopped());
  expect_cited(built.response());

  Recorder inv;
  auto ids = translating_downstream(Format::bedrock_invoke, inv, "anthropic.claude-3-haiku-20240307-v1:0");
  run(stream_through(*ids, cited_pipeline_sse()));
  api::bedrock::invoke::StreamDecoder idec(api::bedrock::invoke::Family::anthropic);
  cn::ResponseBuilder ibuilt;
  for (const auto& m : decode_frames(inv.body)) {
    auto json = api::bedrock::invoke::chunk_json(m.payload);
    ASSERT_TRUE(json) << m.payload;
    std::vector<cn::StreamEvent> out;
    ASSERT_TRUE(idec.feed(*json, out)) << *json;
    for (const auto& e : out) ibuilt.add(e);
  }
  ASSERT_TRUE(ibuilt.stopped());
  expect_cited(ibuilt.response());
}

TEST(Ingress, InvokeStreamFromBodyFamilyAndError) {
  Recorder rec;
  auto ds = translating_downstream(Format::bedrock_invoke, rec, "my-llama", R"({"prompt":"hi"})");
  std::vector<std::string> writes;
  api::openai::StreamEncoder enc(api::openai::StreamOptions{"chatcmpl-1", "m", 1, true, 1});
  std::string a;
  enc.encode(cn::MessageStart{}, a);
  enc.encode(cn::TextDelta{0, "w1"}, a);
  writes.push_back(a);
  writes.push_back("data: " + api::openai::error_body(Error::transport(ErrorKind::idle_timeout, "upstream went quiet")) + "\n\n");
  run(stream_through(*ds, writes));
  auto frames = decode_frames(rec.body);
  ASSERT_GE(frames.size(), 2u);
  auto first = api::bedrock::invoke::chunk_json(frames.front().payload);
  ASSERT_TRUE(first);
  EXPECT_NE(first->find("\"generation\""), std::string::npos) << *first;  // Llama's chunk shape
  EXPECT_EQ(es::message_type(frames.back()), es::MessageType::exception);
  EXPECT_EQ(es::exception_type(frames.back()).value_or(""), "modelStreamErrorException");
  EXPECT_NE(frames.back().payload.find("upstream went quiet"), std::string::npos);
}

TEST(Ingress, BedrockUnaryAnswersAndErrors) {
  Recorder conv;
  auto cds = translating_downstream(Format::bedrock_converse, conv, "gw-model");
  run([&]() -> asio::awaitable<void> {
    co_await cds->send(200, kPipelineHeaders, "application/json", api::openai::encode_response(sample_response()));
  }());
  auto cresp = api::bedrock::converse::decode_response(conv.body);
  ASSERT_TRUE(cresp) << conv.body;
  EXPECT_EQ(cresp->usage, (cn::Usage{10, 5, 20, 3}));
  EXPECT_EQ(std::get<cn::ToolCallPart>(cresp->content[1]).id, "tooluse_k1");
  EXPECT_EQ(conv.header("x-amzn-RequestId"), "0123456789abcdef");

  Recorder inv;
  auto ids = translating_downstream(Format::bedrock_invoke, inv, "meta.llama3-8b-instruct-v1:0");
  cn::ChatResponse text_only;
  text_only.content.emplace_back(cn::TextPart{"Hi."});
  text_only.stop_reason = cn::StopReason::end_turn;
  text_only.usage = {3, 2, 0, 0};
  run([&]() -> asio::awaitable<void> {
    co_await ids->send(200, kPipelineHeaders, "application/json", api::openai::encode_response(text_only));
  }());
  auto lresp = api::bedrock::invoke::decode_response(inv.body, api::bedrock::invoke::Family::llama3);
  ASSERT_TRUE(lresp) << inv.body;
  EXPECT_EQ(cn::text_of(*lresp), "Hi.");

  // Errors: Bedrock's shape and header; a 401 is sent as 403 as AWS does.
  Recorder err;
  auto eds = translating_downstream(Format::bedrock_converse, err, "gw-model");
  run([&]() -> asio::awaitable<void> {
    co_await eds->send(401, kPipelineHeaders, "application/json",
                       api::openai::error_body(Error::client(ErrorKind::unauthenticated, "Missing API key")));
  }());
  EXPECT_EQ(err.status, 403u);
  EXPECT_EQ(err.header("x-amzn-ErrorType"), "UnrecognizedClientException");
  EXPECT_NE(err.body.find("\"message\":\"Missing API key\""), std::string::npos) << err.body;

  Recorder ctx;
  auto xds = translating_downstream(Format::bedrock_converse, ctx, "gw-model");
  run([&]() -> asio::awaitable<void> {
    co_await xds->send(400, {}, "application/json",
                       api::openai::error_body(Error::client(ErrorKind::context_length_exceeded, "prompt is too long")));
  }());
  EXPECT_EQ(ctx.status, 400u);
  EXPECT_EQ(ctx.header("x-amzn-ErrorType"), "ValidationException");

  Recorder busy;
  auto bds = translating_downstream(Format::bedrock_converse, busy, "gw-model");
  run([&]() -> asio::awaitable<void> {
    co_await bds->send(429, {}, "application/json", api::openai::error_body(Error::client(ErrorKind::rate_limited, "slow")));
  }());
  EXPECT_EQ(busy.header("x-amzn-ErrorType"), "ThrottlingException");
}

TEST(Ingress, OpenAIFormatPassesThrough) {
  Recorder rec;
  auto ds = translating_downstream(Format::openai, rec, "m");
  run([&]() -> asio::awaitable<void> { co_await ds->send(200, kPipelineHeaders, "application/json", "{\"a\":1}"); }());
  EXPECT_EQ(rec.body, "{\"a\":1}");
  EXPECT_EQ(rec.header("x-bulwark-target"), "aws/claude");
}

}  // namespace
}  // namespace bulwark::pipeline
