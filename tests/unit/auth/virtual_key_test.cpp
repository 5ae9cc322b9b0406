#include "auth/virtual_key.hpp"

#include <gtest/gtest.h>

#include <set>

namespace bulwark::auth {
namespace {

TEST(VirtualKey, HasPrefixLengthAndBase62Body) {
  auto g = generate_secret();
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->secret.starts_with("bwk_"));
  EXPECT_EQ(g->secret.size(), 4u + 40u);
  EXPECT_TRUE(looks_like_key(g->secret));
  EXPECT_EQ(g->display_prefix, g->secret.substr(0, 10));
  EXPECT_EQ(g->hash, sha256(g->secret));
  EXPECT_EQ(g->hash.size(), 32u);
}

TEST(VirtualKey, SecretsAreDistinctAndUseTheWholeAlphabet) {
  std::set<std::string> seen;
  std::set<char> chars;
  for (int i = 0; i < 2000; ++i) {
    auto g = generate_secret();
    ASSERT_TRUE(g);
    EXPECT_TRUE(seen.insert(g->secret).second);
    for (char c : g->secret.substr(4)) chars.insert(c);
  }
  // 80,000 uniform draws over 62 symbols: a missing symbol would mean a biased encoder.
  EXPECT_EQ(chars.size(), 62u);
}

TEST(VirtualKey, Sha256MatchesKnownVector) {
  EXPECT_EQ(to_hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(VirtualKey, RejectsMalformedKeys) {
  auto g = generate_secret();
  ASSERT_TRUE(g);
  EXPECT_FALSE(looks_like_key(""));
  EXPECT_FALSE(looks_like_key("sk-" + g->secret.substr(4)));
  EXPECT_FALSE(looks_like_key(g->secret.substr(0, 43)));
  EXPECT_FALSE(looks_like_key(g->secret + "x"));
  std::string bad = g->secret;
  bad[10] = '-';
  EXPECT_FALSE(looks_like_key(bad));
}

TEST(VirtualKey, ConstantTimeEqualComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("abcdef", "abcdef"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcdeg"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcde"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(VirtualKey, RandomIdsAreHexAndUnique) {
  auto a = random_id("key_");
  auto b = random_id("key_");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 4u + 32u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef", 4), std::string::npos);
}

}  // namespace
}  // namespace bulwark::auth
