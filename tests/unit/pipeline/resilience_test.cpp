// The pipeline's resilience wiring: config -> policies, the process-wide target health
// registry across reloads, and the failover filter of the attempt loop.
#include <gtest/gtest.h>

#include "core/clock.hpp"
#include "pipeline/admin.hpp"
#include "pipeline/failover.hpp"
#include "pipeline/health.hpp"
#include "pipeline/runtime.hpp"

namespace cfg = bulwark::config;
namespace p = bulwark::pipeline;
namespace res = bulwark::resilience;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const cfg::Config> load(std::string_view yaml) {
  auto r = cfg::load_string(yaml, [](std::string_view) { return std::optional<std::string>{}; }, "test.yaml");
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().front().to_string());
  return r ? *r : nullptr;
}

cfg::EnvLookup no_env() {
  return [](std::string_view) { return std::optional<std::string>{}; };
}

constexpr std::string_view kTwoModels = R"(providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
resilience:
  breaker: {window: 4, minimum_calls: 2, open_for: 1s, failures: [http_5xx, overloaded]}
models:
  small:
    targets: [{provider: p, model: s, context_window: 8000}]
    fallbacks: [mid, tiny, big]
  mid:
    targets: [{provider: p, model: m, context_window: 8000}]
  tiny:
    targets: [{provider: p, model: t}]
  big:
    targets: [{provider: p, model: b, context_window: 128000}]
)";

}  // namespace

TEST(ResiliencePolicies, DefaultsMatchTheDocumentedValues) {
  const cfg::ResilienceSettings s;
  auto b = p::breaker_policy(s.breaker, "x");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->window_size, 20u);
  EXPECT_EQ(b->minimum_calls, 10u);
  EXPECT_DOUBLE_EQ(b->failure_rate_threshold, 0.5);
  EXPECT_GT(b->slow_call_rate_threshold, 1.0);  // slow-call tripping off
  EXPECT_EQ(b->open_base, 5s);
  EXPECT_EQ(b->open_max, 60s);
  EXPECT_DOUBLE_EQ(b->open_jitter, 0.2);
  EXPECT_EQ(b->failures, res::FailurePolicy::defaults());
  const res::RetryPolicy r = p::retry_policy(s.retry);
  EXPECT_TRUE(r.validate().has_value());
  EXPECT_EQ(r.max_attempts_per_target, 2u);
  EXPECT_EQ(r.max_attempts_per_request, 4u);
  EXPECT_EQ(r.rule(res::FailureClass::http_5xx).backoff.base, 200ms);
  EXPECT_EQ(r.rule(res::FailureClass::rate_limited).backoff.cap, 5s);
  EXPECT_EQ(r.rule(res::FailureClass::rate_limited).max_retry_after, 30s);
  EXPECT_FALSE(r.rule(res::FailureClass::context_length).retry_same);
  EXPECT_TRUE(r.rule(res::FailureClass::context_length).fail_over);
  EXPECT_FALSE(r.rule(res::FailureClass::content_filter).fail_over);
  const res::BudgetPolicy bp = p::budget_policy(s.retry);
  EXPECT_DOUBLE_EQ(bp.ratio, 0.1);
  EXPECT_DOUBLE_EQ(bp.min_per_second, 1.0);
}

TEST(ResiliencePolicies, UnknownFailureClassIsAnErrorAtItsPlace) {
  auto c = load(R"(providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models:
  m:
    targets: [{provider: p, model: x}]
    resilience:
      breaker:
        failures: [http_5xx, nonsense]
)");
  ASSERT_NE(c, nullptr);
  p::HealthRegistry health;
  auto rt = p::Runtime::build(c, health, no_env());
  ASSERT_FALSE(rt.has_value());
  EXPECT_NE(rt.error().message.find("test.yaml:7:19"), std::string::npos) << rt.error().message;
  EXPECT_NE(rt.error().message.find("nonsense"), std::string::npos) << rt.error().message;
}

