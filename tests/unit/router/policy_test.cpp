// RoutingPolicy: rules (each predicate), thresholds, objectives, unhealthy tiers, header text.
#include "router/policy.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>

#include "router/scorer/features.hpp"

namespace bulwark::router {
namespace {

// A scorer whose score rises with the prompt's length: logistic(log1p(chars) - 4) for
// free-form prompts (about 0.26 at 20 characters, 0.97 at 2,000).
std::shared_ptr<const ComplexityScorer> length_scorer() {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.meta.thresholds = {{0.0, 0.9}, {0.5, 0.5}, {1.0, 0.1}};
  w.bias = -4;
  w.w.assign(kFeatureDim, 0.0f);
  w.w[FeatureExtractor::dense_index(Dense::log_chars, false)] = 1.0f;
  auto s = ComplexityScorer::from_weights(std::move(w));
  EXPECT_TRUE(s.has_value());
  return std::make_shared<const ComplexityScorer>(std::move(*s));
}

const std::string kShort = "What is 2+2?";  // 12 chars: score ~0.22
const std::string kLong(1500, 'x');          // score ~0.96

config::RouterSettings two_tiers() {
  config::RouterSettings s;
  s.tiers = {"cheap", "strong"};
  s.complexity = true;
  s.thresholds = {0.55};
  return s;
}

config::RouteCondition cond(void (*set)(config::RouteCondition&)) {
  config::RouteCondition c;
  set(c);
  return c;
}

config::RouteRule rule(std::string name, std::size_t tier, config::RouteCondition when = {}) {
  config::RouteRule r;
  r.name = std::move(name);
  r.tier = tier;
  r.when = std::move(when);
  return r;
}

RoutingPolicy build(const config::RouterSettings& s) {
  auto p = RoutingPolicy::build("auto", s, length_scorer());
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
  return std::move(*p);
}

// Features of a one-message request; the text is kept alive for the whole test run
// (RequestFeatures only views it).
RequestFeatures prompt(std::string_view text_in) {
  static std::deque<std::string> keep;
  const std::string& text = keep.emplace_back(text_in);
  RequestFeatures f;
  f.last_user_message = text;
  f.input_tokens = text.size() / 4;
  return f;
}

TEST(RoutingPolicy, ScoreBelowThresholdGoesCheapAboveGoesStrong) {
  const RoutingPolicy p = build(two_tiers());
  const Decision cheap = p.decide(prompt(kShort));
  EXPECT_EQ(cheap.tier, 0u);
  EXPECT_EQ(cheap.source, Decision::Source::score);
  EXPECT_NEAR(cheap.score, length_scorer()->score(kShort), 1e-12);
  EXPECT_DOUBLE_EQ(cheap.threshold, 0.55);
  EXPECT_EQ(cheap.objective, Objective::balanced);
  const Decision strong = p.decide(prompt(kLong));
  EXPECT_EQ(strong.tier, 1u);
  EXPECT_DOUBLE_EQ(strong.threshold, 0.55);
}

TEST(RoutingPolicy, HeaderText) {
  const RoutingPolicy p = build(two_tiers());
  const Decision d = p.decide(prompt(kShort));
  char expect[128];
  std::snprintf(expect, sizeof expect, "tier=cheap; score=%.3f; threshold=0.550; objective=balanced", d.score);
  EXPECT_EQ(d.header, expect);

  auto s = two_tiers();
  s.rules.push_back(rule("has-tools", 1, cond([](config::RouteCondition& c) { c.tools = true; })));
  const RoutingPolicy q = build(s);
  RequestFeatures f = prompt(kShort);
  f.has_tools = true;
  EXPECT_EQ(q.decide(f).header, "tier=strong; rule=has-tools");
}

TEST(RoutingPolicy, ThreeTiersUseEachThreshold) {
  auto s = two_tiers();
  s.tiers = {"small", "medium", "large"};
  const auto scorer = length_scorer();
  // Thresholds between the scores of 10, 100 and 1000 characters.
  const double s10 = scorer->score(std::string(10, 'a')), s100 = scorer->score(std::string(100, 'a')),
               s1000 = scorer->score(std::string(1000, 'a'));
  s.thresholds = {(s10 + s100) / 2, (s100 + s1000) / 2};
  const RoutingPolicy p = build(s);
  EXPECT_EQ(p.decide(prompt(std::string(10, 'a'))).tier, 0u);
  const Decision mid = p.decide(prompt(std::string(100, 'a')));
  EXPECT_EQ(mid.tier, 1u);
  EXPECT_DOUBLE_EQ(mid.threshold, s.thresholds[0]);  // the boundary it passed
  EXPECT_EQ(p.decide(prompt(std::string(1000, 'a'))).tier, 2u);
  EXPECT_EQ(p.failover_tiers(mid), (std::vector<std::size_t>{2}));
}

TEST(RoutingPolicy, ScoreEqualToThresholdGoesUp) {
  auto s = two_tiers();
  s.thresholds = {length_scorer()->score(kShort)};
  EXPECT_EQ(build(s).decide(prompt(kShort)).tier, 1u);
}

TEST(RoutingPolicy, ObjectivesShiftThresholdsOrFixTheTier) {
  auto s = two_tiers();
  const double mid_score = length_scorer()->score(std::string(60, 'a'));  // ~0.52
  s.thresholds = {mid_score + 0.05};
  s.objectives[static_cast<int>(Objective::cost)].shift = 0.3;
  s.objectives[static_cast<int>(Objective::quality)].shift = -0.1;
  s.objectives[static_cast<int>(Objective::speed)].tier = 0;
  const RoutingPolicy p = build(s);
  const auto f = prompt(std::string(60, 'a'));
  EXPECT_EQ(p.decide(f).tier, 0u);  // balanced: just below
  const Decision q = p.decide(f, Objective::quality);
  EXPECT_EQ(q.tier, 1u);
  EXPECT_NEAR(q.threshold, mid_score - 0.05, 1e-12);
  EXPECT_NE(q.header.find("objective=quality"), std::string::npos);
  EXPECT_EQ(p.decide(prompt(kLong), Objective::cost).tier, 1u);
  const auto f2 = prompt(std::string(300, 'a'));  // ~0.85 >= 0.57 but < 0.87
  EXPECT_EQ(p.decide(f2).tier, 1u);
  EXPECT_EQ(p.decide(f2, Objective::cost).tier, 0u);
  const Decision speed = p.decide(prompt(kLong), Objective::speed);
  EXPECT_EQ(speed.tier, 0u);
  EXPECT_EQ(speed.source, Decision::Source::objective);
  EXPECT_EQ(speed.header, "tier=cheap; objective=speed");
  EXPECT_EQ(p.thresholds(Objective::cost).size(), 1u);
  EXPECT_NEAR(p.thresholds(Objective::cost)[0], mid_score + 0.35, 1e-12);
}

TEST(RoutingPolicy, DefaultObjectiveApplies) {
  auto s = two_tiers();
  s.objectives[static_cast<int>(Objective::speed)].tier = 0;
  s.default_objective = Objective::speed;
  const RoutingPolicy p = build(s);
  EXPECT_EQ(p.decide(prompt(kLong)).tier, 0u);
  EXPECT_EQ(p.decide(prompt(kLong), Objective::balanced).tier, 1u);  // the request's wins
}

TEST(RoutingPolicy, StrongFractionUsesCalibration) {
  auto s = two_tiers();
  s.thresholds.clear();
  s.strong_fractions = {0.25};
  const RoutingPolicy p = build(s);
  ASSERT_EQ(p.thresholds(Objective::balanced).size(), 1u);
  EXPECT_NEAR(p.thresholds(Objective::balanced)[0], 0.7, 1e-12);  // between (0, .9) and (.5, .5)
}

TEST(RoutingPolicy, RulesFirstMatchWins) {
  auto s = two_tiers();
  s.rules.push_back(rule("first", 0, cond([](config::RouteCondition& c) { c.tools = true; })));
  s.rules.push_back(rule("second", 1, cond([](config::RouteCondition& c) { c.tools = true; })));
  const RoutingPolicy p = build(s);
  RequestFeatures f = prompt(kLong);
  f.has_tools = true;
  const Decision d = p.decide(f);
  EXPECT_EQ(d.tier, 0u);
  EXPECT_EQ(d.rule, "first");
  EXPECT_EQ(d.source, Decision::Source::rule);
  f.has_tools = false;
  EXPECT_EQ(p.decide(f).source, Decision::Source::score);
}

TEST(RoutingPolicy, RulesBeatObjectiveFixedTier) {
  auto s = two_tiers();
  s.rules.push_back(rule("tools", 1, cond([](config::RouteCondition& c) { c.tools = true; })));
  s.objectives[static_cast<int>(Objective::speed)].tier = 0;
  RequestFeatures f = prompt(kShort);
  f.has_tools = true;
  EXPECT_EQ(build(s).decide(f, Objective::speed).tier, 1u);
}

// One rule with one condition; `matching` must match, `other` must not.
struct PredicateCase {
  const char* name;
  config::RouteCondition when;
  std::function<void(RequestFeatures&)> matching;
  std::function<void(RequestFeatures&)> other;
};

class RulePredicates : public ::testing::TestWithParam<PredicateCase> {};

std::map<std::string, std::string> g_headers;
std::vector<std::pair<std::string, std::string>> g_metadata;

TEST_P(RulePredicates, MatchesOnlyWhenItShould) {
  const PredicateCase& c = GetParam();
  auto s = two_tiers();
  s.rules.push_back(rule("r", 1, c.when));
  const RoutingPolicy p = build(s);
  auto lookup = [](std::string_view name) -> std::optional<std::string_view> {
    auto it = g_headers.find(std::string(name));
    if (it == g_headers.end()) return std::nullopt;
    return std::string_view(it->second);
  };
  {
    g_headers.clear();
    g_metadata.clear();
    RequestFeatures f = prompt(kShort);
    f.header = lookup;
    f.metadata = &g_metadata;
    c.matching(f);
    const Decision d = p.decide(f);
    EXPECT_EQ(d.source, Decision::Source::rule) << c.name << ": should match";
    EXPECT_EQ(d.tier, 1u);
  }
  {
    g_headers.clear();
    g_metadata.clear();
    RequestFeatures f = prompt(kShort);
    f.header = lookup;
    f.metadata = &g_metadata;
    c.other(f);
    EXPECT_EQ(p.decide(f).source, Decision::Source::score) << c.name << ": should not match";
  }
}

config::TextMatch eq(std::string s) { return {.equals = std::move(s), .matches = std::nullopt}; }
config::TextMatch re(std::string s) { return {.equals = std::nullopt, .matches = std::move(s)}; }

INSTANTIATE_TEST_SUITE_P(
    All, RulePredicates,
    ::testing::Values(
        PredicateCase{"tools", cond([](config::RouteCondition& c) { c.tools = true; }), [](RequestFeatures& f) { f.has_tools = true; }, [](RequestFeatures&) {}},
        PredicateCase{"no_tools", cond([](config::RouteCondition& c) { c.tools = false; }), [](RequestFeatures&) {}, [](RequestFeatures& f) { f.has_tools = true; }},
        PredicateCase{"images", cond([](config::RouteCondition& c) { c.images = true; }), [](RequestFeatures& f) { f.has_images = true; }, [](RequestFeatures&) {}},
        PredicateCase{"header_equals", cond([](config::RouteCondition& c) { c.headers = {{"x-tier", eq("gold")}}; }),
                      [](RequestFeatures&) { g_headers["x-tier"] = "gold"; },
                      [](RequestFeatures&) { g_headers["x-tier"] = "golden"; }},
        PredicateCase{"header_missing", cond([](config::RouteCondition& c) { c.headers = {{"x-tier", re(".*")}}; }),
                      [](RequestFeatures&) { g_headers["x-tier"] = ""; }, [](RequestFeatures&) {}},
        PredicateCase{"metadata_matches", cond([](config::RouteCondition& c) { c.metadata = {{"project", re("^legal-")}}; }),
                      [](RequestFeatures&) { g_metadata = {{"a", "b"}, {"project", "legal-42"}}; },
                      [](RequestFeatures&) { g_metadata = {{"project", "my-legal-1"}}; }},
        PredicateCase{"user_matches", cond([](config::RouteCondition& c) { c.user = re("^vip-"); }), [](RequestFeatures& f) { f.user = "vip-7"; },
                      [](RequestFeatures& f) { f.user = "user-7"; }},
        PredicateCase{"key_glob_name", cond([](config::RouteCondition& c) { c.keys = {"team-a-*"}; }), [](RequestFeatures& f) { f.key_name = "team-a-prod"; },
                      [](RequestFeatures& f) { f.key_name = "team-b-prod"; }},
        PredicateCase{"key_glob_id", cond([](config::RouteCondition& c) { c.keys = {"vk_12?"}; }), [](RequestFeatures& f) { f.key_id = "vk_123"; },
                      [](RequestFeatures&) {}},
        PredicateCase{"team_glob", cond([](config::RouteCondition& c) { c.teams = {"research", "ml-*"}; }), [](RequestFeatures& f) { f.team = "ml-infra"; },
                      [](RequestFeatures& f) { f.team = "sales"; }},
        PredicateCase{"input_tokens_gt", cond([](config::RouteCondition& c) { c.input_tokens = {.gt = 1000, .lt = std::nullopt}; }),
                      [](RequestFeatures& f) { f.input_tokens = 1001; }, [](RequestFeatures& f) { f.input_tokens = 1000; }},
        PredicateCase{"input_tokens_lt", cond([](config::RouteCondition& c) { c.input_tokens = {.gt = std::nullopt, .lt = 10}; }),
                      [](RequestFeatures& f) { f.input_tokens = 9; }, [](RequestFeatures& f) { f.input_tokens = 10; }},
        PredicateCase{"max_tokens_gt", cond([](config::RouteCondition& c) { c.max_tokens = {.gt = 2000, .lt = std::nullopt}; }),
                      [](RequestFeatures& f) { f.max_tokens = 4096; },
                      [](RequestFeatures& f) { f.max_tokens = std::nullopt; }},
        PredicateCase{"context_window_gt", cond([](config::RouteCondition& c) { c.context_window = {.gt = 5000, .lt = std::nullopt}; }),
                      [](RequestFeatures& f) {
                        f.input_tokens = 3000;
                        f.max_tokens = 2500;
                      },
                      [](RequestFeatures& f) { f.input_tokens = 3000; }},
        PredicateCase{"last_user_message", cond([](config::RouteCondition& c) { c.last_user_message = re("(?i)\\bcontract\\b"); }),
                      [](RequestFeatures& f) { f.last_user_message = "Review this Contract please"; },
                      [](RequestFeatures& f) { f.last_user_message = "contractor"; }}),
    [](const ::testing::TestParamInfo<PredicateCase>& i) { return std::string(i.param.name); });

TEST(RoutingPolicy, ObjectiveCondition) {
  auto s = two_tiers();
  s.rules.push_back(rule("q", 1, cond([](config::RouteCondition& c) { c.objectives = {"quality"}; })));
  const RoutingPolicy p = build(s);
  EXPECT_EQ(p.decide(prompt(kShort), Objective::quality).source, Decision::Source::rule);
  EXPECT_EQ(p.decide(prompt(kShort), Objective::cost).source, Decision::Source::score);
}

TEST(RoutingPolicy, AllConditionsOfARuleMustHold) {
  auto s = two_tiers();
  s.rules.push_back(rule("both", 1, cond([](config::RouteCondition& c) { c.tools = true; c.teams = {"ml"}; })));
  const RoutingPolicy p = build(s);
  RequestFeatures f = prompt(kShort);
  f.has_tools = true;
  EXPECT_EQ(p.decide(f).source, Decision::Source::score);
  f.team = "ml";
  EXPECT_EQ(p.decide(f).source, Decision::Source::rule);
}

TEST(RoutingPolicy, UnhealthyTierYieldsUpThenDown) {
  auto s = two_tiers();
  s.tiers = {"small", "medium", "large"};
  s.thresholds = {0.4, 0.9};
  const RoutingPolicy p = build(s);
  Decision d = p.decide(prompt(kShort));
  ASSERT_EQ(d.tier, 0u);
  // small is down: the next one up.
  EXPECT_TRUE(p.yield_to_healthy(d, [](std::size_t t) { return t != 0; }));
  EXPECT_EQ(d.tier, 1u);
  EXPECT_EQ(d.yielded_from, 0u);
  EXPECT_NE(d.header.find("tier=medium; score="), std::string::npos) << d.header;
  EXPECT_TRUE(d.header.ends_with("; yielded_from=small")) << d.header;

  // large is down and nothing above: the nearest one down.
  Decision top = p.decide(prompt(kLong));
  ASSERT_EQ(top.tier, 2u);
  EXPECT_TRUE(p.yield_to_healthy(top, [](std::size_t t) { return t == 0 || t == 1; }));
  EXPECT_EQ(top.tier, 1u);

  // Healthy, or nothing healthy: unchanged.
  Decision same = p.decide(prompt(kShort));
  EXPECT_FALSE(p.yield_to_healthy(same, [](std::size_t) { return true; }));
  EXPECT_FALSE(p.yield_to_healthy(same, [](std::size_t) { return false; }));
  EXPECT_EQ(same.tier, 0u);
  EXPECT_EQ(same.header.find("yielded"), std::string::npos);
}

TEST(RoutingPolicy, RuleDecisionYieldsToo) {
  auto s = two_tiers();
  s.rules.push_back(rule("has-tools", 0, cond([](config::RouteCondition& c) { c.tools = true; })));
  const RoutingPolicy p = build(s);
  RequestFeatures f = prompt(kShort);
  f.has_tools = true;
  Decision d = p.decide(f);
  p.yield_to_healthy(d, [](std::size_t t) { return t == 1; });
  EXPECT_EQ(d.header, "tier=strong; rule=has-tools; yielded_from=cheap");
}

TEST(RoutingPolicy, WithoutComplexityUsesDefaultTier) {
  config::RouterSettings s;
  s.tiers = {"cheap", "strong"};
  s.default_tier = 1;
  s.rules.push_back(rule("small", 0, cond([](config::RouteCondition& c) { c.input_tokens = {.gt = std::nullopt, .lt = 100}; })));
  auto p = RoutingPolicy::build("auto", s, nullptr);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->scorer(), nullptr);
  RequestFeatures f;
  f.input_tokens = 500;
  const Decision d = p->decide(f);
  EXPECT_EQ(d.tier, 1u);
  EXPECT_EQ(d.header, "tier=strong; default");
  f.input_tokens = 50;
  EXPECT_EQ(p->decide(f).tier, 0u);
}

TEST(RoutingPolicy, BuildErrors) {
  auto s = two_tiers();
  s.thresholds = {0.2, 0.4};
  auto p = RoutingPolicy::build("auto", s, length_scorer());
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("models.auto.router"), std::string::npos);
  auto bad_re = two_tiers();
  bad_re.rules.push_back(rule("r", 1, cond([](config::RouteCondition& c) { c.last_user_message = re("("); })));
  EXPECT_FALSE(RoutingPolicy::build("auto", bad_re, length_scorer()));
  config::Model plain;
  plain.name = "plain";
  EXPECT_FALSE(RoutingPolicy::build(plain));
}

