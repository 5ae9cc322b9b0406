#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
using bulwark::ErrorKind;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }

// The JSON objects of every "data: {...}" line, [DONE] as the string "[DONE]".
std::vector<boost::json::value> sse_data(std::string_view sse) {
  std::vector<boost::json::value> out;
  std::size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string_view::npos) {
    pos += 6;
    const std::size_t end = sse.find("\n\n", pos);
    const std::string_view data = sse.substr(pos, end - pos);
    out.push_back(data == "[DONE]" ? boost::json::value("[DONE]") : json(data));
    pos = end;
  }
  return out;
}

constexpr std::string_view kFull = R"({
  "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
  "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 300, "stop": "END", "user": "u-1",
  "unknown_field": {"anything": [1, 2]},
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [
      {"type": "text", "text": "What is this?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]}
  ],
  "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
  "tool_choice": {"type": "function", "function": {"name": "lookup"}},
  "parallel_tool_calls": false
})";
}  // namespace

TEST(OpenAITranslateDecode, ReadsEveryCanonicalField) {
  auto r = oa::decode_request(kFull);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->temperature, 0.5);
  EXPECT_EQ(r->top_p, 0.9);
  EXPECT_EQ(r->max_tokens, 300);
  EXPECT_EQ(r->stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r->user, "u-1");
  EXPECT_EQ(r->system, (std::vector<std::string>{"Be brief.", "Answer in English."}));  // hoisted, in order
  ASSERT_EQ(r->messages.size(), 3u);
  const auto& user = r->messages[0];
  ASSERT_EQ(user.content.size(), 2u);
  const auto& image = std::get<cn::ImagePart>(user.content[1]);
  EXPECT_EQ(image.media_type, "image/png");
  EXPECT_EQ(image.data, "iVBORw0KGgo=");
  EXPECT_EQ(image.detail, "low");
  const auto& call = std::get<cn::ToolCallPart>(r->messages[1].content.at(0));
  EXPECT_EQ(call.id, "call_1");
  EXPECT_EQ(call.arguments, "{\"q\":\"cat\"}");
  EXPECT_EQ(r->messages[2].role, cn::Role::tool);
  const auto& result = std::get<cn::ToolResultPart>(r->messages[2].content.at(0));
  EXPECT_EQ(result.tool_call_id, "call_1");
  EXPECT_EQ(std::get<cn::TextPart>(result.content.at(0)).text, "a cat");
  ASSERT_EQ(r->tools.size(), 1u);
  EXPECT_EQ(json(r->tools[0].parameters).at("properties").at("q").at("type"), "string");
  EXPECT_EQ(r->tool_choice.mode, cn::ToolChoice::Mode::tool);
  EXPECT_EQ(r->tool_choice.name, "lookup");
  EXPECT_EQ(r->parallel_tool_calls, false);
}

TEST(OpenAITranslateDecode, KeepsRemoteImageUrlsAndAudioAndOpenAIOnlyOptions) {
  auto r = oa::decode_request(R"({"model":"m","n":2,"logprobs":true,"seed":7,"response_format":{"type":"json_object"},
    "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}},
    {"type":"input_audio","input_audio":{"data":"AAA=","format":"wav"}}]}]})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(std::get<cn::ImagePart>(r->messages[0].content[0]).url, "https://x/y.png");
  EXPECT_EQ(std::get<cn::AudioPart>(r->messages[0].content[1]).format, "wav");
  EXPECT_EQ(r->n, 2);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->seed, 7);
  EXPECT_EQ(json(r->response_format).at("type"), "json_object");
  // response_format text is the default: nothing to refuse elsewhere.
  auto plain = oa::decode_request(R"({"model":"m","response_format":{"type":"text"},"messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->response_format.empty());
}

