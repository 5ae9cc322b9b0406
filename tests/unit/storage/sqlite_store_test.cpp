#include "storage/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "support/temp_dir.hpp"

namespace bulwark::storage {
namespace {

using test::TempDir;

constexpr UnixMillis kDay = 86'400'000;
constexpr UnixMillis kJan10 = 1'736'467'200'000;  // 2025-01-10T00:00:00Z

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteStore::open({.path = dir_ / "gov.db"});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  static KeyRecord key(std::string id, std::string hash, std::string team = {}) {
    KeyRecord k;
    k.id = std::move(id);
    k.name = "name-" + k.id;
    k.team_id = std::move(team);
    k.secret_hash = std::move(hash);
    k.display_prefix = "bwk_abc";
    k.allowed_models = {"gpt-4o*", "claude-*"};
    k.limits.rpm = 60;
    k.limits.tpm = 1000;
    k.limits.budget_nano_usd = 5'000'000'000;
    k.limits.budget_period = BudgetPeriod::week;
    k.max_parallel = 3;
    k.metadata_json = R"({"owner":"x"})";
    k.policy_profile = "strict";
    k.created_at = k.updated_at = 1000;
    return k;
  }
  static SpendEntry spend(std::string id, UnixMillis t, std::string key_id, std::string team,
                          std::string model, std::int64_t cost) {
    SpendEntry e;
    e.entry_id = std::move(id);
    e.request_id = "req-" + e.entry_id;
    e.time = t;
    e.key_id = std::move(key_id);
    e.team_id = std::move(team);
    e.model = std::move(model);
    e.target = "openai";
    e.input_tokens = 10;
    e.output_tokens = 5;
    e.cost_nano_usd = cost;
    e.status = 200;
    return e;
  }
  TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, KeyRoundTripsEveryField) {
  KeyRecord k = key("k1", std::string(32, '\x01'));
  k.expires_at = 99;
  k.rotated_at = 50;
  k.previous_hash = std::string(32, '\x02');
  k.previous_valid_until = 77;
  ASSERT_TRUE(store_->insert_key(k));
  auto got = store_->get_key("k1");
  ASSERT_TRUE(got && *got);
  const KeyRecord& g = **got;
  EXPECT_EQ(g.name, k.name);
  EXPECT_EQ(g.secret_hash, k.secret_hash);
  EXPECT_EQ(g.previous_hash, k.previous_hash);
  EXPECT_EQ(g.previous_valid_until, 77);
  EXPECT_EQ(g.allowed_models, k.allowed_models);
  EXPECT_EQ(g.expires_at, 99);
  EXPECT_EQ(g.limits.rpm, 60);
  EXPECT_EQ(g.limits.tpm, 1000);
  EXPECT_EQ(g.limits.budget_nano_usd, 5'000'000'000);
  EXPECT_EQ(g.limits.budget_period, BudgetPeriod::week);
  EXPECT_EQ(g.max_parallel, 3);
  EXPECT_EQ(g.metadata_json, k.metadata_json);
  EXPECT_EQ(g.policy_profile, "strict");
  EXPECT_FALSE(g.revoked);
  EXPECT_EQ(g.rotated_at, 50);
}

TEST_F(SqliteStoreTest, FindsKeyByCurrentOrPreviousHash) {
  KeyRecord k = key("k1", std::string(32, 'a'));
  k.previous_hash = std::string(32, 'b');
  ASSERT_TRUE(store_->insert_key(k));
  ASSERT_TRUE(store_->insert_key(key("k2", std::string(32, 'c'))));
  EXPECT_EQ((*store_->find_key_by_hash(std::string(32, 'a')))->id, "k1");
  EXPECT_EQ((*store_->find_key_by_hash(std::string(32, 'b')))->id, "k1");
  EXPECT_EQ((*store_->find_key_by_hash(std::string(32, 'c')))->id, "k2");
  EXPECT_FALSE(*store_->find_key_by_hash(std::string(32, 'd')));
}

TEST_F(SqliteStoreTest, RefusesDuplicateIdOrSecretAndUnknownUpdate) {
  ASSERT_TRUE(store_->insert_key(key("k1", std::string(32, 'a'))));
  EXPECT_FALSE(store_->insert_key(key("k1", std::string(32, 'z'))));
  EXPECT_FALSE(store_->insert_key(key("k9", std::string(32, 'a'))));
  EXPECT_FALSE(store_->update_key(key("nope", std::string(32, 'q'))));
}

TEST_F(SqliteStoreTest, EveryKeyOrTeamChangeBumpsVersion) {
  const auto v0 = *store_->keys_version();
  ASSERT_TRUE(store_->insert_key(key("k1", std::string(32, 'a'))));
  const auto v1 = *store_->keys_version();
  EXPECT_GT(v1, v0);
  KeyRecord k = key("k1", std::string(32, 'a'));
  k.revoked = true;
  ASSERT_TRUE(store_->update_key(k));
  const auto v2 = *store_->keys_version();
  EXPECT_GT(v2, v1);
  TeamRecord t;
  t.id = "t";
  t.name = "T";
  ASSERT_TRUE(store_->upsert_team(t));
  EXPECT_GT(*store_->keys_version(), v2);
  // A failed change does not.
  const auto v3 = *store_->keys_version();
  EXPECT_FALSE(store_->insert_key(key("k1", std::string(32, 'x'))));
  EXPECT_EQ(*store_->keys_version(), v3);
}

TEST_F(SqliteStoreTest, ListsKeysByTeamAndTeams) {
  ASSERT_TRUE(store_->insert_key(key("k1", std::string(32, 'a'), "t1")));
  ASSERT_TRUE(store_->insert_key(key("k2", std::string(32, 'b'), "t2")));
  ASSERT_TRUE(store_->insert_key(key("k3", std::string(32, 'c'), "t1")));
  EXPECT_EQ(store_->list_keys(std::nullopt)->size(), 3u);
  auto t1 = store_->list_keys(std::string_view("t1"));
  ASSERT_TRUE(t1);
  ASSERT_EQ(t1->size(), 2u);
  EXPECT_EQ((*t1)[0].id, "k1");
  EXPECT_EQ((*t1)[1].id, "k3");
  TeamRecord t;
  t.id = "t1";
  t.name = "One";
  t.limits.budget_nano_usd = 10;
  t.limits.budget_period = BudgetPeriod::day;
  ASSERT_TRUE(store_->upsert_team(t));
  t.name = "Uno";
  ASSERT_TRUE(store_->upsert_team(t));
  auto teams = store_->list_teams();
  ASSERT_EQ(teams->size(), 1u);
  EXPECT_EQ((*teams)[0].name, "Uno");
  EXPECT_EQ((*teams)[0].policy_profile, "");
  t.policy_profile = "strict";
  ASSERT_TRUE(store_->upsert_team(t));
  EXPECT_EQ((*store_->get_team("t1"))->policy_profile, "strict");
  EXPECT_EQ((*teams)[0].limits.budget_nano_usd, 10);
  EXPECT_EQ((*teams)[0].limits.budget_period, BudgetPeriod::day);
}

TEST_F(SqliteStoreTest, AppendIsIdempotentPerEntryAndCountsBudgetsOnce) {
  std::vector<SpendEntry> batch{spend("e1", kJan10 + 10, "k1", "t1", "gpt-4o", 100),
                                spend("e2", kJan10 + kDay + 10, "k1", "t1", "gpt-4o", 200),
                                spend("e3", kJan10 + 20, "k2", "t1", "claude", 400)};
  auto r = store_->append(batch, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->spend_inserted, 3u);
  // A replay of the same entries (as after a crash) changes nothing.
  auto again = store_->append(batch, {});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->spend_inserted, 0u);
  EXPECT_EQ(*store_->spend_entry_count(), 3);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k1", kJan10), 300);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k1", kJan10 + kDay), 200);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10), 700);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10 + 2 * kDay), 0);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k2", 0), 400);
}

