#pragma once
// The immutable configuration: parsed once from YAML, validated completely (every error
// with its line and column), then shared read-only by all workers until a reload swaps it.
#include <array>
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
  // kind: anthropic. Sent as the anthropic-version header.
  std::string anthropic_version = "2023-06-01";
  // kind: bedrock (see BedrockSettings).
  struct Bedrock {
    enum class Api : std::uint8_t { converse, invoke };
    std::string region;       // signs requests; picks https://bedrock-runtime.{region}.amazonaws.com
    Api api = Api::converse;  // Converse/ConverseStream or InvokeModel(WithResponseStream)
    // Static credentials (all optional; empty: the AWS environment / shared-file chain,
    // resolved by providers/upstream.hpp). Never logged.
    Secret access_key_id;
    Secret secret_access_key;
    Secret session_token;
    Secret bearer_token;  // a Bedrock API key, sent as Authorization: Bearer
    std::string profile;           // shared credentials file section (default: AWS_PROFILE or "default")
    std::string credentials_file;  // default: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials
  } bedrock;
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
// Hedged requests: when the first attempt's first token is late, a second attempt on
// another healthy target; the first to produce a token wins (docs/resilience.md).
struct HedgeSettings {
  bool enabled = false;
  std::optional<Millis> delay;  // fixed; unset: adaptive, `percentile` of the primary's time to first token
  double percentile = 0.95;
  Millis min_delay{50};        // adaptive: lower bound
  Millis max_delay{5'000};     // adaptive: upper bound, and the delay while samples are few
  std::uint32_t min_samples = 20;  // adaptive: samples in the window before the percentile is trusted
  double budget_ratio = 0.05;      // hedges per request over a 10 s window, per primary target
  double budget_min_per_second = 0.1;
  friend bool operator==(const HedgeSettings&, const HedgeSettings&) = default;
};
struct ResilienceSettings {
  BreakerSettings breaker;
  RetrySettings retry;
  HedgeSettings hedge;
};

// --- Smart routing and load balancing (docs/routing.md; parsed by read_router and
// read_load_balancing in config.cpp). Regular expressions are RE2 syntax, matched anywhere
// in the text (add ^...$ to anchor); they are compiled at load to report errors.
struct TextMatch {
  std::optional<std::string> equals;   // exact, case-sensitive
  std::optional<std::string> matches;  // RE2, partial match
};
struct NumberRange {
  std::optional<double> gt, lt;  // strict bounds; an unset bound always holds
  bool empty() const noexcept { return !gt && !lt; }
};
// One rule's `when:`: every condition given must hold (an empty `when` always matches).
struct RouteCondition {
  struct Header {
    std::string name;  // lower-cased
    TextMatch match;
  };
  struct Metadata {
    std::string key;
    TextMatch match;
  };
  std::optional<bool> tools;   // the request declares tools (or legacy functions)
  std::optional<bool> images;  // a message carries an image part
  std::vector<Header> headers;     // all must hold; a missing header does not match
  std::vector<Metadata> metadata;  // the body's metadata object; all must hold
  std::optional<TextMatch> user;   // the body's `user` field
  std::vector<std::string> keys;   // globs over the caller's key name or id; any may match
  std::vector<std::string> teams;  // globs over the caller's team; any may match
  NumberRange input_tokens;        // estimated prompt tokens
  NumberRange max_tokens;          // max_completion_tokens / max_tokens (absent: no match when bounded)
  NumberRange context_window;      // input_tokens + max_tokens
  std::optional<TextMatch> last_user_message;
  std::vector<std::string> objectives;  // the request's objective is one of these
};
struct RouteRule {
  std::string name;  // [A-Za-z0-9._-]+, shown in x-bulwark-route
  RouteCondition when;
  std::size_t tier = 0;  // index into RouterSettings::tiers
  int line = 0, column = 0;
};
enum class RouteObjective : std::uint8_t { balanced, cost, speed, quality };
inline constexpr std::size_t kRouteObjectiveCount = 4;
std::string_view to_string(RouteObjective o) noexcept;
std::optional<RouteObjective> parse_route_objective(std::string_view text) noexcept;
struct ObjectiveSettings {
  double shift = 0;                 // added to every threshold (+: fewer requests go up)
  std::optional<std::size_t> tier;  // or a fixed tier (index), skipping the scorer
};
struct RouterSettings {
  std::vector<std::string> tiers;  // ordinary models, cheapest first
  std::vector<RouteRule> rules;    // first match wins
  bool complexity = false;         // a `complexity:` block was given
  std::vector<double> thresholds;        // N-1 ascending score thresholds, or
  std::vector<double> strong_fractions;  // N-1 descending traffic shares (scorer calibration)
  std::string weights;             // scorer weights file; empty: the shipped one
  std::size_t default_tier = 0;    // without `complexity:`, requests no rule matched go here
  std::array<ObjectiveSettings, kRouteObjectiveCount> objectives{};  // by RouteObjective
  RouteObjective default_objective = RouteObjective::balanced;
  std::vector<std::pair<int, int>> tier_marks;  // line/column of each tier name (messages)
  int line = 0, column = 0;
};

enum class Balancing : std::uint8_t { weighted, least_in_flight, latency, cost, headroom };
std::string_view to_string(Balancing b) noexcept;
struct LoadBalancing {
  Balancing strategy = Balancing::weighted;
  Millis stale_after{60'000};  // headroom: a rate-limit report older than this is ignored
};
// Per-target hints for the `cost` strategy: USD per million tokens.
struct TargetPrice {
  double input = 0;
  double output = 0;
};

struct Target {
  std::string provider;
  std::string model;  // the provider's own model id
  double weight = 1.0;
  std::optional<std::uint64_t> context_window;  // tokens; used by context-length failover
  TimeoutOverrides timeouts;
  std::string id;  // "provider/model": the name in metrics, logs and headers
  std::optional<TargetPrice> price;  // load_balancing: cost
  std::optional<double> cost_rank;   // load_balancing: cost (lower is cheaper; wins over price)
  // The target continues a trailing assistant message (prefill): a stream that broke on
  // another target after its first token may be finished here (docs/resilience.md).
  bool prefill = false;
};

struct Model {
  std::string name;
  std::vector<Target> targets;
  std::vector<std::string> fallbacks;  // other models, tried in order
  // Models tried when a target refuses the request by its content filter (default: none).
  std::vector<std::string> fallbacks_on_content_filter;
  TimeoutOverrides timeouts;
  ResilienceSettings resilience;  // resolved: top-level `resilience:` <- the model's own
  std::optional<RouterSettings> router;  // a routed model: no targets, its tiers serve it
  LoadBalancing load_balancing;          // how the first target is chosen
  // governance.policies profile for requests to this model whose key and team name none.
  std::string policy;
};

struct Listen {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

// TLS on the gateway's own listener (`tls:`, docs/configuration.md#tls-on-the-listener).
// When set, every accepted connection does a TLS handshake; ALPN picks h2 or http/1.1.
struct ListenTls {
  std::string cert_file;        // PEM: the certificate, then any intermediates
  std::string key_file;         // PEM private key (unencrypted)
  std::string min_version = "1.2";  // "1.2" or "1.3"
  bool http2 = true;            // advertise h2 in ALPN (false: http/1.1 only)
};

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  Millis read_timeout{30'000};         // to receive one whole request
  Millis keepalive_idle_timeout{75'000};
  Millis shutdown_grace{30'000};
  // A stream still waiting for its first token gets its response head and an SSE comment
  // this often, so proxies and load balancers do not cut an idle connection. 0: off.
  Millis stream_keepalive{15'000};
};

struct LogConfig {
  std::string level = "info";
  bool access = true;
};

struct AdminConfig {
  Secret master_key;  // empty: BULWARK_MASTER_KEY, else the admin API is closed
};

// Operator events (docs/configuration.md#events): a JSON POST per breaker transition.
// The URL and header values may carry credentials: they are Secrets, never printed.
struct WebhookConfig {
  Secret url;                      // http:// or https://
  Millis timeout{2'000};           // one delivery attempt
  std::size_t queue = 1'000;       // events waiting; the oldest is dropped beyond this
  std::uint32_t retries = 3;       // further attempts after a failed one
  Millis backoff{500};             // before the first retry, doubled each time
  std::vector<std::pair<std::string, Secret>> headers;
  bool verify_tls = true;
  std::string ca_file;             // empty: the system's trust store
};
struct EventsConfig {
  std::string instance;                  // the gateway's name in events; empty: the host name
  std::optional<WebhookConfig> webhook;  // unset: no webhook
};

// Governance (docs/governance.md): who may call, how much, what is recorded.
enum class AuthMode : std::uint8_t {
  keys,     // every request needs a virtual key (the default)
  keyless,  // local demo: no key needed; spend and audit are still recorded
};

// A policy profile as written; the Runtime compiles it (policy/profile.hpp) and reports
// bad detector names or patterns with this place in the file.
struct PolicySettings {
  std::string id;
  std::vector<std::pair<std::string, std::string>> pii;  // detector name -> off|flag|redact|block
  struct Deny {
    std::string id, pattern, action = "block";
  };
  std::vector<Deny> deny;
  std::vector<std::string> allow;  // exemptions for PII findings (RE2)
  std::optional<std::uint64_t> max_input_tokens, max_tokens;
  std::vector<std::string> models;  // model globs; empty: all
  std::string injection = "off";    // off | flag | block
  // block | flag | allow: documents whose text the gateway cannot read (PDFs). Empty: the
  // default, block when the profile has a content rule (pii, deny, injection), else allow.
  std::string uninspectable_documents;
  int line = 0, column = 0;
};

struct GovernanceSettings {
  // Off: a plain resilient proxy, no keys, limits, policies, spend or audit (nothing is
  // opened). For benchmarks and deployments that govern elsewhere.
  bool enabled = true;
  AuthMode auth = AuthMode::keys;
  // The embedded SQLite database; a relative path is resolved against the config file's
  // folder. Opened once at start: changing it needs a restart.
  std::string database = "bulwark-data/bulwark.db";
  std::string journal_dir;  // the spend journal; empty: the database's folder
  // Each of the journal's two segments is preallocated at this size. What the gateway
  // records between two commits (20 ms apart) must fit in one, or records are refused.
  std::size_t journal_segment = 32u << 20;
  std::string prices;       // price file; empty: the shipped data/pricing/default-prices.yaml
  // Output tokens reserved against a budget when the caller sets no max_tokens.
  std::uint64_t default_max_tokens = 4096;
  std::string audit_content = "off";  // off | hashed | redacted | full
  std::string default_policy;         // profile for keys that name none (and keyless mode)
  std::map<std::string, PolicySettings, std::less<>> policies;
  Millis key_refresh{1'000};  // how often other processes' key changes are picked up
};

struct Config {
  Listen listen;
  std::optional<ListenTls> tls;  // unset: plain TCP (HTTP/1.1, or h2c with prior knowledge)
  unsigned workers = 0;  // 0: one per core
  Limits limits;
  LogConfig log;
  Timeouts timeouts;
  ResilienceSettings resilience;  // the top-level defaults
  AdminConfig admin;
  EventsConfig events;
  GovernanceSettings governance;
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
