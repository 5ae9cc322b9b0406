#include "auth/key_service.hpp"

#include <boost/json.hpp>

#include "auth/virtual_key.hpp"

namespace bulwark::auth {
namespace {

Error bad(std::string msg, std::string param = {}) {
  return Error::client(ErrorKind::bad_request, std::move(msg), std::move(param));
}

bool is_json_object(const std::string& text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  return !ec && v.is_object();
}

Status validate_limits(const storage::Limits& l) {
  if (l.rpm < 0 || l.tpm < 0) return std::unexpected(bad("rate limits must be >= 0", "limits"));
  if (l.budget_nano_usd && *l.budget_nano_usd < 0) {
    return std::unexpected(bad("budget must be >= 0", "budget"));
  }
  return {};
}

}  // namespace

Status KeyService::validate(const storage::KeyRecord& k) {
  if (k.name.empty()) return std::unexpected(bad("name is required", "name"));
  if (auto s = validate_limits(k.limits); !s) return s;
  if (k.max_parallel < 0) return std::unexpected(bad("max_parallel must be >= 0", "max_parallel"));
  for (const auto& m : k.allowed_models) {
    if (m.empty()) return std::unexpected(bad("empty model pattern", "allowed_models"));
  }
  if (!is_json_object(k.metadata_json)) {
    return std::unexpected(bad("metadata must be a JSON object", "metadata"));
  }
  if (!k.team_id.empty()) {
    auto team = store_.get_team(k.team_id);
    if (!team) return std::unexpected(team.error());
    if (!*team) return std::unexpected(bad("no team " + k.team_id, "team_id"));
  }
  return {};
}

Result<storage::KeyRecord> KeyService::load(std::string_view id) {
  auto k = store_.get_key(id);
  if (!k) return std::unexpected(k.error());
  if (!*k) {
    return std::unexpected(Error::client(ErrorKind::bad_request, "no key " + std::string(id), "id"));
  }
  return std::move(**k);
}

Result<CreatedKey> KeyService::create(const KeySpec& spec) {
  auto secret = generate_secret();
  if (!secret) return std::unexpected(secret.error());
  auto id = random_id("key_");
  if (!id) return std::unexpected(id.error());
  storage::KeyRecord k;
  k.id = std::move(*id);
  k.name = spec.name;
  k.team_id = spec.team_id;
  k.secret_hash = secret->hash;
  k.display_prefix = secret->display_prefix;
  k.allowed_models = spec.allowed_models;
  k.expires_at = spec.expires_at;
  k.limits = spec.limits;
  k.max_parallel = spec.max_parallel;
  k.metadata_json = spec.metadata_json;
  k.policy_profile = spec.policy_profile;
  k.created_at = k.updated_at = now();
  if (auto s = validate(k); !s) return std::unexpected(s.error());
  if (auto s = store_.insert_key(k); !s) return std::unexpected(s.error());
  changed();
  return CreatedKey{std::move(k), std::move(secret->secret)};
}

Result<std::vector<storage::KeyRecord>> KeyService::list(std::optional<std::string_view> team_id) {
  return store_.list_keys(team_id);
}

Result<storage::KeyRecord> KeyService::show(std::string_view id) { return load(id); }

Result<storage::KeyRecord> KeyService::update(std::string_view id, const KeyUpdate& c) {
  auto k = load(id);
  if (!k) return k;
  if (c.name) k->name = *c.name;
  if (c.team_id) k->team_id = *c.team_id;
  if (c.allowed_models) k->allowed_models = *c.allowed_models;
  if (c.expires_at) k->expires_at = *c.expires_at;
  if (c.limits) k->limits = *c.limits;
  if (c.max_parallel) k->max_parallel = *c.max_parallel;
  if (c.metadata_json) k->metadata_json = *c.metadata_json;
  if (c.policy_profile) k->policy_profile = *c.policy_profile;
  k->updated_at = now();
  if (auto s = validate(*k); !s) return std::unexpected(s.error());
  if (auto s = store_.update_key(*k); !s) return std::unexpected(s.error());
  changed();
  return k;
}

Result<storage::KeyRecord> KeyService::revoke(std::string_view id) {
  auto k = load(id);
  if (!k) return k;
  k->revoked = true;
  // A revoked key must not live on through a rotation grace period either.
  k->previous_hash.reset();
  k->previous_valid_until.reset();
  k->updated_at = now();
  if (auto s = store_.update_key(*k); !s) return std::unexpected(s.error());
  changed();
  return k;
}

Result<CreatedKey> KeyService::rotate(std::string_view id, std::chrono::milliseconds grace) {
  auto k = load(id);
  if (!k) return std::unexpected(k.error());
  if (k->revoked) return std::unexpected(bad("cannot rotate a revoked key", "id"));
  auto secret = generate_secret();
  if (!secret) return std::unexpected(secret.error());
  const auto t = now();
  if (grace.count() > 0) {
    k->previous_hash = k->secret_hash;
    k->previous_valid_until = t + grace.count();
  } else {
    k->previous_hash.reset();
    k->previous_valid_until.reset();
  }
  k->secret_hash = secret->hash;
  k->display_prefix = secret->display_prefix;
  k->rotated_at = t;
  k->updated_at = t;
  if (auto s = store_.update_key(*k); !s) return std::unexpected(s.error());
  changed();
  return CreatedKey{std::move(*k), std::move(secret->secret)};
}

Result<storage::TeamRecord> KeyService::create_team(const TeamSpec& spec) {
  if (spec.name.empty()) return std::unexpected(bad("name is required", "name"));
  if (auto s = validate_limits(spec.limits); !s) return std::unexpected(s.error());
  if (!is_json_object(spec.metadata_json)) {
    return std::unexpected(bad("metadata must be a JSON object", "metadata"));
  }
  storage::TeamRecord t;
  if (spec.id.empty()) {
    auto id = random_id("team_");
    if (!id) return std::unexpected(id.error());
    t.id = std::move(*id);
  } else {
    auto existing = store_.get_team(spec.id);
    if (!existing) return std::unexpected(existing.error());
    if (*existing) return std::unexpected(bad("team " + spec.id + " already exists", "id"));
    t.id = spec.id;
  }
  t.name = spec.name;
  t.limits = spec.limits;
  t.metadata_json = spec.metadata_json;
  t.policy_profile = spec.policy_profile;
  t.created_at = t.updated_at = now();
  if (auto s = store_.upsert_team(t); !s) return std::unexpected(s.error());
  changed();
  return t;
}

Result<storage::TeamRecord> KeyService::update_team(std::string_view id, const TeamSpec& spec) {
  auto t = show_team(id);
  if (!t) return t;
  if (!spec.name.empty()) t->name = spec.name;
  if (auto s = validate_limits(spec.limits); !s) return std::unexpected(s.error());
  if (!is_json_object(spec.metadata_json)) {
    return std::unexpected(bad("metadata must be a JSON object", "metadata"));
  }
  t->limits = spec.limits;
  t->metadata_json = spec.metadata_json;
  t->policy_profile = spec.policy_profile;
  t->updated_at = now();
  if (auto s = store_.upsert_team(*t); !s) return std::unexpected(s.error());
  changed();
  return t;
}

Result<storage::TeamRecord> KeyService::show_team(std::string_view id) {
  auto t = store_.get_team(id);
  if (!t) return std::unexpected(t.error());
  if (!*t) return std::unexpected(Error::client(ErrorKind::bad_request, "no team " + std::string(id), "id"));
  return std::move(**t);
}

Result<std::vector<storage::TeamRecord>> KeyService::list_teams() { return store_.list_teams(); }

}  // namespace bulwark::auth
