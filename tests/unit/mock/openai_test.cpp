#include "mock/openai.hpp"

#include <gtest/gtest.h>

namespace bulwark::mock {
namespace {

const OpenAIFormat kFormat;

TEST(OpenAIDecode, ReadsModelStreamUsageAndCountsWords) {
  auto r = kFormat.decode_chat(R"({
    "model": "flaky", "temperature": 0.2, "stream": true,
    "stream_options": {"include_usage": true},
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": [{"type": "text", "text": "two words"},
                                   {"type": "image_url", "image_url": {"url": "x"}},
                                   {"type": "text", "text": " and three more "}]},
      {"role": "assistant", "content": null, "tool_calls": []},
      {"content": "role comes last", "role": "user"}
    ],
    "tools": [{"type": "function"}]
  })");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "flaky");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->prompt_tokens, 3u + 2u + 3u + 3u);
  EXPECT_FALSE(r->last_is_assistant);
}

TEST(OpenAIDecode, DefaultsAndAssistantPrefill) {
  auto r = kFormat.decode_chat(R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"w1 w2"}],"model":"m"})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->include_usage);
  EXPECT_TRUE(r->last_is_assistant);
  EXPECT_EQ(r->last_content, "w1 w2");
  EXPECT_EQ(r->prompt_tokens, 3u);

  auto parts = kFormat.decode_chat(R"({"model":"m","messages":[{"role":"assistant","content":[{"type":"text","text":"w1 "},{"type":"text","text":"w2"}]}]})");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->last_content, "w1 w2");

  auto escaped = kFormat.decode_chat(R"({"model":"m\u00e9\"","messages":[],"stream":null})");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->model, "m\xc3\xa9\"");
}

TEST(OpenAIDecode, RejectsBadBodies) {
  auto kind = [](std::string_view body) {
    auto r = kFormat.decode_chat(body);
    return r ? ErrorKind::internal : r.error().kind;
  };
  EXPECT_EQ(kind("{"), ErrorKind::invalid_json);
  EXPECT_EQ(kind(""), ErrorKind::invalid_json);
  EXPECT_EQ(kind(R"({"model":"m","messages":[]} trailing)"), ErrorKind::invalid_json);
  EXPECT_EQ(kind(R"({"model":"m","messages":[{"role":"user","content":"x"])"), ErrorKind::invalid_json);
  EXPECT_EQ(kind(R"([1,2])"), ErrorKind::bad_request);
  EXPECT_EQ(kind(R"({"messages":[]})"), ErrorKind::bad_request);
  EXPECT_EQ(kind(R"({"model":"m"})"), ErrorKind::bad_request);
  EXPECT_EQ(kind(R"({"model":7,"messages":[]})"), ErrorKind::bad_request);
  EXPECT_EQ(kind(R"({"model":"m","messages":[],"stream":"yes"})"), ErrorKind::bad_request);
  EXPECT_EQ(kind(R"({"model":"m","messages":[{"role":"user","content":5}]})"), ErrorKind::bad_request);
  auto missing = kFormat.decode_chat(R"({"messages":[]})");
  EXPECT_EQ(missing.error().message, "you must provide a model parameter");
}

Plan healthy(std::uint32_t tokens, std::uint64_t prompt) {
  Plan p;
  p.tokens = tokens;
  p.completion_tokens = tokens;
  p.prompt_tokens = prompt;
  return p;
}

TEST(OpenAIEncode, CompletionBody) {
  std::string out;
  const AnswerMeta meta{0xabcdef, 1700000000, "mock-\"fast\"", false};
  auto p = healthy(3, 4);
  p.after_tokens = 2;
  const auto cut = kFormat.append_completion(out, p, meta);
  EXPECT_EQ(out,
            R"({"id":"chatcmpl-0000000000abcdef","object":"chat.completion","created":1700000000,)"
            R"("model":"mock-\"fast\"","choices":[{"index":0,"message":{"role":"assistant",)"
            R"("content":"w1 w2 w3.","refusal":null},"logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7},)"
            R"("system_fingerprint":"fp_bulwark_mock"})");
  EXPECT_TRUE(out.substr(0, cut).ends_with("\"content\":\"w1 w2"));
}

TEST(OpenAIEncode, CompletionOfAPrefillCarriesTheRemainder) {
  std::string out;
  Plan p = healthy(5, 1);
  p.resume = Resume{3, 2};  // prefill "w1 w2 w"
  p.completion_tokens = 3;
  kFormat.append_completion(out, p, AnswerMeta{1, 2, "m", false});
  EXPECT_NE(out.find(R"("content":"3 w4 w5.")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("completion_tokens":3,"total_tokens":4)"), std::string::npos);
}

