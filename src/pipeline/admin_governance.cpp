#include "pipeline/admin_governance.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <span>

#include "accounting/audit.hpp"
#include "accounting/pricing.hpp"
#include "api/openai/chat.hpp"
#include "config/config.hpp"
#include "core/percent.hpp"
#include "pipeline/admin.hpp"
#include "pipeline/governance.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {
namespace {

namespace bj = boost::json;

Error bad(std::string msg, std::string param = {}) { return Error::client(ErrorKind::bad_request, std::move(msg), std::move(param)); }

Result<bj::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  bj::value v = bj::parse(body.empty() ? std::string_view("{}") : body, ec);
  if (ec) return std::unexpected(Error::client(ErrorKind::invalid_json, "The body is not valid JSON: " + ec.message()));
  if (!v.is_object()) return std::unexpected(bad("The body must be a JSON object."));
  return std::move(v.as_object());
}

Result<std::string> string_of(const bj::value& v, std::string_view field) {
  if (!v.is_string()) return std::unexpected(bad(std::string(field) + " must be a string", std::string(field)));
  return std::string(v.as_string());
}

Result<std::int64_t> int_of(const bj::value& v, std::string_view field) {
  if (v.is_int64() && v.as_int64() >= 0) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) return static_cast<std::int64_t>(v.as_uint64());
  if (v.is_double() && v.as_double() >= 0 && v.as_double() == static_cast<double>(static_cast<std::int64_t>(v.as_double())))
    return static_cast<std::int64_t>(v.as_double());
  return std::unexpected(bad(std::string(field) + " must be a whole number >= 0", std::string(field)));
}

// USD as text ("12.50") or a number: exact nano-dollars either way.
Result<std::int64_t> usd_of(const bj::value& v, std::string_view field) {
  std::string text;
  if (v.is_string()) text = std::string(v.as_string());
  else if (v.is_int64()) text = std::to_string(v.as_int64());
  else if (v.is_uint64()) text = std::to_string(v.as_uint64());
  else if (v.is_double()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9f", v.as_double());
    text = buf;
  } else {
    return std::unexpected(bad(std::string(field) + " must be an amount in USD such as \"12.50\"", std::string(field)));
  }
  auto n = accounting::parse_usd(text);
  if (!n || *n < 0) return std::unexpected(bad(std::string(field) + " must be an amount in USD >= 0 such as \"12.50\"", std::string(field)));
  return *n;
}

