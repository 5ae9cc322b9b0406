#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
namespace an = bulwark::api::anthropic;
namespace br = bulwark::api::bedrock;
namespace cv = bulwark::api::bedrock::converse;
using bulwark::Error;
using bulwark::ErrorKind;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }

constexpr std::string_view kOpenAI = R"({
  "model": "m", "max_tokens": 100, "temperature": 0.3, "top_p": 0.8, "stop": ["END"],
  "messages": [
    {"role": "system", "content": "Sys"},
    {"role": "user", "content": [{"type": "text", "text": "Look"},
      {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR="}}]},
    {"role": "assistant", "tool_calls": [{"id": "call_k", "type": "function", "function": {"name": "f", "arguments": "{\"n\":1}"}}]},
    {"role": "tool", "tool_call_id": "call_k", "content": "done"}
  ],
  "tools": [{"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}}}],
  "tool_choice": "auto"
})";
}  // namespace

TEST(BedrockConverseEncode, TranslatesAnOpenAIRequest) {
  auto req = oa::decode_request(kOpenAI);
  ASSERT_TRUE(req.has_value());
  auto body = cv::encode_request(*req, "anthropic.claude-3-5-sonnet-20240620-v1:0");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body).as_object();
  EXPECT_FALSE(o.contains("model"));  // the model id travels in the URL
  EXPECT_EQ(o.at("system").at(0).at("text"), "Sys");
  EXPECT_EQ(o.at("inferenceConfig").at("maxTokens"), 100);
  EXPECT_EQ(o.at("inferenceConfig").at("topP").as_double(), 0.8);
  EXPECT_EQ(o.at("inferenceConfig").at("stopSequences").at(0), "END");
  const auto& m = o.at("messages").as_array();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].at("content").at(1).at("image").at("format"), "webp");
  EXPECT_EQ(m[0].at("content").at(1).at("image").at("source").at("bytes"), "UklGR=");
  EXPECT_EQ(m[1].at("content").at(0).at("toolUse").at("toolUseId"), "tooluse_k");
  EXPECT_EQ(m[1].at("content").at(0).at("toolUse").at("input").at("n"), 1);
  EXPECT_EQ(m[2].at("role"), "user");
  EXPECT_EQ(m[2].at("content").at(0).at("toolResult").at("toolUseId"), "tooluse_k");
  EXPECT_EQ(m[2].at("content").at(0).at("toolResult").at("content").at(0).at("text"), "done");
  EXPECT_EQ(o.at("toolConfig").at("tools").at(0).at("toolSpec").at("inputSchema").at("json").at("type"), "object");
  EXPECT_TRUE(o.at("toolConfig").at("toolChoice").as_object().contains("auto"));
}

TEST(BedrockConverseEncode, TopKGoesWhereTheModelTakesIt) {
  cn::ChatRequest req;
  req.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"x"}}, {}});
  req.top_k = 20;
  auto claude = cv::encode_request(req, "us.anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_TRUE(claude.has_value());
  EXPECT_EQ(json(*claude).at("additionalModelRequestFields").at("top_k"), 20);
  auto nova = cv::encode_request(req, "amazon.nova-lite-v1:0");
  ASSERT_TRUE(nova.has_value());
  EXPECT_EQ(json(*nova).at("additionalModelRequestFields").at("inferenceConfig").at("topK"), 20);
  auto other = cv::encode_request(req, "mistral.mistral-large-2402-v1:0");
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().param, "top_k");
}

