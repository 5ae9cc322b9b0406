#include "router/request_features.hpp"

#include <simdjson.h>

namespace bulwark::router {
namespace {

simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

bool is_image_part(std::string_view type) noexcept {
  return type == "image_url" || type == "image" || type == "input_image";
}

// Bytes of every key and string value under `e` (tool definitions), bounded depth.
std::uint64_t string_bytes(simdjson::dom::element e, int depth = 0) {
  if (depth > 16) return 0;
  std::uint64_t n = 0;
  switch (e.type()) {
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (!e.get_string().get(s)) n += s.size();
      break;
    }
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array arr;  // a local: value_unsafe() of a temporary would dangle
      if (!e.get_array().get(arr))
        for (simdjson::dom::element x : arr) n += string_bytes(x, depth + 1);
      break;
    }
    case simdjson::dom::element_type::OBJECT: {
      simdjson::dom::object obj;
      if (!e.get_object().get(obj))
        for (simdjson::dom::key_value_pair kv : obj) n += kv.key.size() + string_bytes(kv.value, depth + 1);
      break;
    }
    default: n += 2; break;
  }
  return n;
}

}  // namespace

Result<RequestExtract> extract_request_features(const simdjson::dom::element& doc) {
  using namespace simdjson;
  RequestExtract x;
  dom::object obj;
  if (doc.get_object().get(obj))
    return std::unexpected(Error::client(ErrorKind::invalid_json, "The request body must be a JSON object."));
  std::uint64_t text_bytes = 0, tool_bytes = 0;
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  for (dom::key_value_pair field : obj) {
    const std::string_view key = field.key;
    const dom::element value = field.value;
    if (key == "messages") {
      dom::array arr;
      if (value.get_array().get(arr)) continue;
      for (dom::element m : arr) {
        dom::object mo;
        if (m.get_object().get(mo)) continue;
        ++x.messages;
        std::string_view role;
        const bool is_user = !mo["role"].get_string().get(role) && role == "user";
        dom::element content;
        if (mo["content"].get(content)) continue;
        std::string_view s;
        if (!content.get_string().get(s)) {
          text_bytes += s.size();
          if (is_user) x.last_user_message.assign(s);
          continue;
        }
        dom::array parts;
        if (content.get_array().get(parts)) continue;
        bool first_text = true;
        for (dom::element part : parts) {
          dom::object po;
          if (part.get_object().get(po)) continue;
          std::string_view type;
          if (po["type"].get_string().get(type)) continue;
          if (is_image_part(type)) {
            x.has_images = true;
            ++x.images;
          } else if (type == "text" || type == "input_text") {
            std::string_view t;
            if (po["text"].get_string().get(t)) continue;
            text_bytes += t.size();
            if (is_user) {
              if (first_text) x.last_user_message.clear();
              else x.last_user_message.push_back('\n');
              x.last_user_message.append(t);
              first_text = false;
            }
          }
        }
        // A user message with only images still is the last user message.
        if (is_user && first_text) x.last_user_message.clear();
      }
    } else if (key == "tools" || key == "functions") {
      dom::array arr;
      if (!value.get_array().get(arr) && arr.size() > 0) {
        x.has_tools = true;
        tool_bytes += string_bytes(value);
      }
    } else if (key == "max_tokens") {
      std::int64_t n = 0;
      if (!value.get_int64().get(n) && n >= 0) max_tokens = n;
    } else if (key == "max_completion_tokens") {
      std::int64_t n = 0;
      if (!value.get_int64().get(n) && n >= 0) max_completion_tokens = n;
    } else if (key == "user") {
      std::string_view s;
      if (!value.get_string().get(s)) x.user.assign(s);
    } else if (key == "metadata") {
      dom::object mo;
      if (value.get_object().get(mo)) continue;
      for (dom::key_value_pair kv : mo) {
        std::string_view s;
        if (!kv.value.get_string().get(s)) x.metadata.emplace_back(std::string(kv.key), std::string(s));
      }
    }
  }
  x.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  x.input_tokens = estimate_tokens_from_bytes(text_bytes) + kTokensPerMessage * x.messages +
                   kTokensPerImage * x.images + estimate_tokens_from_bytes(tool_bytes);
  return x;
}

Result<RequestExtract> extract_request_features(const std::string& body) {
  simdjson::dom::element doc;
  const bool padded = body.capacity() >= body.size() + simdjson::SIMDJSON_PADDING;
  if (thread_parser().parse(body.data(), body.size(), !padded).get(doc))
    return std::unexpected(Error::client(ErrorKind::invalid_json, "We could not parse the JSON body of your request."));
  return extract_request_features(doc);
}

}  // namespace bulwark::router
