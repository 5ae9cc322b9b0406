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

// Writes each \u escape inside a string of JSON text that stands for a printable ASCII
// character (U+0020 to U+007E, but for '"' and '\\') as that character: the same JSON
// value, spelled so that the detectors and deny patterns, which read text as written, see
// what it says (`jane\u0040example.com` is an e-mail address to the tool that receives it).
// Other escapes, and bytes outside strings, are kept; text that is not valid JSON is
// handled byte by byte all the same. Returns whether anything changed.
bool decode_printable_escapes(std::string& json_text);

// The same for JSON text arriving in pieces (a stream's argument fragments): an escape cut
// by the end of a piece is held back until the next one completes it.
class EscapeDecoder {
 public:
  // Appends what `bytes` decode to (after what was held back) to out.
  void feed(std::string_view bytes, std::string& out);
  // The end of the text: what is still held back, as it is.
  void finish(std::string& out);

 private:
  bool in_string_ = false;
  std::string held_;  // the start of an escape sequence the last piece cut short
};

}  // namespace bulwark::policy::detail
