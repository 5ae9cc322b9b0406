// Redacting JSON text (TextForm::json, a tool call's arguments): the detectors find what
// they find in plain text, and every redaction leaves valid JSON valid, in one shot and
// streamed in any chunking.
#include "policy/json_text.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "policy/evaluate.hpp"
#include "policy/stream_redactor.hpp"

using namespace bulwark::policy;

namespace {

PolicyProfile redact_all() {
  PolicySpec spec;
  spec.id = "json";
  for (PiiKind k : kAllPiiKinds) spec.detectors[k] = Action::redact;
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

std::string redacted(std::string text, TextForm form = TextForm::json) {
  evaluate_output(redact_all(), text, form);
  return text;
}

bool valid_json(std::string_view text) {
  boost::system::error_code ec;
  (void)boost::json::parse(text, ec);
  return !ec;
}

std::string streamed(std::string_view text, std::size_t chunk) {
  StreamRedactor r(redact_all(), TextForm::json);
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += chunk) EXPECT_EQ(r.feed(text.substr(i, chunk), out), StreamStatus::ok);
  EXPECT_EQ(r.finish(out), StreamStatus::ok);
  return out;
}

}  // namespace

TEST(JsonText, FindingsInStringsBecomeLabelsInsideTheString) {
  EXPECT_EQ(redacted(R"({"to":"jane.doe@example.com","cc":["bob@example.org"]})"),
            R"({"to":"[REDACTED:EMAIL]","cc":["[REDACTED:EMAIL]"]})");
  EXPECT_EQ(redacted(R"({"card":"4111 1111 1111 1111","note":"pay"})"), R"({"card":"[REDACTED:CARD]","note":"pay"})");
  // A key is a string too.
  EXPECT_EQ(redacted(R"({"jane.doe@example.com":true})"), R"({"[REDACTED:EMAIL]":true})");
}

TEST(JsonText, ALabelNeverCutsAnEscapeSequence) {
  // "\n" before the address: the detector sees "njane.doe@..." (the letter after the
  // backslash is a word byte); the label starts after the escape instead.
  const std::string text = R"({"body":"Hi,\njane.doe@example.com\tthanks"})";
  const std::string out = redacted(text);
  EXPECT_EQ(out, R"({"body":"Hi,\n[REDACTED:EMAIL]\tthanks"})");
  EXPECT_TRUE(valid_json(out));
  // Plain text form would have eaten the escape's letter: that is what TextForm::json avoids.
  EXPECT_FALSE(valid_json(redacted(text, TextForm::plain)));
  const std::string u = redacted(R"({"a":"\u0001jane.doe@example.com"})");
  EXPECT_EQ(u, R"({"a":"\u0001[REDACTED:EMAIL]"})");
  EXPECT_TRUE(valid_json(u));
}

TEST(JsonText, ANumberBecomesAStringLabel) {
  EXPECT_EQ(redacted(R"({"card":4111111111111111,"n":1})"), R"({"card":"[REDACTED:CARD]","n":1})");
  EXPECT_EQ(redacted(R"([5500000000000004, 2])"), R"(["[REDACTED:CARD]", 2])");
  const std::string negative = redacted(R"({"card":-4111111111111111})");
  EXPECT_TRUE(valid_json(negative)) << negative;
  EXPECT_EQ(negative.find("4111"), std::string::npos);
  EXPECT_EQ(redacted(R"({"card":4111111111111111})", TextForm::plain), R"({"card":[REDACTED:CARD]})");
}

TEST(JsonText, TextThatIsNotJsonIsStillRedacted) {
  // A model's broken arguments: redacted all the same (there is no JSON to keep).
  EXPECT_EQ(redacted(R"({"to": jane.doe@example.com)"), R"({"to": "[REDACTED:EMAIL]")");
  EXPECT_EQ(redacted("mail jane.doe@example.com"), R"(mail "[REDACTED:EMAIL]")");
}

