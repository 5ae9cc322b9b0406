// Cache breakpoints and extended thinking across the formats, including through the
// gateway's own OpenAI form (what the pipeline carries between a caller and a target).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/bedrock/invoke.hpp"
#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
namespace an = bulwark::api::anthropic;
namespace cv = bulwark::api::bedrock::converse;
namespace iv = bulwark::api::bedrock::invoke;
using bulwark::ErrorKind;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }

constexpr std::string_view kClaude = "anthropic.claude-sonnet-4-20250514-v1:0";
constexpr std::string_view kMistral = "mistral.mistral-large-2402-v1:0";
constexpr std::string_view kNova = "amazon.nova-pro-v1:0";

constexpr std::string_view kCached = R"({
  "model": "claude", "max_tokens": 512,
  "system": [{"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
             {"type": "text", "text": "Short."}],
  "messages": [
    {"role": "user", "content": [
      {"type": "text", "text": "Big document.", "cache_control": {"type": "ephemeral"}},
      {"type": "text", "text": "Question?"}]},
    {"role": "assistant", "content": [
      {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}, "cache_control": {"type": "ephemeral"}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found", "cache_control": {"type": "ephemeral"}},
      {"type": "text", "text": "And?"}]}
  ],
  "tools": [{"name": "look", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
            {"name": "other", "input_schema": {"type": "object"}}]
})";

// The pipeline's path: caller format -> the gateway's OpenAI form -> canonical again.
cn::ChatRequest through_gateway(const cn::ChatRequest& req) {
  auto body = oa::encode_request(req, req.model.empty() ? "m" : req.model, oa::RequestOptions{true});
  if (!body) {
    ADD_FAILURE() << body.error().message;
    return req;
  }
  auto back = oa::decode_request(*body);
  if (!back) {
    ADD_FAILURE() << back.error().message;
    return req;
  }
  return *back;
}

cn::ChatRequest cached_request() {
  auto req = an::decode_request(kCached);
  EXPECT_TRUE(req.has_value()) << req.error().message;
  return *req;
}

std::size_t count_of(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string_view::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

constexpr std::string_view kThinking = R"({
  "model": "claude", "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 3000},
  "messages": [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig-A"},
      {"type": "redacted_thinking", "data": "UkVEQUNURUQ="},
      {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "cold"}]}
  ],
  "tools": [{"name": "weather", "input_schema": {"type": "object"}}]
})";

cn::ChatRequest thinking_request() {
  auto req = an::decode_request(kThinking);
  EXPECT_TRUE(req.has_value()) << req.error().message;
  return *req;
}
}  // namespace

// ---- cache breakpoints ----

TEST(CacheMarks, AnthropicDecodeReadsEveryPosition) {
  const cn::ChatRequest req = cached_request();
  ASSERT_EQ(req.system_cache.size(), 1u);
  EXPECT_EQ(req.system_cache[0].first, 0u);
  EXPECT_EQ(req.system_cache[0].second.ttl, "1h");
  ASSERT_TRUE(std::get<cn::TextPart>(req.messages[0].content[0]).cache.has_value());
  EXPECT_FALSE(std::get<cn::TextPart>(req.messages[0].content[1]).cache.has_value());
  EXPECT_TRUE(std::get<cn::ToolCallPart>(req.messages[1].content[0]).cache.has_value());
  EXPECT_TRUE(std::get<cn::ToolResultPart>(req.messages[2].content[0]).cache.has_value());
  EXPECT_TRUE(req.tools[0].cache.has_value());
  EXPECT_FALSE(req.tools[1].cache.has_value());
  EXPECT_TRUE(cn::has_cache_marks(req));
}

TEST(CacheMarks, AnthropicToAnthropicThroughTheGatewayKeepsThem) {
  const cn::ChatRequest req = through_gateway(cached_request());
  auto body = an::encode_request(req, "claude-x");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("system").at(0).at("cache_control").at("type"), "ephemeral");
  EXPECT_EQ(o.at("system").at(0).at("cache_control").at("ttl"), "1h");
  EXPECT_FALSE(o.at("system").at(1).as_object().contains("cache_control"));
  const auto& m = o.at("messages").as_array();
  EXPECT_EQ(m[0].at("content").at(0).at("cache_control").at("type"), "ephemeral");
  EXPECT_FALSE(m[0].at("content").at(1).as_object().contains("cache_control"));
  EXPECT_EQ(m[1].at("content").at(0).at("type"), "tool_use");
  EXPECT_TRUE(m[1].at("content").at(0).as_object().contains("cache_control"));
  EXPECT_EQ(m[2].at("content").at(0).at("type"), "tool_result");
  EXPECT_TRUE(m[2].at("content").at(0).as_object().contains("cache_control"));
  EXPECT_TRUE(o.at("tools").at(0).as_object().contains("cache_control"));
  EXPECT_FALSE(o.at("tools").at(1).as_object().contains("cache_control"));
  EXPECT_EQ(count_of(*body, "cache_control"), 5u);
}

TEST(CacheMarks, GatewayFormIsMarkedAndUpstreamFormIsPlain) {
  const cn::ChatRequest req = cached_request();
  auto gateway = oa::encode_request(req, "m", oa::RequestOptions{true});
  ASSERT_TRUE(gateway.has_value());
  EXPECT_TRUE(oa::has_extensions(*gateway));
  EXPECT_EQ(count_of(*gateway, "cache_control"), 5u);
  auto upstream = oa::encode_request(req, "m");
  ASSERT_TRUE(upstream.has_value());
  EXPECT_FALSE(oa::has_extensions(*upstream));
  EXPECT_EQ(upstream->find("cache_control"), std::string::npos);
  EXPECT_EQ(upstream->find("x-bulwark-ext"), std::string::npos);
  // Without any extension the gateway form is the plain one.
  cn::ChatRequest plain;
  plain.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"hi"}}, {}});
  EXPECT_EQ(*oa::encode_request(plain, "m", oa::RequestOptions{true}), *oa::encode_request(plain, "m"));
}

