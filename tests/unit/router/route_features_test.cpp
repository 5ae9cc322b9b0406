// Request features from an OpenAI chat completions body.
#include <gtest/gtest.h>

#include <string>

#include "router/request_features.hpp"

namespace bulwark::router {
namespace {

RequestExtract extract(std::string body) {
  auto x = extract_request_features(body);
  EXPECT_TRUE(x.has_value()) << (x ? "" : x.error().message);
  return x ? std::move(*x) : RequestExtract{};
}

TEST(RequestFeatures, PlainMessages) {
  const RequestExtract x = extract(R"({"model":"auto","messages":[
    {"role":"system","content":"You are terse."},
    {"role":"user","content":"first question"},
    {"role":"assistant","content":"an answer"},
    {"role":"user","content":"second question"}],
    "max_tokens": 300, "user": "vip-1", "metadata": {"project": "legal-7", "n": 3}})");
  EXPECT_EQ(x.last_user_message, "second question");
  EXPECT_EQ(x.messages, 4u);
  EXPECT_EQ(x.max_tokens, 300);
  EXPECT_EQ(x.user, "vip-1");
  ASSERT_EQ(x.metadata.size(), 1u);  // only string values
  EXPECT_EQ(x.metadata[0], (std::pair<std::string, std::string>{"project", "legal-7"}));
  EXPECT_FALSE(x.has_tools);
  EXPECT_FALSE(x.has_images);
  // 14 + 14 + 9 + 15 = 52 text bytes -> 13 tokens, + 4 per message.
  EXPECT_EQ(x.input_tokens, 13u + 16u);
}

TEST(RequestFeatures, ContentPartsImagesAndTools) {
  const RequestExtract x = extract(R"({"model":"auto","messages":[
    {"role":"user","content":[{"type":"text","text":"look at"},
                              {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
                              {"type":"text","text":"this"}]}],
    "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
    "max_completion_tokens": 50, "max_tokens": 900})");
  EXPECT_EQ(x.last_user_message, "look at\nthis");
  EXPECT_TRUE(x.has_images);
  EXPECT_EQ(x.images, 1u);
  EXPECT_TRUE(x.has_tools);
  EXPECT_EQ(x.max_tokens, 50);  // max_completion_tokens wins
  EXPECT_GE(x.input_tokens, kTokensPerImage + kTokensPerMessage + 3);
}

TEST(RequestFeatures, EmptyToolsAndLegacyFunctions) {
  EXPECT_FALSE(extract(R"({"messages":[{"role":"user","content":"x"}],"tools":[]})").has_tools);
  EXPECT_TRUE(extract(R"({"messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]})").has_tools);
}

TEST(RequestFeatures, LastUserMessageWithOnlyAnImageIsEmpty) {
  const RequestExtract x = extract(R"({"messages":[{"role":"user","content":"older"},
    {"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}}]}]})");
  EXPECT_EQ(x.last_user_message, "");
  EXPECT_TRUE(x.has_images);
}

TEST(RequestFeatures, ToleratesOddShapes) {
  const RequestExtract x = extract(R"({"messages":[1, {"role":"user"}, {"role":"user","content":null}],
    "max_tokens": -1, "metadata": "no", "user": 5})");
  EXPECT_EQ(x.messages, 2u);
  EXPECT_FALSE(x.max_tokens);
  EXPECT_TRUE(x.metadata.empty());
  EXPECT_EQ(x.user, "");
}

TEST(RequestFeatures, InvalidJsonFails) {
  EXPECT_FALSE(extract_request_features(std::string("{nope")));
  EXPECT_FALSE(extract_request_features(std::string("[1,2]")));
}

TEST(RequestFeatures, PaddedBodyIsParsedInPlace) {
  std::string body = R"({"messages":[{"role":"user","content":"hello"}]})";
  body.reserve(body.size() + 128);
  auto x = extract_request_features(body);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->last_user_message, "hello");
}

TEST(RequestFeatures, ViewFromExtract) {
  const RequestExtract x = extract(R"({"messages":[{"role":"user","content":"q"}],"metadata":{"a":"b"},"user":"u"})");
  const RequestFeatures f = RequestFeatures::from(x);
  EXPECT_EQ(f.last_user_message, "q");
  EXPECT_EQ(f.user, "u");
  EXPECT_EQ(f.metadata_value("a"), "b");
  EXPECT_FALSE(f.metadata_value("z"));
  EXPECT_FALSE(f.header("anything"));  // no lookup given
}

TEST(RequestFeatures, HeaderLookupCallsTheCallable) {
  int calls = 0;
  auto fn = [&calls](std::string_view name) -> std::optional<std::string_view> {
    ++calls;
    if (name == "x-a") return "1";
    return std::nullopt;
  };
  HeaderLookup h(fn);
  EXPECT_TRUE(h);
  EXPECT_EQ(h("x-a"), "1");
  EXPECT_FALSE(h("x-b"));
  EXPECT_EQ(calls, 2);
}

TEST(RequestFeatures, TokenEstimate) {
  EXPECT_EQ(estimate_tokens_from_bytes(0), 0u);
  EXPECT_EQ(estimate_tokens_from_bytes(1), 1u);
  EXPECT_EQ(estimate_tokens_from_bytes(8), 2u);
  EXPECT_EQ(estimate_tokens_from_bytes(2000), 500u);
}

}  // namespace
}  // namespace bulwark::router
