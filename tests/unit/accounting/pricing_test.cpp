#include "accounting/pricing.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace bulwark::accounting {
namespace {

// Claude Sonnet list prices, USD per million tokens: 3 / 15 / 0.30 read / 3.75 write.
const ModelPrice kSonnet{3'000'000'000, 15'000'000'000, 300'000'000, 3'750'000'000};

TEST(ParseUsd, ExactDecimals) {
  EXPECT_EQ(*parse_usd("2.50"), 2'500'000'000);
  EXPECT_EQ(*parse_usd("0.075"), 75'000'000);
  EXPECT_EQ(*parse_usd("0.00875"), 8'750'000);
  EXPECT_EQ(*parse_usd("15"), 15'000'000'000);
  EXPECT_EQ(*parse_usd("$1.10"), 1'100'000'000);
  EXPECT_EQ(*parse_usd("0.000000001"), 1);
  EXPECT_FALSE(parse_usd("0.0000000001"));  // finer than a nano-dollar
  EXPECT_FALSE(parse_usd("-1"));
  EXPECT_FALSE(parse_usd("1e3"));
  EXPECT_FALSE(parse_usd(""));
  EXPECT_EQ(format_usd(12'600'000), "0.012600000");
  EXPECT_EQ(format_usd(-1), "-0.000000001");
  EXPECT_EQ(format_usd(0), "0.000000000");
  EXPECT_EQ(format_usd(1'000'000'000), "1.000000000");
  EXPECT_EQ(format_usd(std::numeric_limits<std::int64_t>::max()), "9223372036.854775807");
  EXPECT_EQ(format_usd(std::numeric_limits<std::int64_t>::min()), "-9223372036.854775808");
}

TEST(CostOf, EachTokenCategoryAtItsOwnRate) {
  const Usage u{.input_tokens = 1000, .output_tokens = 500, .cached_input_tokens = 2000, .cache_write_tokens = 400};
  // 1000*3 + 500*15 + 2000*0.30 + 400*3.75 = 3000 + 7500 + 600 + 1500 micro-dollars.
  const Cost c = cost_of(kSonnet, u);
  EXPECT_EQ(c.nano_usd, 12'600'000);
  EXPECT_FALSE(c.estimated);
  EXPECT_EQ(cost_of(kSonnet, {.cached_input_tokens = 1'000'000}).nano_usd, 300'000'000);
  EXPECT_EQ(cost_of(kSonnet, {.cache_write_tokens = 1'000'000}).nano_usd, 3'750'000'000);
}

TEST(CostOf, RoundsUpOncePerRequest) {
  // Nova Micro cached reads: $0.00875 per million = 8.75 nano-dollars per token.
  const ModelPrice p{8'750'000, 8'750'000, 8'750'000, 8'750'000};
  EXPECT_EQ(cost_of(p, {.input_tokens = 1}).nano_usd, 9);   // 8.75
  EXPECT_EQ(cost_of(p, {.input_tokens = 3}).nano_usd, 27);  // 26.25
  EXPECT_EQ(cost_of(p, {.input_tokens = 4}).nano_usd, 35);  // exactly 35
  // Rounded once on the sum (4 x 8.75 = 35), not per category (3 x 9 + ... = 36).
  EXPECT_EQ(cost_of(p, {.input_tokens = 1, .output_tokens = 1, .cached_input_tokens = 2}).nano_usd, 35);
  EXPECT_EQ(cost_of(p, {}).nano_usd, 0);
}

TEST(CostOf, IntegerTotalsDoNotDrift) {
  // A million requests of 1234 in / 567 out on gpt-4.1: the integer total is exactly a
  // million times the per-request cost, which binary floating point would not give.
  const ModelPrice gpt41{2'000'000'000, 8'000'000'000, 500'000'000, 2'000'000'000};
  const Usage u{.input_tokens = 1234, .output_tokens = 567};
  const std::int64_t one = cost_of(gpt41, u).nano_usd;
  EXPECT_EQ(one, 2'468'000 + 4'536'000);
  std::int64_t total = 0;
  for (int i = 0; i < 1'000'000; ++i) total += cost_of(gpt41, u).nano_usd;
  EXPECT_EQ(total, one * 1'000'000);
  EXPECT_EQ(format_usd(total), "7004.000000000");
}

TEST(CostOf, HugeCountsSaturateInsteadOfOverflowing) {
  const Usage u{.output_tokens = INT64_MAX};
  EXPECT_EQ(cost_of(kSonnet, u).nano_usd, INT64_MAX);
  EXPECT_EQ(cost_of(kSonnet, {.input_tokens = -5}).nano_usd, 0);
}

TEST(MaxCost, BoundsEveryPossibleSplitOfTheInput) {
  const std::int64_t bound = max_cost(kSonnet, 1000, 500);
  EXPECT_EQ(bound, 1000 * 3'750 + 500 * 15'000);  // all input at the cache-write rate
  for (std::int64_t cached = 0; cached <= 1000; cached += 250) {
    const Usage u{.input_tokens = 1000 - cached, .output_tokens = 500, .cached_input_tokens = cached / 2,
                  .cache_write_tokens = cached - cached / 2};
    EXPECT_LE(cost_of(kSonnet, u).nano_usd, bound);
  }
}

TEST(EstimateUsage, FourBytesPerTokenRoundedUp) {
  const Usage u = estimate_usage(401, 8);
  EXPECT_EQ(u.input_tokens, 101);
  EXPECT_EQ(u.output_tokens, 2);
  const Cost c = cost_of(kSonnet, u, /*estimated=*/true);
  EXPECT_TRUE(c.estimated);
  EXPECT_EQ(c.nano_usd, 101 * 3'000 + 2 * 15'000);
}

TEST(PriceTable, ParsesDefaultsOverridesPrefixesAndBedrockRegions) {
  auto t = PriceTable::parse_yaml(R"(
prices_as_of: "2025-08-15"
models:
  gpt-4o: {input: "2.50", output: "10.00", cached_input: "1.25"}
  gpt-4o-mini-*: {input: 0.15, output: 0.60}
  gpt-4o-*: {input: "9", output: "9"}
  anthropic.claude-3-7-sonnet-20250219-v1:0: {input: "3", output: "15", cached_input: "0.3", cache_write: "3.75"}
targets:
  azure-east:
    gpt-4o: {input: "2.75", output: "11"}
)");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->as_of(), "2025-08-15");
  auto p = t->find("gpt-4o");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->cached_input, 1'250'000'000);
  EXPECT_EQ(p->cache_write, 2'500'000'000);  // defaults to input
  auto mini = t->find("gpt-4o-mini-2024-07-18");
  ASSERT_TRUE(mini);
  EXPECT_EQ(mini->input, 150'000'000);  // longest prefix wins over gpt-4o-*
  EXPECT_EQ(mini->cached_input, 150'000'000);
  EXPECT_EQ(t->find("gpt-4o-2099-01-01")->input, 9'000'000'000);
  EXPECT_EQ(t->find("gpt-4o", "azure-east")->input, 2'750'000'000);
  EXPECT_EQ(t->find("gpt-4o", "other-target")->input, 2'500'000'000);
  EXPECT_EQ(t->find("gpt-4o-mini-x", "azure-east")->input, 150'000'000);  // falls back
  auto bedrock = t->find("us.anthropic.claude-3-7-sonnet-20250219-v1:0");
  ASSERT_TRUE(bedrock);
  EXPECT_EQ(bedrock->cache_write, 3'750'000'000);
  EXPECT_FALSE(t->find("unknown-model"));
}

TEST(PriceTable, RejectsBadFiles) {
  EXPECT_FALSE(PriceTable::parse_yaml("models: [1, 2]"));
  EXPECT_FALSE(PriceTable::parse_yaml("models:\n  m: {input: '1'}\n"));  // no output
  EXPECT_FALSE(PriceTable::parse_yaml("models:\n  m: {input: 'one', output: '1'}\n"));
  EXPECT_FALSE(PriceTable::parse_yaml("models: {m: {input: 1, output: 2}"));
  EXPECT_FALSE(PriceTable::parse_yaml("just text"));
}

TEST(PriceTable, ShippedDefaultsCoverTheCommonModels) {
  auto t = PriceTable::load_file(BULWARK_DEFAULT_PRICES);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE(t->as_of().empty());
  for (const char* m : {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
                        "claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022", "claude-3-7-sonnet-20250219",
                        "claude-sonnet-4-20250514", "claude-opus-4-20250514",
                        "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-7-sonnet-20250219-v1:0",
                        "us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-opus-4-20250514-v1:0",
                        "meta.llama3-8b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0",
                        "amazon.titan-text-express-v1", "amazon.titan-text-lite-v1", "amazon.nova-micro-v1:0",
                        "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0"}) {
    auto p = t->find(m);
    ASSERT_TRUE(p) << m;
    EXPECT_GT(p->input, 0) << m;
    EXPECT_GE(p->output, p->input) << m;
    EXPECT_LE(p->cached_input, p->input) << m;
    EXPECT_GE(p->cache_write, p->input) << m;
  }
  EXPECT_EQ(t->find("gpt-4o-mini")->input, 150'000'000);
  EXPECT_EQ(t->find("anthropic.claude-sonnet-4-20250514-v1:0")->cache_write, 3'750'000'000);
}

}  // namespace
}  // namespace bulwark::accounting
