#include "app/governance_cli.hpp"

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "accounting/audit.hpp"
#include "accounting/pricing.hpp"
#include "auth/key_service.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "pipeline/admin_governance.hpp"
#include "storage/sqlite_store.hpp"

namespace bulwark::app {

const char* const kGovernanceUsage = R"(
Governance (each takes --config FILE, or $BULWARK_CONFIG; it opens governance.database):
  bulwark keys create --name NAME [--team ID] [--models 'gpt-4o*,claude-*'] [--budget USD]
                      [--budget-period day|week|month|total] [--rpm N] [--tpm N]
                      [--max-parallel N] [--expires 2026-12-31|30d] [--policy PROFILE]
                      [--metadata JSON]
      Prints the new key as JSON; its "secret" is shown this once and never stored.
  bulwark keys list [--team ID] [--format table|json]
  bulwark keys show ID | revoke ID | rotate ID [--grace 1h]
  bulwark keys update ID [the create options to change]
  bulwark teams create --name NAME [--id ID] [--rpm N] [--tpm N] [--budget USD] [--budget-period P]
                       [--policy PROFILE]
  bulwark teams list | show ID | update ID [options]
  bulwark spend [--by key|team|model|day] [--since 2026-11-01|7d] [--until ...] [--format table|csv|json]
  bulwark audit verify [--expect-last-seq N]     exit 1 when the chain is broken
  bulwark audit export [--from-seq N]            JSON lines on stdout
)";

namespace {

namespace bj = boost::json;

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> options;
};

std::optional<Args> parse_args(std::span<const std::string_view> args, std::string& error) {
  Args out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a.starts_with("--")) {
      if (i + 1 >= args.size()) {
        error = "option " + std::string(a) + " needs a value";
        return std::nullopt;
      }
      out.options[std::string(a.substr(2))] = std::string(args[++i]);
    } else {
      out.positional.emplace_back(a);
    }
  }
  return out;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "bulwark: %s\n", msg.c_str());
  return 1;
}

std::string take(Args& a, std::string_view name) {
  auto it = a.options.find(name);
  if (it == a.options.end()) return {};
  std::string v = std::move(it->second);
  a.options.erase(it);
  return v;
}

struct Opened {
  std::shared_ptr<const config::Config> config;
  std::unique_ptr<storage::SqliteStore> store;
};

std::optional<Opened> open_store(Args& a) {
  std::string path = take(a, "config");
  if (path.empty())
    if (const char* env = std::getenv("BULWARK_CONFIG")) path = env;
  if (path.empty()) {
    fail("needs --config FILE (or BULWARK_CONFIG)");
    return std::nullopt;
  }
  auto cfg = config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::fprintf(stderr, "%s\n", e.to_string(path).c_str());
    return std::nullopt;
  }
  const std::filesystem::path db((*cfg)->governance.database);
  std::error_code ec;
  if (db.has_parent_path()) std::filesystem::create_directories(db.parent_path(), ec);
  storage::SqliteOptions options;
  options.path = db;
  auto store = storage::SqliteStore::open(options);
  if (!store) {
    fail(db.string() + ": " + store.error().message);
    return std::nullopt;
  }
  return Opened{*cfg, std::move(*store)};
}

// Command-line options -> the admin API's JSON, so both paths validate identically.
std::string options_json(Args& a, bool team) {
  bj::object o;
  auto text = [&](std::string_view flag, std::string_view field) {
    std::string v = take(a, flag);
    if (!v.empty()) o[field] = v;
  };
  auto number = [&](std::string_view flag, std::string_view field) {
    std::string v = take(a, flag);
    if (v.empty()) return;
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (*end == '\0') o[field] = n;
    else o[field] = v;  // the parser reports it
  };
  text("name", "name");
  number("rpm", "rpm");
  number("tpm", "tpm");
  text("budget", "budget_usd");
  text("budget-period", "budget_period");
  text("policy", "policy_profile");
  if (team) {
    text("id", "id");
  } else {
    text("team", "team_id");
    text("models", "models");
    text("expires", "expires_at");
    number("max-parallel", "max_parallel");
  }
  text("metadata", "metadata");
  return bj::serialize(o);
}

