#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/anthropic/messages.hpp"
#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
namespace an = bulwark::api::anthropic;
using bulwark::Error;
using bulwark::ErrorKind;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }

std::vector<cn::StreamEvent> decode_all(an::StreamDecoder& d, const std::vector<std::string>& data) {
  std::vector<cn::StreamEvent> ev;
  for (const auto& s : data) EXPECT_TRUE(d.feed(s, ev).has_value()) << s;
  return ev;
}

cn::ChatRequest text_request(std::string text) {
  cn::ChatRequest req;
  req.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{std::move(text)}}, {}});
  return req;
}

constexpr std::string_view kOpenAI = R"({
  "model": "claude-alias", "max_tokens": 256, "temperature": 0.2, "stop": ["###"], "user": "u9",
  "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather?"},
      {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
      {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
      {"id": "call_w2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
    {"role": "tool", "tool_call_id": "call_w1", "content": "cold"},
    {"role": "tool", "tool_call_id": "call_w2", "content": "warm"},
    {"role": "user", "content": "Thanks, summarise."}
  ],
  "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
  "tool_choice": "required"
})";
}  // namespace

TEST(AnthropicEncode, TranslatesAnOpenAIRequest) {
  auto req = oa::decode_request(kOpenAI);
  ASSERT_TRUE(req.has_value()) << req.error().message;
  auto body = an::encode_request(*req, "claude-sonnet-4-20250514");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("model"), "claude-sonnet-4-20250514");
  EXPECT_EQ(o.at("max_tokens"), 256);
  EXPECT_EQ(o.at("system"), "You are terse.");
  EXPECT_EQ(o.at("stop_sequences").at(0), "###");
  EXPECT_EQ(o.at("metadata").at("user_id"), "u9");
  EXPECT_EQ(o.at("tool_choice").at("type"), "any");
  EXPECT_EQ(o.at("tools").at(0).at("input_schema").at("type"), "object");
  const auto& m = o.at("messages").as_array();
  ASSERT_EQ(m.size(), 3u);  // user, assistant, user (both tool results + the text merged)
  EXPECT_EQ(m[0].at("content").at(1).at("source").at("media_type"), "image/jpeg");
  EXPECT_EQ(m[0].at("content").at(1).at("source").at("data"), "/9j/4AAQ");
  EXPECT_EQ(m[1].at("content").at(1).at("type"), "tool_use");
  EXPECT_EQ(m[1].at("content").at(1).at("id"), "toolu_w1");
  EXPECT_EQ(m[1].at("content").at(1).at("input").at("city"), "Oslo");
  EXPECT_EQ(m[2].at("role"), "user");
  const auto& last = m[2].at("content").as_array();
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].at("tool_use_id"), "toolu_w1");
  EXPECT_EQ(last[1].at("tool_use_id"), "toolu_w2");
  EXPECT_EQ(last[1].at("content"), "warm");
  EXPECT_EQ(last[2].at("text"), "Thanks, summarise.");
}

