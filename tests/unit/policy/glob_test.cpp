#include "policy/glob.hpp"

#include <gtest/gtest.h>

using bulwark::policy::glob_match;

TEST(Glob, StarMatchesAnyRunIncludingNone) {
  EXPECT_TRUE(glob_match("gpt-4o*", "gpt-4o"));
  EXPECT_TRUE(glob_match("gpt-4o*", "gpt-4o-mini"));
  EXPECT_TRUE(glob_match("gpt-4o*", "gpt-4o-2024-08-06"));
  EXPECT_FALSE(glob_match("gpt-4o*", "gpt-4"));
  EXPECT_FALSE(glob_match("gpt-4o*", "xgpt-4o"));
  EXPECT_TRUE(glob_match("anthropic.*", "anthropic.claude-3-5-sonnet-20240620-v1:0"));
  EXPECT_FALSE(glob_match("anthropic.*", "anthropicXclaude"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*sonnet*", "anthropic.claude-3-5-sonnet"));
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXXbYYbZ"));
}

TEST(Glob, QuestionMarkIsExactlyOneByte) {
  EXPECT_TRUE(glob_match("gpt-?", "gpt-4"));
  EXPECT_FALSE(glob_match("gpt-?", "gpt-"));
  EXPECT_FALSE(glob_match("gpt-?", "gpt-4o"));
}

TEST(Glob, LiteralsAreCaseInsensitiveAndExact) {
  EXPECT_TRUE(glob_match("GPT-4o", "gpt-4o"));
  EXPECT_FALSE(glob_match("gpt-4o", "gpt-4o-mini"));
  EXPECT_FALSE(glob_match("", "gpt"));
}
