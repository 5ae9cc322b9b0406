#pragma once
// Bedrock InvokeModel bodies <-> the canonical model, per model family:
//   anthropic   Claude: a Messages body without model/stream, anthropic_version
//               "bedrock-2023-05-31"; stream chunks are Messages events (api/anthropic)
//   llama3      Meta Llama 3: a prompt in the Llama 3 chat template, max_gen_len...
//   titan_text  Amazon Titan Text: inputText + textGenerationConfig
//   nova        Amazon Nova: the Converse schema (api/bedrock/converse.hpp, Nova dialect)
// Streams: InvokeModelWithResponseStream sends "chunk" events whose payload is
// {"bytes": base64(chunk JSON)}; chunk_payload/chunk_json convert, the rest works on the
// chunk JSON. Llama and Titan take text only: tools, images, audio and tool history are 400s.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/canonical/chat.hpp"
#include "api/canonical/stream.hpp"
#include "core/error.hpp"

namespace bulwark::api::bedrock::invoke {

enum class Family : std::uint8_t { anthropic, llama3, titan_text, nova };
std::string_view to_string(Family family) noexcept;

// The family of a Bedrock model id or inference profile ("anthropic.claude-3-5-sonnet-...",
// "us.anthropic...", "meta.llama3-1-70b-instruct-v1:0", "amazon.titan-text-express-v1",
// "eu.amazon.nova-pro-v1:0"); nullopt for families this library does not translate.
std::optional<Family> family_of(std::string_view model_id) noexcept;

inline constexpr std::string_view kAnthropicVersion = "bedrock-2023-05-31";

// A caller's InvokeModel body for a model of `family`. A Llama prompt in the Llama 3
// template is split back into system and turns; any other prompt (and Titan's inputText)
// becomes one user message.
Result<canonical::ChatRequest> decode_request(std::string_view body, Family family);

// The InvokeModel body for `target_model_id` of `family`.
Result<std::string> encode_request(const canonical::ChatRequest& req, Family family, std::string_view target_model_id);

// An upstream's InvokeModel answer. Malformed: upstream_protocol.
Result<canonical::ChatResponse> decode_response(std::string_view body, Family family);

// The answer for an InvokeModel caller of `family` (ids only for Claude: msg_/toolu_).
std::string encode_response(const canonical::ChatResponse& resp, Family family, std::uint64_t id_seed = 0);

// The Llama 3 chat-template prompt of a text-only request (400 otherwise):
// <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>
// <|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>...
// <|start_header_id|>assistant<|end_header_id|>\n\n   (a final assistant turn is continued)
Result<std::string> llama3_prompt(const canonical::ChatRequest& req);

// {"bytes": base64(chunk JSON)} <-> chunk JSON.
std::string chunk_payload(std::string_view chunk_json);
Result<std::string> chunk_json(std::string_view chunk_payload);

// Stream chunks (the decoded JSON) -> canonical events.
class StreamDecoder {
 public:
  explicit StreamDecoder(Family family) : family_(family) {}
  Status feed(std::string_view chunk_json, std::vector<canonical::StreamEvent>& out);
  void finish(std::vector<canonical::StreamEvent>& out);
  bool done() const noexcept;

 private:
  void complete(std::vector<canonical::StreamEvent>& out, canonical::StopReason reason);
  Family family_;
  anthropic::StreamDecoder anthropic_;
  converse::StreamDecoder nova_;
  bool started_ = false;
  bool text_open_ = false;
  bool done_ = false;
  canonical::Usage usage_;
};

struct StreamOptions {
  std::string id;             // Claude only: msg_... (restyled / generated)
  std::string model;          // Claude only: the model named in message_start
  std::uint64_t id_seed = 0;
};

// Canonical events -> stream chunk JSON (wrap each with chunk_payload). The last chunk
// carries "amazon-bedrock-invocationMetrics" as Bedrock's own streams do.
class StreamEncoder {
 public:
  StreamEncoder(Family family, StreamOptions options = {});
  void encode(const canonical::StreamEvent& event, std::vector<std::string>& chunks);

 private:
  void text_chunk(std::vector<std::string>& chunks, std::string_view text, std::string_view stop_reason, bool last);
  std::string metrics() const;
  Family family_;
  anthropic::StreamEncoder anthropic_;
  converse::StreamEncoder nova_;
  std::vector<anthropic::Event> events_;
  canonical::Usage usage_;
  std::optional<std::int64_t> latency_ms_;
  std::int64_t chunks_ = 0;  // text chunks so far (Llama/Titan token counts are per chunk)
  bool first_ = true;
  bool done_ = false;
  canonical::StopReason stop_ = canonical::StopReason::none;
};

}  // namespace bulwark::api::bedrock::invoke