TEST(OpenAITranslateDecode, EmptyAndNullContentAreKept) {
  auto r = oa::decode_request(R"({"model":"m","messages":[{"role":"user","content":""},{"role":"assistant","content":null}]})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<cn::TextPart>(r->messages[0].content.at(0)).text, "");
  EXPECT_TRUE(r->messages[1].content.empty());
}

TEST(OpenAITranslateDecode, RejectsWhatTheModelCannotHoldWithTheField) {
  struct Case {
    std::string_view body;
    ErrorKind kind;
    std::string_view param;
  };
  for (const Case& c : {
           Case{"{", ErrorKind::invalid_json, ""},
           Case{R"({"messages":[{"role":"user","content":"x"}]})", ErrorKind::bad_request, "model"},
           Case{R"({"model":"m","messages":[]})", ErrorKind::bad_request, "messages"},
           Case{R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", ErrorKind::bad_request, "messages[0].role"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]})", ErrorKind::bad_request, "messages[0].content[0].file"},
           Case{R"({"model":"m","messages":[{"role":"assistant","function_call":{"name":"f"}}]})", ErrorKind::bad_request, "messages[0].function_call"},
           Case{R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", ErrorKind::bad_request, "messages[0].tool_call_id"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", ErrorKind::bad_request, "temperature"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"retrieval"}]})", ErrorKind::bad_request, "tools[0]"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})", ErrorKind::bad_request, "tool_choice"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", ErrorKind::bad_request, "n"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]})", ErrorKind::bad_request, "messages[0].content[0].image_url"},
       }) {
    auto r = oa::decode_request(c.body);
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().kind, c.kind) << c.body;
    EXPECT_EQ(r.error().param, c.param) << c.body << " -> " << r.error().message;
  }
}

TEST(OpenAITranslateEncode, RebuildsTheRequestForAnOpenAIUpstream) {
  auto r = oa::decode_request(kFull);
  ASSERT_TRUE(r.has_value());
  auto body = oa::encode_request(*r, "gpt-4o-2024-08-06");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("model"), "gpt-4o-2024-08-06");
  EXPECT_EQ(o.at("temperature").as_double(), 0.5);
  EXPECT_NE(body->find("\"temperature\":0.5"), std::string::npos);  // shortest form, not 5E-1
  EXPECT_EQ(o.at("max_tokens"), 300);
  EXPECT_EQ(o.at("stream_options").at("include_usage"), true);
  const auto& m = o.at("messages").as_array();
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].at("role"), "system");
  EXPECT_EQ(m[1].at("role"), "system");
  EXPECT_EQ(m[2].at("content").at(1).at("image_url").at("url"), "data:image/png;base64,iVBORw0KGgo=");
  EXPECT_TRUE(m[3].at("content").is_null());
  EXPECT_EQ(m[3].at("tool_calls").at(0).at("function").at("arguments"), "{\"q\":\"cat\"}");
  EXPECT_EQ(m[4].at("role"), "tool");
  EXPECT_EQ(m[4].at("content"), "a cat");
  EXPECT_EQ(o.at("tool_choice").at("function").at("name"), "lookup");
  EXPECT_EQ(o.at("parallel_tool_calls"), false);
  EXPECT_FALSE(o.as_object().contains("unknown_field"));
}

TEST(OpenAITranslateEncode, RefusesTopK) {
  cn::ChatRequest req;
  req.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"x"}}, {}});
  req.top_k = 5;
  auto body = oa::encode_request(req, "m");
  ASSERT_FALSE(body.has_value());
  EXPECT_EQ(body.error().kind, ErrorKind::bad_request);
  EXPECT_EQ(body.error().param, "top_k");
}

TEST(OpenAITranslateResponse, DecodesAndEncodesToolCallsAndCachedUsage) {
  auto r = oa::decode_response(R"({"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"gpt",
    "choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"call_9","type":"function",
    "function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],
    "usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60}}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(r->usage, (cn::Usage{40, 7, 60, 0}));
  ASSERT_EQ(r->content.size(), 2u);

  cn::ChatResponse resp = *r;
  resp.id = "msg_abc";
  resp.usage.cache_write = 5;
  const auto o = json(oa::encode_response(resp));
  EXPECT_EQ(o.at("id"), "chatcmpl-abc");
  EXPECT_EQ(o.at("choices").at(0).at("finish_reason"), "tool_calls");
  EXPECT_EQ(o.at("choices").at(0).at("message").at("tool_calls").at(0).at("id"), "call_9");
  EXPECT_EQ(o.at("usage").at("prompt_tokens"), 105);
  EXPECT_EQ(o.at("usage").at("prompt_tokens_details").at("cached_tokens"), 60);
  EXPECT_EQ(o.at("usage").at("cache_creation_input_tokens"), 5);
  EXPECT_EQ(o.at("usage").at("total_tokens"), 112);
  // ... and the cache-write count survives a trip back.
  auto back = oa::decode_response(boost::json::serialize(o));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->usage, (cn::Usage{40, 7, 60, 5}));
}

