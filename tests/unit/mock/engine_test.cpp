#include "mock/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/clock.hpp"

namespace bulwark::mock {
namespace {

using std::chrono::milliseconds;

Action act(ActionKind kind, std::uint32_t after_tokens = 0) {
  Action a;
  a.kind = kind;
  a.after_tokens = after_tokens;
  return a;
}

Trigger times(std::uint64_t n, std::uint64_t after = 0) {
  Trigger t;
  t.times = n;
  t.after = after;
  return t;
}

TriggerInput at(std::uint64_t attempt) {
  TriggerInput in;
  in.attempt = attempt;
  in.model = "m";
  return in;
}

TEST(Trigger, TimesFiresForTheFirstAttempts) {
  const auto t = times(2);
  EXPECT_TRUE(fires(t, at(1)));
  EXPECT_TRUE(fires(t, at(2)));
  EXPECT_FALSE(fires(t, at(3)));
}

TEST(Trigger, AfterAndTimesSelectAWindow) {
  const auto t = times(2, 3);  // attempts 4 and 5
  for (std::uint64_t a = 1; a <= 7; ++a) EXPECT_EQ(fires(t, at(a)), a == 4 || a == 5) << a;
  Trigger open_ended;
  open_ended.after = 2;
  EXPECT_FALSE(fires(open_ended, at(2)));
  EXPECT_TRUE(fires(open_ended, at(3)));
  EXPECT_TRUE(fires(open_ended, at(300)));
}

TEST(Trigger, AlwaysAndNever) {
  Trigger always;
  always.always = true;
  Trigger never;
  never.never = true;
  for (std::uint64_t a = 1; a < 10; ++a) {
    EXPECT_TRUE(fires(always, at(a)));
    EXPECT_FALSE(fires(never, at(a)));
  }
}

TEST(Trigger, FractionIsSeededAndDeterministic) {
  Trigger t;
  t.fraction = 0.3;
  auto count = [&](std::uint64_t seed) {
    int hits = 0;
    for (std::uint64_t a = 1; a <= 10000; ++a) {
      auto in = at(a);
      in.seed = seed;
      hits += fires(t, in) ? 1 : 0;
    }
    return hits;
  };
  const int hits = count(42);
  EXPECT_GT(hits, 2700);
  EXPECT_LT(hits, 3300);
  EXPECT_EQ(count(42), hits);  // same seed, same attempts, same coins

  std::vector<bool> a, b;
  for (std::uint64_t i = 1; i <= 64; ++i) {
    auto in = at(i);
    in.seed = 1;
    a.push_back(fires(t, in));
    in.seed = 2;
    b.push_back(fires(t, in));
  }
  EXPECT_NE(a, b);

  Trigger none;
  none.fraction = 0.0;
  Trigger all;
  all.fraction = 1.0;
  for (std::uint64_t i = 1; i < 100; ++i) {
    EXPECT_FALSE(fires(none, at(i)));
    EXPECT_TRUE(fires(all, at(i)));
  }
}

TEST(Trigger, FlapIsFaultyInTheFirstHalfOfEachPeriod) {
  Trigger t;
  t.flap_period = milliseconds(1000);
  ManualClock clock;
  auto in = at(1);
  in.behavior_set_at = clock.now();
  auto check = [&](bool expected) {
    in.now = clock.now();
    return fires(t, in) == expected;
  };
  EXPECT_TRUE(check(true));
  clock.advance(milliseconds(499));
  EXPECT_TRUE(check(true));
  clock.advance(milliseconds(1));
  EXPECT_TRUE(check(false));
  clock.advance(milliseconds(499));
  EXPECT_TRUE(check(false));
  clock.advance(milliseconds(1));
  EXPECT_TRUE(check(true));  // next period
  clock.advance(milliseconds(10'600));
  EXPECT_TRUE(check(false));  // 11.6 s: second half of the 12th period
}

TEST(Trigger, ConditionsCombine) {
  Trigger t = times(1, 1);
  t.flap_period = milliseconds(100);
  ManualClock clock;
  auto in = at(2);
  in.behavior_set_at = in.now = clock.now();
  EXPECT_TRUE(fires(t, in));
  in.now += milliseconds(60);
  EXPECT_FALSE(fires(t, in));  // window open, flap healthy
  in.now = in.behavior_set_at;
  in.attempt = 3;
  EXPECT_FALSE(fires(t, in));  // flap faulty, window closed
}

Behavior with_fault(Trigger when, Action action, std::uint32_t tokens = 10) {
  Behavior b;
  b.tokens = tokens;
  b.faults.push_back(Fault{when, action});
  return b;
}

Action status_action(int status, ErrorType type) {
  Action a;
  a.kind = ActionKind::error;
  a.status = status;
  a.error = type;
  return a;
}

ChatRequest request(std::string_view model, std::uint64_t prompt_tokens = 3) {
  ChatRequest r;
  r.model = model;
  r.prompt_tokens = prompt_tokens;
  return r;
}

const AuthState kNoAuth{};

TEST(Engine, FirstAttemptFailsThenAnswers) {
  Config c;
  auto a = status_action(429, ErrorType::rate_limit);
  a.retry_after = milliseconds(2000);
  c.models["flaky"] = with_fault(times(1), a, 60);
  ManualClock clock;
  Engine e(c, clock, 0);

  const auto p1 = e.plan(request("flaky"), kNoAuth);
  EXPECT_EQ(p1.attempt, 1u);
  EXPECT_EQ(p1.kind, ActionKind::error);
  EXPECT_EQ(p1.status, 429);
  EXPECT_EQ(p1.retry_after, milliseconds(2000));

  const auto p2 = e.plan(request("flaky", 7), kNoAuth);
  EXPECT_EQ(p2.attempt, 2u);
  EXPECT_EQ(p2.kind, ActionKind::none);
  EXPECT_EQ(p2.status, 200);
  EXPECT_EQ(p2.tokens, 60u);
  EXPECT_EQ(p2.completion_tokens, 60u);
  EXPECT_EQ(p2.prompt_tokens, 7u);
}

TEST(Engine, UnknownModelsUseDefaultWithTheirOwnCounters) {
  Config c;
  c.default_behavior = with_fault(times(1), act(ActionKind::reset), 5);
  ManualClock clock;
  Engine e(c, clock, 0);
  EXPECT_EQ(e.plan(request("a"), kNoAuth).kind, ActionKind::reset);
  EXPECT_EQ(e.plan(request("b"), kNoAuth).kind, ActionKind::reset);
  const auto p = e.plan(request("a"), kNoAuth);
  EXPECT_EQ(p.kind, ActionKind::none);
  EXPECT_EQ(p.attempt, 2u);
  EXPECT_EQ(p.tokens, 5u);
}

TEST(Engine, FirstMatchingFaultWinsAndOverridesTimings) {
  Behavior b;
  b.latency = milliseconds(5);
  b.first_token = milliseconds(6);
  b.token_delay = milliseconds(7);
  Action slow;
  slow.latency = milliseconds(5000);
  slow.first_token = milliseconds(20000);
  Trigger always;
  always.always = true;
  b.faults = {Fault{times(1, 1), slow}, Fault{always, act(ActionKind::hang)}};
  Config c;
  c.models["m"] = b;
  ManualClock clock;
  Engine e(c, clock, 0);
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::hang);
  const auto p2 = e.plan(request("m"), kNoAuth);
  EXPECT_EQ(p2.kind, ActionKind::none);
  EXPECT_EQ(p2.latency, milliseconds(5000));
  EXPECT_EQ(p2.first_token, milliseconds(20000));
  EXPECT_EQ(p2.token_delay, milliseconds(7));
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::hang);
}

TEST(Engine, FlapFollowsTheClockFromWhenTheBehaviourWasSet) {
  Trigger flap;
  flap.flap_period = milliseconds(20000);
  ManualClock clock;
  Engine e(Config{}, clock, 0);
  clock.advance(milliseconds(7000));
  e.set_behavior("m", with_fault(flap, status_action(503, ErrorType::unavailable)));
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::error);
  clock.advance(milliseconds(9999));
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::error);
  clock.advance(milliseconds(1));
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::none);
  clock.advance(milliseconds(10000));
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::error);
}

