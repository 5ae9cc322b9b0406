#include "telemetry/log.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace blog = bulwark::log;

TEST(Log, EachLineIsOneValidJsonObject) {
  const std::string line = blog::format(blog::Level::warn, "upstream_attempt_failed",
                                       {{"target", "p/\"m\"\n"}, {"status", 503}, {"ratio", 0.5}, {"retry", true}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "no raw newline inside";
  const auto v = boost::json::parse(line);
  EXPECT_EQ(v.at("level").as_string(), "warn");
  EXPECT_EQ(v.at("event").as_string(), "upstream_attempt_failed");
  EXPECT_EQ(v.at("target").as_string(), "p/\"m\"\n");
  EXPECT_EQ(v.at("status").as_int64(), 503);
  EXPECT_EQ(v.at("retry").as_bool(), true);
  EXPECT_TRUE(v.at("ts").as_string().ends_with("Z"));
}

TEST(Log, LevelsFilter) {
  blog::set_level(blog::Level::warn);
  EXPECT_FALSE(blog::enabled(blog::Level::info));
  EXPECT_TRUE(blog::enabled(blog::Level::error));
  blog::set_level(blog::Level::info);
  EXPECT_EQ(blog::parse_level("debug"), blog::Level::debug);
  EXPECT_FALSE(blog::parse_level("loud").has_value());
}