TEST(OpenAITranslateResponse, MalformedAnswersAreProtocolErrors) {
  for (std::string_view body : {"nope", R"({"choices":[]})", R"({"choices":[{"index":0}]})"}) {
    auto r = oa::decode_response(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().kind, ErrorKind::upstream_protocol) << body;
  }
}

TEST(OpenAITranslateStreamDecode, ToolCallArgumentsSplitAcrossManyChunks) {
  oa::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  const auto feed = [&](std::string_view data) { ASSERT_TRUE(d.feed(data, ev).has_value()) << data; };
  feed(R"({"id":"chatcmpl-7","model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
  feed(R"({"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"Let me "}}]})");
  feed(R"({"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"check."}}]})");
  feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}}]})");
  const std::string args = R"({"city":"Paris","unit":"celsius"})";
  for (char c : args) {
    std::string piece(1, c);
    std::string chunk = R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":)" +
                        boost::json::serialize(boost::json::value(piece)) + "}}]}}]}";
    feed(chunk);
  }
  feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"time","arguments":"{}"}}]}}]})");
  feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
  // The stop reason waits for the usage chunk.
  ASSERT_FALSE(std::holds_alternative<cn::MessageDelta>(ev.back()));
  feed(R"({"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":4}}})");
  feed("[DONE]");
  EXPECT_TRUE(d.done());

  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  ASSERT_TRUE(b.stopped());
  const auto& r = b.response();
  EXPECT_EQ(r.id, "chatcmpl-7");
  ASSERT_EQ(r.content.size(), 3u);
  EXPECT_EQ(std::get<cn::TextPart>(r.content[0]).text, "Let me check.");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[1]).arguments, args);
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[1]).id, "call_a");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[2]).name, "time");
  EXPECT_EQ(r.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(r.usage, (cn::Usage{16, 10, 4, 0}));
  // Blocks are numbered 0 (text), 1, 2 (tools) and each is stopped once before MessageDelta.
  int stops = 0;
  for (const auto& e : ev) stops += std::holds_alternative<cn::BlockStop>(e);
  EXPECT_EQ(stops, 3);
}

TEST(OpenAITranslateStreamDecode, SseFramingErrorsAndTruncation) {
  oa::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  ASSERT_TRUE(d.feed_sse(": keep-alive\n\n", ev).has_value());
  EXPECT_TRUE(ev.empty());
  ASSERT_TRUE(d.feed_sse("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n", ev).has_value());
  ASSERT_EQ(ev.size(), 2u);
  ASSERT_TRUE(d.feed("{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}", ev).has_value());
  ASSERT_TRUE(std::holds_alternative<cn::StreamError>(ev.back()));
  EXPECT_EQ(std::get<cn::StreamError>(ev.back()).error.message, "overloaded");
  EXPECT_FALSE(d.feed("{not json", ev).has_value());
  d.finish(ev);  // no finish reason: truncated
  ASSERT_TRUE(std::holds_alternative<cn::StreamError>(ev.back()));
  EXPECT_EQ(std::get<cn::StreamError>(ev.back()).error.kind, ErrorKind::stream_truncated);

  oa::StreamDecoder done;
  ev.clear();
  ASSERT_TRUE(done.feed(R"({"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]})", ev).has_value());
  done.finish(ev);  // finished without [DONE] or usage: still complete
  ASSERT_TRUE(std::holds_alternative<cn::MessageStop>(ev.back()));
  EXPECT_EQ(std::get<cn::MessageDelta>(ev[ev.size() - 2]).stop_reason, cn::StopReason::max_tokens);
}

