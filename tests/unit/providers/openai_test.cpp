#include "providers/openai/openai.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oa = bulwark::providers::openai;
using bulwark::ErrorKind;

namespace {
const std::string kStream =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7,"
    "\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n"
    "data: [DONE]\n\n";

std::vector<std::string> split_in_two(std::size_t at) {
  oa::SseSplitter s;
  std::vector<std::string> events;
  auto sink = [&](std::string_view e) { events.emplace_back(e); };
  s.feed(std::string_view(kStream).substr(0, at), sink);
  s.feed(std::string_view(kStream).substr(at), sink);
  EXPECT_FALSE(s.has_partial());
  return events;
}
}  // namespace

TEST(SseSplitter, SameEventsWhereverTheBytesAreCut) {
  const auto whole = split_in_two(kStream.size());
  ASSERT_EQ(whole.size(), 6u);
  std::string rejoined;
  for (const auto& e : whole) rejoined += e;
  EXPECT_EQ(rejoined, kStream) << "relayed byte for byte";
  for (std::size_t at = 0; at <= kStream.size(); ++at) EXPECT_EQ(split_in_two(at), whole) << "cut at " << at;
}

TEST(SseSplitter, ByteByByte) {
  oa::SseSplitter s;
  std::vector<std::string> events;
  for (char c : kStream) s.feed(std::string_view(&c, 1), [&](std::string_view e) { events.emplace_back(e); });
  EXPECT_EQ(events, split_in_two(kStream.size()));
}

TEST(InspectEvent, ClassifiesEveryKindOfEvent) {
  const auto events = split_in_two(kStream.size());
  EXPECT_EQ(oa::inspect_event(events[0]).kind, oa::StreamEvent::Kind::data);
  EXPECT_EQ(oa::inspect_event(events[0]).content_deltas, 0);
  EXPECT_EQ(oa::inspect_event(events[1]).kind, oa::StreamEvent::Kind::comment);
  EXPECT_EQ(oa::inspect_event(events[2]).content_deltas, 1);
  EXPECT_TRUE(oa::inspect_event(events[3]).has_finish);
  const auto usage = oa::inspect_event(events[4]);
  EXPECT_TRUE(usage.usage_only);
  EXPECT_TRUE(usage.usage.present);
  EXPECT_EQ(usage.usage.prompt_tokens, 5);
  EXPECT_EQ(usage.usage.completion_tokens, 2);
  EXPECT_EQ(usage.usage.cached_prompt_tokens, 3);
  EXPECT_EQ(oa::inspect_event(events[5]).kind, oa::StreamEvent::Kind::done);
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"content\":\"x\"\n\n").kind, oa::StreamEvent::Kind::malformed);
  const auto err = oa::inspect_event("data: {\"error\":{\"message\":\"overloaded\"}}\n\n");
  EXPECT_EQ(err.kind, oa::StreamEvent::Kind::error);
  EXPECT_EQ(err.error_message, "overloaded");
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n").content_deltas, 1);
  // The deprecated function_call's arguments are the answer too (and what a policy reads).
  const auto legacy = oa::inspect_event("data: {\"choices\":[{\"delta\":{\"function_call\":{\"arguments\":\"{\\\"a\\\"\"}}}]}\n\n");
  EXPECT_EQ(legacy.content_deltas, 1);
  EXPECT_EQ(legacy.text_bytes, 4u);
}

// The answer text an event carries, for what a cut attempt is charged: content and tool
// arguments, as decoded text; nothing for reasoning, roles or usage.
TEST(InspectEvent, CountsTheAnswerTextBytes) {
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n").text_bytes, 0u);
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"content\":\"w1 w2\"}}]}\n\n").text_bytes, 5u);
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"content\":\"a\\nb\"}}]}\n\n").text_bytes, 3u);
  const auto calls = oa::inspect_event(
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}},"
      "{\"index\":1,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n");
  EXPECT_EQ(calls.text_bytes, 6u);  // {"a" and 1}
  EXPECT_EQ(calls.content_deltas, 1);
  EXPECT_EQ(oa::inspect_event("data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\n").text_bytes, 0u);
}

