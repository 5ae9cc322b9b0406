#include "policy/pii.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace bulwark::policy;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace {

// Matched texts of one kind, every detector enabled (so overlaps resolve as in production).
std::vector<std::string> found(std::string_view text, PiiKind kind) {
  std::vector<std::string> out;
  for (const Finding& f : detect_pii(text))
    if (f.kind == kind) out.emplace_back(text.substr(f.offset, f.length));
  return out;
}

std::vector<std::string> any_found(std::string_view text) {
  std::vector<std::string> out;
  for (const Finding& f : detect_pii(text))
    out.push_back(std::string(name_of(f.kind)) + ":" + std::string(text.substr(f.offset, f.length)));
  return out;
}

}  // namespace

TEST(PiiEmail, FindsAddresses) {
  EXPECT_THAT(found("Mail john.doe@example.com today", PiiKind::email), ElementsAre("john.doe@example.com"));
  EXPECT_THAT(found("<support+billing@acme.co.uk>.", PiiKind::email), ElementsAre("support+billing@acme.co.uk"));
  EXPECT_THAT(found("mailto:a_b-c%d@sub-domain.example.org", PiiKind::email),
              ElementsAre("a_b-c%d@sub-domain.example.org"));
  EXPECT_THAT(found("x@y.io, X.Y@Z.COM", PiiKind::email), ElementsAre("x@y.io", "X.Y@Z.COM"));
}

TEST(PiiEmail, IgnoresNonAddresses) {
  EXPECT_THAT(found("ping @channel and user@localhost", PiiKind::email), IsEmpty());
  EXPECT_THAT(found("use icon@2x.png and logo@3x.jpg", PiiKind::email), IsEmpty());
  EXPECT_THAT(found("decorator @property or a@b", PiiKind::email), IsEmpty());
  EXPECT_THAT(found("name@example.c", PiiKind::email), IsEmpty());
}

TEST(PiiPhone, FindsInternationalAndNationalFormats) {
  EXPECT_THAT(found("Call +1 (415) 555-2671 now", PiiKind::phone), ElementsAre("+1 (415) 555-2671"));
  EXPECT_THAT(found("Tel: +44 20 7946 0958.", PiiKind::phone), ElementsAre("+44 20 7946 0958"));
  EXPECT_THAT(found("+49 (0)30 1234567", PiiKind::phone), ElementsAre("+49 (0)30 1234567"));
  EXPECT_THAT(found("+14155552671", PiiKind::phone), ElementsAre("+14155552671"));
  EXPECT_THAT(found("+33 6 12 34 56 78", PiiKind::phone), ElementsAre("+33 6 12 34 56 78"));
  EXPECT_THAT(found("at 415-555-2671 or 415.555.2671", PiiKind::phone),
              ElementsAre("415-555-2671", "415.555.2671"));
  EXPECT_THAT(found("call (415) 555-2671", PiiKind::phone), ElementsAre("(415) 555-2671"));
  EXPECT_THAT(found("call 1-800-555-1234", PiiKind::phone), ElementsAre("1-800-555-1234"));
  EXPECT_THAT(found("ring 020 7946 0958 please", PiiKind::phone), ElementsAre("020 7946 0958"));
  EXPECT_THAT(found("portable 06 12 34 56 78", PiiKind::phone), ElementsAre("06 12 34 56 78"));
  EXPECT_THAT(found("Büro 030-12345678", PiiKind::phone), ElementsAre("030-12345678"));
}

TEST(PiiPhone, IgnoresOrderNumbersDatesVersionsAndDigitRuns) {
  for (const char* text : {
           "Order #415-555-2671 shipped",   // reference after '#'
           "order no. 415-555-2671",        // reference word
           "Invoice 020 7946 0958",
           "exchange 555-123-4567",         // exchange cannot start with 1
           "area 123-555-2671",             // area cannot start with 1
           "on 2024-01-05 at 10:30",        // date and time
           "dated 01.02.2023 and 01/02/2023",
           "release 1.2.3 and v10.15.7",
           "id 4155552671 or 14155552671",  // bare digit runs
           "call 415-555.2671",             // mixed separators
           "+12 345",                       // too few digits
           "total 0.12345678901",
           "batch 01.2023.12345 12",
       }) {
    EXPECT_THAT(found(text, PiiKind::phone), IsEmpty()) << text;
  }
}

