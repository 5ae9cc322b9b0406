#include "config/config.hpp"

#include <gtest/gtest.h>

#include <map>

namespace cfg = bulwark::config;

namespace {

cfg::EnvLookup env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

constexpr std::string_view kValid = R"(listen: 0.0.0.0:9090
workers: 3
limits:
  max_body_bytes: 2MiB
  read_timeout: 5s
timeouts:
  connect: 500ms
  total: 1m
providers:
  openai:
    kind: openai
    base_url: https://api.example.com/v1/
    api_key: ${KEY}
    headers:
      OpenAI-Organization: org-1
    timeouts:
      first_token: 10s
models:
  small:
    targets:
      - provider: openai
        model: gpt-4o-mini
        weight: 3
        timeouts: {idle: 2s}
    fallbacks: [big]
  big:
    targets:
      - provider: openai
        model: gpt-4o
)";

const cfg::ConfigError* find_error(const std::vector<cfg::ConfigError>& errors, std::string_view needle) {
  for (const auto& e : errors)
    if (e.message.find(needle) != std::string::npos) return &e;
  return nullptr;
}

}  // namespace

TEST(Config, LoadsAValidFile) {
  auto r = cfg::load_string(kValid, env({{"KEY", "sk-test"}}));
  ASSERT_TRUE(r.has_value()) << (r ? "" : r.error().front().to_string());
  const cfg::Config& c = **r;
  EXPECT_EQ(c.listen.host, "0.0.0.0");
  EXPECT_EQ(c.listen.port, 9090);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.limits.max_body_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(c.limits.read_timeout, std::chrono::seconds(5));
  const cfg::Provider* p = c.find_provider("openai");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->endpoint.tls);
  EXPECT_EQ(p->endpoint.port, 443);
  EXPECT_EQ(p->endpoint.path_prefix, "/v1");
  EXPECT_EQ(p->endpoint.authority(), "api.example.com");
  EXPECT_EQ(p->api_key.reveal(), "sk-test");
  ASSERT_EQ(p->headers.size(), 1u);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].targets[0].id, "openai/gpt-4o-mini");
  EXPECT_EQ(c.models[0].targets[0].weight, 3);
  EXPECT_EQ(c.models[0].fallbacks, std::vector<std::string>{"big"});
  // Timeouts inherit: global <- provider <- model <- target.
  const auto t = c.timeouts.with(p->timeouts).with(c.models[0].timeouts).with(c.models[0].targets[0].timeouts);
  EXPECT_EQ(t.connect, std::chrono::milliseconds(500));
  EXPECT_EQ(t.first_token, std::chrono::seconds(10));
  EXPECT_EQ(t.idle, std::chrono::seconds(2));
  EXPECT_EQ(t.total, std::chrono::minutes(1));
}

TEST(Config, ReportsEveryErrorWithLineAndColumn) {
  constexpr std::string_view yaml = R"(listen: nowhere
providers:
  p:
    kind: grpc
    base_url: ftp://x
    surprise: 1
models:
  m:
    targets:
      - provider: missing
        model: x
        weight: -1
    fallbacks: [ghost]
  empty: {}
)";
  auto r = cfg::load_string(yaml, env({}));
  ASSERT_FALSE(r.has_value());
  const auto& errors = r.error();
  struct Want { std::string_view text; int line; };
  for (const Want& w : {Want{"listen must be host:port", 1}, Want{"kind must be openai, anthropic or bedrock", 4},
                        Want{"scheme must be http or https", 5}, Want{"unknown key 'surprise'", 6},
                        Want{"no provider named 'missing'", 10}, Want{"weight must be a number", 12},
                        Want{"fallback 'ghost' is not a model", 13}, Want{"targets must be a non-empty list", 14}}) {
    const auto* e = find_error(errors, w.text);
    ASSERT_NE(e, nullptr) << "missing error: " << w.text;
    EXPECT_EQ(e->line, w.line) << w.text;
    EXPECT_GT(e->column, 0);
  }
  for (std::size_t i = 1; i < errors.size(); ++i) EXPECT_LE(errors[i - 1].line, errors[i].line) << "sorted by line";
}

