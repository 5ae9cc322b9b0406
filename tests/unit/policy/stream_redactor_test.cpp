#include "policy/stream_redactor.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "policy/evaluate.hpp"

using namespace bulwark::policy;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

PolicyProfile redact_all(void (*tweak)(PolicySpec&) = nullptr) {
  PolicySpec spec;
  spec.id = "stream";
  for (PiiKind k : kAllPiiKinds) spec.detectors[k] = Action::redact;
  spec.allow = {"^support@acme\\.com$"};
  if (tweak) tweak(spec);
  return std::move(PolicyProfile::create(std::move(spec)).value());
}

std::string one_shot(const PolicyProfile& p, std::string text) {
  evaluate_output(p, text);
  return text;
}

std::string streamed(const PolicyProfile& p, const std::vector<std::string_view>& chunks) {
  StreamRedactor r(p);
  std::string out;
  for (std::string_view c : chunks) EXPECT_EQ(r.feed(c, out), StreamStatus::ok);
  EXPECT_EQ(r.finish(out), StreamStatus::ok);
  EXPECT_EQ(r.pending_bytes(), 0U);
  return out;
}

// The split into two chunks at every position, and one byte at a time.
void expect_chunking_invariant(const PolicyProfile& p, const std::string& text) {
  const std::string expected = one_shot(p, text);
  ASSERT_NE(expected, text) << "the sample must contain something to redact";
  const std::string_view v = text;
  for (std::size_t k = 0; k <= v.size(); ++k)
    ASSERT_EQ(streamed(p, {v.substr(0, k), v.substr(k)}), expected) << "split at " << k << " of: " << text;
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < v.size(); ++i) bytes.push_back(v.substr(i, 1));
  ASSERT_EQ(streamed(p, bytes), expected) << "byte by byte: " << text;
}

bool ends_on_utf8_boundary(std::string_view s) {
  // Walk back over continuation bytes to the lead byte and check the sequence is whole.
  std::size_t i = s.size();
  std::size_t cont = 0;
  while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++cont;
  }
  if (i == 0) return cont == 0;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const std::size_t need = lead < 0x80 ? 0 : lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need == cont;
}

}  // namespace

TEST(StreamRedactor, EachKindSplitAnywhereMatchesOneShot) {
  const PolicyProfile p = redact_all();
  const char* samples[] = {
      "Write to jane.doe@example.com today.",
      "Call +1 (415) 555-2671, or 020 7946 0958!",
      "Card: 4111 1111 1111 1111 exp 12/27",
      "IBAN GB82 WEST 1234 5698 7654 32 please",
      "my ssn is 123-45-6789.",
      "server 192.168.10.20:8080 is down",
      "gw 2001:db8::ff00:42:8329 ok",
      "key sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF done",
      "aws AKIAIOSFODNN7EXAMPLE done",
      "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      "password: Xk9#mP2$vL5nQ8wR and more",
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nbye",
  };
  for (const char* s : samples) expect_chunking_invariant(p, s);
}

TEST(StreamRedactor, MixedAnswerWithUtf8MatchesOneShot) {
  const PolicyProfile p = redact_all();
  const std::string text =
      "Grüße! Contact support@acme.com or jörg@example.de — 電話 +49 30 1234567; "
      "card 5555555555554444, IBAN DE89370400440532013000, host 10.0.0.1 🎉 done.";
  expect_chunking_invariant(p, text);
  EXPECT_THAT(one_shot(p, text), HasSubstr("support@acme.com"));  // allow-listed
}

TEST(StreamRedactor, RandomChunkingsMatchOneShot) {
  const PolicyProfile p = redact_all();
  std::string text;
  for (int i = 0; i < 20; ++i)
    text += "Row " + std::to_string(i) + ": mail user" + std::to_string(i) +
            "@example.com, card 4111-1111-1111-1111, ip 10.0.0." + std::to_string(i) +
            ", note ünïcødé text with version 1.2.3 and date 2024-01-0" + std::to_string(i % 9 + 1) + ".\n";
  const std::string expected = one_shot(p, text);
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::string_view> chunks;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t len = std::uniform_int_distribution<std::size_t>(1, 40)(rng);
      chunks.push_back(std::string_view(text).substr(pos, len));
      pos += len;
    }
    ASSERT_EQ(streamed(p, chunks), expected) << "round " << round;
  }
}