TEST(CacheMarks, ConverseClaudeGetsCachePointsAfterTheMarkedBlocks) {
  const cn::ChatRequest req = through_gateway(cached_request());
  auto body = cv::encode_request(req, kClaude);
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  const auto& system = o.at("system").as_array();
  ASSERT_EQ(system.size(), 3u);
  EXPECT_EQ(system[0].at("text"), "Long rules.");
  EXPECT_EQ(system[1].at("cachePoint").at("type"), "default");
  EXPECT_EQ(system[2].at("text"), "Short.");
  const auto& m = o.at("messages").as_array();
  const auto& first = m[0].at("content").as_array();
  ASSERT_EQ(first.size(), 3u);
  EXPECT_TRUE(first[1].as_object().contains("cachePoint"));
  EXPECT_EQ(first[2].at("text"), "Question?");
  EXPECT_TRUE(m[1].at("content").at(0).as_object().contains("toolUse"));
  EXPECT_TRUE(m[1].at("content").at(1).as_object().contains("cachePoint"));
  EXPECT_TRUE(m[2].at("content").at(0).as_object().contains("toolResult"));
  EXPECT_TRUE(m[2].at("content").at(1).as_object().contains("cachePoint"));
  const auto& tools = o.at("toolConfig").at("tools").as_array();
  ASSERT_EQ(tools.size(), 3u);
  EXPECT_TRUE(tools[1].as_object().contains("cachePoint"));
  EXPECT_EQ(tools[2].at("toolSpec").at("name"), "other");
  EXPECT_TRUE(cv::takes_cache_points(kClaude));
  EXPECT_TRUE(cv::takes_cache_points(kNova));
  EXPECT_FALSE(cv::takes_cache_points(kMistral));
}

TEST(CacheMarks, ConverseModelsWithoutCachingGetNone) {
  auto body = cv::encode_request(cached_request(), kMistral);
  ASSERT_TRUE(body.has_value()) << body.error().message;  // a pricing hint: never a 400
  EXPECT_EQ(body->find("cachePoint"), std::string::npos);
  auto nova = cv::encode_request(cached_request(), kNova);
  ASSERT_TRUE(nova.has_value());
  EXPECT_EQ(count_of(*nova, "cachePoint"), 5u);
}

TEST(CacheMarks, ConverseDecodeMarksTheBlockBefore) {
  auto req = cv::decode_request(R"({
    "system": [{"text": "rules"}, {"cachePoint": {"type": "default"}}, {"text": "more"}],
    "messages": [{"role": "user", "content": [{"text": "doc"}, {"cachePoint": {"type": "default"}}, {"text": "q"}]}],
    "toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}},
                             {"cachePoint": {"type": "default"}}]}
  })");
  ASSERT_TRUE(req.has_value()) << req.error().message;
  ASSERT_EQ(req->system.size(), 2u);
  ASSERT_EQ(req->system_cache.size(), 1u);
  EXPECT_EQ(req->system_cache[0].first, 0u);
  ASSERT_EQ(req->messages[0].content.size(), 2u);
  EXPECT_TRUE(std::get<cn::TextPart>(req->messages[0].content[0]).cache.has_value());
  EXPECT_FALSE(std::get<cn::TextPart>(req->messages[0].content[1]).cache.has_value());
  EXPECT_TRUE(req->tools[0].cache.has_value());
  // Converse -> Anthropic: the marks become cache_control.
  auto body = an::encode_request(through_gateway(*req), "claude-x");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  EXPECT_EQ(count_of(*body, "cache_control"), 3u);
}

TEST(CacheMarks, InvokeClaudeCarriesThemAndLlamaLeavesThemOut) {
  auto claude = iv::encode_request(cached_request(), iv::Family::anthropic, kClaude);
  ASSERT_TRUE(claude.has_value()) << claude.error().message;
  EXPECT_EQ(count_of(*claude, "cache_control"), 5u);
  cn::ChatRequest text;
  text.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"doc", cn::CacheMark{}}}, {}});
  auto llama = iv::encode_request(text, iv::Family::llama3, "meta.llama3-1-70b-instruct-v1:0");
  ASSERT_TRUE(llama.has_value()) << llama.error().message;
  EXPECT_EQ(llama->find("cache"), std::string::npos);
}

TEST(CacheMarks, RefusesAnUnknownCacheType) {
  auto req = an::decode_request(R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"text","text":"x","cache_control":{"type":"forever"}}]}]})");
  ASSERT_FALSE(req.has_value());
  EXPECT_EQ(req.error().kind, ErrorKind::bad_request);
  EXPECT_NE(req.error().message.find("cache_control.type"), std::string::npos);
  auto oreq = oa::decode_request(R"({"model":"m","messages":[{"role":"user","content":[
    {"type":"text","text":"x","cache_control":"yes"}]}]})");
  ASSERT_FALSE(oreq.has_value());
  EXPECT_EQ(oreq.error().kind, ErrorKind::bad_request);
}

// ---- thinking: requests ----

TEST(Thinking, AnthropicThroughTheGatewayIsExact) {
  const cn::ChatRequest req = through_gateway(thinking_request());
  EXPECT_EQ(req.reasoning.mode, cn::Reasoning::Mode::enabled);
  EXPECT_EQ(req.reasoning.budget_tokens, 3000);
  auto body = an::encode_request(req, "claude-x");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("thinking").at("type"), "enabled");
  EXPECT_EQ(o.at("thinking").at("budget_tokens"), 3000);
  EXPECT_EQ(o.at("max_tokens"), 8000);
  const auto& assistant = o.at("messages").at(1).at("content").as_array();
  ASSERT_EQ(assistant.size(), 3u);
  EXPECT_EQ(assistant[0].at("type"), "thinking");
  EXPECT_EQ(assistant[0].at("thinking"), "I should call the tool.");
  EXPECT_EQ(assistant[0].at("signature"), "sig-A");
  EXPECT_EQ(assistant[1].at("type"), "redacted_thinking");
  EXPECT_EQ(assistant[1].at("data"), "UkVEQUNURUQ=");
  EXPECT_EQ(assistant[2].at("type"), "tool_use");
}

