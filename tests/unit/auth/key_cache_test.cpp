#include "auth/key_cache.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "auth/key_service.hpp"
#include "auth/virtual_key.hpp"
#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::auth {
namespace {

using namespace std::chrono_literals;

// Forwards to a real store and counts every call, to show what the request path touches.
class CountingStore final : public storage::Store {
 public:
  explicit CountingStore(storage::Store& inner) : inner_(inner) {}
  std::atomic<int> calls{0};
  int schema_version() const noexcept override { return inner_.schema_version(); }
  Status insert_key(const storage::KeyRecord& k) override { return ++calls, inner_.insert_key(k); }
  Status update_key(const storage::KeyRecord& k) override { return ++calls, inner_.update_key(k); }
  Result<std::optional<storage::KeyRecord>> get_key(std::string_view id) override { return ++calls, inner_.get_key(id); }
  Result<std::optional<storage::KeyRecord>> find_key_by_hash(std::string_view h) override {
    return ++calls, inner_.find_key_by_hash(h);
  }
  Result<std::vector<storage::KeyRecord>> list_keys(std::optional<std::string_view> t) override {
    return ++calls, inner_.list_keys(t);
  }
  Status upsert_team(const storage::TeamRecord& t) override { return ++calls, inner_.upsert_team(t); }
  Result<std::optional<storage::TeamRecord>> get_team(std::string_view id) override { return ++calls, inner_.get_team(id); }
  Result<std::vector<storage::TeamRecord>> list_teams() override { return ++calls, inner_.list_teams(); }
  Result<std::uint64_t> keys_version() override { return ++calls, inner_.keys_version(); }
  Result<storage::AppendResult> append(std::span<const storage::SpendEntry> s,
                                       std::span<const storage::AuditRow> a) override {
    return ++calls, inner_.append(s, a);
  }
  Result<std::vector<storage::SpendAggregate>> spend_report(const storage::SpendQuery& q) override {
    return ++calls, inner_.spend_report(q);
  }
  Result<std::int64_t> spent_since(storage::SpendScope s, std::string_view id, storage::UnixMillis t) override {
    return ++calls, inner_.spent_since(s, id, t);
  }
  Result<std::int64_t> spend_entry_count() override { return ++calls, inner_.spend_entry_count(); }
  Result<std::optional<storage::AuditRow>> last_audit() override { return ++calls, inner_.last_audit(); }
  Result<std::vector<storage::AuditRow>> audit_rows(std::int64_t f, std::size_t n) override {
    return ++calls, inner_.audit_rows(f, n);
  }

 private:
  storage::Store& inner_;
};

class KeyCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = storage::SqliteStore::open({.path = dir_ / "gov.db"});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    counting_ = std::make_unique<CountingStore>(*store_);
    service_ = std::make_unique<KeyService>(*store_, clock_);
    cache_ = std::make_unique<KeyCache>(*counting_, clock_);
  }
  CreatedKey make(std::string name, std::vector<std::string> models = {}, std::string team = {}) {
    KeySpec spec;
    spec.name = std::move(name);
    spec.allowed_models = std::move(models);
    spec.team_id = std::move(team);
    auto c = service_->create(spec);
    EXPECT_TRUE(c) << c.error().message;
    return *c;
  }
  test::TempDir dir_;
  ManualClock clock_{TimePoint{std::chrono::milliseconds(1'736'467'200'000)}};
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<CountingStore> counting_;
  std::unique_ptr<KeyService> service_;
  std::unique_ptr<KeyCache> cache_;
};

TEST_F(KeyCacheTest, ResolvesFromMemoryWithoutTouchingTheStore) {
  const auto k = make("a");
  ASSERT_TRUE(cache_->refresh());
  const int before = counting_->calls.load();
  for (int i = 0; i < 1000; ++i) {
    auto r = cache_->resolve(k.secret);
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)->key.id, k.record.id);
  }
  EXPECT_FALSE(cache_->resolve("bwk_" + std::string(40, 'A')));
  EXPECT_FALSE(cache_->resolve("Bearer nonsense"));
  EXPECT_EQ(counting_->calls.load(), before);
}

