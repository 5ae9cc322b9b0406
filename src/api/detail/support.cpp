#include "api/detail/support.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <cmath>

#include "core/json_write.hpp"

namespace bulwark::api::detail {

Error bad_request(std::string message, std::string param) {
  return Error::client(ErrorKind::bad_request, std::move(message), std::move(param));
}

Error upstream_protocol(std::string message) {
  Error e = Error::gateway(ErrorKind::upstream_protocol, std::move(message));
  e.origin = Origin::upstream;
  return e;
}

Error as_upstream(Error e) {
  if (e.origin == Origin::upstream) return e;
  return upstream_protocol("the upstream answer is malformed: " + e.message);
}

bj::value parse_value(std::string_view text, bj::error_code& ec) {
  bj::parse_options options;
  options.max_depth = 256;
  return bj::parse(text, ec, {}, options);
}

Result<bj::value> parse(std::string_view body) {
  bj::error_code ec;
  bj::value v = parse_value(body, ec);
  if (ec) return std::unexpected(Error::client(ErrorKind::invalid_json, "We could not parse the JSON body of your request."));
  return v;
}

Result<const bj::object*> parse_object(std::string_view body, bj::value& storage) {
  auto v = parse(body);
  if (!v) return std::unexpected(std::move(v).error());
  storage = std::move(*v);
  if (!storage.is_object())
    return std::unexpected(Error::client(ErrorKind::invalid_json, "The request body must be a JSON object."));
  return &storage.get_object();
}

std::string path_key(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out.push_back('.');
  out.append(key);
  return out;
}

std::string path_index(std::string_view path, std::size_t index) {
  std::string out(path);
  out.push_back('[');
  out += std::to_string(index);
  out.push_back(']');
  return out;
}

const bj::value* find(const bj::object& o, std::string_view key) {
  const bj::value* v = o.if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

// "'<field>'<rest>", built by appending: GCC 12 warns falsely (-Wrestrict, PR105651) on
// "literal" + std::string once inlined.
std::string about(std::string_view field, std::initializer_list<std::string_view> rest) {
  std::string out;
  out += '\'';
  out += field;
  out += '\'';
  for (std::string_view r : rest) out += r;
  return out;
}

Error wrong_type(std::string_view path, std::string_view key, std::string_view what) {
  std::string p = path_key(path, key);
  std::string message = about(p, {" must be ", what, "."});
  return bad_request(std::move(message), std::move(p));
}

Status read_string(const bj::object& o, std::string_view key, std::string& out, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return {};
  if (!v->is_string()) return std::unexpected(wrong_type(path, key, "a string"));
  out.assign(v->get_string());
  return {};
}

Status read_double(const bj::object& o, std::string_view key, std::optional<double>& out, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return {};
  if (v->is_double()) out = v->get_double();
  else if (v->is_int64()) out = static_cast<double>(v->get_int64());
  else if (v->is_uint64()) out = static_cast<double>(v->get_uint64());
  else return std::unexpected(wrong_type(path, key, "a number"));
  return {};
}

Status read_int(const bj::object& o, std::string_view key, std::optional<std::int64_t>& out, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return {};
  if (v->is_int64()) out = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) out = static_cast<std::int64_t>(v->get_uint64());
  else if (v->is_double() && std::trunc(v->get_double()) == v->get_double() && std::fabs(v->get_double()) < 9e15)
    out = static_cast<std::int64_t>(v->get_double());  // 100.0 is an integer to every format
  else return std::unexpected(wrong_type(path, key, "an integer"));
  return {};
}

Status read_bool(const bj::object& o, std::string_view key, std::optional<bool>& out, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return {};
  if (!v->is_bool()) return std::unexpected(wrong_type(path, key, "a boolean"));
  out = v->get_bool();
  return {};
}

Result<const bj::object*> read_object(const bj::object& o, std::string_view key, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return nullptr;
  if (!v->is_object()) return std::unexpected(wrong_type(path, key, "an object"));
  return &v->get_object();
}

Result<const bj::array*> read_array(const bj::object& o, std::string_view key, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return nullptr;
  if (!v->is_array()) return std::unexpected(wrong_type(path, key, "an array"));
  return &v->get_array();
}

Status read_strings(const bj::object& o, std::string_view key, std::vector<std::string>& out, std::string_view path) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return {};
  if (v->is_string()) {
    out.emplace_back(v->get_string());
    return {};
  }
  if (!v->is_array()) return std::unexpected(wrong_type(path, key, "a string or an array of strings"));
  for (const bj::value& s : v->get_array()) {
    if (!s.is_string()) return std::unexpected(wrong_type(path, key, "a string or an array of strings"));
    out.emplace_back(s.get_string());
  }
  return {};
}

std::int64_t count(const bj::object& o, std::string_view key) {
  const bj::value* v = find(o, key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return 0;
}

void write(std::string& out, const bj::value& v) {
  switch (v.kind()) {
    case bj::kind::null: out += "null"; break;
    case bj::kind::bool_: json::append_bool(out, v.get_bool()); break;
    case bj::kind::int64: json::append_int(out, v.get_int64()); break;
    case bj::kind::uint64: json::append_int(out, v.get_uint64()); break;
    case bj::kind::double_:
      if (std::isfinite(v.get_double())) json::append_double(out, v.get_double());
      else out += "null";  // JSON has no NaN or infinity
      break;
    case bj::kind::string: json::append_string(out, v.get_string()); break;
    case bj::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const bj::value& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write(out, e);
      }
      out.push_back(']');
      break;
    }
    case bj::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const bj::key_value_pair& kv : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        json::append_string(out, kv.key());
        out.push_back(':');
        write(out, kv.value());
      }
      out.push_back('}');
      break;
    }
  }
}

