// api/openai/text: what the policy reads from OpenAI-form chat bodies and writes back, for
// tool-call arguments and reasoning: the request's history, whole answers and stream
// chunks; the raw fast path agreeing with the exact path on them; and a redacted
// arguments string still translating to an Anthropic caller's tool_use input.
#include "api/openai/text.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/anthropic/messages.hpp"
#include "api/openai/translate.hpp"
#include "guard_steps.hpp"
#include "policy/evaluate.hpp"
#include "policy/stream_redactor.hpp"

namespace oa = bulwark::api::openai;
namespace an = bulwark::api::anthropic;
namespace cn = bulwark::api::canonical;
namespace bj = boost::json;
using namespace bulwark::policy;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

const RequestFacts kFacts{"gpt-4o-mini", 100, 256};

// e-mail and phone redacted, card blocked.
PolicyProfile mail_and_card() {
  PolicySpec spec;
  spec.id = "tools";
  spec.detectors[PiiKind::email] = Action::redact;
  spec.detectors[PiiKind::phone] = Action::redact;
  spec.detectors[PiiKind::card] = Action::block;
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

PolicyProfile redact_all() {
  PolicySpec spec;
  spec.id = "all";
  for (PiiKind k : kAllPiiKinds) spec.detectors[k] = Action::redact;
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

// A request whose history has an assistant turn with tool calls (two, plus a legacy
// function_call, which an OpenAI upstream is passed as sent; the translation to other
// formats refuses it) and the tool's result.
std::string history(std::string_view args0, std::string_view args1 = R"({"q":"weather"})", bool legacy = true) {
  bj::object first{{"role", "user"}, {"content", "Book it."}};
  bj::array calls;
  calls.push_back(bj::object{{"id", "call_1"}, {"type", "function"}, {"function", bj::object{{"name", "pay"}, {"arguments", args0}}}});
  calls.push_back(bj::object{{"id", "call_2"}, {"type", "function"}, {"function", bj::object{{"name", "search"}, {"arguments", args1}}}});
  bj::object assistant{{"role", "assistant"}, {"content", "On it."}, {"tool_calls", std::move(calls)}};
  if (legacy) assistant["function_call"] = bj::object{{"name", "legacy"}, {"arguments", R"({"x":1})"}};
  bj::object tool{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "done"}};
  return bj::serialize(bj::object{{"model", "gpt-4o-mini"},
                                  {"messages", bj::array{std::move(first), std::move(assistant), std::move(tool)}}});
}

using bulwark::test::Guarded;
Guarded guard_input(const PolicyProfile& p, const std::string& body) { return bulwark::test::guard_input(p, body, kFacts); }
using bulwark::test::guard_answer;

// The exact path's verdict alone: does any part hold a finding?
bool exact_finds_input(const PolicyProfile& p, const std::string& body) {
  auto texts = oa::request_texts(body);
  EXPECT_TRUE(texts.has_value());
  return !evaluate_input(p, texts->texts, kFacts, texts->uninspectable, texts->json).hits.empty();
}

bool exact_finds_output(const PolicyProfile& p, const std::string& body) {
  auto texts = oa::answer_texts(body);
  EXPECT_TRUE(texts.has_value());
  for (std::size_t i = 0; i < texts->texts.size(); ++i) {
    const bool json = std::ranges::binary_search(texts->json, i);
    if (!evaluate_output(p, texts->texts[i], json ? TextForm::json : TextForm::plain).hits.empty()) return true;
  }
  return false;
}

// An answer whose message carries content, reasoning and tool calls.
std::string answer(std::string_view args, std::string_view reasoning = "Think first.", std::string_view content = "Sending.") {
  bj::object message{{"role", "assistant"}, {"content", content}, {"reasoning_content", reasoning},
                     {"thinking_blocks", bj::array{bj::object{{"type", "thinking"}, {"thinking", reasoning}, {"signature", "c2ln"}}}},
                     {"tool_calls", bj::array{bj::object{{"id", "call_9"}, {"type", "function"},
                                                         {"function", bj::object{{"name", "send_email"}, {"arguments", args}}}}}}};
  return bj::serialize(bj::object{{"id", "chatcmpl-1"}, {"object", "chat.completion"}, {"model", "m"},
                                  {"choices", bj::array{bj::object{{"index", 0}, {"message", std::move(message)}, {"finish_reason", "tool_calls"}}}}});
}

const bj::value& call_arguments(const bj::value& message, std::size_t i = 0) {
  return message.at("tool_calls").at(i).at("function").at("arguments");
}

}  // namespace

