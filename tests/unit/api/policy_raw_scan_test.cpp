// policy/evaluate's raw fast paths (evaluate_input_raw, evaluate_output_raw) against the
// exact path over api/openai/text, on generated OpenAI-form requests and answers: random
// shapes (string or part-list content, tool calls, reasoning), random whitespace between
// tokens, random escapes (\n, \/, \", \\, \u), PII and PII-like text in read and unread
// places. Two properties:
//  - sound: the raw path never calls clean what the exact path finds something in;
//  - useful: without a \u escape, a body the exact path finds clean the raw path does too
//    (else the fast path would quietly stop being taken).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "api/openai/text.hpp"
#include "policy/evaluate.hpp"

namespace oa = bulwark::api::openai;
namespace bj = boost::json;
using namespace bulwark::policy;

namespace {

const RequestFacts kFacts{"gpt-4o-mini", 100, 256};

PolicyProfile redact_all() {
  PolicySpec spec;
  spec.id = "all";
  for (PiiKind k : kAllPiiKinds) spec.detectors[k] = Action::redact;
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

// Text a detector takes, text that only looks close (digits, '@', ':', long runs, soft
// joins between capitals and digits), and plain prose.
const std::string_view kTexts[] = {
    "Say hello in one short sentence.",
    "You are terse.",
    "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16.",
    "I Am A B C D E F G H",
    "internationalization",
    "Meet at 10:30 on 2024-05-01, room 12.",
    "see https://example.com/docs/page",
    "x@y",
    "",
    "jane.doe@example.com",
    "call +44 20 7946 0958 now",
    "card 4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "ssn 123-45-6789",
    "host 192.168.10.20",
    "AKIAIOSFODNN7EXAMPLE",
};

struct Gen {
  std::mt19937 rng;
  bool hard = false;  // a \u escape was written

  explicit Gen(unsigned seed) : rng(seed) {}
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  bool coin(unsigned in = 2) { return pick(in) == 0; }

  std::string text() {
    std::string t(kTexts[pick(std::size(kTexts))]);
    if (coin(4)) t += "\nsecond line";
    if (coin(6)) t += " \"quoted\" and back\\slash";
    if (coin(8)) t.insert(0, std::string(kTexts[pick(std::size(kTexts))]) + " ");
    return t;
  }
  void ws(std::string& out) {
    static constexpr std::string_view kWs[] = {"", "", "", " ", "\n  ", "\t"};
    out += kWs[pick(std::size(kWs))];
  }
  void string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '/' && coin(3)) {
        out += "\\/";
      } else if (u < 0x20 || (c == '@' && coin(12))) {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 15];
        hard = true;
      } else {
        out += c;
      }
    }
    out += '"';
  }
  void value(std::string& out, const bj::value& v) {
    switch (v.kind()) {
      case bj::kind::object: {
        out += '{';
        bool first = true;
        for (const auto& kv : v.get_object()) {
          if (!first) out += ',';
          first = false;
          ws(out);
          string(out, kv.key());
          ws(out);
          out += ':';
          ws(out);
          value(out, kv.value());
          ws(out);
        }
        out += '}';
        break;
      }
      case bj::kind::array: {
        out += '[';
        bool first = true;
        for (const auto& x : v.get_array()) {
          if (!first) out += ',';
          first = false;
          ws(out);
          value(out, x);
          ws(out);
        }
        out += ']';
        break;
      }
      case bj::kind::string: string(out, v.get_string()); break;
      default: out += bj::serialize(v);
    }
  }
  std::string write(const bj::value& v) {
    hard = false;
    std::string out;
    ws(out);
    value(out, v);
    ws(out);
    return out;
  }

  bj::value content() {
    if (coin(3)) {
      bj::array parts;
      for (std::size_t i = 0, n = 1 + pick(3); i < n; ++i) parts.push_back(bj::object{{"type", "text"}, {"text", text()}});
      return parts;
    }
    return bj::value(text());
  }
  bj::array tool_calls() {
    bj::array calls;
    for (std::size_t i = 0, n = 1 + pick(2); i < n; ++i) {
      std::string args = bj::serialize(bj::object{{"to", text()}, {"n", static_cast<std::int64_t>(pick(100))}});
      calls.push_back(bj::object{{"id", "call_" + std::to_string(i)}, {"type", "function"},
                                 {"function", bj::object{{"name", "send"}, {"arguments", args}}}});
    }
    return calls;
  }
  bj::value request() {
    bj::array messages;
    for (std::size_t i = 0, n = 1 + pick(4); i < n; ++i) {
      static constexpr std::string_view kRoles[] = {"system", "user", "assistant", "tool"};
      const std::string_view role = kRoles[pick(std::size(kRoles))];
      bj::object m{{"role", role}, {"content", content()}};
      if (role == "assistant" && coin(2)) m["tool_calls"] = tool_calls();
      if (role == "assistant" && coin(4)) m["reasoning_content"] = text();
      if (role == "assistant" && coin(6))
        m["thinking_blocks"] = bj::array{bj::object{{"type", "thinking"}, {"thinking", text()}, {"signature", "c2ln"}}};
      if (role == "tool") m["tool_call_id"] = "call_0";
      if (coin(5)) m["name"] = text();  // read by no rule
      messages.push_back(std::move(m));
    }
    bj::object body{{"model", "gpt-4o-mini"}, {"messages", std::move(messages)}};
    if (coin()) body["max_tokens"] = 16;
    if (coin()) body["temperature"] = 0.5;
    if (coin(3)) body["user"] = text();  // read by no rule
    if (coin(4)) body["metadata"] = bj::object{{"ticket", text()}, {"tier", "gold"}};
    return body;
  }
  bj::value answer() {
    bj::object message{{"role", "assistant"}, {"content", coin(5) ? bj::value(nullptr) : bj::value(text())}, {"refusal", nullptr}};
    if (coin(3)) message["tool_calls"] = tool_calls();
    if (coin(4)) message["reasoning_content"] = text();
    bj::array choices;
    for (std::size_t i = 0, n = 1 + pick(2); i < n; ++i)
      choices.push_back(bj::object{{"index", i}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", "stop"}});
    return bj::object{{"id", "chatcmpl-b3f2af6d0fc710c5"}, {"object", "chat.completion"}, {"created", 1795554675},
                      {"model", "gpt-4o-mini"}, {"choices", std::move(choices)},
                      {"usage", bj::object{{"prompt_tokens", 9}, {"completion_tokens", 16}, {"total_tokens", 25}}},
                      {"system_fingerprint", "fp_bulwark_mock"}};
  }
};

bool clean(const PolicyDecision& d) { return !d.blocked() && d.hits.empty() && d.verdict == Verdict::allow; }

}  // namespace

