#pragma once
// Anthropic Messages wire format (POST /v1/messages). The JSON pieces are also the body
// and the stream chunks of Bedrock's InvokeModel for anthropic.* models, so they are
// exposed for mock/bedrock.cpp.
#include "mock/wire.hpp"

namespace bulwark::mock {

class AnthropicFormat final : public WireFormat {
 public:
  std::string_view family() const noexcept override { return "anthropic"; }
  Result<ChatRequest> decode_chat(std::string_view body) const override;
  std::size_t append_completion(std::string& out, const Plan& plan,
                                const AnswerMeta& meta) const override;
  void append_stream_open(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                           bool first, std::uint32_t index = 0) const override;
  void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                           bool omit_done) const override;
  void append_stream_malformed(std::string& out, const AnswerMeta& meta) const override;
  void append_stream_error(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  int error_status(const Plan& plan) const override;
  void append_plan_error(std::string& out, const Plan& plan) const override;
  void append_error(std::string& out, ErrorType type, std::string_view message) const override;
  void append_models(std::string& out, std::span<const std::string> names,
                     std::int64_t created) const override;
  void append_headers(std::string& out, const ResponseInfo& info) const override;
  std::string_view stream_content_type() const noexcept override {
    return "text/event-stream; charset=utf-8";
  }
};

namespace anthropic {

// Where a Messages body comes from: the Anthropic API (model and stream in the body) or
// Bedrock's InvokeModel (anthropic_version "bedrock-2023-05-31" required; model and
// stream are not allowed, the path names the model and the operation streams).
enum class Dialect : std::uint8_t { api, bedrock };

Result<ChatRequest> decode(std::string_view body, Dialect dialect);

// Anthropic's error type name for an error with this status ("overloaded_error", ...).
std::string_view error_type_name(ErrorType type, int status) noexcept;
std::string_view stop_reason(const Plan& p) noexcept;  // "end_turn" or "max_tokens"
// "prompt is too long: P tokens > W maximum" (Anthropic's wording).
std::string context_message(const Plan& p);

// JSON documents (no SSE framing). `id_prefix` is "msg_" or "msg_bdrk_".
std::size_t append_message(std::string& out, const Plan& p, const AnswerMeta& m,
                           std::string_view id_prefix);
void append_message_start(std::string& out, const Plan& p, const AnswerMeta& m,
                          std::string_view id_prefix);
// The text block's index is 1 when a thinking block (index 0) comes first.
void append_block_start(std::string& out, std::uint32_t index = 0);
void append_text_delta(std::string& out, std::string_view text, std::uint32_t index = 0);
void append_block_stop(std::string& out, std::uint32_t index = 0);
// The events of the thinking block (index 0) as data JSONs: start, thinking_delta,
// signature_delta, stop.
std::vector<std::string> thinking_events();
void append_message_delta(std::string& out, const Plan& p);
// The citations_delta event of the text block (data JSON) for an answer that cites
// (AnswerMeta::citation non-empty).
void append_citations_delta(std::string& out, const AnswerMeta& m);
void append_error_json(std::string& out, std::string_view type, std::string_view message);

}  // namespace anthropic
}  // namespace bulwark::mock
