#pragma once
// Internal to the upstream edge (upstream.cpp, anthropic/, bedrock/runtime.cpp): what the
// per-provider translations share. Not for the pipeline.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/canonical/chat.hpp"
#include "api/canonical/stream.hpp"
#include "api/openai/translate.hpp"
#include "core/error.hpp"
#include "providers/upstream.hpp"

namespace bulwark::providers::detail {

// The pipeline's OpenAI body as a canonical request for `stream`.
Result<api::canonical::ChatRequest> decode_openai(std::string_view openai_body, bool stream);

// A stable seed for generated ids (tool calls a provider sent without one).
std::uint64_t seed_of(std::string_view request_id) noexcept;

std::int64_t unix_now() noexcept;

// A provider's answer as an OpenAI chat.completion (id and model filled in when missing).
std::string openai_from(api::canonical::ChatResponse resp, std::string_view target_model, std::string_view request_id);

// "upstream <target> returned HTTP <status>"
std::string where(std::string_view target_id, unsigned status);

// Canonical events -> OpenAI SSE, with the usage chunk always on (the pipeline decides
// whether its caller sees it).
class OpenAISink {
 public:
  OpenAISink(std::string_view target_model, std::string_view request_id);
  void emit(std::vector<api::canonical::StreamEvent>& events, std::string& out);
  bool done() const noexcept { return done_; }
  // The prompt's tokens as the message's start reported them (Anthropic's message_start,
  // also inside Bedrock InvokeModel streams; Llama's and Titan's first chunk), if it did.
  const std::optional<api::canonical::Usage>& start_usage() const noexcept { return start_usage_; }

 private:
  api::openai::StreamEncoder encoder_;
  std::optional<api::canonical::Usage> start_usage_;
  std::string request_id_;
  bool done_ = false;
};

// ASCII case-insensitive substring search.
bool contains_ci(std::string_view hay, std::string_view needle) noexcept;

}  // namespace bulwark::providers::detail
