#pragma once
// The canonical chat model: what every wire format (OpenAI chat completions, Anthropic
// Messages, Bedrock Converse and the Bedrock InvokeModel families) is translated to and
// from. It holds the meaning of a request or an answer, not any format's spelling: the
// system prompt is separate from the turns, tool results are their own role, tool-call
// arguments are JSON text, and usage counts uncached input apart from cache reads/writes.
// See docs/formats.md for the mapping tables.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace bulwark::api::canonical {

// A prompt-cache breakpoint: the prompt up to and including the block that carries it may
// be cached (Anthropic's cache_control, Bedrock's cachePoint after the block). A pricing
// hint: it never changes the answer, so formats without one leave it out (docs/formats.md).
struct CacheMark {
  std::string ttl;  // Anthropic's "5m" / "1h"; empty for the provider's default
  friend bool operator==(const CacheMark&, const CacheMark&) = default;
};

struct TextPart {
  std::string text;
  std::optional<CacheMark> cache{};
  // Answers only: the block's citations as JSON text (Anthropic's array, carried opaque so
  // that an Anthropic caller of an Anthropic target keeps them); empty when none.
  std::string citations{};
};

// An image inline (base64 + media type) or, only from OpenAI callers, by remote URL.
// Anthropic and Bedrock cannot fetch URLs: their encoders refuse a URL image with a 400.
struct ImagePart {
  std::string media_type;  // "image/png", "image/jpeg", "image/gif", "image/webp"
  std::string data;        // base64, without the data: prefix
  std::string url;         // set instead of media_type/data for a non-data: URL
  std::string detail;      // OpenAI's "low" / "high" / "auto"; empty when not given
  std::optional<CacheMark> cache{};
};

// OpenAI's input_audio part. Only OpenAI can carry it; every other encoder refuses it.
struct AudioPart {
  std::string format;  // "wav", "mp3"
  std::string data;    // base64
  std::optional<CacheMark> cache{};
};

// A tool call made by the assistant. Arguments stay JSON text (OpenAI's form) because
// streams deliver them as fragments; encoders that need an object parse them.
struct ToolCallPart {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text; empty means {}
  std::optional<CacheMark> cache{};
};

// What a tool result may contain: text and images, in order.
using ToolResultContent = std::variant<TextPart, ImagePart>;

struct ToolResultPart {
  std::string tool_call_id;
  std::vector<ToolResultContent> content;
  bool is_error = false;
  std::optional<CacheMark> cache{};
};

// A document given inline: a PDF or plain text (Anthropic document blocks, Converse
// document blocks, OpenAI file parts). URL, file-id, S3 and content-block sources are
// refused by the decoders; see docs/formats.md.
struct DocumentPart {
  std::string media_type;  // "application/pdf" or "text/plain"
  std::string data;        // base64 (plain text too, as Converse and OpenAI carry it)
  std::string title;       // Anthropic's title, Converse's name, OpenAI's filename; may be empty
  std::string context;     // Anthropic's context (only Anthropic can carry it)
  bool citations = false;  // Anthropic's citations.enabled (only Anthropic can carry it)
  std::optional<CacheMark> cache{};
};

// The model's own reasoning (Anthropic thinking / redacted_thinking, Converse
// reasoningContent), in answers and in the assistant turns a caller sends back. Anthropic
// requires these blocks back, signatures intact, when tools are used with thinking.
struct ReasoningPart {
  std::string text;       // the reasoning text (empty for a redacted block)
  std::string signature;  // the provider's signature over it
  std::string redacted;   // redacted reasoning: the opaque data (base64); text is then empty
  std::optional<CacheMark> cache{};  // never set: no format caches reasoning
};

using ContentPart = std::variant<TextPart, ImagePart, AudioPart, ToolCallPart, ToolResultPart, ReasoningPart, DocumentPart>;

// Tool results are their own role (OpenAI's "tool" messages); Anthropic and Bedrock
// carry them in user turns, so their encoders merge a tool message into the user turn.
enum class Role : std::uint8_t { user, assistant, tool };
std::string_view to_string(Role role) noexcept;

struct Message {
  Role role = Role::user;
  std::vector<ContentPart> content;  // Role::tool holds only ToolResultParts
  std::string name;                  // OpenAI's participant name; only OpenAI keeps it
};

struct Tool {
  std::string name;
  std::string description;
  std::string parameters;  // JSON Schema as JSON text; empty means {"type":"object"}
  std::optional<CacheMark> cache{};
};

struct ToolChoice {
  enum class Mode : std::uint8_t {
    unset,     // not given: the format's default (auto when tools are present)
    auto_,     // the model decides
    none,      // no tool may be called
    required,  // some tool must be called (Anthropic and Bedrock call it "any")
    tool,      // this named tool must be called
  };
  Mode mode = Mode::unset;
  std::string name;  // for Mode::tool
};

