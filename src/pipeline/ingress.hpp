#pragma once
// The ingress edge: callers speaking Anthropic Messages or Bedrock Runtime. Inside the
// pipeline everything is OpenAI chat completions, so a caller's request is translated to
// an OpenAI body on the way in (to_openai_request) and what the pipeline answers (OpenAI
// JSON, OpenAI SSE, OpenAI error bodies) is translated back on the way out by a
// Downstream decorator (translating_downstream). See docs/formats.md, "The edges".
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "pipeline/downstream.hpp"

namespace bulwark::pipeline {

enum class Format : std::uint8_t {
  openai,            // POST /v1/chat/completions
  anthropic,         // POST /v1/messages
  bedrock_converse,  // POST /model/{id}/converse, /converse-stream
  bedrock_invoke,    // POST /model/{id}/invoke, /invoke-with-response-stream
};
std::string_view to_string(Format format) noexcept;

struct IngressRoute {
  Format format = Format::openai;
  std::string model;    // Bedrock: the percent-decoded model id of the path (a gateway model name)
  bool stream = false;  // Bedrock: from the operation; Anthropic: false (the body says)
};

// POST /v1/messages and POST /model/{id}/{converse|converse-stream|invoke|
// invoke-with-response-stream} (a query string is ignored); nullopt for anything else,
// other methods included. A model id with a bad percent-escape is nullopt too.
std::optional<IngressRoute> match_ingress(std::string_view method, std::string_view path);

// The caller's body as an OpenAI chat-completions body for the pipeline: the model is the
// caller's (Anthropic: the body's; Bedrock: model_from_path), stream from the body
// (Anthropic) or stream_from_path (Bedrock). Streams ask for the usage chunk. A body the
// format cannot decode, or that uses what the OpenAI form cannot carry (e.g. top_k), is a
// client error (400) to be answered through translating_downstream. Format::openai: the
// body unchanged.
Result<std::string> to_openai_request(Format format, std::string_view caller_body, std::string_view model_from_path,
                                      bool stream_from_path);

// Wraps the client's Downstream: what the pipeline sends is converted to `format`.
//   send(status < 400)  OpenAI chat.completion -> Anthropic message / Converse answer /
//                       InvokeModel answer of the model's family
//   send(status >= 400) OpenAI error body -> Anthropic error / Bedrock {"__type","message"}
//                       with x-amzn-ErrorType (Bedrock never answers 401: sent as 403)
//   begin_stream/write  OpenAI SSE (error events and ": comment" lines included) ->
//                       Anthropic SSE (comments kept) / application/vnd.amazon.eventstream
//                       (ConverseStream events, or InvokeModel "chunk" events with base64
//                       bytes; errors as exception messages)
// The pipeline's headers (x-bulwark-*, x-ratelimit-*, retry-after) pass through; Bedrock
// answers add x-amzn-RequestId (the request id). `model` is the caller's model name;
// `caller_body` only serves Format::bedrock_invoke, to tell the model family from the
// body when the model name does not say it. Format::openai: a plain pass-through.
std::unique_ptr<Downstream> translating_downstream(Format format, Downstream& inner, std::string model,
                                                   std::string_view caller_body = {});

}  // namespace bulwark::pipeline