TEST(Engine, SettingABehaviourRestartsItsCounters) {
  ManualClock clock;
  Engine e(Config{}, clock, 0);
  const auto fail_once = with_fault(times(1), status_action(500, ErrorType::server_error));
  e.set_behavior("m", fail_once);
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::error);
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::none);
  e.set_behavior("m", fail_once);
  const auto p = e.plan(request("m"), kNoAuth);
  EXPECT_EQ(p.kind, ActionKind::error);
  EXPECT_EQ(p.attempt, 1u);
  // History survives; only the counter restarted.
  EXPECT_EQ(e.stats_of("m").attempts, 3u);

  // Setting the default restarts every model that falls back to it.
  e.set_behavior("default", fail_once);
  EXPECT_EQ(e.plan(request("other"), kNoAuth).kind, ActionKind::error);
  EXPECT_EQ(e.plan(request("other"), kNoAuth).kind, ActionKind::none);
  e.set_behavior("default", fail_once);
  EXPECT_EQ(e.plan(request("other"), kNoAuth).kind, ActionKind::error);

  EXPECT_TRUE(e.remove_behavior("m"));
  EXPECT_FALSE(e.remove_behavior("m"));
  const auto after_remove = e.plan(request("m"), kNoAuth);  // now on the default
  EXPECT_EQ(after_remove.attempt, 1u);
  EXPECT_EQ(after_remove.kind, ActionKind::error);
}

