#include "router/scorer/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace bulwark::router {
namespace {

constexpr double kEps = 1e-12;

// Scores 4,3,2,1 with gains +1, 0, -1, +1. W = 0.5, S = 0.75. Achievable points
// (f, PGR): (0,0) (.25,1) (.5,1) (.75,0) (1,1).
std::vector<RoutedExample> distinct_scores() {
  return {{4.0, false, true}, {3.0, true, true}, {2.0, true, false}, {1.0, false, true}};
}

TEST(Metrics, CurveHasOnePointPerDistinctScore) {
  const auto c = quality_curve(distinct_scores());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->fraction, (std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(c->accuracy, (std::vector<double>{0.5, 0.75, 0.75, 0.5, 0.75}));
  EXPECT_DOUBLE_EQ(c->weak_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(c->strong_accuracy, 0.75);
}

TEST(Metrics, HandComputedPgrApgrAndCpt) {
  const auto m = routing_metrics(distinct_scores());
  ASSERT_TRUE(m.has_value());
  const double expected[11] = {0.0, 0.4, 0.8, 1.0, 1.0, 1.0, 0.6, 0.2, 0.2, 0.6, 1.0};
  for (int i = 0; i < 11; ++i) EXPECT_NEAR(m->pgr[static_cast<std::size_t>(i)], expected[i], kEps) << i;
  EXPECT_NEAR(m->apgr_mean, 6.8 / 11.0, kEps);
  // Trapezoid: 0.1 * (sum - (first + last) / 2).
  EXPECT_NEAR(m->apgr_trapezoid, 0.1 * (6.8 - 0.5), kEps);
  EXPECT_NEAR(m->cpt50, 0.125, kEps);
  EXPECT_NEAR(m->cpt80, 0.2, kEps);
}

TEST(Metrics, TiedBlockSwitchesAtOnceAndIsInterpolated) {
  // The top block {+1, -1} is tied: any tie-break averages to no gain inside it.
  const std::vector<RoutedExample> ex = {
      {1.0, false, true}, {1.0, true, false}, {0.0, false, true}, {0.0, true, true}};
  const auto c = quality_curve(ex);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->fraction, (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_NEAR(c->pgr_at(0.25), 0.0, kEps);
  EXPECT_NEAR(c->pgr_at(0.75), 0.5, kEps);
  const auto m = metrics_of(*c);
  EXPECT_NEAR(m.apgr_mean, 3.0 / 11.0, kEps);  // 0.2 + 0.4 + 0.6 + 0.8 + 1.0
  EXPECT_NEAR(m.apgr_trapezoid, 0.25, kEps);
  EXPECT_NEAR(m.cpt50, 0.75, kEps);
  EXPECT_NEAR(m.cpt80, 0.9, kEps);
}

TEST(Metrics, AllTiedIsTheStraightLine) {
  const std::vector<RoutedExample> ex = {
      {0.3, false, true}, {0.3, true, true}, {0.3, false, false}, {0.3, false, true}, {0.3, true, false}};
  const auto m = routing_metrics(ex);
  ASSERT_TRUE(m.has_value());
  for (int i = 0; i <= 10; ++i) EXPECT_NEAR(m->pgr[static_cast<std::size_t>(i)], i / 10.0, kEps);
  EXPECT_NEAR(m->apgr_mean, 0.5, kEps);
  EXPECT_NEAR(m->apgr_trapezoid, 0.5, kEps);
  EXPECT_NEAR(m->cpt50, 0.5, kEps);
  EXPECT_NEAR(m->cpt80, 0.8, kEps);
}

TEST(Metrics, OrderOfInputDoesNotMatter) {
  auto ex = distinct_scores();
  std::swap(ex[0], ex[3]);
  std::swap(ex[1], ex[2]);
  const auto a = routing_metrics(distinct_scores());
  const auto b = routing_metrics(ex);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->pgr, b->pgr);
  EXPECT_EQ(a->cpt50, b->cpt50);
}

TEST(Metrics, CptAboveTheCurveIsNaN) {
  const auto c = quality_curve(distinct_scores());
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(std::isnan(c->cpt(1.5)));
  EXPECT_NEAR(c->cpt(0.0), 0.0, kEps);
}

TEST(Metrics, RejectsDegenerateInput) {
  EXPECT_FALSE(routing_metrics({}).has_value());
  const std::vector<RoutedExample> equal = {{1.0, true, true}, {0.0, false, false}};
  EXPECT_FALSE(routing_metrics(equal).has_value());
  const std::vector<RoutedExample> nan = {{std::nan(""), false, true}, {0.0, true, true}};
  EXPECT_FALSE(routing_metrics(nan).has_value());
}

TEST(Metrics, MeanMetricsAveragesFieldwise) {
  RoutingMetrics a, b;
  a.apgr_mean = 0.4;
  b.apgr_mean = 0.6;
  a.cpt50 = 0.2;
  b.cpt50 = 0.4;
  a.pgr[3] = 1.0;
  const std::vector<RoutingMetrics> runs = {a, b};
  const auto m = mean_metrics(runs);
  EXPECT_NEAR(m.apgr_mean, 0.5, kEps);
  EXPECT_NEAR(m.cpt50, 0.3, kEps);
  EXPECT_NEAR(m.pgr[3], 0.5, kEps);
}

}  // namespace
}  // namespace bulwark::router