// Random arguments built from pieces with PII in every position the detectors reach: the
// result is valid JSON, holds none of the samples, and streaming gives the same bytes.
TEST(JsonText, RandomArgumentsStayValidJsonOneShotAndStreamed) {
  const char* values[] = {
      R"("jane.doe@example.com")",        R"("Hi\njane.doe@example.com")",  R"("\u00e9t\u00e9 bob@example.org")",
      R"("x\"jane.doe@example.com\"y")",  R"("C:\\jane.doe@example.com")",  R"("4111 1111 1111 1111")",
      "4111111111111111",                 "-4111111111111111",              "[5500000000000004]",
      R"("+44 20 7946 0958")",            R"("415-555-2671")",              R"("123-45-6789")",
      R"("GB82 WEST 1234 5698 7654 32")", R"("10.0.12.7")",                 R"("2001:db8::ff00:42:8329")",
      R"("sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF")",
      R"("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----")",
      R"("plain words")",                 "true",                           "null",
      "12",                               R"({"inner":"jane.doe@example.com"})",
      R"(["4111111111111111",4111111111111111])"};
  const char* secrets[] = {"jane.doe", "bob@example", "4111", "5500000000000004", "7946", "2671", "6789", "GB82",
                           "10.0.12.7", "8329", "sk-proj", "MIIEvQ"};
  std::mt19937 rng(20240611);
  const PolicyProfile p = redact_all();
  for (int round = 0; round < 400; ++round) {
    std::string text = "{";
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      if (i) text += rng() % 2 ? ", " : ",";
      text += rng() % 3 == 0 ? R"("password":)" : "\"k" + std::to_string(i) + "\":";
      if (rng() % 2) text += ' ';
      text += values[rng() % std::size(values)];
    }
    text += "}";
    ASSERT_TRUE(valid_json(text)) << text;
    const std::string out = redacted(text);
    ASSERT_TRUE(valid_json(out)) << text << "\n -> " << out;
    for (const char* s : secrets) ASSERT_EQ(out.find(s), std::string::npos) << s << " in " << out;
    for (std::size_t chunk : {1U, 3U, 7U, 64U}) ASSERT_EQ(streamed(text, chunk), out) << "chunks of " << chunk << ": " << text;
  }
}

TEST(JsonText, CursorFollowsStringsAndEscapesAcrossPieces) {
  detail::JsonCursor c;
  c.advance(R"({"a":"x\)");
  EXPECT_TRUE(c.in_string);
  EXPECT_EQ(c.escape, 5);
  c.advance(R"("y\u00)");
  EXPECT_TRUE(c.in_string);
  EXPECT_EQ(c.escape, 2);
  c.advance(R"(e9")");
  EXPECT_FALSE(c.in_string);
  EXPECT_EQ(c.escape, 0);
}

TEST(JsonText, DecodePrintableEscapesSpellsOutWhatTheTextSays) {
  const auto decoded = [](std::string text) {
    detail::decode_printable_escapes(text);
    return text;
  };
  EXPECT_EQ(decoded(R"({"to":"jane.doe\u0040example.com"})"), R"({"to":"jane.doe@example.com"})");
  EXPECT_EQ(decoded(R"({"k":"\u004A\u006fe"})"), R"({"k":"Joe"})");  // either case of hex digit
  // A quote, a backslash, a control character and anything beyond ASCII stay escaped: the
  // text stays the same JSON value.
  EXPECT_EQ(decoded(R"({"k":"\u0022\u005c\u000a\u00e9\ud83d\ude00"})"), R"({"k":"\u0022\u005c\u000a\u00e9\ud83d\ude00"})");
  // An escaped backslash before "u0040" is a backslash and the letters u0040.
  EXPECT_EQ(decoded(R"({"k":"a\\u0040b"})"), R"({"k":"a\\u0040b"})");
  EXPECT_EQ(decoded(R"({"k":"a\\\u0040b"})"), R"({"k":"a\\@b"})");
  // Outside strings nothing is touched; a cut-off escape is kept as it is.
  EXPECT_EQ(decoded(R"(\u0040 {"k":"x\u00)"), R"(\u0040 {"k":"x\u00)");
  EXPECT_EQ(decoded(R"({"k":"x\u00zz"})"), R"({"k":"x\u00zz"})");
  std::string same = R"({"k":"plain","n":1})";
  EXPECT_FALSE(detail::decode_printable_escapes(same));
  // Every decoded text of valid JSON parses to the same value.
  for (const char* t : {R"({"a":"\u0041\u0020\u007e","b":["\u0040",{"c":"\u0031\u0032"}]})", R"(["x\ty\u0021"])"}) {
    const std::string d = decoded(t);
    EXPECT_TRUE(valid_json(d)) << d;
    EXPECT_EQ(boost::json::parse(d), boost::json::parse(t)) << t;
  }
}

// Streamed, an escape may be cut anywhere by a fragment's end: the address it spells is
// found all the same, and what is forwarded is what the one-shot redaction gives.
TEST(JsonText, StreamedEscapesAreSpelledOutAcrossFragments) {
  const std::string text = R"({"to":"jane.doe\u0040example.com","note":"\u00e9\\u0040 \u0022x\u0022"})";
  const std::string once = redacted(text);
  EXPECT_EQ(once, R"({"to":"[REDACTED:EMAIL]","note":"\u00e9\\u0040 \u0022x\u0022"})");
  for (std::size_t chunk = 1; chunk <= text.size(); ++chunk) ASSERT_EQ(streamed(text, chunk), once) << "chunks of " << chunk;
  detail::EscapeDecoder d;
  std::string out;
  d.feed(R"({"a":"x\u00)", out);
  EXPECT_EQ(out, R"({"a":"x)");
  d.finish(out);  // the text ended inside the escape: kept as it came
  EXPECT_EQ(out, R"({"a":"x\u00)");
}
