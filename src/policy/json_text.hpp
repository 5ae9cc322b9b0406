#pragma once
// Redacting JSON text (TextForm::json: a tool call's arguments) so that it stays valid
// JSON. Internal to the policy module: evaluate_input/evaluate_output and StreamRedactor
// use it for their JSON-text parts.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "policy/pii.hpp"

namespace bulwark::policy::detail {

// Where JSON text stands after the bytes read so far: in a string or not, and inside an
// escape sequence. Carried across calls when the text arrives in pieces (a stream).
struct JsonCursor {
  bool in_string = false;
  std::uint8_t escape = 0;  // 5: a '\' was read; 1-4: hex digits of a \u escape to come
  void advance(std::string_view bytes) noexcept;
};

// append_redacted for JSON text (TextForm::json), `cursor` standing at `from` and moved to
// `to`. Valid JSON stays valid: a finding that starts inside an escape sequence starts
// after it and one that ends inside it takes it whole; a finding in a value outside a
// string (a number) replaces the whole value with the label as a JSON string; quotes and
// structural bytes inside a finding's span are kept, each run of string bytes in it
// becomes one label.
void append_redacted_json(std::string_view text, std::size_t from, std::size_t to,
                          std::span<const Finding> findings, JsonCursor& cursor, std::string& out);

}  // namespace bulwark::policy::detail
