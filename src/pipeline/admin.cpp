#include "pipeline/admin.hpp"

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

// Constant time in the presented key (MasterKey hashes both sides and compares with
// CRYPTO_memcmp).
bool authorized(const Runtime& rt, std::string_view authorization) {
  if (!rt.master_key()) return false;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != std::tolower(static_cast<unsigned char>(kBearer[i])))
      return false;
  return rt.master_key()->check(authorization.substr(kBearer.size()));
}

}  // namespace

AdminResponse admin_targets(const Runtime& runtime, std::string_view authorization) {
  if (!authorized(runtime, authorization)) {
    const std::string why = runtime.master_key() ? "Invalid or missing master key: send Authorization: Bearer <master key>."
                                                 : "The admin API is disabled: no master key is configured (admin.master_key or BULWARK_MASTER_KEY).";
    return {401, api::openai::error_body(Error::client(ErrorKind::unauthenticated, why))};
  }
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
    out += ",\"breaker\":{\"state\":\"" + std::string(res::to_string(b.state)) + "\"";
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
