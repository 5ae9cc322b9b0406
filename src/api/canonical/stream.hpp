#pragma once
// Canonical stream events, modelled on Anthropic's event sequence because it is the most
// explicit of the formats (OpenAI's chunks and Bedrock's events map onto it one to one):
//
//   MessageStart
//   ( (TextDelta | CitationDelta)* | ToolCallStart ToolArgsDelta*
//     | ReasoningDelta* SignatureDelta? | RedactedReasoning ) BlockStop   per content block
//   MessageDelta                                                 stop reason + final usage
//   MessageStop
//
// with Ping and StreamError allowed anywhere. `index` is the content block's position in
// the answer (0, 1, 2...), shared by text blocks and tool calls; encoders derive their own
// numbering from it (OpenAI counts tool calls only).
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api/canonical/chat.hpp"
#include "core/error.hpp"

namespace bulwark::api::canonical {

struct MessageStart {
  std::string id;
  std::string model;
  Usage usage;  // what is known at the start (Anthropic sends the input tokens here)
};

struct TextDelta {
  std::uint32_t index = 0;
  std::string text;
};

// Reasoning (thinking) text of block `index`, and the signature that closes it.
struct ReasoningDelta {
  std::uint32_t index = 0;
  std::string text;
};

struct SignatureDelta {
  std::uint32_t index = 0;
  std::string signature;
};

// A whole redacted reasoning block (it arrives in one piece).
struct RedactedReasoning {
  std::uint32_t index = 0;
  std::string data;
};

// One citation of text block `index` (Anthropic's citations_delta): the citation object as
// JSON text, carried opaque like TextPart::citations. It may come before, between or after
// the block's TextDeltas; the citation belongs to the whole block.
struct CitationDelta {
  std::uint32_t index = 0;
  std::string citation;
};

struct ToolCallStart {
  std::uint32_t index = 0;
  std::string id;
  std::string name;
};

// A fragment of a tool call's JSON arguments: only the concatenation of all fragments of
// one index is JSON.
struct ToolArgsDelta {
  std::uint32_t index = 0;
  std::string partial_json;
};

struct BlockStop {
  std::uint32_t index = 0;
};

struct MessageDelta {
  StopReason stop_reason = StopReason::none;
  std::string stop_sequence;
  std::optional<Usage> usage;  // cumulative, the whole answer's usage
  std::optional<std::int64_t> latency_ms;
};

struct MessageStop {};

struct StreamError {
  Error error;
};

struct Ping {};

using StreamEvent = std::variant<MessageStart, TextDelta, ToolCallStart, ToolArgsDelta, BlockStop,
                                 MessageDelta, MessageStop, StreamError, Ping, ReasoningDelta, SignatureDelta,
                                 RedactedReasoning, CitationDelta>;

// Folds a canonical event stream into the answer it describes: for a caller that asked for
// a complete answer from a streaming upstream, and to compare streams in tests.
class ResponseBuilder {
 public:
  void add(const StreamEvent& event);
  bool stopped() const noexcept { return stopped_; }
  const std::optional<Error>& error() const noexcept { return error_; }
  // The answer so far (complete once stopped()).
  const ChatResponse& response() const noexcept { return response_; }

 private:
  ChatResponse response_;
  // Block index -> position in response_.content, for deltas.
  std::vector<std::pair<std::uint32_t, std::size_t>> blocks_;
  bool stopped_ = false;
  std::optional<Error> error_;
  ContentPart* block(std::uint32_t index);
};

}  // namespace bulwark::api::canonical
