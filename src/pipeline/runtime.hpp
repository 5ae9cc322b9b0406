#pragma once
// Everything built once from a configuration and then only read: the policy half of
// "policy separate from state". A reload builds a new Runtime and swaps it in; requests
// in flight keep the one they started with through their shared_ptr.
#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/error.hpp"

namespace bulwark::pipeline {

struct TargetPlan {
  const config::Target* target;
  const config::Provider* provider;
  config::Timeouts timeouts;  // resolved: global <- provider <- model <- target
  boost::asio::ssl::context* tls = nullptr;
};

struct ModelPlan {
  const config::Model* model;
  std::vector<TargetPlan> targets;
};

// A requested model and its fallback chain, flattened in the order they are tried.
struct RoutePlan {
  std::vector<ModelPlan> chain;
  config::Timeouts timeouts;  // of the requested model: its total bounds the whole request
};

class Runtime {
 public:
  static Result<std::shared_ptr<const Runtime>> build(std::shared_ptr<const config::Config> config);
  const config::Config& config() const noexcept { return *config_; }
  const RoutePlan* route(std::string_view model) const noexcept;
  // /v1/models body, prebuilt.
  const std::string& models_json() const noexcept { return models_json_; }

 private:
  std::shared_ptr<const config::Config> config_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>, std::less<>> tls_;
  std::map<std::string, RoutePlan, std::less<>> routes_;
  std::string models_json_;
};

}  // namespace bulwark::pipeline
