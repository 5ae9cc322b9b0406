#include "router/scorer/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace bulwark::router {

Result<QualityCurve> quality_curve(std::span<const RoutedExample> examples) {
  const std::size_t n = examples.size();
  if (n == 0) return std::unexpected(Error::client(ErrorKind::bad_request, "no examples"));
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (const auto& e : examples) {
    if (std::isnan(e.score)) return std::unexpected(Error::client(ErrorKind::bad_request, "NaN score"));
  }
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return examples[a].score > examples[b].score; });
  double weak_total = 0, strong_total = 0;
  for (const auto& e : examples) {
    weak_total += e.weak_correct ? 1 : 0;
    strong_total += e.strong_correct ? 1 : 0;
  }
  const double dn = static_cast<double>(n);
  if (weak_total == strong_total) {
    return std::unexpected(Error::client(ErrorKind::bad_request, "weak and strong accuracy are equal"));
  }
  QualityCurve c;
  c.weak_accuracy = weak_total / dn;
  c.strong_accuracy = strong_total / dn;
  c.fraction.push_back(0.0);
  c.accuracy.push_back(c.weak_accuracy);
  // Walk from the highest score down; a tied block moves to the strong model all at once.
  double correct = weak_total;
  std::size_t i = 0;
  while (i < n) {
    std::size_t j = i;
    const double s = examples[order[i]].score;
    while (j < n && examples[order[j]].score == s) {
      const auto& e = examples[order[j]];
      correct += (e.strong_correct ? 1.0 : 0.0) - (e.weak_correct ? 1.0 : 0.0);
      ++j;
    }
    c.fraction.push_back(static_cast<double>(j) / dn);
    c.accuracy.push_back(correct / dn);
    i = j;
  }
  return c;
}

double QualityCurve::accuracy_at(double f) const {
  f = std::clamp(f, 0.0, 1.0);
  const auto it = std::lower_bound(fraction.begin(), fraction.end(), f);
  const auto k = static_cast<std::size_t>(it - fraction.begin());
  if (k == 0) return accuracy.front();
  if (k >= fraction.size()) return accuracy.back();
  if (fraction[k] == f) return accuracy[k];
  const double t = (f - fraction[k - 1]) / (fraction[k] - fraction[k - 1]);
  return accuracy[k - 1] + t * (accuracy[k] - accuracy[k - 1]);
}

double QualityCurve::pgr_at(double f) const {
  return (accuracy_at(f) - weak_accuracy) / (strong_accuracy - weak_accuracy);
}

double QualityCurve::cpt(double target) const {
  const double gap = strong_accuracy - weak_accuracy;
  const auto pgr = [&](std::size_t k) { return (accuracy[k] - weak_accuracy) / gap; };
  if (pgr(0) >= target) return fraction[0];
  for (std::size_t k = 1; k < fraction.size(); ++k) {
    const double p0 = pgr(k - 1), p1 = pgr(k);
    if (p1 >= target) {
      // p0 < target <= p1: the crossing lies inside this linear piece.
      return fraction[k - 1] + (target - p0) / (p1 - p0) * (fraction[k] - fraction[k - 1]);
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

RoutingMetrics metrics_of(const QualityCurve& curve) {
  RoutingMetrics m;
  m.weak_accuracy = curve.weak_accuracy;
  m.strong_accuracy = curve.strong_accuracy;
  for (std::size_t i = 0; i < m.pgr.size(); ++i) m.pgr[i] = curve.pgr_at(static_cast<double>(i) / 10.0);
  double sum = 0, area = 0;
  for (std::size_t i = 0; i < m.pgr.size(); ++i) {
    sum += m.pgr[i];
    if (i > 0) area += (m.pgr[i - 1] + m.pgr[i]) / 2.0 * 0.1;
  }
  m.apgr_mean = sum / static_cast<double>(m.pgr.size());
  m.apgr_trapezoid = area;
  m.cpt50 = curve.cpt(0.5);
  m.cpt80 = curve.cpt(0.8);
  return m;
}

Result<RoutingMetrics> routing_metrics(std::span<const RoutedExample> examples) {
  auto c = quality_curve(examples);
  if (!c) return std::unexpected(std::move(c.error()));
  return metrics_of(*c);
}

RoutingMetrics mean_metrics(std::span<const RoutingMetrics> runs) {
  RoutingMetrics m;
  if (runs.empty()) return m;
  const double n = static_cast<double>(runs.size());
  for (const auto& r : runs) {
    m.weak_accuracy += r.weak_accuracy / n;
    m.strong_accuracy += r.strong_accuracy / n;
    for (std::size_t i = 0; i < m.pgr.size(); ++i) m.pgr[i] += r.pgr[i] / n;
    m.apgr_mean += r.apgr_mean / n;
    m.apgr_trapezoid += r.apgr_trapezoid / n;
    m.cpt50 += r.cpt50 / n;
    m.cpt80 += r.cpt80 / n;
  }
  return m;
}

}  // namespace bulwark::router
