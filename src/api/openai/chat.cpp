#include "api/openai/chat.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <optional>
#include <vector>

#include "telemetry/log.hpp"

namespace bulwark::api::openai {
namespace {

simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Error invalid(std::string msg, std::string param = {}) {
  return Error::client(ErrorKind::bad_request, std::move(msg), std::move(param));
}

// The first key named twice in one object, anywhere in the document. Parsers disagree on
// which of the two counts (simdjson's lookup takes the first, most upstream servers the
// last), so a policy, a model allow-list or a max_tokens check could read one value while
// the upstream acts on the other: such a body is refused (RFC 8259 leaves duplicate names
// to the implementation). Keys are compared unescaped, so "cont\u0065nt" repeats "content".
std::optional<std::string_view> duplicate_key(simdjson::dom::element e) {
  using namespace simdjson;
  const auto nested = [](dom::element x) {
    const dom::element_type t = x.type();
    return t == dom::element_type::OBJECT || t == dom::element_type::ARRAY;
  };
  if (e.type() == dom::element_type::ARRAY) {
    for (dom::element x : dom::array(e))
      if (nested(x))
        if (auto d = duplicate_key(x)) return d;
    return std::nullopt;
  }
  if (e.type() != dom::element_type::OBJECT) return std::nullopt;
  constexpr std::size_t kInline = 16;  // pairwise below; more keys are sorted
  std::array<std::string_view, kInline> few;
  std::vector<std::string_view> many;
  std::size_t n = 0;
  for (dom::key_value_pair f : dom::object(e)) {
    if (n < kInline) {
      for (std::size_t i = 0; i < n; ++i)
        if (few[i] == f.key) return f.key;
      few[n] = f.key;
    } else {
      if (n == kInline) many.assign(few.begin(), few.end());
      many.push_back(f.key);
    }
    ++n;
    if (nested(f.value))
      if (auto d = duplicate_key(f.value)) return d;
  }
  if (!many.empty()) {
    std::sort(many.begin(), many.end());
    if (auto it = std::adjacent_find(many.begin(), many.end()); it != many.end()) return *it;
  }
  return std::nullopt;
}

// Byte range [begin, end) of the string value of top-level key `key` in a document that
// simdjson has already validated. Needed because the DOM API keeps no source offsets.
std::pair<std::size_t, std::size_t> locate_top_level_string(std::string_view json, std::string_view key) {
  int depth = 0;
  bool expect_key = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      const std::size_t begin = i;
      for (++i; i < json.size() && json[i] != '"'; ++i)
        if (json[i] == '\\') ++i;
      if (depth == 1 && expect_key && json.substr(begin + 1, i - begin - 1) == key) {
        std::size_t v = json.find('"', json.find(':', i + 1));
        std::size_t e = v + 1;
        while (e < json.size() && json[e] != '"') e += (json[e] == '\\') ? 2 : 1;
        return {v, e + 1};
      }
      expect_key = false;
    } else if (c == '{') {
      ++depth;
      expect_key = depth == 1;
    } else if (c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return {0, 0};
}

}  // namespace

Result<ChatRequest> decode_chat_request(std::string body) {
  ChatRequest req;
  req.body = std::move(body);

  using namespace simdjson;
  dom::element doc;
  if (thread_parser().parse(req.body.data(), req.body.size()).get(doc))
    return std::unexpected(Error::client(ErrorKind::invalid_json, "We could not parse the JSON body of your request."));
  dom::object obj;
  if (doc.get_object().get(obj))
    return std::unexpected(Error::client(ErrorKind::invalid_json, "The request body must be a JSON object."));

  if (const auto dup = duplicate_key(doc)) {
    std::string name(dup->substr(0, 64));
    return std::unexpected(invalid("The request body names the key '" + name +
                                   "' twice in one object; each key may appear only once."));
  }
  bool saw_messages = false;
  bool saw_model = false;
  // Unknown fields are the upstream's business and pass through untouched.
  for (dom::key_value_pair field : obj) {
    const std::string_view key = field.key;
    dom::element value = field.value;
    if (key == "model") {
      std::string_view model;
      if (value.get_string().get(model)) return std::unexpected(invalid("'model' must be a string.", "model"));
      req.model.assign(model);
      saw_model = true;
    } else if (key == "stream") {
      if (value.is_null()) continue;
      bool b = false;
      if (value.get_bool().get(b)) return std::unexpected(invalid("'stream' must be a boolean.", "stream"));
      req.stream = b;
    } else if (key == "stream_options") {
      req.has_stream_options = true;
      if (value.is_null()) continue;
      dom::object so;
      if (value.get_object().get(so)) return std::unexpected(invalid("'stream_options' must be an object.", "stream_options"));
      dom::element iu;
      if (!so["include_usage"].get(iu)) {
        bool b = false;
        if (iu.get_bool().get(b))
          return std::unexpected(invalid("'stream_options.include_usage' must be a boolean.", "stream_options"));
        req.include_usage = b;
      }
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      if (value.is_null()) continue;
      std::int64_t n = 0;
      if (value.get_int64().get(n) || n < 0)
        return std::unexpected(invalid("'" + std::string(key) + "' must be a non-negative integer.", std::string(key)));
      req.max_tokens = n;
    } else if (key == "messages") {
      dom::array arr;
      if (value.get_array().get(arr)) return std::unexpected(invalid("'messages' must be an array.", "messages"));
      if (arr.size() == 0) return std::unexpected(invalid("'messages' must contain at least one message.", "messages"));
      for (dom::element m : arr)
        if (!m.is_object()) return std::unexpected(invalid("Each message must be an object.", "messages"));
      saw_messages = true;
    }
  }
  if (!saw_model) return std::unexpected(invalid("You must provide a model parameter.", "model"));
  if (!saw_messages) return std::unexpected(invalid("Missing required parameter: 'messages'.", "messages"));
  std::tie(req.model_begin, req.model_end) = locate_top_level_string(req.body, "model");
  if (req.model_end == 0) return std::unexpected(Error::gateway(ErrorKind::internal, "could not locate the model field"));
  req.object_begin = req.body.find('{');
  return req;
}

std::string upstream_body(const ChatRequest& req, std::string_view target_model) {
  const bool inject_usage = req.stream && !req.include_usage;
  if (inject_usage && req.has_stream_options) {
    // The caller's stream_options lacks include_usage: edit the document properly.
    boost::json::error_code ec;
    boost::json::value v = boost::json::parse(std::string_view(req.body), ec);
    if (!ec && v.is_object()) {
      auto& o = v.as_object();
      o["model"] = target_model;
      auto& so = o["stream_options"];
      if (!so.is_object()) so = boost::json::object{};
      so.as_object()["include_usage"] = true;
      return boost::json::serialize(v);
    }
  }
  std::string out;
  out.reserve(req.body.size() + target_model.size() + 48);
  std::size_t pos = 0;
  if (inject_usage) {
    out.append(req.body, 0, req.object_begin + 1);
    out += "\"stream_options\":{\"include_usage\":true},";
    pos = req.object_begin + 1;
  }
  out.append(req.body, pos, req.model_begin - pos);
  log::append_json_string(out, target_model);
  out.append(req.body, req.model_end, std::string::npos);
  return out;
}

std::string error_body(const Error& error) {
  const ErrorShape& shape = shape_of(error.kind);
  std::string out;
  out.reserve(128 + error.message.size());
  out += "{\"error\":{\"message\":";
  log::append_json_string(out, error.message);
  out += ",\"type\":";
  log::append_json_string(out, shape.openai_type);
  out += ",\"param\":";
  if (error.param.empty()) out += "null";
  else log::append_json_string(out, error.param);
  out += ",\"code\":";
  if (shape.openai_code.empty()) out += "null";
  else log::append_json_string(out, shape.openai_code);
  out += "}}";
  return out;
}

}  // namespace bulwark::api::openai
