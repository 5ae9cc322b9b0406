// Request-path governance budget is ~5 us at p50; these measure the policy share of it.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_bodies.hpp"
#include "policy/evaluate.hpp"
#include "policy/profile.hpp"
#include "policy/stream_redactor.hpp"

namespace {

using namespace bulwark::policy;
using bulwark::bench::bench_profile;
using bulwark::bench::kBenchRequest;
using bulwark::bench::kMockAnswer;

// ~2 KB of ordinary prompt text: prose, a few numbers, dates and versions, no PII.
std::string clean_prompt() {
  const std::string para =
      "You are a helpful assistant for the finance team. Summarise the quarterly report "
      "below in five bullet points, keeping the tone neutral. In Q3 2024 revenue grew 12% "
      "to 4.2 million, driven by the enterprise tier; churn fell from 3.1% to 2.7% after "
      "the onboarding changes shipped in version 2.4.1 on 2024-07-15. Operating costs rose "
      "because of the new data centre lease and two senior hires in the platform group. ";
  std::string s;
  while (s.size() < 2048) s += para;
  s.resize(2048);
  return s;
}

std::string pii_prompt() {
  std::string s = clean_prompt();
  s.resize(1800);
  s += " Contact jane.doe@example.com or +1 (415) 555-2671; the card on file is "
       "4111 1111 1111 1111 and the office network is 10.20.30.40. Thanks!";
  return s;
}

PolicyProfile make_profile(bool with_patterns) {
  PolicySpec spec;
  spec.id = "default";
  for (PiiKind k : kAllPiiKinds) spec.detectors[k] = Action::redact;
  spec.injection = Action::flag;
  spec.max_input_tokens = 100000;
  spec.model_allow = {"gpt-4o*", "anthropic.*"};
  if (with_patterns) {
    spec.deny = {{"codename", R"((?i)project\s+nightingale)", Action::block}};
    spec.allow = {R"(@acme\.com$)"};
  }
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

void run_input(benchmark::State& state, const std::string& prompt, bool with_patterns) {
  const PolicyProfile profile = make_profile(with_patterns);
  const RequestFacts facts{"gpt-4o-mini", 600, 1024};
  std::vector<std::string> parts(1);
  for (auto _ : state) {
    parts[0] = prompt;  // redaction rewrites in place
    PolicyDecision d = evaluate_input(profile, parts, facts);
    benchmark::DoNotOptimize(d);
  }
}

void BM_EvaluateInput_2KB_NoPii(benchmark::State& state) { run_input(state, clean_prompt(), false); }
void BM_EvaluateInput_2KB_NoPii_DenyAllow(benchmark::State& state) {
  run_input(state, clean_prompt(), true);
}
void BM_EvaluateInput_2KB_WithPii(benchmark::State& state) { run_input(state, pii_prompt(), false); }

// Copying the prompt into the part is part of each iteration above; this is that cost alone.
void BM_CopyPrompt_2KB(benchmark::State& state) {
  const std::string prompt = clean_prompt();
  std::vector<std::string> parts(1);
  for (auto _ : state) {
    parts[0] = prompt;
    benchmark::DoNotOptimize(parts[0].data());
  }
}

// Cost per 20-byte delta of a streamed 2 KB answer containing some PII.
void BM_StreamRedactor_20ByteDelta(benchmark::State& state) {
  const PolicyProfile profile = make_profile(false);
  const std::string answer = pii_prompt();
  constexpr std::size_t kDelta = 20;
  std::string out;
  std::size_t deltas = 0;
  for (auto _ : state) {
    StreamRedactor r(profile);
    out.clear();
    for (std::size_t i = 0; i < answer.size(); i += kDelta)
      r.feed(std::string_view(answer).substr(i, kDelta), out);
    r.finish(out);
    deltas += (answer.size() + kDelta - 1) / kDelta;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["time_per_delta"] = benchmark::Counter(
      static_cast<double>(deltas), benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
      benchmark::Counter::kIs1000);
}

// The raw fast paths on bench/run.sh's request and bulwark-mock's answer (what the
// governed scenario pays per request), and on a 2 KB prompt with newlines (escapes).
// Times `raw()`, which must decide (a raw path that gave up would time the wrong thing).
template <class Raw>
void run_raw(benchmark::State& state, Raw raw) {
  for (auto _ : state) {
    auto d = raw();
    if (!d) state.SkipWithError("the raw path did not decide");
    benchmark::DoNotOptimize(d);
  }
}

void BM_EvaluateInputRaw_BenchRequest(benchmark::State& state) {
  const PolicyProfile profile = bench_profile();
  const RequestFacts facts{"bench", 12, 16};
  run_raw(state, [&] { return evaluate_input_raw(profile, kBenchRequest, facts); });
}

void BM_EvaluateOutputRaw_MockAnswer(benchmark::State& state) {
  const PolicyProfile profile = bench_profile();
  run_raw(state, [&] { return evaluate_output_raw(profile, kMockAnswer); });
}

void BM_EvaluateInputRaw_2KB_NoPii_Newlines(benchmark::State& state) {
  const PolicyProfile profile = bench_profile();
  std::string prompt = clean_prompt();
  for (std::size_t i = 300; i < prompt.size(); i += 400) prompt[i] = '\n';
  std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":")";
  for (char c : prompt) {
    if (c == '\n') body += "\\n";
    else body += c;
  }
  body += R"("}],"max_tokens":256})";
  const RequestFacts facts{"gpt-4o-mini", 600, 256};
  run_raw(state, [&] { return evaluate_input_raw(profile, body, facts); });
}

