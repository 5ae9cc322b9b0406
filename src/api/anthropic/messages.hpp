#pragma once
// Anthropic Messages <-> the canonical model (api/canonical). Also used for Claude on
// Bedrock InvokeModel, whose body is a Messages body without model and stream and with
// anthropic_version "bedrock-2023-05-31", and whose stream chunks are Messages events.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/canonical/chat.hpp"
#include "api/canonical/ids.hpp"
#include "api/canonical/stream.hpp"
#include "core/error.hpp"

namespace bulwark::api::anthropic {

// A caller's Messages body. A user turn's tool_result blocks become a canonical tool
// message (before the turn's other content); thinking and redacted_thinking blocks become
// ReasoningParts (signatures kept); cache_control becomes cache marks; `thinking` the
// reasoning setting; documents, server tools and unknown block types are 400s. Unknown fields are ignored. max_tokens is required, as Anthropic
// requires it.
struct DecodeOptions {
  bool require_model = true;  // false for Bedrock InvokeModel bodies (the model is in the URL)
};
Result<canonical::ChatRequest> decode_request(std::string_view body, const DecodeOptions& options = {});

struct RequestOptions {
  bool include_model = true;   // false for Bedrock InvokeModel (the model is in the URL)
  bool include_stream = true;  // false for Bedrock InvokeModel (the operation says it)
  std::string anthropic_version;  // put in the body when set ("bedrock-2023-05-31")
  // Anthropic requires max_tokens; a request that does not give one gets this.
  std::int64_t default_max_tokens = 4096;
};

// The body for an Anthropic (or, with options, Bedrock Claude) upstream. Consecutive turns
// of the same role are merged (tool results join the user turn). 400 for what Messages
// cannot express: the OpenAI-only options (n > 1, logprobs, penalties, seed,
// response_format, audio), audio parts, image URLs, empty turns.
Result<std::string> encode_request(const canonical::ChatRequest& req, std::string_view target_model,
                                   const RequestOptions& options = {});

// An upstream's non-streamed Messages answer. Malformed: upstream_protocol.
Result<canonical::ChatResponse> decode_response(std::string_view body);

// The answer for an Anthropic caller: id restyled to msg_..., tool ids to toolu_...
// (generated from id_seed when missing).
std::string encode_response(const canonical::ChatResponse& resp, std::uint64_t id_seed = 0);

// stop_reason <-> StopReason ("end_turn" for StopReason::none).
std::string_view stop_reason_name(canonical::StopReason reason) noexcept;
canonical::StopReason stop_reason_from(std::string_view name) noexcept;

// {"type":"error","error":{"type":<core/error.cpp's anthropic type>,"message":...}}
std::string error_body(const Error& error);
// An upstream's error type ("overloaded_error"...) as the kind the gateway handles.
ErrorKind upstream_error_kind(std::string_view anthropic_type) noexcept;

// Upstream events -> canonical events. Indices are Anthropic's block indices; thinking
// blocks become ReasoningDelta / SignatureDelta / RedactedReasoning, citations_delta a
// CitationDelta; blocks the canonical model does not carry (server tools) are skipped
// with their deltas.
class StreamDecoder {
 public:
  // One event's data JSON (its "type" field names the event). Bedrock InvokeModel chunks
  // of Claude are exactly these payloads.
  Status feed(std::string_view data, std::vector<canonical::StreamEvent>& out);
  // A whole SSE event ("event: ...\ndata: ...\n\n"); the data's type is what counts.
  Status feed_sse(std::string_view event, std::vector<canonical::StreamEvent>& out);
  // End of the upstream stream: MessageStop if the stop reason came, else a StreamError.
  void finish(std::vector<canonical::StreamEvent>& out);
  bool done() const noexcept { return done_; }

 private:
  bool delta_seen_ = false;
  bool done_ = false;
  canonical::Usage usage_;
  std::vector<std::uint32_t> skipped_;  // blocks not carried (thinking...)
};

struct StreamOptions {
  std::string id;     // restyled to msg_...; MessageStart's, or generated from id_seed
  std::string model;  // the model the caller named; MessageStart's when empty
  std::uint64_t id_seed = 0;
};

// One Anthropic stream event: its type and its data JSON.
struct Event {
  std::string type;
  std::string data;
};

// Canonical events -> Anthropic's event sequence. Blocks are opened lazily and closed when
// another begins, so a source without block stops (OpenAI) still yields a valid sequence.
class StreamEncoder {
 public:
  explicit StreamEncoder(StreamOptions options);
  // Appends the SSE text ("event: <type>\ndata: <json>\n\n" per event) to `out`.
  void encode(const canonical::StreamEvent& event, std::string& out);
  // The same events unframed (Bedrock InvokeModel chunks for Claude carry these).
  void encode_events(const canonical::StreamEvent& event, std::vector<Event>& out);

 private:
  void start(std::vector<Event>& out);
  void close_block(std::vector<Event>& out);
  // Opens a text block for canonical block `canonical` unless it is the open one.
  void open_text(std::uint32_t canonical, std::vector<Event>& out);
  void message_delta(std::vector<Event>& out, canonical::StopReason reason, const std::string& stop_sequence);

  StreamOptions options_;
  canonical::IdSource ids_;
  canonical::Usage usage_;
  bool started_ = false;
  bool delta_sent_ = false;
  bool done_ = false;
  std::uint32_t next_index_ = 0;
  // The open block: canonical index -> Anthropic index, and its kind.
  enum class Kind : std::uint8_t { text, tool, thinking, redacted };
  struct Open {
    std::uint32_t canonical;
    std::uint32_t index;
    Kind kind;
  };
  std::optional<Open> open_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> tools_;  // canonical index -> Anthropic index
  std::vector<Event> scratch_;
};

}  // namespace bulwark::api::anthropic
