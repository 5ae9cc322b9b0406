// Bedrock wire primitives on the request path: signing one Converse request, and decoding a
// ConverseStream answer of 20 event-stream messages.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "providers/bedrock/eventstream.hpp"
#include "providers/bedrock/sigv4.hpp"

namespace {

namespace bb = bulwark::bedrock;
namespace es = bulwark::bedrock::eventstream;

const std::string kBody =
    R"({"messages":[{"role":"user","content":[{"text":"Summarize the following text in three bullet points. )" +
    std::string(1500, 'x') + R"("}]}],"inferenceConfig":{"maxTokens":512,"temperature":0.2}})";

const std::vector<bb::HeaderField> kHeaders{
    {"host", "bedrock-runtime.us-east-1.amazonaws.com"},
    {"content-type", "application/json"},
    {"accept", "application/json"},
};

bb::SigningInput converse() {
  return {"POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", "", kHeaders, kBody};
}

const bb::Credentials kCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"};

void BM_SignConverse(benchmark::State& state) {
  auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    auto s = bb::sign(converse(), kCreds, "us-east-1", "bedrock", now);
    benchmark::DoNotOptimize(s.authorization);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(kBody.size()));
}
BENCHMARK(BM_SignConverse);

void BM_SignConverseCachedKey(benchmark::State& state) {
  auto now = std::chrono::system_clock::now();
  bb::SigningKeyCache cache;
  for (auto _ : state) {
    auto s = bb::sign(converse(), kCreds, "us-east-1", "bedrock", now, {}, &cache);
    benchmark::DoNotOptimize(s.authorization);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(kBody.size()));
}
BENCHMARK(BM_SignConverseCachedKey);

std::string converse_stream_20() {
  std::string out;
  auto add = [&](const es::Message& m) { (void)es::encode_to(m, out); };
  add(es::make_event("messageStart", R"({"role":"assistant"})"));
  for (int i = 0; i < 17; ++i)
    add(es::make_event("contentBlockDelta",
                       R"({"contentBlockIndex":0,"delta":{"text":"token )" + std::to_string(i) + R"( of the answer "}})"));
  add(es::make_event("messageStop", R"({"stopReason":"end_turn"})"));
  add(es::make_event("metadata", R"({"usage":{"inputTokens":412,"outputTokens":17,"totalTokens":429},"metrics":{"latencyMs":812}})"));
  return out;
}

// Slices of 1 KiB, roughly what one TLS record read hands over.
void BM_DecodeConverseStream20(benchmark::State& state) {
  const std::string stream = converse_stream_20();
  const std::size_t slice = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    es::Decoder d;
    std::size_t n = 0;
    for (std::size_t i = 0; i < stream.size(); i += slice) {
      d.feed(std::string_view(stream).substr(i, slice));
      while (true) {
        auto r = d.next();
        if (!r || !*r) break;
        benchmark::DoNotOptimize(**r);
        ++n;
      }
    }
    if (n != 20) state.SkipWithError("decoded the wrong number of messages");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(stream.size()));
}
BENCHMARK(BM_DecodeConverseStream20)->Arg(1024)->Arg(64 * 1024);

}  // namespace
