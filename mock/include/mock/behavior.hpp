#pragma once
// What each mock model does: a healthy answer's shape and timings plus an ordered list
// of faults. Parsed from YAML (the --config file) or JSON (the control API); both use
// the same shape and reject unknown keys. See docs/mock.md for the schema.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bulwark::mock {

using Millis = std::chrono::milliseconds;

// The provider errors a fault can answer with. Each wire format renders them in its
// provider's real body shape.
enum class ErrorType : std::uint8_t {
  rate_limit,
  overloaded,
  server_error,
  bad_gateway,
  unavailable,
  context_length,
  content_filter,
  invalid_request,
  auth,
  // Added for the Anthropic and Bedrock formats; OpenAI renders them too.
  permission,       // 403
  not_found,        // 404
  model_timeout,    // 408 (Bedrock ModelTimeoutException)
  model_error,      // 424 (Bedrock ModelErrorException / modelStreamErrorException)
  model_not_ready,  // 429 (Bedrock ModelNotReadyException)
};

// Every error type, in declaration order (for tests and messages).
inline constexpr ErrorType kAllErrorTypes[] = {
    ErrorType::rate_limit,      ErrorType::overloaded,    ErrorType::server_error,
    ErrorType::bad_gateway,     ErrorType::unavailable,   ErrorType::context_length,
    ErrorType::content_filter,  ErrorType::invalid_request, ErrorType::auth,
    ErrorType::permission,      ErrorType::not_found,     ErrorType::model_timeout,
    ErrorType::model_error,     ErrorType::model_not_ready};

std::string_view name_of(ErrorType t) noexcept;
std::optional<ErrorType> error_type_from_name(std::string_view name) noexcept;
int default_status(ErrorType t) noexcept;
// The error type a bare {status: N} answers with.
ErrorType error_type_for_status(int status) noexcept;

// When a fault applies. Every condition given must hold (a conjunction); `when: {}` is
// rejected. Attempts are 1-based and counted per requested model name since its
// behaviour was last set.
struct Trigger {
  bool always = false;                    // {always: true}; {always: false} never fires
  bool never = false;
  std::uint64_t after = 0;                // skip the first `after` attempts
  std::optional<std::uint64_t> times;     // then fire for `times` attempts
  std::optional<double> fraction;         // seeded coin per attempt, in [0, 1]
  std::optional<Millis> flap_period;      // faulty in the first half of every period
  friend bool operator==(const Trigger&, const Trigger&) = default;
};

enum class ActionKind : std::uint8_t {
  none,       // only timing overrides: a slow but healthy attempt
  error,      // an HTTP error answer
  reset,      // TCP RST before any header
  hang,       // read the request, never answer
  cut,        // close mid-answer after N tokens
  stall,      // stop sending after N tokens, keep the connection open
  malformed,  // send invalid JSON after N tokens
  omit_done,  // streams end without data: [DONE]
  stream_error,  // streams: N tokens, then an error event inside the stream (non-streaming: error)
};

std::string_view name_of(ActionKind k) noexcept;

struct Action {
  ActionKind kind = ActionKind::none;
  int status = 0;                         // kind == error or stream_error
  ErrorType error = ErrorType::server_error;
  std::optional<Millis> retry_after;      // Retry-After header
  bool retry_after_in_ms = false;         // given as retry_after_ms (adds retry-after-ms)
  std::uint32_t after_tokens = 0;         // cut / stall / malformed / stream_error
  std::optional<Millis> latency;          // per-attempt timing overrides
  std::optional<Millis> first_token;
  std::optional<Millis> token_delay;
  friend bool operator==(const Action&, const Action&) = default;
};

struct Fault {
  Trigger when;
  Action action;
  friend bool operator==(const Fault&, const Fault&) = default;
};

// A healthy answer that is one tool call instead of text (OpenAI format only; the other
// formats answer with their text): the function's name and its arguments as the
// fragments a stream sends them in, one chunk each (a whole answer joins them).
struct ToolCall {
  std::string name;
  std::vector<std::string> arguments;
  bool legacy = false;  // the deprecated function_call form instead of tool_calls
  friend bool operator==(const ToolCall&, const ToolCall&) = default;
};

struct Behavior {
  std::uint32_t tokens = 16;
  Millis latency{0};
  Millis first_token{0};
  Millis token_delay{0};
  std::uint64_t context_window = 0;  // 0: unlimited
  bool prefill = true;
  std::vector<Fault> faults;
  std::optional<ToolCall> tool_call;
  friend bool operator==(const Behavior&, const Behavior&) = default;
};

struct Config {
  Behavior default_behavior;
  std::map<std::string, Behavior, std::less<>> models;
  friend bool operator==(const Config&, const Config&) = default;
};

inline constexpr std::uint32_t kMaxTokens = 1'000'000;

// Parse a whole config document (YAML; JSON is accepted too). An empty document gives
// the built-in default. Errors are ErrorKind::bad_request with a message naming the path
// of the offending key, e.g. "models.flaky.faults[0].action: unknown key 'stauts'".
Result<Config> parse_config(std::string_view text);
Result<Config> load_config_file(const std::string& path);
// Parse one behaviour entry (the body of PUT /_mock/behaviors/{model}).
Result<Behavior> parse_behavior(std::string_view text);

// Canonical JSON of a behaviour / config: every field explicit, parseable back.
void append_json(std::string& out, const Behavior& b);
std::string to_json(const Config& c);

}  // namespace bulwark::mock