TEST_F(KeyCacheTest, SeesChangesOnlyAfterRefresh) {
  ASSERT_TRUE(cache_->refresh());
  const auto k = make("a");
  EXPECT_FALSE(cache_->resolve(k.secret));  // snapshot predates the key
  auto changed = cache_->refresh_if_changed();
  ASSERT_TRUE(changed);
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(cache_->resolve(k.secret));
  auto again = cache_->refresh_if_changed();
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);  // nothing new: no reload
  ASSERT_TRUE(service_->revoke(k.record.id));
  EXPECT_TRUE(cache_->resolve(k.secret));  // stale until refreshed
  ASSERT_TRUE(*cache_->refresh_if_changed());
  EXPECT_FALSE(cache_->resolve(k.secret));
}

TEST_F(KeyCacheTest, PicksUpChangesMadeThroughAnotherConnection) {
  ASSERT_TRUE(cache_->refresh());
  // A second instance sharing the database.
  auto other = storage::SqliteStore::open({.path = dir_ / "gov.db"});
  ASSERT_TRUE(other);
  KeyService other_service(**other, clock_);
  KeySpec spec;
  spec.name = "remote";
  auto k = other_service.create(spec);
  ASSERT_TRUE(k);
  EXPECT_FALSE(cache_->resolve(k->secret));
  ASSERT_TRUE(*cache_->refresh_if_changed());
  EXPECT_TRUE(cache_->resolve(k->secret));
}

TEST_F(KeyCacheTest, CarriesTeamAndChecksModelGlobs) {
  TeamSpec ts;
  ts.id = "t1";
  ts.name = "T";
  ts.limits.tpm = 777;
  ASSERT_TRUE(service_->create_team(ts));
  const auto k = make("a", {"gpt-4o*", "claude-?-haiku"}, "t1");
  ASSERT_TRUE(cache_->refresh());
  auto r = cache_->resolve(k.secret);
  ASSERT_TRUE(r);
  ASSERT_TRUE((*r)->team);
  EXPECT_EQ((*r)->team->limits.tpm, 777);
  EXPECT_TRUE((*r)->allows_model("gpt-4o"));
  EXPECT_TRUE((*r)->allows_model("gpt-4o-mini"));
  EXPECT_TRUE((*r)->allows_model("claude-3-haiku"));
  EXPECT_FALSE((*r)->allows_model("claude-3-sonnet"));
  EXPECT_FALSE((*r)->allows_model("gpt-4.1"));
  const auto open = make("b");
  ASSERT_TRUE(cache_->refresh());
  EXPECT_TRUE((*cache_->resolve(open.secret))->allows_model("anything"));
}

TEST(GlobMatch, Patterns) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "axxbyyc"));
  EXPECT_FALSE(glob_match("a*b*c", "axxbyy"));
  EXPECT_TRUE(glob_match("anthropic.claude-*", "anthropic.claude-3-5-sonnet-20240620-v1:0"));
  EXPECT_FALSE(glob_match("gpt-4o", "gpt-4o-mini"));
  EXPECT_TRUE(glob_match("??", "ab"));
  EXPECT_FALSE(glob_match("??", "abc"));
}

TEST_F(KeyCacheTest, ReadersNeverSeeATornSnapshotWhileRefreshing) {
  const auto k = make("a");
  ASSERT_TRUE(cache_->refresh());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<long> resolved{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto r = cache_->resolve(k.secret);
        if (!r || (*r)->key.id != k.record.id) ++failures;
        ++resolved;
      }
    });
  }
  for (int i = 0; i < 100; ++i) {
    make("filler-" + std::to_string(i));
    ASSERT_TRUE(cache_->refresh());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(resolved.load(), 0);
  EXPECT_EQ(cache_->size(), 101u);
}

}  // namespace
}  // namespace bulwark::auth
