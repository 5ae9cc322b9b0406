// Request-path governance budget is ~5 us at p50; these measure the policy share of it.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "policy/evaluate.hpp"
#include "policy/profile.hpp"
#include "policy/stream_redactor.hpp"

namespace {

using namespace bulwark::policy;

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

}  // namespace

BENCHMARK(BM_EvaluateInput_2KB_NoPii);
BENCHMARK(BM_EvaluateInput_2KB_NoPii_DenyAllow);
BENCHMARK(BM_EvaluateInput_2KB_WithPii);
BENCHMARK(BM_CopyPrompt_2KB);
BENCHMARK(BM_StreamRedactor_20ByteDelta);