TEST(PiiCard, FindsLuhnValidKnownBrands) {
  EXPECT_THAT(found("visa 4111 1111 1111 1111.", PiiKind::card), ElementsAre("4111 1111 1111 1111"));
  EXPECT_THAT(found("4111-1111-1111-1111", PiiKind::card), ElementsAre("4111-1111-1111-1111"));
  EXPECT_THAT(found("pan=4111111111111111;", PiiKind::card), ElementsAre("4111111111111111"));
  EXPECT_THAT(found("mc 5555555555554444 and 2223003122003222", PiiKind::card),
              ElementsAre("5555555555554444", "2223003122003222"));
  EXPECT_THAT(found("amex 3782 822463 10005", PiiKind::card), ElementsAre("3782 822463 10005"));
  EXPECT_THAT(found("discover 6011111111111117", PiiKind::card), ElementsAre("6011111111111117"));
  EXPECT_THAT(found("jcb 3530111333300000", PiiKind::card), ElementsAre("3530111333300000"));
  EXPECT_THAT(found("diners 30569309025904", PiiKind::card), ElementsAre("30569309025904"));
  EXPECT_THAT(found("visa13 4222222222222", PiiKind::card), ElementsAre("4222222222222"));
  EXPECT_THAT(found("Ref 1234 4111 1111 1111 1111", PiiKind::card), ElementsAre("4111 1111 1111 1111"));
  EXPECT_THAT(found("4111 1111 1111 1111 5555 5555 5555 4444", PiiKind::card),
              ElementsAre("4111 1111 1111 1111", "5555 5555 5555 4444"));
}

TEST(PiiCard, RejectsInvalidLuhnUnknownIinAndNonCards) {
  for (const char* text : {
           "4111 1111 1111 1112",       // Luhn fails
           "4111111111111112",
           "1234 5678 9012 3452",       // Luhn-valid (checked below) but no known IIN
           "9111111111111111",
           "41111111111111111111111",   // too long a run
           "order 41111111111111",      // 14 digits: not a Visa length
           "pi 3.4111111111111111",     // decimals
           "ab4111111111111111",        // glued to letters
           "41 11 11 11 11 11 11 11",   // two-digit groups
       }) {
    EXPECT_THAT(found(text, PiiKind::card), IsEmpty()) << text;
  }
  EXPECT_TRUE(luhn_valid("1234567890123452"));
  EXPECT_FALSE(card_number_plausible("1234567890123452"));
}

TEST(PiiCard, Validators) {
  EXPECT_TRUE(luhn_valid("79927398713"));
  EXPECT_FALSE(luhn_valid("79927398710"));
  EXPECT_FALSE(luhn_valid(""));
  EXPECT_FALSE(luhn_valid("4111a"));
  EXPECT_TRUE(card_number_plausible("378282246310005"));
  EXPECT_FALSE(card_number_plausible("3782822463100050"));  // Amex is 15 digits
  EXPECT_TRUE(card_number_plausible("6200000000000005"));   // UnionPay
}

TEST(PiiIban, FindsValidIbansFromSeveralCountries) {
  const char* valid[] = {
      "DE89 3704 0044 0532 0130 00", "DE89370400440532013000",     "GB82 WEST 1234 5698 7654 32",
      "GB82WEST12345698765432",      "FR14 2004 1010 0505 0001 3M02 606",
      "NL91 ABNA 0417 1643 00",      "ES91 2100 0418 4502 0005 1332", "CH93 0076 2011 6238 5295 7",
      "BE68 5390 0754 7034",         "IT60 X054 2811 1010 0000 0123 456", "NO93 8601 1117 947",
      "AT61 1904 3002 3457 3201",    "PL61 1090 1014 0000 0712 1981 2874",
  };
  for (const char* iban : valid) {
    const std::string text = std::string("pay to ") + iban + ", thanks";
    EXPECT_THAT(found(text, PiiKind::iban), ElementsAre(iban)) << iban;
  }
}

TEST(PiiIban, RejectsBadChecksumsLengthsAndGrouping) {
  for (const char* text : {
           "DE89 3704 0044 0532 0130 01",    // check fails
           "DE88370400440532013000",
           "DE89 3704 0044 0532 0130",       // too short for DE
           "DE89370400440532013000123",      // glued to more characters
           "XX89370400440532013000",         // unknown country
           "DE8 93704 0044 0532 0130 00",    // spaces not in groups of 4
           "de89370400440532013000",         // lower case
       }) {
    EXPECT_THAT(found(text, PiiKind::iban), IsEmpty()) << text;
  }
  EXPECT_EQ(iban_length("DE"), 22U);
  EXPECT_EQ(iban_length("NO"), 15U);
  EXPECT_EQ(iban_length("US"), 0U);
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_FALSE(iban_valid("GB82WEST12345698765433"));
}

