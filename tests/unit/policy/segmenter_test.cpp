#include "policy/segmenter.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace bulwark::policy;
using ::testing::ElementsAre;

namespace {

// "S:text" for segments, "G:text" for gaps, "P:text" for PEM blocks.
std::vector<std::string> steps(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Step st = next_step(text, pos, true);
    EXPECT_NE(st.kind, StepKind::need_more);
    EXPECT_GT(st.end, pos);
    const char tag = st.kind == StepKind::gap ? 'G' : st.kind == StepKind::pem ? 'P' : 'S';
    out.push_back(std::string(1, tag) + ":" + std::string(text.substr(pos, st.end - pos)));
    pos = st.end;
  }
  return out;
}

}  // namespace

TEST(Segmenter, SplitsWordsAtSeparators) {
  EXPECT_THAT(steps("hello, world! a@b.co"),
              ElementsAre("S:hello", "G:, ", "S:world", "G:! ", "S:a@b.co"));
  EXPECT_THAT(steps("{\"k\":\"v\"}"), ElementsAre("G:{\"", "S:k", "G:\"", "S::", "G:\"", "S:v", "G:\"}"));
}

TEST(Segmenter, JoinsDigitAndCapitalGroupsAcrossSingleSpaces) {
  EXPECT_THAT(steps("card 4111 1111 1111 1111 ok"),
              ElementsAre("S:card", "G: ", "S:4111 1111 1111 1111", "G: ", "S:ok"));
  EXPECT_THAT(steps("GB82 WEST 1234"), ElementsAre("S:GB82 WEST 1234"));
  EXPECT_THAT(steps("+1 (415) 555-2671"), ElementsAre("S:+1 (415) 555-2671"));
  EXPECT_THAT(steps("1  2"), ElementsAre("S:1", "G:  ", "S:2"));    // two spaces
  EXPECT_THAT(steps("1\t2"), ElementsAre("S:1", "G:\t", "S:2"));    // not a space
  EXPECT_THAT(steps("year 2024 was"), ElementsAre("S:year", "G: ", "S:2024", "G: ", "S:was"));
}

TEST(Segmenter, KeepsPrivateKeyBlocksWhole) {
  const std::string key =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
  EXPECT_THAT(steps("key:" + key + "\nbye"), ElementsAre("S:key:", "P:" + key, "G:\n", "S:bye"));
}

TEST(Segmenter, TraitsDescribeTheSegment) {
  const std::string t = "a@b.c:1-X";
  const Step st = next_step(t, 0, true);
  EXPECT_EQ(st.traits, seg_trait::at | seg_trait::dot | seg_trait::colon | seg_trait::digit |
                           seg_trait::dash | seg_trait::upper);
}

TEST(Segmenter, AsksForMoreOnlyWhenTheEndIsUndecided) {
  EXPECT_EQ(next_step("hello", 0, false).kind, StepKind::need_more);
  EXPECT_EQ(next_step("hello ", 0, false).kind, StepKind::segment);  // lower-case before space
  EXPECT_EQ(next_step("4111 ", 0, false).kind, StepKind::need_more);  // may be joined
  EXPECT_EQ(next_step("4111 a", 0, false).kind, StepKind::segment);
  EXPECT_EQ(next_step("-----BEG", 0, false).kind, StepKind::need_more);
  EXPECT_EQ(next_step(" \n", 0, false).kind, StepKind::gap);
}

TEST(Segmenter, CapsLongSegmentsWithoutSplittingUtf8) {
  std::string t(kMaxSegmentBytes - 1, 'a');
  t += "\xC3\xA9";  // é straddles the cap
  t += "bbb";
  const Step st = next_step(t, 0, false);
  ASSERT_EQ(st.kind, StepKind::segment);
  EXPECT_EQ(st.end, kMaxSegmentBytes - 1);
  const Step next = next_step(t, st.end, true);
  EXPECT_EQ(next.end, t.size());
}

TEST(Segmenter, CapsPemBlocks) {
  std::string t = "-----BEGIN PRIVATE KEY-----\n";
  while (t.size() < kMaxPemBytes + 100) t += "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n";
  const Step st = next_step(t, 0, false);
  ASSERT_EQ(st.kind, StepKind::pem);
  EXPECT_LE(st.end, kMaxPemBytes);
}