TEST(EvaluateRawAgainstExact, RequestsAreNeverCalledCleanWrongly) {
  const PolicyProfile p = redact_all();
  Gen gen(20261124);
  int raw_taken = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string body = gen.write(gen.request());
    auto texts = oa::request_texts(body);
    ASSERT_TRUE(texts.has_value()) << body;
    const PolicyDecision exact = evaluate_input(p, texts->texts, kFacts, texts->uninspectable, texts->json);
    const auto raw = evaluate_input_raw(p, body, kFacts);
    if (raw) {
      ++raw_taken;
      ASSERT_TRUE(clean(*raw)) << body;
      ASSERT_TRUE(clean(exact)) << body;
    } else if (!gen.hard) {
      ASSERT_FALSE(clean(exact)) << "the raw path gave up on a clean body without \\u:\n" << body;
    }
  }
  EXPECT_GT(raw_taken, 300);  // the generator makes clean bodies often enough to matter
}

TEST(EvaluateRawAgainstExact, AnswersAreNeverCalledCleanWrongly) {
  const PolicyProfile p = redact_all();
  Gen gen(7);
  int raw_taken = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string body = gen.write(gen.answer());
    auto texts = oa::answer_texts(body);
    ASSERT_TRUE(texts.has_value()) << body;
    bool exact_clean = true;
    for (std::size_t t = 0; t < texts->texts.size(); ++t) {
      const bool json = std::find(texts->json.begin(), texts->json.end(), t) != texts->json.end();
      exact_clean = exact_clean && clean(evaluate_output(p, texts->texts[t], json ? TextForm::json : TextForm::plain));
    }
    const auto raw = evaluate_output_raw(p, body);
    if (raw) {
      ++raw_taken;
      ASSERT_TRUE(clean(*raw)) << body;
      ASSERT_TRUE(exact_clean) << body;
    } else if (!gen.hard) {
      ASSERT_FALSE(exact_clean) << "the raw path gave up on a clean answer without \\u:\n" << body;
    }
  }
  EXPECT_GT(raw_taken, 300);
}

// Strings the walk skips unread still move it on correctly: a quote inside a skipped
// string, escaped, hands the body to the careful walker instead of flipping which quotes
// open strings; a key the walk reads ahead of the escape check is re-read by it.
TEST(EvaluateRawAgainstExact, EscapesOutsideTheTextStillCount) {
  const PolicyProfile p = redact_all();
  // A skipped value holding \" then a text value with a card: not clean.
  EXPECT_FALSE(evaluate_input_raw(
      p, R"({"model":"m","user":"a \"b\" c","messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]})", kFacts));
  // The same with a clean text: clean, decided by the careful walker.
  EXPECT_TRUE(evaluate_input_raw(p, R"({"model":"m","user":"a \"b\" c","messages":[{"role":"user","content":"hello"}]})", kFacts));
  // A key spelled with \u, read ahead as a non-text key: the careful walker refuses it.
  EXPECT_FALSE(evaluate_input_raw(p, R"({"messages":[{"role":"user","cont\u0065nt":"jane.doe@example.com"}]})", kFacts));
  // A text value ending in an escaped backslash: its closing quote follows a backslash.
  EXPECT_TRUE(evaluate_input_raw(p, R"({"messages":[{"role":"user","content":"path C:\\"}]})", kFacts));
  EXPECT_FALSE(evaluate_input_raw(p, R"({"messages":[{"role":"user","content":"jane.doe@example.com \\"}]})", kFacts));
  // A document's markers, whatever spacing: the exact path decides.
  EXPECT_FALSE(evaluate_input_raw(p, R"({"messages":[{"role":"user","content":[{"type" : "file","file":{"file_data":"x"}}]}]})", kFacts));
  EXPECT_FALSE(evaluate_input_raw(p, R"({"messages":[{"role":"user","content":[{"file_data" :"x"}]}]})", kFacts));
}
