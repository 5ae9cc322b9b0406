#include "resilience/retry_after.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;
using SysTime = std::chrono::system_clock::time_point;

// 2024-05-01T12:00:00Z
const SysTime kNow = std::chrono::sys_days{std::chrono::year{2024} / 5 / 1} + 12h;

struct Headers {
  std::map<std::string, std::string> fields;  // lower-case names
  HeaderLookup lookup() const {
    return [this](std::string_view name) -> std::optional<std::string_view> {
      const auto it = fields.find(std::string(name));
      if (it == fields.end()) return std::nullopt;
      return std::string_view(it->second);
    };
  }
};

std::optional<RetryAfter> parse(const Headers& h, int status = 429, Duration max = 60s) {
  return parse_retry_after(h.lookup(), status, kNow, max);
}

TEST(RetryAfterFormats, Milliseconds) {
  EXPECT_EQ(parse_milliseconds("20"), Duration(20ms));
  EXPECT_EQ(parse_milliseconds(" 1234.5 "), Duration(1234500us));
  EXPECT_EQ(parse_milliseconds("0"), Duration::zero());
  EXPECT_EQ(parse_milliseconds("-5"), std::nullopt);
  EXPECT_EQ(parse_milliseconds(""), std::nullopt);
  EXPECT_EQ(parse_milliseconds("1e3"), std::nullopt);
  EXPECT_EQ(parse_milliseconds("abc"), std::nullopt);
}

TEST(RetryAfterFormats, DeltaSeconds) {
  EXPECT_EQ(parse_delta_seconds("120"), Duration(120s));
  EXPECT_EQ(parse_delta_seconds("1.5"), Duration(1500ms));
  EXPECT_EQ(parse_delta_seconds(".25"), Duration(250ms));
  EXPECT_EQ(parse_delta_seconds("99999999999999999999"), kRetryAfterSaturation);
  EXPECT_EQ(parse_delta_seconds("1 2"), std::nullopt);
  EXPECT_EQ(parse_delta_seconds("."), std::nullopt);
  EXPECT_EQ(parse_delta_seconds("+3"), std::nullopt);
}

TEST(RetryAfterFormats, HttpDateAllThreeForms) {
  const SysTime expected = std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 37s;
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
  EXPECT_EQ(parse_http_date("Wed, 01 May 2024 12:00:30 GMT"), kNow + 30s);
  EXPECT_EQ(parse_http_date("Wed, 01 May 2024 12:00:30 UTC"), std::nullopt);
  EXPECT_EQ(parse_http_date("Wed, 31 Feb 2024 12:00:30 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Wed, 01 Foo 2024 12:00:30 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Wed, 01 May 2024 25:00:30 GMT"), std::nullopt);
  EXPECT_EQ(parse_http_date("Wed, 01 May 2024 12:00:30 GMT trailing"), std::nullopt);
  EXPECT_EQ(parse_http_date("120"), std::nullopt);
}

TEST(RetryAfterFormats, GoDurations) {
  EXPECT_EQ(parse_go_duration("1s"), Duration(1s));
  EXPECT_EQ(parse_go_duration("6m0s"), Duration(6min));
  EXPECT_EQ(parse_go_duration("20ms"), Duration(20ms));
  EXPECT_EQ(parse_go_duration("1h2m3.5s"), Duration(1h + 2min + 3500ms));
  EXPECT_EQ(parse_go_duration("0"), Duration::zero());
  EXPECT_EQ(parse_go_duration("0.5s"), Duration(500ms));
  EXPECT_EQ(parse_go_duration("250us"), Duration(250us));
  EXPECT_EQ(parse_go_duration("250\xC2\xB5s"), Duration(250us));
  EXPECT_EQ(parse_go_duration("7ns"), Duration(7ns));
  EXPECT_EQ(parse_go_duration("-1s"), std::nullopt);
  EXPECT_EQ(parse_go_duration("5"), std::nullopt) << "a unit is required except for 0";
  EXPECT_EQ(parse_go_duration("5x"), std::nullopt);
  EXPECT_EQ(parse_go_duration("s"), std::nullopt);
  EXPECT_EQ(parse_go_duration(""), std::nullopt);
}

TEST(RetryAfterFormats, Rfc3339) {
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:30Z"), kNow + 30s);
  EXPECT_EQ(parse_rfc3339("2024-05-01t12:00:30z"), kNow + 30s);
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:30.25Z"), kNow + 30250ms);
  EXPECT_EQ(parse_rfc3339("2024-05-01T14:00:30+02:00"), kNow + 30s);
  EXPECT_EQ(parse_rfc3339("2024-05-01T11:30:30-00:30"), kNow + 30s);
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:30"), std::nullopt) << "offset is required";
  EXPECT_EQ(parse_rfc3339("2024-05-01T12:00:30.Z"), std::nullopt);
  EXPECT_EQ(parse_rfc3339("2024-13-01T12:00:30Z"), std::nullopt);
  EXPECT_EQ(parse_rfc3339("2024-05-01 12:00:30Z"), kNow + 30s);
  // Far-future dates saturate instead of overflowing.
  const auto far = parse_rfc3339("9999-12-31T23:59:59Z");
  ASSERT_TRUE(far.has_value());
  EXPECT_GT(*far, kNow + std::chrono::hours(24 * 365 * 100));
}

