#include "mock/cli.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace bulwark::mock {
namespace {

Result<CliOptions> parse(std::vector<std::string_view> args) { return parse_cli(args); }

TEST(Cli, Defaults) {
  auto o = parse({});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 9000);
  EXPECT_EQ(o->workers, 1u);
  EXPECT_FALSE(o->api_key);
  EXPECT_FALSE(o->config_path);
}

TEST(Cli, AllOptions) {
  auto o = parse({"--listen", "0.0.0.0:0", "--config=b.yaml", "--workers", "4", "--api-key", "sk-1",
                  "--seed", "42"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->host, "0.0.0.0");
  EXPECT_EQ(o->port, 0);
  EXPECT_EQ(o->config_path, "b.yaml");
  EXPECT_EQ(o->workers, 4u);
  EXPECT_EQ(o->api_key, "sk-1");
  EXPECT_EQ(o->seed, 42u);
  auto v6 = parse({"--listen", "[::1]:8080"});
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_TRUE(parse({"--help"})->help);
  EXPECT_TRUE(parse({"--version"})->version);
}

TEST(Cli, Errors) {
  EXPECT_FALSE(parse({"--listen"}));
  EXPECT_FALSE(parse({"--listen", "9000"}));
  EXPECT_FALSE(parse({"--listen", "h:99999"}));
  EXPECT_FALSE(parse({"--workers", "0"}));
  EXPECT_FALSE(parse({"--seed", "-1"}));
  EXPECT_FALSE(parse({"--api-key="}));
  auto unknown = parse({"--verbose"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message, "unknown option '--verbose'");
}

TEST(Cli, AwsCredentialsFromFlagsOrEnvironment) {
  std::vector<std::string_view> args{"--aws-access-key-id", "AKID", "--aws-secret-access-key=SECRET",
                                     "--aws-region", "us-west-2"};
  auto o = parse_cli(args);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->aws_access_key_id, "AKID");
  EXPECT_EQ(o->aws_secret_access_key, "SECRET");
  EXPECT_EQ(o->aws_region, "us-west-2");
  EXPECT_FALSE(o->aws_bearer_token);

  const EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "BULWARK_MOCK_AWS_ACCESS_KEY_ID") return "ENVID";
    if (name == "BULWARK_MOCK_AWS_SECRET_ACCESS_KEY") return "ENVSECRET";
    if (name == "BULWARK_MOCK_AWS_SESSION_TOKEN") return "ENVTOKEN";
    if (name == "BULWARK_MOCK_AWS_BEARER_TOKEN") return "ABSKenv";
    return std::nullopt;
  };
  std::vector<std::string_view> flag_id{"--aws-access-key-id", "FLAGID", "--aws-secret-access-key", "S"};
  o = parse_cli(flag_id, env);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->aws_access_key_id, "FLAGID");  // flags win over the environment
  EXPECT_EQ(o->aws_secret_access_key, "S");
  EXPECT_EQ(o->aws_session_token, "ENVTOKEN");
  EXPECT_EQ(o->aws_bearer_token, "ABSKenv");
  EXPECT_TRUE(o->aws_region.empty());

  std::vector<std::string_view> half{"--aws-access-key-id", "AKID"};
  EXPECT_FALSE(parse_cli(half));
  std::vector<std::string_view> token_only{"--aws-session-token", "T"};
  EXPECT_FALSE(parse_cli(token_only));
  std::vector<std::string_view> empty{"--aws-bearer-token="};
  EXPECT_FALSE(parse_cli(empty));
}

}  // namespace
}  // namespace bulwark::mock
