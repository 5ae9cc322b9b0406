#pragma once
// One request as the books see it: the fields of its audit record and, when a target
// answered, of the caller's spend entry (the same time, ids, model, target, tokens, cost
// and status). Views into the request's own data, so recording copies nothing on the
// request path: the ledger writes these fields into its journal line, and its writer
// thread builds the canonical audit body from them (write_audit_tail) off that path.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "accounting/pricing.hpp"
#include "storage/store.hpp"

namespace bulwark::accounting {

// What of the prompt and the answer an audit record keeps.
enum class ContentMode : std::uint8_t { off, hashed, redacted, full };
std::string_view name_of(ContentMode m) noexcept;

struct AttemptView {
  std::string_view target;
  std::string_view outcome;  // "ok" or an error name (name_of(ErrorKind))
  std::int64_t latency_ms = 0;
  // What the provider charges for this attempt when it was not the caller's answer
  // (gateway overhead, never billed to the caller): the reason is empty otherwise and
  // the audit record then has no "overhead" member.
  std::string_view overhead{};  // name_of(OverheadReason)
  std::int64_t overhead_nano_usd = 0;
  bool overhead_estimated = false;
};

struct RequestRecord {
  storage::UnixMillis time = 0;
  std::string_view request_id;
  std::string_view key_id;
  std::string_view team_id;
  std::string_view model;   // as asked
  std::string_view target;  // that answered; empty if none did
  std::span<const AttemptView> attempts;
  std::span<const std::string> policy_decisions;  // rule names and counts, never text
  Usage tokens;
  std::int64_t cost_nano_usd = 0;
  bool estimated = false;
  std::int64_t latency_ms = 0;
  int status = 0;
  std::string_view error;  // error name, empty on success
  // The content as recorded: already hashed or redacted as `content` says (the raw text
  // never reaches the journal unless the mode is full). Ignored when off.
  ContentMode content = ContentMode::off;
  std::optional<std::string_view> prompt;
  std::optional<std::string_view> completion;
  // Whether the record carries the caller's spend entry (a target answered). Its id is
  // entry_id, or one the ledger assigns when empty.
  bool billed = false;
  std::string_view entry_id;
};

// Points the record's spend fields (request_id, time, key_id, team_id, model, target,
// tokens, cost_nano_usd, estimated, status) at the entry's: views into `e`, which must
// outlive the record. How a replayed line's entry becomes its record.
void view_spend_fields(const storage::SpendEntry& e, RequestRecord& r);

// Sets out to the start of a canonical audit body, `{"seq":N`; the tail continues it.
void start_audit_body(std::string& out, std::int64_t seq);

// The canonical audit body after `{"seq":N`: JSON with a fixed key order and no
// whitespace, every control character escaped, bytes that are not UTF-8 replaced by
// U+FFFD (so the body parses back and holds no raw newline). Appends to out.
void write_audit_tail(std::string& out, const RequestRecord& r);

}  // namespace bulwark::accounting
