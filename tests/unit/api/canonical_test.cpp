#include <gtest/gtest.h>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/canonical/chat.hpp"
#include "api/canonical/ids.hpp"
#include "api/canonical/stream.hpp"
#include "api/openai/translate.hpp"

namespace cn = bulwark::api::canonical;
namespace oa = bulwark::api::openai;
namespace an = bulwark::api::anthropic;
namespace br = bulwark::api::bedrock;
using cn::StopReason;

TEST(CanonicalIds, GeneratedIdsAreDeterministicPerSeedAndStyled) {
  cn::IdSource a(42), b(42), c(43);
  const std::string first = a.next("msg_");
  EXPECT_EQ(first, b.next("msg_"));
  EXPECT_NE(first, c.next("msg_"));
  EXPECT_NE(first, a.next("msg_"));  // each call is fresh
  EXPECT_TRUE(first.starts_with("msg_"));
  EXPECT_EQ(first.size(), 4u + 24u);
}

TEST(CanonicalIds, RestyleSwapsKnownPrefixesAndKeepsTheRest) {
  cn::IdSource ids(1);
  EXPECT_EQ(cn::restyle_id("call_abc", "toolu_", ids), "toolu_abc");
  EXPECT_EQ(cn::restyle_id("toolu_abc", "call_", ids), "call_abc");
  EXPECT_EQ(cn::restyle_id("tooluse_abc", "call_", ids), "call_abc");  // longest prefix wins
  EXPECT_EQ(cn::restyle_id("toolu_abc", "tooluse_", ids), "tooluse_abc");
  EXPECT_EQ(cn::restyle_id("msg_01X", "chatcmpl-", ids), "chatcmpl-01X");
  EXPECT_EQ(cn::restyle_id("chatcmpl-9", "msg_", ids), "msg_9");
  EXPECT_EQ(cn::restyle_id("xyz", "call_", ids), "call_xyz");
  EXPECT_EQ(cn::restyle_id("call_same", "call_", ids), "call_same");
  EXPECT_TRUE(cn::restyle_id("", "call_", ids).starts_with("call_"));
  // The mapping is a bijection on the suffix, so a call id and its result id stay matched.
  EXPECT_EQ(cn::restyle_id(cn::restyle_id("call_q1", "toolu_", ids), "call_", ids), "call_q1");
}

TEST(CanonicalUsage, PromptCountsCacheReadsAndWrites) {
  const cn::Usage u{10, 5, 100, 20};
  EXPECT_EQ(u.prompt(), 130);
  EXPECT_EQ(u.total(), 135);
}

TEST(CanonicalStopReason, MapsBothWaysForEveryFormat) {
  struct Row {
    StopReason reason;
    std::string_view openai, anthropic, bedrock;
  };
  for (const Row& r : {Row{StopReason::end_turn, "stop", "end_turn", "end_turn"},
                       Row{StopReason::max_tokens, "length", "max_tokens", "max_tokens"},
                       Row{StopReason::stop_sequence, "stop", "stop_sequence", "stop_sequence"},
                       Row{StopReason::tool_use, "tool_calls", "tool_use", "tool_use"},
                       Row{StopReason::content_filter, "content_filter", "refusal", "content_filtered"},
                       Row{StopReason::refusal, "content_filter", "refusal", "content_filtered"},
                       Row{StopReason::guardrail, "content_filter", "refusal", "guardrail_intervened"}}) {
    EXPECT_EQ(oa::finish_reason(r.reason), r.openai) << cn::to_string(r.reason);
    EXPECT_EQ(an::stop_reason_name(r.reason), r.anthropic) << cn::to_string(r.reason);
    EXPECT_EQ(br::stop_reason_name(r.reason), r.bedrock) << cn::to_string(r.reason);
  }
  EXPECT_EQ(oa::stop_reason_from("stop"), StopReason::end_turn);
  EXPECT_EQ(oa::stop_reason_from("length"), StopReason::max_tokens);
  EXPECT_EQ(oa::stop_reason_from("tool_calls"), StopReason::tool_use);
  EXPECT_EQ(oa::stop_reason_from("function_call"), StopReason::tool_use);
  EXPECT_EQ(oa::stop_reason_from("content_filter"), StopReason::content_filter);
  EXPECT_EQ(an::stop_reason_from("end_turn"), StopReason::end_turn);
  EXPECT_EQ(an::stop_reason_from("max_tokens"), StopReason::max_tokens);
  EXPECT_EQ(an::stop_reason_from("stop_sequence"), StopReason::stop_sequence);
  EXPECT_EQ(an::stop_reason_from("tool_use"), StopReason::tool_use);
  EXPECT_EQ(an::stop_reason_from("refusal"), StopReason::refusal);
  EXPECT_EQ(an::stop_reason_from("pause_turn"), StopReason::end_turn);
  EXPECT_EQ(br::stop_reason_from("guardrail_intervened"), StopReason::guardrail);
  EXPECT_EQ(br::stop_reason_from("content_filtered"), StopReason::content_filter);
  EXPECT_EQ(br::stop_reason_from("tool_use"), StopReason::tool_use);
  EXPECT_EQ(br::stop_reason_from("stop_sequence"), StopReason::stop_sequence);
}

TEST(CanonicalResponseBuilder, FoldsAStreamIntoTheAnswer) {
  cn::ResponseBuilder b;
  b.add(cn::MessageStart{"msg_1", "m", cn::Usage{7, 0, 0, 0}});
  b.add(cn::TextDelta{0, "Hel"});
  b.add(cn::TextDelta{0, "lo"});
  b.add(cn::BlockStop{0});
  b.add(cn::ToolCallStart{1, "toolu_1", "get"});
  b.add(cn::ToolArgsDelta{1, "{\"a\""});
  b.add(cn::ToolArgsDelta{1, ":1}"});
  b.add(cn::BlockStop{1});
  b.add(cn::Ping{});
  b.add(cn::MessageDelta{StopReason::tool_use, {}, cn::Usage{7, 9, 1, 2}, 33});
  EXPECT_FALSE(b.stopped());
  b.add(cn::MessageStop{});
  ASSERT_TRUE(b.stopped());
  const cn::ChatResponse& r = b.response();
  EXPECT_EQ(r.id, "msg_1");
  ASSERT_EQ(r.content.size(), 2u);
  EXPECT_EQ(std::get<cn::TextPart>(r.content[0]).text, "Hello");
  EXPECT_EQ(std::get<cn::ToolCallPart>(r.content[1]).arguments, "{\"a\":1}");
  EXPECT_EQ(r.stop_reason, StopReason::tool_use);
  EXPECT_EQ(r.usage, (cn::Usage{7, 9, 1, 2}));
  EXPECT_EQ(r.latency_ms, 33);
  EXPECT_EQ(cn::text_of(r), "Hello");
}
