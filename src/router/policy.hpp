#pragma once
// The routing policy of one routed model (`models.NAME.router:`, docs/routing.md): ordered
// rules over request features, then the complexity score against thresholds moved by the
// request's objective. Immutable once built; decide() is const, thread-safe and cheap
// (rules + one scorer pass over the last user message).
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/error.hpp"
#include "router/request_features.hpp"
#include "router/scorer/scorer.hpp"

namespace bulwark::router {

using Objective = config::RouteObjective;
inline constexpr std::string_view kObjectiveHeader = "x-bulwark-objective";  // request
inline constexpr std::string_view kRouteHeader = "x-bulwark-route";          // response

// "cost" | "speed" | "quality" | "balanced" (exact, lower case); anything else: nullopt.
std::optional<Objective> parse_objective(std::string_view text) noexcept;

struct Decision {
  enum class Source : std::uint8_t {
    rule,          // a rule matched
    score,         // the complexity score against the (objective-shifted) thresholds
    objective,     // the objective names a fixed tier
    default_tier,  // no rule matched and the router has no complexity step
  };
  std::size_t tier = 0;  // index into the router's tiers
  Source source = Source::default_tier;
  Objective objective = Objective::balanced;  // the one applied (request's or default)
  std::string_view rule;     // source == rule: its name (points into the policy)
  double score = -1;         // source == score: the complexity score in [0, 1]
  double threshold = -1;     // source == score: the boundary that decided (see docs)
  std::optional<std::size_t> yielded_from;  // set by yield_to_healthy: the tier decided first
  std::string header;        // the x-bulwark-route value, ready to send
};

class RoutingPolicy {
 public:
  // From a routed model's settings. `scorer` is needed when the router has `complexity:`;
  // when null it is loaded via shared_scorer(settings.weights). Errors name the model
  // and the line of its `router:` block.
  static Result<RoutingPolicy> build(const config::Model& model,
                                     std::shared_ptr<const ComplexityScorer> scorer = nullptr);
  static Result<RoutingPolicy> build(const std::string& model_name, const config::RouterSettings& settings,
                                     std::shared_ptr<const ComplexityScorer> scorer = nullptr);

  // Rules (first match), then the objective's fixed tier, then the score. `objective`:
  // the request's x-bulwark-objective, else the caller key's default; nullopt: the router's
  // default_objective.
  Decision decide(const RequestFeatures& features, std::optional<Objective> objective = std::nullopt) const;

  // A tier whose targets are all unhealthy yields: the next healthy tier up, else the
  // nearest healthy one down; the header then ends in "; yielded_from=NAME". Nothing
  // changes when the decided tier is healthy or no tier is. Returns whether it moved.
  template <class TierHealthy>
  bool yield_to_healthy(Decision& d, TierHealthy&& tier_healthy) const {
    if (tier_healthy(d.tier)) return false;
    const std::size_t n = tier_count();
    for (std::size_t t = d.tier + 1; t < n; ++t)
      if (tier_healthy(t)) {
        move_to(d, t);
        return true;
      }
    for (std::size_t t = d.tier; t-- > 0;)
      if (tier_healthy(t)) {
        move_to(d, t);
        return true;
      }
    return false;
  }

  // The tiers to fail over to after `d.tier` is exhausted: those above it, cheapest first.
  std::vector<std::size_t> failover_tiers(const Decision& d) const;

  const std::string& model() const noexcept;
  std::size_t tier_count() const noexcept;
  const std::string& tier_name(std::size_t tier) const noexcept;
  // Effective thresholds for an objective (empty without complexity).
  std::span<const double> thresholds(Objective objective) const noexcept;
  Objective default_objective() const noexcept;
  // The scorer (null when the router has no complexity step).
  const ComplexityScorer* scorer() const noexcept;

 private:
  struct Impl;
  explicit RoutingPolicy(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  void move_to(Decision& d, std::size_t tier) const;
  std::shared_ptr<const Impl> impl_;
};

// The process-wide scorer for a weights file (empty: the shipped one, see
// locate_weights): loaded once and shared; reloaded only when the file's size or
// modification time changed. Call at configuration load, not per request.
Result<std::shared_ptr<const ComplexityScorer>> shared_scorer(const std::string& weights_path = {});

}  // namespace bulwark::router
