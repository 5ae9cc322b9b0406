#include "router/scorer/features.hpp"

#include <gtest/gtest.h>

#include "router/scorer/feature_visit.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
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

// Summed value of one dense feature of `p` (0 when absent, as a sparse vector reads).
double dense_value(const std::string& p, Dense d, bool mc) {
  const auto merged = FeatureExtractor().extract_merged(p);
  const std::uint32_t index = FeatureExtractor::dense_index(d, mc);
  const auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& e) { return e.index == index; });
  return it == merged.end() ? 0.0 : it->value;
}

TEST(FeatureExtractor, WordProblemCuesAreCountedSeparately) {
  const std::string p = "She paid $12.50 for 3/4 of a cake at 40% off, then ate half. How much is left? Twice as much?";
  EXPECT_NEAR(dense_value(p, Dense::log_decimal_points, false), std::log1p(1.0), 1e-6);
  EXPECT_NEAR(dense_value(p, Dense::log_fractions, false), std::log1p(1.0), 1e-6);
  EXPECT_NEAR(dense_value(p, Dense::log_percents, false), std::log1p(1.0), 1e-6);
  EXPECT_NEAR(dense_value(p, Dense::log_fraction_words, false), std::log1p(2.0), 1e-6);  // half, Twice
  EXPECT_NEAR(dense_value(p, Dense::log_how_much, false), std::log1p(1.0), 1e-6);        // not "as much"
  // 12, 50, 3, 4, 40: tokens that start with a digit.
  EXPECT_NEAR(dense_value(p, Dense::log_numbers, false), std::log1p(5.0), 1e-6);
  EXPECT_NEAR(dense_value(p, Dense::log_max_number_len, false), std::log1p(2.0), 1e-6);
  // Near misses: a sentence end after a number, spaced slashes, "how" without "much".
  const std::string q = "He has 12. 5 more came. Take 3 / 4 of them. How many? Much later, how";
  EXPECT_EQ(dense_value(q, Dense::log_decimal_points, false), 0.0);
  EXPECT_EQ(dense_value(q, Dense::log_fractions, false), 0.0);
  EXPECT_EQ(dense_value(q, Dense::log_percents, false), 0.0);
  EXPECT_EQ(dense_value(q, Dense::log_fraction_words, false), 0.0);
  EXPECT_EQ(dense_value(q, Dense::log_how_much, false), 0.0);
  // Multiple-choice prompts fill the MC copy only.
  const std::string mc = "What is half of 2.5?\nA. 1.25\nB. 5\nC. 2\nD. 1/2\nAnswer:";
  EXPECT_NEAR(dense_value(mc, Dense::log_decimal_points, true), std::log1p(2.0), 1e-6);
  EXPECT_NEAR(dense_value(mc, Dense::log_fractions, true), std::log1p(1.0), 1e-6);
  EXPECT_NEAR(dense_value(mc, Dense::log_fraction_words, true), std::log1p(1.0), 1e-6);
  EXPECT_EQ(dense_value(mc, Dense::log_decimal_points, false), 0.0);
  EXPECT_NEAR(dense_value(mc, Dense::numeric_options, true), 1.0, 1e-6);
}

TEST(FeatureExtractor, KeywordTableMatchesTheTokenizerHash) {
  // The table is built at compile time from word_hash; the scan computes hashes inline.
  std::vector<std::uint64_t> hashes;
  detail::Counts n;
  const std::string p = "HALF Thirds twice much How halfway";
  detail::scan(p, detail::layout_of(p), n, [&](const detail::Token& t, bool) { hashes.push_back(t.hash); });
  ASSERT_EQ(hashes.size(), 6u);
  EXPECT_EQ(hashes[0], detail::word_hash("half"));
  EXPECT_EQ(hashes[1], detail::word_hash("thirds"));
  EXPECT_EQ(detail::keyword_of(hashes[0]), detail::Keyword::fraction);
  EXPECT_EQ(detail::keyword_of(hashes[1]), detail::Keyword::fraction);
  EXPECT_EQ(detail::keyword_of(hashes[2]), detail::Keyword::fraction);
  EXPECT_EQ(detail::keyword_of(hashes[3]), detail::Keyword::much);
  EXPECT_EQ(detail::keyword_of(hashes[4]), detail::Keyword::how);
  EXPECT_EQ(detail::keyword_of(hashes[5]), detail::Keyword::none);
  // Words longer than one 8-byte block hash the same way in both places.
  hashes.clear();
  const std::string longer = "Photosynthesis";
  detail::scan(longer, detail::layout_of(longer), n, [&](const detail::Token& t, bool) { hashes.push_back(t.hash); });
  ASSERT_EQ(hashes.size(), 1u);
  EXPECT_EQ(hashes[0], detail::word_hash("photosynthesis"));
}

