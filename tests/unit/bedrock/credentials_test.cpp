#include "providers/bedrock/credentials.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace bb = bulwark::bedrock;

namespace {

// A fake environment: tests never read or change the process's own.
bb::EnvLookup env(std::map<std::string, std::string, std::less<>> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class TempCredentialsFile {
 public:
  explicit TempCredentialsFile(const std::string& text) {
    dir_ = std::filesystem::temp_directory_path() /
           ("bulwark-bedrock-creds-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / ".aws");
    std::ofstream(dir_ / ".aws" / "credentials") << text;
  }
  ~TempCredentialsFile() { std::filesystem::remove_all(dir_); }
  std::string home() const { return dir_.string(); }
  std::string path() const { return (dir_ / ".aws" / "credentials").string(); }

 private:
  std::filesystem::path dir_;
};

const char* kIni = R"(# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secretdefault

; another comment
[work]
aws_access_key_id=AKIDWORK
aws_secret_access_key=secretwork
aws_session_token=tokenwork

[broken]
aws_access_key_id = AKIDBROKEN
)";

TEST(Credentials, ExplicitConfigWinsOverEverything) {
  bb::CredentialConfig cfg;
  cfg.access_key_id = "AKIDCONFIG";
  cfg.secret_access_key = "secretconfig";
  cfg.session_token = "tokenconfig";
  auto r = bb::resolve_credentials(cfg, env({{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                                             {"AWS_SECRET_ACCESS_KEY", "secretenv"}}));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto& c = std::get<bb::Credentials>(*r);
  EXPECT_EQ(c.access_key_id, "AKIDCONFIG");
  EXPECT_EQ(c.secret_access_key, "secretconfig");
  EXPECT_EQ(c.session_token, "tokenconfig");
}

TEST(Credentials, ConfigBearerTokenIsABedrockApiKey) {
  bb::CredentialConfig cfg;
  cfg.bearer_token = "ABSKexamplekey";
  cfg.access_key_id = "AKIDCONFIG";
  cfg.secret_access_key = "secretconfig";
  auto r = bb::resolve_credentials(cfg, env({}));
  ASSERT_TRUE(r.has_value());
  auto& t = std::get<bb::BearerToken>(*r);
  EXPECT_EQ(t.authorization_header(), "Bearer ABSKexamplekey");
}

TEST(Credentials, HalfConfiguredKeysAreAnError) {
  bb::CredentialConfig cfg;
  cfg.access_key_id = "AKIDCONFIG";
  auto r = bb::resolve_credentials(cfg, env({{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                                             {"AWS_SECRET_ACCESS_KEY", "secretenv"}}));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("secret_access_key"), std::string::npos);
}

TEST(Credentials, EnvironmentKeysWithSessionToken) {
  auto r = bb::resolve_credentials({}, env({{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                                            {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                                            {"AWS_SESSION_TOKEN", "tokenenv"}}));
  ASSERT_TRUE(r.has_value());
  auto& c = std::get<bb::Credentials>(*r);
  EXPECT_EQ(c.access_key_id, "AKIDENV");
  EXPECT_EQ(c.session_token, "tokenenv");
}

TEST(Credentials, EnvironmentBearerTokenBeatsEnvironmentKeys) {
  auto r = bb::resolve_credentials({}, env({{"AWS_BEARER_TOKEN_BEDROCK", "ABSKenvkey"},
                                            {"AWS_ACCESS_KEY_ID", "AKIDENV"},
                                            {"AWS_SECRET_ACCESS_KEY", "secretenv"}}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<bb::BearerToken>(*r).token, "ABSKenvkey");
}

TEST(Credentials, EnvironmentIdWithoutSecretIsAnError) {
  auto r = bb::resolve_credentials({}, env({{"AWS_ACCESS_KEY_ID", "AKIDENV"}}));
  EXPECT_FALSE(r.has_value());
}

TEST(Credentials, EmptyVariablesCountAsUnset) {
  TempCredentialsFile f(kIni);
  auto r = bb::resolve_credentials({}, env({{"AWS_ACCESS_KEY_ID", ""},
                                            {"AWS_SECRET_ACCESS_KEY", ""},
                                            {"HOME", f.home()}}));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(std::get<bb::Credentials>(*r).access_key_id, "AKIDDEFAULT");
}

TEST(Credentials, SharedFileDefaultProfileUnderHome) {
  TempCredentialsFile f(kIni);
  auto r = bb::resolve_credentials({}, env({{"HOME", f.home()}}));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto& c = std::get<bb::Credentials>(*r);
  EXPECT_EQ(c.access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(c.secret_access_key, "secretdefault");
  EXPECT_FALSE(c.has_session_token());
}

TEST(Credentials, SharedFileProfileFromEnvironmentAndPathFromEnvironment) {
  TempCredentialsFile f(kIni);
  auto r = bb::resolve_credentials(
      {}, env({{"AWS_SHARED_CREDENTIALS_FILE", f.path()}, {"AWS_PROFILE", "work"}, {"HOME", "/nonexistent"}}));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto& c = std::get<bb::Credentials>(*r);
  EXPECT_EQ(c.access_key_id, "AKIDWORK");
  EXPECT_EQ(c.session_token, "tokenwork");
}

TEST(Credentials, ConfigProfileAndFileOverrideTheEnvironment) {
  TempCredentialsFile f(kIni);
  bb::CredentialConfig cfg;
  cfg.profile = "default";
  cfg.credentials_file = f.path();
  auto r = bb::resolve_credentials(cfg, env({{"AWS_PROFILE", "work"}, {"AWS_SHARED_CREDENTIALS_FILE", "/nope"}}));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(std::get<bb::Credentials>(*r).access_key_id, "AKIDDEFAULT");
}

TEST(Credentials, MissingProfileOrIncompleteProfileIsAnError) {
  TempCredentialsFile f(kIni);
  auto missing = bb::resolve_credentials({}, env({{"HOME", f.home()}, {"AWS_PROFILE", "nope"}}));
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("'nope' not found"), std::string::npos);
  auto broken = bb::resolve_credentials({}, env({{"HOME", f.home()}, {"AWS_PROFILE", "broken"}}));
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().message.find("AKIDBROKEN"), std::string::npos);
}

TEST(Credentials, NothingAnywhereIsAnError) {
  EXPECT_FALSE(bb::resolve_credentials({}, env({})).has_value());
  EXPECT_FALSE(bb::resolve_credentials({}, env({{"HOME", "/nonexistent-home"}})).has_value());
  auto explicit_missing = bb::resolve_credentials({}, env({{"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds"}}));
  ASSERT_FALSE(explicit_missing.has_value());
  EXPECT_NE(explicit_missing.error().message.find("/nonexistent/creds"), std::string::npos);
}

TEST(Credentials, IniParsingToleratesCrlfAndLegacyTokenName) {
  auto r = bb::parse_shared_credentials(
      "[p]\r\naws_access_key_id = A1\r\naws_secret_access_key = S1\r\naws_security_token = T1\r\n", "p");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->access_key_id, "A1");
  EXPECT_EQ(r->secret_access_key, "S1");
  EXPECT_EQ(r->session_token, "T1");
  // Keys of another profile never leak into the chosen one.
  auto other = bb::parse_shared_credentials("[a]\naws_access_key_id=X\n[b]\naws_secret_access_key=Y\n", "b");
  EXPECT_FALSE(other.has_value());
}

TEST(Credentials, ToStringNeverShowsSecrets) {
  bb::Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLETOKEN"};
  std::string s = bb::to_string(c);
  EXPECT_NE(s.find("AKIA..."), std::string::npos);
  EXPECT_EQ(s.find("AKIAIOSFODNN7EXAMPLE"), std::string::npos);
  EXPECT_EQ(s.find("wJalr"), std::string::npos);
  EXPECT_EQ(s.find("FwoGZ"), std::string::npos);
  EXPECT_NE(s.find("session_token=<redacted>"), std::string::npos);

  bb::BearerToken t{"ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"};
  std::string ts = bb::to_string(bb::Auth{t});
  EXPECT_EQ(ts, "bedrock-api-key{ABSK...}");
  EXPECT_EQ(bb::to_string(bb::Credentials{"AK", "s", ""}),
            "aws-credentials{access_key_id=AK..., secret_access_key=<redacted>, session_token=none}");
}

}  // namespace