TEST(Thinking, DisabledIsCarriedToo) {
  auto req = an::decode_request(R"({"model":"c","max_tokens":5,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(req.has_value());
  auto body = an::encode_request(through_gateway(*req), "claude-x");
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(json(*body).at("thinking").at("type"), "disabled");
}

TEST(Thinking, ConverseClaudeTakesItInAdditionalModelRequestFields) {
  cn::ChatRequest req = through_gateway(thinking_request());
  req.top_k = 5;  // both go into the one object
  auto body = cv::encode_request(req, kClaude);
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("additionalModelRequestFields").at("top_k"), 5);
  EXPECT_EQ(o.at("additionalModelRequestFields").at("thinking").at("budget_tokens"), 3000);
  const auto& assistant = o.at("messages").at(1).at("content").as_array();
  EXPECT_EQ(assistant[0].at("reasoningContent").at("reasoningText").at("text"), "I should call the tool.");
  EXPECT_EQ(assistant[0].at("reasoningContent").at("reasoningText").at("signature"), "sig-A");
  EXPECT_EQ(assistant[1].at("reasoningContent").at("redactedContent"), "UkVEQUNURUQ=");
  // And back: a Converse caller's thinking reaches an Anthropic target unchanged.
  auto again = cv::decode_request(*body);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->top_k, 5);
  again->top_k.reset();  // top_k cannot cross the OpenAI form (docs/formats.md)
  auto anthropic = an::encode_request(through_gateway(*again), "claude-x");
  ASSERT_TRUE(anthropic.has_value()) << anthropic.error().message;
  const auto a = json(*anthropic);
  EXPECT_EQ(a.at("thinking").at("budget_tokens"), 3000);
  EXPECT_EQ(a.at("messages").at(1).at("content").at(0).at("signature"), "sig-A");
  EXPECT_EQ(a.at("messages").at(1).at("content").at(1).at("data"), "UkVEQUNURUQ=");
}

TEST(Thinking, TargetsThatCannotReasonRefuseIt) {
  const cn::ChatRequest req = through_gateway(thinking_request());
  auto mistral = cv::encode_request(req, kMistral);
  ASSERT_FALSE(mistral.has_value());
  EXPECT_EQ(mistral.error().kind, ErrorKind::bad_request);
  EXPECT_NE(mistral.error().message.find("thinking"), std::string::npos);
  EXPECT_NE(mistral.error().message.find(kMistral), std::string::npos);
  cn::ChatRequest text;
  text.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{"x"}}, {}});
  text.reasoning = {cn::Reasoning::Mode::enabled, 2048, {}};
  for (auto family : {iv::Family::llama3, iv::Family::titan_text}) {
    auto body = iv::encode_request(text, family, "m");
    ASSERT_FALSE(body.has_value());
    EXPECT_EQ(body.error().kind, ErrorKind::bad_request);
    EXPECT_NE(body.error().message.find("thinking"), std::string::npos);
  }
  // Disabled asks nothing of a model that cannot reason.
  text.reasoning = {cn::Reasoning::Mode::disabled, 0, {}};
  EXPECT_TRUE(iv::encode_request(text, iv::Family::llama3, "m").has_value());
  EXPECT_TRUE(cv::encode_request(text, kMistral).has_value());
}

TEST(Thinking, OpenAIUpstreamGetsReasoningEffortAndNoSignedBlocks) {
  const cn::ChatRequest req = through_gateway(thinking_request());
  auto body = oa::encode_request(req, "gpt-x");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("reasoning_effort"), "medium");  // 3000: at least 2048, below 4096
  EXPECT_FALSE(o.as_object().contains("thinking"));
  EXPECT_EQ(body->find("sig-A"), std::string::npos);
  EXPECT_EQ(body->find("thinking_blocks"), std::string::npos);
  EXPECT_EQ(cn::effort_for_budget(1024), "low");
  EXPECT_EQ(cn::effort_for_budget(2047), "low");
  EXPECT_EQ(cn::effort_for_budget(2048), "medium");
  EXPECT_EQ(cn::effort_for_budget(4096), "high");
}

TEST(Thinking, ReasoningEffortBecomesABudget) {
  auto req = oa::decode_request(R"({"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(req.has_value()) << req.error().message;
  auto body = an::encode_request(*req, "claude-x");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  const auto o = json(*body);
  EXPECT_EQ(o.at("thinking").at("budget_tokens"), 4096);
  EXPECT_EQ(o.at("max_tokens"), 4096 + 4096);  // room above the budget when none was given
  auto low = oa::decode_request(R"({"model":"m","reasoning_effort":"low","max_tokens":3000,"messages":[{"role":"user","content":"x"}]})");
  auto lb = an::encode_request(*low, "claude-x");
  EXPECT_EQ(json(*lb).at("thinking").at("budget_tokens"), 1024);
  EXPECT_EQ(json(*lb).at("max_tokens"), 3000);
  auto conv = cv::encode_request(*low, kClaude);
  ASSERT_TRUE(conv.has_value());
  EXPECT_EQ(json(*conv).at("additionalModelRequestFields").at("thinking").at("budget_tokens"), 1024);
  // An OpenAI upstream gets the caller's own effort back.
  EXPECT_EQ(json(*oa::encode_request(*req, "m")).at("reasoning_effort"), "high");
  auto odd = oa::decode_request(R"({"model":"m","reasoning_effort":"extreme","messages":[{"role":"user","content":"x"}]})");
  auto refused = an::encode_request(*odd, "claude-x");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().param, "reasoning_effort");
}

// ---- thinking: answers ----

constexpr std::string_view kAnthropicAnswer = R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
  "content":[{"type":"thinking","thinking":"Let me think.","signature":"sig-Z"},
             {"type":"redacted_thinking","data":"b3BhcXVl"},
             {"type":"text","text":"Cold."}],
  "stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":7}})";

TEST(ThinkingAnswer, AnthropicThroughOpenAIFormBackToAnthropic) {
  auto resp = an::decode_response(kAnthropicAnswer);
  ASSERT_TRUE(resp.has_value());
  ASSERT_EQ(resp->content.size(), 3u);
  const std::string openai = oa::encode_response(*resp, 1);
  const auto o = json(openai);
  const auto& msg = o.at("choices").at(0).at("message");
  EXPECT_EQ(msg.at("reasoning_content"), "Let me think.");
  EXPECT_EQ(msg.at("content"), "Cold.");
  EXPECT_EQ(msg.at("thinking_blocks").at(0).at("signature"), "sig-Z");
  EXPECT_EQ(msg.at("thinking_blocks").at(1).at("data"), "b3BhcXVl");
  auto back = oa::decode_response(openai);
  ASSERT_TRUE(back.has_value());
  const auto a = json(an::encode_response(*back, 1));
  const auto& content = a.at("content").as_array();
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0].at("type"), "thinking");
  EXPECT_EQ(content[0].at("thinking"), "Let me think.");
  EXPECT_EQ(content[0].at("signature"), "sig-Z");
  EXPECT_EQ(content[1].at("type"), "redacted_thinking");
  EXPECT_EQ(content[2].at("text"), "Cold.");
  const auto c = json(cv::encode_response(*back, 1));
  const auto& blocks = c.at("output").at("message").at("content").as_array();
  EXPECT_EQ(blocks[0].at("reasoningContent").at("reasoningText").at("signature"), "sig-Z");
  EXPECT_EQ(blocks[1].at("reasoningContent").at("redactedContent"), "b3BhcXVl");
}