TEST(FeatureExtractor, AffixesAreTheSameAcrossTokenLengths) {
  // The scan takes affixes from its 8-byte blocks; a 5-7, 8, 9 or 14-byte token must give the
  // same prefix/suffix slot as any other token with those four letters.
  const auto slot_of = [](const std::string& p, FeatureKind kind) {
    std::vector<Feature> f;
    FeatureExtractor().extract(p, f);
    const auto it = std::find_if(f.begin(), f.end(), [&](const Feature& x) { return x.kind == kind; });
    return it == f.end() ? kFeatureDim : it->index;
  };
  EXPECT_EQ(slot_of("Photosynthesis", FeatureKind::prefix), slot_of("photons", FeatureKind::prefix));
  EXPECT_EQ(slot_of("photosynthesis", FeatureKind::suffix), slot_of("genesis", FeatureKind::suffix));
  EXPECT_EQ(slot_of("abcdefghi", FeatureKind::suffix), slot_of("zzfghi", FeatureKind::suffix));    // 1 byte in block 2
  EXPECT_EQ(slot_of("abcdefghijk", FeatureKind::suffix), slot_of("zzhijk", FeatureKind::suffix));  // 3 bytes
  EXPECT_EQ(slot_of("ABCDEFGH", FeatureKind::suffix), slot_of("zzefgh", FeatureKind::suffix));     // block full
  EXPECT_EQ(slot_of("ABCDEFGH", FeatureKind::prefix), slot_of("abcdzz", FeatureKind::prefix));
  EXPECT_NE(slot_of("abcdefghi", FeatureKind::prefix), slot_of("abcdefghi", FeatureKind::suffix));
  const std::string p = "Photosynthesis";
  std::vector<Feature> f;
  FeatureExtractor().extract(p, f);
  std::vector<std::string> names;
  for (const auto& x : f) names.push_back(FeatureExtractor::describe(x, p));
  EXPECT_NE(std::find(names.begin(), names.end(), "p:phot"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "s:esis"), names.end());
}

// Two classes; the word "enzyme" is common in class 1 (gain 0.4) and rare in class 0 (gain 0).
std::shared_ptr<const SubjectModel> two_class_model() {
  auto m = std::make_shared<SubjectModel>();
  m->classes = 2;
  m->temperature = 1.0f;
  m->names = {"mmlu/a", "mmlu/b"};
  m->prior = {};
  m->log_norm = {};
  m->gain[0] = 0.0f;
  m->gain[1] = 0.4f;
  m->table.assign(std::size_t{SubjectModel::kSlots} * SubjectModel::kLanes, 0);
  const auto slots = subject_slots("enzyme");
  EXPECT_EQ(slots.size(), 1u);
  m->table[std::size_t{slots.at(0)} * SubjectModel::kLanes + 1] = 48;  // 48 * step = 2 nats
  return m;
}

TEST(SubjectModel, SlotsFollowTheWordTokens) {
  EXPECT_EQ(subject_slots("Which enzyme? 1234").size(), 3u);
  EXPECT_EQ(subject_slots("ENZYME"), subject_slots("enzyme"));
  EXPECT_TRUE(subject_slots(" ,;: ").empty());
  for (std::uint32_t s : subject_slots(kMc)) EXPECT_LT(s, SubjectModel::kSlots);
}

TEST(SubjectModel, PosteriorFavoursTheClassThatUsesTheWord) {
  const auto m = two_class_model();
  const SubjectPosterior none = subject_posterior(*m, "the the the");
  EXPECT_NEAR(none.expected_gain, 0.2, 1e-6);  // uniform posterior (gain is a float)
  EXPECT_NEAR(none.confidence, 0.5, 1e-9);
  const SubjectPosterior one = subject_posterior(*m, "the enzyme");
  const double p1 = std::exp(2.0) / (1 + std::exp(2.0));
  EXPECT_NEAR(one.expected_gain, 0.4 * p1, 1e-6);
  EXPECT_NEAR(one.confidence, p1, 1e-6);
  // Every occurrence counts (multinomial), and the cached-slot path gives the same numbers.
  const SubjectPosterior two = subject_posterior(*m, "enzyme ENZYME");
  EXPECT_GT(two.confidence, one.confidence);
  const SubjectPosterior cached = subject_posterior_of_slots(*m, subject_slots("enzyme ENZYME"));
  EXPECT_EQ(cached.expected_gain, two.expected_gain);
  EXPECT_EQ(cached.confidence, two.confidence);
  // Temperature flattens the posterior.
  auto flat = std::make_shared<SubjectModel>(*m);
  flat->temperature = 0.25f;
  EXPECT_LT(subject_posterior(*flat, "the enzyme").confidence, one.confidence);
  // Long prompts: the 16-bit lanes are flushed before they overflow.
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "enzyme ";
  EXPECT_NEAR(subject_posterior(*m, many).confidence, 1.0, 1e-9);
}

TEST(SubjectModel, ExtractorEmitsTheSubjectFeaturesOnlyWithAModel) {
  const auto m = two_class_model();
  const FeatureExtractor plain;
  const FeatureExtractor with(m);
  const auto find = [](const std::vector<Feature>& f, std::uint32_t index) {
    return std::find_if(f.begin(), f.end(), [&](const Feature& x) { return x.index == index; });
  };
  std::vector<Feature> a, b;
  plain.extract(kFree, a);
  with.extract(kFree + " enzyme", b);
  const std::uint32_t gain = FeatureExtractor::dense_index(Dense::subject_gain, false);
  const std::uint32_t conf = FeatureExtractor::dense_index(Dense::subject_confidence, false);
  EXPECT_EQ(find(a, gain), a.end());
  EXPECT_EQ(find(a, conf), a.end());
  ASSERT_NE(find(b, gain), b.end());
  ASSERT_NE(find(b, conf), b.end());
  const SubjectPosterior p = subject_posterior(*m, kFree + " enzyme");
  EXPECT_NEAR(find(b, gain)->value, 10.0 * p.expected_gain, 1e-5);
  EXPECT_NEAR(find(b, conf)->value, p.confidence, 1e-6);
  EXPECT_EQ(FeatureExtractor::describe(*find(b, gain), kFree), "free:subject_gain");
  // Multiple-choice prompts use the MC copy.
  with.extract(kMc, b);
  EXPECT_NE(find(b, FeatureExtractor::dense_index(Dense::subject_confidence, true)), b.end());
  // An invalid model (wrong table size) is ignored.
  auto broken = std::make_shared<SubjectModel>(*m);
  broken->table.resize(10);
  const FeatureExtractor ignored(broken);
  ignored.extract(kFree, b);
  EXPECT_EQ(find(b, conf), b.end());
}

}  // namespace
}  // namespace bulwark::router
