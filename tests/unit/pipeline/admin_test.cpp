// The admin API's breaker controls: POST /admin/targets/{target}/{action}.
#include "pipeline/admin.hpp"

#include <gtest/gtest.h>

#include "core/clock.hpp"
#include "pipeline/health.hpp"
#include "pipeline/runtime.hpp"
#include "telemetry/events.hpp"

namespace cfg = bulwark::config;
namespace p = bulwark::pipeline;
namespace res = bulwark::resilience;
namespace tel = bulwark::telemetry;
using namespace std::chrono_literals;

namespace {

const std::string kKey(40, 'k');

constexpr std::string_view kConfig = R"(providers:
  p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
  q: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
resilience:
  breaker: {window: 4, minimum_calls: 2, open_for: 1s, open_jitter: 0}
models:
  chat:
    targets: [{provider: p, model: "gpt:4o/mini"}, {provider: q, model: other}]
)";

std::shared_ptr<const cfg::Config> load(std::string_view yaml) {
  auto r = cfg::load_string(yaml, [](std::string_view) { return std::optional<std::string>{}; }, "test.yaml");
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().front().to_string());
  return r ? *r : nullptr;
}

cfg::EnvLookup key_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    if (name == "BULWARK_MASTER_KEY") return kKey;
    return std::nullopt;
  };
}

class AdminActions : public ::testing::Test {
 protected:
  void SetUp() override {
    auto built = p::Runtime::build(load(kConfig), health, key_env());
    ASSERT_TRUE(built.has_value()) << built.error().message;
    rt = *built;
  }
  res::CircuitBreaker& breaker(const std::string& id) {
    for (const auto& h : health.all())
      if (h->id == id) return *h->breaker;
    throw std::runtime_error("no target " + id);
  }
  p::AdminResponse act(std::string_view path, std::string auth = "Bearer " + kKey) {
    return p::admin_target_action(*rt, auth, path, "req-test-1");
  }

  bulwark::ManualClock clock;
  p::HealthRegistry health{clock};
  std::shared_ptr<const p::Runtime> rt;
};

}  // namespace

TEST(PercentDecode, DecodesAndRejectsMalformedEscapes) {
  EXPECT_EQ(p::percent_decode("p%2Fgpt%3A4o"), "p/gpt:4o");
  EXPECT_EQ(p::percent_decode("p/gpt:4o"), "p/gpt:4o");
  EXPECT_EQ(p::percent_decode("a%2fb"), "a/b");
  EXPECT_EQ(p::percent_decode(""), "");
  EXPECT_FALSE(p::percent_decode("a%2").has_value());
  EXPECT_FALSE(p::percent_decode("a%").has_value());
  EXPECT_FALSE(p::percent_decode("a%zz").has_value());
  EXPECT_FALSE(p::percent_decode("a%00b").has_value());
}

TEST_F(AdminActions, NeedTheMasterKeyAndChangeNothingWithout) {
  for (const std::string& auth : {std::string(), std::string("Bearer wrong"), kKey}) {
    auto r = act("/admin/targets/q%2Fother/force-open", auth);
    EXPECT_EQ(r.status, 401u) << auth;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  }
  EXPECT_EQ(breaker("q/other").state(), res::BreakerState::closed);

  auto closed = p::Runtime::build(load(kConfig), health, [](std::string_view) { return std::optional<std::string>{}; });
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(p::admin_target_action(**closed, "Bearer " + kKey, "/admin/targets/q%2Fother/reset", "r").status, 401u);
}

TEST_F(AdminActions, ForceOpenRefusesCallsAndAnswersTheNewState) {
  auto r = act("/admin/targets/q%2Fother/force-open");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(r.body.find("\"target\":\"q/other\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"action\":\"force_open\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"previous_state\":\"closed\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"breaker\":{\"state\":\"forced_open\""), std::string::npos) << r.body;
  auto permit = breaker("q/other").try_acquire();
  ASSERT_FALSE(permit.has_value());
  EXPECT_EQ(permit.error().state, res::BreakerState::forced_open);
  EXPECT_FALSE(permit.error().retry_in.has_value());
  // Time does not end a forced open.
  clock.advance(10min);
  EXPECT_FALSE(breaker("q/other").try_acquire().has_value());
  // The other target is untouched.
  EXPECT_EQ(breaker("p/gpt:4o/mini").state(), res::BreakerState::closed);
}

