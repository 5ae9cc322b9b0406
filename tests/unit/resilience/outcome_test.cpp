#include "resilience/outcome.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace bulwark::resilience {
namespace {

using K = ErrorKind;
using C = FailureClass;

TEST(FailureClassNames, RoundTripForEveryClassAndAreUnique) {
  std::set<std::string_view> seen;
  for (const auto c : all_failure_classes()) {
    const auto name = to_string(c);
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_EQ(failure_class_from_name(name), c) << name;
  }
  EXPECT_EQ(seen.size(), kFailureClassCount);
  EXPECT_EQ(failure_class_from_name("HTTP_5XX"), std::nullopt);
  EXPECT_EQ(failure_class_from_name("nope"), std::nullopt);
}

TEST(Classify, MapsUpstreamAndTransportKinds) {
  EXPECT_EQ(classify(K::upstream_server_error), C::http_5xx);
  EXPECT_EQ(classify(K::upstream_rate_limited), C::rate_limited);
  EXPECT_EQ(classify(K::upstream_overloaded), C::overloaded);
  EXPECT_EQ(classify(K::connect_failed), C::connect_error);
  EXPECT_EQ(classify(K::connect_timeout), C::connect_timeout);
  EXPECT_EQ(classify(K::first_token_timeout), C::first_token_timeout);
  EXPECT_EQ(classify(K::idle_timeout), C::idle_timeout);
  EXPECT_EQ(classify(K::total_timeout), C::total_timeout);
  EXPECT_EQ(classify(K::connection_reset), C::connection_reset);
  EXPECT_EQ(classify(K::upstream_protocol), C::protocol_error);
  EXPECT_EQ(classify(K::stream_truncated), C::protocol_error);
  EXPECT_EQ(classify(K::upstream_auth), C::upstream_auth);
  EXPECT_EQ(classify(K::upstream_not_found), C::upstream_not_found);
  EXPECT_EQ(classify(K::internal), C::gateway_fault);
  EXPECT_EQ(classify(Error::transport(K::connect_timeout, "x")), C::connect_timeout);
}

TEST(Classify, CallersMistakesAreClientFaults) {
  EXPECT_EQ(classify(K::context_length_exceeded), C::context_length);
  EXPECT_EQ(classify(K::content_filtered), C::content_filter);
  for (const auto k : {K::bad_request, K::invalid_json, K::unauthenticated, K::permission_denied,
                       K::model_not_found, K::rate_limited, K::budget_exceeded,
                       K::upstream_bad_request})
    EXPECT_EQ(classify(k), C::client_fault) << name_of(k);
  // Agrees with the core table about whose fault it is, for every kind.
  for (int i = 0; i <= static_cast<int>(K::internal); ++i) {
    const auto k = static_cast<K>(i);
    EXPECT_EQ(is_callers_fault(k), is_client_fault(classify(k))) << name_of(k);
  }
}

TEST(FailurePolicy, DefaultCountsTargetFailuresOnly) {
  const auto p = FailurePolicy::defaults();
  EXPECT_FALSE(p.counts(C::success));
  EXPECT_FALSE(p.counts(C::client_fault));
  EXPECT_FALSE(p.counts(C::context_length));
  EXPECT_FALSE(p.counts(C::content_filter));
  EXPECT_FALSE(p.counts(C::gateway_fault));
  EXPECT_TRUE(p.counts(C::upstream_auth));
  for (const auto c : {C::http_5xx, C::rate_limited, C::overloaded, C::connect_error,
                       C::connect_timeout, C::first_token_timeout, C::idle_timeout,
                       C::total_timeout, C::connection_reset, C::protocol_error,
                       C::upstream_not_found})
    EXPECT_TRUE(p.counts(c)) << to_string(c);
}

TEST(FailurePolicy, BuildsFromNamesAndRoundTrips) {
  const std::vector<std::string> names{"http_5xx", "connect_timeout"};
  const auto p = FailurePolicy::from_names(names);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->counts(C::http_5xx));
  EXPECT_TRUE(p->counts(C::connect_timeout));
  EXPECT_FALSE(p->counts(C::rate_limited));
  EXPECT_EQ(p->names(), (std::vector<std::string_view>{"http_5xx", "connect_timeout"}));

  const auto d = FailurePolicy::defaults();
  const auto names_of_default = d.names();
  EXPECT_EQ(FailurePolicy::from_names(names_of_default), d);
}

TEST(FailurePolicy, RejectsUnknownNamesAndSuccess) {
  const std::vector<std::string> bad{"http_5xx", "teapot"};
  const auto p = FailurePolicy::from_names(bad);
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("teapot"), std::string::npos);
  const std::vector<std::string_view> success{"success"};
  EXPECT_FALSE(FailurePolicy::from_names(success).has_value());
}

TEST(FailurePolicy, AddRemoveAndSuccessNeverCounts) {
  auto p = FailurePolicy::none();
  p.add(C::content_filter).add(C::success);
  EXPECT_TRUE(p.counts(C::content_filter));
  EXPECT_FALSE(p.counts(C::success));
  p.remove(C::content_filter);
  EXPECT_EQ(p, FailurePolicy::none());
}

}  // namespace
}  // namespace bulwark::resilience
