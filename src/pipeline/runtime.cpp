#include "pipeline/runtime.hpp"

#include <set>

#include "providers/http/client.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {

Result<std::shared_ptr<const Runtime>> Runtime::build(std::shared_ptr<const config::Config> config) {
  auto rt = std::make_shared<Runtime>();
  rt->config_ = std::move(config);
  const config::Config& cfg = *rt->config_;

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
      TargetPlan tp{&t, p, cfg.timeouts.with(p->timeouts).with(m.timeouts).with(t.timeouts), nullptr};
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
