#include "core/error.hpp"

#include <gtest/gtest.h>

using bulwark::ErrorKind;

TEST(ErrorTable, StatusesFollowHttpSemantics) {
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::invalid_json), 400);
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::model_not_found), 404);
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::payload_too_large), 413);
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::upstream_server_error), 502);
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::no_healthy_target), 503);
  EXPECT_EQ(bulwark::http_status_of(ErrorKind::total_timeout), 504);
  EXPECT_EQ(bulwark::shape_of(ErrorKind::model_not_found).openai_code, "model_not_found");
}

TEST(ErrorTable, CallersFaultIsNeverAnUpstreamOutage) {
  EXPECT_TRUE(bulwark::is_callers_fault(ErrorKind::context_length_exceeded));
  EXPECT_TRUE(bulwark::is_callers_fault(ErrorKind::upstream_bad_request));
  EXPECT_FALSE(bulwark::is_callers_fault(ErrorKind::upstream_rate_limited));
  EXPECT_FALSE(bulwark::is_callers_fault(ErrorKind::connection_reset));
}
