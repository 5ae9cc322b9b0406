// Micro-benchmarks of the routing policy (registrations only; the bench/micro target
// supplies main). Budget: the whole decision for a 2,000-char prompt within ~10 us plus
// the scorer (docs/routing.md).
#include <benchmark/benchmark.h>

#include <map>
#include <optional>
#include <string>

#include "core/random.hpp"
#include "router/balancer.hpp"
#include "router/policy.hpp"

namespace {

using namespace bulwark;
using namespace bulwark::router;

std::string prompt_of(std::size_t chars) {
  const std::string para =
      "A company's quarterly revenue rose 12.5% to $4,310,000 while operating costs fell by a third. "
      "Which of the following best explains the change in the firm's marginal cost curve, assuming "
      "the elasticity of demand is -1.8 and fixed costs remain at 250,000 per quarter? ";
  std::string p;
  while (p.size() < chars) p += para;
  p.resize(chars);
  return p;
}

// A realistic router: five rules that do not match the benchmark prompt (so all are
// evaluated, including two regular expressions over the whole message), then the score.
config::RouterSettings settings() {
  config::RouterSettings s;
  s.tiers = {"cheap", "strong"};
  s.complexity = true;
  s.thresholds = {0.55};
  auto add = [&](std::string name, void (*set)(config::RouteCondition&)) {
    config::RouteRule r;
    r.name = std::move(name);
    r.tier = 1;
    set(r.when);
    s.rules.push_back(std::move(r));
  };
  add("tools", [](config::RouteCondition& c) { c.tools = true; });
  add("vip", [](config::RouteCondition& c) {
    c.headers.push_back({"x-customer-tier", {.equals = "gold", .matches = std::nullopt}});
  });
  add("long", [](config::RouteCondition& c) { c.input_tokens.gt = 8000; });
  add("legal", [](config::RouteCondition& c) {
    c.last_user_message = config::TextMatch{.equals = std::nullopt, .matches = "(?i)\\b(contract|indemnif|liabilit)"};
  });
  add("code", [](config::RouteCondition& c) {
    c.last_user_message = config::TextMatch{.equals = std::nullopt, .matches = "```|\\bdef |#include"};
  });
  s.objectives[static_cast<int>(Objective::cost)].shift = 0.15;
  return s;
}

const RoutingPolicy* policy() {
  static const std::optional<RoutingPolicy> p = []() -> std::optional<RoutingPolicy> {
    auto built = RoutingPolicy::build("auto", settings());
    if (!built) return std::nullopt;
    return std::move(*built);
  }();
  return p ? &*p : nullptr;
}

void BM_Decide(benchmark::State& state) {
  const RoutingPolicy* p = policy();
  if (!p) {
    state.SkipWithError("policy/weights not available");
    return;
  }
  const std::string text = prompt_of(static_cast<std::size_t>(state.range(0)));
  std::map<std::string, std::string, std::less<>> headers{{"content-type", "application/json"}};
  auto lookup = [&headers](std::string_view n) -> std::optional<std::string_view> {
    auto it = headers.find(n);
    if (it == headers.end()) return std::nullopt;
    return std::string_view(it->second);
  };
  RequestFeatures f;
  f.header = lookup;
  f.last_user_message = text;
  f.input_tokens = text.size() / 4;
  for (auto _ : state) benchmark::DoNotOptimize(p->decide(f, Objective::cost));
}
BENCHMARK(BM_Decide)->Arg(200)->Arg(2000);

// The same 2,000 chars, the whole path: features from the request body, then decide.
void BM_ExtractAndDecide(benchmark::State& state) {
  const RoutingPolicy* p = policy();
  if (!p) {
    state.SkipWithError("policy/weights not available");
    return;
  }
  std::string body = R"({"model":"auto","messages":[{"role":"system","content":"You are a helpful analyst."},)"
                     R"({"role":"user","content":")" +
                     prompt_of(2000) + R"("}],"max_tokens":512,"user":"u-1","metadata":{"project":"p"}})";
  body.reserve(body.size() + 64);
  for (auto _ : state) {
    auto x = extract_request_features(body);
    const RequestFeatures f = RequestFeatures::from(*x);
    benchmark::DoNotOptimize(p->decide(f));
  }
}
BENCHMARK(BM_ExtractAndDecide);

void BM_ExtractOnly(benchmark::State& state) {
  std::string body = R"({"model":"auto","messages":[{"role":"user","content":")" + prompt_of(2000) + R"("}]})";
  body.reserve(body.size() + 64);
  for (auto _ : state) benchmark::DoNotOptimize(extract_request_features(body));
}
BENCHMARK(BM_ExtractOnly);

void BM_RulesOnly(benchmark::State& state) {
  // A rule that matches first: no scorer pass.
  config::RouterSettings s = settings();
  config::RouteRule r;
  r.name = "all";
  r.tier = 0;
  s.rules.insert(s.rules.begin(), r);
  auto p = RoutingPolicy::build("auto", s);
  if (!p) {
    state.SkipWithError("policy/weights not available");
    return;
  }
  const std::string text = prompt_of(2000);
  RequestFeatures f;
  f.last_user_message = text;
  for (auto _ : state) benchmark::DoNotOptimize(p->decide(f));
}
BENCHMARK(BM_RulesOnly);

// Every rule evaluated (none matches), no scorer: the policy's own cost per decision.
void BM_RulesNoMatchNoScorer(benchmark::State& state) {
  config::RouterSettings s = settings();
  s.complexity = false;
  s.thresholds.clear();
  s.objectives = {};
  auto p = RoutingPolicy::build("auto", s);
  if (!p) {
    state.SkipWithError(p.error().message.c_str());
    return;
  }
  const std::string text = prompt_of(static_cast<std::size_t>(state.range(0)));
  std::map<std::string, std::string, std::less<>> headers{{"content-type", "application/json"}};
  auto lookup = [&headers](std::string_view n) -> std::optional<std::string_view> {
    auto it = headers.find(n);
    if (it == headers.end()) return std::nullopt;
    return std::string_view(it->second);
  };
  RequestFeatures f;
  f.header = lookup;
  f.last_user_message = text;
  f.input_tokens = text.size() / 4;
  for (auto _ : state) benchmark::DoNotOptimize(p->decide(f));
}
BENCHMARK(BM_RulesNoMatchNoScorer)->Arg(200)->Arg(2000);

void BM_Balancer(benchmark::State& state) {
  const auto strategy = static_cast<config::Balancing>(state.range(0));
  std::vector<TargetView> t(4);
  for (std::size_t i = 0; i < t.size(); ++i) {
    t[i].weight = 1.0 + static_cast<double>(i);
    t[i].ewma_ms = 100.0 * static_cast<double>(i + 1);
    t[i].in_flight = static_cast<std::uint32_t>(i);
    t[i].cost = static_cast<double>(4 - i);
    t[i].headroom = 0.25 * static_cast<double>(i + 1);
  }
  FastRandom rng(1);
  std::vector<std::uint32_t> out;
  out.reserve(8);
  for (auto _ : state) {
    order_targets(strategy, t, rng, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(config::to_string(strategy)));
}
BENCHMARK(BM_Balancer)->DenseRange(0, 4);

}  // namespace
