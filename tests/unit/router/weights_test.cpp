#include "router/scorer/weights.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "core/random.hpp"
#include "router/scorer/features.hpp"

namespace bulwark::router {
namespace {

Weights sample_weights() {
  Weights w;
  w.meta.feature_set_id = std::string(kFeatureSetId);
  w.meta.created = "2026-11-24";
  w.meta.model = "logistic regression, L2 0.01";
  w.meta.target = "gain_soft: test";
  w.meta.data = {{"fit", "a.jsonl", std::string(64, 'a'), 12}, {"calib", "b.jsonl", std::string(64, 'b'), 3}};
  w.meta.thresholds = {{0.0, 0.9}, {0.5, 0.4}, {1.0, 0.1}};
  w.bias = -0.123456789012345;
  w.w.assign(kFeatureDim, 0.0f);
  FastRandom rng(7);
  for (std::size_t i = 0; i < kFeatureDim; i += 37) w.w[i] = static_cast<float>(rng.uniform() * 2 - 1) * 1e-3f;
  w.w[kFeatureDim - 1] = 3.5f;
  return w;
}

std::string replace_line(std::string text, const std::string& from, const std::string& to) {
  const auto p = text.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) text.replace(p, from.size(), to);
  return text;
}

TEST(Weights, SerializeParseRoundTripsExactly) {
  const Weights w = sample_weights();
  const auto parsed = parse_weights(serialize_weights(w));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->meta.feature_set_id, w.meta.feature_set_id);
  EXPECT_EQ(parsed->meta.created, w.meta.created);
  EXPECT_EQ(parsed->meta.model, w.meta.model);
  EXPECT_EQ(parsed->meta.target, w.meta.target);
  ASSERT_EQ(parsed->meta.data.size(), 2u);
  EXPECT_EQ(parsed->meta.data[1].sha256, w.meta.data[1].sha256);
  EXPECT_EQ(parsed->meta.data[0].records, 12u);
  ASSERT_EQ(parsed->meta.thresholds.size(), 3u);
  EXPECT_EQ(parsed->meta.thresholds[1].threshold, 0.4);
  EXPECT_EQ(parsed->bias, w.bias);
  EXPECT_EQ(parsed->w, w.w);
  EXPECT_EQ(serialize_weights(*parsed), serialize_weights(w));
}

Weights with_subject_model() {
  Weights w = sample_weights();
  auto m = std::make_shared<SubjectModel>();
  m->classes = 3;
  m->temperature = 0.4f;
  m->names = {"mmlu/anatomy", "mmlu/virology", "mmlu/world_religions"};
  for (std::uint32_t c = 0; c < 3; ++c) {
    m->prior[c] = -1.1f * static_cast<float>(c + 1);
    m->log_norm[c] = 9.5f + static_cast<float>(c);
    m->gain[c] = 0.05f * static_cast<float>(c);
  }
  m->table.assign(std::size_t{SubjectModel::kSlots} * SubjectModel::kLanes, 0);
  m->table[7 * SubjectModel::kLanes + 2] = 255;
  m->table[(SubjectModel::kSlots - 1) * SubjectModel::kLanes] = 17;
  w.subject = std::move(m);
  return w;
}

TEST(Weights, SubjectModelRoundTripsExactly) {
  const Weights w = with_subject_model();
  const std::string text = serialize_weights(w);
  EXPECT_NE(text.find("q 7 0000ff\n"), std::string::npos);
  const auto parsed = parse_weights(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_NE(parsed->subject, nullptr);
  EXPECT_TRUE(parsed->subject->valid());
  EXPECT_EQ(parsed->subject->classes, 3u);
  EXPECT_EQ(parsed->subject->temperature, 0.4f);
  EXPECT_EQ(parsed->subject->names, w.subject->names);
  EXPECT_EQ(parsed->subject->prior, w.subject->prior);
  EXPECT_EQ(parsed->subject->log_norm, w.subject->log_norm);
  EXPECT_EQ(parsed->subject->gain, w.subject->gain);
  EXPECT_EQ(parsed->subject->table, w.subject->table);
  EXPECT_EQ(serialize_weights(*parsed), text);
  // Without the subject lines there is no model.
  EXPECT_EQ(parse_weights(serialize_weights(sample_weights()))->subject, nullptr);
}

TEST(Weights, RejectsMalformedSubjectModel) {
  const std::string good = serialize_weights(with_subject_model());
  ASSERT_TRUE(parse_weights(good).has_value());
  EXPECT_FALSE(parse_weights(replace_line(good, "q 7 0000ff", "q 7 00ff")));      // wrong width
  EXPECT_FALSE(parse_weights(replace_line(good, "q 7 0000ff", "q 7 0000fg")));    // not hex
  EXPECT_FALSE(parse_weights(replace_line(good, "q 7 0000ff", "q 16384 0000ff")));  // slot out of range
  EXPECT_FALSE(parse_weights(replace_line(good, "subject 3", "subject 65")));    // too many classes
  EXPECT_FALSE(parse_weights(replace_line(good, "class 1 ", "class 2 ")));       // out of order
  EXPECT_FALSE(parse_weights(replace_line(good, "subject 3", "subject 4")));     // a class line missing
  // Rows before the subject line have no model to go to.
  EXPECT_FALSE(parse_weights(replace_line(good, "dim ", "q 1 000000\ndim ")));
}

TEST(Weights, FileRoundTrip) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("bulwark-weights-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  const Weights w = sample_weights();
  ASSERT_TRUE(save_weights_file(path, w).has_value());
  const auto loaded = load_weights_file(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ(loaded->w, w.w);
  EXPECT_FALSE(load_weights_file(path).has_value());
}

TEST(Weights, RejectsAnotherFeatureSet) {
  const std::string text = replace_line(serialize_weights(sample_weights()),
                                        "feature_set " + std::string(kFeatureSetId), "feature_set bulwark-complexity-fs0");
  const auto parsed = parse_weights(text);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().message.find("feature set"), std::string::npos);
}

TEST(Weights, RejectsOtherVersionsAndCorruption) {
  const std::string good = serialize_weights(sample_weights());
  EXPECT_FALSE(parse_weights(replace_line(good, "bulwark-router-weights 2", "bulwark-router-weights 1")));
  EXPECT_FALSE(parse_weights(replace_line(good, "bulwark-router-weights 2", "bulwark-router-weights 3")));
  EXPECT_FALSE(parse_weights(good.substr(0, good.size() / 2)));  // truncated: no "end"
  EXPECT_FALSE(parse_weights(replace_line(good, "dim ", "dim 1")));
  EXPECT_FALSE(parse_weights(replace_line(good, "end\n", "w 99999999 1\nend\n")));
  EXPECT_FALSE(parse_weights(replace_line(good, "bias ", "bias x")));
  EXPECT_FALSE(parse_weights(replace_line(good, "threshold 0.5", "threshold 0")));  // not ascending
  EXPECT_FALSE(parse_weights("feature_set " + std::string(kFeatureSetId) + "\nend\n"));
  EXPECT_FALSE(parse_weights(""));
}

}  // namespace
}  // namespace bulwark::router