TEST(Config, UnsetEnvironmentVariableIsAnErrorAtItsPlace) {
  auto r = cfg::load_string("providers:\n  p:\n    kind: openai\n    base_url: http://h\n    api_key: ${NOPE}\nmodels:\n  m: {targets: [{provider: p, model: x}]}\n",
                            env({}));
  ASSERT_FALSE(r.has_value());
  const auto* e = find_error(r.error(), "NOPE is not set");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->line, 5);
}

TEST(Config, FallbackCyclesAreRejected) {
  auto r = cfg::load_string(R"(providers: {p: {kind: openai, base_url: "http://h"}}
models:
  a: {targets: [{provider: p, model: x}], fallbacks: [b]}
  b: {targets: [{provider: p, model: y}], fallbacks: [a]}
)",
                            env({}));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(find_error(r.error(), "cycle"), nullptr);
}

TEST(Config, YamlSyntaxErrorsCarryTheirPosition) {
  auto r = cfg::load_string("models:\n  m: [unclosed\n", env({}));
  ASSERT_FALSE(r.has_value());
  EXPECT_GT(r.error().front().line, 0);
}

TEST(Config, InterpolationSupportsDefaultsAndEscapes) {
  auto e = env({{"A", "1"}, {"EMPTY", ""}});
  EXPECT_EQ(cfg::interpolate("x${A}y", e).value(), "x1y");
  EXPECT_EQ(cfg::interpolate("${B:-fallback}", e).value(), "fallback");
  EXPECT_EQ(cfg::interpolate("${EMPTY:-d}", e).value(), "d");
  EXPECT_EQ(cfg::interpolate("$${A}", e).value(), "${A}");
  EXPECT_FALSE(cfg::interpolate("${B}", e).has_value());
  EXPECT_FALSE(cfg::interpolate("${A", e).has_value());
}

