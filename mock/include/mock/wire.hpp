#pragma once
// A provider's wire format: how a chat request is decoded and how answers, stream events
// and errors are encoded. The engine and the server are format-agnostic; adding a
// provider (Anthropic Messages, Bedrock) means implementing this interface and routing
// its paths to it. Implementations are stateless and shared by all workers.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "mock/behavior.hpp"
#include "mock/engine.hpp"

namespace bulwark::mock {

// Per-answer identity, the same on every chunk of a stream.
struct AnswerMeta {
  std::uint64_t id = 0;        // rendered in the format's own id style
  std::int64_t created = 0;    // unix seconds
  std::string_view model;      // echoed from the request
  bool include_usage = false;  // streaming: the client asked for a usage event
  std::uint64_t prompt_tokens = 0;  // Plan::prompt_tokens, for formats that repeat it per event
  bool thinking = false;  // the request enabled thinking: the answer starts with a signed thinking block
  std::string citation{};  // ChatRequest::citation: the text block cites it (Anthropic formats)
};

// The thinking block of an answer to a request that enabled thinking (fixed text, so that
// tests can check it arrived, and a fixed signature that tests can look for upstream).
inline constexpr std::string_view kThinkingText = "The mock thinks before it answers.";
inline constexpr std::string_view kThinkingSignature = "bW9jay1zaWduYXR1cmU=";

// What a format needs to add its own response headers.
struct ResponseInfo {
  int status = 200;
  std::optional<ErrorType> error;  // set on error answers
  std::string_view provider_type;  // Plan::provider_type of an error answer, or empty
  const Plan* plan = nullptr;      // set on chat answers (errors included)
  std::uint64_t id = 0;            // the answer's id (AnswerMeta::id)
  bool stream = false;             // a streamed answer
};

class WireFormat {
 public:
  virtual ~WireFormat() = default;

  // The family for stats and GET /_mock/last-request: "openai", "anthropic", "bedrock".
  virtual std::string_view family() const noexcept = 0;

  // Decodes a chat request body. Views in the result point into thread-local decoder
  // storage valid until the next decode on the same thread. A bad body is
  // ErrorKind::invalid_json or ErrorKind::bad_request with a message for the caller.
  virtual Result<ChatRequest> decode_chat(std::string_view body) const = 0;

  // Non-streaming answer body for plan tokens resume..tokens. Returns the byte offset in
  // `out` just after the text of the first plan.after_tokens answer tokens, where a cut,
  // stall or malformed non-streaming answer stops.
  virtual std::size_t append_completion(std::string& out, const Plan& plan,
                                        const AnswerMeta& meta) const = 0;

  // Stream events; each call appends whole events (with their SSE framing).
  virtual void append_stream_open(std::string& out, const Plan& plan, const AnswerMeta& meta) const = 0;
  // One content event. `first` is the first content event of the answer; `index` is the
  // token's 0-based position in the stream (for formats that count tokens per event).
  virtual void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                                   bool first, std::uint32_t index = 0) const = 0;
  // Everything after the last token: finish event, usage event if asked, and the end
  // marker unless `omit_done`.
  virtual void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                                   bool omit_done) const = 0;
  // Whether this format answers a plan's tool_call as a tool call (the others answer with
  // their text). append_completion then writes it, append_stream_tool_fragment sends
  // fragment `index` of its arguments (the first one with the call's id and name) in place
  // of the tokens, and append_stream_close ends the stream for a tool call.
  virtual bool answers_tool_calls() const noexcept { return false; }
  virtual void append_stream_tool_fragment(std::string& /*out*/, const AnswerMeta& /*meta*/, const ToolCall& /*call*/,
                                           std::uint32_t /*index*/) const {}
  // An event whose data is not valid JSON.
  virtual void append_stream_malformed(std::string& out, const AnswerMeta& meta) const = 0;
  // An error inside the stream (plan.error), the last event: a stream_error fault.
  virtual void append_stream_error(std::string& out, const Plan& plan,
                                   const AnswerMeta& meta) const = 0;

  // The status an error plan is sent with. A format may move a generic default to its
  // provider's own (Anthropic answers overloaded with 529, Bedrock never sends 401).
  virtual int error_status(const Plan& plan) const { return plan.status; }
  // The error body of a chat attempt (a fault, an engine check or rejected credentials).
  virtual void append_plan_error(std::string& out, const Plan& plan) const {
    append_error(out, plan.error, plan.message);
  }
  // Response header lines ("\r\nname: value" each) this format adds to an answer.
  virtual void append_headers(std::string& /*out*/, const ResponseInfo& /*info*/) const {}

  // Error body in the provider's shape. Empty `message`: the stock one for `type`.
  virtual void append_error(std::string& out, ErrorType type, std::string_view message) const = 0;
  // The model list endpoint's body.
  virtual void append_models(std::string& out, std::span<const std::string> names,
                             std::int64_t created) const = 0;

  virtual std::string_view stream_content_type() const noexcept = 0;
};

}  // namespace bulwark::mock
