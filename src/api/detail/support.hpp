#pragma once
// Internal to bulwark_api: what the translators share (JSON reading with error paths, JSON
// writing, data URLs, image formats, base64, the refusals every non-OpenAI encoder makes).
// Not for use outside src/api.
#include <boost/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/canonical/chat.hpp"
#include "core/error.hpp"

// Propagates the error of a Status or Result expression; keeps the decoders linear.
#define BULWARK_API_TRY(expr)                                                   \
  do {                                                                          \
    if (auto bulwark_api_try_ = (expr); !bulwark_api_try_)                      \
      return std::unexpected(std::move(bulwark_api_try_).error());              \
  } while (false)

namespace bulwark::api::detail {

namespace bj = boost::json;

// A caller's mistake, named by the field's path ("messages[2].content").
Error bad_request(std::string message, std::string param = {});
// An upstream answer that does not have the expected shape.
Error upstream_protocol(std::string message);
// Decoding an upstream answer uses the request readers; their errors become protocol errors.
Error as_upstream(Error e);

// Boost.JSON's parse with a nesting limit fit for JSON Schemas (its default is 32 levels).
bj::value parse_value(std::string_view text, bj::error_code& ec);

// The whole body: invalid_json (a client error) unless it is JSON.
Result<bj::value> parse(std::string_view body);
Result<const bj::object*> parse_object(std::string_view body, bj::value& storage);

// "'<field>'<rest...>" for error messages.
std::string about(std::string_view field, std::initializer_list<std::string_view> rest);
// "'<path.key>' must be <what>." naming path.key.
Error wrong_type(std::string_view path, std::string_view key, std::string_view what);

// "path.key", "path[i]" for error messages and Error::param.
std::string path_key(std::string_view path, std::string_view key);
std::string path_index(std::string_view path, std::size_t index);

// A field, or nullptr when it is absent or JSON null (both mean "not given").
const bj::value* find(const bj::object& o, std::string_view key);

// Typed readers: an absent or null field leaves `out` untouched; the wrong type is a 400.
Status read_string(const bj::object& o, std::string_view key, std::string& out, std::string_view path);
Status read_double(const bj::object& o, std::string_view key, std::optional<double>& out, std::string_view path);
Status read_int(const bj::object& o, std::string_view key, std::optional<std::int64_t>& out, std::string_view path);
Status read_bool(const bj::object& o, std::string_view key, std::optional<bool>& out, std::string_view path);
Result<const bj::object*> read_object(const bj::object& o, std::string_view key, std::string_view path);  // nullptr if absent
Result<const bj::array*> read_array(const bj::object& o, std::string_view key, std::string_view path);    // nullptr if absent
// A string, or an array of strings (stop sequences).
Status read_strings(const bj::object& o, std::string_view key, std::vector<std::string>& out, std::string_view path);
// A count in an upstream answer: 0 when absent or not an integer.
std::int64_t count(const bj::object& o, std::string_view key);

// JSON text with numbers in their shortest form (Boost.JSON's serializer writes 0.7 as 7E-1).
void write(std::string& out, const bj::value& v);
std::string to_json(const bj::value& v);

// A thinking or redacted_thinking block in Anthropic's shape: the Messages wire format's,
// and the gateway's extended OpenAI form's `thinking_blocks` (LiteLLM's names), which
// carry the same block so it can go back, signed, to a Claude target.
void append_thinking_block(std::string& out, const canonical::ReasoningPart& r);

// Tool-call arguments (JSON text) as the object Anthropic and Bedrock carry; empty -> {}.
Result<bj::value> arguments_object(std::string_view arguments, std::string_view path);
// A tool's JSON Schema text as an object; empty -> {"type":"object"}.
Result<bj::value> schema_object(std::string_view schema, std::string_view path);
// A tool input object back to JSON text.
std::string arguments_text(const bj::value* input);

// data:<media type>;base64,<data>. nullopt when `url` is not a base64 data URL.
struct DataUrl {
  std::string_view media_type;
  std::string_view data;
};
std::optional<DataUrl> parse_data_url(std::string_view url);

// image/png <-> png, as Bedrock names image formats; "" when Bedrock has no such format.
std::string_view bedrock_image_format(std::string_view media_type) noexcept;
std::string media_type_of(std::string_view bedrock_format);

// The ImagePart as inline base64 data, or a 400 naming `path` when it is a remote URL
// (which `format` cannot fetch).
Status require_inline_image(const canonical::ImagePart& image, std::string_view format, std::string_view path);

// The OpenAI-only request features (n > 1, logprobs, penalties, seed, response_format,
// audio output, logit_bias) and audio parts: a 400 naming the field if any is set.
Status refuse_openai_only(const canonical::ChatRequest& req, std::string_view format);

// Turns as Anthropic and Bedrock want them: strictly user/assistant, consecutive messages of
// one role merged, tool messages folded into the user turn with their results first (both
// formats require tool results to lead the turn that answers the tool calls).
struct Turn {
  bool assistant = false;
  std::vector<const canonical::ContentPart*> parts;
  std::size_t message = 0;  // index of the first canonical message in the turn (for errors)
};
std::vector<Turn> merge_turns(const std::vector<canonical::Message>& messages);

// Standard base64 (with padding), for InvokeModel stream chunks {"bytes": ...}.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace bulwark::api::detail
