// The gateway's own per-request and per-event work, without the network: decoding the
// caller's request, rewriting it for the upstream, reading usage, and the stream relay's
// per-event inspection.
#include <benchmark/benchmark.h>

#include <string>

#include "api/openai/chat.hpp"
#include "api/openai/text.hpp"
#include "providers/openai/openai.hpp"

namespace {

const std::string kSmallRequest =
    R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in one word."}],"temperature":0.2,"max_tokens":64})";

void BM_OpenAIDecodeChatRequest(benchmark::State& state) {
  for (auto _ : state) {
    auto r = bulwark::api::openai::decode_chat_request(kSmallRequest);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_OpenAIDecodeChatRequest);

void BM_OpenAIUpstreamBody(benchmark::State& state) {
  auto r = bulwark::api::openai::decode_chat_request(kSmallRequest);
  for (auto _ : state) {
    auto body = bulwark::api::openai::upstream_body(*r, "gpt-4o-mini-2024-07-18");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_OpenAIUpstreamBody);

void BM_OpenAIReadUsage(benchmark::State& state) {
  const std::string answer =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":2,"total_tokens":30}})";
  for (auto _ : state) benchmark::DoNotOptimize(bulwark::providers::openai::read_usage(answer));
}
BENCHMARK(BM_OpenAIReadUsage);

void BM_StreamEventSplitAndInspect(benchmark::State& state) {
  const std::string event =
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"finish_reason\":null}],\"usage\":null}\n\n";
  bulwark::providers::openai::SseSplitter splitter;
  for (auto _ : state) {
    splitter.feed(event, [](std::string_view e) { benchmark::DoNotOptimize(bulwark::providers::openai::inspect_event(e)); });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamEventSplitAndInspect);

// A guarded stream's content chunk, read and written back as the output policy does: one
// parse for all channels (DeltaChunk), against a reader and a writer each parsing the
// chunk (what the relay did before for a chunk with content only; reasoning and tool
// calls each took one parse more).
const std::string kContentChunk =
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,)"
    R"("delta":{"content":" the capital of France is Paris"},"logprobs":null,"finish_reason":null}]})";

void BM_GuardedChunkDeltaChunk(benchmark::State& state) {
  for (auto _ : state) {
    auto c = bulwark::api::openai::DeltaChunk::read(kContentChunk);
    c->content[0].text += ".";
    benchmark::DoNotOptimize(c->write());
  }
}
BENCHMARK(BM_GuardedChunkDeltaChunk);

void BM_GuardedChunkSeparateParses(benchmark::State& state) {
  namespace oa = bulwark::api::openai;
  for (auto _ : state) {
    auto texts = oa::delta_texts(kContentChunk);
    (*texts)[0].text += ".";
    benchmark::DoNotOptimize(oa::with_delta_texts(kContentChunk, *texts));
  }
}
BENCHMARK(BM_GuardedChunkSeparateParses);

}  // namespace
