#include "pipeline/runtime.hpp"

#include <gtest/gtest.h>

namespace cfg = bulwark::config;
namespace p = bulwark::pipeline;

namespace {
std::shared_ptr<const cfg::Config> load(std::string_view yaml) {
  auto r = cfg::load_string(yaml, [](std::string_view) { return std::optional<std::string>{}; });
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().front().to_string());
  return *r;
}
}  // namespace

TEST(Runtime, FlattensFallbackChainsDepthFirstEachModelOnce) {
  auto rt = p::Runtime::build(load(R"(providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models:
  a: {targets: [{provider: p, model: a1}, {provider: p, model: a2}], fallbacks: [b, c]}
  b: {targets: [{provider: p, model: b1}], fallbacks: [d]}
  c: {targets: [{provider: p, model: c1}], fallbacks: [d]}
  d: {targets: [{provider: p, model: d1}]}
)"));
  ASSERT_TRUE(rt.has_value());
  const p::RoutePlan* plan = (*rt)->route("a");
  ASSERT_NE(plan, nullptr);
  std::vector<std::string> order;
  for (const auto& m : plan->chain) order.push_back(m.model->name);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "d", "c"}));
  EXPECT_EQ(plan->chain[0].targets.size(), 2u);
  EXPECT_EQ((*rt)->route("nope"), nullptr);
}

TEST(Runtime, ResolvesTimeoutsPerTargetAndListsModels) {
  auto rt = p::Runtime::build(load(R"(timeouts: {connect: 1s, total: 1m}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1", timeouts: {first_token: 7s}}}
models:
  m:
    timeouts: {idle: 3s}
    targets: [{provider: p, model: x, timeouts: {connect: 250ms}}]
)"));
  ASSERT_TRUE(rt.has_value());
  const auto& t = (*rt)->route("m")->chain[0].targets[0].timeouts;
  EXPECT_EQ(t.connect, std::chrono::milliseconds(250));
  EXPECT_EQ(t.first_token, std::chrono::seconds(7));
  EXPECT_EQ(t.idle, std::chrono::seconds(3));
  EXPECT_EQ(t.total, std::chrono::minutes(1));
  EXPECT_NE((*rt)->models_json().find("\"id\":\"m\""), std::string::npos);
}

TEST(Runtime, BuildsVerifyingTlsContextsForHttpsProviders) {
  auto rt = p::Runtime::build(load(R"(providers: {p: {kind: openai, base_url: "https://api.example.com/v1"}}
models: {m: {targets: [{provider: p, model: x}]}}
)"));
  ASSERT_TRUE(rt.has_value());
  EXPECT_NE((*rt)->route("m")->chain[0].targets[0].tls, nullptr);
}