// The same, over 512 different requests and answers of the same shape (random words,
// some with digits), so that branch predictors cannot learn one body by heart as they do
// above; closer to a gateway, where other work runs between two requests.
void BM_EvaluateRaw_VariedRequestAndAnswer(benchmark::State& state) {
  const PolicyProfile profile = bench_profile();
  const RequestFacts facts{"bench", 12, 16};
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  const auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const auto words = [&](std::size_t n) {
    static const char* const kWords[] = {"say", "hello", "in", "one", "short", "sentence", "You", "are", "terse",
                                         "the", "Report", "w12", "Q3", "a", "of", "summary", "please", "I"};
    std::string t;
    for (std::size_t i = 0; i < n; ++i) {
      if (i) t += ' ';
      t += kWords[next() % std::size(kWords)];
    }
    return t + ".";
  };
  std::vector<std::string> requests, answers;
  for (int i = 0; i < 512; ++i) {
    requests.push_back(R"({"model":"bench","messages":[{"role":"system","content":")" + words(2 + next() % 4) +
                       R"("},{"role":"user","content":")" + words(4 + next() % 8) + R"("}],"max_tokens":16,"temperature":0})");
    answers.push_back(R"({"id":"chatcmpl-b3f2af6d0fc710c5","object":"chat.completion","created":1795554675,"model":"bench",)"
                      R"("choices":[{"index":0,"message":{"role":"assistant","content":")" + words(6 + next() % 12) +
                      R"(","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,)"
                      R"("completion_tokens":16,"total_tokens":25},"system_fingerprint":"fp_bulwark_mock"})");
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto in = evaluate_input_raw(profile, requests[i], facts);
    auto out = evaluate_output_raw(profile, answers[i]);
    if (!in || !out) state.SkipWithError("the raw path did not decide");
    benchmark::DoNotOptimize(in);
    benchmark::DoNotOptimize(out);
    i = (i + 1) % requests.size();
  }
}

}  // namespace

BENCHMARK(BM_EvaluateInputRaw_BenchRequest);
BENCHMARK(BM_EvaluateRaw_VariedRequestAndAnswer);
BENCHMARK(BM_EvaluateOutputRaw_MockAnswer);
BENCHMARK(BM_EvaluateInputRaw_2KB_NoPii_Newlines);
BENCHMARK(BM_EvaluateInput_2KB_NoPii);
BENCHMARK(BM_EvaluateInput_2KB_NoPii_DenyAllow);
BENCHMARK(BM_EvaluateInput_2KB_WithPii);
BENCHMARK(BM_CopyPrompt_2KB);
BENCHMARK(BM_StreamRedactor_20ByteDelta);