TEST(ThinkingAnswer, PlainAnswersGetNoReasoningFields) {
  cn::ChatResponse resp;
  resp.content.emplace_back(cn::TextPart{"hi"});
  const std::string openai = oa::encode_response(resp, 1);
  EXPECT_EQ(openai.find("reasoning_content"), std::string::npos);
  EXPECT_EQ(openai.find("thinking_blocks"), std::string::npos);
}

TEST(ThinkingAnswer, ConverseReasoningContentIsRead) {
  auto resp = cv::decode_response(R"({"output":{"message":{"role":"assistant","content":[
    {"reasoningContent":{"reasoningText":{"text":"Hmm.","signature":"sig-C"}}},
    {"reasoningContent":{"redactedContent":"cmVk"}},
    {"text":"Warm."}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}})");
  ASSERT_TRUE(resp.has_value()) << resp.error().message;
  ASSERT_EQ(resp->content.size(), 3u);
  const auto& r = std::get<cn::ReasoningPart>(resp->content[0]);
  EXPECT_EQ(r.text, "Hmm.");
  EXPECT_EQ(r.signature, "sig-C");
  EXPECT_EQ(std::get<cn::ReasoningPart>(resp->content[1]).redacted, "cmVk");
  // A DeepSeek-style answer: reasoning_content without signature.
  auto ds = oa::decode_response(R"({"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"A","reasoning_content":"why"},"finish_reason":"stop"}]})");
  ASSERT_TRUE(ds.has_value());
  EXPECT_EQ(std::get<cn::ReasoningPart>(ds->content[0]).text, "why");
}

// ---- thinking: streams ----

namespace {
std::vector<cn::StreamEvent> anthropic_thinking_stream() {
  an::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  for (std::string_view s : {
           R"({"type":"message_start","message":{"id":"msg_s","model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}})",
           R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})",
           R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Step one. "}})",
           R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Step two."}})",
           R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig-S"}})",
           R"({"type":"content_block_stop","index":0})",
           R"({"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"cmVkYWN0"}})",
           R"({"type":"content_block_stop","index":1})",
           R"({"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}})",
           R"({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Answer."}})",
           R"({"type":"content_block_stop","index":2})",
           R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}})",
           R"({"type":"message_stop"})"})
    EXPECT_TRUE(d.feed(s, ev).has_value()) << s;
  return ev;
}

void expect_thinking_answer(const cn::ChatResponse& r) {
  ASSERT_EQ(r.content.size(), 3u);
  const auto& t = std::get<cn::ReasoningPart>(r.content[0]);
  EXPECT_EQ(t.text, "Step one. Step two.");
  EXPECT_EQ(t.signature, "sig-S");
  EXPECT_EQ(std::get<cn::ReasoningPart>(r.content[1]).redacted, "cmVkYWN0");
  EXPECT_EQ(std::get<cn::TextPart>(r.content[2]).text, "Answer.");
}

std::vector<std::string> sse_data(std::string_view sse) {
  std::vector<std::string> out;
  for (std::size_t at = sse.find("data: "); at != std::string_view::npos; at = sse.find("data: ", at + 1)) {
    const std::size_t end = sse.find("\n\n", at);
    out.emplace_back(sse.substr(at + 6, end - at - 6));
  }
  return out;
}
}  // namespace

TEST(ThinkingStream, AnthropicEventsDecode) {
  cn::ResponseBuilder b;
  for (const auto& e : anthropic_thinking_stream()) b.add(e);
  EXPECT_TRUE(b.stopped());
  expect_thinking_answer(b.response());
}

TEST(ThinkingStream, AnthropicToAnthropicThroughOpenAISse) {
  // Upstream edge: Anthropic events -> OpenAI SSE (the pipeline's form).
  oa::StreamEncoder to_openai(oa::StreamOptions{"", "claude-x", 1, true, 1});
  std::string sse;
  for (const auto& e : anthropic_thinking_stream()) to_openai.encode(e, sse);
  EXPECT_NE(sse.find(R"("reasoning_content":"Step one. ")"), std::string::npos);
  EXPECT_NE(sse.find(R"("signature":"sig-S")"), std::string::npos);
  // Ingress edge: OpenAI SSE -> canonical -> Anthropic events for the caller.
  oa::StreamDecoder from_openai;
  std::vector<cn::StreamEvent> ev;
  for (const std::string& data : sse_data(sse)) ASSERT_TRUE(from_openai.feed(data, ev).has_value()) << data;
  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  expect_thinking_answer(b.response());
  an::StreamEncoder to_anthropic(an::StreamOptions{"", "claude", 1});
  std::string out;
  for (const auto& e : ev) to_anthropic.encode(e, out);
  EXPECT_NE(out.find(R"("content_block":{"type":"thinking","thinking":"","signature":""})"), std::string::npos);
  EXPECT_NE(out.find(R"("delta":{"type":"thinking_delta","thinking":"Step one. "})"), std::string::npos);
  EXPECT_NE(out.find(R"("delta":{"type":"signature_delta","signature":"sig-S"})"), std::string::npos);
  EXPECT_NE(out.find(R"("content_block":{"type":"redacted_thinking","data":"cmVkYWN0"})"), std::string::npos);
  // Blocks are numbered 0, 1, 2 and each is stopped.
  EXPECT_NE(out.find(R"({"type":"content_block_start","index":2,"content_block":{"type":"text")"), std::string::npos);
  EXPECT_EQ(count_of(out, "content_block_stop"), 6u);  // event: line + data
}

