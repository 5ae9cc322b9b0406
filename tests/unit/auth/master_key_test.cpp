#include "auth/master_key.hpp"

#include <gtest/gtest.h>

namespace bulwark::auth {
namespace {

constexpr const char* kConfigKey = "config-master-key-0123456789abcdef";
constexpr const char* kEnvKey = "env-master-key-0123456789abcdefghij";

TEST(MasterKey, AcceptsOnlyTheExactValue) {
  auto m = MasterKey::create(kConfigKey);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->check(kConfigKey));
  EXPECT_FALSE(m->check(""));
  EXPECT_FALSE(m->check(std::string(kConfigKey).substr(0, 20)));
  EXPECT_FALSE(m->check(std::string(kConfigKey) + "x"));
  std::string flipped = kConfigKey;
  flipped.back() = 'g';
  EXPECT_FALSE(m->check(flipped));
}

TEST(MasterKey, RefusesShortValues) {
  EXPECT_FALSE(MasterKey::create("short"));
  EXPECT_FALSE(MasterKey::create(std::string(31, 'a')));
  EXPECT_TRUE(MasterKey::create(std::string(32, 'a')));
}

TEST(MasterKey, ConfigWinsOverEnvironment) {
  auto m = MasterKey::from(std::string_view(kConfigKey), kEnvKey);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->check(kConfigKey));
  EXPECT_FALSE(m->check(kEnvKey));
}

TEST(MasterKey, FallsBackToEnvironmentAndFailsWithNeither) {
  auto m = MasterKey::from(std::nullopt, kEnvKey);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->check(kEnvKey));
  EXPECT_TRUE(MasterKey::from(std::string_view(""), kEnvKey));
  EXPECT_FALSE(MasterKey::from(std::nullopt, nullptr));
  EXPECT_FALSE(MasterKey::from(std::nullopt, ""));
}

}  // namespace
}  // namespace bulwark::auth
