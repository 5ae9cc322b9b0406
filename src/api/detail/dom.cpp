#include "api/detail/dom.hpp"

#include <array>
#include <cmath>
#include <cstdint>

#include "api/detail/support.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::detail {

sd::parser& parser(ParserSlot slot) {
  thread_local std::array<sd::parser, 4> parsers;
  return parsers[static_cast<std::size_t>(slot)];
}

std::optional<sd::element> parse_value(ParserSlot slot, std::string_view text) {
  sd::element root;
  // realloc_if_needed (the default) copies the text into the parser's own padded buffer.
  if (parser(slot).parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
  return root;
}

Result<sd::object> parse_object(ParserSlot slot, std::string_view body) {
  auto root = parse_value(slot, body);
  if (!root) return std::unexpected(Error::client(ErrorKind::invalid_json, "We could not parse the JSON body of your request."));
  sd::object o;
  if (root->get_object().get(o) != simdjson::SUCCESS)
    return std::unexpected(Error::client(ErrorKind::invalid_json, "The request body must be a JSON object."));
  return o;
}

std::optional<sd::element> find(sd::object o, std::string_view key) {
  sd::element v;
  if (o.at_key(key).get(v) != simdjson::SUCCESS || v.is_null()) return std::nullopt;
  return v;
}

std::string_view string_of(sd::object o, std::string_view key) {
  std::string_view s;
  if (o.at_key(key).get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

bool contains(sd::object o, std::string_view key) {
  sd::element v;
  return o.at_key(key).get(v) == simdjson::SUCCESS;
}

Status read_string(sd::object o, std::string_view key, std::string& out, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return {};
  std::string_view s;
  if (v->get_string().get(s) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "a string"));
  out.assign(s);
  return {};
}

Status read_double(sd::object o, std::string_view key, std::optional<double>& out, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return {};
  switch (v->type()) {
    case sd::element_type::DOUBLE: out = double(*v); break;
    case sd::element_type::INT64: out = static_cast<double>(std::int64_t(*v)); break;
    case sd::element_type::UINT64: out = static_cast<double>(std::uint64_t(*v)); break;
    default: return std::unexpected(wrong_type(path, key, "a number"));
  }
  return {};
}

Status read_int(sd::object o, std::string_view key, std::optional<std::int64_t>& out, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return {};
  switch (v->type()) {
    case sd::element_type::INT64: out = std::int64_t(*v); return {};
    case sd::element_type::UINT64:
      if (std::uint64_t(*v) <= static_cast<std::uint64_t>(INT64_MAX)) {
        out = static_cast<std::int64_t>(std::uint64_t(*v));
        return {};
      }
      break;
    case sd::element_type::DOUBLE: {
      const double d = double(*v);
      if (std::trunc(d) == d && std::fabs(d) < 9e15) {
        out = static_cast<std::int64_t>(d);  // 100.0 is an integer to every format
        return {};
      }
      break;
    }
    default: break;
  }
  return std::unexpected(wrong_type(path, key, "an integer"));
}

Status read_bool(sd::object o, std::string_view key, std::optional<bool>& out, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return {};
  bool b = false;
  if (v->get_bool().get(b) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "a boolean"));
  out = b;
  return {};
}

Result<std::optional<sd::object>> read_object(sd::object o, std::string_view key, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return std::optional<sd::object>{};
  sd::object obj;
  if (v->get_object().get(obj) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "an object"));
  return std::optional<sd::object>(obj);
}

Result<std::optional<sd::array>> read_array(sd::object o, std::string_view key, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return std::optional<sd::array>{};
  sd::array arr;
  if (v->get_array().get(arr) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "an array"));
  return std::optional<sd::array>(arr);
}

Status read_strings(sd::object o, std::string_view key, std::vector<std::string>& out, std::string_view path) {
  const auto v = find(o, key);
  if (!v) return {};
  std::string_view s;
  if (v->get_string().get(s) == simdjson::SUCCESS) {
    out.emplace_back(s);
    return {};
  }
  sd::array arr;
  if (v->get_array().get(arr) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "a string or an array of strings"));
  for (sd::element e : arr) {
    if (e.get_string().get(s) != simdjson::SUCCESS) return std::unexpected(wrong_type(path, key, "a string or an array of strings"));
    out.emplace_back(s);
  }
  return {};
}

std::int64_t count(sd::object o, std::string_view key) {
  const auto v = find(o, key);
  if (!v) return 0;
  switch (v->type()) {
    case sd::element_type::INT64: return std::int64_t(*v);
    case sd::element_type::UINT64: return static_cast<std::int64_t>(std::uint64_t(*v));
    case sd::element_type::DOUBLE: return static_cast<std::int64_t>(double(*v));
    default: return 0;
  }
}

void write(std::string& out, sd::element v) {
  switch (v.type()) {
    case sd::element_type::NULL_VALUE: out += "null"; break;
    case sd::element_type::BOOL: json::append_bool(out, bool(v)); break;
    case sd::element_type::INT64: json::append_int(out, std::int64_t(v)); break;
    case sd::element_type::UINT64: json::append_int(out, std::uint64_t(v)); break;
    case sd::element_type::DOUBLE: {
      const double d = double(v);
      if (std::isfinite(d)) json::append_double(out, d);
      else out += "null";  // JSON has no NaN or infinity
      break;
    }
    case sd::element_type::STRING: json::append_string(out, std::string_view(v)); break;
    case sd::element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      for (sd::element e : sd::array(v)) {
        if (!first) out.push_back(',');
        first = false;
        write(out, e);
      }
      out.push_back(']');
      break;
    }
    case sd::element_type::OBJECT: {
      out.push_back('{');
      bool first = true;
      for (sd::key_value_pair kv : sd::object(v)) {
        if (!first) out.push_back(',');
        first = false;
        json::append_string(out, kv.key);
        out.push_back(':');
        write(out, kv.value);
      }
      out.push_back('}');
      break;
    }
  }
}

std::string to_json(sd::element v) {
  std::string out;
  out.reserve(64);
  write(out, v);
  return out;
}

Status append_arguments_object(std::string& out, std::string_view arguments, std::string_view path) {
  if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    out += "{}";
    return {};
  }
  const auto v = parse_value(ParserSlot::fragment, arguments);
  if (!v || !v->is_object())
    return std::unexpected(bad_request(about(path, {" must be a JSON object encoded as a string."}), std::string(path)));
  write(out, *v);
  return {};
}

Status append_schema_object(std::string& out, std::string_view schema, std::string_view path) {
  if (schema.empty()) {
    out += "{\"type\":\"object\"}";
    return {};
  }
  const auto v = parse_value(ParserSlot::fragment, schema);
  if (!v || !v->is_object()) return std::unexpected(bad_request(about(path, {" must be a JSON Schema object."}), std::string(path)));
  write(out, *v);
  return {};
}

}  // namespace bulwark::api::detail
