#pragma once
// OpenAI chat completions <-> the canonical model (api/canonical). This is the general
// path, for when the caller and the upstream speak different formats; an OpenAI caller
// going to an OpenAI-compatible upstream keeps using chat.hpp's splice-the-model fast path.
// Errors are encoded with chat.hpp's error_body.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/fwd.hpp>

#include "api/canonical/chat.hpp"
#include "api/canonical/ids.hpp"
#include "api/canonical/stream.hpp"
#include "core/error.hpp"

namespace bulwark::api::openai {

// A caller's request body. System and developer messages (wherever they appear) become
// the system blocks; unknown fields are ignored; wrong types and content the canonical
// model cannot hold (file parts, the legacy function_call) are 400s naming the field.
Result<canonical::ChatRequest> decode_request(std::string_view body);

struct RequestOptions {
  // The gateway's own OpenAI form (pipeline/ingress: a non-OpenAI caller's request on its
  // way through the pipeline) rather than an upstream's: it also carries what OpenAI has no
  // field for, so that an Anthropic or Bedrock target still gets it: cache_control on
  // parts, tool calls, tool messages and tools; `thinking` {type, budget_tokens}; an
  // assistant message's thinking_blocks (LiteLLM's spellings). Such a body starts with
  // kExtensionsKey, and has_extensions() tells an upstream edge to re-encode it.
  bool gateway_form = false;
};
inline constexpr std::string_view kExtensionsKey = "x-bulwark-ext";

// The body for an OpenAI-compatible upstream serving `target_model`. Streams always ask
// for the usage chunk. Refuses (400) what OpenAI cannot express: top_k, tool-result images.
// Left out of an upstream's body (pricing hints or the model's own output, docs/formats.md):
// cache marks and reasoning parts; a thinking budget becomes reasoning_effort.
Result<std::string> encode_request(const canonical::ChatRequest& req, std::string_view target_model,
                                   const RequestOptions& options = {});

// Whether a body is in the gateway's form with extensions (it starts with kExtensionsKey).
inline bool has_extensions(std::string_view body) noexcept {
  return body.starts_with("{\"x-bulwark-ext\":");
}

// An upstream's non-streamed answer (choice 0). Malformed: upstream_protocol.
Result<canonical::ChatResponse> decode_response(std::string_view body);

// The answer for an OpenAI caller. The id is restyled to chatcmpl-... (generated from
// id_seed when empty); tool-call ids to call_....
std::string encode_response(const canonical::ChatResponse& resp, std::uint64_t id_seed = 0);

// finish_reason <-> StopReason. "" for StopReason::none.
std::string_view finish_reason(canonical::StopReason reason) noexcept;
canonical::StopReason stop_reason_from(std::string_view finish_reason) noexcept;

// Upstream SSE -> canonical events. OpenAI sends the finish reason and the usage in
// separate chunks and has no block stops: the decoder emits BlockStop for open blocks at
// the finish reason and holds the stop reason until the usage chunk (or [DONE]) so that
// MessageDelta carries both, as the canonical model promises. The gateway's own form adds
// two delta fields (docs/formats.md): `text_block` (the text block's position among the
// answer's text blocks: another value starts a new one) and `citation` (one citation of
// that block, a CitationDelta).
class StreamDecoder {
 public:
  // One event's data (the text after "data: "): a chunk, an {"error":...} object, or [DONE].
  Status feed(std::string_view data, std::vector<canonical::StreamEvent>& out);
  // One whole SSE event as providers' SseSplitter delivers it ("data: ...\n\n"; comments
  // and other fields ignored; several data lines joined with "\n").
  Status feed_sse(std::string_view event, std::vector<canonical::StreamEvent>& out);
  // The upstream stream ended. Without [DONE]: a finish reason already seen completes the
  // answer (MessageDelta, MessageStop); otherwise a StreamError (stream_truncated).
  void finish(std::vector<canonical::StreamEvent>& out);
  bool done() const noexcept { return done_; }

 private:
  void close_blocks(std::vector<canonical::StreamEvent>& out);
  void emit_delta(std::vector<canonical::StreamEvent>& out);
  void decode_reasoning_delta(const boost::json::object& delta, std::vector<canonical::StreamEvent>& out);
  std::uint32_t text_block();  // the open text block, opened if there is none

  bool started_ = false;
  bool done_ = false;
  bool finished_ = false;     // a finish_reason arrived
  bool delta_sent_ = false;   // MessageDelta emitted
  std::uint32_t next_block_ = 0;
  std::optional<std::uint32_t> text_block_;      // the open text block, if the last block is text
  std::optional<std::uint32_t> reasoning_block_; // the open reasoning block, if the last block is reasoning
  std::optional<std::int64_t> text_tag_;         // the open text block's position among text blocks
  std::int64_t text_blocks_ = 0;                 // text blocks opened so far
  std::vector<std::pair<std::int64_t, std::uint32_t>> tools_;  // OpenAI tool index -> block
  std::vector<std::uint32_t> open_;              // blocks not yet stopped, in order
  canonical::StopReason stop_ = canonical::StopReason::none;
  std::optional<canonical::Usage> usage_;
};

struct StreamOptions {
  std::string id;             // restyled to chatcmpl-...; generated from id_seed when empty
  std::string model;          // the model named in chunks; MessageStart's when empty
  std::int64_t created = 0;   // Unix seconds
  bool include_usage = false; // the caller's stream_options.include_usage
  std::uint64_t id_seed = 0;
};

// Canonical events -> the SSE bytes an OpenAI caller expects: chat.completion.chunk
// objects, a finish chunk, the usage chunk when asked for, and "data: [DONE]". A
// CitationDelta is written in the gateway's form: a chunk whose delta is
// {"citation": {...}, "text_block": N}, N the block's position among the text blocks (0
// for the first); text chunks carry "text_block" where a text block other than the first
// begins, so that the block boundaries the citations depend on survive.
class StreamEncoder {
 public:
  explicit StreamEncoder(StreamOptions options);
  // Appends the bytes for `event` (possibly none) to `out`.
  void encode(const canonical::StreamEvent& event, std::string& out);

 private:
  void start(std::string& out);
  void chunk(std::string& out, std::string_view delta_json, std::string_view finish);
  // A chunk written in place: open_chunk, then the delta object appended to `out`, then
  // close_chunk (no finish reason). Relayed deltas take this path: no temporary per event.
  void open_chunk(std::string& out) const;
  static void close_chunk(std::string& out);
  void finish(std::string& out, canonical::StopReason reason);
  // Text blocks are numbered in order of appearance; true when `index` starts a new one.
  bool enter_text_block(std::uint32_t index);

  StreamOptions options_;
  canonical::IdSource ids_;
  std::string prefix_;  // {"id":...,"object":...,"created":...,"model":... shared by every chunk
  bool started_ = false;
  bool finished_ = false;  // the finish chunk is out
  bool done_ = false;      // [DONE] is out
  std::vector<std::pair<std::uint32_t, std::uint32_t>> tools_;  // block index -> tool_calls index
  std::optional<canonical::Usage> usage_;
  std::optional<std::uint32_t> text_block_;  // the block of the last text or citation chunk
  std::uint32_t text_ordinal_ = 0;            // that block's position among the text blocks
  std::uint32_t text_blocks_ = 0;             // text blocks written so far
};

}  // namespace bulwark::api::openai
