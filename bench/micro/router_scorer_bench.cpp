// Micro-benchmarks of the smart-routing complexity scorer (registrations only; the
// bench/micro target supplies main). Budget: <= 10 us per decision for a 2,000-char prompt.
#include <benchmark/benchmark.h>

#include <optional>
#include <string>

#include "router/scorer/scorer.hpp"

namespace {

using bulwark::router::ComplexityScorer;

const ComplexityScorer* shipped_scorer() {
  static const std::optional<ComplexityScorer> scorer = []() -> std::optional<ComplexityScorer> {
    const auto path = bulwark::router::locate_weights();
    if (!path) return std::nullopt;
    auto s = ComplexityScorer::load(*path);
    if (!s) return std::nullopt;
    return std::move(*s);
  }();
  return scorer ? &*scorer : nullptr;
}

// Realistic mixed prose, numbers and punctuation, cut to `chars` bytes.
std::string prompt_of(std::size_t chars, bool multiple_choice) {
  const std::string para =
      "A company's quarterly revenue rose 12.5% to $4,310,000 while operating costs fell by a third. "
      "Which of the following best explains the change in the firm's marginal cost curve, assuming "
      "the elasticity of demand is -1.8 and fixed costs remain at 250,000 per quarter? ";
  std::string p;
  while (p.size() < chars) p += para;
  p.resize(chars);
  if (multiple_choice) p += "\nA. Economies of scale\nB. A price ceiling\nC. Lower input prices\nD. None\nAnswer:";
  return p;
}

void BM_ScoreFreeForm(benchmark::State& state) {
  const ComplexityScorer* s = shipped_scorer();
  if (s == nullptr) {
    state.SkipWithError("shipped router weights not found");
    return;
  }
  const std::string p = prompt_of(static_cast<std::size_t>(state.range(0)), false);
  for (auto _ : state) benchmark::DoNotOptimize(s->score(p));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(p.size()));
}
BENCHMARK(BM_ScoreFreeForm)->Arg(200)->Arg(2000)->Arg(8000);

void BM_ScoreMultipleChoice(benchmark::State& state) {
  const ComplexityScorer* s = shipped_scorer();
  if (s == nullptr) {
    state.SkipWithError("shipped router weights not found");
    return;
  }
  const std::string p = prompt_of(static_cast<std::size_t>(state.range(0)), true);
  for (auto _ : state) benchmark::DoNotOptimize(s->score(p));
}
BENCHMARK(BM_ScoreMultipleChoice)->Arg(500)->Arg(2000);

void BM_Explain(benchmark::State& state) {
  const ComplexityScorer* s = shipped_scorer();
  if (s == nullptr) {
    state.SkipWithError("shipped router weights not found");
    return;
  }
  const std::string p = prompt_of(2000, false);
  for (auto _ : state) benchmark::DoNotOptimize(s->explain(p, 10));
}
BENCHMARK(BM_Explain);

}  // namespace
