#include "resilience/retry_after.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace bulwark::resilience {
namespace {

using SysTime = std::chrono::system_clock::time_point;

std::string_view trim(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Seconds as a double to a Duration, clamped to [0, kRetryAfterSaturation].
Duration from_seconds(double s) noexcept {
  const double cap = std::chrono::duration<double>(kRetryAfterSaturation).count();
  if (!(s > 0.0)) return Duration::zero();
  if (s >= cap) return kRetryAfterSaturation;
  return Duration{static_cast<Duration::rep>(std::llround(s * 1e9))};
}

// "12", "12.5", ".5": a non-negative decimal without sign or exponent. Consumes from
// `v` starting at `i`; false when no digit was found.
bool decimal_at(std::string_view v, std::size_t& i, double& out) noexcept {
  double value = 0.0;
  bool any = false;
  while (i < v.size() && is_digit(v[i])) {
    value = value * 10.0 + (v[i] - '0');
    ++i;
    any = true;
  }
  if (i < v.size() && v[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < v.size() && is_digit(v[i])) {
      value += (v[i] - '0') * scale;
      scale /= 10.0;
      ++i;
      any = true;
    }
  }
  out = value;
  return any;
}

std::optional<double> decimal(std::string_view v) noexcept {
  v = trim(v);
  std::size_t i = 0;
  double value = 0.0;
  if (!decimal_at(v, i, value) || i != v.size()) return std::nullopt;
  return value;
}

// A tiny left-to-right reader for the fixed date layouts.
struct Cursor {
  std::string_view s;
  std::size_t i = 0;

  bool eat(char c) noexcept {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool eat_ci(std::string_view word) noexcept {
    if (!iequals(s.substr(i, word.size()), word)) return false;
    i += word.size();
    return true;
  }
  std::optional<int> digits(std::size_t n) noexcept {
    if (i + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (!is_digit(s[i + k])) return std::nullopt;
      v = v * 10 + (s[i + k] - '0');
    }
    i += n;
    return v;
  }
  std::string_view letters() noexcept {
    const std::size_t start = i;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) ++i;
    return s.substr(start, i - start);
  }
  bool done() const noexcept { return i == s.size(); }
  char peek() const noexcept { return i < s.size() ? s[i] : '\0'; }
};

std::optional<int> month_number(std::string_view m) noexcept {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  for (int k = 0; k < 12; ++k)
    if (iequals(m, kMonths[k])) return k + 1;
  return std::nullopt;
}

struct Civil {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  std::int64_t nanos = 0;             // fraction of the second
  std::int64_t offset_seconds = 0;    // local time minus UTC
};

// Builds a UTC time point, clamping to [1970, 2200) so later arithmetic in nanoseconds
// cannot overflow (such dates mean "now" or "practically never" to a retry decision).
std::optional<SysTime> to_time(const Civil& c) noexcept {
  using namespace std::chrono;
  if (c.hour > 23 || c.minute > 59 || c.second > 60) return std::nullopt;  // 60: leap second
  const year_month_day ymd{year{c.year}, month{static_cast<unsigned>(c.month)},
                           day{static_cast<unsigned>(c.day)}};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t secs = sys_days{ymd}.time_since_epoch().count() * 86400LL + c.hour * 3600LL +
                      c.minute * 60LL + c.second - c.offset_seconds;
  constexpr std::int64_t kLimit = 7258118400LL;  // 2200-01-01T00:00:00Z
  if (secs < 0) return SysTime{};
  if (secs >= kLimit) return SysTime{duration_cast<system_clock::duration>(seconds{kLimit})};
  return SysTime{duration_cast<system_clock::duration>(seconds{secs} + nanoseconds{c.nanos})};
}

bool read_clock(Cursor& c, Civil& out) noexcept {
  const auto h = c.digits(2);
  if (!h || !c.eat(':')) return false;
  const auto m = c.digits(2);
  if (!m || !c.eat(':')) return false;
  const auto s = c.digits(2);
  if (!s) return false;
  out.hour = *h;
  out.minute = *m;
  out.second = *s;
  return true;
}

Duration until(SysTime t, SysTime now) noexcept {
  if (t <= now) return Duration::zero();
  // Both are within [1970, 2200): the difference fits in nanoseconds.
  return std::min(std::chrono::duration_cast<Duration>(t - now), kRetryAfterSaturation);
}

bool is_zero(const std::optional<std::string_view>& v) {
  return v && trim(*v) == "0";
}

// Chooses between a requests-limit and a tokens-limit reset (see the header comment).
std::optional<Duration> pick_reset(std::optional<Duration> requests, bool requests_exhausted,
                                   std::optional<Duration> tokens, bool tokens_exhausted) {
  if (requests && requests_exhausted) return requests;
  if (tokens && tokens_exhausted) return tokens;
  if (requests && tokens) return std::max(*requests, *tokens);
  return requests ? requests : tokens;
}

}  // namespace

std::string_view to_string(RetryAfterSource s) noexcept {
  switch (s) {
    case RetryAfterSource::retry_after_ms: return "retry-after-ms";
    case RetryAfterSource::retry_after: return "retry-after";
    case RetryAfterSource::openai_reset: return "x-ratelimit-reset";
    case RetryAfterSource::anthropic_reset: return "anthropic-ratelimit-reset";
  }
  return "unknown";
}

std::optional<Duration> parse_milliseconds(std::string_view v) noexcept {
  const auto ms = decimal(v);
  if (!ms) return std::nullopt;
  return from_seconds(*ms / 1000.0);
}

std::optional<Duration> parse_delta_seconds(std::string_view v) noexcept {
  const auto s = decimal(v);
  if (!s) return std::nullopt;
  return from_seconds(*s);
}

std::optional<SysTime> parse_http_date(std::string_view v) noexcept {
  Cursor c{trim(v)};
  Civil t;
  if (c.letters().empty()) return std::nullopt;  // day name, not cross-checked
  if (c.eat(',')) {
    if (!c.eat(' ')) return std::nullopt;
    const auto day = c.digits(2);
    if (!day) return std::nullopt;
    t.day = *day;
    if (c.eat(' ')) {  // IMF-fixdate: 06 Nov 1994 08:49:37 GMT
      const auto mon = month_number(c.letters());
      if (!mon || !c.eat(' ')) return std::nullopt;
      const auto year = c.digits(4);
      if (!year || !c.eat(' ')) return std::nullopt;
      t.month = *mon;
      t.year = *year;
    } else if (c.eat('-')) {  // RFC 850: 06-Nov-94 08:49:37 GMT
      const auto mon = month_number(c.letters());
      if (!mon || !c.eat('-')) return std::nullopt;
      const auto yy = c.digits(2);
      if (!yy || !c.eat(' ')) return std::nullopt;
      t.month = *mon;
      // Two-digit years: 70-99 are 19xx, the rest 20xx (RFC 9110 leaves this to the
      // recipient; this format is obsolete and only ever seen with old dates).
      t.year = *yy >= 70 ? 1900 + *yy : 2000 + *yy;
    } else {
      return std::nullopt;
    }
    if (!read_clock(c, t) || !c.eat(' ') || !c.eat_ci("GMT") || !c.done()) return std::nullopt;
    return to_time(t);
  }
  // asctime: Sun Nov  6 08:49:37 1994
  if (!c.eat(' ')) return std::nullopt;
  const auto mon = month_number(c.letters());
  if (!mon || !c.eat(' ')) return std::nullopt;
  std::optional<int> day = c.eat(' ') ? c.digits(1) : c.digits(2);
  if (!day || !c.eat(' ') || !read_clock(c, t) || !c.eat(' ')) return std::nullopt;
  const auto year = c.digits(4);
  if (!year || !c.done()) return std::nullopt;
  t.month = *mon;
  t.day = *day;
  t.year = *year;
  return to_time(t);
}

std::optional<Duration> parse_go_duration(std::string_view v) noexcept {
  v = trim(v);
  if (v == "0") return Duration::zero();
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  if (v.empty()) return std::nullopt;
  double seconds = 0.0;
  std::size_t i = 0;
  while (i < v.size()) {
    double value = 0.0;
    if (!decimal_at(v, i, value)) return std::nullopt;
    const std::size_t start = i;
    while (i < v.size() && !is_digit(v[i]) && v[i] != '.') ++i;
    const std::string_view unit = v.substr(start, i - start);
    double scale = 0.0;
    if (unit == "h") scale = 3600.0;
    else if (unit == "m") scale = 60.0;
    else if (unit == "s") scale = 1.0;
    else if (unit == "ms") scale = 1e-3;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") scale = 1e-6;
    else if (unit == "ns") scale = 1e-9;
    else return std::nullopt;  // includes a missing unit and a minus sign
    seconds += value * scale;
  }
  return from_seconds(seconds);
}

std::optional<SysTime> parse_rfc3339(std::string_view v) noexcept {
  Cursor c{trim(v)};
  Civil t;
  const auto y = c.digits(4);
  if (!y || !c.eat('-')) return std::nullopt;
  const auto mo = c.digits(2);
  if (!mo || !c.eat('-')) return std::nullopt;
  const auto d = c.digits(2);
  if (!d) return std::nullopt;
  if (!(c.eat('T') || c.eat('t') || c.eat(' '))) return std::nullopt;
  if (!read_clock(c, t)) return std::nullopt;
  if (c.eat('.')) {
    std::int64_t scale = 100'000'000;
    bool any = false;
    while (is_digit(c.peek())) {
      t.nanos += (c.peek() - '0') * scale;
      scale /= 10;
      ++c.i;
      any = true;
    }
    if (!any) return std::nullopt;
  }
  if (!(c.eat('Z') || c.eat('z'))) {
    const char sign = c.peek();
    if (sign != '+' && sign != '-') return std::nullopt;
    ++c.i;
    const auto oh = c.digits(2);
    if (!oh || !c.eat(':')) return std::nullopt;
    const auto om = c.digits(2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    t.offset_seconds = (sign == '+' ? 1 : -1) * (*oh * 3600LL + *om * 60LL);
  }
  if (!c.done()) return std::nullopt;
  t.year = *y;
  t.month = *mo;
  t.day = *d;
  return to_time(t);
}

std::optional<RetryAfter> parse_retry_after(const HeaderLookup& headers, int status,
                                            SysTime now, Duration max) {
  max = std::max(max, Duration::zero());
  const auto make = [max](Duration requested, RetryAfterSource source) {
    requested = std::clamp(requested, Duration::zero(), kRetryAfterSaturation);
    return RetryAfter{std::min(requested, max), requested, requested > max, source};
  };

  if (const auto v = headers("retry-after-ms"))
    if (const auto d = parse_milliseconds(*v)) return make(*d, RetryAfterSource::retry_after_ms);

  if (const auto v = headers("retry-after")) {
    if (const auto d = parse_delta_seconds(*v)) return make(*d, RetryAfterSource::retry_after);
    if (const auto t = parse_http_date(*v))
      return make(until(*t, now), RetryAfterSource::retry_after);
  }

  if (status != 429) return std::nullopt;

  {
    const auto parse = [&](std::string_view name) -> std::optional<Duration> {
      const auto v = headers(name);
      return v ? parse_go_duration(*v) : std::nullopt;
    };
    const auto d = pick_reset(parse("x-ratelimit-reset-requests"),
                              is_zero(headers("x-ratelimit-remaining-requests")),
                              parse("x-ratelimit-reset-tokens"),
                              is_zero(headers("x-ratelimit-remaining-tokens")));
    if (d) return make(*d, RetryAfterSource::openai_reset);
  }
  {
    const auto parse = [&](std::string_view name) -> std::optional<Duration> {
      const auto v = headers(name);
      if (!v) return std::nullopt;
      const auto t = parse_rfc3339(*v);
      return t ? std::optional<Duration>(until(*t, now)) : std::nullopt;
    };
    const auto d = pick_reset(parse("anthropic-ratelimit-requests-reset"),
                              is_zero(headers("anthropic-ratelimit-requests-remaining")),
                              parse("anthropic-ratelimit-tokens-reset"),
                              is_zero(headers("anthropic-ratelimit-tokens-remaining")));
    if (d) return make(*d, RetryAfterSource::anthropic_reset);
  }
  return std::nullopt;
}

}  // namespace bulwark::resilience
