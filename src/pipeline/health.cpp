#include "pipeline/health.hpp"

#include <cstdio>

#include "telemetry/events.hpp"
#include "telemetry/log.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::pipeline {
namespace {

namespace res = resilience;

// A breaker with its own source of jitter (the breaker uses it under its own mutex, so
// two breakers must not share one).
struct BreakerBox {
  BreakerBox(std::string name, res::CircuitBreakerPolicy policy, const Clock& clock, std::uint64_t seed,
             res::TransitionListener listener)
      : random(seed), breaker(std::move(name), std::move(policy), clock, random, std::move(listener)) {}
  FastRandom random;
  res::CircuitBreaker breaker;
};

std::shared_ptr<res::CircuitBreaker> make_breaker(const std::string& id, const res::CircuitBreakerPolicy& policy,
                                                  const Clock& clock, std::uint64_t seed,
                                                  std::shared_ptr<TargetCounters> counters,
                                                  telemetry::EventNotifier* events) {
  auto listener = [counters = std::move(counters), events](const res::Transition& t) {
    const auto to = static_cast<std::size_t>(t.to);
    if (to < counters->transitions_to.size()) counters->transitions_to[to].fetch_add(1, std::memory_order_relaxed);
    const auto open_ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.open_for).count();
    log::emit(t.to == res::BreakerState::closed ? log::Level::info : log::Level::warn, "breaker_transition",
              {{"target", t.breaker},
               {"from", res::to_string(t.from)},
               {"to", res::to_string(t.to)},
               {"reason", res::to_string(t.reason)},
               {"calls", t.stats.calls},
               {"failures", t.stats.failures},
               {"slow", t.stats.slow},
               {"consecutive_trips", t.consecutive_trips},
               {"open_ms", open_ms}});
    // Only queues (no I/O): this runs on the thread that caused the transition.
    if (events)
      events->publish("breaker.transition", {{"target", t.breaker},
                                             {"from", res::to_string(t.from)},
                                             {"to", res::to_string(t.to)},
                                             {"reason", res::to_string(t.reason)},
                                             {"calls", t.stats.calls},
                                             {"failures", t.stats.failures},
                                             {"slow", t.stats.slow},
                                             {"consecutive_trips", t.consecutive_trips},
                                             {"open_ms", open_ms},
                                             {"sequence", t.sequence}});
  };
  auto box = std::make_shared<BreakerBox>(id, policy, clock, seed, std::move(listener));
  return std::shared_ptr<res::CircuitBreaker>(box, &box->breaker);
}

void append_label(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
}

}  // namespace

Result<res::CircuitBreakerPolicy> breaker_policy(const config::BreakerSettings& s, std::string_view source) {
  res::CircuitBreakerPolicy p;
  p.window_kind = res::WindowKind::count_based;
  p.window_size = s.window;
  p.minimum_calls = s.minimum_calls;
  p.failure_rate_threshold = s.failure_rate;
  if (s.slow_call_duration) {
    p.slow_call_duration = *s.slow_call_duration;
    p.slow_call_rate_threshold = s.slow_call_rate;
  } else {
    p.slow_call_rate_threshold = 2.0;  // off
  }
  p.open_base = s.open_for;
  p.open_multiplier = s.open_multiplier;
  p.open_max = s.open_max;
  p.open_jitter = s.open_jitter;
  p.permitted_probes = s.probes;
  p.probes_to_close = s.probes_to_close;
  if (!s.failures.empty()) {
    auto f = res::FailurePolicy::from_names(std::span<const std::string>(s.failures));
    if (!f) {
      std::string where(source);
      if (s.failures_line > 0) where += ":" + std::to_string(s.failures_line) + ":" + std::to_string(s.failures_column);
      return std::unexpected(Error::gateway(ErrorKind::internal, where + ": breaker.failures: " + f.error().message));
    }
    for (const auto c : res::all_failure_classes())
      if (f->counts(c) && (res::is_client_fault(c) || c == res::FailureClass::gateway_fault)) {
        std::string where(source);
        if (s.failures_line > 0) where += ":" + std::to_string(s.failures_line) + ":" + std::to_string(s.failures_column);
        return std::unexpected(Error::gateway(ErrorKind::internal, where + ": breaker.failures: " + std::string(res::to_string(c)) +
                                                                       " is not the target's fault and cannot count against it"));
      }
    p.failures = *f;
  }
  if (auto ok = p.validate(); !ok) return std::unexpected(ok.error());
  return p;
}

