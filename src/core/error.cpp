#include "core/error.hpp"

#include <array>
#include <cstddef>

namespace bulwark {
namespace {

using K = ErrorKind;
constexpr std::array kShapes{
    // kind, status, name, openai type, openai code, anthropic type, bedrock type
    ErrorShape{K::bad_request, 400, "bad_request", "invalid_request_error", "", "invalid_request_error", "ValidationException"},
    ErrorShape{K::invalid_json, 400, "invalid_json", "invalid_request_error", "invalid_json", "invalid_request_error", "ValidationException"},
    ErrorShape{K::payload_too_large, 413, "payload_too_large", "invalid_request_error", "payload_too_large", "request_too_large", "ValidationException"},
    ErrorShape{K::headers_too_large, 431, "headers_too_large", "invalid_request_error", "headers_too_large", "invalid_request_error", "ValidationException"},
    ErrorShape{K::request_timeout, 408, "request_timeout", "invalid_request_error", "request_timeout", "invalid_request_error", "ValidationException"},
    ErrorShape{K::unauthenticated, 401, "unauthenticated", "invalid_request_error", "invalid_api_key", "authentication_error", "UnrecognizedClientException"},
    ErrorShape{K::permission_denied, 403, "permission_denied", "invalid_request_error", "model_not_allowed", "permission_error", "AccessDeniedException"},
    ErrorShape{K::model_not_found, 404, "model_not_found", "invalid_request_error", "model_not_found", "not_found_error", "ResourceNotFoundException"},
    ErrorShape{K::route_not_found, 404, "route_not_found", "invalid_request_error", "unknown_url", "not_found_error", "UnknownOperationException"},
    ErrorShape{K::method_not_allowed, 405, "method_not_allowed", "invalid_request_error", "method_not_supported", "invalid_request_error", "UnknownOperationException"},
    ErrorShape{K::rate_limited, 429, "rate_limited", "rate_limit_error", "rate_limit_exceeded", "rate_limit_error", "ThrottlingException"},
    ErrorShape{K::budget_exceeded, 429, "budget_exceeded", "insufficient_quota", "budget_exceeded", "rate_limit_error", "ThrottlingException"},
    ErrorShape{K::policy_blocked, 403, "policy_blocked", "invalid_request_error", "policy_violation", "permission_error", "AccessDeniedException"},
    ErrorShape{K::context_length_exceeded, 400, "context_length_exceeded", "invalid_request_error", "context_length_exceeded", "invalid_request_error", "ValidationException"},
    ErrorShape{K::content_filtered, 400, "content_filtered", "invalid_request_error", "content_filter", "invalid_request_error", "ValidationException"},
    ErrorShape{K::upstream_rate_limited, 429, "upstream_rate_limited", "rate_limit_error", "upstream_rate_limited", "rate_limit_error", "ThrottlingException"},
    ErrorShape{K::upstream_overloaded, 503, "upstream_overloaded", "server_error", "upstream_overloaded", "overloaded_error", "ServiceUnavailableException"},
    ErrorShape{K::upstream_server_error, 502, "upstream_server_error", "server_error", "upstream_error", "api_error", "InternalServerException"},
    ErrorShape{K::upstream_bad_request, 400, "upstream_bad_request", "invalid_request_error", "upstream_rejected", "invalid_request_error", "ValidationException"},
    ErrorShape{K::upstream_auth, 502, "upstream_auth", "server_error", "upstream_auth_failed", "api_error", "InternalServerException"},
    ErrorShape{K::upstream_not_found, 502, "upstream_not_found", "server_error", "upstream_model_not_found", "api_error", "InternalServerException"},
    ErrorShape{K::connect_failed, 502, "connect_failed", "server_error", "upstream_unreachable", "api_error", "ServiceUnavailableException"},
    ErrorShape{K::connect_timeout, 504, "connect_timeout", "server_error", "upstream_timeout", "api_error", "ModelTimeoutException"},
    ErrorShape{K::first_token_timeout, 504, "first_token_timeout", "server_error", "upstream_timeout", "api_error", "ModelTimeoutException"},
    ErrorShape{K::idle_timeout, 504, "idle_timeout", "server_error", "upstream_timeout", "api_error", "ModelTimeoutException"},
    ErrorShape{K::total_timeout, 504, "total_timeout", "server_error", "upstream_timeout", "api_error", "ModelTimeoutException"},
    ErrorShape{K::connection_reset, 502, "connection_reset", "server_error", "upstream_connection_reset", "api_error", "ServiceUnavailableException"},
    ErrorShape{K::upstream_protocol, 502, "upstream_protocol", "server_error", "upstream_protocol_error", "api_error", "InternalServerException"},
    ErrorShape{K::stream_truncated, 502, "stream_truncated", "server_error", "upstream_stream_truncated", "api_error", "ModelStreamErrorException"},
    ErrorShape{K::no_healthy_target, 503, "no_healthy_target", "server_error", "no_healthy_upstream", "overloaded_error", "ServiceUnavailableException"},
    ErrorShape{K::shutting_down, 503, "shutting_down", "server_error", "shutting_down", "overloaded_error", "ServiceUnavailableException"},
    ErrorShape{K::internal, 500, "internal", "server_error", "internal_error", "api_error", "InternalServerException"},
};

constexpr bool table_matches_enum() {
  for (std::size_t i = 0; i < kShapes.size(); ++i)
    if (static_cast<std::size_t>(kShapes[i].kind) != i) return false;
  return kShapes.size() == static_cast<std::size_t>(K::internal) + 1;
}
static_assert(table_matches_enum(), "kShapes must list every ErrorKind in declaration order");

}  // namespace

const ErrorShape& shape_of(ErrorKind kind) noexcept {
  return kShapes[static_cast<std::size_t>(kind)];
}

bool is_callers_fault(ErrorKind kind) noexcept {
  return kind <= ErrorKind::content_filtered || kind == ErrorKind::upstream_bad_request;
}

}  // namespace bulwark
