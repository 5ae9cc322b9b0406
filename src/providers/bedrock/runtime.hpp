#pragma once
// AWS Bedrock Runtime as an upstream: Converse / ConverseStream, or InvokeModel /
// InvokeModelWithResponseStream (per provider, `api: converse|invoke`), SigV4-signed or
// with a Bedrock API key. Built on this folder's primitives (sigv4, eventstream, errors,
// credentials) and api/bedrock's translators; the pipeline reaches it through
// providers/upstream.hpp. Part of bulwark_providers (the primitives' library stays free
// of config and HTTP).
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/error.hpp"
#include "providers/bedrock/credentials.hpp"
#include "providers/upstream.hpp"
#include "resilience/retry_after.hpp"

namespace bulwark::providers::aws_bedrock {

// "/model/{percent-encoded id}/{converse|converse-stream|invoke|invoke-with-response-stream}"
// after the base URL's path.
std::string request_path(const config::Provider& provider, std::string_view model_id, bool stream);

Result<UpstreamRequest> build_request(const config::Provider& provider, const bulwark::bedrock::Auth& auth,
                                      std::string_view target_model, std::string_view openai_body, bool stream,
                                      std::chrono::system_clock::time_point now, std::string* dropped = nullptr);

Result<std::string> openai_answer(const config::Provider& provider, std::string_view target_model,
                                  std::string_view body, std::string_view request_id);

// application/vnd.amazon.eventstream -> OpenAI SSE. Exception messages inside the stream
// become OpenAI error events (mapped with errors.hpp); a framing or CRC failure is an error.
std::unique_ptr<OpenAIStream> make_stream(const config::Provider& provider, std::string_view target_model,
                                          std::string_view request_id);

// x-amzn-ErrorType (or the body's __type) through errors.hpp's table.
Error classify_error(unsigned status, const resilience::HeaderLookup& headers, std::string_view body,
                     std::string_view target_id);

// The InvokeModel family check (nullopt-family models need api: converse).
Status check_model(const config::Provider& provider, std::string_view target_model);

}  // namespace bulwark::providers::aws_bedrock