// ---- requests ----------------------------------------------------------------------------

TEST(OpenAIText, RequestTextsReadToolCallArgumentsInDocumentOrder) {
  auto texts = oa::request_texts(history(R"({"card":"4111 1111 1111 1111"})"));
  ASSERT_TRUE(texts.has_value());
  EXPECT_THAT(texts->texts, ElementsAre("Book it.", "On it.", R"({"card":"4111 1111 1111 1111"})", R"({"q":"weather"})",
                                        R"({"x":1})", "done"));
  EXPECT_THAT(texts->json, ElementsAre(2U, 3U, 4U));
  EXPECT_TRUE(texts->uninspectable.empty());
  // A message without content (an assistant turn that only calls tools) and calls that
  // are not objects or carry no arguments string.
  auto sparse = oa::request_texts(R"({"messages":[{"role":"assistant","content":null,"tool_calls":[7,{"function":{"name":"f"}},)"
                                  R"({"function":{"arguments":{"not":"a string"}}},{"function":{"arguments":"{\"a\":\"b\"}"}}]}]})");
  ASSERT_TRUE(sparse.has_value());
  EXPECT_THAT(sparse->texts, ElementsAre(R"({"a":"b"})"));
  EXPECT_THAT(sparse->json, ElementsAre(0U));
}

TEST(OpenAIText, WithRequestTextsWritesEachTextBackInTheSameOrder) {
  const std::string body = history(R"({"to":"a@b.c"})");
  auto texts = oa::request_texts(body);
  ASSERT_TRUE(texts.has_value());
  std::vector<std::string> marked;
  for (std::size_t i = 0; i < texts->texts.size(); ++i)
    marked.push_back(std::ranges::binary_search(texts->json, i) ? R"({"n":)" + std::to_string(i) + "}" : "T" + std::to_string(i));
  auto rewritten = oa::with_request_texts(body, marked);
  ASSERT_TRUE(rewritten.has_value());
  // The reading walk sees exactly what the writing walk wrote.
  auto again = oa::request_texts(*rewritten);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->texts, marked);
  const bj::value doc = bj::parse(*rewritten);
  const bj::value& assistant = doc.at("messages").at(1);
  EXPECT_EQ(call_arguments(assistant, 0), R"({"n":2})");
  EXPECT_EQ(call_arguments(assistant, 1), R"({"n":3})");
  EXPECT_EQ(assistant.at("function_call").at("arguments"), R"({"n":4})");
  EXPECT_EQ(assistant.at("tool_calls").at(1).at("id"), "call_2");  // the rest is kept
  EXPECT_EQ(doc.at("messages").at(2).at("content"), "T5");
  // One text too few is refused.
  marked.pop_back();
  EXPECT_FALSE(oa::with_request_texts(body, marked).has_value());
}

TEST(OpenAIText, CardInAnEarlierToolCallBlocksTheRequest) {
  const Guarded g = guard_input(mail_and_card(), history(R"({"card":"4111 1111 1111 1111","amount":12})"));
  ASSERT_TRUE(g.decision.blocked());
  EXPECT_FALSE(g.raw);
  EXPECT_EQ(g.decision.detector, "card");
  EXPECT_THAT(block_error(g.decision, false).message, Not(HasSubstr("4111")));
  // Written as a JSON number, too.
  EXPECT_TRUE(guard_input(mail_and_card(), history(R"({"card":4111111111111111})")).decision.blocked());
}

