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

#include "accounting/pricing.hpp"
#include "auth/master_key.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "pipeline/health.hpp"
#include "policy/profile.hpp"
#include "resilience/retry_policy.hpp"
#include "router/balancer.hpp"
#include "router/policy.hpp"

namespace bulwark::pipeline {

class Governance;

struct TargetPlan {
  const config::Target* target;
  const config::Provider* provider;
  config::Timeouts timeouts;  // resolved: global <- provider <- model <- target
  boost::asio::ssl::context* tls = nullptr;
  // The target's process-wide breaker, retry budget and latency (kept across reloads).
  std::shared_ptr<const TargetHealth> health;
  // From the price table (per-target override first); none: unpriced, costs 0 and the
  // ledger and audit say so.
  std::optional<accounting::ModelPrice> price;
  // In-flight count, latency EWMA and reported rate-limit headroom for load balancing
  // (process-wide, kept across reloads like the breaker).
  std::shared_ptr<router::TargetStats> stats;
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
  // The dearest price of any target in the chain, per rate: what a budget reserves
  // against, since any of them may end up answering.
  accounting::ModelPrice dearest;
  // The requested model's policy profile (models.X.policy), for callers whose key and team
  // name none; null when it names none.
  const policy::PolicyProfile* profile = nullptr;
};

// A routed model (`router:` in config): its policy and, per tier, that tier's own plan.
struct RouterPlan {
  const config::Model* model;
  router::RoutingPolicy policy;
  std::vector<const RoutePlan*> tiers;  // by tier index
  const policy::PolicyProfile* profile = nullptr;  // as RoutePlan::profile, of the routed model
};

class Runtime {
 public:
  // Target health comes from `health` (the process-wide registry unless a test passes its own).
  // Keys, limits, spend and audit come from `governance` (opened once by the server);
  // without one (unit tests, check-config) requests are neither authenticated nor
  // accounted.
  static Result<std::shared_ptr<const Runtime>> build(std::shared_ptr<const config::Config> config,
                                                      HealthRegistry& health = HealthRegistry::instance(),
                                                      const config::EnvLookup& env = config::process_env(),
                                                      Governance* governance = nullptr);
  const config::Config& config() const noexcept { return *config_; }
  const RoutePlan* route(std::string_view model) const noexcept;
  // The routed model of that name; nullptr for ordinary models and unknown names.
  const RouterPlan* router(std::string_view model) const noexcept;
  // /v1/models body, prebuilt.
  const std::string& models_json() const noexcept { return models_json_; }
  // The admin master key (config's admin.master_key, else BULWARK_MASTER_KEY); none: the
  // admin API answers 401 to everyone.
  const std::optional<auth::MasterKey>& master_key() const noexcept { return master_key_; }
  HealthRegistry& health() const noexcept { return *health_; }
  Governance* governance() const noexcept { return governance_; }
  const accounting::PriceTable& prices() const noexcept { return prices_; }
  // The policy profile named `id`; nullptr when there is none by that name.
  const policy::PolicyProfile* policy(std::string_view id) const noexcept;
  const policy::PolicyProfile* default_policy() const noexcept { return default_policy_; }

 private:
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>, std::less<>> tls_;
  std::map<std::string, RoutePlan, std::less<>> routes_;
  std::map<std::string, RouterPlan, std::less<>> routers_;
  std::string models_json_;
  std::optional<auth::MasterKey> master_key_;
  HealthRegistry* health_ = nullptr;
  Governance* governance_ = nullptr;
  accounting::PriceTable prices_;
  std::map<std::string, policy::PolicyProfile, std::less<>> policies_;
  const policy::PolicyProfile* default_policy_ = nullptr;
};

}  // namespace bulwark::pipeline
