// api/detail/dom.hpp: the simdjson readers and writer must behave exactly as support.hpp's
// Boost.JSON ones (same values, same 400s with the same messages, same normalized text),
// since the translators moved from one to the other without changing their output.
#include "api/detail/dom.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "api/detail/support.hpp"

namespace {

namespace detail = bulwark::api::detail;
namespace bj = boost::json;
namespace sd = simdjson::dom;
using detail::ParserSlot;

sd::object sd_object(std::string_view text, ParserSlot slot = ParserSlot::request) {
  auto o = detail::parse_object(slot, text);
  EXPECT_TRUE(o.has_value()) << text;
  return *o;
}

std::string outcome(const bulwark::Status& s) { return s ? "ok" : s.error().message + " @" + s.error().param; }

TEST(DetailDom, WriteMatchesTheBoostWriter) {
  const std::vector<std::string> texts = {
      R"({"a":1,"b":-2,"c":18446744073709551615,"d":0.7,"e":1e3,"f":1.50,"g":-0.0001,"h":1E-7})",
      R"({ "s" : "tab\tquote\"slash\\nl\ncontrol\u0001 unicode \u00e9 \ud83d\ude00 slash\/" })",
      R"([true,false,null,[],{},[[1,[2]]],{"x":{"y":{"z":[]}}}])",
      R"({"type":"object","properties":{"from":{"type":"string"},"n":{"type":"integer","minimum":0}},"required":["from"]})",
      R"("just a string")", R"(42)", R"(12.25)"};
  for (const std::string& text : texts) {
    bj::error_code ec;
    const bj::value b = detail::parse_value(text, ec);
    ASSERT_FALSE(ec) << text;
    const auto s = detail::parse_value(ParserSlot::fragment, text);
    ASSERT_TRUE(s.has_value()) << text;
    EXPECT_EQ(detail::to_json(*s), detail::to_json(b)) << text;
  }
}

TEST(DetailDom, ReadersMatchTheBoostReaders) {
  const std::string text =
      R"({"s":"x","n":null,"i":7,"big":18446744073709551615,"whole":100.0,"frac":1.5,"huge":1e300,"neg":-3,)"
      R"("b":true,"o":{"k":1},"a":[1],"ss":["p","q"],"mixed":["p",1]})";
  const sd::object so = sd_object(text);
  bj::value storage;
  const bj::object& bo = **detail::parse_object(text, storage);
  for (const std::string_view key : {"s", "n", "i", "big", "whole", "frac", "huge", "neg", "b", "o", "a", "ss", "mixed", "absent"}) {
    SCOPED_TRACE(std::string(key));
    std::string s1 = "unset", s2 = "unset";
    EXPECT_EQ(outcome(detail::read_string(so, key, s1, "p")), outcome(detail::read_string(bo, key, s2, "p")));
    EXPECT_EQ(s1, s2);
    std::optional<std::int64_t> i1, i2;
    EXPECT_EQ(outcome(detail::read_int(so, key, i1, "p")), outcome(detail::read_int(bo, key, i2, "p")));
    EXPECT_EQ(i1, i2);
    std::optional<double> d1, d2;
    EXPECT_EQ(outcome(detail::read_double(so, key, d1, "p")), outcome(detail::read_double(bo, key, d2, "p")));
    EXPECT_EQ(d1, d2);
    std::optional<bool> b1, b2;
    EXPECT_EQ(outcome(detail::read_bool(so, key, b1, "")), outcome(detail::read_bool(bo, key, b2, "")));
    EXPECT_EQ(b1, b2);
    std::vector<std::string> v1, v2;
    EXPECT_EQ(outcome(detail::read_strings(so, key, v1, "p")), outcome(detail::read_strings(bo, key, v2, "p")));
    EXPECT_EQ(v1, v2);
    auto o1 = detail::read_object(so, key, "p");
    auto o2 = detail::read_object(bo, key, "p");
    ASSERT_EQ(o1.has_value(), o2.has_value());
    if (o1) EXPECT_EQ(o1->has_value(), *o2 != nullptr);
    else EXPECT_EQ(o1.error().message, o2.error().message);
    auto a1 = detail::read_array(so, key, "p");
    auto a2 = detail::read_array(bo, key, "p");
    ASSERT_EQ(a1.has_value(), a2.has_value());
    if (a1) EXPECT_EQ(a1->has_value(), *a2 != nullptr);
    else EXPECT_EQ(a1.error().param, a2.error().param);
    EXPECT_EQ(detail::count(so, key), detail::count(bo, key));
  }
  EXPECT_TRUE(detail::contains(so, "n"));  // present, even though null reads as "not given"
  EXPECT_FALSE(detail::find(so, "n").has_value());
  EXPECT_EQ(detail::string_of(so, "s"), "x");
  EXPECT_EQ(detail::string_of(so, "i"), "");
}

TEST(DetailDom, ParseErrorsAreTheBoostOnes) {
  bj::value storage;
  for (const std::string_view body : {"{", "[1,2]", "", "nul", "{\"a\":1,}"}) {
    const auto s = detail::parse_object(ParserSlot::request, body);
    const auto b = detail::parse_object(body, storage);
    ASSERT_FALSE(s.has_value()) << body;
    ASSERT_FALSE(b.has_value()) << body;
    EXPECT_EQ(s.error().kind, b.error().kind) << body;
    EXPECT_EQ(s.error().message, b.error().message) << body;
  }
}

TEST(DetailDom, ParsersOfDifferentSlotsDoNotOverwriteEachOther) {
  const sd::object request = sd_object(R"({"model":"m1","n":1})", ParserSlot::request);
  const sd::object answer = sd_object(R"({"model":"other","n":2})", ParserSlot::answer);
  ASSERT_TRUE(detail::parse_value(ParserSlot::fragment, R"({"x":[1,2,3]})").has_value());
  EXPECT_EQ(detail::string_of(request, "model"), "m1");
  EXPECT_EQ(detail::string_of(answer, "model"), "other");
}

TEST(DetailDom, ArgumentsObjectsAreNormalizedOrRefused) {
  std::string out;
  ASSERT_TRUE(detail::append_arguments_object(out, "  \n", "messages[1].content[0].arguments"));
  EXPECT_EQ(out, "{}");
  out.clear();
  ASSERT_TRUE(detail::append_arguments_object(out, R"( { "city" : "Paris", "days" : 3.0, "n": [ 1 , 2 ] } )", "p"));
  EXPECT_EQ(out, R"({"city":"Paris","days":3,"n":[1,2]})");
  for (const std::string_view bad : {"[1]", "\"s\"", "{\"a\":", "not json"}) {
    out.clear();
    const auto s = detail::append_arguments_object(out, bad, "messages[1].content[0].arguments");
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().message, "'messages[1].content[0].arguments' must be a JSON object encoded as a string.");
    EXPECT_EQ(s.error().param, "messages[1].content[0].arguments");
    // the same verdict as the Boost.JSON reader it replaces
    EXPECT_FALSE(detail::arguments_object(bad, "x").has_value()) << bad;
  }
}

TEST(DetailDom, SchemaObjectsDefaultToAnObjectSchema) {
  std::string out;
  ASSERT_TRUE(detail::append_schema_object(out, "", "tools[0]"));
  EXPECT_EQ(out, R"({"type":"object"})");
  out.clear();
  const auto s = detail::append_schema_object(out, "[]", "tools[3]");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "'tools[3]' must be a JSON Schema object.");
  EXPECT_EQ(s.error().param, "tools[3]");
}

}  // namespace
