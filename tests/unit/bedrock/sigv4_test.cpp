#include "providers/bedrock/sigv4.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bb = bulwark::bedrock;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

const std::filesystem::path kSuite = std::filesystem::path(BULWARK_FIXTURES_DIR) / "sigv4";
const bb::Credentials kCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

system_clock::time_point suite_time() { return *bb::parse_amz_date("20150830T123600Z"); }

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct SuiteCase {
  std::string name;
  std::string method, path, query, body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string creq, sts, authz;
  std::string session_token;
  bool sign_content_sha256 = false;

  std::vector<bb::HeaderField> fields() const {
    std::vector<bb::HeaderField> out;
    for (const auto& [n, v] : headers) out.push_back({n, v});
    return out;
  }
};

// Parses "<METHOD> <target> HTTP/1.1\nName:value\n...\n\nbody". The target may hold spaces
// (get-space), so it runs up to the last " HTTP/".
SuiteCase load(const std::string& name) {
  SuiteCase c;
  c.name = name;
  auto dir = kSuite / name;
  std::string req = slurp(dir / (name + ".req"));
  c.creq = slurp(dir / (name + ".creq"));
  c.sts = slurp(dir / (name + ".sts"));
  c.authz = slurp(dir / (name + ".authz"));

  std::string head = req;
  if (auto blank = req.find("\n\n"); blank != std::string::npos) {
    head = req.substr(0, blank);
    c.body = req.substr(blank + 2);
  }
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  auto sp = line.find(' ');
  auto proto = line.rfind(" HTTP/");
  c.method = line.substr(0, sp);
  std::string target = line.substr(sp + 1, proto - sp - 1);
  if (auto q = target.find('?'); q != std::string::npos) {
    c.path = target.substr(0, q);
    c.query = target.substr(q + 1);
  } else {
    c.path = target;
  }
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    c.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  if (std::filesystem::exists(dir / "context")) {
    std::istringstream ctx(slurp(dir / "context"));
    while (std::getline(ctx, line)) {
      auto eq = line.find('=');
      std::string k = line.substr(0, eq), v = line.substr(eq + 1);
      if (k == "session_token") c.session_token = v;
      if (k == "sign_content_sha256") c.sign_content_sha256 = v == "true";
    }
  }
  return c;
}

std::vector<std::string> suite_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(kSuite))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class Sigv4Suite : public ::testing::TestWithParam<std::string> {};

TEST(Sigv4Fixtures, HasTheExpectedCases) {
  auto names = suite_names();
  EXPECT_EQ(names.size(), 31u);
  for (const char* must : {"get-vanilla", "post-vanilla", "post-x-www-form-urlencoded",
                           "get-vanilla-query-order-key-case", "post-header-key-sort",
                           "get-header-value-trim", "post-vanilla-query", "get-utf8", "get-space",
                           "post-sts-header-before", "post-sts-header-after"})
    EXPECT_NE(std::find(names.begin(), names.end(), must), names.end()) << must;
}

TEST_P(Sigv4Suite, CanonicalRequestStringToSignAndAuthorization) {
  SuiteCase c = load(GetParam());
  // The fixture's own consistency: its string to sign ends with the hash of its creq.
  ASSERT_EQ(c.sts.substr(c.sts.rfind('\n') + 1), bb::hex_sha256(c.creq));

  bb::SigningOptions opts;
  opts.sign_content_sha256 = c.sign_content_sha256;
  bb::Credentials creds = kCreds;
  creds.session_token = c.session_token;

  // canonical_request() signs exactly the headers given, so give it what sign() adds.
  auto all = c.fields();
  std::string payload_hash = bb::hex_sha256(c.body);
  if (!c.session_token.empty()) all.push_back({"X-Amz-Security-Token", c.session_token});
  if (c.sign_content_sha256) all.push_back({"x-amz-content-sha256", payload_hash});
  bb::SigningInput full{c.method, c.path, c.query, all, c.body};
  std::string creq = bb::canonical_request(full, payload_hash, opts);
  EXPECT_EQ(creq, c.creq);
  std::string scope = bb::credential_scope("20150830", "us-east-1", "service");
  EXPECT_EQ(bb::string_to_sign("20150830T123600Z", scope, creq), c.sts);

  auto headers = c.fields();
  bb::SigningInput in{c.method, c.path, c.query, headers, c.body};
  bb::SignedHeaders s = bb::sign(in, creds, "us-east-1", "service", suite_time(), opts);
  EXPECT_EQ(s.authorization, c.authz);
  EXPECT_EQ(s.amz_date, "20150830T123600Z");
  EXPECT_EQ(s.security_token, c.session_token);
  EXPECT_EQ(s.content_sha256, c.sign_content_sha256 ? payload_hash : "");
}

