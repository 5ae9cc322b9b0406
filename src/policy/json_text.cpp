#include "policy/json_text.hpp"

#include <algorithm>
#include <vector>

#include "core/digits.hpp"

namespace bulwark::policy::detail {
namespace {

// What a byte of JSON text is, for append_redacted_json.
enum class JsonByte : std::uint8_t {
  structure,    // outside strings: { } [ ] , : or whitespace
  value,        // outside strings: a byte of a number or literal
  quote,        // a string's opening or closing quote
  string,       // a string's byte that is not part of an escape sequence
  escape,       // the '\' that starts an escape sequence
  escape_rest,  // the rest of an escape sequence
};

JsonByte step(JsonCursor& c, char ch) noexcept {
  if (!c.in_string) {
    if (ch == '"') {
      c.in_string = true;
      return JsonByte::quote;
    }
    switch (ch) {
      case '{': case '}': case '[': case ']': case ',': case ':':
      case ' ': case '\t': case '\n': case '\r': return JsonByte::structure;
      default: return JsonByte::value;
    }
  }
  if (c.escape == 5) {
    c.escape = ch == 'u' ? 4 : 0;
    return JsonByte::escape_rest;
  }
  if (c.escape > 0) {
    --c.escape;
    return JsonByte::escape_rest;
  }
  if (ch == '\\') {
    c.escape = 5;
    return JsonByte::escape;
  }
  if (ch == '"') {
    c.in_string = false;
    return JsonByte::quote;
  }
  return JsonByte::string;
}

bool in_string(JsonByte b) noexcept {
  return b == JsonByte::string || b == JsonByte::escape || b == JsonByte::escape_rest;
}

}  // namespace

void JsonCursor::advance(std::string_view bytes) noexcept {
  for (const char ch : bytes) (void)step(*this, ch);
}

void append_redacted_json(std::string_view text, std::size_t from, std::size_t to,
                          std::span<const Finding> findings, JsonCursor& cursor, std::string& out) {
  thread_local std::vector<JsonByte> kinds;
  kinds.resize(to - from);
  for (std::size_t i = from; i < to; ++i) kinds[i - from] = step(cursor, text[i]);
  const auto kind = [&](std::size_t i) { return kinds[i - from]; };
  std::size_t pos = from;
  for (const Finding& f : findings) {
    if (f.offset < pos || f.offset >= to) continue;
    std::size_t b = f.offset;
    std::size_t e = std::min(f.offset + f.length, to);
    while (b < e && kind(b) == JsonByte::escape_rest) ++b;  // "\n" before "jane@..." stays
    if (b == e) continue;  // escape bytes only: no detector finds those
    while (e < to && kind(e) == JsonByte::escape_rest) ++e;
    if (kind(b) == JsonByte::value)
      while (b > pos && kind(b - 1) == JsonByte::value) --b;
    out.append(text.substr(pos, b - pos));
    for (std::size_t i = b; i < e;) {
      const JsonByte k = kind(i);
      std::size_t j = i + 1;
      if (in_string(k)) {
        while (j < e && in_string(kind(j))) ++j;
        out.append(redaction_label(f.kind));
      } else if (k == JsonByte::value) {
        while (j < to && kind(j) == JsonByte::value) ++j;
        e = std::max(e, j);
        out.push_back('"');
        out.append(redaction_label(f.kind));
        out.push_back('"');
      } else {
        out.push_back(text[i]);
      }
      i = j;
    }
    pos = e;
  }
  out.append(text.substr(pos, to - pos));
}

void EscapeDecoder::feed(std::string_view bytes, std::string& out) {
  std::string joined;
  if (!held_.empty()) {
    joined = std::move(held_) + std::string(bytes);
    held_.clear();
    bytes = joined;
  }
  out.reserve(out.size() + bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char ch = bytes[i];
    if (!in_string_ || ch == '"') {
      in_string_ = in_string_ ? false : ch == '"';
      out += ch;
      continue;
    }
    if (ch != '\\') {
      out += ch;
      continue;
    }
    // An escape: \uXXXX needs six bytes, any other two; a piece may end before them.
    if (i + 1 >= bytes.size() || (bytes[i + 1] == 'u' && i + 6 > bytes.size())) {
      held_.assign(bytes.substr(i));
      return;
    }
    if (bytes[i + 1] == 'u') {
      int v = 0;
      for (std::size_t k = i + 2; k < i + 6 && v >= 0; ++k) {
        const int digit = hex_digit_value(bytes[k]);
        v = digit < 0 ? -1 : v * 16 + digit;
      }
      if (v >= 0x20 && v <= 0x7e && v != '"' && v != '\\') {
        out += static_cast<char>(v);
        i += 5;
        continue;
      }
    }
    out += ch;  // any other escape: copied with the byte it escapes
    out += bytes[++i];
  }
}

void EscapeDecoder::finish(std::string& out) {
  out += held_;
  held_.clear();
}

bool decode_printable_escapes(std::string& text) {
  if (text.find("\\u") == std::string::npos) return false;
  EscapeDecoder decoder;
  std::string out;
  decoder.feed(text, out);
  decoder.finish(out);
  if (out == text) return false;
  text = std::move(out);
  return true;
}

}  // namespace bulwark::policy::detail