TEST(HealthRegistry, StateSurvivesAReloadWithUnchangedSettings) {
  bulwark::ManualClock clock;
  p::HealthRegistry health(clock);
  auto rt1 = p::Runtime::build(load(kTwoModels), health, no_env());
  ASSERT_TRUE(rt1.has_value());
  const auto& t1 = (*rt1)->route("small")->chain[0].targets[0];
  ASSERT_NE(t1.health, nullptr);
  EXPECT_EQ(t1.health->id, "p/s");
  // Trip the breaker: 2 failures out of 2 calls.
  for (int i = 0; i < 2; ++i) {
    auto permit = t1.health->breaker->try_acquire();
    ASSERT_TRUE(permit.has_value());
    permit->record(res::FailureClass::http_5xx, 10ms);
  }
  EXPECT_EQ(t1.health->breaker->state(), res::BreakerState::open);

  // Unchanged settings, moved down the file by a comment: still the same.
  auto rt2 = p::Runtime::build(load("# a comment\n" + std::string(kTwoModels)), health, no_env());
  ASSERT_TRUE(rt2.has_value());
  const auto& t2 = (*rt2)->route("small")->chain[0].targets[0];
  EXPECT_EQ(t2.health, t1.health);  // the very same state
  EXPECT_EQ(t2.health->breaker->state(), res::BreakerState::open);
  // The same target referenced from another model's chain shares it too.
  EXPECT_EQ((*rt2)->route("big")->chain[0].targets[0].health, (*rt2)->route("small")->chain[3].targets[0].health);
  EXPECT_EQ(health.all().size(), 4u);
}

TEST(HealthRegistry, ChangedBreakerSettingsStartAFreshBreakerButKeepCounters) {
  bulwark::ManualClock clock;
  p::HealthRegistry health(clock);
  auto rt1 = p::Runtime::build(load(kTwoModels), health, no_env());
  ASSERT_TRUE(rt1.has_value());
  auto h1 = (*rt1)->route("small")->chain[0].targets[0].health;
  h1->counters->retries.fetch_add(3);
  std::string changed(kTwoModels);
  changed.replace(changed.find("open_for: 1s"), 12, "open_for: 2s");
  auto rt2 = p::Runtime::build(load(changed), health, no_env());
  ASSERT_TRUE(rt2.has_value());
  auto h2 = (*rt2)->route("small")->chain[0].targets[0].health;
  EXPECT_NE(h2, h1);
  EXPECT_NE(h2->breaker, h1->breaker);
  EXPECT_EQ(h2->breaker->policy().open_base, 2s);
  EXPECT_EQ(h2->budget, h1->budget);
  EXPECT_EQ(h2->latency, h1->latency);
  EXPECT_EQ(h2->counters->retries.load(), 3u);
}

TEST(HealthRegistry, RendersBreakerStateAndCounters) {
  bulwark::ManualClock clock;
  p::HealthRegistry health(clock);
  auto rt = p::Runtime::build(load(kTwoModels), health, no_env());
  ASSERT_TRUE(rt.has_value());
  auto h = (*rt)->route("small")->chain[0].targets[0].health;
  h->breaker->force_open();
  h->counters->failovers.fetch_add(2);
  std::string out;
  health.render_metrics(out);
  EXPECT_NE(out.find("# TYPE bulwark_breaker_state gauge"), std::string::npos) << out;
  EXPECT_NE(out.find("bulwark_breaker_state{target=\"p/s\"} 3"), std::string::npos) << out;
  EXPECT_NE(out.find("bulwark_breaker_state{target=\"p/b\"} 0"), std::string::npos) << out;
  EXPECT_NE(out.find("bulwark_breaker_transitions_total{target=\"p/s\",to=\"forced_open\"} 1"), std::string::npos) << out;
  EXPECT_NE(out.find("bulwark_fallbacks_total{target=\"p/s\"} 2"), std::string::npos) << out;
}

TEST(Failover, ContextLengthOnlyMovesToLargerDeclaredWindows) {
  p::HealthRegistry health;
  auto rt = p::Runtime::build(load(kTwoModels), health, no_env());
  ASSERT_TRUE(rt.has_value());
  const p::RoutePlan& plan = *(*rt)->route("small");
  std::vector<p::Candidate> cands;
  for (const auto& m : plan.chain) cands.push_back({&m, &m.targets[0]});
  ASSERT_EQ(cands.size(), 4u);  // small, mid, tiny, big
  p::FailoverFilter filter;
  EXPECT_EQ(p::next_allowed(cands, 1, filter), 1u);
  filter.context = true;
  filter.failed_window = 8000;
  EXPECT_EQ(p::next_allowed(cands, 1, filter), 3u);  // mid (same size) and tiny (unknown) skipped
  filter.failed_window = 128000;
  EXPECT_EQ(p::next_allowed(cands, 1, filter), 4u);  // nothing larger
  filter.failed_window.reset();  // the failed target declared no window: nothing is known to be larger
  EXPECT_EQ(p::next_allowed(cands, 1, filter), 4u);
}

