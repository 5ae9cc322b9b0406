#pragma once
// Everything built once from a configuration and then only read: the policy half of
// "policy separate from state". A reload builds a new Runtime and swaps it in; requests
// in flight keep the one they started with through their shared_ptr.
#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/master_key.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "pipeline/health.hpp"
#include "resilience/retry_policy.hpp"

namespace bulwark::pipeline {

struct TargetPlan {
  const config::Target* target;
  const config::Provider* provider;
  config::Timeouts timeouts;  // resolved: global <- provider <- model <- target
  boost::asio::ssl::context* tls = nullptr;
  // The target's process-wide breaker, retry budget and latency (kept across reloads).
  std::shared_ptr<const TargetHealth> health;
};

struct ModelPlan {
  const config::Model* model;
  std::vector<TargetPlan> targets;
};

// A requested model and its fallback chain, flattened in the order they are tried.
struct RoutePlan {
  std::vector<ModelPlan> chain;
  config::Timeouts timeouts;  // of the requested model: its total bounds the whole request
  resilience::RetryPolicy retry;  // of the requested model
};

class Runtime {
 public:
  // Target health comes from `health` (the process-wide registry unless a test passes its own).
  static Result<std::shared_ptr<const Runtime>> build(std::shared_ptr<const config::Config> config,
                                                      HealthRegistry& health = HealthRegistry::instance(),
                                                      const config::EnvLookup& env = config::process_env());
  const config::Config& config() const noexcept { return *config_; }
  const RoutePlan* route(std::string_view model) const noexcept;
  // /v1/models body, prebuilt.
  const std::string& models_json() const noexcept { return models_json_; }
  // The admin master key (config's admin.master_key, else BULWARK_MASTER_KEY); none: the
  // admin API answers 401 to everyone.
  const std::optional<auth::MasterKey>& master_key() const noexcept { return master_key_; }
  HealthRegistry& health() const noexcept { return *health_; }

 private:
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>, std::less<>> tls_;
  std::map<std::string, RoutePlan, std::less<>> routes_;
  std::string models_json_;
  std::optional<auth::MasterKey> master_key_;
  HealthRegistry* health_ = nullptr;
};

}  // namespace bulwark::pipeline
