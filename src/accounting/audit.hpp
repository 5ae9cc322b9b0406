#pragma once
// Append-only, hash-chained audit trail.
//
// Each record is serialised canonically (JSON, fixed key order, no whitespace) and
// chained: hash = SHA-256(prev_hash_hex || body), with 64 zeros before the first record.
// verify() walks the log and reports the first sequence number at which a record was
// modified, deleted or reordered. Records go through the Ledger: the request path hands
// over the record's fields (RequestRecord, views) with its content already hashed or
// redacted, the ledger writes them into a journal line and numbers the record under its
// append lock (journal order is sequence order), and its writer thread builds the
// canonical body (write_audit_tail) and computes the chain off the request path. Records
// share the ledger's batching and durability. Key secrets never appear: only key ids.
//
// A chain alone cannot reveal the removal of the newest records; pass the last sequence
// number known from elsewhere (an export, a metric) to verify() to catch that too.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "accounting/ledger.hpp"
#include "accounting/pricing.hpp"
#include "accounting/request_record.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/store.hpp"

namespace bulwark::accounting {

// An attempt as AuditEvent owns it (AttemptView's fields).
struct AuditAttempt {
  std::string target;
  std::string outcome;
  std::int64_t latency_ms = 0;
  std::string overhead{};
  std::int64_t overhead_nano_usd = 0;
  bool overhead_estimated = false;
};

// A record that owns its fields (tests, tools); the request path records RequestRecord
// views instead.
struct AuditEvent {
  std::optional<std::chrono::system_clock::time_point> time;  // default: the clock's wall time
  std::string request_id;
  std::string key_id;
  std::string team_id;
  std::string model;   // as asked
  std::string target;  // that answered; empty if none did
  std::vector<AuditAttempt> attempts;
  std::vector<std::string> policy_decisions;
  Usage tokens;
  std::int64_t cost_nano_usd = 0;
  bool estimated = false;
  std::int64_t latency_ms = 0;
  int status = 0;
  std::string error;  // error name, empty on success
  // Recorded according to ContentMode; ignored when off.
  std::optional<std::string> prompt;
  std::optional<std::string> completion;

  // Views of these fields (attempts in `scratch`); time as given, or `now` when unset.
  RequestRecord view(std::vector<AttemptView>& scratch, storage::UnixMillis now) const;
};

struct AuditOptions {
  ContentMode content = ContentMode::off;
  // For ContentMode::redacted. Default: keeps only the length ("[redacted N bytes]").
  std::function<std::string(std::string_view)> redact;
};

struct VerifyReport {
  bool ok = true;
  std::int64_t checked = 0;
  std::optional<std::int64_t> first_bad_seq;
  std::string reason;
};

class AuditTrail {
 public:
  // The chain continues from the store's last record, which the Ledger tracks (its
  // journal replay at open may add records).
  static Result<std::unique_ptr<AuditTrail>> open(Ledger& ledger, const Clock& clock,
                                                  AuditOptions options = {});

  // Queues the record (with the caller's spend entry when `billed`, in the same journal
  // line). The prompt and completion views are the raw text: they are kept as the
  // configured ContentMode says (dropped, hashed, redacted or whole) before anything is
  // written, and the record's own `content` is ignored. Returns the sequence number the
  // ledger assigned. Allocates nothing once the calling thread's buffers have grown to
  // the size of a record.
  Result<std::int64_t> append(const RequestRecord& record);
  Result<std::int64_t> append(const AuditEvent& event);

  // Canonical body for a record (exposed for tests and external verifiers).
  std::string canonical(std::int64_t seq, storage::UnixMillis time, const AuditEvent& e) const;

  static Result<VerifyReport> verify(storage::Store& store,
                                     std::optional<std::int64_t> expected_last_seq = std::nullopt);
  // One JSON object per line: {"seq":..,"prev_hash":..,"hash":..,"record":{...}}.
  static Status export_jsonl(storage::Store& store, std::ostream& out, std::int64_t from_seq = 1);

  static std::string genesis_hash() { return std::string(64, '0'); }
  static std::string chain_hash(std::string_view prev_hash_hex, std::string_view body);

 private:
  AuditTrail(Ledger& ledger, const Clock& clock, AuditOptions options)
      : ledger_(ledger), clock_(clock), options_(std::move(options)) {}
  std::string content(std::string_view text) const;
  // The record as the configured ContentMode keeps it: content dropped (off), kept whole
  // (full), or hashed or redacted into `prompt` and `completion`, which the result's views
  // then point into.
  RequestRecord with_content(const RequestRecord& record, std::string& prompt, std::string& completion) const;

  Ledger& ledger_;
  const Clock& clock_;
  AuditOptions options_;
};

}  // namespace bulwark::accounting
