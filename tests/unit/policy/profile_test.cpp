#include "policy/profile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace bulwark::policy;
using ::testing::HasSubstr;

TEST(PolicyProfile, BuildsFromSpec) {
  PolicySpec spec;
  spec.id = "corp";
  spec.detectors[PiiKind::email] = Action::redact;
  spec.detectors[PiiKind::card] = Action::block;
  spec.model_allow = {"gpt-4o*", "anthropic.*"};
  spec.deny = {{"codename", "(?i)project\\s+nightingale", Action::block},
               {"disabled", "whatever", Action::off}};
  spec.allow = {"@acme\\.com$"};
  auto p = PolicyProfile::create(spec);
  ASSERT_TRUE(p.has_value()) << p.error();
  EXPECT_EQ(p->id(), "corp");
  EXPECT_EQ(p->action(PiiKind::email), Action::redact);
  EXPECT_EQ(p->action(PiiKind::phone), Action::off);
  EXPECT_EQ(p->enabled_pii(), mask_of(PiiKind::email) | mask_of(PiiKind::card));
  EXPECT_TRUE(p->model_allowed("gpt-4o-mini"));
  EXPECT_TRUE(p->model_allowed("anthropic.claude-3-haiku"));
  EXPECT_FALSE(p->model_allowed("gpt-3.5-turbo"));
  EXPECT_EQ(p->spec().deny.size(), 2U);
}

TEST(PolicyProfile, EmptyModelListAllowsAll) {
  auto p = PolicyProfile::create(PolicySpec{});
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->model_allowed("anything"));
  EXPECT_EQ(p->enabled_pii(), 0);
}

TEST(PolicyProfile, InvalidDenyPatternNamesIndexAndRe2Message) {
  PolicySpec spec;
  spec.deny = {{"ok", "fine", Action::block}, {"broken", "(unclosed", Action::block}};
  auto p = PolicyProfile::create(spec);
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error(), HasSubstr("deny pattern #1"));
  EXPECT_THAT(p.error(), HasSubstr("broken"));
  EXPECT_THAT(p.error(), HasSubstr("missing )"));  // RE2's own message
}

TEST(PolicyProfile, InvalidAllowPatternNamesIndex) {
  PolicySpec spec;
  spec.allow = {"a", "b", "[z-a]"};
  auto p = PolicyProfile::create(spec);
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error(), HasSubstr("allow pattern #2"));
  EXPECT_THAT(p.error(), HasSubstr("invalid character class range"));
}

TEST(PolicyProfile, RejectsUnsupportedActions) {
  PolicySpec spec;
  spec.deny = {{"x", "x", Action::redact}};
  auto p = PolicyProfile::create(spec);
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error(), HasSubstr("deny pattern #0"));

  PolicySpec inj;
  inj.injection = Action::redact;
  EXPECT_FALSE(PolicyProfile::create(inj).has_value());

  PolicySpec glob;
  glob.model_allow = {"gpt-*", ""};
  auto g = PolicyProfile::create(glob);
  ASSERT_FALSE(g.has_value());
  EXPECT_THAT(g.error(), HasSubstr("model glob #1"));
}

TEST(PolicyProfile, CopiesShareTheCompiledPolicy) {
  PolicySpec spec;
  spec.id = "x";
  auto p = PolicyProfile::create(spec);
  ASSERT_TRUE(p.has_value());
  const PolicyProfile copy = *p;
  EXPECT_EQ(&copy.compiled(), &p->compiled());
}
