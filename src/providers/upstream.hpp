#pragma once
// One API over every provider kind, for the pipeline. Inside the pipeline OpenAI chat
// completions JSON and OpenAI SSE are the lingua franca; this is the upstream edge where a
// target of another kind is translated (through api/canonical):
//
//   build_chat_request  the OpenAI body the pipeline has -> the provider's HTTP request
//                       (path, auth headers or SigV4 signature, body in its format)
//   openai_answer       a provider's complete answer -> an OpenAI chat.completion
//   OpenAIStream        a provider's streamed bytes -> OpenAI SSE ("data: {chunk}\n\n",
//                       a usage chunk, "data: [DONE]\n\n"); in-stream errors become
//                       "data: {"error":{...}}" events
//   classify_error      a provider's error answer -> Error (kind, retryability)
//
// For kind openai every function forwards to providers/openai (the bodies and bytes pass
// unchanged). Usage: cached reads are prompt_tokens_details.cached_tokens; cache writes
// (Anthropic cache_creation_input_tokens, Bedrock cacheWriteInputTokens) are written as
// usage.cache_creation_input_tokens and are included in prompt_tokens.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/canonical/chat.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "providers/bedrock/credentials.hpp"
#include "resilience/retry_after.hpp"

namespace bulwark::providers {

namespace bhttp = boost::beast::http;
using UpstreamRequest = bhttp::request<bhttp::string_body>;

// True when the provider's wire format is not OpenAI's (answers and streams need the
// conversions below; for openai they are identities).
inline bool translates(const config::Provider& p) noexcept { return p.kind != config::ProviderKind::openai; }

// The request for one attempt. `openai_body` is what the pipeline would send an OpenAI
// upstream (api::openai::upstream_body: the target's model id spliced in, include_usage
// forced on for streams); `target_model` is the target's model id. `now` dates a SigV4
// signature (Bedrock). Errors: bad_request when the target's format cannot express the
// request (docs/formats.md, "What is refused"); upstream_auth (not retryable) when a
// Bedrock provider has no usable credentials; internal for an InvokeModel target whose
// model family is not translated (use api: converse for it).
//
// `dropped`, when given, is set to what the target's format left out because it has no
// place for it and it changes no answer (docs/formats.md, "Prompt-cache breakpoints"):
// "cache_control" when the request has cache breakpoints and the target has no explicit
// cache control (OpenAI-compatible, Converse models other than Claude and Nova, Llama 3,
// Titan); empty otherwise. The pipeline shows it as x-bulwark-dropped. An OpenAI target
// whose body is in the gateway's extended form (api::openai::has_extensions) gets it
// re-encoded as a plain OpenAI body.
Result<UpstreamRequest> build_chat_request(const config::Provider& provider, std::string_view target_model,
                                           std::string_view openai_body, bool stream,
                                           std::chrono::system_clock::time_point now, std::string* dropped = nullptr);

// A complete (non-streamed, status 200) answer as an OpenAI chat.completion. The id is
// the provider's message id restyled (chatcmpl-...), or chatcmpl-<request_id> when it has
// none (Converse); the model is the provider's, else `target_model`. A malformed answer
// is upstream_protocol. For kind openai: the body unchanged.
Result<std::string> openai_answer(const config::Provider& provider, std::string_view target_model,
                                  std::string_view upstream_body, std::string_view request_id);

// A streamed answer, converted as its bytes arrive (split anywhere). feed() appends the
// OpenAI SSE text for what is complete so far; finish() is called once at the end of the
// upstream body and completes the stream (or appends an error event when the upstream
// stopped early). An error the provider reports inside the stream (Anthropic's `error`
// event, a Bedrock exception message) is appended as an OpenAI error event; feed()
// returns an error only when the stream itself is broken (bad event-stream framing or
// CRC: upstream_protocol; malformed event JSON: upstream_protocol). For kind openai the
// bytes pass through unchanged.
class OpenAIStream {
 public:
  static std::unique_ptr<OpenAIStream> make(const config::Provider& provider, std::string_view target_model,
                                            std::string_view request_id);
  virtual Status feed(std::string_view upstream_bytes, std::string& openai_sse_out) = 0;
  virtual Status finish(std::string& openai_sse_out) = 0;
  // The prompt's tokens if the upstream reported them when the message started, before any
  // text (Anthropic, Claude/Llama/Titan over InvokeModel): an attempt cut later is charged
  // with them rather than an estimate. OpenAI-format streams report usage only at the end.
  virtual std::optional<api::canonical::Usage> start_usage() const { return std::nullopt; }
  virtual ~OpenAIStream() = default;
};

// An error answer (status >= 400). Messages are safe for the caller: the provider's own
// words only where they explain the caller's mistake (context length, validation), never
// for authentication failures. Retry-After is left to the pipeline (parse_retry_after).
Error classify_error(const config::Provider& provider, unsigned status, const resilience::HeaderLookup& headers,
                     std::string_view body, std::string_view target_id);

// ---- Bedrock credentials -----------------------------------------------------------

// The provider's credentials, resolved in the AWS SDKs' order: config bearer_token /
// access keys, then AWS_BEARER_TOKEN_BEDROCK / AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
// (+ AWS_SESSION_TOKEN), then the shared credentials file. Errors never carry a secret.
Result<bedrock::Auth> resolve_auth(const config::Provider& provider, const bedrock::EnvLookup& env);

// A target's settings, checked once when the Runtime is built so a bad one fails the load
// rather than every request: Bedrock credentials resolvable, an InvokeModel target's model
// family translated. OK for every other kind.
Status check_target(const config::Provider& provider, std::string_view target_model,
                    const bedrock::EnvLookup& env = bedrock::process_environment());

// build_chat_request caches resolved Bedrock credentials per worker thread for 5 minutes
// (no lock on the request path). A reload calls this so the next request re-reads them.
void forget_credentials() noexcept;

}  // namespace bulwark::providers
