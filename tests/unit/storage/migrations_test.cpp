#include "storage/migrations.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>

#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::storage {
namespace {

using test::TempDir;

// Runs one statement on a separate raw connection and returns the first column of the
// first row as text ("" when none).
std::string query(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sqlite3_errmsg(db);
  } else {
    ADD_FAILURE() << sqlite3_errmsg(db) << " in " << sql;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST(Migrations, FreshDatabaseGetsEveryMigration) {
  TempDir dir;
  auto store = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(store) << store.error().message;
  const int latest = static_cast<int>(builtin_migrations().size());
  EXPECT_EQ((*store)->schema_version(), latest);
  store->reset();
  EXPECT_EQ(query(dir / "gov.db", "SELECT COUNT(*) FROM schema_migrations"), std::to_string(latest));
  EXPECT_EQ(query(dir / "gov.db", "SELECT MAX(version) FROM schema_migrations"), std::to_string(latest));
}

TEST(Migrations, OpensInWalModeWithChosenSynchronous) {
  TempDir dir;
  auto store = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(store);
  EXPECT_EQ(query(dir / "gov.db", "PRAGMA journal_mode"), "wal");
}

TEST(Migrations, ReopenKeepsDataAndAppliesNothing) {
  TempDir dir;
  {
    auto store = SqliteStore::open({.path = dir / "gov.db"});
    ASSERT_TRUE(store);
    TeamRecord t;
    t.id = "team-a";
    t.name = "A";
    ASSERT_TRUE((*store)->upsert_team(t));
  }
  auto store = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(store) << store.error().message;
  auto team = (*store)->get_team("team-a");
  ASSERT_TRUE(team && *team);
  EXPECT_EQ((*team)->name, "A");
  EXPECT_EQ(query(dir / "gov.db", "SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(builtin_migrations().size()));
}

TEST(Migrations, RefusesDatabaseFromNewerVersion) {
  TempDir dir;
  ASSERT_TRUE(SqliteStore::open({.path = dir / "gov.db"}));
  query(dir / "gov.db", "INSERT INTO schema_migrations(version, name, applied_at) VALUES(999, 'future', 0)");
  auto store = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
  // Refusal leaves the database as it was.
  EXPECT_EQ(query(dir / "gov.db", "SELECT MAX(version) FROM schema_migrations"), "999");
}

// A database from before the overhead column (schema v1) with spend in it: the upgrade
// keeps the rows as the callers' own and reports them as before.
TEST(Migrations, V2KeepsOldSpendAsTheCallersOwn) {
  TempDir dir;
  {
    auto s = SqliteStore::open({.path = dir / "gov.db", .migrations = builtin_migrations().first(1)});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ((*s)->schema_version(), 1);
  }
  query(dir / "gov.db",
        "INSERT INTO spend VALUES('e1','r1',1000,'k1','t1','m','tg',1,2,0,0,500,0,200)");
  auto s = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GE((*s)->schema_version(), 2);
  EXPECT_EQ(query(dir / "gov.db", "SELECT overhead FROM spend WHERE entry_id = 'e1'"), "");
  auto rows = (*s)->spend_report({0, 10'000, SpendGroup::key});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].requests, 1);
  EXPECT_EQ((*rows)[0].cost_nano_usd, 500);
  EXPECT_EQ((*rows)[0].overhead_attempts, 0);
  EXPECT_EQ((*rows)[0].overhead_nano_usd, 0);
}

// A database from before team policy profiles (schema v2): its teams upgrade to none.
TEST(Migrations, V3GivesOldTeamsNoPolicyProfile) {
  TempDir dir;
  {
    auto s = SqliteStore::open({.path = dir / "gov.db", .migrations = builtin_migrations().first(2)});
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ((*s)->schema_version(), 2);
  }
  query(dir / "gov.db",
        "INSERT INTO teams(id, name, rpm, tpm, budget_nano_usd, budget_period, metadata, created_at, updated_at) "
        "VALUES('t1','One',0,0,NULL,'month','{}',1,1)");
  auto s = SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GE((*s)->schema_version(), 3);
  auto t = (*s)->get_team("t1");
  ASSERT_TRUE(t && *t);
  EXPECT_EQ((**t).name, "One");
  EXPECT_EQ((**t).policy_profile, "");
}

constexpr std::array kStepOne{Migration{1, "a", "CREATE TABLE a(x INTEGER)"}};
constexpr std::array kStepTwo{Migration{1, "a", "CREATE TABLE a(x INTEGER)"},
                              Migration{2, "b", "CREATE TABLE b(y INTEGER); INSERT INTO a VALUES(7)"}};
constexpr std::array kBrokenTwo{
    Migration{1, "a", "CREATE TABLE a(x INTEGER)"},
    Migration{2, "broken", "CREATE TABLE c(z INTEGER); INSERT INTO missing_table VALUES(1)"}};
constexpr std::array kOutOfOrder{Migration{2, "b", "CREATE TABLE b(y INTEGER)"}};

TEST(Migrations, UpgradesAnOlderDatabaseOneVersionAtATime) {
  TempDir dir;
  {
    auto s = SqliteStore::open({.path = dir / "x.db", .migrations = kStepOne});
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)->schema_version(), 1);
  }
  auto s = SqliteStore::open({.path = dir / "x.db", .migrations = kStepTwo});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ((*s)->schema_version(), 2);
  EXPECT_EQ(query(dir / "x.db", "SELECT x FROM a"), "7");
  EXPECT_EQ(query(dir / "x.db", "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"), "1");
}

TEST(Migrations, FailedMigrationRollsBackToPreviousVersion) {
  TempDir dir;
  auto s = SqliteStore::open({.path = dir / "x.db", .migrations = kBrokenTwo});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("migration 2"), std::string::npos) << s.error().message;
  EXPECT_EQ(query(dir / "x.db", "SELECT MAX(version) FROM schema_migrations"), "1");
  EXPECT_EQ(query(dir / "x.db", "SELECT COUNT(*) FROM sqlite_master WHERE name = 'c'"), "0");
}

TEST(Migrations, RefusesListOutOfOrder) {
  TempDir dir;
  EXPECT_FALSE(SqliteStore::open({.path = dir / "x.db", .migrations = kOutOfOrder}));
}

}  // namespace
}  // namespace bulwark::storage