TEST_F(SqliteStoreTest, ReportsSpendByKeyTeamModelAndDay) {
  std::vector<SpendEntry> batch{spend("e1", kJan10 + 10, "k1", "t1", "gpt-4o", 100),
                                spend("e2", kJan10 + kDay + 10, "k1", "t1", "gpt-4o", 200),
                                spend("e3", kJan10 + 20, "k2", "t2", "claude", 400),
                                spend("e4", kJan10 + 5 * kDay, "k2", "t2", "claude", 800)};
  batch[2].estimated = true;
  ASSERT_TRUE(store_->append(batch, {}));
  const SpendQuery range{kJan10, kJan10 + 2 * kDay, SpendGroup::key};
  auto by_key = store_->spend_report(range);
  ASSERT_TRUE(by_key);
  ASSERT_EQ(by_key->size(), 2u);
  EXPECT_EQ((*by_key)[0].group, "k1");
  EXPECT_EQ((*by_key)[0].requests, 2);
  EXPECT_EQ((*by_key)[0].cost_nano_usd, 300);
  EXPECT_EQ((*by_key)[0].input_tokens, 20);
  EXPECT_EQ((*by_key)[1].group, "k2");
  EXPECT_EQ((*by_key)[1].cost_nano_usd, 400);  // e4 lies outside the range
  EXPECT_EQ((*by_key)[1].estimated_requests, 1);
  auto by_model = store_->spend_report({kJan10, kJan10 + 10 * kDay, SpendGroup::model});
  ASSERT_EQ(by_model->size(), 2u);
  EXPECT_EQ((*by_model)[0].group, "claude");
  EXPECT_EQ((*by_model)[0].cost_nano_usd, 1200);
  auto by_team = store_->spend_report({kJan10, kJan10 + 10 * kDay, SpendGroup::team});
  ASSERT_EQ(by_team->size(), 2u);
  EXPECT_EQ((*by_team)[1].group, "t2");
  auto by_day = store_->spend_report({kJan10, kJan10 + 10 * kDay, SpendGroup::day});
  ASSERT_EQ(by_day->size(), 3u);
  EXPECT_EQ((*by_day)[0].group, "2025-01-10");
  EXPECT_EQ((*by_day)[0].cost_nano_usd, 500);
  EXPECT_EQ((*by_day)[1].group, "2025-01-11");
  EXPECT_EQ((*by_day)[2].group, "2025-01-15");
}

