#pragma once
// The Anthropic Messages API as an upstream (POST {base_url}/v1/messages with x-api-key
// and anthropic-version). The pipeline reaches it through providers/upstream.hpp.
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/error.hpp"
#include "providers/upstream.hpp"
#include "resilience/retry_after.hpp"

namespace bulwark::providers::anthropic {

Result<UpstreamRequest> build_request(const config::Provider& provider, std::string_view target_model,
                                      std::string_view openai_body, bool stream);

Result<std::string> openai_answer(std::string_view target_model, std::string_view body, std::string_view request_id);

// Anthropic SSE -> OpenAI SSE.
std::unique_ptr<OpenAIStream> make_stream(std::string_view target_model, std::string_view request_id);

// 529 / overloaded_error: overloaded (retryable); 429: rate limited (retryable);
// invalid_request_error: the caller's mistake, context-length messages recognised;
// 401/403: the gateway's credentials (never the provider's words); 5xx: retryable.
Error classify_error(unsigned status, const resilience::HeaderLookup& headers, std::string_view body,
                     std::string_view target_id);

}  // namespace bulwark::providers::anthropic
