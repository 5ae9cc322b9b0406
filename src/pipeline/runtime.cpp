#include "pipeline/runtime.hpp"

#include <set>

#include "providers/http/client.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {

Result<std::shared_ptr<const Runtime>> Runtime::build(std::shared_ptr<const config::Config> config,
                                                     HealthRegistry& health, const config::EnvLookup& env) {
  auto rt = std::make_shared<Runtime>();
  rt->config_ = std::move(config);
  rt->health_ = &health;
  const config::Config& cfg = *rt->config_;

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
      if (!health_of.contains(t.id)) health_of.emplace(t.id, health.get(t.id, *policy, m.resilience.breaker, m.resilience.retry));
  }

  for (const auto& [name, provider] : cfg.providers) {
    if (!provider.endpoint.tls) continue;
    try {
      rt->tls_.emplace(name, providers::http::make_client_tls_context(provider.verify_tls, provider.ca_file));
    } catch (const std::exception& e) {
      return std::unexpected(Error::gateway(ErrorKind::internal, "provider " + name + ": TLS setup failed: " + e.what()));
    }
  }

  auto model_plan = [&](const config::Model& m) {
    ModelPlan plan{&m, {}};
    for (const config::Target& t : m.targets) {
      const config::Provider* p = cfg.find_provider(t.provider);
      TargetPlan tp{&t, p, cfg.timeouts.with(p->timeouts).with(m.timeouts).with(t.timeouts), nullptr, health_of.at(t.id)};
      if (auto it = rt->tls_.find(t.provider); it != rt->tls_.end()) tp.tls = it->second.get();
      plan.targets.push_back(tp);
    }
    return plan;
  };

  std::string models = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  for (const config::Model& m : cfg.models) {
    RoutePlan route;
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
    rt->routes_.emplace(m.name, std::move(route));

    if (!first) models += ',';
    first = false;
    models += "{\"id\":";
    log::append_json_string(models, m.name);
    models += ",\"object\":\"model\",\"created\":0,\"owned_by\":\"bulwark\"}";
  }
  models += "]}";
  rt->models_json_ = std::move(models);
  return std::shared_ptr<const Runtime>(std::move(rt));
}

const RoutePlan* Runtime::route(std::string_view model) const noexcept {
  auto it = routes_.find(model);
  return it == routes_.end() ? nullptr : &it->second;
}

}  // namespace bulwark::pipeline