res::BudgetPolicy budget_policy(const config::RetrySettings& s) {
  res::BudgetPolicy b = res::default_retry_budget();
  b.ratio = s.budget_ratio;
  b.min_per_second = s.budget_min_per_second;
  return b;
}

res::BudgetPolicy hedge_budget_policy(const config::HedgeSettings& s) {
  res::BudgetPolicy b = res::default_hedge_budget();
  b.ratio = s.budget_ratio;
  b.min_per_second = s.budget_min_per_second;
  return b;
}

res::RetryPolicy retry_policy(const config::RetrySettings& s) {
  res::RetryPolicy p = res::RetryPolicy::defaults();
  p.max_attempts_per_target = s.max_attempts_per_target;
  p.max_attempts_per_request = s.max_attempts_per_request;
  for (const auto c : res::all_failure_classes()) {
    res::ClassRule& r = p.rule(c);
    r.max_retry_after = s.max_retry_after;
    if (r.retry_same) r.backoff = res::BackoffPolicy{s.backoff_base, s.backoff_cap};
  }
  return p;
}

HealthRegistry& HealthRegistry::instance() {
  static HealthRegistry registry(SteadyClock::instance(), &telemetry::EventNotifier::process());
  return registry;
}

HealthRegistry::HealthRegistry(const Clock& clock, telemetry::EventNotifier* events) : clock_(clock), events_(events) {}

std::shared_ptr<const TargetHealth> HealthRegistry::get(const std::string& id, const res::CircuitBreakerPolicy& breaker,
                                                        const config::BreakerSettings& breaker_settings,
                                                        const config::RetrySettings& retry_settings,
                                                        const config::HedgeSettings& hedge_settings) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    auto h = std::make_shared<TargetHealth>();
    h->id = id;
    h->counters = std::make_shared<TargetCounters>();
    h->breaker = make_breaker(id, breaker, clock_, ++seed_ * 0x9e3779b97f4a7c15ULL, h->counters, events_);
    h->budget = std::make_shared<res::RetryBudget>(clock_, budget_policy(retry_settings));
    h->latency = std::make_shared<res::LatencyTracker>(clock_);
    h->first_token = std::make_shared<res::LatencyTracker>(clock_);
    h->hedge_budget = std::make_shared<res::HedgeBudget>(clock_, hedge_budget_policy(hedge_settings));
    entries_.emplace(id, Entry{breaker_settings, retry_settings, hedge_settings, h});
    return h;
  }
  Entry& e = it->second;
  const auto same_budget = [](const res::BudgetPolicy& a, const res::BudgetPolicy& b) {
    return a.ratio == b.ratio && a.min_per_second == b.min_per_second;
  };
  const bool breaker_same = e.breaker_settings.same_policy(breaker_settings);
  const bool budget_same = same_budget(budget_policy(e.retry_settings), budget_policy(retry_settings));
  const bool hedge_same = same_budget(hedge_budget_policy(e.hedge_settings), hedge_budget_policy(hedge_settings));
  if (breaker_same && budget_same && hedge_same) return e.current;
  auto h = std::make_shared<TargetHealth>(*e.current);
  if (!breaker_same) h->breaker = make_breaker(id, breaker, clock_, ++seed_ * 0x9e3779b97f4a7c15ULL, h->counters, events_);
  if (!budget_same) h->budget = std::make_shared<res::RetryBudget>(clock_, budget_policy(retry_settings));
  if (!hedge_same) h->hedge_budget = std::make_shared<res::HedgeBudget>(clock_, hedge_budget_policy(hedge_settings));
  e.breaker_settings = breaker_settings;
  e.retry_settings = retry_settings;
  e.hedge_settings = hedge_settings;
  e.current = h;
  return h;
}

std::vector<std::shared_ptr<const TargetHealth>> HealthRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const TargetHealth>> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) out.push_back(e.current);
  return out;
}

