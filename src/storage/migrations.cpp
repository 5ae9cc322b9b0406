#include "storage/migrations.hpp"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <string>

namespace bulwark::storage {
namespace {

constexpr std::string_view kV1 = R"sql(
CREATE TABLE teams(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  rpm INTEGER NOT NULL,
  tpm INTEGER NOT NULL,
  budget_nano_usd INTEGER,
  budget_period TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE TABLE keys(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  team_id TEXT NOT NULL,
  secret_hash BLOB NOT NULL UNIQUE,
  display_prefix TEXT NOT NULL,
  previous_hash BLOB,
  previous_valid_until INTEGER,
  allowed_models TEXT NOT NULL,
  expires_at INTEGER,
  rpm INTEGER NOT NULL,
  tpm INTEGER NOT NULL,
  budget_nano_usd INTEGER,
  budget_period TEXT NOT NULL,
  max_parallel INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  policy_profile TEXT NOT NULL,
  revoked INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  rotated_at INTEGER);
CREATE INDEX keys_previous_hash ON keys(previous_hash) WHERE previous_hash IS NOT NULL;
CREATE INDEX keys_team ON keys(team_id);
CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta(name, value) VALUES('keys_version', 0);
CREATE TABLE spend(
  entry_id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  team_id TEXT NOT NULL,
  model TEXT NOT NULL,
  target TEXT NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cached_input_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_nano_usd INTEGER NOT NULL,
  estimated INTEGER NOT NULL,
  status INTEGER NOT NULL);
CREATE INDEX spend_time ON spend(time);
CREATE TABLE budget_daily(
  scope TEXT NOT NULL,
  subject TEXT NOT NULL,
  day INTEGER NOT NULL,
  cost_nano_usd INTEGER NOT NULL,
  PRIMARY KEY(scope, subject, day)) WITHOUT ROWID;
CREATE TABLE audit_log(
  seq INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  team_id TEXT NOT NULL,
  body TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
)sql";

// What providers charged for attempts that were not the caller's answer: spend rows with
// a reason here are gateway overhead (old rows: the caller's, '').
constexpr std::string_view kV2 = R"sql(
ALTER TABLE spend ADD COLUMN overhead TEXT NOT NULL DEFAULT '';
)sql";

// A team's policy profile: its keys that name none use it ('' : none).
constexpr std::string_view kV3 = R"sql(
ALTER TABLE teams ADD COLUMN policy_profile TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::array kBuiltin{
    Migration{1, "governance tables", kV1},
    Migration{2, "spend overhead column", kV2},
    Migration{3, "team policy profile", kV3},
};

Error db_error(sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += sqlite3_errmsg(db);
  return Error::gateway(ErrorKind::internal, std::move(msg));
}

Status exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = "sqlite: ";
    msg += err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return std::unexpected(Error::gateway(ErrorKind::internal, std::move(msg)));
  }
  return {};
}

}  // namespace

std::span<const Migration> builtin_migrations() noexcept { return kBuiltin; }

Result<int> applied_version(sqlite3* db) {
  if (auto s = exec(db,
                    "CREATE TABLE IF NOT EXISTS schema_migrations("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
      !s) {
    return std::unexpected(s.error());
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &st,
                         nullptr) != SQLITE_OK) {
    return std::unexpected(db_error(db, "reading schema version"));
  }
  int version = 0;
  if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return version;
}

Result<int> migrate(sqlite3* db, std::span<const Migration> list) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].version != static_cast<int>(i) + 1) {
      return std::unexpected(
          Error::gateway(ErrorKind::internal, "migrations must be numbered 1, 2, 3... in order"));
    }
  }
  auto current = applied_version(db);
  if (!current) return current;
  const int known = static_cast<int>(list.size());
  if (*current > known) {
    return std::unexpected(Error::gateway(
        ErrorKind::internal, "database schema version " + std::to_string(*current) +
                                 " is newer than this build supports (" + std::to_string(known) +
                                 "); refusing to open it"));
  }
  for (int v = *current + 1; v <= known; ++v) {
    const Migration& m = list[static_cast<std::size_t>(v - 1)];
    // IMMEDIATE takes the write lock up front so two processes cannot both migrate.
    if (auto s = exec(db, "BEGIN IMMEDIATE"); !s) return std::unexpected(s.error());
    auto body = exec(db, std::string(m.sql));
    if (body) {
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      sqlite3_stmt* st = nullptr;
      bool ok = sqlite3_prepare_v2(db,
                                   "INSERT INTO schema_migrations(version, name, applied_at) "
                                   "VALUES(?, ?, ?)",
                                   -1, &st, nullptr) == SQLITE_OK;
      if (ok) {
        sqlite3_bind_int(st, 1, m.version);
        sqlite3_bind_text(st, 2, m.name.data(), static_cast<int>(m.name.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, now);
        ok = sqlite3_step(st) == SQLITE_DONE;
      }
      sqlite3_finalize(st);
      if (!ok) body = std::unexpected(db_error(db, "recording migration"));
    }
    if (!body) {
      (void)exec(db, "ROLLBACK");
      Error e = body.error();
      e.message = "migration " + std::to_string(m.version) + " (" + std::string(m.name) +
                  ") failed: " + e.message;
      return std::unexpected(std::move(e));
    }
    if (auto s = exec(db, "COMMIT"); !s) {
      (void)exec(db, "ROLLBACK");
      return std::unexpected(s.error());
    }
  }
  return known;
}

}  // namespace bulwark::storage