TEST(AnthropicRoundTrip, OpenAIToAnthropicAndBackPreservesMeaning) {
  auto first = oa::decode_request(kOpenAI);
  ASSERT_TRUE(first.has_value());
  auto anthropic_body = an::encode_request(*first, "claude");
  ASSERT_TRUE(anthropic_body.has_value());
  auto middle = an::decode_request(*anthropic_body);
  ASSERT_TRUE(middle.has_value()) << middle.error().message;
  auto openai_body = oa::encode_request(*middle, "claude-alias");
  ASSERT_TRUE(openai_body.has_value());
  auto last = oa::decode_request(*openai_body);
  ASSERT_TRUE(last.has_value());

  EXPECT_EQ(last->system, first->system);
  EXPECT_EQ(last->stop, first->stop);
  EXPECT_EQ(last->temperature, first->temperature);
  EXPECT_EQ(last->max_tokens, first->max_tokens);
  EXPECT_EQ(last->user, first->user);
  EXPECT_EQ(last->tool_choice.mode, first->tool_choice.mode);
  ASSERT_EQ(last->messages.size(), first->messages.size());
  for (std::size_t i = 0; i < first->messages.size(); ++i) {
    const auto& a = first->messages[i];
    const auto& b = last->messages[i];
    EXPECT_EQ(a.role, b.role) << i;
    ASSERT_EQ(a.content.size(), b.content.size()) << i;
    for (std::size_t j = 0; j < a.content.size(); ++j) {
      ASSERT_EQ(a.content[j].index(), b.content[j].index()) << i << "/" << j;
      if (const auto* t = std::get_if<cn::TextPart>(&a.content[j])) {
        EXPECT_EQ(t->text, std::get<cn::TextPart>(b.content[j]).text);
      }
      if (const auto* c = std::get_if<cn::ToolCallPart>(&a.content[j])) {
        const auto& d = std::get<cn::ToolCallPart>(b.content[j]);
        EXPECT_EQ(json(c->arguments), json(d.arguments));
        EXPECT_EQ(c->name, d.name);
        EXPECT_EQ(d.id, "toolu_" + c->id.substr(5));  // restyled, still matching its result
      }
      if (const auto* r = std::get_if<cn::ToolResultPart>(&a.content[j])) {
        EXPECT_EQ(std::get<cn::ToolResultPart>(b.content[j]).tool_call_id, "toolu_" + r->tool_call_id.substr(5));
      }
      if (const auto* img = std::get_if<cn::ImagePart>(&a.content[j])) {
        EXPECT_EQ(img->data, std::get<cn::ImagePart>(b.content[j]).data);
      }
    }
  }
}

TEST(AnthropicDecode, ReadsSystemBlocksToolResultsAndIgnoresUnknownFields) {
  auto r = an::decode_request(R"({"model":"claude","max_tokens":10,"top_k":40,"stream":true,
    "system":[{"type":"text","text":"A"},{"type":"text","text":"B","cache_control":{"type":"ephemeral"}}],
    "thinking":{"type":"enabled","budget_tokens":1024}, "service_tier":"auto",
    "tool_choice":{"type":"auto","disable_parallel_tool_use":true}, "tools":[{"name":"f","input_schema":{"type":"object"}}],
    "messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"x":1}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","is_error":true,
        "content":[{"type":"text","text":"boom"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]},
        {"type":"text","text":"go on"}]}]})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->system, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(r->top_k, 40);
  EXPECT_TRUE(r->stream);
  EXPECT_EQ(r->parallel_tool_calls, false);
  ASSERT_EQ(r->messages.size(), 4u);  // user, assistant, tool, user
  ASSERT_EQ(r->messages[1].content.size(), 2u);  // thinking kept, signed
  EXPECT_EQ(std::get<cn::ReasoningPart>(r->messages[1].content[0]).signature, "s");
  EXPECT_EQ(json(std::get<cn::ToolCallPart>(r->messages[1].content[1]).arguments).at("x"), 1);
  EXPECT_EQ(r->reasoning.budget_tokens, 1024);
  ASSERT_EQ(r->system_cache.size(), 1u);
  EXPECT_EQ(r->system_cache[0].first, 1u);
  EXPECT_EQ(r->messages[2].role, cn::Role::tool);
  const auto& result = std::get<cn::ToolResultPart>(r->messages[2].content[0]);
  EXPECT_TRUE(result.is_error);
  ASSERT_EQ(result.content.size(), 2u);
  EXPECT_EQ(std::get<cn::ImagePart>(result.content[1]).media_type, "image/png");
  EXPECT_EQ(std::get<cn::TextPart>(r->messages[3].content[0]).text, "go on");

  // ... and back: the tool result leads the merged user turn, is_error and the image kept.
  auto body = an::encode_request(*r, "claude");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("tool_choice").at("disable_parallel_tool_use"), true);
  EXPECT_EQ(o.at("stream"), true);
  EXPECT_EQ(o.at("system").as_array().size(), 2u);
  const auto& turn = o.at("messages").at(2).at("content");
  EXPECT_EQ(turn.at(0).at("is_error"), true);
  EXPECT_EQ(turn.at(0).at("content").at(1).at("type"), "image");
  EXPECT_EQ(turn.at(1).at("text"), "go on");
}

