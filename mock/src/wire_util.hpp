#pragma once
// Helpers shared by the wire formats (private to mock/src).
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "mock/answer.hpp"
#include "mock/engine.hpp"

namespace bulwark::mock::detail {

inline void append_hex16(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 0xf];
    v >>= 4;
  }
  out.append(buf, 16);
}

// Appends the plan's answer text (JSON-safe: tokens are "w<i>" with spaces and a full
// stop) and returns the offset just after the first `cut_tokens` tokens.
inline std::size_t append_answer_text(std::string& out, const Plan& p, std::uint32_t cut_tokens) {
  const std::size_t start = out.size();
  std::size_t cut_at = out.size();
  std::uint32_t sent = 0;
  for (std::uint32_t i = p.resume.first_token; i <= p.tokens && sent < p.completion_tokens;
       ++i, ++sent) {
    append_token(out, i, p.tokens);
    if (i == p.resume.first_token && p.resume.skip_chars) out.erase(start, p.resume.skip_chars);
    if (sent + 1 <= cut_tokens) cut_at = out.size();
  }
  return cut_at;
}

// The DOM parser of this thread plus scratch for joined text; views handed out in a
// ChatRequest stay valid until the next decode on the same thread.
struct DomDecoder {
  simdjson::dom::parser parser;
  std::string joined;
  std::string model;
};

inline DomDecoder& dom_decoder() {
  thread_local DomDecoder d;
  return d;
}

inline std::unexpected<Error> bad_json(std::string msg) {
  return std::unexpected(Error::client(ErrorKind::invalid_json, std::move(msg)));
}
inline std::unexpected<Error> bad_request(std::string msg, std::string param = {}) {
  return std::unexpected(Error::client(ErrorKind::bad_request, std::move(msg), std::move(param)));
}

// Appends the words of a content value made of text: a string, or an array of blocks whose
// "text" members are strings. Returns false on a wrong type. `text` receives the text.
inline bool read_text_content(simdjson::dom::element v, std::uint64_t& words, std::string& text) {
  text.clear();
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) {
    words += count_words(s);
    text.assign(s);
    return true;
  }
  simdjson::dom::array parts;
  if (v.get_array().get(parts) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element part : parts) {
    simdjson::dom::object o;
    if (part.get_object().get(o) != simdjson::SUCCESS) return false;
    simdjson::dom::element t;
    if (o.at_key("text").get(t) != simdjson::SUCCESS) continue;  // image, tool_use, ...
    std::string_view ts;
    if (t.get_string().get(ts) != simdjson::SUCCESS) return false;
    words += count_words(ts);
    text += ts;
  }
  return true;
}

}  // namespace bulwark::mock::detail
