#pragma once
// OpenAI chat completions at the gateway's edge. The request body is kept as the caller
// sent it: the gateway reads only the fields it needs, and for an OpenAI-compatible upstream
// it splices the target's model id in rather than re-serialising the whole document.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace bulwark::api::openai {

struct ChatRequest {
  std::string body;  // as received, with capacity for simdjson's padding
  std::string model;
  bool stream = false;
  bool include_usage = false;  // the caller asked for the usage chunk
  std::optional<std::int64_t> max_tokens;  // max_completion_tokens or max_tokens
  // Byte range of the model's JSON string token (quotes included) in body.
  std::size_t model_begin = 0, model_end = 0;
  // The caller sent stream_options (its edit then takes the slow path in upstream_body).
  bool has_stream_options = false;
  std::size_t object_begin = 0;  // offset of the top-level '{'
};

Result<ChatRequest> decode_chat_request(std::string body);

// The body for an OpenAI-compatible upstream: the target's model id, and for streams
// stream_options.include_usage forced on so the gateway always learns the real usage.
std::string upstream_body(const ChatRequest& req, std::string_view target_model);

// {"error":{"message","type","param","code"}} with the table's type and code.
std::string error_body(const Error& error);

}  // namespace bulwark::api::openai
