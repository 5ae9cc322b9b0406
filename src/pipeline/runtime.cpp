#include "pipeline/runtime.hpp"

#include <mutex>
#include <set>

#include "pipeline/governance.hpp"
#include "providers/http/client.hpp"
#include "providers/upstream.hpp"
#include "telemetry/events.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {
namespace {

// Load-balancing statistics per target id, for the life of the process.
std::shared_ptr<router::TargetStats> target_stats(const std::string& id) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<router::TargetStats>, std::less<>> all;
  std::lock_guard lock(mu);
  auto& slot = all[id];
  if (!slot) slot = std::make_shared<router::TargetStats>();
  return slot;
}

}  // namespace

Result<std::shared_ptr<const Runtime>> Runtime::build(std::shared_ptr<const config::Config> config,
                                                     HealthRegistry& health, const config::EnvLookup& env,
                                                     Governance* governance) {
  auto rt = std::make_shared<Runtime>();
  rt->config_ = std::move(config);
  rt->health_ = &health;
  rt->governance_ = governance;
  const config::Config& cfg = *rt->config_;
  const config::GovernanceSettings& gov = cfg.governance;

  // Prices: the configured file, else the shipped one. Without any, requests still run
  // and are recorded as unpriced.
  {
    std::string path = gov.prices;
    if (path.empty()) {
      if (auto found = locate_default_prices()) path = *found;
      else log::warn("prices_not_found", {{"error", found.error().message}});
    }
    if (!path.empty()) {
      auto table = accounting::PriceTable::load_file(path);
      if (!table) return std::unexpected(Error::gateway(ErrorKind::internal, "prices " + path + ": " + table.error().message));
      rt->prices_ = std::move(*table);
    }
  }

  // Policy profiles, compiled once; a bad pattern or detector name names its place.
  for (const auto& [id, ps] : gov.policies) {
    policy::PolicySpec spec;
    spec.id = id;
    const std::string where = cfg.source + ":" + std::to_string(ps.line) + ":" + std::to_string(ps.column) + ": governance.policies." + id;
    auto action_of = [](std::string_view a) {
      if (a == "flag") return policy::Action::flag;
      if (a == "redact") return policy::Action::redact;
      if (a == "block") return policy::Action::block;
      return policy::Action::off;
    };
    for (const auto& [detector, action] : ps.pii) {
      bool known = false;
      for (policy::PiiKind k : policy::kAllPiiKinds)
        if (policy::name_of(k) == detector) {
          spec.detectors[k] = action_of(action);
          known = true;
        }
      if (!known) {
        std::string names;
        for (policy::PiiKind k : policy::kAllPiiKinds) names += (names.empty() ? "" : ", ") + std::string(policy::name_of(k));
        return std::unexpected(Error::gateway(ErrorKind::internal, where + ".pii: unknown detector '" + detector + "' (known: " + names + ")"));
      }
    }
    for (const auto& d : ps.deny) spec.deny.push_back({d.id, d.pattern, action_of(d.action)});
    spec.allow = ps.allow;
    spec.max_input_tokens = ps.max_input_tokens;
    spec.max_tokens = ps.max_tokens;
    spec.model_allow = ps.models;
    spec.injection = action_of(ps.injection);
    if (!ps.uninspectable_documents.empty())  // "allow" is Action::off; empty keeps the default
      spec.uninspectable_documents = action_of(ps.uninspectable_documents);
    auto profile = policy::PolicyProfile::create(std::move(spec));
    if (!profile) return std::unexpected(Error::gateway(ErrorKind::internal, where + ": " + profile.error()));
    rt->policies_.emplace(id, std::move(*profile));
  }
  if (!gov.default_policy.empty()) rt->default_policy_ = &rt->policies_.at(gov.default_policy);

  // The admin master key: config first, then the environment.
  {
    std::optional<std::string> env_key = env("BULWARK_MASTER_KEY");
    if (!cfg.admin.master_key.empty() || (env_key && !env_key->empty())) {
      std::optional<std::string_view> from_config;
      if (!cfg.admin.master_key.empty()) from_config = cfg.admin.master_key.reveal();
      auto key = auth::MasterKey::from(from_config, env_key ? env_key->c_str() : nullptr);
      if (!key) return std::unexpected(Error::gateway(ErrorKind::internal, "admin master key: " + key.error().message));
      rt->master_key_ = std::move(*key);
    }
  }

  // Each target's health, with the resilience settings of the first model (in file
  // order) that declares it.
  std::map<std::string, std::shared_ptr<const TargetHealth>, std::less<>> health_of;
  for (const config::Model& m : cfg.models) {
    auto policy = breaker_policy(m.resilience.breaker, cfg.source);
    if (!policy) return std::unexpected(Error::gateway(ErrorKind::internal, "models." + m.name + ".resilience: " + policy.error().message));
    const auto retry = retry_policy(m.resilience.retry);
    if (auto ok = retry.validate(); !ok)
      return std::unexpected(Error::gateway(ErrorKind::internal, "models." + m.name + ".resilience: " + ok.error().message));
    for (const config::Target& t : m.targets)
      if (!health_of.contains(t.id)) health_of.emplace(t.id, health.get(t.id, *policy, m.resilience.breaker, m.resilience.retry, m.resilience.hedge));
  }

  for (const auto& [name, provider] : cfg.providers) {
    if (!provider.endpoint.tls) continue;
    try {
      rt->tls_.emplace(name, providers::http::make_client_tls_context(provider.verify_tls, provider.ca_file));
    } catch (const std::exception& e) {
      return std::unexpected(Error::gateway(ErrorKind::internal, "provider " + name + ": TLS setup failed: " + e.what()));
    }
  }

  // Each target's format and credentials, checked now rather than on its first request;
  // a reload re-reads credentials from the environment and the shared file.
  providers::forget_credentials();
  for (const config::Model& m : cfg.models)
    for (const config::Target& t : m.targets)
      if (const config::Provider* p = cfg.find_provider(t.provider))
        if (auto ok = providers::check_target(*p, t.model, env); !ok)
          return std::unexpected(Error::gateway(ErrorKind::internal, "target " + t.id + ": " + ok.error().message));

  auto model_plan = [&](const config::Model& m) {
    ModelPlan plan{&m, {}};
    for (const config::Target& t : m.targets) {
      const config::Provider* p = cfg.find_provider(t.provider);
      TargetPlan tp{&t, p, cfg.timeouts.with(p->timeouts).with(m.timeouts).with(t.timeouts), nullptr, health_of.at(t.id), std::nullopt, nullptr};
      if (auto it = rt->tls_.find(t.provider); it != rt->tls_.end()) tp.tls = it->second.get();
      tp.price = rt->prices_.find(t.model, t.id);
      tp.stats = target_stats(t.id);
      plan.targets.push_back(tp);
    }
    return plan;
  };

  std::string models = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  for (const config::Model& m : cfg.models) {
    if (m.router) {  // routed: its tiers are ordinary models; see below
      auto policy = router::RoutingPolicy::build(m);
      if (!policy) return std::unexpected(policy.error());
      rt->routers_.emplace(m.name, RouterPlan{&m, std::move(*policy), {}, rt->policy(m.policy)});
      if (!first) models += ',';
      first = false;
      models += "{\"id\":";
      log::append_json_string(models, m.name);
      models += ",\"object\":\"model\",\"created\":0,\"owned_by\":\"bulwark\"}";
      continue;
    }
    RoutePlan route;
    route.profile = rt->policy(m.policy);
    route.timeouts = cfg.timeouts.with(m.timeouts);
    route.retry = retry_policy(m.resilience.retry);
    // Depth-first over fallbacks, each model once: A -> [B, C], B -> [D] gives A, B, D, C.
    std::set<std::string> seen;
    std::vector<const config::Model*> stack{&m};
    std::function<void(const config::Model&)> add = [&](const config::Model& x) {
      if (!seen.insert(x.name).second) return;
      route.chain.push_back(model_plan(x));
      for (const std::string& f : x.fallbacks)
        if (const config::Model* next = cfg.find_model(f)) add(*next);
    };
    add(m);
    for (const ModelPlan& mp : route.chain)
      for (const TargetPlan& tp : mp.targets) {
        if (!tp.price) continue;
        route.dearest.input = std::max({route.dearest.input, tp.price->input, tp.price->cache_write});
        route.dearest.output = std::max(route.dearest.output, tp.price->output);
      }
    rt->routes_.emplace(m.name, std::move(route));

    if (!first) models += ',';
    first = false;
    models += "{\"id\":";
    log::append_json_string(models, m.name);
    models += ",\"object\":\"model\",\"created\":0,\"owned_by\":\"bulwark\"}";
  }
  models += "]}";
  rt->models_json_ = std::move(models);
  for (auto& [name, plan] : rt->routers_)
    for (std::size_t t = 0; t < plan.policy.tier_count(); ++t) plan.tiers.push_back(rt->route(plan.policy.tier_name(t)));

  // The breaker-transition webhook is process-wide: the last configuration built
  // successfully sets it (so a SIGHUP reload swaps it). Last, so a build that fails
  // above changes nothing; a bad CA file fails the build here.
  if (telemetry::EventNotifier* events = health.events()) {
    std::optional<telemetry::WebhookSettings> hook;
    if (const auto& w = cfg.events.webhook) {
      hook.emplace();
      hook->url = w->url.reveal();
      hook->timeout = w->timeout;
      hook->queue = w->queue;
      hook->retries = w->retries;
      hook->backoff = w->backoff;
      for (const auto& [name, value] : w->headers) hook->headers.emplace_back(name, value.reveal());
      hook->verify_tls = w->verify_tls;
      hook->ca_file = w->ca_file;
      hook->instance = cfg.events.instance;
    }
    if (auto ok = events->configure(std::move(hook)); !ok) return std::unexpected(ok.error());
  }
  return std::shared_ptr<const Runtime>(std::move(rt));
}

const policy::PolicyProfile* Runtime::policy(std::string_view id) const noexcept {
  auto it = policies_.find(id);
  return it == policies_.end() ? nullptr : &it->second;
}

const RouterPlan* Runtime::router(std::string_view model) const noexcept {
  auto it = routers_.find(model);
  return it == routers_.end() ? nullptr : &it->second;
}

const RoutePlan* Runtime::route(std::string_view model) const noexcept {
  auto it = routes_.find(model);
  return it == routes_.end() ? nullptr : &it->second;
}

}  // namespace bulwark::pipeline
