#include "accounting/audit.hpp"

#include <boost/json.hpp>

#include "auth/virtual_key.hpp"

namespace bulwark::accounting {
namespace json = boost::json;

// Per-thread record buffers larger than this are released after use.
constexpr std::size_t kKeepBufferBytes = 256u << 10;

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

RequestRecord AuditEvent::view(std::vector<AttemptView>& scratch, storage::UnixMillis now) const {
  scratch.resize(attempts.size());
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const AuditAttempt& a = attempts[i];
    scratch[i] = AttemptView{a.target, a.outcome, a.latency_ms, a.overhead, a.overhead_nano_usd, a.overhead_estimated};
  }
  RequestRecord r;
  r.time = time ? storage::to_unix_millis(*time) : now;
  r.request_id = request_id;
  r.key_id = key_id;
  r.team_id = team_id;
  r.model = model;
  r.target = target;
  r.attempts = scratch;
  r.policy_decisions = policy_decisions;
  r.tokens = tokens;
  r.cost_nano_usd = cost_nano_usd;
  r.estimated = estimated;
  r.latency_ms = latency_ms;
  r.status = status;
  r.error = error;
  if (prompt) r.prompt = *prompt;
  if (completion) r.completion = *completion;
  return r;
}

namespace {
// A record with full content can be large: do not keep that much per thread.
void trim(std::string& s) {
  if (s.capacity() > kKeepBufferBytes) std::string().swap(s);
}
}  // namespace

RequestRecord AuditTrail::with_content(const RequestRecord& record, std::string& prompt,
                                       std::string& completion) const {
  RequestRecord r = record;  // views: a copy costs nothing
  r.content = options_.content;
  if (r.content == ContentMode::off) {
    r.prompt.reset();
    r.completion.reset();
  } else if (r.content != ContentMode::full) {
    if (r.prompt) r.prompt = prompt = content(*r.prompt);
    if (r.completion) r.completion = completion = content(*r.completion);
  }
  return r;
}

std::string AuditTrail::canonical(std::int64_t seq, storage::UnixMillis time, const AuditEvent& e) const {
  std::vector<AttemptView> attempts;
  RequestRecord r = e.view(attempts, time);
  r.time = time;
  std::string prompt, completion;
  std::string body;
  start_audit_body(body, seq);
  write_audit_tail(body, with_content(r, prompt, completion));
  return body;
}

Result<std::int64_t> AuditTrail::append(const RequestRecord& record) {
  // Hashed or redacted here, on the request's thread: the raw text must not reach the
  // journal's file unless the mode keeps it whole.
  thread_local std::string prompt, completion;
  auto seq = ledger_.record_request(with_content(record, prompt, completion));
  trim(prompt);
  trim(completion);
  return seq;
}

Result<std::int64_t> AuditTrail::append(const AuditEvent& e) {
  thread_local std::vector<AttemptView> attempts;
  return append(e.view(attempts, storage::to_unix_millis(clock_.wall())));
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
