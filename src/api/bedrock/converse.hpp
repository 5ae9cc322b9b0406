#pragma once
// Bedrock Converse / ConverseStream <-> the canonical model (api/canonical). Amazon Nova's
// InvokeModel body uses the same schema (bedrock/invoke.hpp reuses this with the Nova
// dialect). The binary event-stream framing is not done here (api stays free of
// providers): streams go in and out as {event type, JSON payload} pairs, for
// providers/bedrock/eventstream.hpp to frame.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/canonical/chat.hpp"
#include "api/canonical/ids.hpp"
#include "api/canonical/stream.hpp"
#include "core/error.hpp"

namespace bulwark::api::bedrock {

// The two spellings of the Converse schema.
enum class Dialect : std::uint8_t {
  converse,  // Converse: top_k only via additionalModelRequestFields, usage cache*InputTokens
  nova,      // Nova InvokeModel: inferenceConfig.topK, usage cache*InputTokenCount, no id
};

// stopReason <-> StopReason. Bedrock: end_turn, tool_use, max_tokens, stop_sequence,
// guardrail_intervened, content_filtered ("end_turn" for StopReason::none).
std::string_view stop_reason_name(canonical::StopReason reason) noexcept;
canonical::StopReason stop_reason_from(std::string_view name) noexcept;

// Bedrock's error answer: the body {"__type": <type>, "message": ...} and the value for
// the x-amzn-ErrorType header, both from core/error.cpp's bedrock type.
std::string error_body(const Error& error);
std::string_view error_type(const Error& error) noexcept;
// A stream exception's event type ("throttlingException", one of the five ConverseStream
// defines) for the error; the payload is {"message": ...}.
std::string_view stream_exception_type(const Error& error) noexcept;
// An upstream exception name (either case of the first letter) as the kind the gateway
// handles. providers/bedrock/errors.hpp's map_stream_exception is the fuller mapping
// (context-length messages, modeled statuses); this one serves the api layer alone.
ErrorKind upstream_error_kind(std::string_view exception_name) noexcept;

// One ConverseStream event.
struct StreamPayload {
  std::string event_type;  // :event-type (or :exception-type when exception)
  std::string payload;     // JSON
  bool exception = false;  // frame with :message-type exception
};

namespace converse {

// Whether cachePoint blocks reach this model: Claude and Nova take them; other Converse
// models reject them, so encode_request leaves the marks out for those.
bool takes_cache_points(std::string_view model_id, Dialect dialect = Dialect::converse) noexcept;

// A caller's Converse body (the model id is in the URL: req.model stays empty). Image
// bytes are base64 as in the JSON protocol. cachePoint blocks mark the block, system block
// or tool before them; reasoningContent in assistant turns becomes ReasoningParts;
// document/video/guardContent blocks are 400s; additionalModelRequestFields is read for
// top_k and Claude's thinking.
Result<canonical::ChatRequest> decode_request(std::string_view body, Dialect dialect = Dialect::converse);

// The Converse body for `target_model_id`, which decides where top_k goes (Claude and Nova
// models take it in additionalModelRequestFields, others refuse it), whether cache marks
// become cachePoint blocks (Claude, Nova) and whether thinking can be asked for (Claude
// only: additionalModelRequestFields.thinking; others 400) and reasoning sent back. 400 for
// what Converse cannot express: OpenAI-only options, audio, image URLs, tool_choice none
// (Converse has no such mode), parallel_tool_calls=false, empty turns.
Result<std::string> encode_request(const canonical::ChatRequest& req, std::string_view target_model_id,
                                   Dialect dialect = Dialect::converse);

// An upstream's Converse answer. Malformed: upstream_protocol.
Result<canonical::ChatResponse> decode_response(std::string_view body, Dialect dialect = Dialect::converse);

// The answer for a Converse caller; tool ids restyled to tooluse_... (generated from
// id_seed when missing). Converse has no message id.
std::string encode_response(const canonical::ChatResponse& resp, std::uint64_t id_seed = 0,
                            Dialect dialect = Dialect::converse);

// ConverseStream events -> canonical events. messageStop carries the stop reason and the
// metadata event that follows it the usage: the stop reason is held until metadata so that
// MessageDelta carries both. Exception events become StreamError.
class StreamDecoder {
 public:
  // One event: its :event-type (or :exception-type) and JSON payload.
  Status feed(std::string_view event_type, std::string_view payload, std::vector<canonical::StreamEvent>& out);
  // One Nova InvokeModel stream chunk (the JSON inside {"bytes": ...}), which wraps the
  // same event as {"<event type>": payload}.
  Status feed_chunk(std::string_view chunk_json, std::vector<canonical::StreamEvent>& out);
  // End of the stream: completes the answer if messageStop came, else a StreamError.
  void finish(std::vector<canonical::StreamEvent>& out);
  bool done() const noexcept { return done_; }

 private:
  void complete(std::vector<canonical::StreamEvent>& out, std::optional<canonical::Usage> usage,
                std::optional<std::int64_t> latency);
  bool started_ = false;
  bool stopped_ = false;  // messageStop seen
  bool done_ = false;
  canonical::StopReason stop_ = canonical::StopReason::none;
};

struct StreamOptions {
  std::uint64_t id_seed = 0;  // for tool ids missing upstream
  Dialect dialect = Dialect::converse;
};

// Canonical events -> ConverseStream events. Block indices are renumbered densely, and a
// block is stopped when the next begins (a source without block stops still yields them).
class StreamEncoder {
 public:
  explicit StreamEncoder(StreamOptions options = {});
  void encode(const canonical::StreamEvent& event, std::vector<StreamPayload>& out);
  // The same events as Nova InvokeModel chunks: {"<event type>": payload} JSON, to be
  // wrapped as {"bytes": base64} (bedrock/invoke.hpp's chunk_payload).
  void encode_chunks(const canonical::StreamEvent& event, std::vector<std::string>& out);

 private:
  void start(std::vector<StreamPayload>& out);
  void close_block(std::vector<StreamPayload>& out);
  void stop(std::vector<StreamPayload>& out, canonical::StopReason reason);

  StreamOptions options_;
  canonical::IdSource ids_;
  canonical::Usage usage_;
  std::optional<std::int64_t> latency_ms_;
  bool started_ = false;
  bool stopped_ = false;
  bool done_ = false;
  std::uint32_t next_index_ = 0;
  struct Open {
    std::uint32_t canonical;
    std::uint32_t index;
    bool text;
  };
  std::optional<Open> open_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> tools_;  // canonical -> Bedrock index
  std::vector<StreamPayload> scratch_;
};

}  // namespace converse
}  // namespace bulwark::api::bedrock
