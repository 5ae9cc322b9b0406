// The governance admin API's JSON (shared with the CLI) and its routing, against a real
// SQLite store in a temporary folder.
#include "pipeline/admin_governance.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "pipeline/governance.hpp"
#include "pipeline/runtime.hpp"
#include "support/temp_dir.hpp"

namespace p = bulwark::pipeline;
namespace bj = boost::json;
using bulwark::ErrorKind;

namespace {

const auto kNow = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'795'000'000'000));

TEST(AdminGovernanceParseWhen, ReadsDatesTimesOffsetsMillisAndSpans) {
  EXPECT_EQ(p::parse_when("2026-11-01", kNow).value(), 1'793'491'200'000);
  EXPECT_EQ(p::parse_when("2026-11-01T12:00:00Z", kNow).value(), 1'793'491'200'000 + 12 * 3'600'000);
  EXPECT_EQ(p::parse_when("2026-11-01T12:00:00.250Z", kNow).value(), 1'793'491'200'000 + 12 * 3'600'000 + 250);
  EXPECT_EQ(p::parse_when("2026-11-01T13:30:00+01:30", kNow).value(), 1'793'491'200'000 + 12 * 3'600'000);
  EXPECT_EQ(p::parse_when("1793491200000", kNow).value(), 1'793'491'200'000);
  EXPECT_EQ(p::parse_when("7d", kNow).value(), 1'795'000'000'000 - 7 * 86'400'000LL);
  EXPECT_EQ(p::parse_when("90m", kNow).value(), 1'795'000'000'000 - 90 * 60'000LL);
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-01T12:00:00", "2026-11-01T12:00Z", "2026-11-01X", "7x"})
    EXPECT_FALSE(p::parse_when(bad, kNow).has_value()) << bad;
}

TEST(AdminGovernanceRfc3339, RoundTripsThroughParseWhen) {
  const bulwark::storage::UnixMillis t = 1'793'491'200'123;
  EXPECT_EQ(p::rfc3339(t), "2026-11-01T00:00:00.123Z");
  EXPECT_EQ(p::parse_when(p::rfc3339(t), kNow).value(), t);
}

TEST(AdminGovernanceKeySpec, ReadsEveryFieldWithExactMoney) {
  auto spec = p::key_spec_from_json(R"({"name":"alice","team_id":"search","models":["gpt-*","claude-*"],
    "rpm":60,"tpm":100000,"budget_usd":"12.345678901","budget_period":"week","max_parallel":4,
    "metadata":{"owner":"ops"},"policy_profile":"strict","expires_at":"2027-01-01T00:00:00Z"})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->name, "alice");
  EXPECT_EQ(spec->team_id, "search");
  EXPECT_EQ(spec->allowed_models, (std::vector<std::string>{"gpt-*", "claude-*"}));
  EXPECT_EQ(spec->limits.rpm, 60);
  EXPECT_EQ(spec->limits.tpm, 100000);
  EXPECT_EQ(spec->limits.budget_nano_usd, 12'345'678'901);
  EXPECT_EQ(spec->limits.budget_period, bulwark::storage::BudgetPeriod::week);
  EXPECT_EQ(spec->max_parallel, 4);
  EXPECT_EQ(spec->metadata_json, R"({"owner":"ops"})");
  EXPECT_EQ(spec->policy_profile, "strict");
  EXPECT_EQ(spec->expires_at, 1'798'761'600'000);
}

TEST(AdminGovernanceKeySpec, AcceptsTheCliForms) {
  // The CLI passes comma lists, numbers as budget and metadata as JSON text.
  auto spec = p::key_spec_from_json(R"({"name":"cli","models":"gpt-4o, gpt-4o-mini","budget_usd":5,"metadata":"{\"a\":1}"})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->allowed_models, (std::vector<std::string>{"gpt-4o", "gpt-4o-mini"}));
  EXPECT_EQ(spec->limits.budget_nano_usd, 5'000'000'000);
  EXPECT_EQ(spec->metadata_json, R"({"a":1})");
}

TEST(AdminGovernanceKeySpec, RefusesBadInputNamingTheField) {
  struct Case {
    const char* body;
    const char* param;
  };
  for (const Case& c : {Case{R"({})", "name"}, Case{R"({"name":"x","rpm":-1})", "rpm"}, Case{R"({"name":"x","rpm":1.5})", "rpm"},
                        Case{R"({"name":"x","budget_usd":"ten"})", "budget_usd"}, Case{R"({"name":"x","budget_period":"year"})", "budget_period"},
                        Case{R"({"name":"x","models":[1]})", "models"}, Case{R"({"name":"x","metadata":[1]})", "metadata"},
                        Case{R"({"name":"x","colour":"red"})", "colour"}, Case{R"({"name":"x","expires_at":"soon"})", "expires_at"}}) {
    auto spec = p::key_spec_from_json(c.body);
    ASSERT_FALSE(spec) << c.body;
    EXPECT_EQ(spec.error().kind, ErrorKind::bad_request) << c.body;
    EXPECT_EQ(spec.error().param, c.param) << c.body;
  }
  EXPECT_EQ(p::key_spec_from_json("{not json").error().kind, ErrorKind::invalid_json);
  EXPECT_EQ(p::key_spec_from_json("[1]").error().kind, ErrorKind::bad_request);
}