TEST(ThinkingStream, ConverseDeltasRoundTrip) {
  cv::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  const std::vector<std::pair<std::string_view, std::string_view>> events = {
      {"messageStart", R"({"role":"assistant"})"},
      {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Step one. "}}})"},
      {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Step two."}}})"},
      {"contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig-S"}}})"},
      {"contentBlockStop", R"({"contentBlockIndex":0})"},
      {"contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"reasoningContent":{"redactedContent":"cmVkYWN0"}}})"},
      {"contentBlockStop", R"({"contentBlockIndex":1})"},
      {"contentBlockDelta", R"({"contentBlockIndex":2,"delta":{"text":"Answer."}})"},
      {"contentBlockStop", R"({"contentBlockIndex":2})"},
      {"messageStop", R"({"stopReason":"end_turn"})"},
      {"metadata", R"({"usage":{"inputTokens":3,"outputTokens":9,"totalTokens":12},"metrics":{"latencyMs":5}})"}};
  for (const auto& [type, payload] : events) ASSERT_TRUE(d.feed(type, payload, ev).has_value()) << payload;
  cn::ResponseBuilder b;
  for (const auto& e : ev) b.add(e);
  expect_thinking_answer(b.response());
  // Anthropic events -> ConverseStream for a Converse caller.
  cv::StreamEncoder enc;
  std::vector<bulwark::api::bedrock::StreamPayload> out;
  for (const auto& e : anthropic_thinking_stream()) enc.encode(e, out);
  std::string all;
  for (const auto& p : out) all += p.event_type + " " + p.payload + "\n";
  EXPECT_NE(all.find(R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Step one. "}}})"), std::string::npos);
  EXPECT_NE(all.find(R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig-S"}}})"), std::string::npos);
  EXPECT_NE(all.find(R"({"contentBlockIndex":1,"delta":{"reasoningContent":{"redactedContent":"cmVkYWN0"}}})"), std::string::npos);
  EXPECT_NE(all.find(R"({"contentBlockIndex":2,"delta":{"text":"Answer."}})"), std::string::npos);
}

TEST(ThinkingStream, OpenAICallerSeesReasoningContentDeltas) {
  oa::StreamEncoder enc(oa::StreamOptions{"", "m", 1, false, 1});
  std::string sse;
  for (const auto& e : anthropic_thinking_stream()) enc.encode(e, sse);
  std::string reasoning;
  for (const std::string& data : sse_data(sse)) {
    if (data == "[DONE]") continue;
    const auto v = json(data);
    const auto& delta = v.at("choices").at(0).at("delta").as_object();
    if (const auto* r = delta.if_contains("reasoning_content")) reasoning += r->as_string();
  }
  EXPECT_EQ(reasoning, "Step one. Step two.");
}

TEST(CacheMarks, ABreakpointInsideAToolResultMarksTheResult) {
  auto req = an::decode_request(R"({"model":"c","max_tokens":5,"messages":[
    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[
      {"type":"text","text":"long output","cache_control":{"type":"ephemeral"}}]}]}]})");
  ASSERT_TRUE(req.has_value()) << req.error().message;
  EXPECT_TRUE(std::get<cn::ToolResultPart>(req->messages[1].content[0]).cache.has_value());
  auto body = cv::encode_request(through_gateway(*req), kClaude);
  ASSERT_TRUE(body.has_value()) << body.error().message;
  EXPECT_EQ(count_of(*body, "cachePoint"), 1u);
}

// ---- documents ----

namespace {
constexpr std::string_view kDocuments = R"({"model":"c","max_tokens":50,"messages":[{"role":"user","content":[
  {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQ="},"title":"Q3 report.pdf"},
  {"type":"document","source":{"type":"text","media_type":"text/plain","data":"Plain notes."}},
  {"type":"text","text":"Summarise both."}]}]})";
}  // namespace

TEST(Documents, AnthropicToConverseAndOpenAIAndBack) {
  auto req = an::decode_request(kDocuments);
  ASSERT_TRUE(req.has_value()) << req.error().message;
  const auto& pdf = std::get<cn::DocumentPart>(req->messages[0].content[0]);
  EXPECT_EQ(pdf.media_type, "application/pdf");
  EXPECT_EQ(pdf.title, "Q3 report.pdf");
  const auto& txt = std::get<cn::DocumentPart>(req->messages[0].content[1]);
  EXPECT_EQ(txt.media_type, "text/plain");
  EXPECT_EQ(txt.data, "UGxhaW4gbm90ZXMu");  // base64 of "Plain notes."

  const cn::ChatRequest through = through_gateway(*req);
  auto conv = cv::encode_request(through, kClaude);
  ASSERT_TRUE(conv.has_value()) << conv.error().message;
  const auto c = json(*conv);
  const auto& blocks = c.at("messages").at(0).at("content").as_array();
  EXPECT_EQ(blocks[0].at("document").at("format"), "pdf");
  EXPECT_EQ(blocks[0].at("document").at("name"), "Q3 report-pdf");  // sanitised for Converse
  EXPECT_EQ(blocks[0].at("document").at("source").at("bytes"), "JVBERi0xLjQ=");
  EXPECT_EQ(blocks[1].at("document").at("format"), "txt");
  EXPECT_EQ(blocks[1].at("document").at("name"), "document-2");  // untitled: numbered
  EXPECT_EQ(blocks[1].at("document").at("source").at("bytes"), "UGxhaW4gbm90ZXMu");

  auto openai = oa::encode_request(through, "gpt-x");
  ASSERT_TRUE(openai.has_value()) << openai.error().message;
  const auto o = json(*openai);
  const auto& parts = o.at("messages").at(0).at("content").as_array();
  EXPECT_EQ(parts[0].at("type"), "file");
  EXPECT_EQ(parts[0].at("file").at("file_data"), "data:application/pdf;base64,JVBERi0xLjQ=");
  EXPECT_EQ(parts[0].at("file").at("filename"), "Q3 report.pdf");
  EXPECT_EQ(parts[1].at("file").at("file_data"), "data:text/plain;base64,UGxhaW4gbm90ZXMu");

  // Converse caller -> Anthropic target: the text document is plain text again.
  auto back = cv::decode_request(*conv);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  auto anthropic = an::encode_request(through_gateway(*back), "claude-x");
  ASSERT_TRUE(anthropic.has_value()) << anthropic.error().message;
  const auto a = json(*anthropic);
  const auto& ab = a.at("messages").at(0).at("content").as_array();
  EXPECT_EQ(ab[0].at("source").at("type"), "base64");
  EXPECT_EQ(ab[0].at("title"), "Q3 report-pdf");
  EXPECT_EQ(ab[1].at("source").at("type"), "text");
  EXPECT_EQ(ab[1].at("source").at("data"), "Plain notes.");
}