TEST(Engine, AuthIsCheckedBeforeFaults) {
  Config c;
  c.default_behavior = with_fault(times(1), act(ActionKind::reset));
  ManualClock clock;
  Engine e(c, clock, 0);
  const auto p = e.plan(request("m"), AuthState{true, true, false});
  EXPECT_EQ(p.kind, ActionKind::error);
  EXPECT_EQ(p.status, 401);
  EXPECT_EQ(p.error, ErrorType::auth);
  EXPECT_EQ(p.message, "Incorrect API key provided.");
  const auto missing = e.plan(request("m"), AuthState{true, false, false});
  EXPECT_NE(missing.message.find("didn't provide an API key"), std::string::npos);
  // The counter still advanced: attempt 3 is past the one-shot reset.
  EXPECT_EQ(e.plan(request("m"), AuthState{true, true, true}).kind, ActionKind::none);
}

TEST(Engine, ContextWindowRejectsLongPrompts) {
  Config c;
  c.default_behavior.context_window = 10;
  ManualClock clock;
  Engine e(c, clock, 0);
  EXPECT_EQ(e.plan(request("m", 10), kNoAuth).kind, ActionKind::none);
  const auto p = e.plan(request("m", 11), kNoAuth);
  EXPECT_EQ(p.kind, ActionKind::error);
  EXPECT_EQ(p.status, 400);
  EXPECT_EQ(p.error, ErrorType::context_length);
  EXPECT_EQ(p.message,
            "This model's maximum context length is 10 tokens. However, your messages resulted "
            "in 11 tokens. Please reduce the length of the messages.");
}

TEST(Engine, PrefillAnswersTheRemainder) {
  Config c;
  c.default_behavior.tokens = 6;
  c.models["strict"].prefill = false;
  ManualClock clock;
  Engine e(c, clock, 0);
  auto req = request("m");
  req.last_is_assistant = true;
  req.last_content = "w1 w2 w3";
  const auto p = e.plan(req, kNoAuth);
  EXPECT_EQ(p.kind, ActionKind::none);
  EXPECT_EQ(p.resume.first_token, 4u);
  EXPECT_EQ(p.completion_tokens, 3u);

  req.last_content = "something else";
  EXPECT_EQ(e.plan(req, kNoAuth).completion_tokens, 6u);

  req.model = "strict";
  const auto rejected = e.plan(req, kNoAuth);
  EXPECT_EQ(rejected.kind, ActionKind::error);
  EXPECT_EQ(rejected.status, 400);
  EXPECT_EQ(rejected.error, ErrorType::invalid_request);
  EXPECT_NE(rejected.message.find("assistant prefill"), std::string::npos);
}

