#include "auth/key_service.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "auth/key_cache.hpp"
#include "auth/virtual_key.hpp"
#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::auth {
namespace {

using namespace std::chrono_literals;
using storage::KeyRecord;

constexpr std::int64_t kJan10 = 1'736'467'200'000;  // 2025-01-10T00:00:00Z, ms

class KeyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = storage::SqliteStore::open({.path = dir_ / "gov.db"});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    service_ = std::make_unique<KeyService>(*store_, clock_);
    cache_ = std::make_unique<KeyCache>(*store_, clock_);
    service_->on_change([this] { ASSERT_TRUE(cache_->refresh()); });
  }
  std::string all_database_bytes() const {
    std::string all;
    for (const auto& f : std::filesystem::directory_iterator(dir_.path())) {
      std::ifstream in(f.path(), std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }
  test::TempDir dir_;
  ManualClock clock_{TimePoint{std::chrono::milliseconds(kJan10)}};
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<KeyService> service_;
  std::unique_ptr<KeyCache> cache_;
};

TEST_F(KeyServiceTest, CreateShowsSecretOnceAndStoresOnlyItsHash) {
  KeySpec spec;
  spec.name = "ci";
  spec.allowed_models = {"gpt-4o*"};
  spec.limits.rpm = 10;
  spec.metadata_json = R"({"env":"ci"})";
  auto created = service_->create(spec);
  ASSERT_TRUE(created) << created.error().message;
  const std::string secret = created->secret;
  ASSERT_TRUE(looks_like_key(secret));
  EXPECT_EQ(created->record.secret_hash, sha256(secret));
  EXPECT_EQ(created->record.display_prefix, secret.substr(0, 10));
  EXPECT_TRUE(created->record.id.starts_with("key_"));

  // Reading the key back never yields the secret again.
  auto shown = service_->show(created->record.id);
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->secret_hash, sha256(secret));
  EXPECT_EQ(shown->name, "ci");
  EXPECT_EQ(shown->created_at, kJan10);

  // Neither the secret nor its random body is anywhere in the database files.
  const std::string bytes = all_database_bytes();
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find(secret), std::string::npos);
  EXPECT_EQ(bytes.find(secret.substr(10)), std::string::npos);
  EXPECT_NE(bytes.find(sha256(secret)), std::string::npos);  // the hash is what is kept
}

TEST_F(KeyServiceTest, ValidatesSpec) {
  KeySpec spec;
  EXPECT_FALSE(service_->create(spec));  // no name
  spec.name = "x";
  spec.metadata_json = "[1,2]";
  EXPECT_FALSE(service_->create(spec));
  spec.metadata_json = "{}";
  spec.team_id = "no-such-team";
  EXPECT_FALSE(service_->create(spec));
  spec.team_id.clear();
  spec.limits.rpm = -1;
  EXPECT_FALSE(service_->create(spec));
  spec.limits.rpm = 0;
  EXPECT_TRUE(service_->create(spec));
}

TEST_F(KeyServiceTest, RevokedKeyStopsResolving) {
  KeySpec spec;
  spec.name = "k";
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  ASSERT_TRUE(cache_->resolve(created->secret));
  auto revoked = service_->revoke(created->record.id);
  ASSERT_TRUE(revoked);
  EXPECT_TRUE(revoked->revoked);
  auto r = cache_->resolve(created->secret);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::unauthenticated);
  EXPECT_FALSE(service_->rotate(created->record.id));
}

TEST_F(KeyServiceTest, ExpiredKeyStopsResolvingAtItsExpiry) {
  KeySpec spec;
  spec.name = "k";
  spec.expires_at = kJan10 + 60'000;
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  clock_.advance(59s);
  EXPECT_TRUE(cache_->resolve(created->secret));
  clock_.advance(1s);
  auto r = cache_->resolve(created->secret);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("expired"), std::string::npos);
  // Clearing the expiry brings it back.
  KeyUpdate u;
  u.expires_at = std::optional<storage::UnixMillis>{};
  ASSERT_TRUE(service_->update(created->record.id, u));
  EXPECT_TRUE(cache_->resolve(created->secret));
}