TEST(RoutingPolicy, TierNamesAreHeaderSafe) {
  auto s = two_tiers();
  s.tiers = {"cheap; x", "strong\r\n"};
  const RoutingPolicy p = build(s);
  const Decision d = p.decide(prompt(kLong));
  EXPECT_EQ(d.header.find('\r'), std::string::npos);
  EXPECT_TRUE(d.header.starts_with("tier=strong__; score=")) << d.header;
  EXPECT_EQ(p.tier_name(1), "strong\r\n");
}

TEST(RoutingPolicy, ParseObjective) {
  EXPECT_EQ(parse_objective("cost"), Objective::cost);
  EXPECT_EQ(parse_objective("speed"), Objective::speed);
  EXPECT_EQ(parse_objective("quality"), Objective::quality);
  EXPECT_EQ(parse_objective("balanced"), Objective::balanced);
  EXPECT_FALSE(parse_objective("fast"));
}

TEST(SharedScorer, LoadsTheShippedWeightsOnce) {
  auto a = shared_scorer();
  ASSERT_TRUE(a) << a.error().message;
  auto b = shared_scorer();
  ASSERT_TRUE(b);
  EXPECT_EQ(a->get(), b->get());
  EXPECT_FALSE(shared_scorer("/nonexistent/weights"));
}

TEST(RoutingPolicy, RealScorerSeparatesEasyAndHardPrompts) {
  auto scorer = shared_scorer();
  ASSERT_TRUE(scorer);
  config::RouterSettings s;
  s.tiers = {"cheap", "strong"};
  s.complexity = true;
  const std::string easy = "hi, what's the capital of France?";
  const std::string hard =
      "A train leaves at 3:15 pm travelling 84 km/h; a second leaves 40 minutes later at 102 km/h on the same "
      "track. Each stops for 12 minutes after 150 km. At what time, to the minute, does the second train "
      "overtake the first, and how far from the station? Show every step of the calculation.";
  const double se = (*scorer)->score(easy), sh = (*scorer)->score(hard);
  ASSERT_LT(se, sh);
  s.thresholds = {(se + sh) / 2};
  auto p = RoutingPolicy::build("auto", s, *scorer);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->decide(prompt(easy)).tier, 0u);
  EXPECT_EQ(p->decide(prompt(hard)).tier, 1u);
}

}  // namespace
}  // namespace bulwark::router
