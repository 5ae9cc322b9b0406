#pragma once
// AWS Bedrock Runtime wire formats: Converse / ConverseStream and InvokeModel /
// InvokeModelWithResponseStream for the anthropic., meta., amazon.titan-text and
// amazon.nova model families. Streams use the binary application/vnd.amazon.eventstream
// framing (providers/bedrock/eventstream.hpp); errors are {"message":...} with the
// exception name in x-amzn-ErrorType.
#include <optional>

#include "mock/wire.hpp"

namespace bulwark::mock {

namespace bedrock {

enum class Api : std::uint8_t { converse, converse_stream, invoke, invoke_stream };

// POST /model/{modelId}/{operation}: the decoded model id and the operation, or nullopt
// when the path is not a Bedrock Runtime model path.
struct Route {
  std::string model_id;  // percent-decoded
  Api api = Api::converse;
  bool stream() const noexcept { return api == Api::converse_stream || api == Api::invoke_stream; }
  std::string_view api_name() const noexcept;  // "converse", "converse-stream", ...
};
// `known_operation` false: the path is /model/{id}/<something else>.
std::optional<Route> parse_route(std::string_view path, bool* known_operation = nullptr);

enum class Family : std::uint8_t { anthropic, meta, titan_text, nova, unknown };
// From the model id: "anthropic.claude-...", "us.meta.llama3-...", an inference-profile
// ARN ending in ".../us.amazon.nova-lite-v1:0", ...
Family family_of(std::string_view model_id) noexcept;
std::string_view name_of(Family f) noexcept;

// Exception names: HTTP (x-amzn-ErrorType, "ThrottlingException") and in-stream
// (:exception-type, "throttlingException").
std::string_view http_exception(ErrorType type, int status) noexcept;
std::string_view stream_exception(ErrorType type) noexcept;
std::string_view stock_message(std::string_view exception) noexcept;

std::string base64(std::string_view bytes);

}  // namespace bedrock

// Shared by the Bedrock formats: error shape, headers and status mapping.
class BedrockFormatBase : public WireFormat {
 public:
  std::string_view family() const noexcept override { return "bedrock"; }
  int error_status(const Plan& plan) const override;
  void append_plan_error(std::string& out, const Plan& plan) const override;
  void append_error(std::string& out, ErrorType type, std::string_view message) const override;
  void append_models(std::string& out, std::span<const std::string> names,
                     std::int64_t created) const override;
  void append_headers(std::string& out, const ResponseInfo& info) const override;
  void append_stream_error(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  std::string_view stream_content_type() const noexcept override {
    return "application/vnd.amazon.eventstream";
  }
};

class BedrockConverseFormat final : public BedrockFormatBase {
 public:
  Result<ChatRequest> decode_chat(std::string_view body) const override;
  std::size_t append_completion(std::string& out, const Plan& plan,
                                const AnswerMeta& meta) const override;
  void append_stream_open(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                           bool first, std::uint32_t index = 0) const override;
  void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                           bool omit_done) const override;
  void append_stream_malformed(std::string& out, const AnswerMeta& meta) const override;
};

class BedrockInvokeFormat final : public BedrockFormatBase {
 public:
  explicit BedrockInvokeFormat(bedrock::Family family) noexcept : family_(family) {}
  bedrock::Family model_family() const noexcept { return family_; }

  Result<ChatRequest> decode_chat(std::string_view body) const override;
  std::size_t append_completion(std::string& out, const Plan& plan,
                                const AnswerMeta& meta) const override;
  void append_stream_open(std::string& out, const Plan& plan, const AnswerMeta& meta) const override;
  void append_stream_token(std::string& out, const AnswerMeta& meta, std::string_view text,
                           bool first, std::uint32_t index = 0) const override;
  void append_stream_close(std::string& out, const Plan& plan, const AnswerMeta& meta,
                           bool omit_done) const override;
  void append_stream_malformed(std::string& out, const AnswerMeta& meta) const override;
  void append_headers(std::string& out, const ResponseInfo& info) const override;

 private:
  // One "chunk" event carrying `json` base64-encoded in {"bytes":...}.
  void append_chunk(std::string& out, std::string_view json) const;
  bedrock::Family family_;
};

}  // namespace bulwark::mock
