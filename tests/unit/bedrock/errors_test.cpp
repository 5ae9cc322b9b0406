#include "providers/bedrock/errors.hpp"

#include <gtest/gtest.h>

namespace bb = bulwark::bedrock;
namespace es = bulwark::bedrock::eventstream;
using bulwark::ErrorKind;
using bulwark::Origin;

namespace {

struct Row {
  const char* type;
  int status;
  ErrorKind kind;
  bool retryable;
};

class ErrorTable : public ::testing::TestWithParam<Row> {};

TEST_P(ErrorTable, MapsTypeToKindAndRetryability) {
  const Row& row = GetParam();
  auto e = bb::map_error(row.type, row.status, "something happened");
  EXPECT_EQ(e.kind, row.kind) << row.type << " -> " << bulwark::name_of(e.kind);
  EXPECT_EQ(e.retryable, row.retryable) << row.type;
  EXPECT_EQ(e.origin, Origin::upstream);
  EXPECT_EQ(e.upstream_status, row.status);
  EXPECT_NE(e.message.find(row.type), std::string::npos);
  EXPECT_NE(e.message.find("something happened"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Bedrock, ErrorTable,
    ::testing::Values(Row{"ThrottlingException", 429, ErrorKind::upstream_rate_limited, true},
                      Row{"ServiceQuotaExceededException", 400, ErrorKind::upstream_rate_limited, false},
                      Row{"ModelNotReadyException", 429, ErrorKind::upstream_overloaded, true},
                      Row{"ServiceUnavailableException", 503, ErrorKind::upstream_overloaded, true},
                      Row{"InternalServerException", 500, ErrorKind::upstream_server_error, true},
                      Row{"ModelTimeoutException", 408, ErrorKind::first_token_timeout, true},
                      Row{"ModelStreamErrorException", 424, ErrorKind::stream_truncated, true},
                      Row{"ModelErrorException", 424, ErrorKind::upstream_server_error, false},
                      Row{"ValidationException", 400, ErrorKind::upstream_bad_request, false},
                      Row{"AccessDeniedException", 403, ErrorKind::upstream_auth, false},
                      Row{"UnrecognizedClientException", 403, ErrorKind::upstream_auth, false},
                      Row{"InvalidSignatureException", 403, ErrorKind::upstream_auth, false},
                      Row{"ExpiredTokenException", 403, ErrorKind::upstream_auth, false},
                      Row{"ResourceNotFoundException", 404, ErrorKind::upstream_not_found, false}),
    [](const ::testing::TestParamInfo<Row>& row_info) { return std::string(row_info.param.type); });

TEST(BedrockErrors, NormalizesTypeNamesFromEverySource) {
  EXPECT_EQ(bb::normalize_error_type("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ValidationException");
  EXPECT_EQ(bb::normalize_error_type("com.amazon.bedrock#ThrottlingException"), "ThrottlingException");
  EXPECT_EQ(bb::normalize_error_type("com.amazon.coral.validate#ValidationException:http://x/"),
            "ValidationException");
  EXPECT_EQ(bb::normalize_error_type("throttlingException"), "ThrottlingException");
  EXPECT_EQ(bb::normalize_error_type(" ModelTimeoutException "), "ModelTimeoutException");
  EXPECT_EQ(bb::normalize_error_type(""), "");
}

TEST(BedrockErrors, ContextLengthMessagesBecomeContextLengthExceeded) {
  // Messages Bedrock returned for over-long inputs, as reported in public issue threads.
  for (const char* msg : {
           "Input is too long for requested model.",
           "The model returned the following errors: Input is too long for requested model.",
           "The model returned the following errors: prompt is too long: 200049 tokens > 200000 maximum",
           "Malformed input request: too many input tokens",
           "This model's maximum context length is 8192 tokens. However, you requested 8246 tokens",
           "The maximum tokens you requested exceeds the model limit of 4096",
           "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens",
           "The sum of prompt length (6000.0), and max_new_tokens (4000) exceeds the maximum",
       }) {
    auto e = bb::map_error("ValidationException", 400, msg);
    EXPECT_EQ(e.kind, ErrorKind::context_length_exceeded) << msg;
    EXPECT_FALSE(e.retryable);
    EXPECT_TRUE(bulwark::is_callers_fault(e.kind));
  }
  for (const char* msg : {
           "Malformed input request: #: extraneous key [foo] is not permitted",
           "The provided model identifier is invalid.",
           "The security token included in the request is invalid.",
           "max_tokens must be at least 1",
       }) {
    EXPECT_EQ(bb::map_error("ValidationException", 400, msg).kind, ErrorKind::upstream_bad_request) << msg;
  }
  // Only a ValidationException can be a context-length error.
  EXPECT_EQ(bb::map_error("ThrottlingException", 429, "Input is too long").kind,
            ErrorKind::upstream_rate_limited);
}

TEST(BedrockErrors, UnknownTypesFallBackToTheHttpStatus) {
  EXPECT_EQ(bb::map_error("SomethingNewException", 429, "").kind, ErrorKind::upstream_rate_limited);
  EXPECT_TRUE(bb::map_error("SomethingNewException", 429, "").retryable);
  EXPECT_EQ(bb::map_error("", 503, "").kind, ErrorKind::upstream_overloaded);
  EXPECT_EQ(bb::map_error("", 502, "").kind, ErrorKind::upstream_server_error);
  EXPECT_TRUE(bb::map_error("", 502, "").retryable);
  EXPECT_EQ(bb::map_error("", 403, "").kind, ErrorKind::upstream_auth);
  EXPECT_EQ(bb::map_error("", 404, "").kind, ErrorKind::upstream_not_found);
  EXPECT_EQ(bb::map_error("", 400, "Input is too long for requested model.").kind,
            ErrorKind::context_length_exceeded);
  EXPECT_EQ(bb::map_error("", 0, "").kind, ErrorKind::upstream_protocol);
}

TEST(BedrockErrors, HttpErrorPrefersTheHeaderThenTheBody) {
  auto e = bb::map_http_error(429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                              R"({"message":"Too many requests, please wait before trying again."})");
  EXPECT_EQ(e.kind, ErrorKind::upstream_rate_limited);
  EXPECT_NE(e.message.find("Too many requests"), std::string::npos);

  auto body_only = bb::map_http_error(
      400, "", R"({"__type":"com.amazon.coral.validate#ValidationException","Message":"Input is too long for requested model."})");
  EXPECT_EQ(body_only.kind, ErrorKind::context_length_exceeded);
  EXPECT_EQ(body_only.upstream_status, 400);

  auto not_json = bb::map_http_error(503, "", "<html>Service Unavailable</html>");
  EXPECT_EQ(not_json.kind, ErrorKind::upstream_overloaded);
}

TEST(BedrockErrors, MessagesAreBounded) {
  std::string huge(10000, 'x');
  EXPECT_LT(bb::map_error("ValidationException", 400, huge).message.size(), 600u);
}

TEST(BedrockErrors, StreamExceptionsUseTheirModeledStatus) {
  auto throttled = bb::map_stream_exception(
      es::make_exception("throttlingException", R"({"message":"Too many tokens, please wait."})"));
  EXPECT_EQ(throttled.kind, ErrorKind::upstream_rate_limited);
  EXPECT_TRUE(throttled.retryable);
  EXPECT_EQ(throttled.upstream_status, 429);

  auto stream_err = bb::map_stream_exception(
      es::make_exception("modelStreamErrorException", R"({"message":"stream broke","originalStatusCode":500})"));
  EXPECT_EQ(stream_err.kind, ErrorKind::stream_truncated);
  EXPECT_EQ(stream_err.upstream_status, 424);

  auto too_long = bb::map_stream_exception(
      es::make_exception("validationException", R"({"message":"Input is too long for requested model."})"));
  EXPECT_EQ(too_long.kind, ErrorKind::context_length_exceeded);

  auto unknown = bb::map_stream_exception(es::make_exception("brandNewException", "{}"));
  EXPECT_EQ(unknown.kind, ErrorKind::upstream_server_error);
  EXPECT_FALSE(unknown.retryable);

  es::Message err;
  err.headers = {{":message-type", std::string("error")},
                 {":error-code", std::string("InternalFailure")},
                 {":error-message", std::string("boom")}};
  auto protocol_error = bb::map_stream_exception(err);
  EXPECT_EQ(protocol_error.kind, ErrorKind::upstream_server_error);
  EXPECT_NE(protocol_error.message.find("boom"), std::string::npos);
}

TEST(BedrockErrors, FramingFailures) {
  auto truncated = bb::map_decode_error(es::Error{es::ErrorKind::truncated, "ended early"});
  EXPECT_EQ(truncated.kind, ErrorKind::stream_truncated);
  EXPECT_EQ(truncated.origin, Origin::transport);
  auto crc = bb::map_decode_error(es::Error{es::ErrorKind::message_crc_mismatch, "crc"});
  EXPECT_EQ(crc.kind, ErrorKind::upstream_protocol);
  EXPECT_FALSE(crc.retryable);
}

}  // namespace
