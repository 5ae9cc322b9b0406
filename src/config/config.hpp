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

struct Target {
  std::string provider;
  std::string model;  // the provider's own model id
  double weight = 1.0;
  TimeoutOverrides timeouts;
  std::string id;  // "provider/model": the name in metrics, logs and headers
};

struct Model {
  std::string name;
  std::vector<Target> targets;
  std::vector<std::string> fallbacks;  // other models, tried in order
  TimeoutOverrides timeouts;
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

struct Config {
  Listen listen;
  unsigned workers = 0;  // 0: one per core
  Limits limits;
  LogConfig log;
  Timeouts timeouts;
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
