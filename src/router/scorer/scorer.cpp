#include "router/scorer/scorer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <system_error>
#include <unordered_map>

#include "router/scorer/feature_visit.hpp"

namespace bulwark::router {

double logistic(double x) noexcept {
  // Split by sign so exp never overflows.
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

Result<ComplexityScorer> ComplexityScorer::from_weights(Weights weights) {
  if (weights.meta.feature_set_id != kFeatureSetId) {
    return std::unexpected(Error::gateway(
        ErrorKind::internal, "router weights feature set '" + weights.meta.feature_set_id +
                                 "' does not match this build's '" + std::string(kFeatureSetId) + "'"));
  }
  if (weights.w.size() != kFeatureDim) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "router weights have the wrong dimension"));
  }
  if (weights.subject && !weights.subject->valid()) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "router weights carry a malformed subject model"));
  }
  return ComplexityScorer(std::move(weights));
}

Result<ComplexityScorer> ComplexityScorer::load(const std::filesystem::path& path) {
  auto w = load_weights_file(path);
  if (!w) return std::unexpected(std::move(w.error()));
  return from_weights(std::move(*w));
}

double ComplexityScorer::logit(std::string_view prompt) const {
  // Weights are summed as features are produced: no buffer, no allocation. Hashed features
  // all have the value of their group (HashScales), so their raw weights are summed per kind
  // (independent addition chains) and scaled once at the end.
  struct Sum {
    const float* w;
    std::array<double, 5> sums{};
    void hashed(std::uint32_t slot, FeatureKind kind, std::uint32_t, std::uint32_t) {
      sums[static_cast<std::size_t>(kind)] += static_cast<double>(w[slot]);
    }
    void dense(std::uint32_t index, float value) {
      sums[static_cast<std::size_t>(FeatureKind::dense)] += static_cast<double>(w[index]) * static_cast<double>(value);
    }
  };
  Sum s{weights_.w.data()};
  const HashScales scales = detail::visit_features(prompt, weights_.subject.get(), s);
  const auto& v = s.sums;
  using K = FeatureKind;
  return weights_.bias + v[static_cast<std::size_t>(K::dense)] +
         static_cast<double>(scales.word) * (v[static_cast<std::size_t>(K::word)] + v[static_cast<std::size_t>(K::bigram)]) +
         static_cast<double>(scales.affix) * (v[static_cast<std::size_t>(K::prefix)] + v[static_cast<std::size_t>(K::suffix)]);
}

double ComplexityScorer::score(std::string_view prompt) const { return logistic(logit(prompt)); }

Explanation ComplexityScorer::explain(std::string_view prompt, std::size_t top_k) const {
  std::vector<Feature> features;
  extractor_.extract(prompt, features);
  Explanation e;
  e.bias = weights_.bias;
  e.logit = logit(prompt);
  e.score = logistic(e.logit);
  // Merge repeats of one index; the first occurrence names it (a hashed slot may hold
  // several colliding n-grams, which share one weight anyway).
  std::unordered_map<std::uint32_t, std::size_t> at;
  std::vector<Contribution> all;
  for (const Feature& f : features) {
    const double weight = static_cast<double>(weights_.w[f.index]);
    const auto [it, fresh] = at.try_emplace(f.index, all.size());
    if (fresh) all.push_back(Contribution{FeatureExtractor::describe(f, prompt), 0.0, weight, 0.0});
    Contribution& c = all[it->second];
    c.value += static_cast<double>(f.value);
    c.contribution += weight * static_cast<double>(f.value);
  }
  std::stable_sort(all.begin(), all.end(), [](const Contribution& a, const Contribution& b) {
    return std::abs(a.contribution) > std::abs(b.contribution);
  });
  const std::size_t keep = std::min(top_k, all.size());
  for (std::size_t i = keep; i < all.size(); ++i) e.rest += all[i].contribution;
  all.resize(keep);
  e.top = std::move(all);
  return e;
}

Result<double> ComplexityScorer::threshold_for_strong_fraction(double f) const {
  const auto& pts = weights_.meta.thresholds;
  if (pts.empty()) {
    return std::unexpected(Error::gateway(ErrorKind::internal, "router weights carry no calibration"));
  }
  if (!(f >= 0.0 && f <= 1.0)) {
    return std::unexpected(Error::client(ErrorKind::bad_request, "strong_fraction must be in [0, 1]",
                                         "strong_fraction"));
  }
  if (f <= pts.front().strong_fraction) return pts.front().threshold;
  if (f >= pts.back().strong_fraction) return pts.back().threshold;
  const auto hi = std::lower_bound(pts.begin(), pts.end(), f, [](const CalibrationPoint& p, double x) {
    return p.strong_fraction < x;
  });
  const auto lo = hi - 1;
  const double span = hi->strong_fraction - lo->strong_fraction;
  const double t = span > 0 ? (f - lo->strong_fraction) / span : 0.0;
  return lo->threshold + t * (hi->threshold - lo->threshold);
}

std::vector<std::filesystem::path> weights_search_path() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv(std::string(kWeightsEnv).c_str()); env != nullptr && *env != '\0') {
    out.emplace_back(env);
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path() / ".." / "share" / "bulwark" / "router" / kWeightsFileName);
#ifdef BULWARK_ROUTER_SOURCE_DATA_DIR
  out.push_back(std::filesystem::path(BULWARK_ROUTER_SOURCE_DATA_DIR) / kWeightsFileName);
#endif
  return out;
}

Result<std::filesystem::path> locate_weights(const std::filesystem::path& override_path) {
  std::error_code ec;
  if (!override_path.empty()) {
    if (std::filesystem::is_regular_file(override_path, ec)) return override_path;
    return std::unexpected(Error::gateway(ErrorKind::internal,
                                          "router weights not found at " + override_path.string()));
  }
  std::string tried;
  for (const auto& p : weights_search_path()) {
    if (std::filesystem::is_regular_file(p, ec)) return p.lexically_normal();
    tried += (tried.empty() ? "" : ", ") + p.string();
  }
  return std::unexpected(Error::gateway(ErrorKind::internal, "router weights not found; tried " + tried));
}

}  // namespace bulwark::router