TEST(OpenAIEncode, StreamChunks) {
  const AnswerMeta meta{1, 1700000000, "m", false};
  std::string first;
  kFormat.append_stream_token(first, meta, "w1", true);
  EXPECT_EQ(first,
            "data: {\"id\":\"chatcmpl-0000000000000001\",\"object\":\"chat.completion.chunk\","
            "\"created\":1700000000,\"model\":\"m\",\"system_fingerprint\":\"fp_bulwark_mock\","
            "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"w1\"},"
            "\"logprobs\":null,\"finish_reason\":null}]}\n\n");
  std::string next;
  kFormat.append_stream_token(next, meta, " w2", false);
  EXPECT_NE(next.find("\"delta\":{\"content\":\" w2\"}"), std::string::npos) << next;

  std::string close;
  kFormat.append_stream_close(close, healthy(2, 1), meta, false);
  EXPECT_EQ(close,
            "data: {\"id\":\"chatcmpl-0000000000000001\",\"object\":\"chat.completion.chunk\","
            "\"created\":1700000000,\"model\":\"m\",\"system_fingerprint\":\"fp_bulwark_mock\","
            "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}"
            "\n\ndata: [DONE]\n\n");
  std::string no_done;
  kFormat.append_stream_close(no_done, healthy(2, 1), meta, true);
  EXPECT_EQ(no_done.find("[DONE]"), std::string::npos);
  EXPECT_NE(no_done.find("\"finish_reason\":\"stop\""), std::string::npos);
}

TEST(OpenAIEncode, ToolCallAnswerWholeAndStreamed) {
  const AnswerMeta meta{1, 1700000000, "m", false};
  Plan p = healthy(3, 1);
  p.tool_call = ToolCall{"send_email", {R"({"to":"jane.d)", R"(oe@example.com"})"}};
  std::string body;
  std::size_t cut_at = kFormat.append_completion(body, p, meta);
  // A cut, stall or malformed answer stops after after_tokens fragments of the arguments.
  EXPECT_TRUE(body.substr(0, cut_at).ends_with(R"("arguments":")")) << body.substr(0, cut_at);
  p.after_tokens = 1;
  body.clear();
  cut_at = kFormat.append_completion(body, p, meta);
  EXPECT_TRUE(body.substr(0, cut_at).ends_with(R"("arguments":"{\"to\":\"jane.d)")) << body.substr(0, cut_at);
  p.after_tokens = 9;
  body.clear();
  cut_at = kFormat.append_completion(body, p, meta);
  EXPECT_TRUE(body.substr(0, cut_at).ends_with(R"(jane.doe@example.com\"})")) << body.substr(0, cut_at);
  EXPECT_NE(body.find(R"("message":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_0000000000000001",)"
                      R"("type":"function","function":{"name":"send_email","arguments":"{\"to\":\"jane.doe@example.com\"}"}}])"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("finish_reason":"tool_calls")"), std::string::npos);

  std::string first, second, close;
  kFormat.append_stream_tool_fragment(first, meta, *p.tool_call, 0);
  kFormat.append_stream_tool_fragment(second, meta, *p.tool_call, 1);
  kFormat.append_stream_close(close, p, meta, false);
  EXPECT_NE(first.find(R"("delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_0000000000000001",)"
                       R"("type":"function","function":{"name":"send_email","arguments":"{\"to\":\"jane.d"}}]})"),
            std::string::npos)
      << first;
  EXPECT_NE(second.find(R"("delta":{"tool_calls":[{"index":0,"function":{"arguments":"oe@example.com\"}"}}]})"), std::string::npos)
      << second;
  EXPECT_NE(close.find(R"("finish_reason":"tool_calls")"), std::string::npos);
  EXPECT_TRUE(kFormat.answers_tool_calls());
}

TEST(OpenAIEncode, LegacyFunctionCallAnswerWholeAndStreamed) {
  const AnswerMeta meta{1, 1700000000, "m", false};
  Plan p = healthy(3, 1);
  p.tool_call = ToolCall{"send_email", {R"({"to":"jane.d)", R"(oe@example.com"})"}, true};
  std::string body;
  kFormat.append_completion(body, p, meta);
  EXPECT_NE(body.find(R"("message":{"role":"assistant","content":null,"function_call":{"name":"send_email",)"
                      R"("arguments":"{\"to\":\"jane.doe@example.com\"}"},"refusal":null})"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"("finish_reason":"function_call")"), std::string::npos);
  EXPECT_EQ(body.find("tool_calls"), std::string::npos);

  std::string first, second, close;
  kFormat.append_stream_tool_fragment(first, meta, *p.tool_call, 0);
  kFormat.append_stream_tool_fragment(second, meta, *p.tool_call, 1);
  kFormat.append_stream_close(close, p, meta, false);
  EXPECT_NE(first.find(R"("delta":{"role":"assistant","content":null,"function_call":{"name":"send_email","arguments":"{\"to\":\"jane.d"}},)"),
            std::string::npos)
      << first;
  EXPECT_NE(second.find(R"("delta":{"function_call":{"arguments":"oe@example.com\"}"}},)"), std::string::npos) << second;
  EXPECT_NE(close.find(R"("finish_reason":"function_call")"), std::string::npos);
}

