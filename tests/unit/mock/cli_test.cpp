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

}  // namespace
}  // namespace bulwark::mock
