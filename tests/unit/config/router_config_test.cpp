// The `router:` and `load_balancing:` sections of the configuration (docs/configuration.md).
#include <gtest/gtest.h>

#include <string>

#include "config/config.hpp"

namespace cfg = bulwark::config;

namespace {

const std::string kHead = R"(providers:
  p:
    kind: openai
    base_url: http://127.0.0.1:9/v1
models:
  cheap:
    targets: [{provider: p, model: small}]
  strong:
    targets: [{provider: p, model: big}]
)";

cfg::LoadResult load(const std::string& tail) { return cfg::load_string(kHead + tail, [](std::string_view) { return std::nullopt; }); }

// The first error's text and line ("" / 0 when the file loaded).
std::string first_error(const cfg::LoadResult& r) { return r ? "" : r.error().front().message; }
int first_line(const cfg::LoadResult& r) { return r ? 0 : r.error().front().line; }

TEST(RouterConfig, FullRouterParses) {
  auto r = load(R"(  auto:
    router:
      tiers: [cheap, strong]
      rules:
        - name: has-tools
          when: {tools: true}
          tier: strong
        - name: vip
          when:
            header: {name: X-Customer-Tier, equals: gold}
            metadata: [{key: project, matches: "^legal-"}]
            user: "^vip-"
            key: ["team-a-*", "svc-?"]
            team: research
            input_tokens: {gt: 100, lt: 9000}
            max_tokens: {gt: 10}
            context_window: {gt: 4000}
            last_user_message: {matches: "(?i)contract"}
            images: false
            objective: [quality, balanced]
          tier: strong
        - name: catch-all
          tier: cheap
      complexity:
        thresholds: [0.55]
      objectives:
        cost: {shift: 0.15}
        quality: {shift: -0.15}
        speed: {tier: cheap}
      default_objective: cost
)");
  ASSERT_TRUE(r) << r.error().front().to_string();
  const cfg::Model* m = (*r)->find_model("auto");
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->router);
  EXPECT_TRUE(m->targets.empty());
  const cfg::RouterSettings& rs = *m->router;
  EXPECT_EQ(rs.tiers, (std::vector<std::string>{"cheap", "strong"}));
  ASSERT_EQ(rs.rules.size(), 3u);
  EXPECT_EQ(rs.rules[0].name, "has-tools");
  EXPECT_EQ(rs.rules[0].when.tools, true);
  EXPECT_EQ(rs.rules[0].tier, 1u);
  const cfg::RouteCondition& c = rs.rules[1].when;
  ASSERT_EQ(c.headers.size(), 1u);
  EXPECT_EQ(c.headers[0].name, "x-customer-tier");  // lower-cased
  EXPECT_EQ(c.headers[0].match.equals, "gold");
  ASSERT_EQ(c.metadata.size(), 1u);
  EXPECT_EQ(c.metadata[0].key, "project");
  EXPECT_EQ(c.metadata[0].match.matches, "^legal-");
  ASSERT_TRUE(c.user);
  EXPECT_EQ(c.user->matches, "^vip-");
  EXPECT_EQ(c.keys, (std::vector<std::string>{"team-a-*", "svc-?"}));
  EXPECT_EQ(c.teams, (std::vector<std::string>{"research"}));
  EXPECT_EQ(c.input_tokens.gt, 100);
  EXPECT_EQ(c.input_tokens.lt, 9000);
  EXPECT_EQ(c.max_tokens.gt, 10);
  EXPECT_EQ(c.context_window.gt, 4000);
  ASSERT_TRUE(c.last_user_message);
  EXPECT_EQ(c.last_user_message->matches, "(?i)contract");
  EXPECT_EQ(c.images, false);
  EXPECT_EQ(c.objectives, (std::vector<std::string>{"quality", "balanced"}));
  EXPECT_EQ(rs.rules[2].tier, 0u);
  EXPECT_TRUE(rs.rules[2].when.headers.empty());
  EXPECT_TRUE(rs.complexity);
  EXPECT_EQ(rs.thresholds, std::vector<double>{0.55});
  EXPECT_DOUBLE_EQ(rs.objectives[static_cast<int>(cfg::RouteObjective::cost)].shift, 0.15);
  EXPECT_DOUBLE_EQ(rs.objectives[static_cast<int>(cfg::RouteObjective::quality)].shift, -0.15);
  EXPECT_EQ(rs.objectives[static_cast<int>(cfg::RouteObjective::speed)].tier, 0u);
  EXPECT_EQ(rs.default_objective, cfg::RouteObjective::cost);
  EXPECT_GT(rs.rules[1].line, 0);
}