// 100 entries and 70 audit rows go in as statements of 32, 32, 32 and 4 (resp. 32, 32, 4,
// 2) rows: every row's every column must land where it belongs, and the daily counters
// must count each entry exactly once.
TEST_F(SqliteStoreTest, BatchInsertsSpanChunksWithEveryColumnInPlace) {
  std::vector<SpendEntry> batch;
  std::int64_t k1 = 0, k1_day2 = 0, team = 0;
  for (int i = 0; i < 100; ++i) {
    const UnixMillis t = kJan10 + (i % 3) * kDay + i;
    SpendEntry e = spend("e" + std::to_string(i), t, i % 2 ? "k1" : "k2", "t1", i % 5 ? "gpt-4o" : "o3", 1000 + i);
    e.input_tokens = i;
    e.output_tokens = 2 * i;
    e.cached_input_tokens = 3 * i;
    e.cache_write_tokens = 4 * i;
    e.estimated = i % 7 == 0;
    e.status = 200 + i % 3;
    if (i % 2) k1 += e.cost_nano_usd;
    if (i % 2 && i % 3 >= 1) k1_day2 += e.cost_nano_usd;
    team += e.cost_nano_usd;
    batch.push_back(std::move(e));
  }
  std::vector<AuditRow> rows(70);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    rows[i].seq = static_cast<std::int64_t>(i) + 1;
    rows[i].time = kJan10 + static_cast<std::int64_t>(i);
    rows[i].request_id = "req-" + std::to_string(i);
    rows[i].key_id = "k" + std::to_string(i % 4);
    rows[i].team_id = "t" + std::to_string(i % 3);
    rows[i].body = "{\"n\":" + std::to_string(i) + "}";
    rows[i].prev_hash = "p" + std::to_string(i);
    rows[i].hash = "h" + std::to_string(i);
  }
  auto r = store_->append(batch, rows);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->spend_inserted, 100u);
  EXPECT_EQ(r->audit_inserted, 70u);
  EXPECT_EQ(*store_->spend_entry_count(), 100);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k1", kJan10), k1);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k1", kJan10 + kDay), k1_day2);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10), team);
  // Entries from the last chunk (i = 96..99) and the middle of the first.
  for (const int i : {5, 31, 32, 97, 99}) {
    auto rep = store_->spend_report({batch[static_cast<std::size_t>(i)].time, batch[static_cast<std::size_t>(i)].time + 1,
                                     SpendGroup::model});
    ASSERT_TRUE(rep);
    ASSERT_EQ(rep->size(), 1u) << i;
    const auto& a = (*rep)[0];
    EXPECT_EQ(a.group, i % 5 ? "gpt-4o" : "o3");
    EXPECT_EQ(a.input_tokens, i);
    EXPECT_EQ(a.output_tokens, 2 * i);
    EXPECT_EQ(a.cached_input_tokens, 3 * i);
    EXPECT_EQ(a.cache_write_tokens, 4 * i);
    EXPECT_EQ(a.cost_nano_usd, 1000 + i);
    EXPECT_EQ(a.estimated_requests, i % 7 == 0 ? 1 : 0);
  }
  auto stored = store_->audit_rows(1, 100);
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), 70u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const AuditRow& a = (*stored)[i];
    EXPECT_EQ(a.seq, rows[i].seq);
    EXPECT_EQ(a.time, rows[i].time);
    EXPECT_EQ(a.request_id, rows[i].request_id);
    EXPECT_EQ(a.key_id, rows[i].key_id);
    EXPECT_EQ(a.team_id, rows[i].team_id);
    EXPECT_EQ(a.body, rows[i].body);
    EXPECT_EQ(a.prev_hash, rows[i].prev_hash);
    EXPECT_EQ(a.hash, rows[i].hash);
  }
}

