#pragma once
// The immutable configuration: parsed once from YAML, validated completely (every error
// with its line and column), then shared read-only by all workers until a reload swaps it.
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/secret.hpp"

namespace bulwark::config {

using Millis = std::chrono::milliseconds;

struct ConfigError {
  int line = 0;    // 1-based; 0 when the error is not tied to a place in the file
  int column = 0;  // 1-based
  std::string message;
  std::string to_string(std::string_view file = {}) const;
};

// Each field left unset inherits from the level above: target -> model -> provider -> global.
struct TimeoutOverrides {
  std::optional<Millis> connect, first_token, idle, total;
};
struct Timeouts {
  Millis connect{2'000};
  Millis first_token{60'000};  // response headers, and for streams the first token
  Millis idle{30'000};         // between two stream chunks, or two reads of a body
  Millis total{600'000};
  Timeouts with(const TimeoutOverrides& o) const;
};

enum class ProviderKind : std::uint8_t { openai, anthropic, bedrock };
std::string_view to_string(ProviderKind kind) noexcept;

struct Endpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string path_prefix;  // e.g. "/v1", no trailing slash
  std::string authority() const;  // host[:port] as sent in Host
};

struct Provider {
  std::string name;
  ProviderKind kind = ProviderKind::openai;
  std::string base_url;
  Endpoint endpoint;
  Secret api_key;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers sent upstream
  bool verify_tls = true;
  std::string ca_file;  // empty: the system's trust store
  TimeoutOverrides timeouts;
};

// Resilience settings (see docs/resilience.md). Each field left unset inherits: model ->
// top-level `resilience:` -> built-in default. Names of failure classes are checked when
// the Runtime is built (config does not depend on the resilience library); their place
// in the file is kept for the message.
struct BreakerSettings {
  std::uint32_t window = 20;          // calls in the sliding window
  std::uint32_t minimum_calls = 10;   // no verdict before this many calls
  double failure_rate = 0.5;          // trip at failures / calls >= this
  std::optional<Millis> slow_call_duration;  // unset: slow-call tripping off
  double slow_call_rate = 1.0;        // trip at slow calls / calls >= this
  Millis open_for{5'000};             // first open period
  double open_multiplier = 2.0;       // growth per consecutive trip
  Millis open_max{60'000};
  double open_jitter = 0.2;           // open time shortened by up to this fraction
  std::uint32_t probes = 1;           // concurrent half-open trial calls
  std::uint32_t probes_to_close = 1;  // successful probes needed to close
  std::vector<std::string> failures;  // failure classes that count; empty: the defaults
  int failures_line = 0, failures_column = 0;  // where `failures` was given (messages only)
  // Same settings, wherever in the file they were written.
  bool same_policy(const BreakerSettings& o) const {
    return window == o.window && minimum_calls == o.minimum_calls && failure_rate == o.failure_rate &&
           slow_call_duration == o.slow_call_duration && slow_call_rate == o.slow_call_rate && open_for == o.open_for &&
           open_multiplier == o.open_multiplier && open_max == o.open_max && open_jitter == o.open_jitter &&
           probes == o.probes && probes_to_close == o.probes_to_close && failures == o.failures;
  }
};
struct RetrySettings {
  std::uint32_t max_attempts_per_target = 2;
  std::uint32_t max_attempts_per_request = 4;
  Millis backoff_base{200};
  Millis backoff_cap{5'000};
  Millis max_retry_after{30'000};  // a longer Retry-After fails over instead of waiting
  double budget_ratio = 0.1;       // retries per request, over a 10 s window
  double budget_min_per_second = 1.0;
  friend bool operator==(const RetrySettings&, const RetrySettings&) = default;
};
struct ResilienceSettings {
  BreakerSettings breaker;
  RetrySettings retry;
};

struct Target {
  std::string provider;
  std::string model;  // the provider's own model id
  double weight = 1.0;
  std::optional<std::uint64_t> context_window;  // tokens; used by context-length failover
  TimeoutOverrides timeouts;
  std::string id;  // "provider/model": the name in metrics, logs and headers
};

struct Model {
  std::string name;
  std::vector<Target> targets;
  std::vector<std::string> fallbacks;  // other models, tried in order
  // Models tried when a target refuses the request by its content filter (default: none).
  std::vector<std::string> fallbacks_on_content_filter;
  TimeoutOverrides timeouts;
  ResilienceSettings resilience;  // resolved: top-level `resilience:` <- the model's own
};

struct Listen {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  Millis read_timeout{30'000};         // to receive one whole request
  Millis keepalive_idle_timeout{75'000};
  Millis shutdown_grace{30'000};
};

struct LogConfig {
  std::string level = "info";
  bool access = true;
};

struct AdminConfig {
  Secret master_key;  // empty: BULWARK_MASTER_KEY, else the admin API is closed
};

struct Config {
  Listen listen;
  unsigned workers = 0;  // 0: one per core
  Limits limits;
  LogConfig log;
  Timeouts timeouts;
  ResilienceSettings resilience;  // the top-level defaults
  AdminConfig admin;
  std::map<std::string, Provider, std::less<>> providers;
  std::vector<Model> models;  // in file order: /v1/models lists them so
  std::string source;         // file path, for messages

  const Model* find_model(std::string_view name) const noexcept;
  const Provider* find_provider(std::string_view name) const noexcept;
};

using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
EnvLookup process_env();

using LoadResult = std::expected<std::shared_ptr<const Config>, std::vector<ConfigError>>;
LoadResult load_string(std::string_view yaml, const EnvLookup& env = process_env(), std::string source = "<string>");
LoadResult load_file(const std::string& path, const EnvLookup& env = process_env());

// Parsing helpers shared by other config sections.
std::optional<Millis> parse_duration(std::string_view text);  // "250ms", "2s", "1.5m", "1h"
std::optional<std::size_t> parse_size(std::string_view text);  // "512", "16KiB", "4MiB", "1GiB"
// Expands ${VAR} and ${VAR:-default}; "$${" stays a literal "${". Error: the missing name.
std::expected<std::string, std::string> interpolate(std::string_view text, const EnvLookup& env);

}  // namespace bulwark::config