TEST_P(Sigv4Suite, VerifierAcceptsWhatTheSignerProduced) {
  SuiteCase c = load(GetParam());
  bb::SigningOptions opts;
  opts.sign_content_sha256 = c.sign_content_sha256;
  bb::Credentials creds = kCreds;
  creds.session_token = c.session_token;
  auto headers = c.fields();
  bb::SigningInput in{c.method, c.path, c.query, headers, c.body};
  bb::SignedHeaders s = bb::sign(in, creds, "us-east-1", "service", suite_time(), opts);

  std::vector<bb::HeaderField> received;
  std::string token = c.session_token;
  for (const auto& h : headers) {
    if (h.name == "X-Amz-Date") continue;
    if (h.name == "X-Amz-Security-Token") token = std::string(h.value);
    received.push_back(h);
  }
  for (const auto& [n, v] : s.fields()) received.push_back({n, v});
  bb::SigningInput got{c.method, c.path, c.query, received, c.body};
  auto lookup = [&](std::string_view id) -> std::optional<bb::VerifierSecret> {
    if (id != "AKIDEXAMPLE") return std::nullopt;
    return bb::VerifierSecret{kCreds.secret_access_key, token};
  };
  bb::VerifyOptions vo{"us-east-1", "service", seconds(300), opts};
  auto r = bb::verify(got, lookup, suite_time() + seconds(10), vo);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(r->service, "service");
}

