#include "api/openai/chat.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace oa = bulwark::api::openai;
using bulwark::ErrorKind;

namespace {
boost::json::value json(std::string_view s) { return boost::json::parse(s); }
}  // namespace

TEST(OpenAIChatDecode, ReadsTheFieldsTheGatewayNeeds) {
  auto r = oa::decode_chat_request(
      R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":50})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->max_tokens, 50);
}

TEST(OpenAIChatDecode, RejectsBadInputWithTheRightKindAndParam) {
  struct Case { std::string_view body; ErrorKind kind; std::string_view param; };
  for (const Case& c : {
           Case{"{", ErrorKind::invalid_json, ""},
           Case{"[]", ErrorKind::invalid_json, ""},
           Case{R"({"messages":[{"role":"user","content":"x"}]})", ErrorKind::bad_request, "model"},
           Case{R"({"model":"m"})", ErrorKind::bad_request, "messages"},
           Case{R"({"model":"m","messages":[]})", ErrorKind::bad_request, "messages"},
           Case{R"({"model":"m","messages":["x"]})", ErrorKind::bad_request, "messages"},
           Case{R"({"model":1,"messages":[{}]})", ErrorKind::bad_request, "model"},
           Case{R"({"model":"m","messages":[{}],"stream":1})", ErrorKind::bad_request, "stream"},
           Case{R"({"model":"m","messages":[{}],"max_tokens":-5})", ErrorKind::bad_request, "max_tokens"},
           Case{R"({"model":"m","messages":[{}],"stream_options":{"include_usage":"yes"}})", ErrorKind::bad_request, "stream_options"},
       }) {
    auto r = oa::decode_chat_request(std::string(c.body));
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().kind, c.kind) << c.body;
    EXPECT_EQ(r.error().param, c.param) << c.body;
    EXPECT_FALSE(r.error().retryable);
  }
}

// A key twice in one object: the gateway's reading and the upstream's could differ (a
// policy reads the first "content", the upstream acts on the last), so it is refused.
TEST(OpenAIChatDecode, RefusesAKeyNamedTwiceInOneObjectAnywhere) {
  std::string many = R"({"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{)";
  for (int i = 0; i < 40; ++i) many += "\"k" + std::to_string(i) + "\":1,";
  many += R"("k17":2}})";
  for (const std::string& body : {
           std::string(R"({"model":"m","model":"n","messages":[{"role":"user","content":"x"}]})"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":"hi","content":"card 4111 1111 1111 1111"}]})"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"messages":[{"role":"user","content":"x"}]})"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","text":"b"}]}]})"),
           std::string(R"({"model":"m","messages":[{"role":"user","content":"x","cont\u0065nt":"y"}]})"),
           std::string(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"max_tokens":100000})"),
           many,
       }) {
    auto r = oa::decode_chat_request(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().kind, ErrorKind::bad_request) << body;
    EXPECT_NE(r.error().message.find("twice"), std::string::npos) << r.error().message;
  }
  // The same names in different objects are not duplicates.
  EXPECT_TRUE(oa::decode_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"metadata":{"model":"x"}})"));
}

TEST(OpenAIChatUpstreamBody, SplicesTheTargetModelAndKeepsEverythingElse) {
  auto r = oa::decode_chat_request(
      R"({"temperature":0.2,"model":"alias\"x","messages":[{"role":"user","content":"model: \"no\""}],"tools":[{"model":"inner"}]})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->model, "alias\"x");
  const auto out = json(oa::upstream_body(*r, "provider/model-1"));
  EXPECT_EQ(out.at("model").as_string(), "provider/model-1");
  EXPECT_EQ(out.at("temperature").as_double(), 0.2);
  EXPECT_EQ(out.at("messages").at(0).at("content").as_string(), "model: \"no\"");
  EXPECT_EQ(out.at("tools").at(0).at("model").as_string(), "inner");
  EXPECT_FALSE(out.as_object().contains("stream_options"));
}

TEST(OpenAIChatUpstreamBody, AsksForUsageOnEveryStream) {
  auto plain = oa::decode_chat_request(R"({"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->include_usage);
  auto out = json(oa::upstream_body(*plain, "t"));
  EXPECT_TRUE(out.at("stream_options").at("include_usage").as_bool());
  EXPECT_EQ(out.at("model").as_string(), "t");

  auto other = oa::decode_chat_request(R"({"model":"m","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]})");
  ASSERT_TRUE(other.has_value());
  out = json(oa::upstream_body(*other, "t"));
  EXPECT_TRUE(out.at("stream_options").at("include_usage").as_bool());
  EXPECT_EQ(out.at("stream_options").at("x").as_int64(), 1);
}

TEST(OpenAIChatErrors, HaveOpenAIsShape) {
  const auto body = json(oa::error_body(bulwark::Error::client(ErrorKind::model_not_found, "no \"such\" model", "model")));
  const auto& e = body.at("error");
  EXPECT_EQ(e.at("message").as_string(), "no \"such\" model");
  EXPECT_EQ(e.at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(e.at("param").as_string(), "model");
  EXPECT_EQ(e.at("code").as_string(), "model_not_found");
  const auto internal = json(oa::error_body(bulwark::Error::gateway(ErrorKind::bad_request, "x")));
  EXPECT_TRUE(internal.at("error").at("param").is_null());
}
