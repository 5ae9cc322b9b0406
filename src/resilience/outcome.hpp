#pragma once
// How one finished upstream attempt ended, from the point of view of resilience: the
// breaker counts some classes against a target, the retry policy decides per class.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bulwark::resilience {

// The outcome of one attempt. Slowness is not a class: the breaker derives it from the
// attempt's duration, so a slow success is still `success` here.
enum class FailureClass : std::uint8_t {
  success,
  http_5xx,             // upstream answered 500/502/504-like
  rate_limited,         // upstream 429
  overloaded,           // upstream 503/529 "overloaded"
  connect_error,        // refused, DNS, TLS handshake failure
  connect_timeout,
  first_token_timeout,  // connected, nothing came back in time
  idle_timeout,         // the stream stalled between chunks
  total_timeout,        // the attempt exceeded its overall limit
  connection_reset,
  protocol_error,       // malformed or truncated stream, bad framing
  upstream_auth,        // our credential for the target was rejected: the target's problem
  upstream_not_found,   // the target does not know the configured model: misconfiguration
  context_length,       // caller's prompt too long for this model: a larger model may work
  content_filter,       // caller's content refused by this target's filter
  client_fault,         // any other mistake of the caller (400, auth of the caller, quota)
  gateway_fault,        // the gateway itself failed; says nothing about the target
};

inline constexpr std::size_t kFailureClassCount =
    static_cast<std::size_t>(FailureClass::gateway_fault) + 1;

/// Every class, in declaration order (for iterating in config, metrics and tests).
std::span<const FailureClass> all_failure_classes() noexcept;

/// Stable snake_case name used in config, logs and metrics (e.g. "http_5xx").
std::string_view to_string(FailureClass c) noexcept;
/// Inverse of to_string; nullopt for an unknown name. Exact, case-sensitive match.
std::optional<FailureClass> failure_class_from_name(std::string_view name) noexcept;

/// Maps an error kind of the request path to the class of the attempt that produced it.
FailureClass classify(ErrorKind kind) noexcept;
inline FailureClass classify(const Error& e) noexcept { return classify(e.kind); }

/// Classes that are the caller's own mistake: never a target's failure, never retried.
bool is_client_fault(FailureClass c) noexcept;

/// Which classes count as failures of a target for its circuit breaker. Classes outside
/// the set (other than success) are ignored by the breaker: they neither prove nor
/// disprove the target's health. Success can never be a failure.
class FailurePolicy {
 public:
  /// Everything except success, the caller's faults (client_fault, context_length,
  /// content_filter) and gateway_fault. upstream_auth counts: a wrong credential for the
  /// target makes that target unusable.
  static FailurePolicy defaults() noexcept;
  static FailurePolicy none() noexcept { return FailurePolicy(0); }
  /// Builds the set from config names; an unknown name or "success" is an error.
  static Result<FailurePolicy> from_names(std::span<const std::string> names);
  static Result<FailurePolicy> from_names(std::span<const std::string_view> names);

  bool counts(FailureClass c) const noexcept { return (mask_ >> static_cast<unsigned>(c)) & 1U; }
  /// Adding success is ignored.
  FailurePolicy& add(FailureClass c) noexcept;
  FailurePolicy& remove(FailureClass c) noexcept;
  /// Names of the counted classes, in declaration order (round-trips through from_names).
  std::vector<std::string_view> names() const;

  friend bool operator==(const FailurePolicy&, const FailurePolicy&) = default;

 private:
  explicit FailurePolicy(std::uint32_t mask) noexcept : mask_(mask) {}
  std::uint32_t mask_;
};

}  // namespace bulwark::resilience