TEST(OpenAIText, EmailInAnEarlierToolCallIsRedactedAndTheArgumentsStayJson) {
  const Guarded g = guard_input(mail_and_card(), history(R"({"to":"jane.doe@example.com","body":"Hi,\nCall +1 415-555-2671"})",
                                                         R"({"q":"weather"})", false));
  ASSERT_EQ(g.decision.verdict, Verdict::redacted);
  EXPECT_EQ(g.decision.redactions(PiiKind::email), 1U);
  EXPECT_EQ(g.decision.redactions(PiiKind::phone), 1U);
  const bj::value doc = bj::parse(g.body);
  const std::string_view args = call_arguments(doc.at("messages").at(1)).as_string();
  const bj::value parsed = bj::parse(args);  // still JSON
  EXPECT_EQ(parsed.at("to"), "[REDACTED:EMAIL]");
  EXPECT_EQ(parsed.at("body"), "Hi,\nCall [REDACTED:PHONE]");
  EXPECT_EQ(g.body.find("jane.doe"), std::string::npos);
  // The gateway decodes the redacted body again (guard_input), and an Anthropic target
  // gets the arguments as tool_use input.
  auto req = oa::decode_request(g.body);
  ASSERT_TRUE(req.has_value()) << g.body;
  auto upstream = an::encode_request(*req, "claude");
  ASSERT_TRUE(upstream.has_value());
  const bj::value sent = bj::parse(*upstream);
  const bj::value& tool_use = sent.at("messages").at(1).at("content").at(1);
  EXPECT_EQ(tool_use.at("type"), "tool_use");
  EXPECT_EQ(tool_use.at("input").at("to"), "[REDACTED:EMAIL]");
}

TEST(OpenAIText, AnthropicCallersToolUseInputReachesThePolicy) {
  // An Anthropic caller's tool_use input becomes arguments in the gateway's OpenAI form.
  const std::string anthropic =
      R"({"model":"claude","max_tokens":64,"messages":[{"role":"user","content":"Mail her."},)"
      R"({"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"send","input":{"to":"jane.doe@example.com","n":[1,2]}}]},)"
      R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sent"}]}]})";
  auto req = an::decode_request(anthropic);
  ASSERT_TRUE(req.has_value());
  auto body = oa::encode_request(*req, "m", oa::RequestOptions{true});
  ASSERT_TRUE(body.has_value());
  const Guarded g = guard_input(mail_and_card(), *body);
  ASSERT_EQ(g.decision.verdict, Verdict::redacted) << *body;
  auto back = oa::decode_request(g.body);
  ASSERT_TRUE(back.has_value());
  const auto& call = std::get<cn::ToolCallPart>(back->messages.at(1).content.at(0));
  EXPECT_EQ(bj::parse(call.arguments), bj::parse(R"({"to":"[REDACTED:EMAIL]","n":[1,2]})"));
}

// ---- the raw fast path agrees with the exact path ---------------------------------------

TEST(OpenAIText, RawPathAndExactPathAgreeOnToolCallArguments) {
  const PolicyProfile p = redact_all();
  const char* args[] = {
      R"({"to":"jane.doe@example.com"})",           // PII
      R"({"card":4111111111111111})",               // PII in a number
      R"({"note":"line\nbreak jane.doe@example.com"})",  // PII after an inner escape
      R"({"ip":"10.0.0.7","q":"\"quoted\""})",      // PII next to escaped quotes
      R"({"q":"weather in Paris","days":3})",       // clean
      R"({"path":"C:\\temp\\x","q":"\"hi\""})",     // clean, inner escapes
      R"({"mail":"jane.doe\u0040example.com"})",    // an escaped '@': the exact path decodes it
      R"({"v":"1.2.3.4"})",                         // an address
  };
  for (const char* a : args) {
    const std::string body = history(a, R"({"q":"x"})");
    const bool raw_clean = evaluate_input_raw(p, body, kFacts).has_value();
    EXPECT_EQ(raw_clean, !exact_finds_input(p, body)) << a;
    const std::string ans = answer(a);
    EXPECT_EQ(evaluate_output_raw(p, ans).has_value(), !exact_finds_output(p, ans)) << a;
  }
  // What the escape spells is found, and redacted in the arguments' own JSON.
  {
    std::string spelled = R"({"mail":"jane.doe\u0040example.com","n":"\u00e9\u0022"})";
    const PolicyDecision d = evaluate_output(p, spelled, TextForm::json);
    EXPECT_EQ(d.verdict, Verdict::redacted);
    EXPECT_EQ(spelled, R"({"mail":"[REDACTED:EMAIL]","n":"\u00e9\u0022"})");
  }
  // The raw path used to say "clean" on arguments: now it cannot.
  EXPECT_FALSE(evaluate_input_raw(p, history(R"({"to":"jane.doe@example.com"})"), kFacts).has_value());
  EXPECT_TRUE(evaluate_input_raw(p, history(R"({"q":"weather"})"), kFacts).has_value());
  // Reasoning in answers, too.
  EXPECT_FALSE(evaluate_output_raw(p, answer("{}", "Her address is jane.doe@example.com.")).has_value());
  EXPECT_TRUE(evaluate_output_raw(p, answer("{}", "Nothing personal here.")).has_value());
}

