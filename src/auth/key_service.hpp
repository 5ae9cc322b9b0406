#pragma once
// Administration of virtual keys and teams: create, list, show, update, revoke, rotate.
// Every change goes through the Store (which bumps its keys version) and then runs the
// on_change hook, which the gateway points at KeyCache::refresh.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/glob.hpp"
#include "storage/store.hpp"

namespace bulwark::auth {

struct KeySpec {
  std::string name;
  std::string team_id;  // must name an existing team when set
  std::vector<std::string> allowed_models;  // glob patterns ('*', '?'); empty: all
  std::optional<storage::UnixMillis> expires_at;
  storage::Limits limits;
  std::int64_t max_parallel = 0;
  std::string metadata_json = "{}";  // must be a JSON object
  std::string policy_profile;
};

// Fields left empty are unchanged.
struct KeyUpdate {
  std::optional<std::string> name;
  std::optional<std::string> team_id;
  std::optional<std::vector<std::string>> allowed_models;
  std::optional<std::optional<storage::UnixMillis>> expires_at;  // {nullopt}: clear expiry
  std::optional<storage::Limits> limits;
  std::optional<std::int64_t> max_parallel;
  std::optional<std::string> metadata_json;
  std::optional<std::string> policy_profile;
};

struct CreatedKey {
  storage::KeyRecord record;
  std::string secret;  // the only time the secret exists outside the caller
};

struct TeamSpec {
  std::string id;  // empty: generated
  std::string name;
  storage::Limits limits;
  std::string metadata_json = "{}";
  std::string policy_profile;  // for the team's keys that name none; empty: none
};

class KeyService {
 public:
  KeyService(storage::Store& store, const Clock& clock) noexcept : store_(store), clock_(clock) {}

  void on_change(std::function<void()> hook) { on_change_ = std::move(hook); }

  Result<CreatedKey> create(const KeySpec& spec);
  Result<std::vector<storage::KeyRecord>> list(std::optional<std::string_view> team_id = {});
  Result<storage::KeyRecord> show(std::string_view id);
  Result<storage::KeyRecord> update(std::string_view id, const KeyUpdate& change);
  Result<storage::KeyRecord> revoke(std::string_view id);
  // New secret, same id and settings. With grace > 0 the old secret keeps working until
  // now + grace; with 0 it stops at once.
  Result<CreatedKey> rotate(std::string_view id, std::chrono::milliseconds grace = {});

  Result<storage::TeamRecord> create_team(const TeamSpec& spec);
  Result<storage::TeamRecord> update_team(std::string_view id, const TeamSpec& spec);
  Result<storage::TeamRecord> show_team(std::string_view id);
  Result<std::vector<storage::TeamRecord>> list_teams();

 private:
  Status validate(const storage::KeyRecord& k);
  Result<storage::KeyRecord> load(std::string_view id);
  void changed() const {
    if (on_change_) on_change_();
  }
  storage::UnixMillis now() const { return storage::to_unix_millis(clock_.wall()); }

  storage::Store& store_;
  const Clock& clock_;
  std::function<void()> on_change_;
};

using bulwark::glob_match;  // case-sensitive model globs (core/glob.hpp)

}  // namespace bulwark::auth
