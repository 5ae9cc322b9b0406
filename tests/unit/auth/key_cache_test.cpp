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

// The memo may only shortcut the hash: whatever a connection presents, in any order, and
// whatever changes between its requests, it answers as a full resolve would.
TEST_F(KeyCacheTest, AMemoAnswersAsAFullResolveDoes) {
  TeamSpec ts;
  ts.id = "t1";
  ts.name = "T";
  ASSERT_TRUE(service_->create_team(ts));
  std::vector<std::string> ids;
  std::vector<std::string> secrets;  // current, rotated-out, and never issued
  std::vector<std::size_t> current;  // per key, its secret's index in secrets
  for (int i = 0; i < 4; ++i) {
    const auto k = make("k" + std::to_string(i), {}, i % 2 ? "t1" : "");
    ids.push_back(k.record.id);
    current.push_back(secrets.size());
    secrets.push_back(k.secret);
  }
  secrets.push_back("bwk_" + std::string(40, 'A'));
  std::string near = secrets[0];  // the same length, one character off
  near.back() = near.back() == 'z' ? 'y' : 'z';
  secrets.push_back(near);
  secrets.push_back("not a key");
  ASSERT_TRUE(cache_->refresh());

  KeyMemo memo;
  std::uint64_t rng = 0x9e3779b97f4a7c15ULL;
  auto next = [&rng](std::uint64_t n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng % n;
  };
  int hits = 0;
  std::size_t last = 0;
  for (int step = 0; step < 3000; ++step) {
    switch (next(40)) {
      case 0: {  // rotate, the old secret kept for a while (or not at all)
        const std::size_t i = next(ids.size());
        auto r = service_->rotate(ids[i], std::chrono::milliseconds(next(2) * 5000));
        if (!r) break;  // a revoked key cannot be rotated
        if (next(2)) last = current[i];  // the connection keeps the old secret through its grace
        current[i] = secrets.size();
        secrets.push_back(r->secret);
        ASSERT_TRUE(cache_->refresh());
        break;
      }
      case 1: {
        ASSERT_TRUE(service_->revoke(ids[next(ids.size())]));
        if (next(2)) {  // a change not yet seen is not seen by either
          ASSERT_TRUE(cache_->refresh());
        }
        break;
      }
      case 2: {
        KeyUpdate u;
        u.expires_at = std::optional<storage::UnixMillis>(storage::to_unix_millis(clock_.wall()) + 3000);
        if (!service_->update(ids[next(ids.size())], u)) break;  // nor a revoked one updated
        ASSERT_TRUE(cache_->refresh());
        break;
      }
      case 3: {
        const auto k = make("n" + std::to_string(step));
        ids.push_back(k.record.id);
        current.push_back(secrets.size());
        secrets.push_back(k.secret);
        ASSERT_TRUE(cache_->refresh());
        break;
      }
      case 4:
      case 5:
      case 6:
        clock_.advance(std::chrono::milliseconds(1000));
        break;
      default:
        break;
    }
    // Mostly the secret presented last, as on a keep-alive connection.
    if (next(8) == 0) last = next(secrets.size());
    const std::string& presented = secrets[last];
    auto full = cache_->resolve(presented);
    auto fast = cache_->resolve(presented, memo);
    ASSERT_EQ(full.has_value(), fast.has_value()) << "step " << step << ": " << (full ? "" : full.error().message);
    if (full) {
      EXPECT_EQ(full->get(), fast->get());
      ++hits;
    } else {
      EXPECT_EQ(full.error().message, fast.error().message) << "step " << step;
    }
  }
  EXPECT_GT(hits, 300);
}

TEST_F(KeyCacheTest, AMemoRefusesARevokedKeyAsSoonAsTheCacheKnows) {
  const auto k = make("a");
  ASSERT_TRUE(cache_->refresh());
  KeyMemo memo;
  ASSERT_TRUE(cache_->resolve(k.secret, memo));
  ASSERT_TRUE(cache_->resolve(k.secret, memo));
  ASSERT_TRUE(service_->revoke(k.record.id));
  ASSERT_TRUE(cache_->refresh());
  auto r = cache_->resolve(k.secret, memo);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "API key revoked");
}

TEST_F(KeyCacheTest, AMemoChecksExpiryOnEveryRequest) {
  KeySpec spec;
  spec.name = "soon";
  spec.expires_at = storage::to_unix_millis(clock_.wall()) + 1000;
  auto k = service_->create(spec);
  ASSERT_TRUE(k);
  ASSERT_TRUE(cache_->refresh());
  KeyMemo memo;
  ASSERT_TRUE(cache_->resolve(k->secret, memo));
  clock_.advance(std::chrono::milliseconds(1000));
  auto r = cache_->resolve(k->secret, memo);  // nothing changed but the time
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "API key expired");
}

TEST_F(KeyCacheTest, AMemoEndsARotatedOutSecretsGraceOnTime) {
  const auto k = make("a");
  ASSERT_TRUE(cache_->refresh());
  auto rotated = service_->rotate(k.record.id, std::chrono::milliseconds(2000));
  ASSERT_TRUE(rotated);
  ASSERT_TRUE(cache_->refresh());
  KeyMemo memo;
  ASSERT_TRUE(cache_->resolve(k.secret, memo));
  clock_.advance(std::chrono::milliseconds(2000));
  auto r = cache_->resolve(k.secret, memo);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "API key was rotated; use the new secret");
  EXPECT_TRUE(cache_->resolve(rotated->secret, memo));
}

TEST_F(KeyCacheTest, AMemoHoldsOnlyTheLastSecretAndTellsKeysApart) {
  const auto a = make("a");
  const auto b = make("b");
  ASSERT_TRUE(cache_->refresh());
  KeyMemo memo;
  EXPECT_EQ((*cache_->resolve(a.secret, memo))->key.id, a.record.id);
  EXPECT_EQ((*cache_->resolve(b.secret, memo))->key.id, b.record.id);
  EXPECT_EQ((*cache_->resolve(a.secret, memo))->key.id, a.record.id);
  std::string near = a.secret;
  near[10] = near[10] == 'q' ? 'r' : 'q';
  EXPECT_FALSE(cache_->resolve(near, memo));
  EXPECT_EQ((*cache_->resolve(a.secret, memo))->key.id, a.record.id);
  memo.forget();
  EXPECT_EQ((*cache_->resolve(a.secret, memo))->key.id, a.record.id);
}

}  // namespace
}  // namespace bulwark::auth