TEST(RetryAfter, RetryAfterMsWinsOverEverything) {
  Headers h{{{"retry-after-ms", "1500"},
             {"retry-after", "7"},
             {"x-ratelimit-reset-requests", "20s"}}};
  const auto r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 1500ms);
  EXPECT_EQ(r->requested, 1500ms);
  EXPECT_FALSE(r->beyond_max);
  EXPECT_EQ(r->source, RetryAfterSource::retry_after_ms);
}

TEST(RetryAfter, RetryAfterSecondsThenDate) {
  Headers h{{{"retry-after", "7"}, {"x-ratelimit-reset-requests", "20s"}}};
  auto r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 7s);
  EXPECT_EQ(r->source, RetryAfterSource::retry_after);

  h.fields["retry-after"] = "Wed, 01 May 2024 12:00:45 GMT";
  r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 45s);

  h.fields["retry-after"] = "Wed, 01 May 2024 11:00:00 GMT";  // in the past
  r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 0s);
}

TEST(RetryAfter, RetryAfterAppliesToAnyStatus) {
  Headers h{{{"retry-after", "3"}}};
  const auto r = parse(h, 503);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 3s);
}

TEST(RetryAfter, InvalidHigherPriorityHeaderFallsThrough) {
  Headers h{{{"retry-after-ms", "soon"}, {"retry-after", "2"}}};
  const auto r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 2s);
  EXPECT_EQ(r->source, RetryAfterSource::retry_after);
}

TEST(RetryAfter, OpenAIResetsOnlyOn429) {
  Headers h{{{"x-ratelimit-reset-requests", "1s"}, {"x-ratelimit-reset-tokens", "6m0s"}}};
  EXPECT_EQ(parse(h, 500), std::nullopt);
  EXPECT_EQ(parse(h, 200), std::nullopt);
  auto r = parse(h, 429, 1h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->source, RetryAfterSource::openai_reset);
  EXPECT_EQ(r->delay, 6min) << "unknown which limit was hit: wait for both";

  h.fields["x-ratelimit-remaining-requests"] = "0";
  h.fields["x-ratelimit-remaining-tokens"] = "1200";
  r = parse(h, 429, 1h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 1s) << "the request limit is the exhausted one";

  h.fields["x-ratelimit-remaining-requests"] = "5";
  h.fields["x-ratelimit-remaining-tokens"] = "0";
  r = parse(h, 429, 1h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 6min);

  Headers only_tokens{{{"x-ratelimit-reset-tokens", "20ms"}}};
  r = parse(only_tokens);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 20ms);
}

TEST(RetryAfter, AnthropicResetsOnlyOn429) {
  Headers h{{{"anthropic-ratelimit-requests-reset", "2024-05-01T12:00:05Z"},
             {"anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:40Z"}}};
  EXPECT_EQ(parse(h, 529), std::nullopt);
  auto r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->source, RetryAfterSource::anthropic_reset);
  EXPECT_EQ(r->delay, 40s);
  h.fields["anthropic-ratelimit-requests-remaining"] = "0";
  r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 5s);
  // OpenAI's headers come first when both families are present.
  h.fields["x-ratelimit-reset-requests"] = "3s";
  r = parse(h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->source, RetryAfterSource::openai_reset);
}

TEST(RetryAfter, BoundedByTheMaximumAndSaysSo) {
  Headers h{{{"retry-after", "120"}}};
  const auto r = parse(h, 429, 30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->delay, 30s);
  EXPECT_EQ(r->requested, 120s);
  EXPECT_TRUE(r->beyond_max);

  Headers exact{{{"retry-after", "30"}}};
  const auto e = parse(exact, 429, 30s);
  ASSERT_TRUE(e.has_value());
  EXPECT_FALSE(e->beyond_max);

  Headers far{{{"retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"}}};
  const auto f = parse(far, 429, 30s);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->beyond_max);
  EXPECT_EQ(f->delay, 30s);
  EXPECT_LE(f->requested, kRetryAfterSaturation);
}

TEST(RetryAfter, NothingUsable) {
  EXPECT_EQ(parse(Headers{}), std::nullopt);
  Headers junk{{{"retry-after", "later"}, {"x-ratelimit-reset-requests", "soon"}}};
  EXPECT_EQ(parse(junk), std::nullopt);
}

}  // namespace
}  // namespace bulwark::resilience