// A journal replay repeats entries already committed next to new ones: only the new ones
// may reach the daily counters (the counters are summed per batch, so the store must
// tell the two apart).
TEST_F(SqliteStoreTest, BatchWithReplayedDuplicatesCountsOnlyNewEntries) {
  std::vector<SpendEntry> first;
  for (int i = 0; i < 40; ++i) first.push_back(spend("e" + std::to_string(i), kJan10 + i, "k1", "t1", "gpt-4o", 10));
  ASSERT_TRUE(store_->append(first, {}));
  std::vector<SpendEntry> replay = first;
  for (int i = 40; i < 60; ++i) replay.push_back(spend("e" + std::to_string(i), kJan10 + kDay + i, "k2", "t1", "gpt-4o", 1000));
  auto r = store_->append(replay, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->spend_inserted, 20u);
  EXPECT_EQ(*store_->spend_entry_count(), 60);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k1", kJan10), 400);
  EXPECT_EQ(*store_->spent_since(SpendScope::key, "k2", kJan10), 20'000);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10), 20'400);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10 + kDay), 20'000);
  // And an all-duplicate batch changes nothing.
  auto none = store_->append(replay, {});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->spend_inserted, 0u);
  EXPECT_EQ(*store_->spent_since(SpendScope::team, "t1", kJan10), 20'400);
}

TEST_F(SqliteStoreTest, AuditLogIsAppendOnlyInTheDatabase) {
  std::vector<AuditRow> rows(3);
  for (int i = 0; i < 3; ++i) {
    rows[static_cast<std::size_t>(i)].seq = i + 1;
    rows[static_cast<std::size_t>(i)].body = "{}";
    rows[static_cast<std::size_t>(i)].hash = "h" + std::to_string(i + 1);
  }
  ASSERT_TRUE(store_->append({}, rows));
  auto last = store_->last_audit();
  ASSERT_TRUE(last && *last);
  EXPECT_EQ((*last)->seq, 3);
  auto from2 = store_->audit_rows(2, 10);
  ASSERT_EQ(from2->size(), 2u);
  EXPECT_EQ((*from2)[0].hash, "h2");

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "gov.db").c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE audit_log SET body = 'x' WHERE seq = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq = 2", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(store_->audit_rows(1, 10)->size(), 3u);
}

}  // namespace
}  // namespace bulwark::storage