// ---- answers -----------------------------------------------------------------------------

TEST(OpenAIText, AnswerTextsReadReasoningAndToolCallArguments) {
  auto texts = oa::answer_texts(answer(R"({"to":"x"})", "Plan: mail."));
  ASSERT_TRUE(texts.has_value());
  EXPECT_THAT(texts->texts, ElementsAre("Sending.", "Plan: mail.", "Plan: mail.", R"({"to":"x"})"));
  EXPECT_THAT(texts->json, ElementsAre(3U));
}

TEST(OpenAIText, ToolCallArgumentsAndReasoningInAnAnswerAreRedacted) {
  const Guarded g = guard_answer(mail_and_card(), answer(R"({"to":"jane.doe@example.com","subject":"Hi"})",
                                                         "The user is jane.doe@example.com."));
  ASSERT_EQ(g.decision.verdict, Verdict::redacted);
  EXPECT_FALSE(g.raw);
  const bj::value message = bj::parse(g.body).at("choices").at(0).at("message");
  EXPECT_EQ(bj::parse(call_arguments(message).as_string()), bj::parse(R"({"to":"[REDACTED:EMAIL]","subject":"Hi"})"));
  EXPECT_EQ(message.at("reasoning_content"), "The user is [REDACTED:EMAIL].");
  EXPECT_EQ(message.at("thinking_blocks").at(0).at("thinking"), "The user is [REDACTED:EMAIL].");
  EXPECT_EQ(message.at("thinking_blocks").at(0).at("signature"), "c2ln");
  EXPECT_EQ(message.at("content"), "Sending.");
  EXPECT_EQ(g.body.find("jane.doe"), std::string::npos);
  // A card in the arguments blocks the answer.
  const Guarded blocked = guard_answer(mail_and_card(), answer(R"({"card":"4111-1111-1111-1111"})"));
  ASSERT_TRUE(blocked.decision.blocked());
  EXPECT_EQ(blocked.decision.detector, "card");
}

TEST(OpenAIText, RedactedArgumentsTranslateToAnthropicToolUseInput) {
  // The pipeline redacts the OpenAI-form answer; the ingress then writes it for an
  // Anthropic caller (pipeline/ingress.cpp, Translating::send).
  const Guarded g = guard_answer(mail_and_card(), answer(R"({"to":"jane.doe@example.com","cc":4111})"));
  ASSERT_EQ(g.decision.verdict, Verdict::redacted);
  auto resp = oa::decode_response(g.body);
  ASSERT_TRUE(resp.has_value());
  const bj::value out = bj::parse(an::encode_response(*resp, 1));
  const auto& content = out.at("content").as_array();
  const auto tool_use = std::ranges::find_if(content, [](const bj::value& b) { return b.at("type") == "tool_use"; });
  ASSERT_NE(tool_use, content.end()) << out;
  EXPECT_EQ(tool_use->at("input"), bj::parse(R"({"to":"[REDACTED:EMAIL]","cc":4111})"));
  EXPECT_EQ(tool_use->at("name"), "send_email");
}

// ---- stream chunks -----------------------------------------------------------------------