TEST(PiiSsn, FindsValidAndRejectsNeverIssuedRanges) {
  EXPECT_THAT(found("SSN 123-45-6789.", PiiKind::ssn), ElementsAre("123-45-6789"));
  EXPECT_THAT(found("ssn:078-05-1120", PiiKind::ssn), ElementsAre("078-05-1120"));
  for (const char* text : {"000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567",
                           "123-45-0000", "1123-45-6789", "123-45-67890", "123-45-6789-1",
                           "123 45 6789", "123456789"}) {
    EXPECT_THAT(found(text, PiiKind::ssn), IsEmpty()) << text;
  }
  EXPECT_TRUE(ssn_valid(899, 99, 9999));
  EXPECT_FALSE(ssn_valid(666, 1, 1));
}

TEST(PiiIp, FindsIpv4AndRejectsVersionsAndOutOfRange) {
  EXPECT_THAT(found("host 192.168.1.10 and 10.0.0.1.", PiiKind::ipv4), ElementsAre("192.168.1.10", "10.0.0.1"));
  EXPECT_THAT(found("cidr 10.1.2.0/24 port 8.8.8.8:53", PiiKind::ipv4), ElementsAre("10.1.2.0", "8.8.8.8"));
  for (const char* text : {"256.1.1.1", "1.2.3", "1.2.3.4.5", "v1.2.3.4", "version 1.2.3.4",
                           "Version: 10.0.0.1", "01.02.03.04", "3.14.15.9265"}) {
    EXPECT_THAT(found(text, PiiKind::ipv4), IsEmpty()) << text;
  }
}

TEST(PiiIp, FindsIpv6IncludingCompressedForms) {
  EXPECT_THAT(found("addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", PiiKind::ipv6),
              ElementsAre("2001:0db8:85a3:0000:0000:8a2e:0370:7334"));
  EXPECT_THAT(found("2001:db8::ff00:42:8329", PiiKind::ipv6), ElementsAre("2001:db8::ff00:42:8329"));
  EXPECT_THAT(found("gw fe80::1.", PiiKind::ipv6), ElementsAre("fe80::1"));
  EXPECT_THAT(found("[2001:db8::1]:443", PiiKind::ipv6), ElementsAre("2001:db8::1"));
  EXPECT_THAT(found("mapped ::ffff:192.0.2.1", PiiKind::ipv6), ElementsAre("::ffff:192.0.2.1"));
  EXPECT_THAT(found("mapped ::ffff:192.0.2.1", PiiKind::ipv4), IsEmpty());  // part of the IPv6
  for (const char* text : {"std::string", "::1", "::", "12:30:45", "00:1a:2b:3c:4d:5e", "dead::beef",
                           "1:2:3:4:5:6:7", "2001:db8:::1", "2001:db8::1::2", "12345::1"}) {
    EXPECT_THAT(found(text, PiiKind::ipv6), IsEmpty()) << text;
  }
  EXPECT_TRUE(is_ipv6("1:2:3:4:5:6:7:8"));
  EXPECT_TRUE(is_ipv6("::"));
  EXPECT_FALSE(is_ipv6("1:2:3:4:5:6:7:8:9"));
  EXPECT_FALSE(is_ipv6("1::2:3:4:5:6:7:8"));
}

TEST(PiiSecret, FindsEachFormat) {
  const char* secrets[] = {
      "sk-abc123DEF456ghi789JKL012mno345",
      "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF",
      "sk-ant-api03-Xy7zW4vU1tS8rQ5pO2nM9lK6jI3hG0fE-AbCdEf",
      "AKIAIOSFODNN7EXAMPLE",
      "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
      "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
      "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
  };
  for (const char* s : secrets) {
    const std::string text = std::string("here: ") + s + " end";
    EXPECT_THAT(found(text, PiiKind::secret), ElementsAre(s)) << s;
  }
}

TEST(PiiSecret, FindsPrivateKeyBlocks) {
  const std::string key =
      "-----BEGIN RSA PRIVATE KEY-----\n"
      "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
      "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
      "-----END RSA PRIVATE KEY-----";
  const std::string text = "my key:\n" + key + "\nthanks";
  EXPECT_THAT(found(text, PiiKind::secret), ElementsAre(key));
  // Pasted on one line, or with JSON-escaped newlines.
  const std::string one_line =
      "-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASC -----END PRIVATE KEY-----";
  EXPECT_THAT(found("k=" + one_line + " ok", PiiKind::secret), ElementsAre(one_line));
  const std::string escaped = R"(-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5C\n-----END EC PRIVATE KEY-----)";
  EXPECT_THAT(found("\"" + escaped + "\"", PiiKind::secret), ElementsAre(escaped));
  // Without a footer the block ends with the base64 body.
  EXPECT_THAT(found("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nis it ok?", PiiKind::secret),
              ElementsAre("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"));
  // Public material is not a secret.
  EXPECT_THAT(found("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
                    PiiKind::secret),
              IsEmpty());
}