TEST(BedrockConverseEncode, RefusesWhatConverseCannotExpress) {
  struct Case {
    std::string_view openai_body;
    std::string_view param;
  };
  for (const Case& c : {
           Case{R"({"model":"m","n":2,"messages":[{"role":"user","content":"x"}]})", "n"},
           Case{R"({"model":"m","logprobs":true,"messages":[{"role":"user","content":"x"}]})", "logprobs"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]})", "messages[0].content"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]})", "messages[0].content"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"mp3"}}]}]})", "messages[0].content[0]"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})", "tool_choice"},
           Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false})", "parallel_tool_calls"},
           Case{R"({"model":"m","messages":[{"role":"user","content":""}]})", "messages[0].content"},
       }) {
    auto req = oa::decode_request(c.openai_body);
    ASSERT_TRUE(req.has_value()) << c.openai_body;
    auto body = cv::encode_request(*req, "amazon.nova-pro-v1:0");
    ASSERT_FALSE(body.has_value()) << c.openai_body;
    EXPECT_EQ(body.error().kind, ErrorKind::bad_request);
    EXPECT_EQ(body.error().param, c.param) << c.openai_body << " -> " << body.error().message;
  }
}

TEST(BedrockConverseDecode, ReadsACallersConverseRequest) {
  auto r = cv::decode_request(R"({
    "messages":[{"role":"user","content":[{"text":"hi"},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]},
      {"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_1","name":"f","input":{"a":true}}}]},
      {"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_1","status":"error","content":[{"json":{"err":1}}]}},{"text":"and?"}]}],
    "system":[{"text":"S1"},{"cachePoint":{"type":"default"}}],
    "inferenceConfig":{"maxTokens":50,"temperature":1,"stopSequences":["x"]},
    "additionalModelRequestFields":{"top_k":5},
    "toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"f"}}},
    "performanceConfig":{"latency":"optimized"}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->model.empty());
  EXPECT_EQ(r->system, std::vector<std::string>{"S1"});
  EXPECT_EQ(r->max_tokens, 50);
  EXPECT_EQ(r->temperature, 1.0);
  EXPECT_EQ(r->top_k, 5);
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(std::get<cn::ImagePart>(r->messages[0].content[1]).media_type, "image/png");
  const auto& result = std::get<cn::ToolResultPart>(r->messages[2].content[0]);
  EXPECT_TRUE(result.is_error);
  EXPECT_EQ(json(std::get<cn::TextPart>(result.content[0]).text).at("err"), 1);
  EXPECT_EQ(r->tool_choice.mode, cn::ToolChoice::Mode::tool);

  // Converse -> Anthropic: the tool ids restyle consistently.
  auto body = an::encode_request(*r, "claude");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("messages").at(1).at("content").at(0).at("id"), "toolu_1");
  EXPECT_EQ(o.at("messages").at(2).at("content").at(0).at("tool_use_id"), "toolu_1");
  EXPECT_EQ(o.at("top_k"), 5);

  auto bad = cv::decode_request(R"({"messages":[{"role":"user","content":[{"document":{"name":"d"}}]}]})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().param, "messages[0].content[0].document");
  EXPECT_NE(bad.error().message.find("document"), std::string::npos);
}

TEST(BedrockConverseResponse, DecodesAndEncodesUsageWithCacheAndLatency) {
  auto r = cv::decode_response(R"({"output":{"message":{"role":"assistant","content":[{"text":"Sure"},
    {"toolUse":{"toolUseId":"tooluse_Ab","name":"g","input":{}}}]}},"stopReason":"guardrail_intervened",
    "usage":{"inputTokens":10,"outputTokens":4,"totalTokens":64,"cacheReadInputTokens":30,"cacheWriteInputTokens":20},
    "metrics":{"latencyMs":321}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->usage, (cn::Usage{10, 4, 30, 20}));
  EXPECT_EQ(r->stop_reason, cn::StopReason::guardrail);
  EXPECT_EQ(r->latency_ms, 321);
  ASSERT_EQ(r->content.size(), 2u);

  const auto o = json(cv::encode_response(*r));
  EXPECT_EQ(o.at("stopReason"), "guardrail_intervened");
  EXPECT_EQ(o.at("usage").at("totalTokens"), 64);
  EXPECT_EQ(o.at("usage").at("cacheReadInputTokens"), 30);
  EXPECT_EQ(o.at("usage").at("cacheWriteInputTokens"), 20);
  EXPECT_EQ(o.at("metrics").at("latencyMs"), 321);
  EXPECT_EQ(o.at("output").at("message").at("content").at(1).at("toolUse").at("toolUseId"), "tooluse_Ab");

  // Bedrock -> Anthropic caller: the guardrail becomes a refusal, the cache counts stay.
  const auto a = json(an::encode_response(*r, 1));
  EXPECT_EQ(a.at("stop_reason"), "refusal");
  EXPECT_EQ(a.at("usage").at("cache_creation_input_tokens"), 20);
  EXPECT_EQ(a.at("content").at(1).at("id"), "toolu_Ab");
  // ... and an OpenAI caller sees content_filter.
  EXPECT_EQ(json(oa::encode_response(*r)).at("choices").at(0).at("finish_reason"), "content_filter");

  auto bad = cv::decode_response(R"({"output":{}})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind, ErrorKind::upstream_protocol);
}