// A profile a key or team names must be configured, as the admin API checks it.
bool profile_known(const Opened& opened, const std::string& body_json) {
  const auto& policies = opened.config->governance.policies;
  const auto e = pipeline::unknown_policy_profile(body_json, [&](std::string_view name) { return policies.contains(std::string(name)); });
  if (e) fail(e->message);
  return !e;
}

bool leftovers(const Args& a) {
  if (a.options.empty()) return false;
  fail("unknown option --" + a.options.begin()->first);
  return true;
}

int print_error(const Error& e) { return fail(e.message); }

int keys_command(Args& a) {
  if (a.positional.empty()) return fail("keys needs a subcommand: create, list, show, update, revoke, rotate");
  const std::string sub = a.positional[0];
  auto opened = open_store(a);
  if (!opened) return 1;
  auth::KeyService keys(*opened->store, SteadyClock::instance());
  auto need_id = [&]() -> std::optional<std::string> {
    if (a.positional.size() != 2) {
      fail("keys " + sub + " takes one key ID");
      return std::nullopt;
    }
    return a.positional[1];
  };
  if (sub == "create") {
    const std::string body = options_json(a, false);
    if (leftovers(a) || !profile_known(*opened, body)) return 2;
    auto spec = pipeline::key_spec_from_json(body);
    if (!spec) return print_error(spec.error());
    auto created = keys.create(*spec);
    if (!created) return print_error(created.error());
    std::printf("{\"key\":%s,\"secret\":\"%s\"}\n", pipeline::key_json(created->record).c_str(), created->secret.c_str());
    std::fprintf(stderr, "The secret above is shown this once; Bulwark keeps only its hash.\n");
    return 0;
  }
  if (sub == "list") {
    const std::string team = take(a, "team");
    const std::string format = take(a, "format");
    if (leftovers(a)) return 2;
    auto list = team.empty() ? keys.list() : keys.list(std::string_view(team));
    if (!list) return print_error(list.error());
    if (format == "json") {
      std::string out = "{\"data\":[";
      for (std::size_t i = 0; i < list->size(); ++i) out += (i ? "," : "") + pipeline::key_json((*list)[i]);
      std::printf("%s]}\n", out.c_str());
      return 0;
    }
    std::printf("%-37s %-20s %-12s %-16s %-14s %s\n", "ID", "NAME", "PREFIX", "TEAM", "BUDGET_USD", "STATE");
    for (const auto& k : *list) {
      const std::string budget = k.limits.budget_nano_usd ? accounting::format_usd(*k.limits.budget_nano_usd) : "-";
      std::printf("%-37s %-20s %-12s %-16s %-14s %s\n", k.id.c_str(), k.name.c_str(), k.display_prefix.c_str(),
                  k.team_id.empty() ? "-" : k.team_id.c_str(), budget.c_str(), k.revoked ? "revoked" : "active");
    }
    return 0;
  }
  if (sub == "show" || sub == "revoke") {
    auto id = need_id();
    if (!id || leftovers(a)) return 2;
    auto k = sub == "show" ? keys.show(*id) : keys.revoke(*id);
    if (!k) return print_error(k.error());
    std::printf("%s\n", pipeline::key_json(*k).c_str());
    return 0;
  }
  if (sub == "update") {
    auto id = need_id();
    if (!id) return 2;
    const std::string body = options_json(a, false);
    if (leftovers(a) || !profile_known(*opened, body)) return 2;
    auto change = pipeline::key_update_from_json(body);
    if (!change) return print_error(change.error());
    if (change->limits) {  // limits not named keep their stored values
      auto current = keys.show(*id);
      if (!current) return print_error(current.error());
      bj::object given = bj::parse(body).as_object();
      storage::Limits merged = current->limits;
      if (given.contains("rpm")) merged.rpm = change->limits->rpm;
      if (given.contains("tpm")) merged.tpm = change->limits->tpm;
      if (given.contains("budget_usd")) merged.budget_nano_usd = change->limits->budget_nano_usd;
      if (given.contains("budget_period")) merged.budget_period = change->limits->budget_period;
      change->limits = merged;
    }
    auto k = keys.update(*id, *change);
    if (!k) return print_error(k.error());
    std::printf("%s\n", pipeline::key_json(*k).c_str());
    return 0;
  }
  if (sub == "rotate") {
    auto id = need_id();
    if (!id) return 2;
    const std::string grace_text = take(a, "grace");
    if (leftovers(a)) return 2;
    std::chrono::milliseconds grace{0};
    if (!grace_text.empty()) {
      auto d = config::parse_duration(grace_text);
      if (!d) return fail("--grace takes a duration such as 10m or 1h");
      grace = *d;
    }
    auto created = keys.rotate(*id, grace);
    if (!created) return print_error(created.error());
    std::printf("{\"key\":%s,\"secret\":\"%s\"}\n", pipeline::key_json(created->record).c_str(), created->secret.c_str());
    return 0;
  }
  return fail("unknown keys subcommand " + sub);
}