TEST(AnthropicDecode, RejectsBadOrUnsupportedInput) {
  struct Case {
    std::string_view body;
    std::string_view param;
  };
  for (const Case& c : {
           Case{R"({"model":"c","messages":[{"role":"user","content":"x"}]})", "max_tokens"},
           Case{R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})", "model"},
           Case{R"({"model":"c","max_tokens":5,"messages":[{"role":"system","content":"x"}]})", "messages[0].role"},
           Case{R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]})", "messages[0].content[0].source"},
           Case{R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"w"}]})", "tools[0]"},
           Case{R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"maybe"}})", "tool_choice"},
           Case{R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":5})", "system"},
       }) {
    auto r = an::decode_request(c.body);
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().kind, ErrorKind::bad_request) << c.body;
    EXPECT_EQ(r.error().param, c.param) << c.body << " -> " << r.error().message;
  }
}

TEST(AnthropicEncode, RefusesWhatMessagesCannotExpress) {
  struct Case {
    std::string_view openai_body;
    std::string_view param;
  };
  for (const Case& c : {
           Case{R"({"model":"m","n":3,"messages":[{"role":"user","content":"x"}]})", "n"},
           Case{R"({"model":"m","logprobs":true,"messages":[{"role":"user","content":"x"}]})", "logprobs"},
           Case{R"({"model":"m","top_logprobs":2,"messages":[{"role":"user","content":"x"}]})", "top_logprobs"},
           Case{R"({"model":"m","presence_penalty":0.5,"messages":[{"role":"user","content":"x"}]})", "presence_penalty"},
           Case{R"({"model":"m","seed":1,"messages":[{"role":"user","content":"x"}]})", "seed"},
           Case{R"({"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})", "response_format"},
           Case{R"({"model":"m","audio":{"voice":"alloy"},"messages":[{"role":"user","content":"x"}]})", "audio"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]})", "messages[0].content[0]"},
           Case{R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]})", "messages[0].content"},
           Case{R"({"model":"m","messages":[{"role":"user","content":""}]})", "messages[0].content"},
           Case{R"({"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1"}}]}]})", "messages[0].content.arguments"},
       }) {
    auto req = oa::decode_request(c.openai_body);
    ASSERT_TRUE(req.has_value()) << c.openai_body;
    auto body = an::encode_request(*req, "claude");
    ASSERT_FALSE(body.has_value()) << c.openai_body;
    EXPECT_EQ(body.error().kind, ErrorKind::bad_request);
    EXPECT_EQ(body.error().param, c.param) << c.openai_body << " -> " << body.error().message;
    EXPECT_NE(body.error().message.find("'"), std::string::npos);  // the message names the field
  }
  // A trailing empty assistant turn is dropped rather than refused; zero penalties are fine.
  auto ok = oa::decode_request(R"({"model":"m","frequency_penalty":0,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":""}]})");
  ASSERT_TRUE(ok.has_value());
  auto body = an::encode_request(*ok, "claude");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  EXPECT_EQ(json(*body).at("messages").as_array().size(), 1u);
  EXPECT_EQ(json(*body).at("max_tokens"), 4096);  // Anthropic requires one
}

TEST(AnthropicEncode, BedrockClaudeBodyHasVersionAndNoModelOrStream) {
  cn::ChatRequest req = text_request("hi");
  req.stream = true;
  an::RequestOptions options;
  options.include_model = false;
  options.include_stream = false;
  options.anthropic_version = "bedrock-2023-05-31";
  auto body = an::encode_request(req, "anthropic.claude-3-haiku", options);
  ASSERT_TRUE(body.has_value());
  const auto o = json(*body).as_object();
  EXPECT_EQ(o.at("anthropic_version"), "bedrock-2023-05-31");
  EXPECT_FALSE(o.contains("model"));
  EXPECT_FALSE(o.contains("stream"));
}

