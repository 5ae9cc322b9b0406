#pragma once
// Single-file SQLite implementation of Store, for one gateway instance.
//
// Durability: WAL journal with synchronous=FULL by default, so a committed transaction
// survives power loss (WAL is fsynced at each commit). The ledger batches many entries
// into one commit, which keeps that fsync off the per-request cost. synchronous=NORMAL
// survives a process crash but may lose the last commits on power loss.
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>

#include "storage/migrations.hpp"
#include "storage/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace bulwark::storage {

enum class Synchronous : std::uint8_t { normal, full };

struct SqliteOptions {
  std::filesystem::path path;
  Synchronous synchronous = Synchronous::full;
  std::chrono::milliseconds busy_timeout{5000};
  std::span<const Migration> migrations = builtin_migrations();
};

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates. Fails on a database newer than this build.
  static Result<std::unique_ptr<SqliteStore>> open(const SqliteOptions& options);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  int schema_version() const noexcept override { return version_; }

  Status insert_key(const KeyRecord& key) override;
  Status update_key(const KeyRecord& key) override;
  Result<std::optional<KeyRecord>> get_key(std::string_view id) override;
  Result<std::optional<KeyRecord>> find_key_by_hash(std::string_view secret_hash) override;
  Result<std::vector<KeyRecord>> list_keys(std::optional<std::string_view> team_id) override;
  Status upsert_team(const TeamRecord& team) override;
  Result<std::optional<TeamRecord>> get_team(std::string_view id) override;
  Result<std::vector<TeamRecord>> list_teams() override;
  Result<std::uint64_t> keys_version() override;

  Result<AppendResult> append(std::span<const SpendEntry> spend,
                              std::span<const AuditRow> audit) override;
  Result<std::vector<SpendAggregate>> spend_report(const SpendQuery& q) override;
  Result<std::int64_t> spent_since(SpendScope scope, std::string_view id,
                                   UnixMillis since) override;
  Result<std::int64_t> spend_entry_count() override;

  Result<std::optional<AuditRow>> last_audit() override;
  Result<std::vector<AuditRow>> audit_rows(std::int64_t from_seq, std::size_t limit) override;

 private:
  class Stmt;
  explicit SqliteStore(sqlite3* db) noexcept : db_(db) {}
  Stmt prepare(const char* sql);
  Status exec(const char* sql);
  Status bump_keys_version();
  Status write_key(const char* sql, const KeyRecord& key);
  Result<std::optional<KeyRecord>> one_key(const char* sql, std::string_view a,
                                           std::string_view b);
  Error error(std::string_view what) const;

  sqlite3* db_ = nullptr;
  int version_ = 0;
  // One connection shared by all callers; the mutex also guards the statement cache.
  std::mutex mu_;
  std::unordered_map<const char*, sqlite3_stmt*> stmts_;
};

}  // namespace bulwark::storage