Result<std::vector<std::string>> strings_of(const bj::value& v, std::string_view field) {
  std::vector<std::string> out;
  if (v.is_string()) {  // "a,b" is accepted too: the CLI passes comma lists through
    std::string_view s = v.as_string();
    while (!s.empty()) {
      const auto comma = s.find(',');
      std::string_view item = s.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    return out;
  }
  if (!v.is_array()) return std::unexpected(bad(std::string(field) + " must be a list of strings", std::string(field)));
  for (const bj::value& item : v.as_array()) {
    if (!item.is_string()) return std::unexpected(bad(std::string(field) + " must be a list of strings", std::string(field)));
    out.emplace_back(item.as_string());
  }
  return out;
}

Result<std::string> metadata_of(const bj::value& v) {
  if (v.is_string()) {  // already JSON text (the CLI)
    boost::system::error_code ec;
    bj::value parsed = bj::parse(v.as_string(), ec);
    if (ec || !parsed.is_object()) return std::unexpected(bad("metadata must be a JSON object", "metadata"));
    return bj::serialize(parsed);
  }
  if (!v.is_object()) return std::unexpected(bad("metadata must be a JSON object", "metadata"));
  return bj::serialize(v);
}

Result<std::optional<storage::UnixMillis>> expiry_of(const bj::value& v) {
  if (v.is_null()) return std::optional<storage::UnixMillis>{};
  if (v.is_int64()) return std::optional<storage::UnixMillis>{v.as_int64()};
  if (!v.is_string()) return std::unexpected(bad("expires_at must be RFC 3339 text, Unix milliseconds or null", "expires_at"));
  std::string_view text = v.as_string();
  // A span ("30d") counts forward from now for expiry.
  if (!text.empty() && (text.back() == 'd' || text.back() == 'h' || text.back() == 'm') && text.find('-') == std::string_view::npos) {
    auto d = config::parse_duration(text.back() == 'd' ? std::string(text.substr(0, text.size() - 1)) + "h" : std::string(text));
    if (!d) return std::unexpected(bad("expires_at: cannot read '" + std::string(text) + "'", "expires_at"));
    const auto span = text.back() == 'd' ? *d * 24 : *d;
    return std::optional<storage::UnixMillis>{storage::to_unix_millis(std::chrono::system_clock::now()) + span.count()};
  }
  auto t = parse_when(text, std::chrono::system_clock::now());
  if (!t) return std::unexpected(bad("expires_at: " + t.error().message, "expires_at"));
  return std::optional<storage::UnixMillis>{*t};
}

// Fills limits from rpm / tpm / budget_usd / budget_period; `touched` says whether any was given.
Result<bool> read_limits(const bj::object& o, storage::Limits& l) {
  bool touched = false;
  if (const bj::value* v = o.if_contains("rpm")) {
    auto n = int_of(*v, "rpm");
    if (!n) return std::unexpected(n.error());
    l.rpm = *n;
    touched = true;
  }
  if (const bj::value* v = o.if_contains("tpm")) {
    auto n = int_of(*v, "tpm");
    if (!n) return std::unexpected(n.error());
    l.tpm = *n;
    touched = true;
  }
  if (const bj::value* v = o.if_contains("budget_usd")) {
    if (v->is_null()) l.budget_nano_usd.reset();
    else {
      auto n = usd_of(*v, "budget_usd");
      if (!n) return std::unexpected(n.error());
      l.budget_nano_usd = *n;
    }
    touched = true;
  }
  if (const bj::value* v = o.if_contains("budget_period")) {
    auto s = string_of(*v, "budget_period");
    if (!s) return std::unexpected(s.error());
    auto p = storage::parse_budget_period(*s);
    if (!p) return std::unexpected(bad("budget_period must be day, week, month or total", "budget_period"));
    l.budget_period = *p;
    touched = true;
  }
  return touched;
}

// Overlays the team fields the object names onto spec: name, limits, metadata, policy
// profile; those it does not name keep their values.
Status read_team_fields(const bj::object& o, auth::TeamSpec& spec) {
  if (const bj::value* v = o.if_contains("name")) {
    auto s = string_of(*v, "name");
    if (!s) return std::unexpected(s.error());
    spec.name = *s;
  }
  if (auto l = read_limits(o, spec.limits); !l) return std::unexpected(l.error());
  if (const bj::value* v = o.if_contains("metadata")) {
    auto m = metadata_of(*v);
    if (!m) return std::unexpected(m.error());
    spec.metadata_json = *m;
  }
  if (const bj::value* v = o.if_contains("policy_profile")) {
    auto s = string_of(*v, "policy_profile");
    if (!s) return std::unexpected(s.error());
    spec.policy_profile = *s;
  }
  return {};
}

Status no_unknown(const bj::object& o, std::span<const std::string_view> known) {
  for (const auto& kv : o) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || kv.key() == k;
    if (!ok) return std::unexpected(bad("unknown field '" + std::string(kv.key()) + "'", std::string(kv.key())));
  }
  return {};
}

constexpr std::string_view kKeyFields[] = {
    "name", "team_id", "models", "expires_at", "rpm", "tpm", "budget_usd", "budget_period", "max_parallel", "metadata", "policy_profile"};