TEST(RouterConfig, StrongFractionAndThreeTiers) {
  auto r = load(R"(  mid:
    targets: [{provider: p, model: mid}]
  auto:
    router:
      tiers: [cheap, mid, strong]
      complexity: {strong_fraction: [0.6, 0.2], weights: /tmp/x.weights}
)");
  ASSERT_TRUE(r) << r.error().front().to_string();
  const auto& rs = *(*r)->find_model("auto")->router;
  EXPECT_EQ(rs.strong_fractions, (std::vector<double>{0.6, 0.2}));
  EXPECT_EQ(rs.weights, "/tmp/x.weights");
}

TEST(RouterConfig, RulesOnlyRouterWithDefaultTier) {
  auto r = load(R"(  auto:
    router:
      tiers: [cheap, strong]
      rules: [{name: long, when: {input_tokens: {gt: 8000}}, tier: strong}]
      default_tier: cheap
)");
  ASSERT_TRUE(r) << r.error().front().to_string();
  EXPECT_FALSE((*r)->find_model("auto")->router->complexity);
}

struct BadCase {
  const char* name;
  std::string yaml;
  std::string message_part;
  int line;  // 0: not checked
};

class RouterConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(RouterConfigErrors, Rejected) {
  const BadCase& c = GetParam();
  auto r = load(c.yaml);
  ASSERT_FALSE(r) << c.name;
  bool found = false;
  for (const auto& e : r.error())
    if (e.message.find(c.message_part) != std::string::npos) {
      found = true;
      if (c.line) {
        EXPECT_EQ(e.line, c.line) << e.to_string();
      }
      EXPECT_GT(e.column, 0) << e.to_string();
    }
  EXPECT_TRUE(found) << c.name << ": got " << first_error(r) << " at line " << first_line(r);
}