TEST(AdminGovernanceKeyUpdate, CarriesOnlyTheFieldsGiven) {
  auto u = p::key_update_from_json(R"({"rpm":10})");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->name);
  EXPECT_FALSE(u->allowed_models);
  ASSERT_TRUE(u->limits);
  EXPECT_EQ(u->limits->rpm, 10);
  auto clear = p::key_update_from_json(R"({"expires_at":null,"team_id":null})");
  ASSERT_TRUE(clear);
  ASSERT_TRUE(clear->expires_at);
  EXPECT_FALSE(clear->expires_at->has_value());
  EXPECT_EQ(clear->team_id, "");
}

class AdminGovernanceApi : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cfg = bulwark::config::load_string(R"(governance: {database: )" + (dir.path() / "g.db").string() + R"(}
admin: {master_key: test-master-key-0123456789-abcdefghij}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models: {m: {targets: [{provider: p, model: x}]}}
)",
                                            [](std::string_view) { return std::optional<std::string>(); });
    ASSERT_TRUE(cfg);
    auto g = p::Governance::open((*cfg)->governance);
    ASSERT_TRUE(g) << g.error().message;
    governance = std::move(*g);
    auto rt = p::Runtime::build(*cfg, health, [](std::string_view) { return std::optional<std::string>(); }, governance.get());
    ASSERT_TRUE(rt) << rt.error().message;
    runtime = *rt;
  }
  p::AdminReply call(std::string_view method, std::string_view target, std::string_view body = {},
                     std::string_view auth = "Bearer test-master-key-0123456789-abcdefghij") {
    return p::admin_governance(*runtime, {method, target, body, auth});
  }

  bulwark::test::TempDir dir;
  p::HealthRegistry health;
  std::unique_ptr<p::Governance> governance;
  std::shared_ptr<const p::Runtime> runtime;
};

TEST_F(AdminGovernanceApi, NeedsTheMasterKey) {
  EXPECT_EQ(call("GET", "/admin/keys", {}, "").status, 401u);
  EXPECT_EQ(call("GET", "/admin/keys", {}, "Bearer wrong-key-0123456789-abcdefghijklmn").status, 401u);
  EXPECT_EQ(call("GET", "/admin/keys").status, 200u);
}

TEST_F(AdminGovernanceApi, KeyLifecycleAndPatchKeepsUnnamedLimits) {
  auto created = call("POST", "/admin/keys", R"({"name":"a","rpm":5,"tpm":500,"budget_usd":"1"})");
  ASSERT_EQ(created.status, 201u) << created.body;
  const bj::object o = bj::parse(created.body).as_object();
  const std::string id(o.at("key").at("id").as_string());
  const std::string secret(o.at("secret").as_string());
  ASSERT_TRUE(governance->key_cache().resolve(secret)) << "the cache saw the new key at once";

  auto patched = call("PATCH", "/admin/keys/" + id, R"({"rpm":7})");
  ASSERT_EQ(patched.status, 200u) << patched.body;
  const bj::object k = bj::parse(patched.body).as_object();
  EXPECT_EQ(k.at("rpm").as_int64(), 7);
  EXPECT_EQ(k.at("tpm").as_int64(), 500);
  EXPECT_EQ(k.at("budget_usd").as_string(), "1.000000000");
  EXPECT_EQ(patched.body.find(secret.substr(4)), std::string::npos);

  auto shown = call("GET", "/admin/keys/" + id);
  ASSERT_EQ(shown.status, 200u);
  EXPECT_TRUE(bj::parse(shown.body).as_object().contains("budget"));
  EXPECT_EQ(call("GET", "/admin/keys/nope").status, 404u);
  EXPECT_EQ(call("DELETE", "/admin/keys/" + id).status, 200u);
  EXPECT_FALSE(governance->key_cache().resolve(secret));
  EXPECT_EQ(call("PUT", "/admin/keys").status, 405u);
}

TEST_F(AdminGovernanceApi, TeamsSpendAndAudit) {
  EXPECT_EQ(call("POST", "/admin/teams", R"({"id":"t1","name":"T","rpm":3})").status, 201u);
  auto patched = call("PATCH", "/admin/teams/t1", R"({"tpm":9})");
  ASSERT_EQ(patched.status, 200u) << patched.body;
  EXPECT_EQ(bj::parse(patched.body).at("rpm").as_int64(), 3);
  EXPECT_EQ(bj::parse(patched.body).at("tpm").as_int64(), 9);
  auto spend = call("GET", "/admin/spend?by=model&since=7d");
  ASSERT_EQ(spend.status, 200u) << spend.body;
  EXPECT_EQ(bj::parse(spend.body).at("by").as_string(), "model");
  EXPECT_EQ(call("GET", "/admin/spend?by=colour").status, 400u);
  auto verify = call("GET", "/admin/audit/verify");
  ASSERT_EQ(verify.status, 200u);
  EXPECT_TRUE(bj::parse(verify.body).at("ok").as_bool());
  EXPECT_EQ(call("GET", "/admin/audit").content_type, "application/x-ndjson");
}

TEST(AdminGovernancePaths, MatchesOnlyItsPrefixes) {
  EXPECT_TRUE(p::is_governance_admin_path("/admin/keys"));
  EXPECT_TRUE(p::is_governance_admin_path("/admin/keys/abc/rotate"));
  EXPECT_TRUE(p::is_governance_admin_path("/admin/spend?by=day"));
  EXPECT_FALSE(p::is_governance_admin_path("/admin/keysmith"));
  EXPECT_FALSE(p::is_governance_admin_path("/admin/targets"));
}

}  // namespace
