#pragma once
// Errors travel the request path as values (std::expected). Each says what happened
// (kind), where (origin), and whether another attempt may help (retryable). The single
// table in error.cpp maps a kind to its HTTP status and to each API's error shape.
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace bulwark {

enum class ErrorKind : std::uint8_t {
  // The caller's request is at fault.
  bad_request,
  invalid_json,
  payload_too_large,
  headers_too_large,
  request_timeout,
  unauthenticated,
  permission_denied,
  model_not_found,
  route_not_found,
  method_not_allowed,
  rate_limited,      // the gateway's own limit on the caller
  budget_exceeded,
  policy_blocked,
  context_length_exceeded,
  content_filtered,
  // The upstream answered with an error.
  upstream_rate_limited,
  upstream_overloaded,
  upstream_server_error,
  upstream_bad_request,
  upstream_auth,
  upstream_not_found,
  // The upstream could not be reached or broke the protocol.
  connect_failed,
  connect_timeout,
  first_token_timeout,
  idle_timeout,
  total_timeout,
  connection_reset,
  upstream_protocol,
  stream_truncated,
  // The gateway itself.
  no_healthy_target,
  shutting_down,
  internal,
};

enum class Origin : std::uint8_t { client, gateway, upstream, transport };

struct Error {
  ErrorKind kind = ErrorKind::internal;
  Origin origin = Origin::gateway;
  bool retryable = false;
  // Safe to show the caller: never a secret, never the prompt.
  std::string message;
  std::string param;
  int upstream_status = 0;  // 0 when no upstream answered
  std::optional<std::chrono::milliseconds> retry_after;

  static Error client(ErrorKind k, std::string msg, std::string param = {}) {
    return Error{k, Origin::client, false, std::move(msg), std::move(param), 0, std::nullopt};
  }
  static Error gateway(ErrorKind k, std::string msg) {
    return Error{k, Origin::gateway, false, std::move(msg), {}, 0, std::nullopt};
  }
  static Error transport(ErrorKind k, std::string msg, bool retryable = true) {
    return Error{k, Origin::transport, retryable, std::move(msg), {}, 0, std::nullopt};
  }
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

// How each kind appears to callers. One row per ErrorKind, in the enum's order.
struct ErrorShape {
  ErrorKind kind;
  int http_status;
  std::string_view name;            // stable identifier for logs, metrics and headers
  std::string_view openai_type;     // error.type in OpenAI's shape
  std::string_view openai_code;     // error.code in OpenAI's shape ("" = null)
  std::string_view anthropic_type;  // error.type in Anthropic's shape
  std::string_view bedrock_type;    // the x-amzn-errortype / __type of Bedrock's shape
};

const ErrorShape& shape_of(ErrorKind kind) noexcept;
inline int http_status_of(ErrorKind kind) noexcept { return shape_of(kind).http_status; }
inline std::string_view name_of(ErrorKind kind) noexcept { return shape_of(kind).name; }

// Errors that say the request itself is wrong: retrying it anywhere is pointless and they
// must never count against a target's health.
bool is_callers_fault(ErrorKind kind) noexcept;

}  // namespace bulwark