// kHead has 9 lines; the tail starts on line 10.
INSTANTIATE_TEST_SUITE_P(
    All, RouterConfigErrors,
    ::testing::Values(
        BadCase{"unknown tier", "  auto:\n    router:\n      tiers: [cheap, nope]\n      default_tier: cheap\n",
                "router tier 'nope' is not a model", 12},
        BadCase{"tier is a router",
                "  auto:\n    router: {tiers: [cheap]}\n  auto2:\n    router:\n      tiers: [auto]\n",
                "is itself a routed model", 14},
        BadCase{"bad regex",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules:\n        - name: r\n"
                "          when: {last_user_message: \"(unclosed\"}\n          tier: strong\n",
                "regular expression does not compile", 15},
        BadCase{"bad header regex",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules:\n        - name: r\n"
                "          when: {header: {name: x-a, matches: \"[z-a]\"}}\n          tier: strong\n",
                "regular expression does not compile", 15},
        BadCase{"threshold count",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [0.3, 0.6]}\n",
                "needs 1 value(s) for 2 tiers", 13},
        BadCase{"threshold order",
                "  mid:\n    targets: [{provider: p, model: m}]\n  auto:\n    router:\n      tiers: [cheap, mid, strong]\n"
                "      complexity: {thresholds: [0.6, 0.3]}\n",
                "strictly ascending", 15},
        BadCase{"threshold range",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [1.5]}\n",
                "numbers from 0 to 1", 13},
        BadCase{"both threshold kinds",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [0.5], strong_fraction: 0.5}\n",
                "exactly one of 'thresholds' and 'strong_fraction'", 13},
        BadCase{"rule names unknown tier",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, tier: huge}]\n",
                "'huge' is not one of this router's tiers", 13},
        BadCase{"rule without tier", "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r}]\n",
                "needs 'tier'", 13},
        BadCase{"bad rule name",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: \"a b\", tier: cheap}]\n",
                "name must be", 13},
        BadCase{"duplicate rule name",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules:\n        - {name: a, tier: cheap}\n"
                "        - {name: a, tier: strong}\n",
                "used by an earlier rule", 15},
        BadCase{"unknown condition",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, when: {colour: red}, tier: cheap}]\n",
                "unknown key 'colour'", 13},
        BadCase{"range needs a bound",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, when: {input_tokens: {}}, tier: cheap}]\n",
                "needs 'gt' or 'lt'", 13},
        BadCase{"range inverted",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, when: {max_tokens: {gt: 9, lt: 3}}, tier: cheap}]\n",
                "gt must be less than lt", 13},
        BadCase{"match needs one",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, when: {metadata: {key: k}}, tier: cheap}]\n",
                "exactly one of 'equals' and 'matches'", 13},
        BadCase{"unknown objective",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [0.5]}\n"
                "      objectives: {cheapest: {shift: 0.1}}\n",
                "unknown objective 'cheapest'", 14},
        BadCase{"objective shift and tier",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [0.5]}\n"
                "      objectives: {cost: {shift: 0.1, tier: cheap}}\n",
                "exactly one of 'shift' and 'tier'", 14},
        BadCase{"shift without complexity",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      objectives: {cost: {shift: 0.1}}\n",
                "has no 'complexity'", 13},
        BadCase{"default objective",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      default_objective: fastest\n",
                "default_objective must be", 13},
        BadCase{"rule objective",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      rules: [{name: r, when: {objective: fast}, tier: cheap}]\n",
                "objective must be balanced", 13},
        BadCase{"router with targets",
                "  auto:\n    targets: [{provider: p, model: x}]\n    router: {tiers: [cheap]}\n",
                "a routed model has tiers, not targets", 11},
        BadCase{"router with fallbacks",
                "  auto:\n    fallbacks: [strong]\n    router: {tiers: [cheap]}\n",
                "a routed model's fallbacks are its tiers", 11},
        BadCase{"fallback to a router",
                "  auto:\n    router: {tiers: [cheap]}\n  other:\n    targets: [{provider: p, model: x}]\n    fallbacks: [auto]\n",
                "fallback 'auto' is a routed model", 14},
        BadCase{"duplicate tier", "  auto:\n    router: {tiers: [cheap, cheap]}\n", "names 'cheap' twice", 11},
        BadCase{"no tiers", "  auto:\n    router: {rules: []}\n", "tiers must be a non-empty list", 11},
        BadCase{"default_tier with complexity",
                "  auto:\n    router:\n      tiers: [cheap, strong]\n      complexity: {thresholds: [0.5]}\n      default_tier: cheap\n",
                "default_tier is only for routers without", 14},
        BadCase{"unknown strategy",
                "  x:\n    targets: [{provider: p, model: x}]\n    load_balancing: fastest\n",
                "must be weighted, least_in_flight, latency, cost or headroom", 12},
        BadCase{"cost without prices",
                "  x:\n    targets: [{provider: p, model: x}]\n    load_balancing: cost\n",
                "needs 'price' or 'cost_rank'", 0},
        BadCase{"balancing on a router",
                "  auto:\n    router: {tiers: [cheap]}\n    load_balancing: least_in_flight\n",
                "a routed model has no targets", 12},
        BadCase{"stale_after zero",
                "  x:\n    targets: [{provider: p, model: x}]\n    load_balancing: {strategy: headroom, stale_after: 0s}\n",
                "stale_after must be positive", 12},
        BadCase{"price needs a field",
                "  x:\n    targets: [{provider: p, model: x, price: {}}]\n", "price needs 'input'", 11}),
    [](const ::testing::TestParamInfo<BadCase>& i) {
      std::string n = i.param.name;
      for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(LoadBalancingConfig, DefaultIsWeighted) {
  auto r = load("");
  ASSERT_TRUE(r) << first_error(r);
  EXPECT_EQ((*r)->find_model("cheap")->load_balancing.strategy, cfg::Balancing::weighted);
  EXPECT_FALSE((*r)->find_model("cheap")->router);
}

TEST(LoadBalancingConfig, StrategiesAndCostHints) {
  auto r = load(R"(  x:
    targets:
      - {provider: p, model: a, price: {input: 0.15, output: 0.6}}
      - {provider: p, model: b, cost_rank: 2}
    load_balancing: cost
  y:
    targets: [{provider: p, model: a}]
    load_balancing: {strategy: headroom, stale_after: 30s}
  z:
    targets: [{provider: p, model: a}]
    load_balancing: least_in_flight
  w:
    targets: [{provider: p, model: a}]
    load_balancing: latency
)");
  ASSERT_TRUE(r) << first_error(r) << " line " << first_line(r);
  const cfg::Model* x = (*r)->find_model("x");
  EXPECT_EQ(x->load_balancing.strategy, cfg::Balancing::cost);
  ASSERT_TRUE(x->targets[0].price);
  EXPECT_DOUBLE_EQ(x->targets[0].price->input, 0.15);
  EXPECT_DOUBLE_EQ(x->targets[0].price->output, 0.6);
  EXPECT_EQ(x->targets[1].cost_rank, 2.0);
  const cfg::Model* y = (*r)->find_model("y");
  EXPECT_EQ(y->load_balancing.strategy, cfg::Balancing::headroom);
  EXPECT_EQ(y->load_balancing.stale_after, std::chrono::seconds(30));
  EXPECT_EQ((*r)->find_model("z")->load_balancing.strategy, cfg::Balancing::least_in_flight);
  EXPECT_EQ((*r)->find_model("w")->load_balancing.strategy, cfg::Balancing::latency);
  EXPECT_EQ(cfg::to_string(cfg::Balancing::headroom), "headroom");
}

TEST(RouterConfig, ObjectiveNames) {
  for (auto o : {cfg::RouteObjective::balanced, cfg::RouteObjective::cost, cfg::RouteObjective::speed,
                 cfg::RouteObjective::quality})
    EXPECT_EQ(cfg::parse_route_objective(cfg::to_string(o)), o);
  EXPECT_FALSE(cfg::parse_route_objective("Cost"));
  EXPECT_FALSE(cfg::parse_route_objective(""));
}

}  // namespace