TEST_F(AdminActions, TargetIdsWithSlashesAndColonsWorkEncodedOrNot) {
  auto a = act("/admin/targets/p%2Fgpt%3A4o%2Fmini/disable");
  ASSERT_EQ(a.status, 200u) << a.body;
  EXPECT_EQ(breaker("p/gpt:4o/mini").state(), res::BreakerState::disabled);
  auto b = act("/admin/targets/p/gpt:4o/mini/reset");
  ASSERT_EQ(b.status, 200u) << b.body;
  EXPECT_NE(b.body.find("\"previous_state\":\"disabled\""), std::string::npos) << b.body;
  EXPECT_EQ(breaker("p/gpt:4o/mini").state(), res::BreakerState::closed);
  EXPECT_EQ(act("/admin/targets/p%2Fgpt%3A4o%2Fmini/force_open").status, 200u);  // the underscore spelling too
  EXPECT_EQ(breaker("p/gpt:4o/mini").state(), res::BreakerState::forced_open);
}

TEST_F(AdminActions, DisableKeepsFailuresFromTripping) {
  ASSERT_EQ(act("/admin/targets/q%2Fother/disable").status, 200u);
  for (int i = 0; i < 20; ++i) {
    auto permit = breaker("q/other").try_acquire();
    ASSERT_TRUE(permit.has_value()) << i;
    permit->record(res::FailureClass::http_5xx, 10ms);
  }
  EXPECT_EQ(breaker("q/other").state(), res::BreakerState::disabled);
}

TEST_F(AdminActions, ResetClosesAnOpenBreakerWithAFreshWindow) {
  for (int i = 0; i < 2; ++i) breaker("q/other").try_acquire()->record(res::FailureClass::http_5xx, 10ms);
  ASSERT_EQ(breaker("q/other").state(), res::BreakerState::open);
  auto r = act("/admin/targets/q%2Fother/reset");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(r.body.find("\"previous_state\":\"open\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"state\":\"closed\",\"calls_in_window\":0"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"consecutive_trips\":0"), std::string::npos) << r.body;
  EXPECT_TRUE(breaker("q/other").try_acquire().has_value());
}

TEST_F(AdminActions, UnknownActionsAndMalformedPathsAre400UnknownTargets404) {
  auto bad = act("/admin/targets/q%2Fother/explode");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("\"code\":\"unknown_action\""), std::string::npos) << bad.body;
  EXPECT_EQ(act("/admin/targets/reset").status, 400u);  // no target
  EXPECT_EQ(act("/admin/targets//reset").status, 400u);
  EXPECT_EQ(act("/admin/targets/q%2/reset").status, 400u);
  auto missing = act("/admin/targets/q%2Fnope/reset");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_NE(missing.body.find("\"code\":\"target_not_found\""), std::string::npos) << missing.body;
  // A target the registry still remembers from an older configuration is not current.
  (void)health.get("gone/model", *p::breaker_policy({}, "x"), {}, {});
  EXPECT_EQ(act("/admin/targets/gone%2Fmodel/reset").status, 404u);
  // An unknown action is reported before the target is looked up.
  EXPECT_EQ(act("/admin/targets/q%2Fnope/explode").status, 400u);
}

TEST_F(AdminActions, EachActionIsLoggedWithTheRequestIdButNeverTheKey) {
  ::testing::internal::CaptureStderr();
  ASSERT_EQ(act("/admin/targets/q%2Fother/force-open").status, 200u);
  EXPECT_EQ(act("/admin/targets/q%2Fother/reset", "Bearer wrong-key-value").status, 401u);
  const std::string logs = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(logs.find("\"admin_breaker_action\""), std::string::npos) << logs;
  EXPECT_NE(logs.find("\"request_id\":\"req-test-1\""), std::string::npos) << logs;
  EXPECT_NE(logs.find("\"action\":\"force_open\""), std::string::npos) << logs;
  EXPECT_NE(logs.find("\"from\":\"closed\",\"to\":\"forced_open\""), std::string::npos) << logs;
  EXPECT_NE(logs.find("\"admin_unauthorized\""), std::string::npos) << logs;
  EXPECT_EQ(logs.find(kKey), std::string::npos);
  EXPECT_EQ(logs.find("wrong-key-value"), std::string::npos);
}

