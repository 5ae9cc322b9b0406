#pragma once
// The persistence boundary of governance: keys, teams, the spend ledger, daily budget
// counters and the audit log. Nothing here names a database type, so a shared store
// (Postgres) can replace SqliteStore when several gateway instances must agree.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bulwark::storage {

// Milliseconds since the Unix epoch, UTC: the one time format that is persisted.
using UnixMillis = std::int64_t;

inline UnixMillis to_unix_millis(std::chrono::system_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

enum class BudgetPeriod : std::uint8_t { day, week, month, total };
std::string_view to_string(BudgetPeriod p) noexcept;
std::optional<BudgetPeriod> parse_budget_period(std::string_view s) noexcept;

// Limits of 0 mean "no limit"; a budget is absent when not set.
struct Limits {
  std::int64_t rpm = 0;
  std::int64_t tpm = 0;
  std::optional<std::int64_t> budget_nano_usd;
  BudgetPeriod budget_period = BudgetPeriod::month;
};

struct KeyRecord {
  std::string id;
  std::string name;
  std::string team_id;  // empty: no team
  // SHA-256 of the secret, raw 32 bytes. The secret itself is never persisted.
  std::string secret_hash;
  std::string display_prefix;  // e.g. "bwk_7Gq2xZ", enough to recognise, useless to use
  // A rotated-out secret stays valid until previous_valid_until (grace period).
  std::optional<std::string> previous_hash;
  std::optional<UnixMillis> previous_valid_until;
  std::vector<std::string> allowed_models;  // glob patterns; empty: all models
  std::optional<UnixMillis> expires_at;
  Limits limits;
  std::int64_t max_parallel = 0;  // 0: no limit
  std::string metadata_json = "{}";
  std::string policy_profile;
  bool revoked = false;
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
  std::optional<UnixMillis> rotated_at;
};

struct TeamRecord {
  std::string id;
  std::string name;
  Limits limits;
  std::string metadata_json = "{}";
  std::string policy_profile;  // for its keys that name none; empty: none
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
};

// One priced request. Costs are integer nano-USD (1e-9 USD).
struct SpendEntry {
  std::string entry_id;  // unique; makes journal replay idempotent
  std::string request_id;
  UnixMillis time = 0;
  std::string key_id;
  std::string team_id;
  std::string model;   // as asked by the caller
  std::string target;  // the upstream that answered
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t cache_write_tokens = 0;
  std::int64_t cost_nano_usd = 0;
  bool estimated = false;  // usage was estimated (e.g. a stream cut before usage arrived)
  int status = 0;
  // Empty: the caller's own spend. Otherwise what a provider charged for an attempt that
  // did not become the caller's answer, and why ("hedge_cancelled", "stream_broken", ...):
  // gateway overhead, never counted against a budget (no budget_daily increment) and
  // reported apart from the caller's cost.
  std::string overhead;
};

// A hash-chained audit record as persisted. body is the canonical serialisation that
// hash covers: hash = SHA-256(prev_hash || body). The other columns duplicate fields of
// body for querying; verification checks they agree.
struct AuditRow {
  std::int64_t seq = 0;
  UnixMillis time = 0;
  std::string request_id;
  std::string key_id;
  std::string team_id;
  std::string body;
  std::string prev_hash;  // hex
  std::string hash;       // hex
};

enum class SpendScope : std::uint8_t { key, team };
enum class SpendGroup : std::uint8_t { key, team, model, day };

struct SpendQuery {
  UnixMillis from = 0;  // inclusive
  UnixMillis to = 0;    // exclusive
  SpendGroup group_by = SpendGroup::key;
};

struct SpendAggregate {
  std::string group;  // key id, team id, model, or UTC day "YYYY-MM-DD"
  std::int64_t requests = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_input_tokens = 0;
  std::int64_t cache_write_tokens = 0;
  std::int64_t cost_nano_usd = 0;
  std::int64_t estimated_requests = 0;
  // Overhead entries (SpendEntry::overhead set) are counted only here, never in the
  // caller's columns above.
  std::int64_t overhead_attempts = 0;
  std::int64_t overhead_nano_usd = 0;
};

struct AppendResult {
  std::size_t spend_inserted = 0;  // duplicates (already stored entry_id) are skipped
  std::size_t audit_inserted = 0;
};

// Thread-safe. Calls may block on I/O: never call from the request path; the request
// path reads KeyCache/BudgetTracker snapshots and writes through the Ledger's queue.
class Store {
 public:
  virtual ~Store() = default;

  virtual int schema_version() const noexcept = 0;

  // Keys and teams. Every successful change bumps keys_version() in the same transaction.
  virtual Status insert_key(const KeyRecord& key) = 0;
  virtual Status update_key(const KeyRecord& key) = 0;  // replaces the record with key.id
  virtual Result<std::optional<KeyRecord>> get_key(std::string_view id) = 0;
  // Matches the current or the previous (rotated-out) secret hash.
  virtual Result<std::optional<KeyRecord>> find_key_by_hash(std::string_view secret_hash) = 0;
  virtual Result<std::vector<KeyRecord>> list_keys(std::optional<std::string_view> team_id) = 0;
  virtual Status upsert_team(const TeamRecord& team) = 0;
  virtual Result<std::optional<TeamRecord>> get_team(std::string_view id) = 0;
  virtual Result<std::vector<TeamRecord>> list_teams() = 0;
  // Monotonic; caches compare it to know when to reload.
  virtual Result<std::uint64_t> keys_version() = 0;

  // Spend and audit in one transaction, so both are durable together. Daily budget
  // counters are incremented for each newly inserted spend entry in the same transaction.
  virtual Result<AppendResult> append(std::span<const SpendEntry> spend,
                                      std::span<const AuditRow> audit) = 0;
  virtual Result<std::vector<SpendAggregate>> spend_report(const SpendQuery& q) = 0;
  // Sum of recorded cost for a key or team from UTC day containing `since` onward.
  // `since` must be a UTC day boundary (every budget period starts on one).
  virtual Result<std::int64_t> spent_since(SpendScope scope, std::string_view id,
                                           UnixMillis since) = 0;
  virtual Result<std::int64_t> spend_entry_count() = 0;

  virtual Result<std::optional<AuditRow>> last_audit() = 0;
  // Rows with seq >= from_seq in seq order, at most limit.
  virtual Result<std::vector<AuditRow>> audit_rows(std::int64_t from_seq, std::size_t limit) = 0;
};

}  // namespace bulwark::storage
