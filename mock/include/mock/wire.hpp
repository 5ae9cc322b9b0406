#pragma once
// A provider's wire format: how a chat request is decoded and how answers, stream events
// and errors are encoded. The engine and the server are format-agnostic; adding a
// provider (Anthropic Messages, Bedrock) means implementing this interface and routing
// its paths to it. Implementations are stateless and shared by all workers.
#include <cstdint>
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
};

class WireFormat {
 public:
  virtual ~WireFormat() = default;

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
  // One content event. `first` is the first content event of the answer.
  virtual void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                                   bool first) const = 0;
  // Everything after the last token: finish event, usage event if asked, and the end
  // marker unless `omit_done`.
  virtual void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                                   bool omit_done) const = 0;
  // An event whose data is not valid JSON.
  virtual void append_stream_malformed(std::string& out, const AnswerMeta& meta) const = 0;

  // Error body in the provider's shape. Empty `message`: the stock one for `type`.
  virtual void append_error(std::string& out, ErrorType type, std::string_view message) const = 0;
  // The model list endpoint's body.
  virtual void append_models(std::string& out, std::span<const std::string> names,
                             std::int64_t created) const = 0;

  virtual std::string_view stream_content_type() const noexcept = 0;
};

}  // namespace bulwark::mock