TEST(AnthropicResponse, DecodesAndEncodesWithCacheUsage) {
  auto r = an::decode_response(R"({"id":"msg_01","type":"message","role":"assistant","model":"claude",
    "content":[{"type":"thinking","thinking":"..."},{"type":"text","text":"Hi"},{"type":"tool_use","id":"toolu_5","name":"f","input":{"k":"v"}}],
    "stop_reason":"stop_sequence","stop_sequence":"###",
    "usage":{"input_tokens":3,"output_tokens":8,"cache_creation_input_tokens":100,"cache_read_input_tokens":50}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->usage, (cn::Usage{3, 8, 50, 100}));
  EXPECT_EQ(r->stop_reason, cn::StopReason::stop_sequence);
  EXPECT_EQ(r->stop_sequence, "###");
  ASSERT_EQ(r->content.size(), 3u);  // the thinking block too

  // To an OpenAI caller: prompt_tokens counts everything, cached_tokens the reads.
  const auto o = json(oa::encode_response(*r));
  EXPECT_EQ(o.at("id"), "chatcmpl-01");
  EXPECT_EQ(o.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(o.at("usage").at("prompt_tokens"), 153);
  EXPECT_EQ(o.at("usage").at("prompt_tokens_details").at("cached_tokens"), 50);
  EXPECT_EQ(o.at("usage").at("cache_creation_input_tokens"), 100);
  EXPECT_EQ(o.at("choices").at(0).at("message").at("tool_calls").at(0).at("id"), "call_5");

  // And back to Anthropic from an OpenAI answer.
  auto from_openai = oa::decode_response(oa::encode_response(*r));
  ASSERT_TRUE(from_openai.has_value());
  const auto a = json(an::encode_response(*from_openai));
  EXPECT_EQ(a.at("id"), "msg_01");
  EXPECT_EQ(a.at("type"), "message");
  EXPECT_EQ(a.at("stop_reason"), "end_turn");  // "stop" cannot say which stop it was
  EXPECT_EQ(a.at("usage").at("input_tokens"), 3);
  EXPECT_EQ(a.at("usage").at("cache_read_input_tokens"), 50);
  EXPECT_EQ(a.at("usage").at("cache_creation_input_tokens"), 100);
  EXPECT_EQ(a.at("content").at(0).at("type"), "thinking");
  EXPECT_EQ(a.at("content").at(2).at("id"), "toolu_5");
  EXPECT_EQ(a.at("content").at(2).at("input").at("k"), "v");
}

TEST(AnthropicResponse, GeneratedIdsComeFromTheSeed) {
  cn::ChatResponse resp;
  resp.content.emplace_back(cn::ToolCallPart{"", "f", ""});
  const auto a = json(an::encode_response(resp, 7));
  const auto b = json(an::encode_response(resp, 7));
  EXPECT_EQ(a, b);
  EXPECT_TRUE(a.at("id").as_string().starts_with("msg_"));
  EXPECT_TRUE(a.at("content").at(0).at("id").as_string().starts_with("toolu_"));
  EXPECT_EQ(a.at("content").at(0).at("input").as_object().size(), 0u);
  EXPECT_NE(a, json(an::encode_response(resp, 8)));
}

TEST(AnthropicErrors, BodiesUseTheCoreTable) {
  const auto o = json(an::error_body(Error::client(ErrorKind::rate_limited, "slow down")));
  EXPECT_EQ(o.at("type"), "error");
  EXPECT_EQ(o.at("error").at("type"), "rate_limit_error");
  EXPECT_EQ(o.at("error").at("message"), "slow down");
  EXPECT_EQ(json(an::error_body(Error::gateway(ErrorKind::no_healthy_target, "x"))).at("error").at("type"), "overloaded_error");
  EXPECT_EQ(an::upstream_error_kind("overloaded_error"), ErrorKind::upstream_overloaded);
  EXPECT_EQ(an::upstream_error_kind("invalid_request_error"), ErrorKind::upstream_bad_request);
}

namespace {
std::vector<std::string> anthropic_tool_stream(const std::string& args, std::size_t piece) {
  std::vector<std::string> s = {
      R"({"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":40,"output_tokens":1}}})",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}})",
      R"({"type":"content_block_stop","index":0})",
      R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})",
      R"({"type":"ping"})",
      R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Looking"}})",
      R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" it up."}})",
      R"({"type":"content_block_stop","index":1})",
      R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_77","name":"search","input":{}}})",
  };
  for (std::size_t i = 0; i < args.size(); i += piece) {
    boost::json::object delta{{"type", "input_json_delta"}, {"partial_json", args.substr(i, piece)}};
    s.push_back(boost::json::serialize(boost::json::object{{"type", "content_block_delta"}, {"index", 2}, {"delta", delta}}));
  }
  s.push_back(R"({"type":"content_block_stop","index":2})");
  s.push_back(R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})");
  s.push_back(R"({"type":"message_stop"})");
  return s;
}
}  // namespace

