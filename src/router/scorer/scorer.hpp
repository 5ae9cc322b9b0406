#pragma once
// Complexity scorer for the routed ("auto") model: prompt -> score in [0,1], higher meaning
// the strong tier is more likely to answer better than the cheap one. A linear model over
// FeatureExtractor's features, squashed by the logistic function; no I/O after load.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "router/scorer/features.hpp"
#include "router/scorer/weights.hpp"

namespace bulwark::router {

inline constexpr std::string_view kWeightsFileName = "complexity-v3.weights";
// Environment variable that overrides where the shipped weights are looked for.
inline constexpr std::string_view kWeightsEnv = "BULWARK_ROUTER_WEIGHTS";

struct Contribution {
  std::string feature;  // FeatureExtractor::describe name
  double value = 0;     // feature value (summed over repeats)
  double weight = 0;
  double contribution = 0;  // value * weight, in logit units
};

struct Explanation {
  double bias = 0;
  double logit = 0;   // bias + sum of all contributions
  double score = 0;   // logistic(logit)
  std::vector<Contribution> top;  // largest |contribution| first
  double rest = 0;    // sum of the contributions not in `top`
};

class ComplexityScorer {
 public:
  static Result<ComplexityScorer> from_weights(Weights weights);
  static Result<ComplexityScorer> load(const std::filesystem::path& path);

  // Thread-safe and allocation-free.
  double logit(std::string_view prompt) const;
  double score(std::string_view prompt) const;
  Explanation explain(std::string_view prompt, std::size_t top_k = 10) const;

  // The score threshold that sent `strong_fraction` of the calibration prompts to the strong
  // tier, interpolated linearly between the calibrated fractions. Fails when the file has no
  // calibration or the fraction is outside [0, 1].
  Result<double> threshold_for_strong_fraction(double strong_fraction) const;

  const WeightsMetadata& metadata() const noexcept { return weights_.meta; }
  const Weights& weights() const noexcept { return weights_; }

 private:
  explicit ComplexityScorer(Weights w) : weights_(std::move(w)), extractor_(weights_.subject) {}
  Weights weights_;
  FeatureExtractor extractor_;
};

// Candidate locations of the shipped weights, in lookup order: $BULWARK_ROUTER_WEIGHTS,
// <executable dir>/../share/bulwark/router/, then the source tree's data/router/.
std::vector<std::filesystem::path> weights_search_path();
// `override_path` (when non-empty) wins and must exist; otherwise the first existing
// candidate of weights_search_path().
Result<std::filesystem::path> locate_weights(const std::filesystem::path& override_path = {});

double logistic(double x) noexcept;

}  // namespace bulwark::router
