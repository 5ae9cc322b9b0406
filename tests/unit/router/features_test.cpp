#include "router/scorer/features.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace bulwark::router {
namespace {

const std::string kMc =
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
    "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:";
const std::string kFree =
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning. How much "
    "in dollars does she make every day at the farmers' market?";

bool same(const std::vector<Feature>& a, const std::vector<Feature>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const Feature& x, const Feature& y) {
    return x.index == y.index && x.value == y.value && x.kind == y.kind && x.begin == y.begin && x.end == y.end;
  });
}

TEST(FeatureExtractor, IsDeterministicAndIndependentOfBufferReuse) {
  const FeatureExtractor fx;
  std::vector<Feature> a, b, reused;
  fx.extract(kMc, a);
  fx.extract(kMc, b);
  EXPECT_TRUE(same(a, b));
  fx.extract(kFree, reused);  // a longer, different prompt first
  fx.extract(kMc, reused);
  EXPECT_TRUE(same(a, reused));
  EXPECT_FALSE(a.empty());
}

TEST(FeatureExtractor, IndicesStayInRangeAndValuesAreFinite) {
  const FeatureExtractor fx;
  std::vector<Feature> f;
  for (const std::string& p : {kMc, kFree, std::string(), std::string("\xff\xfe\x80 ??? \n\nAnswer:"),
                               std::string(3000, 'x')}) {
    fx.extract(p, f);
    for (const Feature& x : f) {
      EXPECT_LT(x.index, kFeatureDim);
      EXPECT_TRUE(std::isfinite(x.value));
      EXPECT_LE(x.begin, x.end);
      EXPECT_LE(x.end, p.size());
    }
  }
}

TEST(FeatureExtractor, DenseCopyFollowsThePromptFormat) {
  const FeatureExtractor fx;
  const auto has = [&](const std::string& p, std::uint32_t index) {
    std::vector<Feature> f;
    fx.extract(p, f);
    return std::any_of(f.begin(), f.end(), [&](const Feature& x) { return x.index == index; });
  };
  EXPECT_TRUE(has(kMc, FeatureExtractor::dense_index(Dense::format, true)));
  EXPECT_FALSE(has(kMc, FeatureExtractor::dense_index(Dense::format, false)));
  EXPECT_TRUE(has(kFree, FeatureExtractor::dense_index(Dense::format, false)));
  EXPECT_TRUE(has(kMc, FeatureExtractor::dense_index(Dense::numeric_options, true)));
  // Options that do not end in "Answer:" are not multiple choice.
  EXPECT_TRUE(has("Q?\nA. x\nB. y\nC. z\nD. w", FeatureExtractor::dense_index(Dense::format, false)));
}

TEST(FeatureExtractor, MergedIsSortedUniqueAndSumsRepeats) {
  const FeatureExtractor fx;
  const std::string p = "cat cat cat dog";
  const auto merged = fx.extract_merged(p);
  for (std::size_t i = 1; i < merged.size(); ++i) EXPECT_LT(merged[i - 1].index, merged[i].index);
  std::vector<Feature> raw;
  fx.extract(p, raw);
  double raw_sum = 0, merged_sum = 0;
  for (const auto& f : raw) raw_sum += static_cast<double>(f.value);
  for (const auto& e : merged) merged_sum += e.value;
  EXPECT_NEAR(raw_sum, merged_sum, 1e-9);
  // "cat" occurs three times: its word slot holds 3 x 1/sqrt(4 words).
  const auto cat = std::find_if(raw.begin(), raw.end(), [](const Feature& f) { return f.kind == FeatureKind::word; });
  ASSERT_NE(cat, raw.end());
  const auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& e) { return e.index == cat->index; });
  ASSERT_NE(it, merged.end());
  EXPECT_NEAR(it->value, 1.5, 1e-6);
}

TEST(FeatureExtractor, DescribeNamesFeaturesReadably) {
  const FeatureExtractor fx;
  const std::string p = "Which Enzyme? 1234";
  std::vector<Feature> f;
  fx.extract(p, f);
  std::vector<std::string> names;
  for (const auto& x : f) names.push_back(FeatureExtractor::describe(x, p));
  const auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_TRUE(has("free:format"));
  EXPECT_TRUE(has("w:which"));
  EXPECT_TRUE(has("w:enzyme"));
  EXPECT_TRUE(has("w2:which enzyme"));
  EXPECT_TRUE(has("w:#4-digit"));
  EXPECT_TRUE(has("p:whic"));
  EXPECT_TRUE(has("s:hich"));
  EXPECT_TRUE(has("s:zyme"));
}

}  // namespace
}  // namespace bulwark::router