TEST(PiiSecret, FindsHighEntropyValuesAfterKeywords) {
  EXPECT_THAT(found("password: Xk9#mP2$vL5nQ8wR", PiiKind::secret), ElementsAre("Xk9#mP2$vL5nQ8wR"));
  EXPECT_THAT(found("api_key=aB3dE6gH9jK2mN5pQ8sT1vW4&x=1", PiiKind::secret),
              ElementsAre("aB3dE6gH9jK2mN5pQ8sT1vW4"));
  EXPECT_THAT(found(R"({"client_secret": "9f8e7d6c5b4a39281716ABCDEFabcdef"})", PiiKind::secret),
              ElementsAre("9f8e7d6c5b4a39281716ABCDEFabcdef"));
  EXPECT_THAT(found("the token is Zm9vYmFyMTIzNDU2Nzg5MA== ok", PiiKind::secret),
              ElementsAre("Zm9vYmFyMTIzNDU2Nzg5MA=="));
  EXPECT_THAT(found("Authorization: Bearer 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", PiiKind::secret),
              ElementsAre("4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"));
}

TEST(PiiSecret, IgnoresLookalikes) {
  for (const char* text : {
           "sk-learn is a library",
           "task-abc123DEF456ghi789JKL012mno345",       // sk- inside a word
           "sk-this-is-not-a-real-key-at-all",          // no digits
           "AKIAIOSFODNN7EXAMPLEX",                     // too long for an AWS key id
           "ghp_short123",
           "the token refreshes automatically every hour",
           "password: hunter2",                         // short
           "token: aaaaaaaaaaaaaaaaaaaaaaaa",           // no entropy
           "see internationalization_and_localization_guide",
           "commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed it",  // no keyword
       }) {
    EXPECT_THAT(found(text, PiiKind::secret), IsEmpty()) << text;
  }
}

TEST(PiiScan, OrdinaryProseHasNoFindings) {
  const std::string text =
      "In Q3 2024 revenue grew 12% to 4.2 million; churn fell from 3.1% to 2.7% after "
      "version 2.4.1 shipped on 2024-07-15 at 10:30. See section 4.2.1, page 12 of 300, "
      "ISBN 978-3-16-148410-0, order #1234567, and the C++ std::vector<int> docs.";
  EXPECT_THAT(any_found(text), IsEmpty());
}

TEST(PiiScan, FindingsAreSortedAndOnlyEnabledKindsReported) {
  const std::string text = "a@b.co 4111111111111111 10.0.0.1";
  const auto all = detect_pii(text);
  ASSERT_EQ(all.size(), 3U);
  EXPECT_EQ(all[0], (Finding{PiiKind::email, 0, 6}));
  EXPECT_EQ(all[1], (Finding{PiiKind::card, 7, 16}));
  EXPECT_EQ(all[2], (Finding{PiiKind::ipv4, 24, 8}));
  const auto only_ip = detect_pii(text, mask_of(PiiKind::ipv4));
  ASSERT_EQ(only_ip.size(), 1U);
  EXPECT_EQ(only_ip[0].kind, PiiKind::ipv4);
}

TEST(PiiScan, EntropyHelper) {
  EXPECT_DOUBLE_EQ(shannon_entropy("aaaa"), 0.0);
  EXPECT_DOUBLE_EQ(shannon_entropy("abcd"), 2.0);
  EXPECT_EQ(redaction_label(PiiKind::email), "[REDACTED:EMAIL]");
  EXPECT_EQ(name_of(PiiKind::ipv6), "ipv6");
}

TEST(PiiEmail, CoversUtf8LocalPartWhole) {
  EXPECT_THAT(found("an jörg.müller@example.de schreiben", PiiKind::email),
              ElementsAre("jörg.müller@example.de"));
}