TEST(Config, DurationsAndSizesNeedUnits) {
  EXPECT_EQ(cfg::parse_duration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(cfg::parse_duration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_EQ(cfg::parse_duration("2m"), std::chrono::minutes(2));
  EXPECT_EQ(cfg::parse_duration("1h"), std::chrono::hours(1));
  EXPECT_FALSE(cfg::parse_duration("30").has_value());
  EXPECT_FALSE(cfg::parse_duration("-1s").has_value());
  EXPECT_FALSE(cfg::parse_duration("5 parsecs").has_value());
  EXPECT_EQ(cfg::parse_size("512"), 512u);
  EXPECT_EQ(cfg::parse_size("16KiB"), 16u * 1024);
  EXPECT_EQ(cfg::parse_size("4MiB"), 4u * 1024 * 1024);
  EXPECT_FALSE(cfg::parse_size("lots").has_value());
  EXPECT_FALSE(cfg::parse_size("99999999999999999999G").has_value());  // beyond 64 bits
  EXPECT_FALSE(cfg::parse_size("18446744073709551615G").has_value());  // wraps when multiplied
}

TEST(Config, JournalSegmentIsASizeWithinBounds) {
  const std::string base = "providers: {p: {kind: openai, base_url: \"http://h\"}}\nmodels: {m: {targets: [{provider: p, model: x}]}}\n";
  auto def = cfg::load_string(base, env({}));
  ASSERT_TRUE(def.has_value());
  EXPECT_EQ((*def)->governance.journal_segment, 32u << 20);
  auto small = cfg::load_string(base + "governance: {journal_segment: 4MiB}\n", env({}));
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ((*small)->governance.journal_segment, 4u << 20);
  for (const char* bad : {"64KiB", "2GiB", "lots"}) {
    auto r = cfg::load_string(base + "governance: {journal_segment: " + bad + "}\n", env({}));
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().front().message.find("governance.journal_segment"), std::string::npos) << r.error().front().message;
  }
}

TEST(Config, PolicyUninspectableDocuments) {
  const std::string base = "providers: {p: {kind: openai, base_url: \"http://h\"}}\nmodels: {m: {targets: [{provider: p, model: x}]}}\n";
  auto r = cfg::load_string(base + "governance:\n  policies:\n    strict: {pii: {email: redact}}\n    pdfs: {pii: {email: redact}, uninspectable_documents: flag}\n"
                                   "    open: {uninspectable_documents: allow}\n",
                            env({}));
  ASSERT_TRUE(r.has_value());
  const auto& policies = (*r)->governance.policies;
  EXPECT_EQ(policies.at("strict").uninspectable_documents, "");  // the default: decided when compiled
  EXPECT_EQ(policies.at("pdfs").uninspectable_documents, "flag");
  EXPECT_EQ(policies.at("open").uninspectable_documents, "allow");
  for (const char* bad : {"redact", "off", "maybe"}) {
    auto e = cfg::load_string(base + "governance:\n  policies:\n    p: {uninspectable_documents: " + bad + "}\n", env({}));
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_NE(find_error(e.error(), "uninspectable_documents must be block, flag or allow"), nullptr) << bad;
  }
}

TEST(Config, ModelPolicyNamesAConfiguredProfile) {
  const std::string providers = "providers: {p: {kind: openai, base_url: \"http://h\"}}\n";
  const std::string governance = "governance:\n  policies:\n    strict: {pii: {email: redact}}\n";
  auto r = cfg::load_string(providers + governance +
                                "models:\n  ext: {policy: strict, targets: [{provider: p, model: x}]}\n"
                                "  local: {targets: [{provider: p, model: y}]}\n",
                            env({}));
  ASSERT_TRUE(r.has_value()) << r.error().front().message;
  EXPECT_EQ((*r)->find_model("ext")->policy, "strict");
  EXPECT_EQ((*r)->find_model("local")->policy, "");
  auto bad = cfg::load_string(providers + governance + "models:\n  ext: {policy: lax, targets: [{provider: p, model: x}]}\n", env({}));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(find_error(bad.error(), "models.ext.policy 'lax' is not in governance.policies"), nullptr);
}

TEST(Config, SecretsDoNotAppearInErrors) {
  auto r = cfg::load_string("providers:\n  p:\n    kind: openai\n    base_url: http://h\n    api_key: sk-live-SECRET\n    verify_tls: maybe\nmodels:\n  m: {targets: [{provider: p, model: x}]}\n",
                            env({}));
  ASSERT_FALSE(r.has_value());
  for (const auto& e : r.error()) EXPECT_EQ(e.message.find("sk-live-SECRET"), std::string::npos);
}

namespace {
constexpr std::string_view kResilience = R"(providers: {p: {kind: openai, base_url: "http://h"}}
resilience:
  breaker:
    window: 30
    minimum_calls: 5
    failure_rate: 0.25
    open_for: 1s
    open_max: 10s
    probes: 2
    probes_to_close: 2
    failures: [http_5xx, overloaded]
  retry:
    max_attempts_per_target: 3
    max_retry_after: 5s
admin:
  master_key: ${MK}
models:
  big:
    targets: [{provider: p, model: big, context_window: 200000}]
  small:
    targets: [{provider: p, model: small, context_window: 8000}]
    fallbacks: [big]
    fallbacks_on_content_filter: [big]
    resilience:
      breaker: {open_for: 2s}
      retry: {max_attempts_per_request: 6, backoff_base: 50ms}
)";
}  // namespace

