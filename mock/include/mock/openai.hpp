#pragma once
// OpenAI chat completions wire format (POST /v1/chat/completions, GET /v1/models).
#include "mock/wire.hpp"

namespace bulwark::mock {

class OpenAIFormat final : public WireFormat {
 public:
  Result<ChatRequest> decode_chat(std::string_view body) const override;
  std::size_t append_completion(std::string& out, const Plan& plan,
                                const AnswerMeta& meta) const override;
  void append_stream_open(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                           bool first, std::uint32_t index = 0) const override;
  void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                           bool omit_done) const override;
  bool answers_tool_calls() const noexcept override { return true; }
  void append_stream_tool_fragment(std::string& out, const AnswerMeta& meta, const ToolCall& call,
                                   std::uint32_t index) const override;
  void append_stream_malformed(std::string& out, const AnswerMeta& meta) const override;
  void append_stream_error(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  std::string_view family() const noexcept override { return "openai"; }
  void append_error(std::string& out, ErrorType type, std::string_view message) const override;
  void append_models(std::string& out, std::span<const std::string> names,
                     std::int64_t created) const override;
  std::string_view stream_content_type() const noexcept override {
    return "text/event-stream; charset=utf-8";
  }

  static constexpr std::string_view kSystemFingerprint = "fp_bulwark_mock";
};

}  // namespace bulwark::mock