int teams_command(Args& a) {
  if (a.positional.empty()) return fail("teams needs a subcommand: create, list, show, update");
  const std::string sub = a.positional[0];
  auto opened = open_store(a);
  if (!opened) return 1;
  auth::KeyService keys(*opened->store, SteadyClock::instance());
  if (sub == "create") {
    const std::string body = options_json(a, true);
    if (leftovers(a) || !profile_known(*opened, body)) return 2;
    auto spec = pipeline::team_spec_from_json(body);
    if (!spec) return print_error(spec.error());
    auto t = keys.create_team(*spec);
    if (!t) return print_error(t.error());
    std::printf("%s\n", pipeline::team_json(*t).c_str());
    return 0;
  }
  if (sub == "list") {
    if (leftovers(a)) return 2;
    auto list = keys.list_teams();
    if (!list) return print_error(list.error());
    for (const auto& t : *list) std::printf("%s\n", pipeline::team_json(t).c_str());
    return 0;
  }
  if ((sub == "show" || sub == "update") && a.positional.size() == 2) {
    auto current = keys.show_team(a.positional[1]);
    if (!current) return print_error(current.error());
    if (sub == "show") {
      if (leftovers(a)) return 2;
      std::printf("%s\n", pipeline::team_json(*current).c_str());
      return 0;
    }
    bj::object given = bj::parse(options_json(a, true)).as_object();
    if (leftovers(a) || !profile_known(*opened, bj::serialize(given))) return 2;
    given.erase("id");  // the team is the one named by ID; --id names only a new team
    auto spec = pipeline::team_update_from_json(bj::serialize(given), *current);
    if (!spec) return print_error(spec.error());
    auto t = keys.update_team(current->id, *spec);
    if (!t) return print_error(t.error());
    std::printf("%s\n", pipeline::team_json(*t).c_str());
    return 0;
  }
  return fail("usage: bulwark teams create|list|show ID|update ID");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

int spend_command(Args& a) {
  auto opened = open_store(a);
  if (!opened) return 1;
  const auto now = std::chrono::system_clock::now();
  storage::SpendQuery q;
  const std::string by = take(a, "by");
  const auto group = pipeline::parse_group(by.empty() ? "key" : by);
  if (!group) return fail("--by takes key, team, model or day");
  q.group_by = *group;
  q.to = storage::to_unix_millis(now) + 1;
  for (auto [flag, field] : {std::pair{"since", &q.from}, std::pair{"until", &q.to}}) {
    const std::string v = take(a, flag);
    if (v.empty()) continue;
    auto t = pipeline::parse_when(v, now);
    if (!t) return fail("--" + std::string(flag) + ": " + t.error().message);
    *field = *t;
  }
  const std::string format = take(a, "format");
  if (leftovers(a)) return 2;
  auto rows = opened->store->spend_report(q);
  if (!rows) return print_error(rows.error());
  if (format == "json") {
    std::printf("%s\n", pipeline::spend_json(*rows, q).c_str());
    return 0;
  }
  if (format == "csv") {
    std::printf("%s,requests,input_tokens,output_tokens,cached_input_tokens,cache_write_tokens,cost_usd,estimated_requests,"
                "overhead_attempts,overhead_usd\n",
                by.empty() ? "key" : by.c_str());
    for (const auto& r : *rows)
      std::printf("%s,%lld,%lld,%lld,%lld,%lld,%s,%lld,%lld,%s\n", csv_field(r.group).c_str(), static_cast<long long>(r.requests),
                  static_cast<long long>(r.input_tokens), static_cast<long long>(r.output_tokens),
                  static_cast<long long>(r.cached_input_tokens), static_cast<long long>(r.cache_write_tokens),
                  accounting::format_usd(r.cost_nano_usd).c_str(), static_cast<long long>(r.estimated_requests),
                  static_cast<long long>(r.overhead_attempts), accounting::format_usd(r.overhead_nano_usd).c_str());
    return 0;
  }
  if (!format.empty() && format != "table") return fail("--format takes table, csv or json");
  std::printf("%-34s %10s %12s %12s %16s %9s %16s\n", (by.empty() ? std::string("KEY") : by).c_str(), "REQUESTS", "INPUT_TOK",
              "OUTPUT_TOK", "COST_USD", "ESTIMATED", "OVERHEAD_USD");
  std::int64_t total = 0, overhead = 0;
  for (const auto& r : *rows) {
    total += r.cost_nano_usd;
    overhead += r.overhead_nano_usd;
    std::printf("%-34s %10lld %12lld %12lld %16s %9lld %16s\n", r.group.empty() ? "(none)" : r.group.c_str(),
                static_cast<long long>(r.requests), static_cast<long long>(r.input_tokens + r.cached_input_tokens + r.cache_write_tokens),
                static_cast<long long>(r.output_tokens), accounting::format_usd(r.cost_nano_usd).c_str(),
                static_cast<long long>(r.estimated_requests), accounting::format_usd(r.overhead_nano_usd).c_str());
  }
  std::printf("%-34s %10s %12s %12s %16s %9s %16s\n", "TOTAL", "", "", "", accounting::format_usd(total).c_str(), "",
              accounting::format_usd(overhead).c_str());
  return 0;
}

int audit_command(Args& a) {
  if (a.positional.empty()) return fail("audit needs a subcommand: verify, export");
  const std::string sub = a.positional[0];
  auto opened = open_store(a);
  if (!opened) return 1;
  if (sub == "verify") {
    std::optional<std::int64_t> expect;
    if (const std::string v = take(a, "expect-last-seq"); !v.empty()) expect = std::strtoll(v.c_str(), nullptr, 10);
    if (leftovers(a)) return 2;
    auto report = accounting::AuditTrail::verify(*opened->store, expect);
    if (!report) return print_error(report.error());
    if (report->ok) {
      std::printf("audit chain OK: %lld record(s) verified\n", static_cast<long long>(report->checked));
      return 0;
    }
    std::printf("audit chain BROKEN at seq %lld: %s (%lld record(s) checked)\n",
                static_cast<long long>(report->first_bad_seq.value_or(-1)), report->reason.c_str(),
                static_cast<long long>(report->checked));
    return 1;
  }
  if (sub == "export") {
    std::int64_t from = 1;
    if (const std::string v = take(a, "from-seq"); !v.empty()) from = std::strtoll(v.c_str(), nullptr, 10);
    if (leftovers(a)) return 2;
    auto ok = accounting::AuditTrail::export_jsonl(*opened->store, std::cout, from);
    std::cout.flush();
    if (!ok) return print_error(ok.error());
    return 0;
  }
  return fail("unknown audit subcommand " + sub);
}

}  // namespace

int governance_command(std::span<const std::string_view> args) {
  std::string error;
  auto parsed = parse_args(args.subspan(1), error);
  if (!parsed) return fail(error);
  const std::string_view cmd = args[0];
  if (cmd == "keys") return keys_command(*parsed);
  if (cmd == "teams") return teams_command(*parsed);
  if (cmd == "spend") return spend_command(*parsed);
  if (cmd == "audit") return audit_command(*parsed);
  return fail("unknown command " + std::string(cmd));
}

}  // namespace bulwark::app