std::string to_json(const bj::value& v) {
  std::string out;
  out.reserve(256);
  write(out, v);
  return out;
}

Result<bj::value> arguments_object(std::string_view arguments, std::string_view path) {
  if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) return bj::object{};
  bj::error_code ec;
  bj::value v = parse_value(arguments, ec);
  if (ec || !v.is_object())
    return std::unexpected(bad_request(about(path, {" must be a JSON object encoded as a string."}), std::string(path)));
  return v;
}

Result<bj::value> schema_object(std::string_view schema, std::string_view path) {
  if (schema.empty()) return bj::object{{"type", "object"}};
  bj::error_code ec;
  bj::value v = parse_value(schema, ec);
  if (ec || !v.is_object())
    return std::unexpected(bad_request(about(path, {" must be a JSON Schema object."}), std::string(path)));
  return v;
}

std::string arguments_text(const bj::value* input) {
  if (input == nullptr) return "{}";
  return to_json(*input);
}

std::optional<DataUrl> parse_data_url(std::string_view url) {
  constexpr std::string_view kScheme = "data:";
  constexpr std::string_view kBase64 = ";base64,";
  if (!url.starts_with(kScheme)) return std::nullopt;
  const std::size_t marker = url.find(kBase64);
  if (marker == std::string_view::npos) return std::nullopt;
  return DataUrl{url.substr(kScheme.size(), marker - kScheme.size()), url.substr(marker + kBase64.size())};
}

std::string_view bedrock_image_format(std::string_view media_type) noexcept {
  if (media_type == "image/png") return "png";
  if (media_type == "image/jpeg" || media_type == "image/jpg") return "jpeg";
  if (media_type == "image/gif") return "gif";
  if (media_type == "image/webp") return "webp";
  return {};
}

std::string media_type_of(std::string_view bedrock_format) {
  return "image/" + std::string(bedrock_format);
}

Status require_inline_image(const canonical::ImagePart& image, std::string_view format, std::string_view path) {
  if (image.url.empty()) return {};
  return std::unexpected(bad_request(
      about(path, {" is an image URL; ", format, " accepts only inline images: send it as a data: URL (base64)."}), std::string(path)));
}

Status refuse_openai_only(const canonical::ChatRequest& req, std::string_view format) {
  const auto refuse = [&](std::string_view field, std::string_view why = {}) -> Status {
    std::string msg = about(field, {" cannot be expressed in ", format});
    if (!why.empty()) {
      msg += ": ";
      msg += why;
    }
    msg += '.';
    return std::unexpected(bad_request(std::move(msg), std::string(field)));
  };
  if (req.n != 1) return refuse("n", "it returns one choice per request");
  if (req.logprobs) return refuse("logprobs");
  if (req.top_logprobs && *req.top_logprobs != 0) return refuse("top_logprobs");
  if (req.presence_penalty && *req.presence_penalty != 0) return refuse("presence_penalty");
  if (req.frequency_penalty && *req.frequency_penalty != 0) return refuse("frequency_penalty");
  if (req.seed) return refuse("seed");
  if (!req.response_format.empty()) return refuse("response_format", "it has no structured-output mode");
  if (!req.audio.empty()) return refuse("audio", "it does not produce audio");
  if (!req.logit_bias.empty()) return refuse("logit_bias");
  for (std::size_t i = 0; i < req.messages.size(); ++i)
    for (std::size_t j = 0; j < req.messages[i].content.size(); ++j)
      if (std::holds_alternative<canonical::AudioPart>(req.messages[i].content[j]))
        return refuse(path_index(path_key(path_index("messages", i), "content"), j), "it does not accept audio input");
  return {};
}

std::vector<Turn> merge_turns(const std::vector<canonical::Message>& messages) {
  std::vector<Turn> turns;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const canonical::Message& m = messages[i];
    const bool assistant = m.role == canonical::Role::assistant;
    if (turns.empty() || turns.back().assistant != assistant) turns.push_back(Turn{assistant, {}, i});
    Turn& turn = turns.back();
    for (const canonical::ContentPart& part : m.content) turn.parts.push_back(&part);
  }
  for (Turn& turn : turns)
    std::stable_partition(turn.parts.begin(), turn.parts.end(),
                          [](const canonical::ContentPart* p) { return std::holds_alternative<canonical::ToolResultPart>(*p); });
  return turns;
}

namespace {
constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) | (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) |
                            std::uint8_t(bytes[i + 2]);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (rest == 2) n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::array<std::int8_t, 256> value{};
  value.fill(-1);
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) value[static_cast<std::uint8_t>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const std::int8_t v = value[static_cast<std::uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

void append_thinking_block(std::string& out, const canonical::ReasoningPart& r) {
  if (!r.redacted.empty()) {
    out += "{\"type\":\"redacted_thinking\",\"data\":";
    json::append_string(out, r.redacted);
    out += '}';
    return;
  }
  out += "{\"type\":\"thinking\",\"thinking\":";
  json::append_string(out, r.text);
  out += ",\"signature\":";
  json::append_string(out, r.signature);
  out += '}';
}

}  // namespace bulwark::api::detail
