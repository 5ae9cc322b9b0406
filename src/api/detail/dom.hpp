#pragma once
// Internal to bulwark_api: the hot translation paths (an OpenAI request going to another
// format, upstream answers and stream events coming back) read JSON with simdjson's DOM
// instead of building a Boost.JSON tree. These readers keep support.hpp's error paths and
// messages, and write() turns a parsed value back into the same normalized text that
// support.hpp's write() makes of the same input, so the bytes sent upstream do not change.
// Not for use outside src/api.
#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace bulwark::api::detail {

namespace sd = simdjson::dom;

// One thread-local parser per use: a document being read must not be overwritten by another
// parse on the same thread, and each parser keeps its buffers between calls (no allocation
// once warm).
enum class ParserSlot : std::uint8_t { request, answer, event, fragment };
sd::parser& parser(ParserSlot slot);

// The whole body as an object in `slot`'s parser (valid until that parser's next parse):
// invalid_json unless it is JSON, as support.hpp's parse_object.
Result<sd::object> parse_object(ParserSlot slot, std::string_view body);
// Any JSON value; nullopt when `text` is not JSON.
std::optional<sd::element> parse_value(ParserSlot slot, std::string_view text);

// A field, or nullopt when it is absent or JSON null (both mean "not given").
std::optional<sd::element> find(sd::object o, std::string_view key);
// A field's string, or "" when it is absent or not a string (upstream answers).
std::string_view string_of(sd::object o, std::string_view key);
// Whether the key is present at all (null included).
bool contains(sd::object o, std::string_view key);

// Typed readers: an absent or null field leaves `out` untouched; the wrong type is a 400.
Status read_string(sd::object o, std::string_view key, std::string& out, std::string_view path);
Status read_double(sd::object o, std::string_view key, std::optional<double>& out, std::string_view path);
Status read_int(sd::object o, std::string_view key, std::optional<std::int64_t>& out, std::string_view path);
Status read_bool(sd::object o, std::string_view key, std::optional<bool>& out, std::string_view path);
Result<std::optional<sd::object>> read_object(sd::object o, std::string_view key, std::string_view path);
Result<std::optional<sd::array>> read_array(sd::object o, std::string_view key, std::string_view path);
Status read_strings(sd::object o, std::string_view key, std::vector<std::string>& out, std::string_view path);
// A count in an upstream answer: 0 when absent or not a number.
std::int64_t count(sd::object o, std::string_view key);

// Normalized JSON text: no insignificant whitespace, numbers in their shortest form.
void write(std::string& out, sd::element v);
std::string to_json(sd::element v);

// Tool-call arguments (JSON text) as the object Anthropic and Bedrock carry, appended
// normalized; blank -> {}. A 400 naming `path` unless they are a JSON object.
Status append_arguments_object(std::string& out, std::string_view arguments, std::string_view path);
// A tool's JSON Schema text, appended normalized; empty -> {"type":"object"}. A 400 naming
// `path` unless it is a JSON object.
Status append_schema_object(std::string& out, std::string_view schema, std::string_view path);

}  // namespace bulwark::api::detail