TEST(AdminEvents, OperatorTransitionsArePublishedAsEvents) {
  bulwark::ManualClock clock;
  tel::EventNotifier events;
  p::HealthRegistry health(clock, &events);
  // Nothing listens on port 9: delivery fails, publishing is what is tested here.
  std::string with_hook(kConfig);
  with_hook += "events:\n  webhook: {url: \"http://127.0.0.1:9/hook\", retries: 0, timeout: 200ms}\n";
  auto rt = p::Runtime::build(load(with_hook), health, key_env());
  ASSERT_TRUE(rt.has_value()) << rt.error().message;
  EXPECT_TRUE(events.enabled());
  ASSERT_EQ(p::admin_target_action(**rt, "Bearer " + kKey, "/admin/targets/q%2Fother/force-open", "r1").status, 200u);
  ASSERT_EQ(p::admin_target_action(**rt, "Bearer " + kKey, "/admin/targets/q%2Fother/reset", "r2").status, 200u);
  EXPECT_EQ(events.stats().published, 2u);
  EXPECT_TRUE(events.wait_idle(5s));
}

TEST(AdminEvents, TheRuntimeConfiguresTheWebhookAndAReloadTurnsItOff) {
  bulwark::ManualClock clock;
  tel::EventNotifier events;
  p::HealthRegistry health(clock, &events);
  std::string with_hook(kConfig);
  with_hook += "events:\n  instance: gw-test\n  webhook: {url: \"http://127.0.0.1:9/hook\", retries: 0, timeout: 200ms}\n";
  ASSERT_TRUE(p::Runtime::build(load(with_hook), health, key_env()).has_value());
  EXPECT_TRUE(events.enabled());
  ASSERT_TRUE(p::Runtime::build(load(kConfig), health, key_env()).has_value());
  EXPECT_FALSE(events.enabled());
}

// The `events:` section (parsed by config, applied by the Runtime).
TEST(EventsConfig, ParsesTheWebhookAndReportsMistakesWithoutEchoingSecrets) {
  std::string ok(kConfig);
  ok += R"(events:
  instance: gw-eu-1
  webhook:
    url: https://hooks.example/T0/secret-path
    timeout: 3s
    queue: 50
    retries: 5
    backoff: 1s
    headers: {Authorization: "Bearer hook-token", X-Team: ops}
    verify_tls: false
)";
  auto c = load(ok);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->events.webhook.has_value());
  const cfg::WebhookConfig& w = *c->events.webhook;
  EXPECT_EQ(c->events.instance, "gw-eu-1");
  EXPECT_EQ(w.url.reveal(), "https://hooks.example/T0/secret-path");
  EXPECT_EQ(w.timeout, 3s);
  EXPECT_EQ(w.queue, 50u);
  EXPECT_EQ(w.retries, 5u);
  EXPECT_EQ(w.backoff, 1s);
  ASSERT_EQ(w.headers.size(), 2u);
  EXPECT_EQ(w.headers[0].second.reveal(), "Bearer hook-token");
  EXPECT_FALSE(w.verify_tls);

  auto errors_of = [](const std::string& events) {
    std::string y(kConfig);
    y += events;
    auto r = cfg::load_string(y, [](std::string_view) { return std::optional<std::string>{}; }, "t.yaml");
    std::string all;
    if (!r)
      for (const auto& e : r.error()) all += e.to_string("t.yaml") + "\n";
    return all;
  };
  const std::string bad_scheme = errors_of("events:\n  webhook: {url: \"ftp://h/secret-path\"}\n");
  EXPECT_NE(bad_scheme.find("events.webhook.url: the scheme must be http or https"), std::string::npos) << bad_scheme;
  EXPECT_EQ(bad_scheme.find("secret-path"), std::string::npos) << bad_scheme;
  EXPECT_NE(errors_of("events:\n  webhook: {timeout: 1s}\n").find("needs 'url'"), std::string::npos);
  EXPECT_NE(errors_of("events:\n  webhook: {url: \"http://h/x\", queue: 0}\n").find("events.webhook.queue"), std::string::npos);
  EXPECT_NE(errors_of("events:\n  webhook: {url: \"http://h/x\", headers: {Host: x}}\n").find("is set by the gateway"),
            std::string::npos);
  EXPECT_NE(errors_of("events:\n  webhook: {url: \"http://h/x\", colour: red}\n").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(errors_of("events:\n  sms: {}\n").find("unknown key 'sms' in events"), std::string::npos);
}