INSTANTIATE_TEST_SUITE_P(AwsSuite, Sigv4Suite, ::testing::ValuesIn(suite_names()),
                         [](const ::testing::TestParamInfo<std::string>& case_info) {
                           std::string n = case_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(Sigv4, DerivesTheSigningKeyAwsDocuments) {
  // AWS General Reference, "Examples of how to derive a signing key for Signature Version 4".
  auto key = bb::derive_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                    "us-east-1", "iam");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (auto b : key) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  EXPECT_EQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(Sigv4, FormatsAndParsesAmzDate) {
  auto t = bb::parse_amz_date("20150830T123600Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(bb::format_amz_date(*t), "20150830T123600Z");
  EXPECT_EQ(bb::format_amz_date(*t + std::chrono::milliseconds(999)), "20150830T123600Z");
  EXPECT_FALSE(bb::parse_amz_date("2015-08-30T12:36:00Z"));
  EXPECT_FALSE(bb::parse_amz_date("20150231T123600Z"));
  EXPECT_FALSE(bb::parse_amz_date("20150830T253600Z"));
}

// ---- Bedrock model ids in the path ----

TEST(Sigv4Bedrock, ModelIdColonIsEncodedTwiceInTheCanonicalUri) {
  // What the AWS SDKs put on the wire for Converse with a versioned model id.
  EXPECT_EQ(bb::canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse");
  EXPECT_EQ(bb::canonical_uri("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse-stream");
}

TEST(Sigv4Bedrock, ArnSlashesStayInsideTheirSegment) {
  // An inference-profile ARN is one path label: its '/' goes on the wire as %2F and must not
  // be taken for a separator by normalization.
  std::string wire =
      "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
      "us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke";
  EXPECT_EQ(bb::canonical_uri(wire),
            "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Ainference-profile%252F"
            "us.anthropic.claude-3-5-sonnet-20240620-v1%253A0/invoke");
}

TEST(Sigv4Bedrock, S3StyleOptionsKeepTheWirePath) {
  bb::SigningOptions s3;
  s3.normalize_path = false;
  s3.double_encode_path = false;
  EXPECT_EQ(bb::canonical_uri("/bucket//a%3Ab/./c", s3), "/bucket//a%3Ab/./c");
}

TEST(Sigv4Bedrock, UriEncodeUsesUpperCaseHexAndKeepsUnreserved) {
  EXPECT_EQ(bb::uri_encode("a b/c~d._-*:", false), "a%20b%2Fc~d._-%2A%3A");
  EXPECT_EQ(bb::uri_encode("a b/c", true), "a%20b/c");
  EXPECT_EQ(bb::uri_encode("\xE1\x88\xB4", false), "%E1%88%B4");
}

TEST(Sigv4Bedrock, CanonicalQueryDecodesThenReencodesAndSorts) {
  EXPECT_EQ(bb::canonical_query("b=2&a=%3a&a=1&c"), "a=%3A&a=1&b=2&c=");
  EXPECT_EQ(bb::canonical_query("k=a%20b"), "k=a%20b");
  EXPECT_EQ(bb::canonical_query(""), "");
}

struct ConverseRequest {
  std::string body = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})";
  std::vector<bb::HeaderField> headers{
      {"host", "bedrock-runtime.us-east-1.amazonaws.com"},
      {"content-type", "application/json"},
  };
  bb::SigningInput input() const {
    return {"POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "", headers, body};
  }
};

TEST(Sigv4Bedrock, SignsAConverseRequestWithTokenAndContentHash) {
  ConverseRequest req;
  bb::Credentials creds{"AKIDEXAMPLE", "secret", "session-token"};
  auto now = suite_time();
  auto s = bb::sign(req.input(), creds, "us-east-1", "bedrock", now);
  EXPECT_EQ(s.signed_headers, "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  EXPECT_EQ(s.content_sha256, bb::hex_sha256(req.body));
  EXPECT_EQ(s.security_token, "session-token");
  EXPECT_TRUE(s.authorization.starts_with(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
      "Signature="));

  // The signature is the HMAC of the string to sign built from the double-encoded path.
  std::vector<bb::HeaderField> all = req.headers;
  all.push_back({"x-amz-date", s.amz_date});
  all.push_back({"x-amz-security-token", s.security_token});
  all.push_back({"x-amz-content-sha256", s.content_sha256});
  bb::SigningInput full{"POST", req.input().path, "", all, req.body};
  std::string creq = bb::canonical_request(full, s.content_sha256);
  EXPECT_NE(creq.find("\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n"),
            std::string::npos);

  // Signing the unencoded ':' would give another canonical URI, so another signature.
  bb::SigningInput raw = req.input();
  raw.path = "/model/anthropic.claude-3-haiku-20240307-v1:0/converse";
  EXPECT_NE(bb::sign(raw, creds, "us-east-1", "bedrock", now).signature, s.signature);
}

TEST(Sigv4Bedrock, KeyCacheReturnsTheDerivedKeyPerDayRegionService) {
  bb::SigningKeyCache cache;
  bb::Credentials creds{"AKID", "secret", ""};
  auto k1 = cache.get(creds, "20240101", "us-east-1", "bedrock");
  EXPECT_EQ(k1, bb::derive_signing_key("secret", "20240101", "us-east-1", "bedrock"));
  EXPECT_EQ(cache.get(creds, "20240101", "us-east-1", "bedrock"), k1);
  EXPECT_EQ(cache.size(), 1u);
  cache.get(creds, "20240101", "us-west-2", "bedrock");
  EXPECT_EQ(cache.size(), 2u);
  // A new day replaces the entry; a rotated secret under the same key id misses the cache.
  EXPECT_EQ(cache.get(creds, "20240102", "us-east-1", "bedrock"),
            bb::derive_signing_key("secret", "20240102", "us-east-1", "bedrock"));
  EXPECT_EQ(cache.size(), 2u);
  bb::Credentials rotated{"AKID", "other", ""};
  EXPECT_EQ(cache.get(rotated, "20240102", "us-east-1", "bedrock"),
            bb::derive_signing_key("other", "20240102", "us-east-1", "bedrock"));

  ConverseRequest req;
  auto with_cache = bb::sign(req.input(), creds, "us-east-1", "bedrock", suite_time(), {}, &cache);
  auto without = bb::sign(req.input(), creds, "us-east-1", "bedrock", suite_time());
  EXPECT_EQ(with_cache.authorization, without.authorization);
}

TEST(Sigv4Bedrock, SignerReplacesStaleAuthHeadersInsteadOfSigningThemTwice) {
  ConverseRequest req;
  req.headers.push_back({"Authorization", "AWS4-HMAC-SHA256 old"});
  req.headers.push_back({"X-Amz-Date", "20000101T000000Z"});
  auto s = bb::sign(req.input(), bb::Credentials{"AKID", "secret", ""}, "us-east-1", "bedrock",
                    suite_time());
  EXPECT_EQ(s.signed_headers, "content-type;host;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(s.amz_date, "20150830T123600Z");
}

// ---- Verifier ----

class Verifier : public ::testing::Test {
 protected:
  ConverseRequest req;
  bb::Credentials creds{"AKIDBEDROCK", "s3cr3t", ""};
  system_clock::time_point now = suite_time();
  bb::SignedHeaders signed_ = bb::sign(req.input(), creds, "us-east-1", "bedrock", now);
  std::vector<bb::HeaderField> received;
  std::string expected_token;
  bb::VerifyOptions opts{"us-east-1", "bedrock", seconds(300), {}};

  void SetUp() override { rebuild(); }
  void rebuild() {
    received = req.headers;
    for (const auto& [n, v] : signed_.fields()) received.push_back({n, v});
  }
  std::expected<bb::VerifiedRequest, bb::VerifyError> run(system_clock::time_point at,
                                                           std::string_view body) {
    bb::SigningInput in{"POST", req.input().path, "", received, body};
    auto lookup = [this](std::string_view id) -> std::optional<bb::VerifierSecret> {
      if (id != "AKIDBEDROCK") return std::nullopt;
      return bb::VerifierSecret{"s3cr3t", expected_token};
    };
    return bb::verify(in, lookup, at, opts);
  }
  std::expected<bb::VerifiedRequest, bb::VerifyError> run() { return run(now, req.body); }
};

TEST_F(Verifier, AcceptsAGenuineRequest) {
  auto r = run();
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->access_key_id, "AKIDBEDROCK");
  EXPECT_EQ(r->region, "us-east-1");
}

TEST_F(Verifier, RejectsATamperedBody) {
  auto r = run(now, R"({"messages":[]})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::invalid_signature);
  EXPECT_EQ(r.error().aws_type(), "InvalidSignatureException");
  EXPECT_EQ(r.error().http_status(), 403);
}

TEST_F(Verifier, RejectsATamperedBodyEvenWithoutAContentHashHeader) {
  bb::SigningOptions no_hash;
  no_hash.sign_content_sha256 = false;
  signed_ = bb::sign(req.input(), creds, "us-east-1", "bedrock", now, no_hash);
  rebuild();
  ASSERT_TRUE(run().has_value());
  auto r = run(now, R"({"messages":[]})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::invalid_signature);
}

TEST_F(Verifier, RejectsATamperedSignedHeaderAndSignature) {
  received[1].value = "text/plain";
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::invalid_signature);
  rebuild();
  std::string authz = signed_.authorization;
  authz.back() = authz.back() == '0' ? '1' : '0';
  for (auto& h : received)
    if (h.name == "authorization") h.value = authz;
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::invalid_signature);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos);
}

TEST_F(Verifier, RejectsAnotherPathEncoding) {
  bb::SigningInput in{"POST", "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", "", received,
                      req.body};
  auto lookup = [](std::string_view) { return std::optional(bb::VerifierSecret{"s3cr3t", ""}); };
  EXPECT_EQ(bb::verify(in, lookup, now, opts).error().failure, bb::VerifyFailure::invalid_signature);
}

TEST_F(Verifier, UnknownKeyIsAnUnrecognizedClient) {
  signed_ = bb::sign(req.input(), bb::Credentials{"AKIDOTHER", "s3cr3t", ""}, "us-east-1", "bedrock", now);
  rebuild();
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::unrecognized_client);
  EXPECT_EQ(r.error().aws_type(), "UnrecognizedClientException");
  EXPECT_EQ(r.error().http_status(), 403);
}

TEST_F(Verifier, WrongSecretIsAnInvalidSignature) {
  signed_ = bb::sign(req.input(), bb::Credentials{"AKIDBEDROCK", "wrong", ""}, "us-east-1", "bedrock", now);
  rebuild();
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::invalid_signature);
}

TEST_F(Verifier, KeyCacheServesRepeatedRequestsWithTheSameVerdicts) {
  bb::SigningKeyCache keys;
  opts.keys = &keys;
  ASSERT_TRUE(run().has_value());
  ASSERT_TRUE(run().has_value());
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_EQ(run(now, R"({"messages":[]})").error().failure, bb::VerifyFailure::invalid_signature);
  // A request signed with another secret still fails: the cached key is the verifier's own.
  signed_ = bb::sign(req.input(), bb::Credentials{"AKIDBEDROCK", "wrong", ""}, "us-east-1", "bedrock", now);
  rebuild();
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::invalid_signature);
  // The next day derives a new key; the verdict is still the signature's.
  const auto tomorrow = now + std::chrono::hours(24);
  signed_ = bb::sign(req.input(), creds, "us-east-1", "bedrock", tomorrow);
  rebuild();
  auto r = run(tomorrow, req.body);
  ASSERT_TRUE(r.has_value()) << r.error().message;
}

TEST_F(Verifier, SkewUpToFiveMinutesPassesBeyondItExpires) {
  EXPECT_TRUE(run(now + seconds(300), req.body).has_value());
  EXPECT_TRUE(run(now - seconds(300), req.body).has_value());
  auto late = run(now + seconds(301), req.body);
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().failure, bb::VerifyFailure::request_expired);
  EXPECT_EQ(late.error().message,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z "
            "(20150830T124101Z - 5 min.)");
  auto early = run(now - seconds(301), req.body);
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().failure, bb::VerifyFailure::request_expired);
  EXPECT_TRUE(early.error().message.starts_with("Signature not yet current"));
}

