#include "accounting/request_record.hpp"

#include <array>
#include <charconv>
#include <cstring>

#include "accounting/raw_appender.hpp"

namespace bulwark::accounting {

std::string_view name_of(ContentMode m) noexcept {
  switch (m) {
    case ContentMode::off: return "off";
    case ContentMode::hashed: return "hashed";
    case ContentMode::redacted: return "redacted";
    case ContentMode::full: return "full";
  }
  return "off";
}

namespace {

// A minimal JSON writer: keys are written in the order given, which makes the output
// canonical. Strings are escaped per RFC 8259; bytes that are not valid UTF-8 become
// U+FFFD so the body always parses back.
class JsonOut : detail::RawAppender {
 public:
  // Appends to out. first: whether the next member is the first of its object (no comma
  // before it).
  explicit JsonOut(std::string& out, bool first = true) : RawAppender(out, out.size(), 256), first_(first) {}
  ~JsonOut() { s_.resize(written()); }

  JsonOut& begin(char c) {
    sep();
    put(c);
    first_ = true;
    return *this;
  }
  JsonOut& end(char c) {
    put(c);
    first_ = false;
    return *this;
  }
  // Keys are this file's literals: plain ASCII, nothing to escape.
  JsonOut& key(std::string_view k) {
    sep();
    room(k.size() + 3);
    *p_++ = '"';
    std::memcpy(p_, k.data(), k.size());
    p_ += k.size();
    *p_++ = '"';
    *p_++ = ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  JsonOut& value(std::string_view v) {
    sep();
    str(v);
    return *this;
  }
  JsonOut& value(std::int64_t v) {
    sep();
    room(24);
    p_ = std::to_chars(p_, end_, v).ptr;
    return *this;
  }
  JsonOut& value(bool v) {
    sep();
    put(v ? std::string_view("true") : std::string_view("false"));
    return *this;
  }
  JsonOut& field(std::string_view k, std::string_view v) { return key(k).value(v); }
  JsonOut& field(std::string_view k, std::int64_t v) { return key(k).value(v); }
  JsonOut& field(std::string_view k, bool v) { return key(k).value(v); }

 private:
  void sep() {
    if (!first_) put(',');
    first_ = false;
  }
  static std::size_t utf8_len(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
      if ((b(i + k) & 0xC0) != 0x80) return 0;
    }
    // Overlong, surrogate and out-of-range forms.
    if (n == 3 && ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) >= 0xA0))) return 0;
    if (n == 4 && ((c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
    return n;
  }
  // Bytes copied as they are: printable ASCII other than the quote and the backslash.
  static constexpr std::array<bool, 256> kPlain = [] {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
    return t;
  }();
  void str(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    put('"');
    for (std::size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        room(2);
        *p_++ = '\\';
        *p_++ = static_cast<char>(c);
        ++i;
      } else if (c < 0x20) {
        room(6);
        std::memcpy(p_, "\\u00", 4);
        p_[4] = kHex[c >> 4];
        p_[5] = kHex[c & 0xf];
        p_ += 6;
        ++i;
      } else if (c < 0x80) {
        std::size_t j = i + 1;
        while (j < s.size() && kPlain[static_cast<unsigned char>(s[j])]) ++j;
        put(s.substr(i, j - i));
        i = j;
      } else if (const std::size_t n = utf8_len(s, i); n > 0) {
        put(s.substr(i, n));
        i += n;
      } else {
        put(std::string_view("\\ufffd"));
        ++i;
      }
    }
    put('"');
  }
  bool first_ = true;
};

}  // namespace

void view_spend_fields(const storage::SpendEntry& e, RequestRecord& r) {
  r.request_id = e.request_id;
  r.time = e.time;
  r.key_id = e.key_id;
  r.team_id = e.team_id;
  r.model = e.model;
  r.target = e.target;
  r.tokens = Usage{e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens};
  r.cost_nano_usd = e.cost_nano_usd;
  r.estimated = e.estimated;
  r.status = e.status;
}

void start_audit_body(std::string& out, std::int64_t seq) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, seq);
  (void)ec;
  out.assign("{\"seq\":");
  out.append(buf, end);
}

void write_audit_tail(std::string& out, const RequestRecord& r) {
  JsonOut j(out, /*first=*/false);  // continues {"seq":N
  j.field("time", r.time);
  j.field("request_id", r.request_id).field("key_id", r.key_id).field("team_id", r.team_id);
  j.field("model", r.model).field("target", r.target);
  j.key("attempts").begin('[');
  for (const AttemptView& a : r.attempts) {
    j.begin('{').field("target", a.target).field("outcome", a.outcome).field("latency_ms", a.latency_ms);
    if (!a.overhead.empty()) {
      j.key("overhead").begin('{').field("reason", a.overhead).field("cost_nano_usd", a.overhead_nano_usd);
      j.field("estimated", a.overhead_estimated).end('}');
    }
    j.end('}');
  }
  j.end(']');
  j.key("policy").begin('[');
  for (const std::string& p : r.policy_decisions) j.value(std::string_view(p));
  j.end(']');
  j.key("tokens").begin('{');
  j.field("input", r.tokens.input_tokens).field("output", r.tokens.output_tokens);
  j.field("cached_input", r.tokens.cached_input_tokens).field("cache_write", r.tokens.cache_write_tokens);
  j.end('}');
  j.field("cost_nano_usd", r.cost_nano_usd).field("estimated", r.estimated);
  j.field("latency_ms", r.latency_ms).field("status", static_cast<std::int64_t>(r.status));
  j.field("error", r.error);
  if (r.content != ContentMode::off && (r.prompt || r.completion)) {
    j.key("content").begin('{').field("mode", name_of(r.content));
    if (r.prompt) j.field("prompt", *r.prompt);
    if (r.completion) j.field("completion", *r.completion);
    j.end('}');
  }
  j.end('}');
}

}  // namespace bulwark::accounting