TEST(ConfigResilience, DefaultsWhenAbsent) {
  auto r = cfg::load_string("providers: {p: {kind: openai, base_url: \"http://h\"}}\nmodels: {m: {targets: [{provider: p, model: x}]}}\n",
                            env({}));
  ASSERT_TRUE(r.has_value());
  const cfg::Model& m = (*r)->models[0];
  EXPECT_EQ(m.resilience.breaker.window, 20u);
  EXPECT_EQ(m.resilience.breaker.minimum_calls, 10u);
  EXPECT_DOUBLE_EQ(m.resilience.breaker.failure_rate, 0.5);
  EXPECT_FALSE(m.resilience.breaker.slow_call_duration.has_value());
  EXPECT_EQ(m.resilience.breaker.open_for, std::chrono::seconds(5));
  EXPECT_EQ(m.resilience.breaker.open_max, std::chrono::seconds(60));
  EXPECT_EQ(m.resilience.retry.max_attempts_per_target, 2u);
  EXPECT_EQ(m.resilience.retry.max_attempts_per_request, 4u);
  EXPECT_EQ(m.resilience.retry.backoff_base, std::chrono::milliseconds(200));
  EXPECT_EQ(m.resilience.retry.max_retry_after, std::chrono::seconds(30));
  EXPECT_DOUBLE_EQ(m.resilience.retry.budget_ratio, 0.1);
  EXPECT_FALSE(m.targets[0].context_window.has_value());
  EXPECT_TRUE((*r)->admin.master_key.empty());
}

TEST(ConfigResilience, TopLevelDefaultsAndPerModelOverrides) {
  auto r = cfg::load_string(kResilience, env({{"MK", std::string(40, 'k')}}));
  ASSERT_TRUE(r.has_value()) << r.error().front().to_string();
  const cfg::Model& big = *(*r)->find_model("big");
  const cfg::Model& small = *(*r)->find_model("small");
  EXPECT_EQ(big.resilience.breaker.window, 30u);
  EXPECT_EQ(big.resilience.breaker.open_for, std::chrono::seconds(1));
  EXPECT_EQ(big.resilience.breaker.failures, (std::vector<std::string>{"http_5xx", "overloaded"}));
  EXPECT_EQ(big.resilience.retry.max_attempts_per_target, 3u);
  EXPECT_EQ(big.resilience.retry.max_attempts_per_request, 4u);
  // small inherits the top level and overrides two fields
  EXPECT_EQ(small.resilience.breaker.window, 30u);
  EXPECT_EQ(small.resilience.breaker.open_for, std::chrono::seconds(2));
  EXPECT_EQ(small.resilience.retry.max_attempts_per_target, 3u);
  EXPECT_EQ(small.resilience.retry.max_attempts_per_request, 6u);
  EXPECT_EQ(small.resilience.retry.backoff_base, std::chrono::milliseconds(50));
  EXPECT_EQ(small.resilience.retry.max_retry_after, std::chrono::seconds(5));
  EXPECT_EQ(small.targets[0].context_window, std::optional<std::uint64_t>(8000));
  EXPECT_EQ(small.fallbacks_on_content_filter, (std::vector<std::string>{"big"}));
  EXPECT_EQ((*r)->admin.master_key.reveal(), std::string(40, 'k'));
}

