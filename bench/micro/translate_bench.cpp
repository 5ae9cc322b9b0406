// Format translation (api/canonical and its translators), without the network: an OpenAI
// request rewritten for Anthropic and for Bedrock Converse (a tool-using chat, and the small
// request bench/run.sh sends), the upstream's answer rewritten back to OpenAI, and
// Anthropic / ConverseStream streams relayed to an OpenAI caller (decode each event, encode
// the chunk).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/openai/translate.hpp"

namespace {

namespace cn = bulwark::api::canonical;

// A typical tool-using chat: system prompt, a few turns, one tool call and its result.
const std::string kOpenAIRequest = R"({
  "model": "claude-sonnet", "max_tokens": 1024, "temperature": 0.3, "stream": true,
  "messages": [
    {"role": "system", "content": "You are a helpful assistant for a travel agency. Answer briefly and cite prices in EUR."},
    {"role": "user", "content": "I want to fly from Paris to Rome next Friday, morning if possible."},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_f1", "type": "function",
      "function": {"name": "search_flights", "arguments": "{\"from\":\"CDG\",\"to\":\"FCO\",\"date\":\"2025-06-13\",\"time\":\"morning\"}"}}]},
    {"role": "tool", "tool_call_id": "call_f1", "content": "[{\"flight\":\"AF1204\",\"dep\":\"07:15\",\"price\":129},{\"flight\":\"AZ317\",\"dep\":\"09:40\",\"price\":98}]"},
    {"role": "assistant", "content": "AZ317 at 09:40 costs 98 EUR; AF1204 at 07:15 costs 129 EUR."},
    {"role": "user", "content": "Book the cheaper one and tell me the baggage allowance."}
  ],
  "tools": [
    {"type": "function", "function": {"name": "search_flights", "description": "Search flights",
      "parameters": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"},
      "date": {"type": "string"}, "time": {"type": "string"}}, "required": ["from", "to", "date"]}}},
    {"type": "function", "function": {"name": "book_flight", "description": "Book a flight",
      "parameters": {"type": "object", "properties": {"flight": {"type": "string"}}, "required": ["flight"]}}}
  ],
  "tool_choice": "auto"
})";

void BM_TranslateRequestOpenAIToAnthropic(benchmark::State& state) {
  for (auto _ : state) {
    auto req = bulwark::api::openai::decode_request(kOpenAIRequest);
    auto body = bulwark::api::anthropic::encode_request(*req, "claude-sonnet-4-20250514");
    benchmark::DoNotOptimize(body);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kOpenAIRequest.size()));
}
BENCHMARK(BM_TranslateRequestOpenAIToAnthropic);

void BM_TranslateRequestOpenAIToConverse(benchmark::State& state) {
  for (auto _ : state) {
    auto req = bulwark::api::openai::decode_request(kOpenAIRequest);
    auto body = bulwark::api::bedrock::converse::encode_request(*req, "anthropic.claude-3-5-sonnet-20240620-v1:0");
    benchmark::DoNotOptimize(body);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kOpenAIRequest.size()));
}
BENCHMARK(BM_TranslateRequestOpenAIToConverse);

// The request bench/wrk/chat.lua sends: what the cross-format load benchmark translates.
const std::string kSmallRequest =
    R"({"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16,"temperature":0})";

void BM_TranslateSmallRequestOpenAIToAnthropic(benchmark::State& state) {
  for (auto _ : state) {
    auto req = bulwark::api::openai::decode_request(kSmallRequest);
    auto body = bulwark::api::anthropic::encode_request(*req, "claude-sonnet-4-20250514");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateSmallRequestOpenAIToAnthropic);

void BM_TranslateSmallRequestOpenAIToConverse(benchmark::State& state) {
  for (auto _ : state) {
    auto req = bulwark::api::openai::decode_request(kSmallRequest);
    auto body = bulwark::api::bedrock::converse::encode_request(*req, "anthropic.claude-3-5-sonnet-20240620-v1:0");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateSmallRequestOpenAIToConverse);

const std::string kAnthropicAnswer =
    R"({"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hello! I am a mock model answering your request briefly."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":16}})";

const std::string kConverseAnswer =
    R"({"output":{"message":{"role":"assistant","content":[{"text":"Hello! I am a mock model answering your request briefly."}]}},"stopReason":"end_turn","usage":{"inputTokens":25,"outputTokens":16,"totalTokens":41},"metrics":{"latencyMs":120}})";

// The upstream's non-streamed answer -> the OpenAI chat.completion the caller gets.
void BM_TranslateAnswerAnthropicToOpenAI(benchmark::State& state) {
  for (auto _ : state) {
    auto resp = bulwark::api::anthropic::decode_response(kAnthropicAnswer);
    auto body = bulwark::api::openai::encode_response(*resp, 42);
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateAnswerAnthropicToOpenAI);

void BM_TranslateAnswerConverseToOpenAI(benchmark::State& state) {
  for (auto _ : state) {
    auto resp = bulwark::api::bedrock::converse::decode_response(kConverseAnswer);
    auto body = bulwark::api::openai::encode_response(*resp, 42);
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_TranslateAnswerConverseToOpenAI);

std::vector<std::string> anthropic_stream(int deltas) {
  std::vector<std::string> s = {
      R"({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":250,"output_tokens":1}}})",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"};
  for (int i = 0; i < deltas; ++i)
    s.push_back(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the flight leaves"}})");
  s.push_back(R"({"type":"content_block_stop","index":0})");
  s.push_back(R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":600}})");
  s.push_back(R"({"type":"message_stop"})");
  return s;
}

void BM_TranslateStreamAnthropicToOpenAI200Deltas(benchmark::State& state) {
  const std::vector<std::string> events = anthropic_stream(200);
  std::vector<cn::StreamEvent> canonical;
  std::string out;
  for (auto _ : state) {
    bulwark::api::anthropic::StreamDecoder decoder;
    bulwark::api::openai::StreamEncoder encoder({.id = "msg_01", .model = "claude", .created = 1, .include_usage = true, .id_seed = 0});
    out.clear();
    for (const std::string& e : events) {
      canonical.clear();
      (void)decoder.feed(e, canonical);
      for (const cn::StreamEvent& c : canonical) encoder.encode(c, out);
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_TranslateStreamAnthropicToOpenAI200Deltas);

// ConverseStream event payloads (the binary framing is bedrock_bench's): 200 text deltas.
void BM_TranslateStreamConverseToOpenAI200Deltas(benchmark::State& state) {
  std::vector<std::pair<std::string, std::string>> events = {{"messageStart", R"({"role":"assistant"})"}};
  for (int i = 0; i < 200; ++i) events.emplace_back("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":" the flight leaves"}})");
  events.emplace_back("contentBlockStop", R"({"contentBlockIndex":0})");
  events.emplace_back("messageStop", R"({"stopReason":"end_turn"})");
  events.emplace_back("metadata", R"({"usage":{"inputTokens":250,"outputTokens":600,"totalTokens":850},"metrics":{"latencyMs":812}})");
  std::vector<cn::StreamEvent> canonical;
  std::string out;
  for (auto _ : state) {
    bulwark::api::bedrock::converse::StreamDecoder decoder;
    bulwark::api::openai::StreamEncoder encoder({.id = "req-1", .model = "claude", .created = 1, .include_usage = true, .id_seed = 0});
    out.clear();
    for (const auto& [type, payload] : events) {
      canonical.clear();
      (void)decoder.feed(type, payload, canonical);
      for (const cn::StreamEvent& c : canonical) encoder.encode(c, out);
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_TranslateStreamConverseToOpenAI200Deltas);

}  // namespace
