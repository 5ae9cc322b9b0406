#include "pipeline/admin.hpp"

#include "core/percent.hpp"

#include <set>

#include "api/openai/chat.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {
namespace {

namespace res = resilience;

std::string ms(Duration d) {
  const double v = std::chrono::duration<double, std::milli>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}


// The "breaker" object of the admin pages.
void append_breaker(std::string& out, const res::BreakerSnapshot& b) {
  out += "{\"state\":\"" + std::string(res::to_string(b.state)) + "\"";
  out += ",\"calls_in_window\":" + std::to_string(b.calls_in_window);
  out += ",\"failures_in_window\":" + std::to_string(b.stats.failures);
  out += ",\"slow_in_window\":" + std::to_string(b.stats.slow);
  out += ",\"failure_rate\":" + num(b.failure_rate);
  out += ",\"slow_rate\":" + num(b.slow_rate);
  out += ",\"until_half_open_ms\":" + ms(b.until_half_open);
  out += ",\"consecutive_trips\":" + std::to_string(b.consecutive_trips);
  out += ",\"transitions\":" + std::to_string(b.total_transitions);
  out += ",\"probes_in_flight\":" + std::to_string(b.probes_in_flight);
  out += ",\"probe_successes\":" + std::to_string(b.probe_successes) + "}";
}

AdminResponse unauthorized(const Runtime& runtime) {
  const std::string why = runtime.master_key() ? "Invalid or missing master key: send Authorization: Bearer <master key>."
                                               : "The admin API is disabled: no master key is configured (admin.master_key or BULWARK_MASTER_KEY).";
  return {401, api::openai::error_body(Error::client(ErrorKind::unauthenticated, why))};
}

// OpenAI's error shape with our own code.
AdminResponse admin_error(unsigned status, std::string_view code, std::string_view param, std::string_view message) {
  std::string body = "{\"error\":{\"message\":";
  log::append_json_string(body, message);
  body += ",\"type\":\"invalid_request_error\",\"param\":";
  log::append_json_string(body, param);
  body += ",\"code\":";
  log::append_json_string(body, code);
  body += "}}";
  return {status, std::move(body)};
}

enum class Action : std::uint8_t { force_open, disable, reset };

std::optional<Action> parse_action(std::string_view a) {
  if (a == "force-open" || a == "force_open") return Action::force_open;
  if (a == "disable") return Action::disable;
  if (a == "reset") return Action::reset;
  return std::nullopt;
}

std::string_view action_name(Action a) {
  switch (a) {
    case Action::force_open: return "force_open";
    case Action::disable: return "disable";
    case Action::reset: return "reset";
  }
  return "unknown";
}

}  // namespace

// Constant time in the presented key (MasterKey hashes both sides and compares with
// CRYPTO_memcmp).
bool admin_authorized(const Runtime& rt, std::string_view authorization) {
  if (!rt.master_key()) return false;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != std::tolower(static_cast<unsigned char>(kBearer[i])))
      return false;
  return rt.master_key()->check(authorization.substr(kBearer.size()));
}


AdminResponse admin_targets(const Runtime& runtime, std::string_view authorization) {
  if (!admin_authorized(runtime, authorization)) return unauthorized(runtime);
  std::set<std::string, std::less<>> ids;
  for (const config::Model& m : runtime.config().models)
    for (const config::Target& t : m.targets) ids.insert(t.id);

  std::string out = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  for (const auto& h : runtime.health().all()) {
    if (!ids.contains(h->id)) continue;
    if (!first) out += ',';
    first = false;
    const res::BreakerSnapshot b = h->breaker->snapshot();
    const res::LatencyPercentiles lat = h->latency->percentiles();
    const res::BudgetSnapshot budget = h->budget->snapshot();
    out += "{\"target\":";
    log::append_json_string(out, h->id);
    out += ",\"breaker\":";
    append_breaker(out, b);
    out += ",\"latency_ms\":{\"count\":" + std::to_string(lat.count) + ",\"p50\":" + ms(lat.p50) + ",\"p95\":" + ms(lat.p95) +
           ",\"p99\":" + ms(lat.p99) + "}";
    out += ",\"retry_budget\":{\"requests\":" + std::to_string(budget.requests) + ",\"retries\":" + std::to_string(budget.extras) +
           ",\"allowed\":" + num(budget.allowed) + ",\"refused_total\":" + std::to_string(budget.refused_total) + "}";
    out += ",\"counters\":{\"retries\":" + std::to_string(h->counters->retries.load(std::memory_order_relaxed)) +
           ",\"fallbacks\":" + std::to_string(h->counters->failovers.load(std::memory_order_relaxed)) +
           ",\"breaker_rejections\":" + std::to_string(h->counters->breaker_rejections.load(std::memory_order_relaxed)) + "}}";
  }
  out += "]}";
  return {200, std::move(out)};
}

}  // namespace bulwark::pipeline

namespace bulwark::pipeline {

AdminResponse admin_target_action(const Runtime& runtime, std::string_view authorization, std::string_view path,
                                  std::string_view request_id) {
  if (!admin_authorized(runtime, authorization)) {
    log::warn("admin_unauthorized", {{"request_id", request_id}, {"path", "/admin/targets/{target}/{action}"}});
    return unauthorized(runtime);
  }
  constexpr std::string_view kPrefix = "/admin/targets/";
  const std::string_view rest = path.starts_with(kPrefix) ? path.substr(kPrefix.size()) : std::string_view{};
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos || slash == 0)
    return admin_error(400, "invalid_path", "path",
                       "Use POST /admin/targets/{target}/{action}, with the target id (e.g. provider%2Fmodel) and an action: "
                       "force-open, disable or reset.");
  const auto action = parse_action(rest.substr(slash + 1));
  if (!action)
    return admin_error(400, "unknown_action", "action", "Unknown action: use force-open, disable or reset.");
  const auto id = percent_decode(rest.substr(0, slash));
  if (!id || id->empty()) return admin_error(400, "invalid_path", "target", "The target id is not validly percent-encoded.");

  bool configured = false;
  for (const config::Model& m : runtime.config().models)
    for (const config::Target& t : m.targets) configured = configured || t.id == *id;
  std::shared_ptr<const TargetHealth> health;
  if (configured)
    for (auto& h : runtime.health().all())
      if (h->id == *id) health = std::move(h);
  if (!health) return admin_error(404, "target_not_found", "target", "No target '" + *id + "' in the current configuration.");

  res::CircuitBreaker& breaker = *health->breaker;
  const res::BreakerState before = breaker.state();
  switch (*action) {
    case Action::force_open: breaker.force_open(); break;
    case Action::disable: breaker.disable(); break;
    case Action::reset: breaker.reset(); break;
  }
  const res::BreakerSnapshot after = breaker.snapshot();
  log::warn("admin_breaker_action", {{"request_id", request_id},
                                     {"target", *id},
                                     {"action", action_name(*action)},
                                     {"from", res::to_string(before)},
                                     {"to", res::to_string(after.state)}});
  std::string out = "{\"target\":";
  log::append_json_string(out, *id);
  out += ",\"action\":\"" + std::string(action_name(*action)) + "\"";
  out += ",\"previous_state\":\"" + std::string(res::to_string(before)) + "\"";
  out += ",\"breaker\":";
  append_breaker(out, after);
  out += "}";
  return {200, std::move(out)};
}

}  // namespace bulwark::pipeline
