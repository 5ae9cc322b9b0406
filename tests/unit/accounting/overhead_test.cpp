#include "accounting/overhead.hpp"

#include <gtest/gtest.h>

namespace bulwark::accounting {
namespace {

// $1 per million input tokens, $2 per million output, $0.10 cached, $1.25 cache writes.
constexpr ModelPrice kPrice{1'000'000'000, 2'000'000'000, 100'000'000, 1'250'000'000};

TEST(AttemptCharge, EstimatesPromptAndTextWhenNothingWasReported) {
  AttemptSeen seen;
  seen.prompt_bytes = 401;       // 101 tokens
  seen.output_text_bytes = 20;   // 5 tokens
  const AttemptCharge c = attempt_charge(&kPrice, seen);
  EXPECT_EQ(c.usage.input_tokens, 101);
  EXPECT_EQ(c.usage.output_tokens, 5);
  EXPECT_TRUE(c.cost.estimated);
  EXPECT_EQ(c.cost.nano_usd, 101 * 1000 + 5 * 2000);
}

TEST(AttemptCharge, UsesReportedFinalUsageAsIs) {
  AttemptSeen seen;
  seen.prompt_bytes = 4000;
  seen.output_text_bytes = 4000;
  seen.reported = Usage{.input_tokens = 7, .output_tokens = 3, .cached_input_tokens = 10, .cache_write_tokens = 0};
  seen.output_final = true;
  const AttemptCharge c = attempt_charge(&kPrice, seen);
  EXPECT_EQ(c.usage.input_tokens, 7);
  EXPECT_EQ(c.usage.cached_input_tokens, 10);
  EXPECT_EQ(c.usage.output_tokens, 3);
  EXPECT_FALSE(c.cost.estimated);
  EXPECT_EQ(c.cost.nano_usd, 7 * 1000 + 3 * 2000 + 10 * 100);
}

// Anthropic's message_start: the prompt is reported, the output so far is not final.
TEST(AttemptCharge, ReportedPromptWithTextEstimate) {
  AttemptSeen seen;
  seen.prompt_bytes = 4000;
  seen.output_text_bytes = 40;  // 10 tokens
  seen.reported = Usage{.input_tokens = 12, .output_tokens = 1, .cached_input_tokens = 0, .cache_write_tokens = 4};
  const AttemptCharge c = attempt_charge(&kPrice, seen);
  EXPECT_EQ(c.usage.input_tokens, 12);
  EXPECT_EQ(c.usage.cache_write_tokens, 4);
  EXPECT_EQ(c.usage.output_tokens, 10);
  EXPECT_TRUE(c.cost.estimated);  // the output came from the text
  EXPECT_EQ(c.cost.nano_usd, 12 * 1000 + 4 * 1250 + 10 * 2000);
  // A reported (non-final) output count larger than the text estimate is kept, and the
  // charge is then exact.
  seen.reported->output_tokens = 50;
  const AttemptCharge d = attempt_charge(&kPrice, seen);
  EXPECT_EQ(d.usage.output_tokens, 50);
  EXPECT_FALSE(d.cost.estimated);
}

TEST(AttemptCharge, ZeroReportedPromptFallsBackToTheEstimate) {
  AttemptSeen seen;
  seen.prompt_bytes = 8;
  seen.reported = Usage{};
  seen.output_final = true;
  const AttemptCharge c = attempt_charge(&kPrice, seen);
  EXPECT_EQ(c.usage.input_tokens, 2);
  EXPECT_EQ(c.usage.output_tokens, 0);
  EXPECT_TRUE(c.cost.estimated);
}

TEST(AttemptCharge, UnpricedTargetCostsNothingButCountsTokens) {
  AttemptSeen seen;
  seen.prompt_bytes = 40;
  const AttemptCharge c = attempt_charge(nullptr, seen);
  EXPECT_EQ(c.usage.input_tokens, 10);
  EXPECT_EQ(c.cost.nano_usd, 0);
}

TEST(OverheadReason, NamesRoundTrip) {
  for (std::size_t i = 0; i < kOverheadReasons; ++i) {
    const auto r = static_cast<OverheadReason>(i);
    EXPECT_EQ(parse_overhead_reason(name_of(r)), r);
  }
  EXPECT_EQ(name_of(OverheadReason::stream_broken), "stream_broken");
  EXPECT_FALSE(parse_overhead_reason("nope"));
}

}  // namespace
}  // namespace bulwark::accounting