TEST(StreamRedactor, NeverSplitsUtf8) {
  const PolicyProfile p = redact_all();
  const std::string text = "Ünïcødé 日本語テキスト 🎉🎉 mixed with a@b.co and €100 and ünïcødé";
  StreamRedactor r(p);
  std::string out;
  for (char c : text) {
    r.feed(std::string_view(&c, 1), out);
    ASSERT_TRUE(ends_on_utf8_boundary(out)) << out.size();
  }
  r.finish(out);
  EXPECT_EQ(out, one_shot(p, text));
}

TEST(StreamRedactor, HoldsBackOnlyWhatCouldStillMatch) {
  const PolicyProfile p = redact_all();
  StreamRedactor r(p);
  std::string out;
  r.feed("Hello there, this is fine. ", out);
  EXPECT_EQ(out, "Hello there, this is fine. ");
  EXPECT_EQ(r.pending_bytes(), 0U);
  r.feed("Card 4111 1111", out);
  EXPECT_EQ(out, "Hello there, this is fine. Card ");
  EXPECT_EQ(r.pending_bytes(), 9U);  // "4111 1111" may still grow into a card number
  r.feed(" 1111 1111 thanks", out);
  EXPECT_EQ(out, "Hello there, this is fine. Card [REDACTED:CARD] ");
  EXPECT_EQ(r.pending_bytes(), 6U);  // "thanks" could still become an address
  r.finish(out);
  EXPECT_EQ(out, "Hello there, this is fine. Card [REDACTED:CARD] thanks");
  EXPECT_EQ(r.decision().redactions(PiiKind::card), 1U);
  EXPECT_EQ(r.decision().verdict, Verdict::redacted);
}

TEST(StreamRedactor, HoldBackIsBounded) {
  const PolicyProfile p = redact_all();
  StreamRedactor r(p);
  std::string out;
  const std::string blob(3 * kMaxSegmentBytes, 'x');
  for (std::size_t i = 0; i < blob.size(); i += 100) {
    r.feed(std::string_view(blob).substr(i, 100), out);
    EXPECT_LE(r.pending_bytes(), kMaxSegmentBytes + 100);
  }
  r.finish(out);
  EXPECT_EQ(out, blob);
}

TEST(StreamRedactor, BlockActionStopsTheStreamWithoutForwardingTheMatch) {
  const PolicyProfile p = redact_all([](PolicySpec& s) { s.detectors[PiiKind::card] = Action::block; });
  StreamRedactor r(p);
  std::string out;
  EXPECT_EQ(r.feed("All good so far. Your card 4111 ", out), StreamStatus::ok);
  EXPECT_EQ(out, "All good so far. Your card ");
  EXPECT_EQ(r.feed("1111 1111 1111 is on file.", out), StreamStatus::blocked);
  EXPECT_EQ(out, "All good so far. Your card ");
  EXPECT_TRUE(r.decision().blocked());
  EXPECT_EQ(r.decision().reason_code, "pii");
  EXPECT_EQ(r.decision().detector, "card");
  EXPECT_EQ(r.feed("more", out), StreamStatus::blocked);
  EXPECT_EQ(r.finish(out), StreamStatus::blocked);
  EXPECT_EQ(out, "All good so far. Your card ");
}

TEST(StreamRedactor, DenyPatternAcrossDeltasBlocksBeforeItCompletes) {
  const PolicyProfile p = redact_all([](PolicySpec& s) {
    s.deny = {{"codename", R"((?i)project\s+nightingale)", Action::block}};
  });
  StreamRedactor r(p);
  std::string out;
  EXPECT_EQ(r.feed("The plan for Project ", out), StreamStatus::ok);
  EXPECT_EQ(r.feed("Night", out), StreamStatus::ok);
  EXPECT_EQ(r.feed("ingale is", out), StreamStatus::blocked);
  EXPECT_THAT(out, Not(HasSubstr("Nightingale")));
  EXPECT_EQ(r.decision().detector, "codename");
}

TEST(StreamRedactor, FlagOnlyDetectorsPassTextThrough) {
  const PolicyProfile p = redact_all([](PolicySpec& s) {
    for (PiiKind k : kAllPiiKinds) s.detectors[k] = Action::flag;
  });
  const std::string text = "mail a@example.com and 10.0.0.1";
  EXPECT_EQ(streamed(p, {text}), text);
  StreamRedactor r(p);
  std::string out;
  r.feed(text, out);
  r.finish(out);
  EXPECT_EQ(r.decision().flags(), 2U);
  EXPECT_EQ(r.decision().verdict, Verdict::allow);
}