bj::value limits_value(const storage::Limits& l) {
  bj::object o;
  o["rpm"] = l.rpm;
  o["tpm"] = l.tpm;
  if (l.budget_nano_usd) o["budget_usd"] = accounting::format_usd(*l.budget_nano_usd);
  else o["budget_usd"] = nullptr;
  o["budget_period"] = std::string(storage::to_string(l.budget_period));
  return o;
}

bj::value when_value(const std::optional<storage::UnixMillis>& t) {
  if (!t) return nullptr;
  return bj::value(rfc3339(*t));
}

bj::value metadata_value(const std::string& text) {
  boost::system::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec) return bj::object{};
  return v;
}

AdminReply reply(unsigned status, std::string body) { return {status, std::move(body), "application/json"}; }

AdminReply error_reply(const Error& e) {
  unsigned status = static_cast<unsigned>(http_status_of(e.kind));
  if (e.kind == ErrorKind::bad_request && (e.message.starts_with("no key ") || e.message.starts_with("no team "))) status = 404;
  return reply(status, api::openai::error_body(e));
}

std::string_view strip_query(std::string_view target, std::string_view* query) {
  const auto q = target.find('?');
  if (query) *query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// Query values may use '+' for spaces; a malformed escape is kept as written.
std::string decode_component(std::string_view s, bool plus_is_space) {
  auto decoded = percent_decode(s, plus_is_space);
  return decoded ? std::move(*decoded) : std::string(s);
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string() : decode_component(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}


AdminReply keys_route(Governance& g, const AdminCall& call, std::string_view rest, std::string_view query) {
  auth::KeyService& keys = g.keys();
  if (rest.empty()) {
    if (call.method == "POST") {
      auto spec = key_spec_from_json(call.body);
      if (!spec) return error_reply(spec.error());
      auto created = keys.create(*spec);
      if (!created) return error_reply(created.error());
      log::info("admin_key_created", {{"key_id", created->record.id}, {"team_id", created->record.team_id}});
      return reply(201, "{\"key\":" + key_json(created->record) + ",\"secret\":" + bj::serialize(bj::value(created->secret)) + "}");
    }
    if (call.method == "GET") {
      const auto team = query_param(query, "team");
      auto list = team ? keys.list(std::string_view(*team)) : keys.list();
      if (!list) return error_reply(list.error());
      std::string body = "{\"data\":[";
      for (std::size_t i = 0; i < list->size(); ++i) body += (i ? "," : "") + key_json((*list)[i]);
      return reply(200, body + "]}");
    }
    return error_reply(Error::client(ErrorKind::method_not_allowed, "Use GET or POST on /admin/keys."));
  }
  // /{id}[/action]
  const auto slash = rest.find('/');
  const std::string id = decode_component(rest.substr(0, slash), false);
  const std::string_view action = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  if (action.empty() && call.method == "GET") {
    auto k = keys.show(id);
    if (!k) return error_reply(k.error());
    std::optional<accounting::BudgetUsage> usage;
    if (k->limits.budget_nano_usd) {
      // A key not seen since start has no live state yet: load it from the store.
      const accounting::BudgetSubject subject{storage::SpendScope::key, k->id, *k->limits.budget_nano_usd, k->limits.budget_period};
      if (auto ok = g.budgets().recover(std::span(&subject, 1)); ok) usage = g.budgets().usage(storage::SpendScope::key, k->id);
    }
    return reply(200, key_json(*k, usage));
  }
  if (action.empty() && call.method == "PATCH") {
    auto change = key_update_from_json(call.body);
    if (!change) return error_reply(change.error());
    if (change->limits) {  // the limits not named keep their stored values
      auto current = keys.show(id);
      if (!current) return error_reply(current.error());
      storage::Limits merged = current->limits;
      auto o = parse_object(call.body);
      if (o) (void)read_limits(*o, merged);
      change->limits = merged;
    }
    auto k = keys.update(id, *change);
    if (!k) return error_reply(k.error());
    log::info("admin_key_updated", {{"key_id", k->id}});
    return reply(200, key_json(*k));
  }
  if ((action.empty() && call.method == "DELETE") || (action == "revoke" && call.method == "POST")) {
    auto k = keys.revoke(id);
    if (!k) return error_reply(k.error());
    log::info("admin_key_revoked", {{"key_id", k->id}});
    return reply(200, key_json(*k));
  }
  if (action == "rotate" && call.method == "POST") {
    auto o = parse_object(call.body);
    if (!o) return error_reply(o.error());
    std::chrono::milliseconds grace{0};
    if (const bj::value* v = o->if_contains("grace")) {
      auto text = string_of(*v, "grace");
      if (!text) return error_reply(text.error());
      auto d = config::parse_duration(*text);
      if (!d) return error_reply(bad("grace must be a duration such as 10m or 1h", "grace"));
      grace = *d;
    }
    auto created = keys.rotate(id, grace);
    if (!created) return error_reply(created.error());
    log::info("admin_key_rotated", {{"key_id", created->record.id}, {"grace_ms", grace.count()}});
    return reply(200, "{\"key\":" + key_json(created->record) + ",\"secret\":" + bj::serialize(bj::value(created->secret)) + "}");
  }
  return error_reply(Error::client(ErrorKind::route_not_found, "Unknown admin route: " + std::string(call.method) + " " + std::string(call.target)));
}

AdminReply teams_route(Governance& g, const AdminCall& call, std::string_view rest) {
  auth::KeyService& keys = g.keys();
  if (rest.empty()) {
    if (call.method == "POST") {
      auto spec = team_spec_from_json(call.body);
      if (!spec) return error_reply(spec.error());
      auto t = keys.create_team(*spec);
      if (!t) return error_reply(t.error());
      log::info("admin_team_created", {{"team_id", t->id}});
      return reply(201, team_json(*t));
    }
    if (call.method == "GET") {
      auto list = keys.list_teams();
      if (!list) return error_reply(list.error());
      std::string body = "{\"data\":[";
      for (std::size_t i = 0; i < list->size(); ++i) body += (i ? "," : "") + team_json((*list)[i]);
      return reply(200, body + "]}");
    }
    return error_reply(Error::client(ErrorKind::method_not_allowed, "Use GET or POST on /admin/teams."));
  }
  const std::string id = decode_component(rest, false);
  if (call.method == "GET") {
    auto t = keys.show_team(id);
    if (!t) return error_reply(t.error());
    return reply(200, team_json(*t));
  }
  if (call.method == "PATCH") {
    auto current = keys.show_team(id);
    if (!current) return error_reply(current.error());
    auto spec = team_update_from_json(call.body, *current);
    if (!spec) return error_reply(spec.error());
    auto t = keys.update_team(id, *spec);
    if (!t) return error_reply(t.error());
    log::info("admin_team_updated", {{"team_id", t->id}});
    return reply(200, team_json(*t));
  }
  return error_reply(Error::client(ErrorKind::method_not_allowed, "Use GET or PATCH on /admin/teams/{id}."));
}

AdminReply spend_route(Governance& g, std::string_view query) {
  const auto now = std::chrono::system_clock::now();
  storage::SpendQuery q;
  const auto by = query_param(query, "by");
  const auto group = parse_group(by.value_or("key"));
  if (!group) return error_reply(bad("by must be key, team, model or day", "by"));
  q.group_by = *group;
  q.from = 0;
  q.to = storage::to_unix_millis(now) + 1;
  if (auto since = query_param(query, "since")) {
    auto t = parse_when(*since, now);
    if (!t) return error_reply(bad("since: " + t.error().message, "since"));
    q.from = *t;
  }
  if (auto until = query_param(query, "until")) {
    auto t = parse_when(*until, now);
    if (!t) return error_reply(bad("until: " + t.error().message, "until"));
    q.to = *t;
  }
  auto rows = g.ledger().report(q);
  if (!rows) return error_reply(rows.error());
  return reply(200, spend_json(*rows, q));
}

AdminReply audit_route(Governance& g, std::string_view rest, std::string_view query) {
  if (rest == "verify") {
    std::optional<std::int64_t> expect;
    if (auto e = query_param(query, "expect_last_seq")) {
      std::int64_t n = 0;
      auto [p, ec] = std::from_chars(e->data(), e->data() + e->size(), n);
      if (ec != std::errc{} || p != e->data() + e->size()) return error_reply(bad("expect_last_seq must be a number", "expect_last_seq"));
      expect = n;
    }
    if (auto ok = g.ledger().flush(); !ok) return error_reply(ok.error());
    auto report = accounting::AuditTrail::verify(g.store(), expect);
    if (!report) return error_reply(report.error());
    bj::object o;
    o["ok"] = report->ok;
    o["checked"] = report->checked;
    if (report->first_bad_seq) o["first_bad_seq"] = *report->first_bad_seq;
    else o["first_bad_seq"] = nullptr;
    o["reason"] = report->reason;
    return reply(200, bj::serialize(o));
  }
  if (!rest.empty()) return error_reply(Error::client(ErrorKind::route_not_found, "Unknown admin route under /admin/audit."));
  std::int64_t from = 1;
  std::size_t limit = 1000;
  if (auto f = query_param(query, "from_seq")) std::from_chars(f->data(), f->data() + f->size(), from);
  if (auto l = query_param(query, "limit")) std::from_chars(l->data(), l->data() + l->size(), limit);
  limit = std::clamp<std::size_t>(limit, 1, 100'000);
  if (auto ok = g.ledger().flush(); !ok) return error_reply(ok.error());
  auto rows = g.store().audit_rows(from, limit);
  if (!rows) return error_reply(rows.error());
  std::string out;
  for (const storage::AuditRow& row : *rows) {
    out += "{\"seq\":" + std::to_string(row.seq) + ",\"prev_hash\":\"" + row.prev_hash + "\",\"hash\":\"" + row.hash + "\",\"record\":";
    out += row.body;
    out += "}\n";
  }
  return {200, std::move(out), "application/x-ndjson"};
}

}  // namespace

bool is_governance_admin_path(std::string_view target) noexcept {
  const std::string_view path = strip_query(target, nullptr);
  for (std::string_view prefix : {"/admin/keys", "/admin/teams", "/admin/spend", "/admin/audit"})
    if (path == prefix || (path.starts_with(prefix) && path.size() > prefix.size() && path[prefix.size()] == '/')) return true;
  return false;
}

AdminReply admin_governance(const Runtime& runtime, const AdminCall& call) {
  if (!admin_authorized(runtime, call.authorization))
    return error_reply(Error::client(ErrorKind::unauthenticated, "The admin API needs the master key as `Authorization: Bearer <key>`."));
  Governance* g = runtime.governance();
  if (!g) return error_reply(Error::gateway(ErrorKind::internal, "Governance is not available in this process."));
  std::string_view query;
  const std::string_view path = strip_query(call.target, &query);
  auto sub = [&](std::string_view prefix) {
    std::string_view rest = path.substr(prefix.size());
    if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    return rest;
  };
  if ((path.starts_with("/admin/keys") || path.starts_with("/admin/teams")) && (call.method == "POST" || call.method == "PATCH"))
    if (auto e = unknown_policy_profile(call.body, [&runtime](std::string_view name) { return runtime.policy(name) != nullptr; }))
      return error_reply(*e);
  if (path.starts_with("/admin/keys")) return keys_route(*g, call, sub("/admin/keys"), query);
  if (path.starts_with("/admin/teams")) return teams_route(*g, call, sub("/admin/teams"));
  if (path == "/admin/spend") {
    if (call.method != "GET") return error_reply(Error::client(ErrorKind::method_not_allowed, "Use GET on /admin/spend."));
    return spend_route(*g, query);
  }
  if (path.starts_with("/admin/audit")) {
    if (call.method != "GET") return error_reply(Error::client(ErrorKind::method_not_allowed, "Use GET on /admin/audit."));
    return audit_route(*g, sub("/admin/audit"), query);
  }
  return error_reply(Error::client(ErrorKind::route_not_found, "Unknown admin route."));
}

Result<auth::KeySpec> key_spec_from_json(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  if (auto ok = no_unknown(*o, kKeyFields); !ok) return std::unexpected(ok.error());
  auto change = key_update_from_json(body);
  if (!change) return std::unexpected(change.error());
  auth::KeySpec spec;
  if (!change->name) return std::unexpected(bad("name is required", "name"));
  spec.name = *change->name;
  if (change->team_id) spec.team_id = *change->team_id;
  if (change->allowed_models) spec.allowed_models = *change->allowed_models;
  if (change->expires_at) spec.expires_at = *change->expires_at;
  if (change->limits) spec.limits = *change->limits;
  if (change->max_parallel) spec.max_parallel = *change->max_parallel;
  if (change->metadata_json) spec.metadata_json = *change->metadata_json;
  if (change->policy_profile) spec.policy_profile = *change->policy_profile;
  return spec;
}

// An update carries only the fields present. Limits come back as a group built on the
// defaults; PATCH merges them onto the stored key's limits.
Result<auth::KeyUpdate> key_update_from_json(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  if (auto ok = no_unknown(*o, kKeyFields); !ok) return std::unexpected(ok.error());
  auth::KeyUpdate u;
  if (const bj::value* v = o->if_contains("name")) {
    auto s = string_of(*v, "name");
    if (!s) return std::unexpected(s.error());
    u.name = *s;
  }
  if (const bj::value* v = o->if_contains("team_id")) {
    auto s = v->is_null() ? Result<std::string>(std::string()) : string_of(*v, "team_id");
    if (!s) return std::unexpected(s.error());
    u.team_id = *s;
  }
  if (const bj::value* v = o->if_contains("models")) {
    auto m = strings_of(*v, "models");
    if (!m) return std::unexpected(m.error());
    u.allowed_models = *m;
  }
  if (const bj::value* v = o->if_contains("expires_at")) {
    auto e = expiry_of(*v);
    if (!e) return std::unexpected(e.error());
    u.expires_at = *e;
  }
  storage::Limits limits;
  auto touched = read_limits(*o, limits);
  if (!touched) return std::unexpected(touched.error());
  if (*touched) u.limits = limits;
  if (const bj::value* v = o->if_contains("max_parallel")) {
    auto n = int_of(*v, "max_parallel");
    if (!n) return std::unexpected(n.error());
    u.max_parallel = *n;
  }
  if (const bj::value* v = o->if_contains("metadata")) {
    auto m = metadata_of(*v);
    if (!m) return std::unexpected(m.error());
    u.metadata_json = *m;
  }
  if (const bj::value* v = o->if_contains("policy_profile")) {
    auto s = string_of(*v, "policy_profile");
    if (!s) return std::unexpected(s.error());
    u.policy_profile = *s;
  }
  return u;
}

Result<auth::TeamSpec> team_spec_from_json(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  constexpr std::string_view kFields[] = {"id", "name", "rpm", "tpm", "budget_usd", "budget_period", "metadata", "policy_profile"};
  if (auto ok = no_unknown(*o, kFields); !ok) return std::unexpected(ok.error());
  auth::TeamSpec spec;
  if (const bj::value* v = o->if_contains("id")) {
    auto s = string_of(*v, "id");
    if (!s) return std::unexpected(s.error());
    spec.id = *s;
  }
  if (!o->if_contains("name")) return std::unexpected(bad("name is required", "name"));
  if (auto s = read_team_fields(*o, spec); !s) return std::unexpected(s.error());
  return spec;
}

Result<auth::TeamSpec> team_update_from_json(std::string_view body, const storage::TeamRecord& current) {
  auto o = parse_object(body);
  if (!o) return std::unexpected(o.error());
  constexpr std::string_view kFields[] = {"name", "rpm", "tpm", "budget_usd", "budget_period", "metadata", "policy_profile"};
  if (auto ok = no_unknown(*o, kFields); !ok) return std::unexpected(ok.error());
  auth::TeamSpec spec{current.id, current.name, current.limits, current.metadata_json, current.policy_profile};
  if (auto s = read_team_fields(*o, spec); !s) return std::unexpected(s.error());
  return spec;
}

std::optional<Error> unknown_policy_profile(std::string_view body, const std::function<bool(std::string_view)>& known) {
  boost::system::error_code ec;
  const bj::value v = bj::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const bj::value* p = v.as_object().if_contains("policy_profile");
  if (p == nullptr || !p->is_string() || p->as_string().empty()) return std::nullopt;
  const std::string_view name(p->as_string());
  if (known(name)) return std::nullopt;
  return bad("policy_profile '" + std::string(name) + "' is not a profile under governance.policies", "policy_profile");
}

std::string key_json(const storage::KeyRecord& k, const std::optional<accounting::BudgetUsage>& usage) {
  bj::object o;
  o["id"] = k.id;
  o["name"] = k.name;
  o["display_prefix"] = k.display_prefix;
  if (k.team_id.empty()) o["team_id"] = nullptr;
  else o["team_id"] = k.team_id;
  bj::array models;
  for (const auto& m : k.allowed_models) models.emplace_back(m);
  o["models"] = std::move(models);
  o["expires_at"] = when_value(k.expires_at);
  const bj::value limits = limits_value(k.limits);
  for (const auto& kv : limits.as_object()) o[kv.key()] = kv.value();
  o["max_parallel"] = k.max_parallel;
  o["metadata"] = metadata_value(k.metadata_json);
  o["policy_profile"] = k.policy_profile;
  o["revoked"] = k.revoked;
  o["created_at"] = rfc3339(k.created_at);
  o["updated_at"] = rfc3339(k.updated_at);
  o["rotated_at"] = when_value(k.rotated_at);
  if (k.previous_valid_until) o["previous_secret_valid_until"] = rfc3339(*k.previous_valid_until);
  if (usage) {
    bj::object b;
    b["spent_usd"] = accounting::format_usd(usage->spent_nano_usd);
    b["reserved_usd"] = accounting::format_usd(usage->reserved_nano_usd);
    b["budget_usd"] = accounting::format_usd(usage->budget_nano_usd);
    b["period_start"] = rfc3339(usage->period_start);
    o["budget"] = std::move(b);
  }
  return bj::serialize(o);
}

std::string team_json(const storage::TeamRecord& t) {
  bj::object o;
  o["id"] = t.id;
  o["name"] = t.name;
  const bj::value limits = limits_value(t.limits);
  for (const auto& kv : limits.as_object()) o[kv.key()] = kv.value();
  o["metadata"] = metadata_value(t.metadata_json);
  o["policy_profile"] = t.policy_profile;
  o["created_at"] = rfc3339(t.created_at);
  o["updated_at"] = rfc3339(t.updated_at);
  return bj::serialize(o);
}

std::string spend_json(const std::vector<storage::SpendAggregate>& rows, const storage::SpendQuery& q) {
  bj::object out;
  const char* by[] = {"key", "team", "model", "day"};
  out["by"] = by[static_cast<int>(q.group_by)];
  out["since"] = rfc3339(q.from);
  out["until"] = rfc3339(q.to);
  bj::array data;
  std::int64_t total = 0, overhead = 0;
  for (const auto& r : rows) {
    bj::object o;
    o["group"] = r.group;
    o["requests"] = r.requests;
    o["input_tokens"] = r.input_tokens;
    o["output_tokens"] = r.output_tokens;
    o["cached_input_tokens"] = r.cached_input_tokens;
    o["cache_write_tokens"] = r.cache_write_tokens;
    o["cost_usd"] = accounting::format_usd(r.cost_nano_usd);
    o["estimated_requests"] = r.estimated_requests;
    // What providers charged for attempts that were not the caller's answer: the
    // gateway's, never in cost_usd.
    o["overhead_attempts"] = r.overhead_attempts;
    o["overhead_usd"] = accounting::format_usd(r.overhead_nano_usd);
    total += r.cost_nano_usd;
    overhead += r.overhead_nano_usd;
    data.emplace_back(std::move(o));
  }
  out["data"] = std::move(data);
  out["total_cost_usd"] = accounting::format_usd(total);
  out["total_overhead_usd"] = accounting::format_usd(overhead);
  return bj::serialize(out);
}

std::optional<storage::SpendGroup> parse_group(std::string_view by) noexcept {
  if (by == "key") return storage::SpendGroup::key;
  if (by == "team") return storage::SpendGroup::team;
  if (by == "model") return storage::SpendGroup::model;
  if (by == "day") return storage::SpendGroup::day;
  return std::nullopt;
}

Result<storage::UnixMillis> parse_when(std::string_view text, std::chrono::system_clock::time_point now) {
  auto fail = [&] {
    return std::unexpected(bad("cannot read the time '" + std::string(text) +
                               "': use 2026-11-01, 2026-11-01T12:00:00Z, Unix milliseconds, or a span such as 7d or 24h"));
  };
  if (text.empty()) return fail();
  const bool digits_only = text.find_first_not_of("0123456789") == std::string_view::npos;
  if (digits_only) {
    storage::UnixMillis v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{}) return fail();
    return v;
  }
  if (text.find('-') == std::string_view::npos) {  // a span back from now
    std::string spec(text);
    long long factor = 1;
    if (spec.back() == 'd') {
      spec.back() = 'h';
      factor = 24;
    }
    auto d = config::parse_duration(spec);
    if (!d) return fail();
    return storage::to_unix_millis(now) - d->count() * factor;
  }
  // RFC 3339: a date, or date-time with optional fraction and a Z or +hh:mm offset.
  auto digits = [&](std::size_t at, std::size_t n, int& out) {
    if (at + n > text.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, millis = 0, offset_min = 0;
  if (!digits(0, 4, y) || text.size() < 10 || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' || !digits(8, 2, d))
    return fail();
  std::size_t at = 10;
  if (at < text.size()) {
    if (text[at] != 'T' && text[at] != 't' && text[at] != ' ') return fail();
    if (!digits(at + 1, 2, h) || text.size() < at + 9 || text[at + 3] != ':' || !digits(at + 4, 2, mi) || text[at + 6] != ':' ||
        !digits(at + 7, 2, sec))
      return fail();
    at += 9;
    if (at < text.size() && text[at] == '.') {
      std::size_t n = 0;
      for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++n)
        if (n < 3) millis = millis * 10 + (text[at] - '0');
      if (n == 0) return fail();
      for (; n < 3; ++n) millis *= 10;
    }
    if (at >= text.size()) return fail();  // a time needs its zone
    if (text[at] == 'Z' || text[at] == 'z') {
      ++at;
    } else if (text[at] == '+' || text[at] == '-') {
      int oh = 0, om = 0;
      if (!digits(at + 1, 2, oh) || text.size() < at + 6 || text[at + 3] != ':' || !digits(at + 4, 2, om)) return fail();
      offset_min = (text[at] == '-' ? -1 : 1) * (oh * 60 + om);
      at += 6;
    } else {
      return fail();
    }
    if (at != text.size()) return fail();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return fail();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return (static_cast<storage::UnixMillis>(timegm(&tm)) - offset_min * 60LL) * 1000 + millis;
}

std::string rfc3339(storage::UnixMillis t) {
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(t % 1000));
  return buf;
}

}  // namespace bulwark::pipeline