TEST(AnthropicStreamDecode, ToolArgumentsSplitAcrossManyEvents) {
  const std::string args = R"({"query":"llm gateways","limit":10,"filters":{"lang":"en"}})";
  an::StreamDecoder d;
  const auto ev = decode_all(d, anthropic_tool_stream(args, 3));
  EXPECT_TRUE(d.done());
  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  ASSERT_TRUE(b.stopped());
  const auto& r = b.response();
  EXPECT_EQ(r.id, "msg_s1");
  EXPECT_EQ(r.model, "claude-x");
  ASSERT_EQ(r.content.size(), 3u);  // thinking, text, tool call
  EXPECT_EQ(std::get<cn::ReasoningPart>(r.content[0]).text, "hmm");
  EXPECT_EQ(std::get<cn::TextPart>(r.content[1]).text, "Looking it up.");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[2]).arguments, args);
  EXPECT_EQ(r.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(r.usage, (cn::Usage{12, 42, 40, 3}));  // input from message_start, output from message_delta
  int pings = 0;
  for (const auto& e : ev) pings += std::holds_alternative<cn::Ping>(e);
  EXPECT_EQ(pings, 1);
}

TEST(AnthropicStreamDecode, ErrorsSseFramingAndTruncation) {
  an::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  ASSERT_TRUE(d.feed_sse("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", ev).has_value());
  ASSERT_EQ(ev.size(), 1u);
  const auto& e = std::get<cn::StreamError>(ev[0]).error;
  EXPECT_EQ(e.kind, ErrorKind::upstream_overloaded);
  EXPECT_TRUE(e.retryable);
  EXPECT_EQ(e.message, "Overloaded");
  EXPECT_FALSE(d.feed("{}", ev).has_value());  // no type
  EXPECT_TRUE(d.feed(R"({"type":"some_future_event"})", ev).has_value());  // ignored
  d.finish(ev);
  EXPECT_EQ(std::get<cn::StreamError>(ev.back()).error.kind, ErrorKind::stream_truncated);
}

TEST(AnthropicStreamEncode, ProducesAValidEventSequenceFromAnOpenAIStream) {
  // OpenAI upstream -> Anthropic caller, tool args in 1-character chunks.
  oa::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  ASSERT_TRUE(d.feed(R"({"id":"chatcmpl-1","model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":"On it"}}]})", ev));
  ASSERT_TRUE(d.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_z","function":{"name":"f","arguments":""}}]}}]})", ev));
  const std::string args = R"({"a":[1,2,3]})";
  for (char c : args) {
    boost::json::object fn{{"arguments", std::string(1, c)}};
    boost::json::object call{{"index", 0}, {"function", fn}};
    boost::json::object delta{{"tool_calls", boost::json::array{call}}};
    ASSERT_TRUE(d.feed(boost::json::serialize(boost::json::object{{"choices", boost::json::array{boost::json::object{{"index", 0}, {"delta", delta}}}}}), ev));
  }
  ASSERT_TRUE(d.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", ev));
  ASSERT_TRUE(d.feed(R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":2}}})", ev));
  ASSERT_TRUE(d.feed("[DONE]", ev));

  an::StreamEncoder enc({.id = "chatcmpl-1", .model = "claude-alias", .id_seed = 1});
  std::string sse;
  for (const auto& e : ev) enc.encode(e, sse);

  // Parse the SSE back: event names must match data types, blocks must be well nested.
  std::vector<std::pair<std::string, boost::json::value>> events;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    const std::size_t end = sse.find("\n\n", pos);
    const std::string_view block(sse.data() + pos, end - pos);
    const std::size_t nl = block.find('\n');
    ASSERT_TRUE(block.starts_with("event: "));
    events.emplace_back(std::string(block.substr(7, nl - 7)), json(block.substr(nl + 7)));
    EXPECT_EQ(events.back().second.at("type").as_string(), events.back().first);
    pos = end + 2;
  }
  std::vector<std::string> names;
  for (const auto& [n, v] : events) names.push_back(n);
  ASSERT_GE(names.size(), 8u);
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names[1], "content_block_start");
  EXPECT_EQ(names[names.size() - 2], "message_delta");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_EQ(events[0].second.at("message").at("id"), "msg_1");
  EXPECT_EQ(events[0].second.at("message").at("model"), "claude-alias");

  an::StreamDecoder back;
  std::vector<std::string> data;
  for (const auto& [n, v] : events) data.push_back(boost::json::serialize(v));
  const auto ev2 = decode_all(back, data);
  cn::ResponseBuilder b;
  for (const auto& e : ev2) b.add(e);
  ASSERT_TRUE(b.stopped());
  const auto& r = b.response();
  ASSERT_EQ(r.content.size(), 2u);
  EXPECT_EQ(std::get<cn::TextPart>(r.content[0]).text, "On it");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[1]).arguments, args);
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[1]).id, "toolu_z");
  EXPECT_EQ(r.stop_reason, cn::StopReason::tool_use);
  EXPECT_EQ(r.usage, (cn::Usage{7, 5, 2, 0}));
  // Block indices: text 0, tool 1, each started and stopped exactly once.
  int starts = 0, stops = 0;
  for (const auto& n : names) {
    starts += n == "content_block_start";
    stops += n == "content_block_stop";
  }
  EXPECT_EQ(starts, 2);
  EXPECT_EQ(stops, 2);
}