TEST(Admin, TargetsNeedTheMasterKey) {
  const std::string key(40, 'm');
  p::HealthRegistry health;
  auto env = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "BULWARK_MASTER_KEY") return key;
    return std::nullopt;
  };
  auto rt = p::Runtime::build(load(kTwoModels), health, env);
  ASSERT_TRUE(rt.has_value());
  auto denied = p::admin_targets(**rt, "");
  EXPECT_EQ(denied.status, 401u);
  EXPECT_NE(denied.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(p::admin_targets(**rt, "Bearer wrong").status, 401u);
  EXPECT_EQ(p::admin_targets(**rt, key).status, 401u);
  (*rt)->route("small")->chain[0].targets[0].health->breaker->force_open();
  auto ok = p::admin_targets(**rt, "Bearer " + key);
  EXPECT_EQ(ok.status, 200u);
  EXPECT_NE(ok.body.find("{\"target\":\"p/s\",\"breaker\":{\"state\":\"forced_open\""), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"latency_ms\":{\"count\":0"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"retry_budget\":{"), std::string::npos) << ok.body;

  auto closed = p::Runtime::build(load(kTwoModels), health, no_env());
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(p::admin_targets(**closed, "Bearer " + key).status, 401u);
}

// The retry loop's decisions with the policy built from config (the loop in chat.cpp asks
// RetryState after each failed attempt and acts on the answer).
TEST(RetryDecisions, FollowTheConfiguredPolicy) {
  cfg::RetrySettings settings;
  settings.max_retry_after = 5s;
  const res::RetryPolicy policy = p::retry_policy(settings);
  bulwark::FastRandom random(1);
  const auto now = bulwark::TimePoint{} + 1h;
  const auto deadline = now + 30s;

  // 429 with Retry-After 2 s: wait exactly that long on the same target.
  {
    res::RetryState st(policy, deadline);
    bulwark::Error e{bulwark::ErrorKind::upstream_rate_limited, bulwark::Origin::upstream, true, "", "", 429, 2000ms};
    auto d = st.on_failure(e, true, now, random);
    ASSERT_TRUE(std::holds_alternative<res::RetrySame>(d));
    EXPECT_EQ(std::get<res::RetrySame>(d).delay, 2s);
    // The second failure on that target exhausts max_attempts_per_target: fail over.
    EXPECT_TRUE(std::holds_alternative<res::FailOver>(st.on_failure(e, true, now + 2s, random)));
  }
  // Retry-After beyond max_retry_after: fail over at once.
  {
    res::RetryState st(policy, deadline);
    bulwark::Error e{bulwark::ErrorKind::upstream_rate_limited, bulwark::Origin::upstream, true, "", "", 429, 60000ms};
    EXPECT_TRUE(std::holds_alternative<res::FailOver>(st.on_failure(e, true, now, random)));
  }
  // 500: backoff within [0, backoff_base) for the first retry.
  {
    res::RetryState st(policy, deadline);
    auto d = st.on_failure(bulwark::Error::transport(bulwark::ErrorKind::upstream_server_error, "x"), true, now, random);
    ASSERT_TRUE(std::holds_alternative<res::RetrySame>(d));
    EXPECT_LT(std::get<res::RetrySame>(d).delay, 200ms);
  }
  // Context length: never the same target; fail over only when somewhere is left.
  {
    res::RetryState st(policy, deadline);
    const auto e = bulwark::Error::client(bulwark::ErrorKind::context_length_exceeded, "too long");
    EXPECT_TRUE(std::holds_alternative<res::FailOver>(st.on_failure(e, true, now, random)));
    EXPECT_TRUE(std::holds_alternative<res::GiveUp>(st.on_failure(e, false, now, random)));
  }
  // Content filter and the caller's other mistakes: give up.
  {
    res::RetryState st(policy, deadline);
    EXPECT_TRUE(std::holds_alternative<res::GiveUp>(
        st.on_failure(bulwark::Error::client(bulwark::ErrorKind::content_filtered, "no"), true, now, random)));
  }
  // The retry budget: an exhausted budget turns a retry into a failover.
  {
    bulwark::ManualClock clock;
    cfg::RetrySettings tight;
    tight.budget_ratio = 0;
    tight.budget_min_per_second = 0;
    res::RetryBudget budget(clock, p::budget_policy(tight));
    res::RetryState st(policy, deadline);
    auto d = st.on_failure(bulwark::Error::transport(bulwark::ErrorKind::connection_reset, "x"), true, now, random, &budget);
    EXPECT_TRUE(std::holds_alternative<res::FailOver>(d));
    EXPECT_EQ(st.budget_refusals(), 1u);
  }
  // Four attempts per request at most.
  {
    res::RetryState st(policy, deadline);
    const auto e = bulwark::Error::transport(bulwark::ErrorKind::connect_failed, "x");
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(std::holds_alternative<res::GiveUp>(st.on_failure(e, true, now, random)));
    EXPECT_TRUE(std::holds_alternative<res::GiveUp>(st.on_failure(e, true, now, random)));
  }
}

