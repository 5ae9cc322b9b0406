#pragma once
// Router quality metrics exactly as shared/data/routing/README.md (beside the checkout) defines them
// (RouteLLM's PGR / APGR / CPT): prompts with score >= t go strong; the quality curve is
// linear between achievable points, and a block of tied scores switches over at once, so
// the curve is linear across it (the expectation under random tie-breaking).
#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "core/error.hpp"

namespace bulwark::router {

struct RoutedExample {
  double score = 0;  // higher = send to the strong model
  bool weak_correct = false;
  bool strong_correct = false;
};

// Achievable points of acc(f), f ascending from 0 to 1.
struct QualityCurve {
  std::vector<double> fraction;
  std::vector<double> accuracy;
  double weak_accuracy = 0;    // W = acc(0)
  double strong_accuracy = 0;  // S = acc(1)

  double accuracy_at(double f) const;  // linear interpolation, f clamped to [0, 1]
  double pgr_at(double f) const;       // (acc(f) - W) / (S - W)
  // Smallest f with PGR(f) >= target on the interpolated curve; NaN if never reached.
  double cpt(double target_pgr) const;
};

// Fails on an empty set or when S == W (PGR undefined).
Result<QualityCurve> quality_curve(std::span<const RoutedExample> examples);

struct RoutingMetrics {
  double weak_accuracy = 0;
  double strong_accuracy = 0;
  std::array<double, 11> pgr{};  // PGR(0.0), PGR(0.1), ..., PGR(1.0)
  double apgr_mean = 0;          // mean of the 11 points
  double apgr_trapezoid = 0;     // trapezoid area under the 11 points
  double cpt50 = 0;              // strong-call fraction, 0..1
  double cpt80 = 0;
};

Result<RoutingMetrics> routing_metrics(std::span<const RoutedExample> examples);
RoutingMetrics metrics_of(const QualityCurve& curve);
// Field-wise mean (the random baseline averages over seeds).
RoutingMetrics mean_metrics(std::span<const RoutingMetrics> runs);

}  // namespace bulwark::router