TEST(OpenAITranslateStreamEncode, ProducesChunksFinishUsageAndDone) {
  oa::StreamEncoder enc({.id = "msg_x", .model = "alias", .created = 99, .include_usage = true, .id_seed = 3});
  std::string out;
  enc.encode(cn::MessageStart{"msg_x", "upstream-model", cn::Usage{11, 0, 0, 0}}, out);
  enc.encode(cn::TextDelta{0, "Hi \"there\"\n"}, out);
  enc.encode(cn::BlockStop{0}, out);
  enc.encode(cn::ToolCallStart{1, "toolu_q", "f"}, out);
  enc.encode(cn::ToolArgsDelta{1, "{\"a\":"}, out);
  enc.encode(cn::ToolArgsDelta{1, "1}"}, out);
  enc.encode(cn::Ping{}, out);
  enc.encode(cn::MessageDelta{cn::StopReason::tool_use, {}, cn::Usage{11, 4, 2, 0}, std::nullopt}, out);
  enc.encode(cn::MessageStop{}, out);
  enc.encode(cn::TextDelta{0, "after the end"}, out);  // ignored
  const auto chunks = sse_data(out);
  ASSERT_EQ(chunks.size(), 8u);
  EXPECT_EQ(chunks[0].at("id"), "chatcmpl-x");
  EXPECT_EQ(chunks[0].at("model"), "alias");
  EXPECT_EQ(chunks[0].at("object"), "chat.completion.chunk");
  EXPECT_EQ(chunks[0].at("created"), 99);
  EXPECT_EQ(chunks[0].at("choices").at(0).at("delta").at("role"), "assistant");
  EXPECT_EQ(chunks[1].at("choices").at(0).at("delta").at("content"), "Hi \"there\"\n");
  const auto& call = chunks[2].at("choices").at(0).at("delta").at("tool_calls").at(0);
  EXPECT_EQ(call.at("index"), 0);
  EXPECT_EQ(call.at("id"), "call_q");
  EXPECT_EQ(call.at("function").at("name"), "f");
  EXPECT_EQ(chunks[4].at("choices").at(0).at("delta").at("tool_calls").at(0).at("function").at("arguments"), "1}");
  EXPECT_EQ(chunks[5].at("choices").at(0).at("finish_reason"), "tool_calls");
  EXPECT_TRUE(chunks[6].at("choices").as_array().empty());
  EXPECT_EQ(chunks[6].at("usage").at("prompt_tokens"), 13);
  EXPECT_EQ(chunks[6].at("usage").at("prompt_tokens_details").at("cached_tokens"), 2);
  EXPECT_EQ(chunks[7], "[DONE]");
  EXPECT_NE(out.find(": ping\n\n"), std::string::npos);
}

TEST(OpenAITranslateStreamEncode, NoUsageChunkUnlessAskedAndErrorsInOpenAIShape) {
  oa::StreamEncoder enc({.id = "", .model = "m", .created = 0, .include_usage = false, .id_seed = 1});
  std::string out;
  enc.encode(cn::TextDelta{0, "x"}, out);  // no MessageStart: the role chunk comes first anyway
  enc.encode(cn::StreamError{bulwark::Error::transport(ErrorKind::stream_truncated, "cut")}, out);
  enc.encode(cn::MessageStop{}, out);
  const auto chunks = sse_data(out);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_TRUE(chunks[0].at("id").as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(chunks[2].at("error").at("message"), "cut");
  EXPECT_EQ(chunks[2].at("error").at("code"), "upstream_stream_truncated");
  EXPECT_EQ(chunks[3].at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(chunks[4], "[DONE]");
}

TEST(OpenAITranslateDecode, DeeplyNestedSchemasSurviveTranslation) {
  std::string schema = R"({"type":"string"})";
  for (int i = 0; i < 60; ++i) schema = R"({"type":"object","properties":{"x":)" + schema + "}}";
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"deep","parameters":)" +
                           schema + R"(}}],"response_format":{"type":"json_schema","json_schema":{"schema":)" + schema + "}}}";
  auto r = oa::decode_request(body);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto out = oa::encode_request(*r, "m");
  ASSERT_TRUE(out.has_value());
  EXPECT_NE(out->find("json_schema"), std::string::npos);
}