TEST(Documents, CitationsAndContextReachOnlyAnthropicTargets) {
  auto req = an::decode_request(R"({"model":"c","max_tokens":50,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"text","media_type":"text/plain","data":"Facts."},"context":"From the wiki.","citations":{"enabled":true}},
    {"type":"text","text":"Cite."}]}]})");
  ASSERT_TRUE(req.has_value()) << req.error().message;
  const cn::ChatRequest through = through_gateway(*req);
  auto anthropic = an::encode_request(through, "claude-x");
  ASSERT_TRUE(anthropic.has_value()) << anthropic.error().message;
  const auto a = json(*anthropic);
  EXPECT_EQ(a.at("messages").at(0).at("content").at(0).at("citations").at("enabled"), true);
  EXPECT_EQ(a.at("messages").at(0).at("content").at(0).at("context"), "From the wiki.");
  auto invoke = iv::encode_request(through, iv::Family::anthropic, kClaude);
  ASSERT_TRUE(invoke.has_value());
  EXPECT_NE(invoke->find("\"citations\":{\"enabled\":true}"), std::string::npos);
  auto conv = cv::encode_request(through, kClaude);
  ASSERT_FALSE(conv.has_value());
  EXPECT_EQ(conv.error().kind, ErrorKind::bad_request);
  EXPECT_NE(conv.error().message.find("citations"), std::string::npos);
  auto openai = oa::encode_request(through, "gpt-x");
  ASSERT_FALSE(openai.has_value());
  EXPECT_NE(openai.error().message.find("citations"), std::string::npos);
}

TEST(Documents, WhatDoesNotMapStaysA400) {
  const auto refused = [](std::string_view body) {
    auto r = an::decode_request(body);
    return !r.has_value() && r.error().kind == ErrorKind::bad_request;
  };
  EXPECT_TRUE(refused(R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]})"));
  EXPECT_TRUE(refused(R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"file","file_id":"file_1"}}]}]})"));
  EXPECT_TRUE(refused(R"({"model":"c","max_tokens":5,"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"content","content":[{"type":"text","text":"x"}]}}]}]})"));
  auto s3 = cv::decode_request(R"({"messages":[{"role":"user","content":[
    {"document":{"format":"pdf","name":"a","source":{"s3Location":{"uri":"s3://b/a.pdf"}}}}]}]})");
  ASSERT_FALSE(s3.has_value());
  EXPECT_NE(s3.error().message.find("S3"), std::string::npos);
  auto docx = cv::decode_request(R"({"messages":[{"role":"user","content":[
    {"document":{"format":"docx","name":"a","source":{"bytes":"AAAA"}}}]}]})");
  ASSERT_FALSE(docx.has_value());
  auto file_id = oa::decode_request(R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]})");
  ASSERT_FALSE(file_id.has_value());
  EXPECT_NE(file_id.error().message.find("file_id"), std::string::npos);
  auto openai_doc = oa::decode_request(R"({"model":"m","messages":[{"role":"user","content":[
    {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]})");
  ASSERT_TRUE(openai_doc.has_value()) << openai_doc.error().message;
  for (auto family : {iv::Family::llama3, iv::Family::titan_text}) {
    auto body = iv::encode_request(*openai_doc, family, "m");
    ASSERT_FALSE(body.has_value());
    EXPECT_NE(body.error().message.find("documents"), std::string::npos);
  }
}

TEST(Citations, AnAnthropicAnswerKeepsThemThroughTheOpenAIForm) {
  auto resp = an::decode_response(R"({"id":"msg_c","type":"message","role":"assistant","model":"claude-x",
    "content":[{"type":"text","text":"The sky "},
               {"type":"text","text":"is blue.","citations":[{"type":"char_location","cited_text":"The sky is blue.","document_index":0,"start_char_index":0,"end_char_index":16}]}],
    "stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":7}})");
  ASSERT_TRUE(resp.has_value());
  ASSERT_EQ(resp->content.size(), 2u);
  EXPECT_TRUE(std::get<cn::TextPart>(resp->content[0]).citations.empty());
  EXPECT_FALSE(std::get<cn::TextPart>(resp->content[1]).citations.empty());
  const std::string openai = oa::encode_response(*resp, 1);
  const auto o = json(openai);
  EXPECT_EQ(o.at("choices").at(0).at("message").at("content"), "The sky is blue.");  // OpenAI callers: the text
  auto back = oa::decode_response(openai);
  ASSERT_TRUE(back.has_value());
  const auto a = json(an::encode_response(*back, 1));
  const auto& content = a.at("content").as_array();
  ASSERT_EQ(content.size(), 2u);
  EXPECT_FALSE(content[0].as_object().contains("citations"));
  EXPECT_EQ(content[1].at("citations").at(0).at("cited_text"), "The sky is blue.");
  EXPECT_EQ(content[1].at("citations").at(0).at("end_char_index"), 16);
  // Without citations nothing extra is written.
  cn::ChatResponse plain;
  plain.content.emplace_back(cn::TextPart{"hi"});
  EXPECT_EQ(oa::encode_response(plain, 1).find("text_blocks"), std::string::npos);
}

// ---- citations: streams ----

