#include "resilience/outcome.hpp"

#include <array>

namespace bulwark::resilience {
namespace {

using C = FailureClass;

constexpr std::array<std::string_view, kFailureClassCount> kNames{
    "success",          "http_5xx",        "rate_limited",        "overloaded",
    "connect_error",    "connect_timeout", "first_token_timeout", "idle_timeout",
    "total_timeout",    "connection_reset", "protocol_error",     "upstream_auth",
    "upstream_not_found", "context_length", "content_filter",     "client_fault",
    "gateway_fault",
};

constexpr std::array<FailureClass, kFailureClassCount> kAll = [] {
  std::array<FailureClass, kFailureClassCount> a{};
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<FailureClass>(i);
  return a;
}();

constexpr std::uint32_t bit(FailureClass c) { return 1U << static_cast<unsigned>(c); }

template <class Names>
Result<FailurePolicy> build(const Names& names) {
  FailurePolicy p = FailurePolicy::none();
  for (const auto& n : names) {
    const auto c = failure_class_from_name(n);
    if (!c)
      return std::unexpected(Error::gateway(
          ErrorKind::internal, "unknown failure class '" + std::string(n) + "'"));
    if (*c == C::success)
      return std::unexpected(
          Error::gateway(ErrorKind::internal, "'success' cannot count as a breaker failure"));
    p.add(*c);
  }
  return p;
}

}  // namespace

std::span<const FailureClass> all_failure_classes() noexcept { return kAll; }

std::string_view to_string(FailureClass c) noexcept {
  const auto i = static_cast<std::size_t>(c);
  return i < kNames.size() ? kNames[i] : std::string_view{"unknown"};
}

std::optional<FailureClass> failure_class_from_name(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<FailureClass>(i);
  return std::nullopt;
}

FailureClass classify(ErrorKind kind) noexcept {
  using K = ErrorKind;
  switch (kind) {
    case K::context_length_exceeded: return C::context_length;
    case K::content_filtered: return C::content_filter;
    case K::bad_request:
    case K::invalid_json:
    case K::payload_too_large:
    case K::headers_too_large:
    case K::request_timeout:
    case K::unauthenticated:
    case K::permission_denied:
    case K::model_not_found:
    case K::route_not_found:
    case K::method_not_allowed:
    case K::rate_limited:
    case K::budget_exceeded:
    case K::policy_blocked:
    case K::upstream_bad_request: return C::client_fault;
    case K::upstream_rate_limited: return C::rate_limited;
    case K::upstream_overloaded: return C::overloaded;
    case K::upstream_server_error: return C::http_5xx;
    case K::upstream_auth: return C::upstream_auth;
    case K::upstream_not_found: return C::upstream_not_found;
    case K::connect_failed: return C::connect_error;
    case K::connect_timeout: return C::connect_timeout;
    case K::first_token_timeout: return C::first_token_timeout;
    case K::idle_timeout: return C::idle_timeout;
    case K::total_timeout: return C::total_timeout;
    case K::connection_reset: return C::connection_reset;
    case K::upstream_protocol:
    case K::stream_truncated: return C::protocol_error;
    case K::no_healthy_target:
    case K::shutting_down:
    case K::internal: return C::gateway_fault;
  }
  return C::gateway_fault;
}

bool is_client_fault(FailureClass c) noexcept {
  return c == C::client_fault || c == C::context_length || c == C::content_filter;
}

FailurePolicy FailurePolicy::defaults() noexcept {
  std::uint32_t m = 0;
  for (const auto c : kAll)
    if (c != C::success && c != C::gateway_fault && !is_client_fault(c)) m |= bit(c);
  return FailurePolicy(m);
}

Result<FailurePolicy> FailurePolicy::from_names(std::span<const std::string> names) {
  return build(names);
}
Result<FailurePolicy> FailurePolicy::from_names(std::span<const std::string_view> names) {
  return build(names);
}

FailurePolicy& FailurePolicy::add(FailureClass c) noexcept {
  if (c != C::success) mask_ |= bit(c);
  return *this;
}

FailurePolicy& FailurePolicy::remove(FailureClass c) noexcept {
  mask_ &= ~bit(c);
  return *this;
}

std::vector<std::string_view> FailurePolicy::names() const {
  std::vector<std::string_view> out;
  for (const auto c : kAll)
    if (counts(c)) out.push_back(to_string(c));
  return out;
}

}  // namespace bulwark::resilience