TEST(ConfigResilience, InvalidValuesAreReportedWithLineAndColumn) {
  auto r = cfg::load_string(R"(providers: {p: {kind: openai, base_url: "http://h"}}
resilience:
  breaker:
    window: 5
    minimum_calls: 10
    failure_rate: 2
    bogus: 1
  retry:
    max_attempts_per_target: 5
    max_attempts_per_request: 2
    backoff_base: 10
admin: {master_key: short}
models:
  m:
    targets: [{provider: p, model: x, context_window: 1.5}]
    fallbacks_on_content_filter: [nope]
)", env({}));
  ASSERT_FALSE(r.has_value());
  std::string all;
  for (const auto& e : r.error()) {
    EXPECT_GT(e.line, 0) << e.message;
    all += e.to_string() + "\n";
  }
  EXPECT_NE(all.find("6:19: resilience.breaker.failure_rate must be a number from 0.01 to 1"), std::string::npos) << all;
  EXPECT_NE(all.find("7:5: unknown key 'bogus' in resilience.breaker"), std::string::npos) << all;
  EXPECT_NE(all.find("resilience.breaker.minimum_calls must not exceed window"), std::string::npos) << all;
  EXPECT_NE(all.find("max_attempts_per_target must not exceed max_attempts_per_request"), std::string::npos) << all;
  EXPECT_NE(all.find("11:19: resilience.retry.backoff_base must be a duration"), std::string::npos) << all;
  EXPECT_NE(all.find("12:21: admin.master_key must be at least 32 characters"), std::string::npos) << all;
  EXPECT_NE(all.find("context_window must be a whole number"), std::string::npos) << all;
  EXPECT_NE(all.find("16:35: content-filter fallback 'nope' is not a model"), std::string::npos) << all;
}

TEST(ConfigHedge, OffUnlessConfiguredThenInheritedAndOverridden) {
  auto r = cfg::load_string(R"(providers: {p: {kind: openai, base_url: "http://h"}}
resilience:
  hedge: {delay: p95, min_delay: 80ms, max_delay: 3s, min_samples: 5, budget_ratio: 0.03}
models:
  fixed:
    targets: [{provider: p, model: a}, {provider: p, model: b}]
    resilience: {hedge: {delay: 400ms}}
  adaptive:
    targets: [{provider: p, model: a}, {provider: p, model: b}]
  off:
    targets: [{provider: p, model: a}]
    resilience: {hedge: {enabled: false}}
)", env({}));
  ASSERT_TRUE(r.has_value()) << r.error().front().to_string();
  const cfg::HedgeSettings& fixed = (*r)->find_model("fixed")->resilience.hedge;
  EXPECT_TRUE(fixed.enabled);
  EXPECT_EQ(fixed.delay, std::optional<cfg::Millis>(std::chrono::milliseconds(400)));
  EXPECT_DOUBLE_EQ(fixed.budget_ratio, 0.03);  // inherited field by field
  const cfg::HedgeSettings& adaptive = (*r)->find_model("adaptive")->resilience.hedge;
  EXPECT_TRUE(adaptive.enabled);
  EXPECT_FALSE(adaptive.delay.has_value());
  EXPECT_DOUBLE_EQ(adaptive.percentile, 0.95);
  EXPECT_EQ(adaptive.min_delay, std::chrono::milliseconds(80));
  EXPECT_EQ(adaptive.max_delay, std::chrono::seconds(3));
  EXPECT_EQ(adaptive.min_samples, 5u);
  EXPECT_FALSE((*r)->find_model("off")->resilience.hedge.enabled);

  auto none = cfg::load_string("providers: {p: {kind: openai, base_url: \"http://h\"}}\nmodels: {m: {targets: [{provider: p, model: x}]}}\n",
                               env({}));
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE((*none)->models[0].resilience.hedge.enabled);
}

TEST(ConfigHedge, BadValuesAreReported) {
  auto r = cfg::load_string(R"(providers: {p: {kind: openai, base_url: "http://h"}}
models:
  m:
    targets: [{provider: p, model: x}]
    resilience: {hedge: {delay: p90, min_delay: 2s, max_delay: 1s, budget_ratio: 2}}
)", env({}));
  ASSERT_FALSE(r.has_value());
  std::string all;
  for (const auto& e : r.error()) all += e.to_string() + "\n";
  EXPECT_NE(all.find("hedge.delay must be a duration, p50, p95 or p99 (got 'p90')"), std::string::npos) << all;
  EXPECT_NE(all.find("hedge.max_delay must not be shorter than min_delay"), std::string::npos) << all;
  EXPECT_NE(all.find("budget_ratio"), std::string::npos) << all;
}