namespace {
constexpr std::string_view kCiteA =
    R"({"type":"char_location","cited_text":"The sky is blue.","document_index":0,"document_title":"Facts","start_char_index":0,"end_char_index":16})";
constexpr std::string_view kCiteB =
    R"({"type":"page_location","cited_text":"Grass is green.","document_index":1,"document_title":null,"start_page_number":1,"end_page_number":2})";

// An Anthropic stream as the Citations API sends it: text blocks split where a cited claim
// begins and ends; one citation before the block's text, one after it.
std::vector<std::string> anthropic_cited_events() {
  return {
      R"({"type":"message_start","message":{"id":"msg_c","model":"claude-x","usage":{"input_tokens":30,"output_tokens":1}}})",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"According to the notes, "}})",
      R"({"type":"content_block_stop","index":0})",
      R"({"type":"content_block_start","index":1,"content_block":{"type":"text","text":"","citations":[]}})",
      std::string(R"({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":)") + std::string(kCiteA) + "}}",
      R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"the sky "}})",
      R"({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"is blue"}})",
      std::string(R"({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":)") + std::string(kCiteB) + "}}",
      R"({"type":"content_block_stop","index":1})",
      R"({"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}})",
      R"({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"."}})",
      R"({"type":"content_block_stop","index":2})",
      R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}})",
      R"({"type":"message_stop"})"};
}

std::vector<cn::StreamEvent> decode_anthropic(const std::vector<std::string>& datas) {
  an::StreamDecoder d;
  std::vector<cn::StreamEvent> ev;
  for (const std::string& s : datas) EXPECT_TRUE(d.feed(s, ev).has_value()) << s;
  return ev;
}

cn::ChatResponse build(const std::vector<cn::StreamEvent>& events) {
  cn::ResponseBuilder b;
  for (const auto& e : events) b.add(e);
  EXPECT_TRUE(b.stopped());
  return b.response();
}

// Text blocks as (text, citations parsed) pairs, to compare answers whatever the spelling.
std::vector<std::pair<std::string, boost::json::value>> text_blocks(const cn::ChatResponse& r) {
  std::vector<std::pair<std::string, boost::json::value>> out;
  for (const auto& part : r.content) {
    const auto* t = std::get_if<cn::TextPart>(&part);
    if (t == nullptr) continue;
    out.emplace_back(t->text, t->citations.empty() ? boost::json::value(nullptr) : json(t->citations));
  }
  return out;
}

void expect_cited_answer(const cn::ChatResponse& r) {
  const auto blocks = text_blocks(r);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].first, "According to the notes, ");
  EXPECT_TRUE(blocks[0].second.is_null());
  EXPECT_EQ(blocks[1].first, "the sky is blue");
  EXPECT_EQ(blocks[1].second, boost::json::value({json(kCiteA), json(kCiteB)}));
  EXPECT_EQ(blocks[2].first, ".");
  EXPECT_TRUE(blocks[2].second.is_null());
}
}  // namespace

TEST(CitationStream, AnthropicCitationsDeltasBecomeTheBlocksCitations) {
  const auto events = decode_anthropic(anthropic_cited_events());
  std::size_t citations = 0;
  for (const auto& e : events)
    if (const auto* c = std::get_if<cn::CitationDelta>(&e)) {
      ++citations;
      EXPECT_EQ(c->index, 1u);
    }
  EXPECT_EQ(citations, 2u);
  expect_cited_answer(build(events));
  // Citations already on a block's start are kept as well (and an empty list adds none).
  auto more = anthropic_cited_events();
  more[1] = std::string(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":"","citations":[)") +
            std::string(kCiteB) + "]}}";
  const auto r = build(decode_anthropic(more));
  EXPECT_EQ(json(std::get<cn::TextPart>(r.content[0]).citations), boost::json::value({json(kCiteB)}));
}

TEST(CitationStream, AnthropicToAnthropicThroughOpenAISseIsExact) {
  const auto upstream = decode_anthropic(anthropic_cited_events());
  // Upstream edge: canonical -> the pipeline's OpenAI SSE.
  oa::StreamEncoder to_openai(oa::StreamOptions{"", "claude-x", 1, true, 1});
  std::string sse;
  for (const auto& e : upstream) to_openai.encode(e, sse);
  EXPECT_NE(sse.find(std::string(R"("delta":{"citation":)") + std::string(kCiteA) + R"(,"text_block":1})"), std::string::npos) << sse;
  // Ingress edge: OpenAI SSE -> canonical -> Anthropic SSE for the caller.
  oa::StreamDecoder from_openai;
  std::vector<cn::StreamEvent> middle;
  for (const std::string& data : sse_data(sse)) ASSERT_TRUE(from_openai.feed(data, middle).has_value()) << data;
  expect_cited_answer(build(middle));
  an::StreamEncoder to_anthropic(an::StreamOptions{"", "claude", 1});
  std::string out;
  for (const auto& e : middle) to_anthropic.encode(e, out);
  EXPECT_NE(out.find(std::string(R"({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":)") +
                     std::string(kCiteA) + "}}"),
            std::string::npos)
      << out;
  // What the caller's SDK reads back is the upstream's answer, block for block.
  const cn::ChatResponse caller = build(decode_anthropic(sse_data(out)));
  expect_cited_answer(caller);
  EXPECT_EQ(text_blocks(caller), text_blocks(build(upstream)));
  EXPECT_EQ(count_of(out, "event: content_block_start"), 3u);
}

TEST(CitationStream, ACitationAfterItsTextStaysOnItsBlockAfterReasoningToo) {
  // Citations after the text they cite, the first text block cited, a thinking block
  // first: the OpenAI form's text_block counts text blocks only.
  const std::vector<cn::StreamEvent> events = {
      cn::MessageStart{"msg_r", "claude-x", {}},
      cn::ReasoningDelta{0, "Look it up."},
      cn::SignatureDelta{0, "sig"},
      cn::BlockStop{0},
      cn::TextDelta{1, "The sky is blue"},
      cn::CitationDelta{1, std::string(kCiteA)},
      cn::BlockStop{1},
      cn::TextDelta{2, " and grass green"},
      cn::CitationDelta{2, std::string(kCiteB)},
      cn::BlockStop{2},
      cn::TextDelta{3, "."},
      cn::BlockStop{3},
      cn::MessageDelta{cn::StopReason::end_turn, {}, cn::Usage{1, 2, 0, 0}, std::nullopt},
      cn::MessageStop{}};
  oa::StreamEncoder enc(oa::StreamOptions{"", "claude-x", 1, true, 1});
  std::string sse;
  for (const auto& e : events) enc.encode(e, sse);
  EXPECT_EQ(sse.find(R"("content":"The sky is blue","text_block")"), std::string::npos) << sse;  // the first: no mark
  EXPECT_NE(sse.find(std::string(R"({"citation":)") + std::string(kCiteA) + R"(,"text_block":0})"), std::string::npos) << sse;
  EXPECT_NE(sse.find(R"({"content":" and grass green","text_block":1})"), std::string::npos) << sse;
  oa::StreamDecoder dec;
  std::vector<cn::StreamEvent> back;
  for (const std::string& data : sse_data(sse)) ASSERT_TRUE(dec.feed(data, back).has_value()) << data;
  const cn::ChatResponse r = build(back);
  ASSERT_EQ(r.content.size(), 4u);
  EXPECT_EQ(std::get<cn::ReasoningPart>(r.content[0]).signature, "sig");
  EXPECT_EQ(text_blocks(r), text_blocks(build(events)));
  EXPECT_EQ(json(std::get<cn::TextPart>(r.content[1]).citations), boost::json::value({json(kCiteA)}));
  EXPECT_EQ(json(std::get<cn::TextPart>(r.content[2]).citations), boost::json::value({json(kCiteB)}));
  EXPECT_TRUE(std::get<cn::TextPart>(r.content[3]).citations.empty());
}