TEST(ClassifyError, MapsStatusesAndCodesToKinds) {
  struct Case { unsigned status; std::string_view body; ErrorKind kind; bool retryable; };
  for (const Case& c : {
           Case{429, R"({"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}})", ErrorKind::upstream_rate_limited, true},
           Case{429, R"({"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}})", ErrorKind::upstream_rate_limited, false},
           Case{400, R"({"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}})", ErrorKind::context_length_exceeded, false},
           Case{400, R"({"error":{"message":"filtered","code":"content_filter"}})", ErrorKind::content_filtered, false},
           Case{400, R"({"error":{"message":"bad temperature"}})", ErrorKind::upstream_bad_request, false},
           Case{401, R"({"error":{"message":"Incorrect API key provided: sk-abc***xyz"}})", ErrorKind::upstream_auth, false},
           Case{404, "not json", ErrorKind::upstream_not_found, false},
           Case{500, "", ErrorKind::upstream_server_error, true},
           Case{502, "<html>", ErrorKind::upstream_server_error, true},
           Case{503, "", ErrorKind::upstream_overloaded, true},
           Case{529, R"({"type":"error","error":{"type":"overloaded_error"}})", ErrorKind::upstream_overloaded, true},
       }) {
    const auto e = oa::classify_error(c.status, c.body, "p/m");
    EXPECT_EQ(e.kind, c.kind) << c.status << " " << c.body;
    EXPECT_EQ(e.retryable, c.retryable) << c.status << " " << c.body;
    EXPECT_EQ(e.upstream_status, static_cast<int>(c.status));
    EXPECT_EQ(e.message.find("sk-abc"), std::string::npos) << "never echo a provider's key hint";
  }
  EXPECT_NE(oa::classify_error(400, R"({"error":{"message":"bad temperature"}})", "p/m").message.find("bad temperature"),
            std::string::npos)
      << "the caller's own mistake keeps the provider's explanation";
}

TEST(ReadUsage, FromACompleteAnswer) {
  const auto u = oa::read_usage(R"({"choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}})");
  EXPECT_TRUE(u.present);
  EXPECT_EQ(u.prompt_tokens, 11);
  EXPECT_EQ(u.completion_tokens, 4);
  EXPECT_EQ(u.total_tokens, 15);
  // Cached reads and prompt-cache writes (as the Anthropic and Bedrock conversions report them).
  const auto c = oa::read_usage(
      R"({"usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":60},"cache_creation_input_tokens":30}})");
  EXPECT_EQ(c.cached_prompt_tokens, 60);
  EXPECT_EQ(c.cache_write_tokens, 30);
  EXPECT_FALSE(oa::read_usage(R"({"choices":[]})").present);
  EXPECT_FALSE(oa::read_usage("garbage").present);
}

TEST(BuildRequest, CarriesTheProvidersCredentialsAndPath) {
  bulwark::config::Provider p;
  p.endpoint = {true, "api.example.com", 443, "/v1"};
  p.api_key = bulwark::Secret("sk-provider");
  p.headers = {{"OpenAI-Organization", "org-9"}};
  const auto req = oa::build_request(p, R"({"model":"x"})", true);
  EXPECT_EQ(req.target(), "/v1/chat/completions");
  EXPECT_EQ(req[boost::beast::http::field::host], "api.example.com");
  EXPECT_EQ(req[boost::beast::http::field::authorization], "Bearer sk-provider");
  EXPECT_EQ(req[boost::beast::http::field::accept], "text/event-stream");
  EXPECT_EQ(req["OpenAI-Organization"], "org-9");
  EXPECT_EQ(req[boost::beast::http::field::content_length], "13");
}
