#pragma once
// How long an upstream asked us to wait, read from its response headers. Independent of
// the HTTP library: headers are read through a lookup function.
//
// Priority (first usable header wins):
//   1. retry-after-ms                    float milliseconds (OpenAI, Azure)
//   2. Retry-After                       delta-seconds (fractions accepted) or HTTP-date
//   3. x-ratelimit-reset-requests/-tokens  Go-style durations "6m0s", "20ms" (OpenAI)
//   4. anthropic-ratelimit-requests-reset/-tokens-reset  RFC 3339 timestamps
// The reset headers (3, 4) come with every response and only say when a quota refills,
// which is a reason to wait only once that quota is exhausted: they are read on 429 only.
// Of the requests/tokens pair, the one whose "remaining" header is 0 is used; when that
// is not known, the later of the two (waiting for both is surely enough).
// A header that does not parse is skipped in favour of the next.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "core/clock.hpp"

namespace bulwark::resilience {

/// Returns the value of a response header, or nullopt when absent. Names are given in
/// lower case; the lookup must match case-insensitively (as HTTP field names do).
using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

enum class RetryAfterSource : std::uint8_t {
  retry_after_ms,
  retry_after,
  openai_reset,
  anthropic_reset,
};
std::string_view to_string(RetryAfterSource s) noexcept;

struct RetryAfter {
  /// What to wait: min(requested, max).
  Duration delay{};
  /// What the upstream asked for (dates in the past give 0; absurd values saturate at
  /// kRetryAfterSaturation). Put this in Error::retry_after so the retry policy can
  /// apply its own per-class maximum.
  Duration requested{};
  /// requested > max: better to fail over than to wait.
  bool beyond_max = false;
  RetryAfterSource source{};
};

/// Parsed durations are clamped to this, so arithmetic on them cannot overflow.
inline constexpr Duration kRetryAfterSaturation = std::chrono::hours(24 * 365);

/// Reads the headers of a response with HTTP `status` received at wall-clock `now`.
/// nullopt when no header gives a usable delay.
std::optional<RetryAfter> parse_retry_after(const HeaderLookup& headers, int status,
                                            std::chrono::system_clock::time_point now,
                                            Duration max);

// The individual formats, exposed for tests and for other header families. Surrounding
// whitespace is ignored; anything else unexpected makes the value invalid (nullopt).

/// Non-negative decimal number of milliseconds: "20", "1234.5".
std::optional<Duration> parse_milliseconds(std::string_view v) noexcept;
/// Non-negative decimal number of seconds: "120", "1.5".
std::optional<Duration> parse_delta_seconds(std::string_view v) noexcept;
/// RFC 9110 HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete
/// RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view v) noexcept;
/// Go time.Duration syntax as sent by OpenAI: "1s", "6m0s", "20ms", "1h2m3.5s", "0".
/// Units ns, us, µs, ms, s, m, h. Negative durations are rejected.
std::optional<Duration> parse_go_duration(std::string_view v) noexcept;
/// RFC 3339 date-time: "2024-05-01T12:00:30Z", "2024-05-01T12:00:30.25+02:00".
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view v) noexcept;

}  // namespace bulwark::resilience
