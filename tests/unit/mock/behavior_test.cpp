#include "mock/behavior.hpp"

#include <gtest/gtest.h>

namespace bulwark::mock {
namespace {

using std::chrono::milliseconds;

Config parse_ok(std::string_view text) {
  auto c = parse_config(text);
  EXPECT_TRUE(c) << (c ? "" : c.error().message);
  return c ? *c : Config{};
}

std::string parse_error(std::string_view text) {
  auto c = parse_config(text);
  EXPECT_FALSE(c);
  if (c) return {};
  EXPECT_EQ(c.error().kind, ErrorKind::bad_request);
  return c.error().message;
}

TEST(Behavior, EmptyDocumentGivesBuiltInDefault) {
  const auto c = parse_ok("");
  EXPECT_EQ(c.default_behavior, Behavior{});
  EXPECT_EQ(c.default_behavior.tokens, 16u);
  EXPECT_TRUE(c.models.empty());
}

TEST(Behavior, ParsesTheDocumentedExample) {
  const auto c = parse_ok(R"(
default: {tokens: 16}
models:
  mock-fast: {tokens: 8}
  flaky:
    tokens: 60
    latency_ms: 5
    first_token_ms: 7
    token_delay_ms: 3
    context_window: 100
    prefill: false
    faults:
      - when: {times: 1}
        action: {status: 429, error: rate_limit, retry_after_s: 2}
      - when: {after: 3, times: 2}
        action: {reset: true}
      - when: {fraction: 0.25}
        action: {cut_after_tokens: 40}
      - when: {flap_period_ms: 20000}
        action: {latency_ms: 5000, first_token_ms: 20000}
      - when: {always: true}
        action: {retry_after_ms: 1500, error: overloaded}
)");
  EXPECT_EQ(c.default_behavior.tokens, 16u);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models.at("mock-fast").tokens, 8u);
  const auto& f = c.models.at("flaky");
  EXPECT_EQ(f.tokens, 60u);
  EXPECT_EQ(f.latency, milliseconds(5));
  EXPECT_EQ(f.first_token, milliseconds(7));
  EXPECT_EQ(f.token_delay, milliseconds(3));
  EXPECT_EQ(f.context_window, 100u);
  EXPECT_FALSE(f.prefill);
  ASSERT_EQ(f.faults.size(), 5u);

  EXPECT_EQ(f.faults[0].when.times, 1u);
  EXPECT_EQ(f.faults[0].action.kind, ActionKind::error);
  EXPECT_EQ(f.faults[0].action.status, 429);
  EXPECT_EQ(f.faults[0].action.error, ErrorType::rate_limit);
  EXPECT_EQ(f.faults[0].action.retry_after, milliseconds(2000));
  EXPECT_FALSE(f.faults[0].action.retry_after_in_ms);

  EXPECT_EQ(f.faults[1].when.after, 3u);
  EXPECT_EQ(f.faults[1].when.times, 2u);
  EXPECT_EQ(f.faults[1].action.kind, ActionKind::reset);

  EXPECT_EQ(f.faults[2].when.fraction, 0.25);
  EXPECT_EQ(f.faults[2].action.kind, ActionKind::cut);
  EXPECT_EQ(f.faults[2].action.after_tokens, 40u);

  EXPECT_EQ(f.faults[3].when.flap_period, milliseconds(20000));
  EXPECT_EQ(f.faults[3].action.kind, ActionKind::none);
  EXPECT_EQ(f.faults[3].action.latency, milliseconds(5000));
  EXPECT_EQ(f.faults[3].action.first_token, milliseconds(20000));