TEST(BedrockConverseErrors, BodyTypeAndStreamException) {
  const Error e = Error::client(ErrorKind::rate_limited, "too many");
  const auto o = json(br::error_body(e));
  EXPECT_EQ(o.at("__type"), "ThrottlingException");
  EXPECT_EQ(o.at("message"), "too many");
  EXPECT_EQ(br::error_type(e), "ThrottlingException");
  EXPECT_EQ(br::stream_exception_type(e), "throttlingException");
  EXPECT_EQ(br::stream_exception_type(Error::gateway(ErrorKind::internal, "x")), "internalServerException");
  EXPECT_EQ(br::stream_exception_type(Error::gateway(ErrorKind::idle_timeout, "x")), "modelStreamErrorException");
  EXPECT_EQ(br::upstream_error_kind("throttlingException"), ErrorKind::upstream_rate_limited);
  EXPECT_EQ(br::upstream_error_kind("ServiceUnavailableException"), ErrorKind::upstream_overloaded);
  EXPECT_EQ(br::upstream_error_kind("validationException"), ErrorKind::upstream_bad_request);
}

TEST(BedrockConverseStreamDecode, ToolInputSplitAcrossManyDeltasAndMetadataUsage) {
  cv::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  const auto feed = [&](std::string_view type, std::string_view payload) {
    ASSERT_TRUE(d.feed(type, payload, ev).has_value()) << type << " " << payload;
  };
  feed("messageStart", R"({"role":"assistant","p":"abc"})");
  feed("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Let me see"},"p":"ab"})");
  feed("contentBlockStop", R"({"contentBlockIndex":0})");
  feed("contentBlockStart", R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_Q","name":"calc"}}})");
  const std::string input = R"({"expr":"2+2","precision":3})";
  for (std::size_t i = 0; i < input.size(); i += 2) {
    boost::json::object tu{{"input", input.substr(i, 2)}};
    boost::json::object p{{"contentBlockIndex", 1}, {"delta", boost::json::object{{"toolUse", tu}}}};
    feed("contentBlockDelta", boost::json::serialize(p));
  }
  feed("contentBlockStop", R"({"contentBlockIndex":1})");
  feed("messageStop", R"({"stopReason":"tool_use"})");
  EXPECT_FALSE(d.done());  // waiting for metadata
  feed("metadata", R"({"usage":{"inputTokens":5,"outputTokens":6,"totalTokens":18,"cacheReadInputTokens":7,"cacheWriteInputTokens":0},"metrics":{"latencyMs":88}})");
  EXPECT_TRUE(d.done());
  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  ASSERT_TRUE(b.stopped());
  const auto& r = b.response();
  EXPECT_EQ(std::get<cn::TextPart>(r.content.at(0)).text, "Let me see");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content.at(1)).arguments, input);
  EXPECT_EQ(r.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(r.usage, (cn::Usage{5, 6, 7, 0}));
  EXPECT_EQ(r.latency_ms, 88);
}