TEST_F(KeyServiceTest, RotateKeepsIdAndHonoursGracePeriod) {
  KeySpec spec;
  spec.name = "k";
  spec.limits.tpm = 500;
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  const std::string old_secret = created->secret;
  clock_.advance(10s);
  auto rotated = service_->rotate(created->record.id, 5min);
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_EQ(rotated->record.id, created->record.id);
  EXPECT_NE(rotated->secret, old_secret);
  EXPECT_EQ(rotated->record.limits.tpm, 500);
  EXPECT_EQ(rotated->record.rotated_at, kJan10 + 10'000);

  auto by_new = cache_->resolve(rotated->secret);
  auto by_old = cache_->resolve(old_secret);
  ASSERT_TRUE(by_new && by_old);
  EXPECT_EQ((*by_new)->key.id, (*by_old)->key.id);
  clock_.advance(5min);
  EXPECT_FALSE(cache_->resolve(old_secret));
  EXPECT_TRUE(cache_->resolve(rotated->secret));
}

TEST_F(KeyServiceTest, RotateWithoutGraceCutsOldSecretAtOnce) {
  KeySpec spec;
  spec.name = "k";
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  auto rotated = service_->rotate(created->record.id);
  ASSERT_TRUE(rotated);
  EXPECT_FALSE(cache_->resolve(created->secret));
  EXPECT_TRUE(cache_->resolve(rotated->secret));
  EXPECT_FALSE(store_->find_key_by_hash(sha256(created->secret)).value());
}

TEST_F(KeyServiceTest, RevokeEndsRotationGraceToo) {
  KeySpec spec;
  spec.name = "k";
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  auto rotated = service_->rotate(created->record.id, 1h);
  ASSERT_TRUE(rotated);
  ASSERT_TRUE(service_->revoke(created->record.id));
  EXPECT_FALSE(cache_->resolve(created->secret));
  EXPECT_FALSE(cache_->resolve(rotated->secret));
}

TEST_F(KeyServiceTest, UpdateChangesOnlyGivenFields) {
  KeySpec spec;
  spec.name = "k";
  spec.policy_profile = "default";
  spec.limits.rpm = 5;
  auto created = service_->create(spec);
  ASSERT_TRUE(created);
  KeyUpdate u;
  u.name = "renamed";
  u.allowed_models = std::vector<std::string>{"claude-*"};
  auto updated = service_->update(created->record.id, u);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->name, "renamed");
  EXPECT_EQ(updated->policy_profile, "default");
  EXPECT_EQ(updated->limits.rpm, 5);
  EXPECT_EQ(updated->secret_hash, created->record.secret_hash);
  KeyUpdate bad;
  bad.metadata_json = "not json";
  EXPECT_FALSE(service_->update(created->record.id, bad));
  EXPECT_FALSE(service_->update("key_missing", u));
}

TEST_F(KeyServiceTest, TeamsAndListingByTeam) {
  TeamSpec ts;
  ts.id = "ml";
  ts.name = "ML";
  ts.limits.rpm = 100;
  auto team = service_->create_team(ts);
  ASSERT_TRUE(team) << team.error().message;
  EXPECT_FALSE(service_->create_team(ts));  // duplicate id
  KeySpec spec;
  spec.name = "a";
  spec.team_id = "ml";
  ASSERT_TRUE(service_->create(spec));
  spec.name = "b";
  spec.team_id.clear();
  ASSERT_TRUE(service_->create(spec));
  EXPECT_EQ(service_->list()->size(), 2u);
  auto ml = service_->list(std::string_view("ml"));
  ASSERT_EQ(ml->size(), 1u);
  EXPECT_EQ((*ml)[0].name, "a");
  ts.limits.rpm = 200;
  auto updated = service_->update_team("ml", ts);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->limits.rpm, 200);
  EXPECT_EQ(service_->list_teams()->size(), 1u);
}

}  // namespace
}  // namespace bulwark::auth