TEST(OpenAIText, DeltaToolArgumentsReadAndWriteBack) {
  const std::string chunk =
      R"({"id":"chatcmpl-7","object":"chat.completion.chunk","created":5,"model":"m","choices":[)"
      R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"send","arguments":"{\"to\":\"jane."}},)"
      R"({"index":1,"function":{"arguments":"{}"}}]},"finish_reason":null},)"
      R"({"index":2,"delta":{"content":"hi","tool_calls":[{"function":{"arguments":"x"}},{"function":{"name":"no args"}}]}}]})";
  auto c = oa::DeltaChunk::read(chunk);
  ASSERT_TRUE(c.has_value());
  const std::vector<oa::DeltaArguments>* read = &c->arguments;
  ASSERT_EQ(read->size(), 3U);
  EXPECT_EQ((*read)[0].choice, 0U);
  EXPECT_EQ((*read)[0].tool, 0U);
  EXPECT_EQ((*read)[0].text, R"({"to":"jane.)");
  EXPECT_EQ((*read)[1].tool, 1U);
  EXPECT_EQ((*read)[2].choice, 2U);
  EXPECT_EQ((*read)[2].tool, 0U);  // no index: its position
  std::vector<oa::DeltaArguments> changed = *read;
  changed[0].text = R"({"to":")";
  changed[2].text = "y";
  c->arguments = changed;
  const std::optional<std::string> written = c->write();
  auto reread = oa::DeltaChunk::read(*written);
  ASSERT_TRUE(reread.has_value());
  const std::vector<oa::DeltaArguments>* again = &reread->arguments;
  ASSERT_EQ(again->size(), 3U);
  EXPECT_EQ((*again)[0].text, R"({"to":")");
  EXPECT_EQ((*again)[1].text, "{}");
  EXPECT_EQ((*again)[2].text, "y");
  const bj::value doc = bj::parse(*written);
  const bj::value& call = doc.at("choices").at(0).at("delta").at("tool_calls").at(0);
  EXPECT_EQ(call.at("id"), "call_1");
  EXPECT_EQ(call.at("function").at("name"), "send");
  EXPECT_EQ(doc.at("choices").at(1).at("delta").at("content"), "hi");
  EXPECT_EQ(doc.at("id"), "chatcmpl-7");
  // Content and reasoning readers do not see arguments, nor the other way round.
  EXPECT_THAT(*oa::delta_texts(chunk), ElementsAre(::testing::Field(&oa::DeltaText::text, "hi")));
  EXPECT_TRUE(oa::DeltaChunk::read(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})")->arguments.empty());
}

// The deprecated delta.function_call streams arguments too: read as tool kFunctionCall,
// after the choice's tool calls, written back in place, and flushed in its own form.
TEST(OpenAIText, DeltaLegacyFunctionCallArgumentsReadAndWriteBack) {
  const std::string chunk =
      R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"function_call":{"name":"send","arguments":"{\"to\":\"jane."}}},)"
      R"({"index":1,"delta":{"function_call":{"name":"only a name"}}}]})";
  auto c = oa::DeltaChunk::read(chunk);
  ASSERT_TRUE(c.has_value());
  std::vector<oa::DeltaArguments>* read = &c->arguments;
  ASSERT_EQ(read->size(), 1U);
  EXPECT_EQ((*read)[0].choice, 0U);
  EXPECT_EQ((*read)[0].tool, oa::kFunctionCall);
  EXPECT_EQ((*read)[0].text, R"({"to":"jane.)");
  (*read)[0].text = R"({"to":")";
  const std::optional<std::string> written = c->write();
  const bj::value doc = bj::parse(*written);
  EXPECT_EQ(doc.at("choices").at(0).at("delta").at("function_call").at("arguments"), R"({"to":")");
  EXPECT_EQ(doc.at("choices").at(0).at("delta").at("function_call").at("name"), "send");
  const std::string flushed = oa::tool_arguments_chunk("chatcmpl-x", "m", 0, oa::kFunctionCall, R"(doe"})");
  const bj::value f = bj::parse(flushed);
  EXPECT_EQ(f.at("choices").at(0).at("delta").at("function_call").at("arguments"), R"(doe"})");
  EXPECT_FALSE(f.at("choices").at(0).at("delta").as_object().contains("tool_calls"));
  auto again = oa::DeltaChunk::read(flushed);
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(again->arguments.size(), 1U);
  EXPECT_EQ(again->arguments[0].tool, oa::kFunctionCall);
}

