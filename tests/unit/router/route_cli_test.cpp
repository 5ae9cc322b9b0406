// `bulwark route score|explain`, called as functions with string streams.
#include "app/route_cli.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "support/temp_dir.hpp"

namespace bulwark::app {
namespace {

constexpr const char* kConfig = R"(providers:
  p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  cheap: {targets: [{provider: p, model: small}]}
  strong: {targets: [{provider: p, model: big}]}
  auto:
    router:
      tiers: [cheap, strong]
      rules:
        - name: legal
          when: {last_user_message: "(?i)contract"}
          tier: strong
      complexity: {thresholds: [0.5]}
      objectives:
        speed: {tier: cheap}
)";

class RouteCli : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (dir_.path() / "bulwark.yaml").string();
    std::ofstream(path_) << kConfig;
  }
  int run(std::vector<std::string_view> args, const std::string& input = {}) {
    std::istringstream in(input);
    out_.str("");
    err_.str("");
    return route_command(args, in, out_, err_);
  }
  bulwark::test::TempDir dir_;
  std::string path_;
  std::ostringstream out_, err_;
};

TEST_F(RouteCli, ScoreWritesOneLinePerPromptAndSkipsBadLines) {
  const std::string input =
      "{\"id\": 1, \"prompt\": \"hi\"}\n"
      "not json\n"
      "\n"
      "{\"id\": \"b\", \"prompt\": \"Please review this CONTRACT\"}\n"
      "{\"prompt\": \"no id\"}\n"
      "{\"id\": 3, \"prompt\": 5}\n"
      "{\"id\": {\"k\": [1, 2]}, \"prompt\": \"x\"}\n";
  EXPECT_EQ(run({"score", "--config", path_, "--model", "auto"}, input), 1);  // bad lines -> exit 1
  std::istringstream lines(out_.str());
  std::string l;
  std::vector<std::string> got;
  while (std::getline(lines, l)) got.push_back(l);
  ASSERT_EQ(got.size(), 3u) << out_.str();
  EXPECT_TRUE(got[0].starts_with("{\"id\":1,\"score\":0.")) << got[0];
  EXPECT_TRUE(got[0].ends_with(",\"tier\":\"cheap\"}") || got[0].ends_with(",\"tier\":\"strong\"}")) << got[0];
  EXPECT_TRUE(got[1].starts_with("{\"id\":\"b\",\"score\":")) << got[1];
  EXPECT_TRUE(got[1].ends_with(",\"tier\":\"strong\"}")) << got[1];  // the rule
  EXPECT_TRUE(got[2].starts_with("{\"id\":{\"k\":[1,2]},\"score\":")) << got[2];
  const std::string err = err_.str();
  EXPECT_NE(err.find("line 2: not valid JSON"), std::string::npos) << err;
  EXPECT_NE(err.find("line 5: missing \"id\""), std::string::npos) << err;
  EXPECT_NE(err.find("line 6: missing or non-string \"prompt\""), std::string::npos) << err;
}

TEST_F(RouteCli, ScoreCleanInputExitsZeroAndHonoursObjective) {
  EXPECT_EQ(run({"score", "--config", path_, "--model", "auto", "--objective", "speed"},
                "{\"id\":1,\"prompt\":\"a long and difficult question about thermodynamics\"}\n"),
            0);
  EXPECT_TRUE(out_.str().ends_with("\"tier\":\"cheap\"}\n")) << out_.str();
}

TEST_F(RouteCli, ExplainPrintsDecisionAndFeatures) {
  EXPECT_EQ(run({"explain", "--config", path_, "--model", "auto", "--top", "3", "What is 2+2?"}), 0) << err_.str();
  const std::string o = out_.str();
  EXPECT_NE(o.find("decided by: complexity score"), std::string::npos) << o;
  EXPECT_NE(o.find("x-bulwark-route: tier="), std::string::npos) << o;
  EXPECT_NE(o.find("top features"), std::string::npos) << o;
  EXPECT_NE(o.find("(all other features)"), std::string::npos) << o;

  EXPECT_EQ(run({"explain", "--config", path_, "--model", "auto"}, "Draft a contract\n"), 0);
  EXPECT_NE(out_.str().find("decided by: rule 'legal'"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("x-bulwark-route: tier=strong; rule=legal"), std::string::npos);
}

TEST_F(RouteCli, UsageAndConfigErrors) {
  EXPECT_EQ(run({}), 2);
  EXPECT_EQ(run({"rank"}), 2);
  EXPECT_EQ(run({"score", "--model", "auto"}), 2);
  EXPECT_EQ(run({"score", "--config", path_}), 2);
  EXPECT_EQ(run({"score", "--config", path_, "--model", "auto", "--objective", "fast"}), 2);
  EXPECT_EQ(run({"score", "--config", path_, "--model", "auto", "--bogus"}), 2);
  EXPECT_EQ(run({"score", "--config", path_, "--model", "nope"}), 1);
  EXPECT_NE(err_.str().find("no model named 'nope'"), std::string::npos);
  EXPECT_EQ(run({"score", "--config", path_, "--model", "cheap"}), 1);
  EXPECT_NE(err_.str().find("not a routed model"), std::string::npos);
  EXPECT_EQ(run({"score", "--config", (dir_.path() / "missing.yaml").string(), "--model", "auto"}), 1);
}

TEST(RouteCliFeatures, PromptFeatures) {
  const router::RequestFeatures f = prompt_features(std::string(400, 'a'));
  EXPECT_EQ(f.last_user_message.size(), 400u);
  EXPECT_EQ(f.input_tokens, 100u + router::kTokensPerMessage);
}

}  // namespace
}  // namespace bulwark::app