TEST(AnthropicStreamEncode, AnthropicToOpenAIStreamKeepsTextToolsAndUsage) {
  const std::string args = R"({"q":"x"})";
  an::StreamDecoder d;
  const auto ev = decode_all(d, anthropic_tool_stream(args, 1));
  oa::StreamEncoder enc({.id = "", .model = "", .created = 1, .include_usage = true, .id_seed = 0});
  std::string sse;
  for (const auto& e : ev) enc.encode(e, sse);
  oa::StreamDecoder back;
  std::vector<cn::StreamEvent> ev2;
  std::size_t pos = 0;
  while (pos < sse.size()) {
    const std::size_t end = sse.find("\n\n", pos) + 2;
    ASSERT_TRUE(back.feed_sse(std::string_view(sse).substr(pos, end - pos), ev2).has_value());
    pos = end;
  }
  cn::ResponseBuilder b;
  for (const auto& e : ev2) b.add(e);
  ASSERT_TRUE(b.stopped());
  EXPECT_EQ(b.response().id, "chatcmpl-s1");
  EXPECT_EQ(b.response().model, "claude-x");
  EXPECT_EQ(std::get<cn::ReasoningPart>(b.response().content.at(0)).text, "hmm");  // as reasoning_content
  EXPECT_EQ(std::get<cn::ToolCallPart>(b.response().content.at(2)).arguments, args);
  EXPECT_EQ(std::get<cn::ToolCallPart>(b.response().content.at(2)).id, "call_77");
  // prompt_tokens 55 = 12 + 40 + 3; the cache write rides along in cache_creation_input_tokens.
  EXPECT_EQ(b.response().usage, (cn::Usage{12, 42, 40, 3}));
}

TEST(AnthropicStreamEncode, UnframedEventsAndErrorEvent) {
  an::StreamEncoder enc({.id = "", .model = "m", .id_seed = 9});
  std::vector<an::Event> events;
  enc.encode_events(cn::Ping{}, events);
  enc.encode_events(cn::StreamError{Error::transport(ErrorKind::connection_reset, "reset")}, events);
  enc.encode_events(cn::MessageStop{}, events);  // completes the sequence on its own
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, "ping");
  EXPECT_EQ(events[1].type, "error");
  EXPECT_EQ(json(events[1].data).at("error").at("type"), "api_error");
  EXPECT_EQ(events[2].type, "message_start");
  EXPECT_EQ(events[3].type, "message_delta");
  EXPECT_EQ(json(events[3].data).at("delta").at("stop_reason"), "end_turn");
  EXPECT_EQ(events[4].type, "message_stop");
}
