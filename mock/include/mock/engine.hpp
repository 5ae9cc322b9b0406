#pragma once
// The behaviour/fault engine: given a decoded request (format-neutral), decides what this
// attempt does and records it. Knows nothing of HTTP or of any provider's wire format;
// the server executes the Plan and a WireFormat renders it.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "mock/answer.hpp"
#include "mock/behavior.hpp"

namespace bulwark::mock {

// What every wire format decodes a chat request into. Views point into the decoder's
// buffers and live until the next decode on the same thread.
struct ChatRequest {
  std::string_view format = "openai";  // wire format family, for stats: openai|anthropic|bedrock
  std::string_view model;
  bool stream = false;
  bool include_usage = false;
  std::uint64_t prompt_tokens = 0;  // whitespace-separated words of all message text
  bool last_is_assistant = false;
  std::string_view last_content;    // text of the last message when it is the assistant's
  std::optional<std::uint32_t> max_tokens;  // the request's output cap, when the format has one
  bool thinking = false;  // Anthropic thinking enabled (Messages, Converse Claude, InvokeModel Claude)
  // Anthropic (Messages, InvokeModel Claude): the citation the answer's text block carries
  // when a document has citations enabled, as Anthropic's citation JSON; empty otherwise.
  // Owned, unlike the views above: it is built, not found in the body.
  std::string citation{};
};

struct AuthState {
  bool required = false;  // the server was started with credentials for this format
  bool present = false;   // a credential header was sent (Authorization, x-api-key)
  bool valid = false;     // it matched
  // How a rejection looks; the defaults are OpenAI's 401.
  int status = 401;
  std::string_view message{};        // empty: OpenAI's wording
  std::string_view provider_type{};  // the format's own error type name (e.g. an AWS one)
};

// One attempt's fate. kind == none is a healthy answer.
struct Plan {
  std::uint64_t attempt = 0;  // 1-based, per requested model since its behaviour was set
  ActionKind kind = ActionKind::none;
  // kind == error
  int status = 200;
  ErrorType error = ErrorType::server_error;
  std::string message;  // empty: the format's stock message for `error`
  // Non-empty: the provider's own error type, overriding what `error` maps to (e.g.
  // "InvalidSignatureException"). Static storage.
  std::string_view provider_type{};
  std::uint64_t context_window = 0;  // the behaviour's, for context_length messages
  std::optional<Millis> retry_after;
  bool retry_after_in_ms = false;
  // Timings of this attempt (behaviour values with the fault's overrides applied).
  Millis latency{0};
  Millis first_token{0};
  Millis token_delay{0};
  // The answer: tokens resume.first_token..tokens of the deterministic text.
  std::uint32_t tokens = 0;
  Resume resume;
  std::uint32_t completion_tokens = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint32_t after_tokens = 0;  // cut / stall / malformed / stream_error: content chunks sent first
  bool max_tokens_reached = false;  // the answer was cut short by the request's max_tokens
  // A healthy answer that is this tool call (Behavior::tool_call) instead of text.
  std::optional<ToolCall> tool_call;
};

// The last request received on one wire format, as GET /_mock/last-request shows it.
struct LastRequest {
  std::string api;      // e.g. "chat.completions", "messages", "converse-stream"
  std::string method;
  std::string target;   // path and query as sent
  std::string model;    // as decoded (Bedrock: from the path, percent-decoded)
  std::string headers;  // "name: value\n" per header; credential values already redacted
  std::string body;
  std::int64_t at_unix_ms = 0;
};

// Inputs to one trigger decision.
struct TriggerInput {
  std::uint64_t attempt = 1;
  TimePoint now{};
  TimePoint behavior_set_at{};
  std::uint64_t seed = 0;
  std::string_view model;
  std::size_t fault_index = 0;
};

// Whether `t` fires for this attempt. `fraction` draws a coin that depends only on seed,
// model, attempt and fault index, so a given --seed replays the same faults whatever the
// number of workers or the interleaving of requests.
bool fires(const Trigger& t, const TriggerInput& in);

struct AttemptRecord {
  std::uint64_t attempt = 0;
  std::int64_t at_unix_ms = 0;
  std::string_view outcome;  // name_of(ActionKind): static storage
  int status = 0;            // HTTP status sent; 0 for reset and hang
  std::optional<ErrorType> error;
  bool stream = false;
  bool authorization = false;
  std::string_view format{};  // ChatRequest::format: static storage
};

struct ModelStats {
  std::uint64_t attempts = 0;         // all attempts since start or POST /_mock/reset
  std::uint64_t records_dropped = 0;  // attempts beyond the record limit
  std::vector<AttemptRecord> records;
};

class Engine {
 public:
  Engine(Config config, const Clock& clock, std::uint64_t seed,
         std::size_t record_limit = 100'000);

  // Decides and records one attempt. Thread-safe.
  Plan plan(const ChatRequest& req, const AuthState& auth);
  // A chat request whose body could not be decoded (no model to count it against).
  void note_rejected(std::string_view format = "openai");
  // Keeps `r` as the last request of `format` (buffers are reused; cheap per request).
  void note_request(std::string_view format, const LastRequest& r);
  // {"<format>":{...},...}, or just one format's object; nullopt when none was received.
  std::optional<std::string> last_request_json(std::string_view format = {}) const;

  // Control API. "default" names the default behaviour. Setting or removing a behaviour
  // restarts the attempt counters of every model name it applies to.
  void set_behavior(std::string_view model, Behavior b);
  // Returns false when there was nothing to remove ("default" reverts to the built-in).
  bool remove_behavior(std::string_view model);
  void reset_stats();

  std::string behaviors_json() const;
  std::string stats_json() const;
  std::vector<std::string> model_names() const;
  ModelStats stats_of(std::string_view model) const;
  std::uint64_t rejected() const;

 private:
  struct Entry {
    Behavior behavior;
    TimePoint set_at;
  };
  struct ModelState {
    std::shared_ptr<const Entry> counted_for;  // a new entry restarts `attempt`
    std::uint64_t attempt = 0;
    ModelStats stats;
  };

  std::shared_ptr<const Entry> resolve(std::string_view model) const;

  const Clock& clock_;
  const std::uint64_t seed_;
  const std::size_t record_limit_;
  mutable std::mutex mu_;
  std::shared_ptr<const Entry> default_;
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> behaviors_;
  std::map<std::string, ModelState, std::less<>> models_;
  std::uint64_t rejected_ = 0;
  struct FormatCounts {
    std::uint64_t requests = 0;  // decoded attempts
    std::uint64_t rejected = 0;  // undecodable or refused before decoding
  };
  std::map<std::string, FormatCounts, std::less<>> formats_;
  // Its own lock: copying a body must not hold up plan() on other workers.
  mutable std::mutex last_mu_;
  std::map<std::string, LastRequest, std::less<>> last_;
};

}  // namespace bulwark::mock