TEST(OpenAIEncode, UsageChunkHasEmptyChoices) {
  const AnswerMeta meta{2, 1700000000, "m", true};
  std::string token;
  kFormat.append_stream_token(token, meta, "w1", true);
  EXPECT_TRUE(token.ends_with("\"finish_reason\":null}],\"usage\":null}\n\n")) << token;

  std::string close;
  kFormat.append_stream_close(close, healthy(2, 5), meta, false);
  const std::string usage_chunk =
      "data: {\"id\":\"chatcmpl-0000000000000002\",\"object\":\"chat.completion.chunk\","
      "\"created\":1700000000,\"model\":\"m\",\"system_fingerprint\":\"fp_bulwark_mock\","
      "\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}"
      "\n\ndata: [DONE]\n\n";
  EXPECT_TRUE(close.ends_with(usage_chunk)) << close;
  EXPECT_NE(close.find("\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"), std::string::npos);
}

TEST(OpenAIEncode, MalformedChunkIsNotJson) {
  std::string out;
  kFormat.append_stream_malformed(out, AnswerMeta{1, 2, "m", false});
  ASSERT_TRUE(out.starts_with("data: {"));
  EXPECT_TRUE(out.ends_with("\n\n"));
  // The payload must fail to parse: decode it as a request body to prove it.
  const auto payload = out.substr(6, out.size() - 8);
  auto parsed = kFormat.decode_chat(payload);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().kind, ErrorKind::invalid_json);
}

std::string error_of(ErrorType t, std::string_view msg = "") {
  std::string out;
  kFormat.append_error(out, t, msg);
  return out;
}

TEST(OpenAIEncode, ErrorBodiesPerType) {
  EXPECT_EQ(error_of(ErrorType::rate_limit),
            R"({"error":{"message":"Rate limit reached for requests per min (RPM). Please try again later.","type":"requests","param":null,"code":"rate_limit_exceeded"}})");
  EXPECT_EQ(error_of(ErrorType::bad_gateway),
            R"({"error":{"message":"Bad gateway.","type":"cf_bad_gateway","param":null,"code":502}})");
  EXPECT_EQ(error_of(ErrorType::context_length, "too long"),
            R"({"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})");
  EXPECT_EQ(error_of(ErrorType::auth, "Incorrect API key provided."),
            R"({"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})");
  auto has = [](const std::string& body, std::string_view part) {
    return body.find(part) != std::string::npos;
  };
  EXPECT_TRUE(has(error_of(ErrorType::overloaded), R"("type":"server_error","param":null,"code":null)"));
  EXPECT_TRUE(has(error_of(ErrorType::overloaded), "currently overloaded"));
  EXPECT_TRUE(has(error_of(ErrorType::server_error), R"("type":"server_error","param":null,"code":null)"));
  EXPECT_TRUE(has(error_of(ErrorType::unavailable), R"("type":"server_error","param":null,"code":null)"));
  EXPECT_TRUE(has(error_of(ErrorType::unavailable), "unavailable"));
  EXPECT_TRUE(has(error_of(ErrorType::content_filter), R"("type":"invalid_request_error","param":null,"code":"content_filter")"));
  EXPECT_TRUE(has(error_of(ErrorType::invalid_request), R"("type":"invalid_request_error","param":null,"code":null)"));
  // Messages are JSON-escaped.
  EXPECT_TRUE(has(error_of(ErrorType::invalid_request, "bad \"x\"\n"), R"("message":"bad \"x\"\n")"));
}

TEST(OpenAIEncode, ModelList) {
  std::string out;
  const std::vector<std::string> names{"a", "b"};
  kFormat.append_models(out, names, 42);
  EXPECT_EQ(out,
            R"({"object":"list","data":[{"id":"a","object":"model","created":42,"owned_by":"bulwark-mock"},)"
            R"({"id":"b","object":"model","created":42,"owned_by":"bulwark-mock"}]})");
}

}  // namespace
}  // namespace bulwark::mock