void HealthRegistry::render_metrics(std::string& out) const {
  const auto targets = all();
  static constexpr std::array<std::string_view, 5> kStates{"closed", "open", "half_open", "forced_open", "disabled"};
  out += "# HELP bulwark_breaker_state Circuit breaker state per target: 0=closed 1=open 2=half_open 3=forced_open 4=disabled.\n";
  out += "# TYPE bulwark_breaker_state gauge\n";
  for (const auto& t : targets) {
    out += "bulwark_breaker_state{target=\"";
    append_label(out, t->id);
    out += "\"} " + std::to_string(static_cast<int>(t->breaker->state())) + "\n";
  }
  out += "# HELP bulwark_breaker_transitions_total Circuit breaker transitions per target, by the state entered.\n";
  out += "# TYPE bulwark_breaker_transitions_total counter\n";
  for (const auto& t : targets)
    for (std::size_t s = 0; s < kStates.size(); ++s) {
      const auto n = t->counters->transitions_to[s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out += "bulwark_breaker_transitions_total{target=\"";
      append_label(out, t->id);
      out += "\",to=\"" + std::string(kStates[s]) + "\"} " + std::to_string(n) + "\n";
    }
  const auto family = [&](std::string_view name, std::string_view help,
                          std::atomic<std::uint64_t> TargetCounters::*field) {
    out += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
    out += "# TYPE " + std::string(name) + " counter\n";
    for (const auto& t : targets) {
      out += std::string(name) + "{target=\"";
      append_label(out, t->id);
      out += "\"} " + std::to_string(((*t->counters).*field).load(std::memory_order_relaxed)) + "\n";
    }
  };
  family("bulwark_retries_total", "Retries on the same target after a failed attempt.", &TargetCounters::retries);
  family("bulwark_fallbacks_total", "Failovers away from a target after a failed attempt (to another target or fallback model).",
         &TargetCounters::failovers);
  family("bulwark_breaker_rejections_total", "Attempts skipped because the target's circuit breaker refused them.",
         &TargetCounters::breaker_rejections);
  family("bulwark_hedges_total", "Hedge attempts started because this target's first token was late.", &TargetCounters::hedges);
  family("bulwark_hedge_wins_total", "Hedge attempts started for this target that answered before it.",
         &TargetCounters::hedge_wins);
  family("bulwark_hedges_refused_total", "Hedges this target's requests wanted that the hedge budget refused.",
         &TargetCounters::hedges_refused);
  out += "# HELP bulwark_hedge_cancelled_cost_usd_total Estimated provider cost of attempts on this target cancelled "
         "because a racing attempt answered first (gateway overhead, not billed to callers).\n";
  out += "# TYPE bulwark_hedge_cancelled_cost_usd_total counter\n";
  for (const auto& t : targets) {
    out += "bulwark_hedge_cancelled_cost_usd_total{target=\"";
    append_label(out, t->id);
    char v[40];
    std::snprintf(v, sizeof v, "%.9f", static_cast<double>(t->counters->hedge_cancelled_nano_usd.load(std::memory_order_relaxed)) / 1e9);
    out += "\"} ";
    out += v;
    out += "\n";
  }
}

OverheadCounters& overhead_counters() {
  static OverheadCounters counters;
  return counters;
}

namespace {
void render_overhead(std::string& out) {
  const OverheadCounters& c = overhead_counters();
  out += "# HELP bulwark_overhead_cost_usd_total Estimated provider cost of attempts that did not become the caller's "
         "answer (gateway overhead, never billed to callers), by reason.\n";
  out += "# TYPE bulwark_overhead_cost_usd_total counter\n";
  for (std::size_t i = 0; i < accounting::kOverheadReasons; ++i) {
    char v[40];
    std::snprintf(v, sizeof v, "%.9f", static_cast<double>(c.nano_usd[i].load(std::memory_order_relaxed)) / 1e9);
    out += "bulwark_overhead_cost_usd_total{reason=\"";
    out += accounting::name_of(static_cast<accounting::OverheadReason>(i));
    out += "\"} ";
    out += v;
    out += "\n";
  }
  out += "# HELP bulwark_overhead_attempts_total Attempts a provider charges for that did not become the caller's answer, "
         "by reason.\n";
  out += "# TYPE bulwark_overhead_attempts_total counter\n";
  for (std::size_t i = 0; i < accounting::kOverheadReasons; ++i) {
    out += "bulwark_overhead_attempts_total{reason=\"";
    out += accounting::name_of(static_cast<accounting::OverheadReason>(i));
    out += "\"} ";
    out += std::to_string(c.attempts[i].load(std::memory_order_relaxed));
    out += "\n";
  }
}
}  // namespace

void install_health_metrics(telemetry::Registry& registry) {
  registry.add_collector(render_overhead);
  registry.add_collector([](std::string& out) { HealthRegistry::instance().render_metrics(out); });
  registry.add_collector([](std::string& out) {
    if (auto* events = HealthRegistry::instance().events()) events->render_metrics(out);
  });
}

}  // namespace bulwark::pipeline