// One parse reads every channel, and writes all three back in one document.
TEST(OpenAIText, DeltaChunkReadsAndWritesEveryChannelAtOnce) {
  const std::string chunk =
      R"({"id":"chatcmpl-7","choices":[{"index":0,"delta":{"content":"mail jane","reasoning_content":"think of jane",)"
      R"("tool_calls":[{"index":0,"function":{"arguments":"{\"to\":\"jane"}}]}},)"
      R"({"index":1,"delta":{"function_call":{"arguments":"{}"}}}],"usage":null})";
  auto c = oa::DeltaChunk::read(chunk);
  ASSERT_TRUE(c.has_value());
  const auto same = [](const auto& a, const auto& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].text, b[i].text);
  };
  same(c->content, *oa::delta_texts(chunk));
  ASSERT_EQ(c->reasoning.size(), 1U);
  EXPECT_EQ(c->reasoning[0].text, "think of jane");
  ASSERT_EQ(c->arguments.size(), 2U);
  EXPECT_EQ(c->arguments[0].text, R"({"to":"jane)");
  EXPECT_EQ(c->arguments[1].text, "{}");
  EXPECT_EQ(c->arguments[1].tool, oa::kFunctionCall);
  c->content[0].text = "mail [X]";
  c->reasoning[0].text = "think of [X]";
  c->arguments[0].text = R"({"to":"[X])";
  const bj::value doc = bj::parse(c->write());
  const bj::value& delta = doc.at("choices").at(0).at("delta");
  EXPECT_EQ(delta.at("content"), "mail [X]");
  EXPECT_EQ(delta.at("reasoning_content"), "think of [X]");
  EXPECT_EQ(delta.at("tool_calls").at(0).at("function").at("arguments"), R"({"to":"[X])");
  EXPECT_EQ(doc.at("choices").at(1).at("delta").at("function_call").at("arguments"), "{}");
  EXPECT_EQ(doc.at("id"), "chatcmpl-7");
  EXPECT_FALSE(oa::DeltaChunk::read(R"({"choices":[)").has_value());
}

TEST(OpenAIText, DeltaReasoningReadAndWriteBack) {
  const std::string chunk = R"({"choices":[{"index":0,"delta":{"reasoning_content":"mail jane.doe@example.com"}}]})";
  auto c = oa::DeltaChunk::read(chunk);
  ASSERT_TRUE(c.has_value());
  std::vector<oa::DeltaText>* read = &c->reasoning;
  ASSERT_EQ(read->size(), 1U);
  EXPECT_EQ((*read)[0].text, "mail jane.doe@example.com");
  (*read)[0].text = "mail [REDACTED:EMAIL]";
  const std::optional<std::string> written = c->write();
  EXPECT_EQ(bj::parse(*written).at("choices").at(0).at("delta").at("reasoning_content"), "mail [REDACTED:EMAIL]");
  EXPECT_TRUE(oa::delta_texts(chunk)->empty());
}

TEST(OpenAIText, FlushChunksCarryTheirTextWhereTheReadersLook) {
  const std::string args = oa::tool_arguments_chunk("chatcmpl-x", "m", 1, 2, R"(oe@example.com"})");
  auto c = oa::DeltaChunk::read(args);
  ASSERT_TRUE(c.has_value());
  const std::vector<oa::DeltaArguments>* read = &c->arguments;
  ASSERT_EQ(read->size(), 1U);
  EXPECT_EQ((*read)[0].choice, 1U);
  EXPECT_EQ((*read)[0].tool, 2U);
  EXPECT_EQ((*read)[0].text, R"(oe@example.com"})");
  const std::string reasoning = oa::reasoning_chunk("chatcmpl-x", "m", 0, "tail");
  EXPECT_EQ(oa::DeltaChunk::read(reasoning)->reasoning.at(0).text, "tail");
  EXPECT_EQ(bj::parse(reasoning).at("object"), "chat.completion.chunk");
}

// A streamed call's arguments through a JSON-form StreamRedactor: the address split over
// two fragments is caught, and the fragments relayed add up to the one-shot redaction.
TEST(OpenAIText, StreamedArgumentsSplitAcrossFragmentsAreRedacted) {
  const PolicyProfile p = mail_and_card();
  const std::string whole = R"({"to":"jane.doe@example.com","body":"Hi"})";
  std::string one_shot = whole;
  evaluate_output(p, one_shot, TextForm::json);
  for (std::size_t cut = 1; cut < whole.size(); ++cut) {
    StreamRedactor r(p, TextForm::json);
    std::string relayed;
    ASSERT_EQ(r.feed(std::string_view(whole).substr(0, cut), relayed), StreamStatus::ok);
    ASSERT_EQ(r.feed(std::string_view(whole).substr(cut), relayed), StreamStatus::ok);
    ASSERT_EQ(r.finish(relayed), StreamStatus::ok);
    ASSERT_EQ(relayed, one_shot) << "cut at " << cut;
  }
  EXPECT_EQ(bj::parse(one_shot), bj::parse(R"({"to":"[REDACTED:EMAIL]","body":"Hi"})"));
}