TEST(CitationStream, SplitSseEventsAndFeedSseGiveTheSameAnswer) {
  // The decoders read whole SSE events (feed_sse), however the upstream split its bytes:
  // the events are cut at arbitrary points and rejoined before being fed.
  std::string anthropic_sse;
  for (const std::string& d : anthropic_cited_events()) {
    const auto v = json(d);
    anthropic_sse += "event: " + std::string(v.at("type").as_string()) + "\ndata: " + d + "\n\n";
  }
  an::StreamDecoder ad;
  std::vector<cn::StreamEvent> events;
  std::string pending;
  for (std::size_t i = 0; i < anthropic_sse.size(); i += 7) {
    pending.append(anthropic_sse.substr(i, 7));
    for (std::size_t end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      ASSERT_TRUE(ad.feed_sse(pending.substr(0, end + 2), events).has_value());
      pending.erase(0, end + 2);
    }
  }
  expect_cited_answer(build(events));
  oa::StreamEncoder enc(oa::StreamOptions{"", "claude-x", 1, true, 1});
  std::string sse;
  for (const auto& e : events) enc.encode(e, sse);
  oa::StreamDecoder od;
  std::vector<cn::StreamEvent> back;
  pending.clear();
  for (std::size_t i = 0; i < sse.size(); i += 5) {
    pending.append(sse.substr(i, 5));
    for (std::size_t end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      ASSERT_TRUE(od.feed_sse(pending.substr(0, end + 2), back).has_value());
      pending.erase(0, end + 2);
    }
  }
  expect_cited_answer(build(back));
}

TEST(CitationStream, OpenAICallersGetTheTextAndStreamsWithoutCitationsGainNothing) {
  oa::StreamEncoder enc(oa::StreamOptions{"", "m", 1, false, 1});
  std::string sse;
  for (const auto& e : decode_anthropic(anthropic_cited_events())) enc.encode(e, sse);
  std::string text;
  for (const std::string& data : sse_data(sse)) {
    if (data == "[DONE]") continue;
    const auto v = json(data);
    const auto& delta = v.at("choices").at(0).at("delta").as_object();
    if (const auto* c = delta.if_contains("content")) text += c->as_string();
  }
  EXPECT_EQ(text, "According to the notes, the sky is blue.");
  // A plain stream of one text block: no gateway fields at all.
  oa::StreamEncoder plain(oa::StreamOptions{"", "m", 1, false, 1});
  std::string plain_sse;
  for (const auto& e : std::vector<cn::StreamEvent>{cn::MessageStart{"x", "m", {}}, cn::TextDelta{0, "Hel"}, cn::TextDelta{0, "lo"},
                                                    cn::BlockStop{0}, cn::MessageDelta{cn::StopReason::end_turn, {}, cn::Usage{}, {}},
                                                    cn::MessageStop{}})
    plain.encode(e, plain_sse);
  EXPECT_EQ(plain_sse.find("text_block"), std::string::npos);
  EXPECT_EQ(plain_sse.find("citation"), std::string::npos);
}

TEST(CitationStream, ClaudeInvokeModelCallersGetThemConverseCallersCannotAsk) {
  // InvokeModel Claude: the stream chunks are Anthropic's events.
  iv::StreamEncoder enc(iv::Family::anthropic, iv::StreamOptions{"", "claude", 1});
  std::vector<std::string> chunks;
  for (const auto& e : decode_anthropic(anthropic_cited_events())) enc.encode(e, chunks);
  ASSERT_GE(chunks.size(), 6u);
  EXPECT_EQ(chunks[5], std::string(R"({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":)") +
                           std::string(kCiteA) + "}}");
  expect_cited_answer(build(decode_anthropic(chunks)));  // the last chunk's metrics are ignored
  // And the plain answer (decode_response of a stream's answer, as the pipeline hands it).
  const auto a = json(iv::encode_response(build(decode_anthropic(anthropic_cited_events())), iv::Family::anthropic, 1));
  EXPECT_EQ(a.at("content").at(1).at("citations").at(0), json(kCiteA));

  // Converse and Nova callers: answers would come back without them, so asking is a 400.
  constexpr std::string_view kConverse = R"({"messages":[{"role":"user","content":[
    {"document":{"format":"txt","name":"notes","source":{"bytes":"VGhlIHNreSBpcyBibHVlLg=="},"citations":{"enabled":true}}},
    {"text":"Cite."}]}]})";
  auto conv = cv::decode_request(kConverse);
  ASSERT_FALSE(conv.has_value());
  EXPECT_EQ(conv.error().kind, ErrorKind::bad_request);
  EXPECT_NE(conv.error().message.find("citations"), std::string::npos);
  EXPECT_NE(conv.error().param.find("citations"), std::string::npos);
  auto nova = iv::decode_request(std::string(R"({"schemaVersion":"messages-v1",)") + std::string(kConverse.substr(1)), iv::Family::nova);
  ASSERT_FALSE(nova.has_value());
  EXPECT_NE(nova.error().message.find("citations"), std::string::npos);
  // citations disabled is no request at all.
  std::string off(kConverse);
  off.replace(off.find("true"), 4, "false");
  EXPECT_TRUE(cv::decode_request(off).has_value());
}
