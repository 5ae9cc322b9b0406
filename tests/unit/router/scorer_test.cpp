#include "router/scorer/scorer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <new>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/random.hpp"

// Counts heap allocations so a test can prove score() makes none.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace bulwark::router {
namespace {

Weights random_weights(std::uint64_t seed, double scale) {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.bias = 0.25;
  w.w.resize(kFeatureDim);
  FastRandom rng(seed);
  for (float& x : w.w) x = static_cast<float>((rng.uniform() * 2 - 1) * scale);
  return w;
}

// A random subject model over 57 classes, so the tests exercise the subject features too.
Weights with_random_subjects(Weights w, std::uint64_t seed) {
  auto m = std::make_shared<SubjectModel>();
  m->classes = 57;
  m->temperature = 0.4f;
  FastRandom rng(seed);
  for (std::uint32_t c = 0; c < m->classes; ++c) {
    m->prior[c] = static_cast<float>(-4 * rng.uniform());
    m->log_norm[c] = static_cast<float>(8 + rng.uniform());
    m->gain[c] = static_cast<float>(rng.uniform() * 0.4 - 0.05);
  }
  m->table.resize(std::size_t{SubjectModel::kSlots} * SubjectModel::kLanes);
  for (std::size_t i = 0; i < m->table.size(); ++i) {
    m->table[i] = i % SubjectModel::kLanes < m->classes ? static_cast<std::uint8_t>(rng.uniform() * 256) : 0;
  }
  w.subject = std::move(m);
  return w;
}

ComplexityScorer make(Weights w) {
  auto s = ComplexityScorer::from_weights(std::move(w));
  EXPECT_TRUE(s.has_value());
  return std::move(*s);
}

const std::string kPrompts[] = {
    "",
    "hi",
    "Statement 1 | Every group of order 4 is cyclic. Statement 2 | Z_4 is cyclic.\nA. True, True\n"
    "B. False, False\nC. True, False\nD. False, True\nAnswer:",
    "A bakery sells 3 cakes for $12.50 each and 40% of its 250 muffins. How much money is made?",
    std::string(2000, 'a'),
};

TEST(ComplexityScorer, ScoreIsInUnitIntervalEvenForExtremeWeights) {
  for (double scale : {0.1, 1000.0}) {
    const auto s = make(random_weights(3, scale));
    for (const auto& p : kPrompts) {
      const double v = s.score(p);
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  }
}

TEST(ComplexityScorer, ScoreIsDeterministicAndMatchesLogistic) {
  const auto s = make(random_weights(5, 0.5));
  for (const auto& p : kPrompts) {
    EXPECT_EQ(s.score(p), s.score(p));
    EXPECT_DOUBLE_EQ(s.score(p), logistic(s.logit(p)));
  }
  // Different prompts score differently under random weights.
  EXPECT_NE(s.score(kPrompts[2]), s.score(kPrompts[3]));
}

TEST(ComplexityScorer, ScoreDoesNotAllocate) {
  const auto s = make(with_random_subjects(random_weights(9, 0.5), 4));
  const std::string mc = kPrompts[2];
  const std::string long_prompt = kPrompts[4];
  const std::size_t before = g_allocations.load();
  double sum = 0;
  for (int i = 0; i < 10; ++i) sum += s.score(mc) + s.score(long_prompt) + s.score(kPrompts[3]);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(sum, 0.0);
}

TEST(ComplexityScorer, ExplainContributionsSumToTheLogit) {
  const auto s = make(with_random_subjects(random_weights(11, 0.5), 6));
  for (const auto& p : kPrompts) {
    for (std::size_t k : {std::size_t{0}, std::size_t{3}, std::size_t{100000}}) {
      const Explanation e = s.explain(p, k);
      double sum = e.bias + e.rest;
      for (const auto& c : e.top) sum += c.contribution;
      EXPECT_NEAR(sum, e.logit, 1e-9 * (1 + std::abs(e.logit)));
      EXPECT_DOUBLE_EQ(e.logit, s.logit(p));
      EXPECT_LE(e.top.size(), k);
      for (std::size_t i = 1; i < e.top.size(); ++i) {
        EXPECT_GE(std::abs(e.top[i - 1].contribution), std::abs(e.top[i].contribution));
      }
      for (const auto& c : e.top) EXPECT_NEAR(c.contribution, c.value * c.weight, 1e-6);
    }
  }
}

TEST(ComplexityScorer, ExplainNamesTheDominantFeature) {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.w.assign(kFeatureDim, 0.0f);
  w.w[FeatureExtractor::dense_index(Dense::log_chars, false)] = 2.0f;
  const auto s = make(std::move(w));
  const Explanation e = s.explain("how many apples", 1);
  ASSERT_EQ(e.top.size(), 1u);
  EXPECT_EQ(e.top[0].feature, "free:log_chars");
  EXPECT_NEAR(e.top[0].contribution, 2.0 * std::log1p(15.0), 1e-5);
}

TEST(ComplexityScorer, SubjectModelMovesTheScoreThroughItsFeatures) {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.w.assign(kFeatureDim, 0.0f);
  w.w[FeatureExtractor::dense_index(Dense::subject_gain, true)] = 1.0f;
  const auto plain = make(w);
  const auto with = make(with_random_subjects(w, 8));
  const std::string p = kPrompts[2];
  EXPECT_EQ(plain.logit(p), 0.0);  // no model: no subject features
  EXPECT_NEAR(with.logit(p), 10.0 * subject_posterior(*with.weights().subject, p).expected_gain, 1e-6);
  EXPECT_NE(with.logit(p), 0.0);
  // Copies and moves keep the model.
  const ComplexityScorer copy = with;
  EXPECT_EQ(copy.logit(p), with.logit(p));
  const Explanation e = copy.explain(p, 1);
  ASSERT_EQ(e.top.size(), 1u);
  EXPECT_EQ(e.top[0].feature, "mc:subject_gain");
  // A malformed model is refused.
  Weights bad = with_random_subjects(w, 8);
  auto broken = std::make_shared<SubjectModel>(*bad.subject);
  broken->classes = 0;
  bad.subject = std::move(broken);
  EXPECT_FALSE(ComplexityScorer::from_weights(std::move(bad)).has_value());
}

TEST(ComplexityScorer, RejectsForeignFeatureSet) {
  Weights w = random_weights(1, 1.0);
  w.meta.feature_set_id = "someone-elses-features";
  EXPECT_FALSE(ComplexityScorer::from_weights(w).has_value());
  w = random_weights(1, 1.0);
  w.w.resize(10);
  EXPECT_FALSE(ComplexityScorer::from_weights(w).has_value());
}

TEST(ComplexityScorer, ThresholdForStrongFractionInterpolates) {
  Weights w = random_weights(1, 1.0);
  EXPECT_FALSE(make(w).threshold_for_strong_fraction(0.5).has_value());  // no calibration
  w.meta.thresholds = {{0.0, 0.9}, {0.2, 0.7}, {0.5, 0.4}, {1.0, 0.0}};
  const auto s = make(std::move(w));
  EXPECT_DOUBLE_EQ(*s.threshold_for_strong_fraction(0.2), 0.7);
  EXPECT_DOUBLE_EQ(*s.threshold_for_strong_fraction(0.5), 0.4);
  EXPECT_NEAR(*s.threshold_for_strong_fraction(0.35), 0.55, 1e-12);
  EXPECT_NEAR(*s.threshold_for_strong_fraction(0.1), 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(*s.threshold_for_strong_fraction(1.0), 0.0);
  EXPECT_FALSE(s.threshold_for_strong_fraction(1.5).has_value());
  EXPECT_FALSE(s.threshold_for_strong_fraction(-0.1).has_value());
}

TEST(ComplexityScorer, ShippedWeightsLoadAndAreCalibrated) {
  // Fails when feature extraction changed without retraining (feature-set id mismatch).
  const auto path = locate_weights();
  ASSERT_TRUE(path.has_value()) << path.error().message;
  const auto s = ComplexityScorer::load(*path);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  const double t20 = *s->threshold_for_strong_fraction(0.2);
  const double t50 = *s->threshold_for_strong_fraction(0.5);
  const double t80 = *s->threshold_for_strong_fraction(0.8);
  EXPECT_GT(t20, t50);
  EXPECT_GT(t50, t80);
  EXPECT_EQ(s->metadata().data.size(), 3u);
  ASSERT_NE(s->weights().subject, nullptr);  // the shipped file carries its subject model
  EXPECT_TRUE(s->weights().subject->valid());
  EXPECT_EQ(s->weights().subject->classes, 57u);
}

TEST(LocateWeights, OverrideWinsAndMustExist) {
  EXPECT_FALSE(locate_weights("/nonexistent/bulwark/weights").has_value());
  const auto path = std::filesystem::temp_directory_path() / "bulwark-locate-test.weights";
  { std::ofstream(path) << "x"; }
  const auto found = locate_weights(path);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, path);
  ::setenv(std::string(kWeightsEnv).c_str(), path.c_str(), 1);
  const auto search = weights_search_path();
  ::unsetenv(std::string(kWeightsEnv).c_str());
  ASSERT_FALSE(search.empty());
  EXPECT_EQ(search.front(), path);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace bulwark::router