TEST(ResiliencePolicies, TheCallersFaultsCannotCountAgainstATarget) {
  cfg::BreakerSettings s;
  s.failures = {"http_5xx", "content_filter"};
  s.failures_line = 3;
  s.failures_column = 7;
  auto b = p::breaker_policy(s, "f.yaml");
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().message.find("f.yaml:3:7"), std::string::npos) << b.error().message;
  EXPECT_NE(b.error().message.find("content_filter"), std::string::npos) << b.error().message;
}

TEST(HedgeDelay, FixedDelayIsUsedAsGiven) {
  bulwark::ManualClock clock;
  p::HealthRegistry registry(clock);
  cfg::HedgeSettings hs;
  hs.enabled = true;
  hs.delay = std::chrono::milliseconds(300);
  auto h = registry.get("p/a", *p::breaker_policy({}, "x"), {}, {}, hs);
  EXPECT_EQ(p::hedge_delay(hs, *h), std::chrono::milliseconds(300));
}

TEST(HedgeDelay, AdaptiveFollowsThePercentileWithinItsBounds) {
  bulwark::ManualClock clock;
  p::HealthRegistry registry(clock);
  cfg::HedgeSettings hs;
  hs.enabled = true;
  hs.min_samples = 20;
  hs.min_delay = std::chrono::milliseconds(50);
  hs.max_delay = std::chrono::seconds(2);
  auto h = registry.get("p/a", *p::breaker_policy({}, "x"), {}, {}, hs);
  // Too few samples: the cautious bound.
  for (int i = 0; i < 19; ++i) h->first_token->record(std::chrono::milliseconds(200));
  EXPECT_EQ(p::hedge_delay(hs, *h), std::chrono::seconds(2));
  // 100 samples, 95% at 200 ms and 5% at 900 ms: p95 is about 200 ms (within the
  // tracker's 5% bins), p99 about 900 ms.
  for (int i = 0; i < 76; ++i) h->first_token->record(std::chrono::milliseconds(200));
  for (int i = 0; i < 5; ++i) h->first_token->record(std::chrono::milliseconds(900));
  clock.advance(std::chrono::seconds(1));  // the cached percentiles refresh once a second
  const auto p95 = p::hedge_delay(hs, *h);
  EXPECT_GE(p95, std::chrono::milliseconds(190));
  EXPECT_LE(p95, std::chrono::milliseconds(210));
  hs.percentile = 0.99;
  const auto p99 = p::hedge_delay(hs, *h);
  EXPECT_GE(p99, std::chrono::milliseconds(855));
  EXPECT_LE(p99, std::chrono::milliseconds(945));
  // Clamped to the bounds.
  hs.max_delay = std::chrono::milliseconds(500);
  EXPECT_EQ(p::hedge_delay(hs, *h), std::chrono::milliseconds(500));
  hs.percentile = 0.5;
  hs.min_delay = std::chrono::milliseconds(250);
  EXPECT_EQ(p::hedge_delay(hs, *h), std::chrono::milliseconds(250));
}

TEST(HealthRegistry, HedgeBudgetFollowsSettingsAndKeepsStateOtherwise) {
  bulwark::ManualClock clock;
  p::HealthRegistry registry(clock);
  cfg::HedgeSettings hs;
  hs.budget_ratio = 0.0;
  hs.budget_min_per_second = 0.0;
  auto h = registry.get("p/a", *p::breaker_policy({}, "x"), {}, {}, hs);
  h->hedge_budget->record_request();
  EXPECT_FALSE(h->hedge_budget->try_acquire());  // a zero budget allows no hedge
  EXPECT_EQ(registry.get("p/a", *p::breaker_policy({}, "x"), {}, {}, hs)->hedge_budget, h->hedge_budget);
  hs.budget_ratio = 1.0;
  auto changed = registry.get("p/a", *p::breaker_policy({}, "x"), {}, {}, hs);
  EXPECT_NE(changed->hedge_budget, h->hedge_budget);
  EXPECT_EQ(changed->breaker, h->breaker);  // the breaker is untouched
  changed->hedge_budget->record_request();
  EXPECT_TRUE(changed->hedge_budget->try_acquire());
}
