#include "policy/decision.hpp"

#include <gtest/gtest.h>

using namespace bulwark::policy;

TEST(PolicyDecision, RecordAggregatesPerRuleDetailAndIndex) {
  PolicyDecision d;
  d.record(Rule::pii, Action::redact, static_cast<std::uint8_t>(PiiKind::email), 0);
  d.record(Rule::pii, Action::redact, static_cast<std::uint8_t>(PiiKind::email), 0, 2);
  d.record(Rule::pii, Action::flag, static_cast<std::uint8_t>(PiiKind::phone), 0);
  d.record(Rule::deny_pattern, Action::flag, 0, 3);
  ASSERT_EQ(d.hits.size(), 3U);
  EXPECT_EQ(d.redactions(PiiKind::email), 3U);
  EXPECT_EQ(d.redactions(PiiKind::phone), 0U);
  EXPECT_EQ(d.redactions(), 3U);
  EXPECT_EQ(d.flags(), 2U);
  EXPECT_EQ(d.verdict, Verdict::allow);
}

TEST(PolicyDecision, FirstBlockWins) {
  PolicyDecision d;
  d.record(Rule::pii, Action::block, static_cast<std::uint8_t>(PiiKind::card), 0);
  d.block(Rule::pii, static_cast<std::uint8_t>(PiiKind::card), 0, "card");
  d.block(Rule::deny_pattern, 0, 1, "codename");
  EXPECT_TRUE(d.blocked());
  ASSERT_TRUE(d.blocked_by.has_value());
  EXPECT_EQ(d.blocked_by->rule, Rule::pii);
  EXPECT_EQ(d.blocked_by->count, 1U);
  EXPECT_EQ(d.reason_code, "pii");
  EXPECT_EQ(d.detector, "card");
}

TEST(PolicyDecision, NamesAreStable) {
  EXPECT_EQ(name_of(Action::redact), "redact");
  EXPECT_EQ(name_of(Verdict::redacted), "redacted");
  EXPECT_EQ(name_of(Rule::prompt_injection), "prompt_injection");
  EXPECT_EQ(name_of(Rule::max_tokens_exceeded), "max_tokens_exceeded");
}