TEST(PiiScan, FastPathMatchesWalkingEverySegment) {
  const auto reference = [](std::string_view text) {
    std::vector<Finding> out;
    for (std::size_t pos = 0; pos < text.size();) {
      const Step st = next_step(text, pos, true);
      if (st.kind != StepKind::gap)
        scan_segment(text, pos, st.end, st.kind == StepKind::pem, st.traits, kAllPii, out);
      pos = st.end;
    }
    return out;
  };
  std::string long_run(kMaxSegmentBytes - 10, 'x');
  long_run += "a@example.com4111111111111111";  // crosses the forced cut
  const std::string texts[] = {
      "A 12 B 34 C 4111 1111 1111 1111 D GB82 WEST 1234 5698 7654 32 E",
      "tokens: aB3dE6gH9jK2mN5pQ8sT1vW4 and api_key=aB3dE6gH9jK2mN5pQ8sT1vW4zz",
      long_run,
      long_run + " and 10.0.0.1 " + long_run,
      "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- 10.0.0.1",
      "ends with digits 415-555-2671",
  };
  for (const std::string& t : texts) EXPECT_EQ(detect_pii(t), reference(t)) << t.substr(0, 80);
}

namespace {
// A small deterministic generator for the randomised tests below.
struct XorShift {
  std::uint64_t seed;
  std::uint64_t operator()() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  }
};
}  // namespace

// pii_may_match is a necessary condition: whenever detect_pii finds something, it says
// "may". Random texts over the bytes detectors care about, and realistic samples.
TEST(PiiMayMatch, NeverNoWhereDetectPiiFindsSomething) {
  const std::string alphabet = "01234567890123456789     ABCDEFabcxyz@:.-+()/_#=\n\"";
  XorShift next{0x9e3779b97f4a7c15ULL};
  int found = 0;
  for (int round = 0; round < 100000; ++round) {
    std::string text;
    const std::size_t len = 1 + next() % 40;
    for (std::size_t i = 0; i < len; ++i) text.push_back(alphabet[next() % alphabet.size()]);
    for (const PiiMask mask : {kAllPii, static_cast<PiiMask>(kAllPii & ~mask_of(PiiKind::secret))}) {
      if (detect_pii(text, mask).empty()) continue;
      ++found;
      ASSERT_TRUE(pii_may_match(text, mask)) << text;
    }
  }
  EXPECT_GT(found, 200);  // the corpus does exercise the detectors
  for (const char* t : {"jane.doe@example.com", "+44 20 7946 0958", "call 415-555-2671 now", "4111 1111 1111 1111",
                        "DE89 3704 0044 0532 0130 00", "123-45-6789", "192.168.10.20", "2001:db8::ff00:42:8329",
                        "AKIAIOSFODNN7EXAMPLE", "password: Xk9#mP2$vL5qR8nT3w", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"}) {
    ASSERT_FALSE(detect_pii(t, kAllPii).empty()) << t;
    EXPECT_TRUE(pii_may_match(t, kAllPii)) << t;
  }
  EXPECT_FALSE(pii_may_match("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16.", kAllPii));
  EXPECT_FALSE(pii_may_match("Say hello in one short sentence.", kAllPii));
  EXPECT_FALSE(pii_may_match("", kAllPii));
}

// The SSE2 pass in front of the byte walk only ever answers "no" where the walk does:
// random texts of 0 to 120 bytes (chunk edges at 32 and 64) over every byte class the
// walk reads (separators, soft joins around spaces, needed bytes, UTF-8), both answers
// compared for masks with and without the secret detector's long runs.
TEST(PiiMayMatch, AgreesWithTheByteWalk) {
  const std::string alphabet =
      "abcdefghijklmnopqrstuvwxyz      ABCXYZ0189@:.-+()/_#=\n\t\r\"'!?,;&*<>[]{}|~^`\x7f\x01\xc3\xa9";
  XorShift next{0x2545f4914f6cdd1dULL};
  int yes = 0, no = 0;
  for (int round = 0; round < 200000; ++round) {
    std::string text;
    const std::size_t len = next() % 121;
    // Mostly prose-like (letters and spaces), so that "no" is common and the fast pass decides.
    const std::size_t classes = round % 3 == 0 ? alphabet.size() : 32;
    for (std::size_t i = 0; i < len; ++i) text.push_back(alphabet[next() % classes]);
    for (const PiiMask mask : {kAllPii, static_cast<PiiMask>(kAllPii & ~mask_of(PiiKind::secret))}) {
      const bool walk = text.find("-----") != std::string::npos || detail::pii_may_match_bytes(text, mask);
      ASSERT_EQ(pii_may_match(text, mask), walk) << '"' << text << "\" mask " << mask;
      ++(walk ? yes : no);
    }
  }
  EXPECT_GT(yes, 20000);
  EXPECT_GT(no, 20000);
}
