#pragma once
// The admin API for governance (keys, teams, spend, audit) and the JSON both it and the
// CLI speak. Handlers are synchronous: each is one or two SQLite statements on a rare
// operator request, so they run on the worker that received them.
//
//   POST   /admin/keys                 create; the answer holds the secret, shown once
//   GET    /admin/keys[?team=ID]       list
//   GET    /admin/keys/{id}            show, with the budget's live spend and reservations
//   PATCH  /admin/keys/{id}            update the fields given
//   DELETE /admin/keys/{id}            revoke (also POST /admin/keys/{id}/revoke)
//   POST   /admin/keys/{id}/rotate     new secret, same id; {"grace": "1h"} keeps the old one
//   POST   /admin/teams, GET /admin/teams, GET|PATCH /admin/teams/{id}
//   GET    /admin/spend?by=key|team|model|day&since=…&until=…
//   GET    /admin/audit?from_seq=N&limit=M   JSON lines
//   GET    /admin/audit/verify[?expect_last_seq=N]
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accounting/budget.hpp"
#include "auth/key_service.hpp"
#include "core/error.hpp"
#include "pipeline/runtime.hpp"
#include "storage/store.hpp"

namespace bulwark::pipeline {

struct AdminCall {
  std::string_view method;         // "GET", "POST", ...
  std::string_view target;         // path and query
  std::string_view body;
  std::string_view authorization;  // the Authorization header
};

struct AdminReply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// True when `target` (path, query included) is one of the governance admin routes.
bool is_governance_admin_path(std::string_view target) noexcept;
AdminReply admin_governance(const Runtime& runtime, const AdminCall& call);

// ---- JSON shared by the admin API and the CLI -------------------------------------------
// Key and team settings from a JSON object. Money is USD as a decimal string or number
// ("12.50"), exact to the nano-dollar; times are RFC 3339 or Unix milliseconds; the
// budget period is day, week, month or total.
Result<auth::KeySpec> key_spec_from_json(std::string_view body);
Result<auth::KeyUpdate> key_update_from_json(std::string_view body);
Result<auth::TeamSpec> team_spec_from_json(std::string_view body);
// A change to `current`: the fields the body names replace its values, the others keep them.
Result<auth::TeamSpec> team_update_from_json(std::string_view body, const storage::TeamRecord& current);
// The error for a key or team body naming a policy_profile `known` does not accept: an
// unknown name would leave its requests to the next level's profile without a word.
// nullopt when it names none or a known one (or is not a JSON object: its route says so).
std::optional<Error> unknown_policy_profile(std::string_view body, const std::function<bool(std::string_view)>& known);

std::string key_json(const storage::KeyRecord& key, const std::optional<accounting::BudgetUsage>& usage = std::nullopt);
std::string team_json(const storage::TeamRecord& team);
std::string spend_json(const std::vector<storage::SpendAggregate>& rows, const storage::SpendQuery& q);

// "2026-11-01", "2026-11-01T12:00:00Z", Unix milliseconds, or a span back from now ("7d",
// "24h", "30m").
Result<storage::UnixMillis> parse_when(std::string_view text, std::chrono::system_clock::time_point now);
std::string rfc3339(storage::UnixMillis t);
std::optional<storage::SpendGroup> parse_group(std::string_view by) noexcept;

}  // namespace bulwark::pipeline