TEST_F(Verifier, MissingOrMalformedAuthorization) {
  std::erase_if(received, [](const auto& h) { return h.name == "authorization"; });
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::missing_authentication);
  EXPECT_EQ(r.error().aws_type(), "MissingAuthenticationTokenException");

  received.push_back({"Authorization",
                      "AWS4-HMAC-SHA256 Credential=AKIDBEDROCK/20150830/us-east-1/bedrock/aws4_request, "
                      "SignedHeaders=host;x-amz-date"});
  r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().failure, bb::VerifyFailure::incomplete_signature);
  EXPECT_EQ(r.error().http_status(), 400);
  EXPECT_NE(r.error().message.find("'Signature'"), std::string::npos);
}

TEST_F(Verifier, ScopeMustNameTheExpectedServiceAndRegion) {
  signed_ = bb::sign(req.input(), creds, "us-east-1", "s3", now);
  rebuild();
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::invalid_signature);
  signed_ = bb::sign(req.input(), creds, "eu-west-1", "bedrock", now);
  rebuild();
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::invalid_signature);
}

TEST_F(Verifier, SessionTokenMustMatchWhenTheKeyHasOne) {
  expected_token = "tok-123";
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::unrecognized_client);
  signed_ = bb::sign(req.input(), bb::Credentials{"AKIDBEDROCK", "s3cr3t", "tok-999"}, "us-east-1",
                     "bedrock", now);
  rebuild();
  EXPECT_EQ(run().error().failure, bb::VerifyFailure::unrecognized_client);
  signed_ = bb::sign(req.input(), bb::Credentials{"AKIDBEDROCK", "s3cr3t", "tok-123"}, "us-east-1",
                     "bedrock", now);
  rebuild();
  EXPECT_TRUE(run().has_value());
}

}  // namespace