  EXPECT_TRUE(f.faults[4].when.always);
  EXPECT_EQ(f.faults[4].action.status, 503);  // overloaded's own status
  EXPECT_EQ(f.faults[4].action.retry_after, milliseconds(1500));
  EXPECT_TRUE(f.faults[4].action.retry_after_in_ms);
}

TEST(Behavior, StatusAloneImpliesAnErrorType) {
  const auto c = parse_ok(R"(
default:
  faults:
    - {when: {always: true}, action: {status: 502}}
    - {when: {always: true}, action: {status: 429}}
    - {when: {always: true}, action: {status: 418}}
)");
  EXPECT_EQ(c.default_behavior.faults[0].action.error, ErrorType::bad_gateway);
  EXPECT_EQ(c.default_behavior.faults[1].action.error, ErrorType::rate_limit);
  EXPECT_EQ(c.default_behavior.faults[2].action.error, ErrorType::invalid_request);
}

TEST(Behavior, EveryActionKindParses) {
  const auto c = parse_ok(R"(
default:
  faults:
    - {when: {always: true}, action: {hang: true}}
    - {when: {always: true}, action: {stall_after_tokens: 10}}
    - {when: {always: true}, action: {malformed_after_tokens: 5}}
    - {when: {always: true}, action: {omit_done: true}}
    - {when: {always: true}, action: {error: context_length}}
    - {when: {always: false}, action: {token_delay_ms: 9}}
)");
  const auto& f = c.default_behavior.faults;
  EXPECT_EQ(f[0].action.kind, ActionKind::hang);
  EXPECT_EQ(f[1].action.kind, ActionKind::stall);
  EXPECT_EQ(f[1].action.after_tokens, 10u);
  EXPECT_EQ(f[2].action.kind, ActionKind::malformed);
  EXPECT_EQ(f[3].action.kind, ActionKind::omit_done);
  EXPECT_EQ(f[4].action.status, 400);
  EXPECT_TRUE(f[5].when.never);
  EXPECT_EQ(f[5].action.token_delay, milliseconds(9));
}

TEST(Behavior, ErrorInsideTheStreamParsesAndRoundTrips) {
  const auto c = parse_ok(R"(
default:
  faults:
    - {when: {always: true}, action: {error_after_tokens: 3}}
    - {when: {always: true}, action: {error_after_tokens: 0, error: model_error}}
    - {when: {always: true}, action: {error_after_tokens: 2, status: 529, retry_after_s: 1}}
    - {when: {always: true}, action: {error: model_not_ready}}
)");
  const auto& f = c.default_behavior.faults;
  EXPECT_EQ(f[0].action.kind, ActionKind::stream_error);
  EXPECT_EQ(f[0].action.after_tokens, 3u);
  EXPECT_EQ(f[0].action.error, ErrorType::overloaded);
  EXPECT_EQ(f[0].action.status, 503);
  EXPECT_EQ(f[1].action.error, ErrorType::model_error);
  EXPECT_EQ(f[1].action.status, 424);
  EXPECT_EQ(f[2].action.status, 529);
  EXPECT_EQ(f[2].action.error, ErrorType::server_error);
  EXPECT_EQ(f[2].action.retry_after, milliseconds(1000));
  EXPECT_EQ(f[3].action.kind, ActionKind::error);
  EXPECT_EQ(f[3].action.status, 429);
  // The canonical JSON parses back to the same behaviour.
  auto again = parse_config(to_json(c));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, c);
  EXPECT_NE(parse_error("default: {faults: [{when: {always: true}, action: {error_after_tokens: 1, hang: true}}]}")
                .find("choose one of"),
            std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {always: true}, action: {error: nope}}]}").find("model_not_ready"),
            std::string::npos);
}

TEST(Behavior, UnknownKeysAreErrorsNamingThePath) {
  EXPECT_EQ(parse_error("defaults: {tokens: 3}"),
            "config: unknown key 'defaults' (expected one of: default, models)");
  EXPECT_NE(parse_error("models: {m: {tokenz: 3}}").find("models.m: unknown key 'tokenz'"),
            std::string::npos);
  const auto msg = parse_error(R"(
models:
  flaky:
    faults:
      - when: {times: 1}
        action: {stauts: 429}
)");
  EXPECT_NE(msg.find("models.flaky.faults[0].action: unknown key 'stauts'"), std::string::npos) << msg;
  EXPECT_NE(parse_error("default: {faults: [{when: {sometimes: true}, action: {reset: true}}]}")
                .find("default.faults[0].when: unknown key 'sometimes'"),
            std::string::npos);
}

TEST(Behavior, BadValuesAreErrors) {
  EXPECT_NE(parse_error("default: {tokens: -1}").find("default.tokens: expected a non-negative integer"), std::string::npos);
  EXPECT_NE(parse_error("default: {tokens: 0}").find("at least 1"), std::string::npos);
  EXPECT_NE(parse_error("default: {tokens: '8'}").find("default.tokens"), std::string::npos);
  EXPECT_NE(parse_error("default: {prefill: maybe}").find("true or false"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {fraction: 1.5}, action: {reset: true}}]}").find("between 0 and 1"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {}, action: {reset: true}}]}").find("needs at least one"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}, action: {}}]}").find("an action needs"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}, action: {reset: true, hang: true}}]}").find("choose one"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}, action: {error: teapot}}]}").find("unknown error 'teapot'"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}, action: {status: 200}}]}").find("400-599"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}, action: {reset: true, retry_after_s: 1}}]}").find("need status or error"), std::string::npos);
  EXPECT_NE(parse_error("default: {faults: [{when: {times: 1}}]}").find("missing 'action'"), std::string::npos);
  EXPECT_NE(parse_error("models: {default: {tokens: 3}}").find("reserved"), std::string::npos);
  EXPECT_NE(parse_error("default: [1, 2]").find("default: expected a mapping"), std::string::npos);
  EXPECT_NE(parse_error("default: {tokens: 3").find("syntax error"), std::string::npos);
}

