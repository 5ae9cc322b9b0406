#pragma once
// The human-written text inside OpenAI chat bodies, for policy checks: read it out, and
// write a redacted version back. Only the text changes; every other field of the
// document is kept (re-serialised, so whitespace and key order may differ).
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace boost::json {
class value;
}

namespace bulwark::api::openai {

// Request: what a policy reads, in document order. Each message's content (a string or
// its `text` parts) and, for each document (a `file` part, the form every ingress format
// decodes documents to), the decoded text of a plain-text (`text/*`) document, then its
// `context` and its `filename`; then the message's reasoning (an assistant turn's
// `reasoning_content`, then each `thinking_blocks[].thinking`); then its tool calls'
// `function.arguments` and a legacy `function_call.arguments`. A document whose text cannot be read is listed in
// `uninspectable` by what it is: "pdf" (or another binary media type: "binary"),
// "file_id" (an uploaded file), "invalid_base64" (text that does not decode), "file" (a
// file part without data). `json` lists (ascending) the texts that are JSON text, the
// arguments strings: a redaction must keep them JSON (policy::TextForm::json).
struct RequestTexts {
  std::vector<std::string> texts;
  std::vector<std::string_view> uninspectable;  // static strings
  std::vector<std::size_t> json;
};
Result<RequestTexts> request_texts(std::string_view body);
// The body with those texts replaced (same count and order as request_texts returned); a
// changed document text is written back as base64 under its original data: URL prefix.
Result<std::string> with_request_texts(std::string_view body, std::span<const std::string> texts);

// Non-streamed answer, in order, per choice: message.content (null content: skipped);
// the gateway's text_blocks with each block's text and each of its citations' cited_text
// (the words quoted from a document; see docs/formats.md, citations); the reasoning, its
// reasoning_content then each thinking_blocks[].thinking; the tool calls' arguments (and
// a legacy function_call's), listed in `json` as in RequestTexts.
struct AnswerTexts {
  std::vector<std::string> texts;
  std::vector<std::size_t> json;
};
Result<AnswerTexts> answer_texts(std::string_view body);
Result<std::string> with_answer_texts(std::string_view body, std::span<const std::string> texts);

// One stream chunk's JSON (the part after "data: "): its choices' delta.content.
struct DeltaText {
  std::size_t choice = 0;
  std::string text;
};
Result<std::vector<DeltaText>> delta_texts(std::string_view chunk_json);
Result<std::string> with_delta_texts(std::string_view chunk_json, std::span<const DeltaText> texts);
// The same for a chunk's citation (the gateway's delta `citation`, one whole Anthropic
// citation object): its cited_text, per choice.
Result<std::vector<DeltaText>> delta_cited_texts(std::string_view chunk_json);
Result<std::string> with_delta_cited_texts(std::string_view chunk_json, std::span<const DeltaText> texts);
// A tool-call argument fragment of a chunk: choices[].delta.tool_calls[] {index, function:
// {arguments}}; `tool` is the call's `index` (its position when absent), or kFunctionCall
// for a legacy delta.function_call's arguments.
struct DeltaArguments {
  std::size_t choice = 0;
  std::size_t tool = 0;
  std::string text;
};
inline constexpr std::size_t kFunctionCall = static_cast<std::size_t>(-1) - 2;
// What the output rules read in one stream chunk, from one parse, in document order: its
// choices' delta.content (as delta_texts reads it), their delta.reasoning_content, and
// their tool calls' argument fragments (a choice's tool calls, then its legacy
// function_call). write() puts the texts, changed in place (same count and order), back
// into the same document and serializes it.
class DeltaChunk {
 public:
  static Result<DeltaChunk> read(std::string_view chunk_json);
  DeltaChunk(DeltaChunk&&) noexcept;
  DeltaChunk& operator=(DeltaChunk&&) noexcept;
  ~DeltaChunk();

  std::vector<DeltaText> content;
  std::vector<DeltaText> reasoning;
  std::vector<DeltaArguments> arguments;

  std::string write();

 private:
  DeltaChunk();
  std::unique_ptr<boost::json::value> doc_;
};

// A chunk carrying only `text` as choice `choice`'s content (to flush held-back text);
// the same for its reasoning, and for tool call `tool`'s arguments (kFunctionCall: the
// legacy function_call's).
std::string text_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text);
std::string reasoning_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text);
std::string tool_arguments_chunk(std::string_view id, std::string_view model, std::size_t choice, std::size_t tool,
                                 std::string_view arguments);

}  // namespace bulwark::api::openai
