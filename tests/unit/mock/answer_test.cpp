#include "mock/answer.hpp"

#include <gtest/gtest.h>

namespace bulwark::mock {
namespace {

TEST(Answer, BuildsNumberedTokensEndingWithAFullStop) {
  EXPECT_EQ(expected_answer(1), "w1.");
  EXPECT_EQ(expected_answer(3), "w1 w2 w3.");
  EXPECT_EQ(expected_answer(0), "");
  const auto twelve = expected_answer(12);
  EXPECT_EQ(twelve, "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12.");
}

TEST(Answer, TokenLengthMatchesAppendedText) {
  for (std::uint32_t n : {1u, 9u, 10u, 100u, 1234u}) {
    std::size_t total = 0;
    for (std::uint32_t i = 1; i <= n; ++i) {
      std::string t;
      append_token(t, i, n);
      EXPECT_EQ(t.size(), token_length(i, n)) << i << "/" << n;
      total += t.size();
    }
    EXPECT_EQ(total, expected_answer(n).size());
  }
}

TEST(Answer, TruncationNeverLooksComplete) {
  // Every proper prefix lacks the final "wN." so it cannot pass for the whole answer.
  const auto full = expected_answer(20);
  for (std::size_t len = 0; len < full.size(); ++len)
    EXPECT_FALSE(full.substr(0, len).ends_with("w20.")) << len;
}

TEST(Answer, CountsWhitespaceSeparatedWords) {
  EXPECT_EQ(count_words(""), 0u);
  EXPECT_EQ(count_words("   "), 0u);
  EXPECT_EQ(count_words("hello"), 1u);
  EXPECT_EQ(count_words("  hello   world  "), 2u);
  EXPECT_EQ(count_words("a\tb\nc\r\nd\fe\vf"), 6u);
  EXPECT_EQ(count_words("don't split-on punctuation!"), 3u);
}

TEST(Answer, PrefillAtATokenBoundaryResumesWithTheNextToken) {
  const auto r = match_prefill("w1 w2 w3", 6);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_token, 4u);
  EXPECT_EQ(r->skip_chars, 0u);
  EXPECT_EQ(r->remaining(6), 3u);
  EXPECT_EQ(expected_remainder(6, "w1 w2 w3"), " w4 w5 w6.");
}

TEST(Answer, PrefillInsideATokenResumesMidToken) {
  const auto r = match_prefill("w1 w2 w", 4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_token, 3u);
  EXPECT_EQ(r->skip_chars, 2u);  // " w" of " w3"
  EXPECT_EQ(r->remaining(4), 2u);
  EXPECT_EQ(expected_remainder(4, "w1 w2 w"), "3 w4.");
  // Trailing space: the next token's space is already there.
  EXPECT_EQ(expected_remainder(4, "w1 w2 "), "w3 w4.");
}

TEST(Answer, WholeAnswerAsPrefillLeavesNothing) {
  const auto r = match_prefill("w1 w2.", 2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remaining(2), 0u);
  EXPECT_EQ(expected_remainder(2, "w1 w2."), "");
  // Without the full stop the last token is still owed its "."
  EXPECT_EQ(expected_remainder(2, "w1 w2"), ".");
}

TEST(Answer, NonPrefixIsNotAPrefill) {
  EXPECT_FALSE(match_prefill("hello", 5));
  EXPECT_FALSE(match_prefill("w1 w3", 5));
  EXPECT_FALSE(match_prefill("w1 w2 w3. more", 3));  // longer than the answer
  EXPECT_FALSE(match_prefill("w1 w2.", 3));            // full stop too early
  EXPECT_EQ(expected_remainder(3, "nope"), "w1 w2 w3.");
}

}  // namespace
}  // namespace bulwark::mock