TEST(Engine, OmitDoneOnlyAffectsStreams) {
  Trigger always;
  always.always = true;
  Config c;
  c.default_behavior = with_fault(always, act(ActionKind::omit_done));
  ManualClock clock;
  Engine e(c, clock, 0);
  EXPECT_EQ(e.plan(request("m"), kNoAuth).kind, ActionKind::none);
  auto streaming = request("m");
  streaming.stream = true;
  EXPECT_EQ(e.plan(streaming, kNoAuth).kind, ActionKind::omit_done);
}

TEST(Engine, FractionReplaysWithTheSameSeed) {
  Trigger coin;
  coin.fraction = 0.5;
  Config c;
  c.default_behavior = with_fault(coin, act(ActionKind::reset));
  ManualClock clock;
  auto run = [&](std::uint64_t seed) {
    Engine e(c, clock, seed);
    std::vector<bool> faulty;
    for (int i = 0; i < 64; ++i) faulty.push_back(e.plan(request("m"), kNoAuth).kind == ActionKind::reset);
    return faulty;
  };
  const auto first = run(9);
  EXPECT_EQ(run(9), first);
  EXPECT_NE(run(10), first);
  const auto hits = std::count(first.begin(), first.end(), true);
  EXPECT_GT(hits, 16);
  EXPECT_LT(hits, 48);
}

TEST(Engine, StatsRecordEachAttempt) {
  Config c;
  c.models["flaky"] = with_fault(times(1), status_action(429, ErrorType::rate_limit));
  c.models["flaky"].faults.push_back(Fault{times(1, 1), act(ActionKind::reset)});
  ManualClock clock;
  Engine e(c, clock, 0, /*record_limit=*/3);
  auto req = request("flaky");
  e.plan(req, AuthState{false, true, false});
  clock.advance(milliseconds(250));
  req.stream = true;
  e.plan(req, kNoAuth);
  e.plan(req, kNoAuth);
  e.plan(req, kNoAuth);
  e.note_rejected();

  const auto s = e.stats_of("flaky");
  EXPECT_EQ(s.attempts, 4u);
  EXPECT_EQ(s.records_dropped, 1u);
  ASSERT_EQ(s.records.size(), 3u);
  EXPECT_EQ(s.records[0].attempt, 1u);
  EXPECT_EQ(s.records[0].outcome, "error");
  EXPECT_EQ(s.records[0].status, 429);
  EXPECT_EQ(s.records[0].error, ErrorType::rate_limit);
  EXPECT_TRUE(s.records[0].authorization);
  EXPECT_FALSE(s.records[0].stream);
  EXPECT_EQ(s.records[1].outcome, "reset");
  EXPECT_EQ(s.records[1].status, 0);
  EXPECT_FALSE(s.records[1].authorization);
  EXPECT_TRUE(s.records[1].stream);
  EXPECT_EQ(s.records[1].at_unix_ms - s.records[0].at_unix_ms, 250);
  EXPECT_EQ(s.records[2].outcome, "ok");
  EXPECT_EQ(s.records[2].status, 200);
  EXPECT_EQ(e.rejected(), 1u);

  const auto json = e.stats_json();
  EXPECT_NE(json.find("\"flaky\":{\"attempts\":4,\"current_attempt\":4,\"records_dropped\":1"),
            std::string::npos) << json;
  EXPECT_NE(json.find("\"outcome\":\"error\",\"status\":429,\"error\":\"rate_limit\""),
            std::string::npos) << json;
  EXPECT_NE(json.find("\"rejected\":1"), std::string::npos);

  e.reset_stats();
  EXPECT_EQ(e.stats_of("flaky").attempts, 0u);
  EXPECT_EQ(e.plan(req, kNoAuth).attempt, 1u);  // counters restart too
}

TEST(Engine, BehaviorsJsonListsCurrentConfig) {
  Config c;
  c.models["a"].tokens = 3;
  ManualClock clock;
  Engine e(c, clock, 0);
  e.set_behavior("b", Behavior{});
  auto parsed = parse_config(e.behaviors_json());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->models.size(), 2u);
  EXPECT_EQ(parsed->models.at("a").tokens, 3u);
  EXPECT_EQ(e.model_names(), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace bulwark::mock