TEST(BedrockConverseStreamDecode, ExceptionsAndEndWithoutMetadata) {
  cv::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  ASSERT_TRUE(d.feed("throttlingException", R"({"message":"Too many tokens"})", ev));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(std::get<cn::StreamError>(ev[0]).error.kind, ErrorKind::upstream_rate_limited);
  EXPECT_TRUE(std::get<cn::StreamError>(ev[0]).error.retryable);
  ASSERT_TRUE(d.feed("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"x"}})", ev));
  ASSERT_TRUE(d.feed("messageStop", R"({"stopReason":"max_tokens"})", ev));
  d.finish(ev);
  ASSERT_TRUE(std::holds_alternative<cn::MessageStop>(ev.back()));
  EXPECT_EQ(std::get<cn::MessageDelta>(ev[ev.size() - 2]).stop_reason, cn::StopReason::max_tokens);
  EXPECT_FALSE(d.feed("contentBlockDelta", "not json", ev).has_value());
}

TEST(BedrockConverseStreamEncode, FromAnAnthropicStreamWithRenumberedBlocks) {
  // Anthropic upstream (with an empty thinking block at index 0) -> ConverseStream caller.
  an::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  for (std::string_view s : {
           R"({"type":"message_start","message":{"id":"msg_1","model":"c","usage":{"input_tokens":4,"cache_read_input_tokens":9,"output_tokens":1}}})",
           R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})",
           R"({"type":"content_block_stop","index":0})",
           R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})",
           R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}})",
           R"({"type":"content_block_stop","index":1})",
           R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_x","name":"f","input":{}}})",
           R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}})",
           R"({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":":2}"}})",
           R"({"type":"content_block_stop","index":2})",
           R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}})",
           R"({"type":"message_stop"})",
       })
    ASSERT_TRUE(d.feed(s, ev).has_value()) << s;
  cv::StreamEncoder enc({.id_seed = 0, .dialect = br::Dialect::converse});
  std::vector<br::StreamPayload> out;
  for (const auto& e : ev) enc.encode(e, out);
  std::vector<std::string> types;
  for (const auto& p : out) types.push_back(p.event_type);
  EXPECT_EQ(types, (std::vector<std::string>{"messageStart", "contentBlockDelta", "contentBlockStop", "contentBlockStart",
                                             "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}));
  EXPECT_EQ(json(out[1].payload).at("contentBlockIndex"), 0);  // dense, not Anthropic's 1
  EXPECT_EQ(json(out[3].payload).at("contentBlockIndex"), 1);
  EXPECT_EQ(json(out[3].payload).at("start").at("toolUse").at("toolUseId"), "tooluse_x");
  EXPECT_EQ(json(out[5].payload).at("delta").at("toolUse").at("input"), ":2}");
  EXPECT_EQ(json(out[7].payload).at("stopReason"), "tool_use");
  const auto meta = json(out[8].payload);
  EXPECT_EQ(meta.at("usage").at("inputTokens"), 4);
  EXPECT_EQ(meta.at("usage").at("outputTokens"), 3);
  EXPECT_EQ(meta.at("usage").at("cacheReadInputTokens"), 9);
  EXPECT_EQ(meta.at("usage").at("totalTokens"), 16);
  for (const auto& p : out) EXPECT_FALSE(p.exception);

  // Round trip through the Converse decoder gives the same answer.
  cv::StreamDecoder back;
  std::vector<cn::StreamEvent> ev2;
  for (const auto& p : out) ASSERT_TRUE(back.feed(p.event_type, p.payload, ev2).has_value());
  cn::ResponseBuilder b;
  for (const auto& e : ev2) b.add(e);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(std::get<cn::ToolCallPart>(b.response().content.at(1)).arguments, "{\"a\":2}");
  EXPECT_EQ(b.response().usage, (cn::Usage{4, 3, 9, 0}));
}

TEST(BedrockConverseStreamEncode, ErrorsAreExceptionEvents) {
  cv::StreamEncoder enc;
  std::vector<br::StreamPayload> out;
  enc.encode(cn::StreamError{Error::client(ErrorKind::bad_request, "bad")}, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].exception);
  EXPECT_EQ(out[0].event_type, "validationException");
  EXPECT_EQ(json(out[0].payload).at("message"), "bad");
}