// Why the model stopped. Formats name these differently; see docs/formats.md.
enum class StopReason : std::uint8_t {
  none,            // not (yet) known
  end_turn,        // a natural end
  max_tokens,      // the output limit
  stop_sequence,   // one of the stop sequences matched (the answer's stop_sequence says which)
  tool_use,        // the model wants tool results
  content_filter,  // output withheld by a content filter
  refusal,         // the model declined (Anthropic's "refusal")
  guardrail,       // a Bedrock guardrail intervened
};
std::string_view to_string(StopReason reason) noexcept;

// Token counts. `input` is the uncached input only (Anthropic's and Bedrock's convention);
// the whole prompt is input + cache_read + cache_write (OpenAI's prompt_tokens).
struct Usage {
  std::int64_t input = 0;
  std::int64_t output = 0;
  std::int64_t cache_read = 0;
  std::int64_t cache_write = 0;

  std::int64_t prompt() const noexcept { return input + cache_read + cache_write; }
  std::int64_t total() const noexcept { return prompt() + output; }
  friend bool operator==(const Usage&, const Usage&) = default;
};

// Extended thinking: Anthropic's `thinking` (Converse Claude: additionalModelRequestFields
// .thinking) or OpenAI's reasoning_effort. See docs/formats.md for the mapping.
struct Reasoning {
  enum class Mode : std::uint8_t { unset, enabled, disabled };
  Mode mode = Mode::unset;
  std::int64_t budget_tokens = 0;  // enabled with a budget (Anthropic's form); 0 when only an effort was given
  std::string effort;              // OpenAI's reasoning_effort as given; empty when a budget was given
};

struct ChatRequest {
  std::string model;                // as the caller named it (empty for Bedrock: it is in the URL)
  std::vector<std::string> system;  // system prompt blocks, in order
  // Cache breakpoints on system blocks: (index into system, mark). Apart from `system`
  // so that the common request without any stays a list of strings.
  std::vector<std::pair<std::size_t, CacheMark>> system_cache;
  std::vector<Message> messages;
  std::vector<Tool> tools;
  ToolChoice tool_choice;
  std::optional<bool> parallel_tool_calls;
  std::vector<std::string> stop;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<std::int64_t> top_k;  // Anthropic, Bedrock Claude and Nova only
  std::optional<std::int64_t> max_tokens;
  bool stream = false;
  bool include_usage = false;  // an OpenAI caller asked for the usage chunk
  std::string user;            // end-user id: OpenAI's user, Anthropic's metadata.user_id
  Reasoning reasoning;

  // OpenAI-only features. Set (non-default) they make every other encoder answer 400,
  // because dropping them would change what the caller gets back.
  std::int64_t n = 1;
  bool logprobs = false;
  std::optional<std::int64_t> top_logprobs;
  std::optional<double> presence_penalty;
  std::optional<double> frequency_penalty;
  std::optional<std::int64_t> seed;
  std::string response_format;  // JSON text of a non-"text" response_format, else empty
  std::string audio;            // JSON text of the audio output options, else empty
  std::string logit_bias;       // JSON text of a non-empty logit_bias, else empty
};

struct ChatResponse {
  std::string id;
  std::string model;
  std::int64_t created = 0;             // Unix seconds (OpenAI); 0 when unknown
  std::vector<ContentPart> content;     // TextParts, ToolCallParts and ReasoningParts
  StopReason stop_reason = StopReason::none;
  std::string stop_sequence;            // the matched one, for StopReason::stop_sequence
  Usage usage;
  std::optional<std::int64_t> latency_ms;  // Bedrock's metrics.latencyMs
};

// The cache mark slot of any content part.
std::optional<CacheMark>& cache_of(ContentPart& part) noexcept;
const std::optional<CacheMark>& cache_of(const ContentPart& part) noexcept;
// The mark of system block `index`, if any.
const CacheMark* system_cache_of(const ChatRequest& req, std::size_t index) noexcept;
// True when the request has a cache breakpoint anywhere (system, messages, tools).
bool has_cache_marks(const ChatRequest& req) noexcept;

// OpenAI's reasoning_effort <-> a thinking budget (docs/formats.md): minimal and low 1024
// (Anthropic's minimum), medium 2048, high 4096; back: below 2048 low, below 4096 medium,
// else high. 0 for an effort that is not one of these.
std::int64_t budget_for_effort(std::string_view effort) noexcept;
std::string_view effort_for_budget(std::int64_t budget_tokens) noexcept;
// The budget of an enabled setting (its own, else its effort's); 0 otherwise.
std::int64_t thinking_budget(const Reasoning& reasoning) noexcept;

// All the answer's text parts, concatenated.
std::string text_of(const ChatResponse& response);

}  // namespace bulwark::api::canonical
