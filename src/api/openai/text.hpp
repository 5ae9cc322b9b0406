#pragma once
// The human-written text inside OpenAI chat bodies, for policy checks: read it out, and
// write a redacted version back. Only the text changes; every other field of the
// document is kept (re-serialised, so whitespace and key order may differ).
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bulwark::api::openai {

// Request: each message's content, a string or its `text` parts, in document order.
Result<std::vector<std::string>> request_texts(std::string_view body);
// The body with those texts replaced (same count and order as request_texts returned).
Result<std::string> with_request_texts(std::string_view body, std::span<const std::string> texts);

// Non-streamed answer: choices[i].message.content, in order (null content: skipped).
Result<std::vector<std::string>> answer_texts(std::string_view body);
Result<std::string> with_answer_texts(std::string_view body, std::span<const std::string> texts);

// One stream chunk's JSON (the part after "data: "): its choices' delta.content.
struct DeltaText {
  std::size_t choice = 0;
  std::string text;
};
Result<std::vector<DeltaText>> delta_texts(std::string_view chunk_json);
Result<std::string> with_delta_texts(std::string_view chunk_json, std::span<const DeltaText> texts);
// A chunk carrying only `text` as choice `choice`'s content (to flush held-back text).
std::string text_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text);

}  // namespace bulwark::api::openai