TEST(Behavior, JsonEntryUsesTheSameShape) {
  auto b = parse_behavior(R"({"tokens": 5, "faults": [{"when": {"times": 2}, "action": {"status": 503, "error": "unavailable", "retry_after_s": 1}}]})");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->tokens, 5u);
  ASSERT_EQ(b->faults.size(), 1u);
  EXPECT_EQ(b->faults[0].action.error, ErrorType::unavailable);
  EXPECT_EQ(b->faults[0].action.retry_after, milliseconds(1000));

  auto bad = parse_behavior(R"({"tokens": 5, "colour": "red"})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unknown key 'colour'"), std::string::npos);
  EXPECT_FALSE(parse_behavior(""));
}

TEST(Behavior, CanonicalJsonRoundTrips) {
  const auto c = parse_ok(R"(
default: {tokens: 4, prefill: false}
models:
  "we\"ird": {tokens: 2}
  flaky:
    latency_ms: 3
    faults:
      - when: {after: 1, times: 2, fraction: 0.5}
        action: {status: 429, error: rate_limit, retry_after_ms: 250, latency_ms: 10}
      - when: {flap_period_ms: 1000}
        action: {cut_after_tokens: 0}
      - when: {always: false}
        action: {omit_done: true}
      - when: {always: true}
        action: {error: auth, retry_after_s: 3}
)");
  const auto json = to_json(c);
  const auto again = parse_config(json);
  ASSERT_TRUE(again) << again.error().message << "\n" << json;
  EXPECT_EQ(*again, c) << json;
}

TEST(Behavior, ToolCallAnswerParsesAndRoundTrips) {
  const auto c = parse_ok(R"(
default: {tool_call: {name: lookup}}
models:
  tool: {tool_call: {name: send_email, arguments: ['{"to":"jane.d', 'oe@example.com"}']}}
  whole: {tool_call: {name: f, arguments: '{"a":1}'}}
  legacy: {tool_call: {name: f, legacy: true}}
)");
  ASSERT_TRUE(c.default_behavior.tool_call);
  EXPECT_EQ(c.default_behavior.tool_call->arguments, std::vector<std::string>{"{}"});
  const auto& tool = c.models.at("tool").tool_call;
  ASSERT_TRUE(tool);
  EXPECT_EQ(tool->name, "send_email");
  EXPECT_EQ(tool->arguments, (std::vector<std::string>{R"({"to":"jane.d)", R"(oe@example.com"})"}));
  EXPECT_EQ(c.models.at("whole").tool_call->arguments, std::vector<std::string>{R"({"a":1})"});
  EXPECT_FALSE(c.models.at("whole").tool_call->legacy);
  EXPECT_TRUE(c.models.at("legacy").tool_call->legacy);
  const auto again = parse_config(to_json(c));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, c);
  // The control API's JSON form.
  auto b = parse_behavior(R"({"tool_call":{"name":"send","arguments":["{\"to\":","\"x\"}"]}})");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->tool_call->arguments.size(), 2u);
  EXPECT_NE(parse_error("default: {tool_call: {arguments: ['{}']}}").find("default.tool_call: missing 'name'"), std::string::npos);
  EXPECT_NE(parse_error("default: {tool_call: {name: f, arguments: []}}").find("default.tool_call.arguments"), std::string::npos);
  EXPECT_NE(parse_error("default: {tool_call: {name: f, args: '{}'}}").find("unknown key 'args'"), std::string::npos);
}

TEST(Behavior, ErrorTypeNamesRoundTrip) {
  for (auto t : {ErrorType::rate_limit, ErrorType::overloaded, ErrorType::server_error,
                 ErrorType::bad_gateway, ErrorType::unavailable, ErrorType::context_length,
                 ErrorType::content_filter, ErrorType::invalid_request, ErrorType::auth})
    EXPECT_EQ(error_type_from_name(name_of(t)), t);
  EXPECT_EQ(default_status(ErrorType::rate_limit), 429);
  EXPECT_EQ(default_status(ErrorType::overloaded), 503);
  EXPECT_EQ(default_status(ErrorType::server_error), 500);
  EXPECT_EQ(default_status(ErrorType::bad_gateway), 502);
  EXPECT_EQ(default_status(ErrorType::unavailable), 503);
  EXPECT_EQ(default_status(ErrorType::context_length), 400);
  EXPECT_EQ(default_status(ErrorType::content_filter), 400);
  EXPECT_EQ(default_status(ErrorType::invalid_request), 400);
  EXPECT_EQ(default_status(ErrorType::auth), 401);
}

}  // namespace
}  // namespace bulwark::mock
