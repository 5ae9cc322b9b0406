#include "accounting/audit.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "accounting/raw_appender.hpp"
#include "auth/virtual_key.hpp"

namespace bulwark::accounting {
namespace json = boost::json;

// Per-thread record buffers larger than this are released after use.
constexpr std::size_t kKeepBufferBytes = 256u << 10;

namespace {
std::string_view mode_name(ContentMode m) {
  switch (m) {
    case ContentMode::off: return "off";
    case ContentMode::hashed: return "hashed";
    case ContentMode::redacted: return "redacted";
    case ContentMode::full: return "full";
  }
  return "off";
}
}  // namespace

std::string AuditTrail::chain_hash(std::string_view prev_hash_hex, std::string_view body) {
  std::string out;
  auth::sha256_hex(prev_hash_hex, body, out);
  return out;
}

Result<std::unique_ptr<AuditTrail>> AuditTrail::open(Ledger& ledger, const Clock& clock,
                                                     AuditOptions options) {
  return std::unique_ptr<AuditTrail>(new AuditTrail(ledger, clock, std::move(options)));
}

std::string AuditTrail::content(std::string_view text) const {
  switch (options_.content) {
    case ContentMode::off: return {};
    case ContentMode::hashed: return "sha256:" + auth::to_hex(auth::sha256(text));
    case ContentMode::redacted:
      if (options_.redact) return options_.redact(text);
      return "[redacted " + std::to_string(text.size()) + " bytes]";
    case ContentMode::full: return std::string(text);
  }
  return {};
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

void AuditTrail::write_tail(std::string& out, storage::UnixMillis time, const AuditEvent& e) const {
  JsonOut j(out, /*first=*/false);  // continues {"seq":N
  j.field("time", time);
  j.field("request_id", e.request_id).field("key_id", e.key_id).field("team_id", e.team_id);
  j.field("model", e.model).field("target", e.target);
  j.key("attempts").begin('[');
  for (const auto& a : e.attempts) {
    j.begin('{').field("target", a.target).field("outcome", a.outcome).field("latency_ms", a.latency_ms);
    if (!a.overhead.empty()) {
      j.key("overhead").begin('{').field("reason", a.overhead).field("cost_nano_usd", a.overhead_nano_usd);
      j.field("estimated", a.overhead_estimated).end('}');
    }
    j.end('}');
  }
  j.end(']');
  j.key("policy").begin('[');
  for (const auto& p : e.policy_decisions) j.value(p);
  j.end(']');
  j.key("tokens").begin('{');
  j.field("input", e.tokens.input_tokens).field("output", e.tokens.output_tokens);
  j.field("cached_input", e.tokens.cached_input_tokens).field("cache_write", e.tokens.cache_write_tokens);
  j.end('}');
  j.field("cost_nano_usd", e.cost_nano_usd).field("estimated", e.estimated);
  j.field("latency_ms", e.latency_ms).field("status", static_cast<std::int64_t>(e.status));
  j.field("error", e.error);
  if (options_.content != ContentMode::off && (e.prompt || e.completion)) {
    j.key("content").begin('{').field("mode", mode_name(options_.content));
    if (e.prompt) j.field("prompt", content(*e.prompt));
    if (e.completion) j.field("completion", content(*e.completion));
    j.end('}');
  }
  j.end('}');
}

std::string AuditTrail::canonical(std::int64_t seq, storage::UnixMillis time, const AuditEvent& e) const {
  std::string body;
  body.reserve(512);
  JsonOut(body).begin('{').field("seq", seq);  // the temporary's destructor trims body
  write_tail(body, time, e);
  return body;
}

Result<std::int64_t> AuditTrail::append(const AuditEvent& e, const storage::SpendEntry* spend) {
  const storage::UnixMillis time = storage::to_unix_millis(e.time.value_or(clock_.wall()));
  // Per-thread and reused: the request path formats the record without allocating.
  thread_local std::string tail;
  tail.clear();
  write_tail(tail, time, e);
  auto seq = ledger_.record_request(spend, AuditAppend{time, e.request_id, e.key_id, e.team_id, tail});
  // A record with full content can be large: do not keep that much per thread.
  if (tail.capacity() > kKeepBufferBytes) std::string().swap(tail);
  return seq;
}

namespace {
// Checks that the columns duplicated for querying agree with the hashed body.
std::optional<std::string> columns_mismatch(const storage::AuditRow& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return "body is not a JSON object";
  const auto& o = v.as_object();
  auto str = [&](const char* k) -> std::string {
    auto* p = o.if_contains(k);
    return p != nullptr && p->is_string() ? std::string(p->as_string()) : std::string("\x01");
  };
  auto num = [&](const char* k) -> std::int64_t {
    auto* p = o.if_contains(k);
    return p != nullptr && p->is_int64() ? p->as_int64() : INT64_MIN;
  };
  if (num("seq") != r.seq) return "sequence number differs from the record's";
  if (num("time") != r.time) return "time column differs from the record";
  if (str("request_id") != r.request_id) return "request_id column differs from the record";
  if (str("key_id") != r.key_id) return "key_id column differs from the record";
  if (str("team_id") != r.team_id) return "team_id column differs from the record";
  return std::nullopt;
}
}  // namespace

Result<VerifyReport> AuditTrail::verify(storage::Store& store, std::optional<std::int64_t> expected_last_seq) {
  VerifyReport rep;
  std::string prev = genesis_hash();
  std::int64_t expect = 1;
  auto fail = [&](std::int64_t seq, std::string why) {
    rep.ok = false;
    rep.first_bad_seq = seq;
    rep.reason = std::move(why);
    return rep;
  };
  constexpr std::size_t kPage = 1000;
  for (;;) {
    auto rows = store.audit_rows(expect, kPage);
    if (!rows) return std::unexpected(rows.error());
    for (const auto& r : *rows) {
      if (r.seq != expect) return fail(expect, "record missing (next stored is " + std::to_string(r.seq) + ")");
      if (r.prev_hash != prev) return fail(r.seq, "prev_hash does not match the previous record");
      if (chain_hash(r.prev_hash, r.body) != r.hash) return fail(r.seq, "hash does not match the record");
      if (auto why = columns_mismatch(r)) return fail(r.seq, *why);
      prev = r.hash;
      ++expect;
      ++rep.checked;
    }
    if (rows->size() < kPage) break;
  }
  if (expected_last_seq && expect - 1 < *expected_last_seq) {
    return fail(expect, "log ends at " + std::to_string(expect - 1) + ", expected " +
                            std::to_string(*expected_last_seq));
  }
  return rep;
}

Status AuditTrail::export_jsonl(storage::Store& store, std::ostream& out, std::int64_t from_seq) {
  constexpr std::size_t kPage = 1000;
  for (std::int64_t next = from_seq;;) {
    auto rows = store.audit_rows(next, kPage);
    if (!rows) return std::unexpected(rows.error());
    for (const auto& r : *rows) {
      boost::system::error_code ec;
      json::object line;
      line["seq"] = r.seq;
      line["prev_hash"] = r.prev_hash;
      line["hash"] = r.hash;
      auto body = json::parse(r.body, ec);
      if (ec) {
        line["record_raw"] = r.body;
      } else {
        line["record"] = std::move(body);
      }
      out << json::serialize(line) << '\n';
      next = r.seq + 1;
    }
    if (rows->size() < kPage) break;
  }
  if (!out) return std::unexpected(Error::gateway(ErrorKind::internal, "audit export: write failed"));
  return {};
}

}  // namespace bulwark::accounting
