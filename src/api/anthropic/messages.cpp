#include "api/anthropic/messages.hpp"

#include <algorithm>
#include <cmath>

#include "api/detail/dom.hpp"
#include "api/detail/support.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::anthropic {
namespace {

namespace bj = boost::json;
namespace sd = simdjson::dom;
namespace cn = canonical;
using detail::bad_request;
using detail::path_index;
using detail::path_key;

constexpr std::string_view kFormat = "Anthropic Messages";

// A block's cache_control ({"type":"ephemeral","ttl"?}) as a cache mark.
Status read_cache(const bj::object& block, std::string_view p, std::optional<cn::CacheMark>& out) {
  const bj::value* cc = detail::find(block, "cache_control");
  if (cc == nullptr || cc->is_null()) return {};
  const std::string cp = path_key(p, "cache_control");
  if (!cc->is_object()) return std::unexpected(bad_request("'" + cp + "' must be an object.", cp));
  std::string type;
  cn::CacheMark mark;
  BULWARK_API_TRY(detail::read_string(cc->get_object(), "type", type, cp));
  if (type != "ephemeral") return std::unexpected(bad_request("'" + cp + ".type' must be ephemeral.", cp));
  BULWARK_API_TRY(detail::read_string(cc->get_object(), "ttl", mark.ttl, cp));
  out = std::move(mark);
  return {};
}

void append_cache_control(std::string& out, const std::optional<cn::CacheMark>& mark) {
  if (!mark) return;
  out += ",\"cache_control\":{\"type\":\"ephemeral\"";
  if (!mark->ttl.empty()) {
    out += ",\"ttl\":";
    json::append_string(out, mark->ttl);
  }
  out += '}';
}

Result<cn::ImagePart> decode_image(const bj::object& block, std::string_view p) {
  auto source = detail::read_object(block, "source", p);
  if (!source) return std::unexpected(std::move(source).error());
  const std::string sp = path_key(p, "source");
  if (*source == nullptr) return std::unexpected(bad_request("'" + sp + "' is required.", sp));
  std::string type;
  BULWARK_API_TRY(detail::read_string(**source, "type", type, sp));
  cn::ImagePart image;
  if (type == "base64") {
    BULWARK_API_TRY(detail::read_string(**source, "media_type", image.media_type, sp));
    BULWARK_API_TRY(detail::read_string(**source, "data", image.data, sp));
  } else if (type == "url") {
    BULWARK_API_TRY(detail::read_string(**source, "url", image.url, sp));
  } else {
    return std::unexpected(bad_request("Image source type '" + type + "' is not supported.", sp));
  }
  return image;
}

// A document block: base64 PDF or plain text; other sources cannot be translated.
Result<cn::DocumentPart> decode_document(const bj::object& block, std::string_view p) {
  auto source = detail::read_object(block, "source", p);
  if (!source) return std::unexpected(std::move(source).error());
  const std::string sp = path_key(p, "source");
  if (*source == nullptr) return std::unexpected(bad_request("'" + sp + "' is required.", sp));
  std::string type, data;
  cn::DocumentPart doc;
  BULWARK_API_TRY(detail::read_string(**source, "type", type, sp));
  BULWARK_API_TRY(detail::read_string(**source, "media_type", doc.media_type, sp));
  BULWARK_API_TRY(detail::read_string(**source, "data", data, sp));
  if (type == "base64" && doc.media_type == "application/pdf") {
    doc.data = std::move(data);
  } else if (type == "text" && doc.media_type == "text/plain") {
    doc.data = detail::base64_encode(data);  // the canonical form: base64, as Converse and OpenAI carry it
  } else {
    return std::unexpected(bad_request("Document source '" + type + "' (" + doc.media_type +
                                           ") is not supported by this gateway; send a base64 PDF or plain text.",
                                       sp));
  }
  BULWARK_API_TRY(detail::read_string(block, "title", doc.title, p));
  BULWARK_API_TRY(detail::read_string(block, "context", doc.context, p));
  auto citations = detail::read_object(block, "citations", p);
  if (!citations) return std::unexpected(std::move(citations).error());
  if (*citations != nullptr) {
    std::optional<bool> enabled;
    BULWARK_API_TRY(detail::read_bool(**citations, "enabled", enabled, path_key(p, "citations")));
    doc.citations = enabled.value_or(false);
  }
  BULWARK_API_TRY(read_cache(block, p, doc.cache));
  return doc;
}

Result<cn::ToolResultPart> decode_tool_result(const bj::object& block, std::string_view p) {
  cn::ToolResultPart result;
  BULWARK_API_TRY(detail::read_string(block, "tool_use_id", result.tool_call_id, p));
  if (result.tool_call_id.empty()) return std::unexpected(bad_request("'" + path_key(p, "tool_use_id") + "' is required.", path_key(p, "tool_use_id")));
  std::optional<bool> is_error;
  BULWARK_API_TRY(detail::read_bool(block, "is_error", is_error, p));
  result.is_error = is_error.value_or(false);
  BULWARK_API_TRY(read_cache(block, p, result.cache));
  const bj::value* content = detail::find(block, "content");
  const std::string cp = path_key(p, "content");
  if (content == nullptr) return result;
  if (content->is_string()) {
    result.content.emplace_back(cn::TextPart{std::string(content->get_string())});
    return result;
  }
  if (!content->is_array()) return std::unexpected(bad_request("'" + cp + "' must be a string or an array of blocks.", cp));
  for (std::size_t i = 0; i < content->get_array().size(); ++i) {
    const std::string bp = path_index(cp, i);
    const bj::value& b = content->get_array()[i];
    if (!b.is_object()) return std::unexpected(bad_request("'" + bp + "' must be an object.", bp));
    std::string type;
    BULWARK_API_TRY(detail::read_string(b.get_object(), "type", type, bp));
    // A breakpoint inside a tool result marks the result: other formats mark whole blocks.
    if (!result.cache) BULWARK_API_TRY(read_cache(b.get_object(), bp, result.cache));
    if (type == "text") {
      cn::TextPart t;
      BULWARK_API_TRY(detail::read_string(b.get_object(), "text", t.text, bp));
      result.content.emplace_back(std::move(t));
    } else if (type == "image") {
      auto image = decode_image(b.get_object(), bp);
      if (!image) return std::unexpected(std::move(image).error());
      result.content.emplace_back(std::move(*image));
    } else {
      return std::unexpected(bad_request("Tool result block type '" + type + "' is not supported.", bp));
    }
  }
  return result;
}

Status decode_message(const bj::value& value, std::size_t index, cn::ChatRequest& req) {
  const std::string p = path_index("messages", index);
  if (!value.is_object()) return std::unexpected(bad_request("Each message must be an object.", "messages"));
  const bj::object& m = value.get_object();
  std::string role;
  BULWARK_API_TRY(detail::read_string(m, "role", role, p));
  if (role != "user" && role != "assistant") {
    const std::string rp = path_key(p, "role");
    return std::unexpected(bad_request("'" + rp + "' must be user or assistant (not '" + role + "').", rp));
  }
  cn::Message msg;
  msg.role = role == "user" ? cn::Role::user : cn::Role::assistant;
  cn::Message results{cn::Role::tool, {}, {}};
  const bj::value* content = detail::find(m, "content");
  const std::string cp = path_key(p, "content");
  if (content == nullptr) return std::unexpected(bad_request("'" + cp + "' is required.", cp));
  if (content->is_string()) {
    msg.content.emplace_back(cn::TextPart{std::string(content->get_string())});
  } else if (content->is_array()) {
    for (std::size_t i = 0; i < content->get_array().size(); ++i) {
      const std::string bp = path_index(cp, i);
      const bj::value& b = content->get_array()[i];
      if (!b.is_object()) return std::unexpected(bad_request("'" + bp + "' must be an object.", bp));
      const bj::object& block = b.get_object();
      std::string type;
      BULWARK_API_TRY(detail::read_string(block, "type", type, bp));
      if (type == "text") {
        cn::TextPart t;
        BULWARK_API_TRY(detail::read_string(block, "text", t.text, bp));
        BULWARK_API_TRY(read_cache(block, bp, t.cache));
        msg.content.emplace_back(std::move(t));
      } else if (type == "image" && msg.role == cn::Role::user) {
        auto image = decode_image(block, bp);
        if (!image) return std::unexpected(std::move(image).error());
        BULWARK_API_TRY(read_cache(block, bp, image->cache));
        msg.content.emplace_back(std::move(*image));
      } else if (type == "document" && msg.role == cn::Role::user) {
        auto doc = decode_document(block, bp);
        if (!doc) return std::unexpected(std::move(doc).error());
        msg.content.emplace_back(std::move(*doc));
      } else if (type == "tool_use" && msg.role == cn::Role::assistant) {
        cn::ToolCallPart call;
        BULWARK_API_TRY(detail::read_string(block, "id", call.id, bp));
        BULWARK_API_TRY(detail::read_string(block, "name", call.name, bp));
        const bj::value* input = detail::find(block, "input");
        if (input != nullptr && !input->is_object()) return std::unexpected(bad_request("'" + bp + ".input' must be an object.", bp));
        call.arguments = detail::arguments_text(input);
        BULWARK_API_TRY(read_cache(block, bp, call.cache));
        msg.content.emplace_back(std::move(call));
      } else if (type == "tool_result" && msg.role == cn::Role::user) {
        auto result = decode_tool_result(block, bp);
        if (!result) return std::unexpected(std::move(result).error());
        results.content.emplace_back(std::move(*result));
      } else if (type == "thinking" && msg.role == cn::Role::assistant) {
        cn::ReasoningPart r;
        BULWARK_API_TRY(detail::read_string(block, "thinking", r.text, bp));
        BULWARK_API_TRY(detail::read_string(block, "signature", r.signature, bp));
        msg.content.emplace_back(std::move(r));
      } else if (type == "redacted_thinking" && msg.role == cn::Role::assistant) {
        cn::ReasoningPart r;
        BULWARK_API_TRY(detail::read_string(block, "data", r.redacted, bp));
        if (r.redacted.empty()) return std::unexpected(bad_request("'" + bp + ".data' is required.", bp));
        msg.content.emplace_back(std::move(r));
      } else {
        return std::unexpected(bad_request("Content block type '" + type + "' is not supported in a " + role + " message.", bp));
      }
    }
  } else {
    return std::unexpected(bad_request("'" + cp + "' must be a string or an array of content blocks.", cp));
  }
  if (!results.content.empty()) {
    req.messages.push_back(std::move(results));
    if (msg.content.empty()) return {};  // the turn held only tool results
  }
  req.messages.push_back(std::move(msg));
  return {};
}

Status decode_tools(const bj::object& o, cn::ChatRequest& req) {
  auto tools = detail::read_array(o, "tools", "");
  if (!tools) return std::unexpected(std::move(tools).error());
  if (*tools != nullptr) {
    for (std::size_t i = 0; i < (*tools)->size(); ++i) {
      const std::string p = path_index("tools", i);
      const bj::value& t = (**tools)[i];
      if (!t.is_object()) return std::unexpected(bad_request("'" + p + "' must be an object.", p));
      std::string type = "custom";
      BULWARK_API_TRY(detail::read_string(t.get_object(), "type", type, p));
      if (type != "custom") return std::unexpected(bad_request("Tool type '" + type + "' (a server tool) is not supported by this gateway.", p));
      cn::Tool tool;
      BULWARK_API_TRY(detail::read_string(t.get_object(), "name", tool.name, p));
      BULWARK_API_TRY(detail::read_string(t.get_object(), "description", tool.description, p));
      if (tool.name.empty()) return std::unexpected(bad_request("'" + p + ".name' is required.", p));
      const bj::value* schema = detail::find(t.get_object(), "input_schema");
      if (schema == nullptr || !schema->is_object())
        return std::unexpected(bad_request("'" + p + ".input_schema' must be an object.", path_key(p, "input_schema")));
      tool.parameters = detail::to_json(*schema);
      BULWARK_API_TRY(read_cache(t.get_object(), p, tool.cache));
      req.tools.push_back(std::move(tool));
    }
  }
  auto tc = detail::read_object(o, "tool_choice", "");
  if (!tc) return std::unexpected(std::move(tc).error());
  if (*tc != nullptr) {
    std::string type;
    BULWARK_API_TRY(detail::read_string(**tc, "type", type, "tool_choice"));
    if (type == "auto") req.tool_choice.mode = cn::ToolChoice::Mode::auto_;
    else if (type == "any") req.tool_choice.mode = cn::ToolChoice::Mode::required;
    else if (type == "none") req.tool_choice.mode = cn::ToolChoice::Mode::none;
    else if (type == "tool") {
      req.tool_choice.mode = cn::ToolChoice::Mode::tool;
      BULWARK_API_TRY(detail::read_string(**tc, "name", req.tool_choice.name, "tool_choice"));
      if (req.tool_choice.name.empty()) return std::unexpected(bad_request("'tool_choice.name' is required.", "tool_choice"));
    } else {
      return std::unexpected(bad_request("'tool_choice.type' must be auto, any, tool or none.", "tool_choice"));
    }
    std::optional<bool> disable;
    BULWARK_API_TRY(detail::read_bool(**tc, "disable_parallel_tool_use", disable, "tool_choice"));
    if (disable) req.parallel_tool_calls = !*disable;
  }
  return {};
}

cn::Usage decode_usage(sd::object u) {
  return cn::Usage{detail::count(u, "input_tokens"), detail::count(u, "output_tokens"),
                   detail::count(u, "cache_read_input_tokens"), detail::count(u, "cache_creation_input_tokens")};
}

void write_usage(std::string& out, const cn::Usage& usage) {
  out += "{\"input_tokens\":";
  json::append_int(out, usage.input);
  out += ",\"cache_creation_input_tokens\":";
  json::append_int(out, usage.cache_write);
  out += ",\"cache_read_input_tokens\":";
  json::append_int(out, usage.cache_read);
  out += ",\"output_tokens\":";
  json::append_int(out, usage.output);
  out += '}';
}

// Requests are written straight into the body (no JSON tree): this is the hot path of an
// OpenAI request going to an Anthropic upstream (or Claude on Bedrock InvokeModel).

Status write_image_block(std::string& out, const cn::ImagePart& image, std::string_view p) {
  BULWARK_API_TRY(detail::require_inline_image(image, kFormat, p));
  out += "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":";
  json::append_string(out, image.media_type);
  out += ",\"data\":";
  json::append_string(out, image.data);
  out += '}';
  append_cache_control(out, image.cache);
  out += '}';
  return {};
}

// One canonical part as a Messages content block, preceded by a comma unless it is the
// first; nothing for an empty text (Anthropic rejects empty text blocks). `written` counts
// the blocks written so far.
Status write_block(std::string& out, std::size_t& written, const cn::ContentPart& part, std::string_view p, cn::IdSource& ids) {
  const auto next = [&] {
    if (written++ != 0) out += ',';
  };
  if (const auto* t = std::get_if<cn::TextPart>(&part)) {
    if (t->text.empty()) return {};
    next();
    out += "{\"type\":\"text\",\"text\":";
    json::append_string(out, t->text);
    append_cache_control(out, t->cache);
    out += '}';
    return {};
  }
  if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
    next();
    detail::append_thinking_block(out, *r);
    return {};
  }
  if (const auto* img = std::get_if<cn::ImagePart>(&part)) {
    next();
    return write_image_block(out, *img, p);
  }
  if (const auto* call = std::get_if<cn::ToolCallPart>(&part)) {
    next();
    out += "{\"type\":\"tool_use\",\"id\":";
    json::append_string(out, cn::restyle_id(call->id, cn::id_prefix::anthropic_tool_use, ids));
    out += ",\"name\":";
    json::append_string(out, call->name);
    out += ",\"input\":";
    BULWARK_API_TRY(detail::append_arguments_object(out, call->arguments, path_key(p, "arguments")));
    append_cache_control(out, call->cache);
    out += '}';
    return {};
  }
  if (const auto* result = std::get_if<cn::ToolResultPart>(&part)) {
    next();
    out += "{\"type\":\"tool_result\",\"tool_use_id\":";
    json::append_string(out, cn::restyle_id(result->tool_call_id, cn::id_prefix::anthropic_tool_use, ids));
    const bool plain = result->content.size() == 1 && std::holds_alternative<cn::TextPart>(result->content[0]);
    if (plain) {
      out += ",\"content\":";
      json::append_string(out, std::get<cn::TextPart>(result->content[0]).text);
    } else if (!result->content.empty()) {
      out += ",\"content\":[";
      bool first = true;
      for (const cn::ToolResultContent& c : result->content) {
        if (const auto* t = std::get_if<cn::TextPart>(&c)) {
          if (t->text.empty()) continue;
          if (!first) out += ',';
          out += "{\"type\":\"text\",\"text\":";
          json::append_string(out, t->text);
          out += '}';
        } else {
          if (!first) out += ',';
          BULWARK_API_TRY(write_image_block(out, std::get<cn::ImagePart>(c), p));
        }
        first = false;
      }
      out += ']';
    }
    if (result->is_error) out += ",\"is_error\":true";
    append_cache_control(out, result->cache);
    out += '}';
    return {};
  }
  if (const auto* doc = std::get_if<cn::DocumentPart>(&part)) {
    next();
    if (doc->media_type == "text/plain") {
      auto text = detail::base64_decode(doc->data);
      if (!text) return std::unexpected(bad_request("'" + std::string(p) + "' is a text document whose data is not base64.", std::string(p)));
      out += "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\",\"data\":";
      json::append_string(out, *text);
    } else {
      out += "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":";
      json::append_string(out, doc->media_type);
      out += ",\"data\":";
      json::append_string(out, doc->data);
    }
    out += '}';
    if (!doc->title.empty()) {
      out += ",\"title\":";
      json::append_string(out, doc->title);
    }
    if (!doc->context.empty()) {
      out += ",\"context\":";
      json::append_string(out, doc->context);
    }
    if (doc->citations) out += ",\"citations\":{\"enabled\":true}";
    append_cache_control(out, doc->cache);
    out += '}';
    return {};
  }
  return std::unexpected(bad_request("'" + std::string(p) + "' is audio, which Anthropic Messages cannot express.", std::string(p)));
}

// A double as JSON (support.hpp's write(): non-finite numbers become null).
void append_number(std::string& out, double v) {
  if (std::isfinite(v)) json::append_double(out, v);
  else out += "null";
}

// The (type, data) pair of an error event.
std::string error_data(const Error& error) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":";
  json::append_string(out, shape_of(error.kind).anthropic_type);
  out += ",\"message\":";
  json::append_string(out, error.message);
  out += "}}";
  return out;
}

}  // namespace

std::string_view stop_reason_name(cn::StopReason reason) noexcept {
  switch (reason) {
    case cn::StopReason::none:
    case cn::StopReason::end_turn: return "end_turn";
    case cn::StopReason::max_tokens: return "max_tokens";
    case cn::StopReason::stop_sequence: return "stop_sequence";
    case cn::StopReason::tool_use: return "tool_use";
    case cn::StopReason::content_filter:
    case cn::StopReason::refusal:
    case cn::StopReason::guardrail: return "refusal";
  }
  return "end_turn";
}

cn::StopReason stop_reason_from(std::string_view name) noexcept {
  if (name == "end_turn" || name == "pause_turn") return cn::StopReason::end_turn;
  if (name == "max_tokens" || name == "model_context_window_exceeded") return cn::StopReason::max_tokens;
  if (name == "stop_sequence") return cn::StopReason::stop_sequence;
  if (name == "tool_use") return cn::StopReason::tool_use;
  if (name == "refusal") return cn::StopReason::refusal;
  if (name.empty()) return cn::StopReason::none;
  return cn::StopReason::end_turn;
}

std::string error_body(const Error& error) { return error_data(error); }

ErrorKind upstream_error_kind(std::string_view type) noexcept {
  if (type == "overloaded_error") return ErrorKind::upstream_overloaded;
  if (type == "rate_limit_error") return ErrorKind::upstream_rate_limited;
  if (type == "invalid_request_error" || type == "request_too_large") return ErrorKind::upstream_bad_request;
  if (type == "authentication_error" || type == "permission_error") return ErrorKind::upstream_auth;
  if (type == "not_found_error") return ErrorKind::upstream_not_found;
  return ErrorKind::upstream_server_error;
}

Result<cn::ChatRequest> decode_request(std::string_view body, const DecodeOptions& options) {
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(std::move(parsed).error());
  const bj::object& o = **parsed;
  cn::ChatRequest req;
  if (options.require_model && !o.contains("model")) return std::unexpected(bad_request("model: Field required", "model"));
  BULWARK_API_TRY(detail::read_string(o, "model", req.model, ""));
  BULWARK_API_TRY(detail::read_int(o, "max_tokens", req.max_tokens, ""));
  if (!req.max_tokens) return std::unexpected(bad_request("max_tokens: Field required", "max_tokens"));
  if (*req.max_tokens < 1) return std::unexpected(bad_request("max_tokens: must be at least 1", "max_tokens"));

  if (const bj::value* system = detail::find(o, "system")) {
    if (system->is_string()) {
      if (!system->get_string().empty()) req.system.emplace_back(system->get_string());
    } else if (system->is_array()) {
      for (std::size_t i = 0; i < system->get_array().size(); ++i) {
        const std::string p = path_index("system", i);
        const bj::value& b = system->get_array()[i];
        if (!b.is_object()) return std::unexpected(bad_request("'" + p + "' must be a text block.", p));
        std::string type, text;
        BULWARK_API_TRY(detail::read_string(b.get_object(), "type", type, p));
        if (type != "text") return std::unexpected(bad_request("'" + p + "' must be a text block.", p));
        BULWARK_API_TRY(detail::read_string(b.get_object(), "text", text, p));
        std::optional<cn::CacheMark> mark;
        BULWARK_API_TRY(read_cache(b.get_object(), p, mark));
        if (mark) req.system_cache.emplace_back(req.system.size(), std::move(*mark));
        req.system.push_back(std::move(text));
      }
    } else {
      return std::unexpected(bad_request("'system' must be a string or an array of text blocks.", "system"));
    }
  }
  auto messages = detail::read_array(o, "messages", "");
  if (!messages) return std::unexpected(std::move(messages).error());
  if (*messages == nullptr) return std::unexpected(bad_request("messages: Field required", "messages"));
  for (std::size_t i = 0; i < (*messages)->size(); ++i) BULWARK_API_TRY(decode_message((**messages)[i], i, req));

  BULWARK_API_TRY(decode_tools(o, req));
  BULWARK_API_TRY(detail::read_strings(o, "stop_sequences", req.stop, ""));
  BULWARK_API_TRY(detail::read_double(o, "temperature", req.temperature, ""));
  BULWARK_API_TRY(detail::read_double(o, "top_p", req.top_p, ""));
  BULWARK_API_TRY(detail::read_int(o, "top_k", req.top_k, ""));
  std::optional<bool> stream;
  BULWARK_API_TRY(detail::read_bool(o, "stream", stream, ""));
  req.stream = stream.value_or(false);
  auto metadata = detail::read_object(o, "metadata", "");
  if (!metadata) return std::unexpected(std::move(metadata).error());
  if (*metadata != nullptr) BULWARK_API_TRY(detail::read_string(**metadata, "user_id", req.user, "metadata"));
  auto thinking = detail::read_object(o, "thinking", "");
  if (!thinking) return std::unexpected(std::move(thinking).error());
  if (*thinking != nullptr) {
    std::string type;
    BULWARK_API_TRY(detail::read_string(**thinking, "type", type, "thinking"));
    if (type == "enabled") {
      std::optional<std::int64_t> budget;
      BULWARK_API_TRY(detail::read_int(**thinking, "budget_tokens", budget, "thinking"));
      if (!budget) return std::unexpected(bad_request("thinking.budget_tokens: Field required", "thinking.budget_tokens"));
      req.reasoning = {cn::Reasoning::Mode::enabled, *budget, {}};
    } else if (type == "disabled") {
      req.reasoning.mode = cn::Reasoning::Mode::disabled;
    } else {
      return std::unexpected(bad_request("'thinking.type' must be enabled or disabled.", "thinking.type"));
    }
  }
  return req;
}

Result<std::string> encode_request(const cn::ChatRequest& req, std::string_view target_model, const RequestOptions& options) {
  BULWARK_API_TRY(detail::refuse_openai_only(req, kFormat));
  if (req.reasoning.mode == cn::Reasoning::Mode::enabled && cn::thinking_budget(req.reasoning) == 0)
    return std::unexpected(bad_request("'reasoning_effort' " + req.reasoning.effort + " has no thinking budget in Anthropic Messages (use minimal, low, medium or high).", "reasoning_effort"));
  cn::IdSource ids(0);  // every id in a request exists: nothing is generated
  std::string out;
  std::size_t text_size = 0;
  for (const std::string& s : req.system) text_size += s.size();
  for (const cn::Message& m : req.messages)
    for (const cn::ContentPart& part : m.content)
      if (const auto* t = std::get_if<cn::TextPart>(&part)) text_size += t->text.size();
  out.reserve(256 + text_size + text_size / 8);
  out += '{';
  if (!options.anthropic_version.empty()) {
    out += "\"anthropic_version\":";
    json::append_string(out, options.anthropic_version);
    out += ',';
  }
  if (options.include_model) {
    out += "\"model\":";
    json::append_string(out, target_model);
    out += ',';
  }
  // Thinking needs max_tokens above its budget: a request without max_tokens gets the
  // budget on top of the default, not a default the upstream would refuse.
  const std::int64_t budget = cn::thinking_budget(req.reasoning);
  out += "\"max_tokens\":";
  json::append_int(out, req.max_tokens.value_or(options.default_max_tokens + budget));

  std::size_t system_blocks = 0;
  for (const std::string& s : req.system) system_blocks += s.empty() ? 0 : 1;
  if (system_blocks == 1 && req.system_cache.empty()) {
    out += ",\"system\":";
    for (const std::string& s : req.system)
      if (!s.empty()) json::append_string(out, s);
  } else if (system_blocks > 1) {
    out += ",\"system\":[";
    bool first = true;
    for (std::size_t i = 0; i < req.system.size(); ++i) {
      const std::string& s = req.system[i];
      if (s.empty()) continue;
      if (!first) out += ',';
      first = false;
      out += "{\"type\":\"text\",\"text\":";
      json::append_string(out, s);
      if (const cn::CacheMark* mark = cn::system_cache_of(req, i)) append_cache_control(out, *mark);
      out += '}';
    }
    out += ']';
  }

  const std::vector<detail::Turn> turns = detail::merge_turns(req.messages);
  out += ",\"messages\":[";
  bool first_turn = true;
  for (std::size_t t = 0; t < turns.size(); ++t) {
    const detail::Turn& turn = turns[t];
    const std::string p = path_key(path_index("messages", turn.message), "content");
    const std::size_t mark = out.size();  // an empty turn is taken back
    if (!first_turn) out += ',';
    out += turn.assistant ? "{\"role\":\"assistant\",\"content\":[" : "{\"role\":\"user\",\"content\":[";
    std::size_t blocks = 0;
    for (const cn::ContentPart* part : turn.parts) BULWARK_API_TRY(write_block(out, blocks, *part, p, ids));
    if (blocks == 0) {
      out.resize(mark);
      // A trailing empty assistant turn asks for nothing: drop it rather than fail.
      if (turn.assistant && t + 1 == turns.size()) continue;
      return std::unexpected(bad_request("'" + p + "' is empty; Anthropic Messages requires non-empty content.", p));
    }
    out += "]}";
    first_turn = false;
  }
  out += ']';

  if (!req.tools.empty()) {
    out += ",\"tools\":[";
    for (std::size_t i = 0; i < req.tools.size(); ++i) {
      const cn::Tool& tool = req.tools[i];
      if (i != 0) out += ',';
      out += "{\"name\":";
      json::append_string(out, tool.name);
      if (!tool.description.empty()) {
        out += ",\"description\":";
        json::append_string(out, tool.description);
      }
      out += ",\"input_schema\":";
      BULWARK_API_TRY(detail::append_schema_object(out, tool.parameters, path_index("tools", i)));
      append_cache_control(out, tool.cache);
      out += '}';
    }
    out += ']';
    std::string_view type;
    switch (req.tool_choice.mode) {
      case cn::ToolChoice::Mode::unset:
        if (req.parallel_tool_calls == false) type = "auto";  // the only place the flag can go
        break;
      case cn::ToolChoice::Mode::auto_: type = "auto"; break;
      case cn::ToolChoice::Mode::none: type = "none"; break;
      case cn::ToolChoice::Mode::required: type = "any"; break;
      case cn::ToolChoice::Mode::tool: type = "tool"; break;
    }
    if (!type.empty()) {
      out += ",\"tool_choice\":{\"type\":";
      json::append_string(out, type);
      if (req.tool_choice.mode == cn::ToolChoice::Mode::tool) {
        out += ",\"name\":";
        json::append_string(out, req.tool_choice.name);
      }
      if (req.parallel_tool_calls == false && req.tool_choice.mode != cn::ToolChoice::Mode::none)
        out += ",\"disable_parallel_tool_use\":true";
      out += '}';
    }
  }
  if (!req.stop.empty()) {
    out += ",\"stop_sequences\":[";
    for (std::size_t i = 0; i < req.stop.size(); ++i) {
      if (i != 0) out += ',';
      json::append_string(out, req.stop[i]);
    }
    out += ']';
  }
  if (req.temperature) {
    out += ",\"temperature\":";
    append_number(out, *req.temperature);
  }
  if (req.top_p) {
    out += ",\"top_p\":";
    append_number(out, *req.top_p);
  }
  if (req.top_k) {
    out += ",\"top_k\":";
    json::append_int(out, *req.top_k);
  }
  if (req.reasoning.mode == cn::Reasoning::Mode::enabled) {
    out += ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":";
    json::append_int(out, budget);
    out += '}';
  } else if (req.reasoning.mode == cn::Reasoning::Mode::disabled) {
    out += ",\"thinking\":{\"type\":\"disabled\"}";
  }
  if (req.stream && options.include_stream) out += ",\"stream\":true";
  if (!req.user.empty()) {
    out += ",\"metadata\":{\"user_id\":";
    json::append_string(out, req.user);
    out += '}';
  }
  out += '}';
  return out;
}

// Upstream answers and stream events are read with simdjson (api/detail/dom.hpp).
Result<cn::ChatResponse> decode_response(std::string_view body) {
  auto parsed = detail::parse_object(detail::ParserSlot::answer, body);
  if (!parsed) return std::unexpected(detail::as_upstream(std::move(parsed).error()));
  const sd::object o = *parsed;
  cn::ChatResponse resp;
  resp.id = detail::string_of(o, "id");
  resp.model = detail::string_of(o, "model");
  sd::array content;
  if (o.at_key("content").get_array().get(content) != simdjson::SUCCESS)
    return std::unexpected(detail::upstream_protocol("the upstream answer has no content"));
  for (sd::element b : content) {
    sd::object block;
    if (b.get_object().get(block) != simdjson::SUCCESS) continue;
    std::string_view type;
    if (block.at_key("type").get_string().get(type) != simdjson::SUCCESS) continue;
    if (type == "text") {
      if (std::string_view t; block.at_key("text").get_string().get(t) == simdjson::SUCCESS) {
        cn::TextPart part{std::string(t)};
        if (sd::element c; block.at_key("citations").get(c) == simdjson::SUCCESS && c.is_array() && sd::array(c).size() != 0)
          part.citations = detail::to_json(c);
        resp.content.emplace_back(std::move(part));
      }
    } else if (type == "tool_use") {
      cn::ToolCallPart call;
      call.id = detail::string_of(block, "id");
      call.name = detail::string_of(block, "name");
      const auto input = detail::find(block, "input");
      call.arguments = input ? detail::to_json(*input) : std::string("{}");
      resp.content.emplace_back(std::move(call));
    } else if (type == "thinking") {
      resp.content.emplace_back(cn::ReasoningPart{std::string(detail::string_of(block, "thinking")),
                                                  std::string(detail::string_of(block, "signature")), {}});
    } else if (type == "redacted_thinking") {
      resp.content.emplace_back(cn::ReasoningPart{{}, {}, std::string(detail::string_of(block, "data"))});
    }
    // server-tool blocks are not carried by the canonical answer
  }
  if (std::string_view sr; o.at_key("stop_reason").get_string().get(sr) == simdjson::SUCCESS) resp.stop_reason = stop_reason_from(sr);
  resp.stop_sequence = detail::string_of(o, "stop_sequence");
  if (sd::object u; o.at_key("usage").get_object().get(u) == simdjson::SUCCESS) resp.usage = decode_usage(u);
  return resp;
}

std::string encode_response(const cn::ChatResponse& resp, std::uint64_t id_seed) {
  cn::IdSource ids(id_seed);
  std::string out;
  out.reserve(256);
  out += "{\"id\":";
  json::append_string(out, cn::restyle_id(resp.id, cn::id_prefix::anthropic_message, ids));
  out += ",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
  json::append_string(out, resp.model);
  out += ",\"content\":[";
  bool first = true;
  for (const cn::ContentPart& part : resp.content) {
    if (const auto* t = std::get_if<cn::TextPart>(&part)) {
      if (!first) out += ',';
      out += "{\"type\":\"text\",\"text\":";
      json::append_string(out, t->text);
      if (!t->citations.empty()) {
        out += ",\"citations\":";
        out += t->citations;  // JSON this library wrote from a parsed value
      }
      out += '}';
    } else if (const auto* call = std::get_if<cn::ToolCallPart>(&part)) {
      if (!first) out += ',';
      out += "{\"type\":\"tool_use\",\"id\":";
      json::append_string(out, cn::restyle_id(call->id, cn::id_prefix::anthropic_tool_use, ids));
      out += ",\"name\":";
      json::append_string(out, call->name);
      out += ",\"input\":";
      // Arguments that are not a JSON object (a broken upstream) become {}: clients expect an object.
      auto input = detail::arguments_object(call->arguments, "arguments");
      if (input) detail::write(out, *input);
      else out += "{}";
      out += '}';
    } else if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
      if (!first) out += ',';
      detail::append_thinking_block(out, *r);
    } else {
      continue;
    }
    first = false;
  }
  out += "],\"stop_reason\":";
  json::append_string(out, stop_reason_name(resp.stop_reason));
  out += ",\"stop_sequence\":";
  if (resp.stop_sequence.empty()) out += "null";
  else json::append_string(out, resp.stop_sequence);
  out += ",\"usage\":";
  write_usage(out, resp.usage);
  out += '}';
  return out;
}

// ---- stream decoding ----

Status StreamDecoder::feed(std::string_view data, std::vector<cn::StreamEvent>& out) {
  const auto parsed = detail::parse_value(detail::ParserSlot::event, data);
  sd::object o;
  if (!parsed || parsed->get_object().get(o) != simdjson::SUCCESS)
    return std::unexpected(detail::upstream_protocol("a stream event is not a JSON object"));
  std::string_view type;
  if (o.at_key("type").get_string().get(type) != simdjson::SUCCESS)
    return std::unexpected(detail::upstream_protocol("a stream event has no type"));
  const auto index = static_cast<std::uint32_t>(detail::count(o, "index"));
  const auto skipped = [&] { return std::find(skipped_.begin(), skipped_.end(), index) != skipped_.end(); };

  if (type == "message_start") {
    cn::MessageStart start;
    if (sd::object m; o.at_key("message").get_object().get(m) == simdjson::SUCCESS) {
      start.id = detail::string_of(m, "id");
      start.model = detail::string_of(m, "model");
      if (sd::object u; m.at_key("usage").get_object().get(u) == simdjson::SUCCESS) usage_ = decode_usage(u);
    }
    start.usage = usage_;
    out.emplace_back(std::move(start));
  } else if (type == "content_block_start") {
    sd::object block;
    if (o.at_key("content_block").get_object().get(block) != simdjson::SUCCESS)
      return std::unexpected(detail::upstream_protocol("content_block_start without a block"));
    const std::string_view block_type = detail::string_of(block, "type");
    if (block_type == "text") {
      if (const std::string_view t = detail::string_of(block, "text"); !t.empty()) out.emplace_back(cn::TextDelta{index, std::string(t)});
      // Citations normally follow as citations_delta; any already on the block are kept too.
      if (sd::array cs; block.at_key("citations").get_array().get(cs) == simdjson::SUCCESS)
        for (sd::element c : cs)
          if (c.is_object()) out.emplace_back(cn::CitationDelta{index, detail::to_json(c)});
    } else if (block_type == "tool_use") {
      cn::ToolCallStart start{index, std::string(detail::string_of(block, "id")), std::string(detail::string_of(block, "name"))};
      out.emplace_back(std::move(start));
      // The input is {} at the start and arrives as input_json_delta; a non-empty one is kept.
      if (const auto in = detail::find(block, "input"); in && in->is_object() && sd::object(*in).size() != 0)
        out.emplace_back(cn::ToolArgsDelta{index, detail::to_json(*in)});
    } else if (block_type == "thinking") {
      if (const std::string_view t = detail::string_of(block, "thinking"); !t.empty()) out.emplace_back(cn::ReasoningDelta{index, std::string(t)});
      if (const std::string_view sig = detail::string_of(block, "signature"); !sig.empty()) out.emplace_back(cn::SignatureDelta{index, std::string(sig)});
    } else if (block_type == "redacted_thinking") {
      out.emplace_back(cn::RedactedReasoning{index, std::string(detail::string_of(block, "data"))});
    } else {
      skipped_.push_back(index);  // server tools
    }
  } else if (type == "content_block_delta") {
    if (skipped()) return {};
    sd::object delta;
    if (o.at_key("delta").get_object().get(delta) != simdjson::SUCCESS)
      return std::unexpected(detail::upstream_protocol("content_block_delta without a delta"));
    const std::string_view delta_type = detail::string_of(delta, "type");
    if (delta_type == "text_delta") {
      if (std::string_view t; delta.at_key("text").get_string().get(t) == simdjson::SUCCESS) out.emplace_back(cn::TextDelta{index, std::string(t)});
    } else if (delta_type == "input_json_delta") {
      if (const std::string_view pj = detail::string_of(delta, "partial_json"); !pj.empty())
        out.emplace_back(cn::ToolArgsDelta{index, std::string(pj)});
    } else if (delta_type == "thinking_delta") {
      if (const std::string_view t = detail::string_of(delta, "thinking"); !t.empty()) out.emplace_back(cn::ReasoningDelta{index, std::string(t)});
    } else if (delta_type == "signature_delta") {
      if (const std::string_view sig = detail::string_of(delta, "signature"); !sig.empty()) out.emplace_back(cn::SignatureDelta{index, std::string(sig)});
    } else if (delta_type == "citations_delta") {
      if (sd::element c; delta.at_key("citation").get(c) == simdjson::SUCCESS && c.is_object())
        out.emplace_back(cn::CitationDelta{index, detail::to_json(c)});
    }
  } else if (type == "content_block_stop") {
    if (!skipped()) out.emplace_back(cn::BlockStop{index});
  } else if (type == "message_delta") {
    cn::MessageDelta md;
    if (sd::object d; o.at_key("delta").get_object().get(d) == simdjson::SUCCESS) {
      if (std::string_view sr; d.at_key("stop_reason").get_string().get(sr) == simdjson::SUCCESS) md.stop_reason = stop_reason_from(sr);
      md.stop_sequence = detail::string_of(d, "stop_sequence");
    }
    // message_delta's usage is cumulative; input counts appear here only in newer streams.
    if (sd::object usage; o.at_key("usage").get_object().get(usage) == simdjson::SUCCESS) {
      usage_.output = detail::count(usage, "output_tokens");
      if (detail::contains(usage, "input_tokens")) usage_.input = detail::count(usage, "input_tokens");
      if (detail::contains(usage, "cache_read_input_tokens")) usage_.cache_read = detail::count(usage, "cache_read_input_tokens");
      if (detail::contains(usage, "cache_creation_input_tokens")) usage_.cache_write = detail::count(usage, "cache_creation_input_tokens");
    }
    md.usage = usage_;
    delta_seen_ = true;
    out.emplace_back(std::move(md));
  } else if (type == "message_stop") {
    out.emplace_back(cn::MessageStop{});
    done_ = true;
  } else if (type == "ping") {
    out.emplace_back(cn::Ping{});
  } else if (type == "error") {
    std::string kind_name, message = "the upstream reported an error mid-stream";
    if (sd::object ev; o.at_key("error").get_object().get(ev) == simdjson::SUCCESS) {
      kind_name = detail::string_of(ev, "type");
      if (std::string_view m; ev.at_key("message").get_string().get(m) == simdjson::SUCCESS) message = m;
    }
    Error e = Error::gateway(upstream_error_kind(kind_name), std::move(message));
    e.origin = Origin::upstream;
    e.retryable = e.kind == ErrorKind::upstream_overloaded || e.kind == ErrorKind::upstream_rate_limited ||
                  e.kind == ErrorKind::upstream_server_error;
    out.emplace_back(cn::StreamError{std::move(e)});
  }
  // Unknown event types are ignored, as Anthropic asks of clients.
  return {};
}

Status StreamDecoder::feed_sse(std::string_view event, std::vector<cn::StreamEvent>& out) {
  // Upstream events carry one data line: it is fed in place; only several lines are joined.
  std::string_view first;
  std::string joined;
  bool any = false, several = false;
  while (!event.empty()) {
    const std::size_t nl = event.find('\n');
    std::string_view line = event.substr(0, nl);
    event.remove_prefix(nl == std::string_view::npos ? event.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.starts_with("data:")) continue;
    line.remove_prefix(5);
    if (line.starts_with(' ')) line.remove_prefix(1);
    if (!any) {
      first = line;
      any = true;
      continue;
    }
    if (!several) joined.assign(first);
    several = true;
    joined.push_back('\n');
    joined.append(line);
  }
  if (!any) return {};
  return feed(several ? std::string_view(joined) : first, out);
}

void StreamDecoder::finish(std::vector<cn::StreamEvent>& out) {
  if (done_) return;
  if (delta_seen_) out.emplace_back(cn::MessageStop{});
  else out.emplace_back(cn::StreamError{Error::transport(ErrorKind::stream_truncated, "the upstream stream ended before the answer was complete", false)});
  done_ = true;
}

// ---- stream encoding ----

StreamEncoder::StreamEncoder(StreamOptions options) : options_(std::move(options)), ids_(options_.id_seed) {}

void StreamEncoder::start(std::vector<Event>& out) {
  if (started_) return;
  started_ = true;
  std::string data = "{\"type\":\"message_start\",\"message\":{\"id\":";
  json::append_string(data, cn::restyle_id(options_.id, cn::id_prefix::anthropic_message, ids_));
  data += ",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
  json::append_string(data, options_.model);
  data += ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":";
  write_usage(data, usage_);
  data += "}}";
  out.push_back(Event{"message_start", std::move(data)});
}

void StreamEncoder::close_block(std::vector<Event>& out) {
  if (!open_) return;
  std::string data = "{\"type\":\"content_block_stop\",\"index\":";
  json::append_int(data, open_->index);
  data += '}';
  out.push_back(Event{"content_block_stop", std::move(data)});
  open_.reset();
}

void StreamEncoder::open_text(std::uint32_t canonical, std::vector<Event>& out) {
  if (open_ && open_->canonical == canonical && open_->kind == Kind::text) return;
  close_block(out);
  open_ = Open{canonical, next_index_++, Kind::text};
  std::string data = "{\"type\":\"content_block_start\",\"index\":";
  json::append_int(data, open_->index);
  data += ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}";
  out.push_back(Event{"content_block_start", std::move(data)});
}

void StreamEncoder::message_delta(std::vector<Event>& out, cn::StopReason reason, const std::string& stop_sequence) {
  if (delta_sent_) return;
  delta_sent_ = true;
  close_block(out);
  std::string data = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":";
  json::append_string(data, stop_reason_name(reason));
  data += ",\"stop_sequence\":";
  if (stop_sequence.empty()) data += "null";
  else json::append_string(data, stop_sequence);
  data += "},\"usage\":";
  write_usage(data, usage_);
  data += '}';
  out.push_back(Event{"message_delta", std::move(data)});
}

void StreamEncoder::encode_events(const cn::StreamEvent& event, std::vector<Event>& out) {
  if (done_) return;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, cn::MessageStart>) {
          if (options_.model.empty()) options_.model = e.model;
          if (options_.id.empty()) options_.id = e.id;
          usage_ = e.usage;
          start(out);
        } else if constexpr (std::is_same_v<E, cn::ReasoningDelta> || std::is_same_v<E, cn::SignatureDelta>) {
          start(out);
          if (!open_ || open_->canonical != e.index || open_->kind != Kind::thinking) {
            close_block(out);
            open_ = Open{e.index, next_index_++, Kind::thinking};
            std::string data = "{\"type\":\"content_block_start\",\"index\":";
            json::append_int(data, open_->index);
            data += ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}";
            out.push_back(Event{"content_block_start", std::move(data)});
          }
          std::string data = "{\"type\":\"content_block_delta\",\"index\":";
          json::append_int(data, open_->index);
          if constexpr (std::is_same_v<E, cn::ReasoningDelta>) {
            data += ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":";
            json::append_string(data, e.text);
          } else {
            data += ",\"delta\":{\"type\":\"signature_delta\",\"signature\":";
            json::append_string(data, e.signature);
          }
          data += "}}";
          out.push_back(Event{"content_block_delta", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::RedactedReasoning>) {
          start(out);
          close_block(out);
          open_ = Open{e.index, next_index_++, Kind::redacted};
          std::string data = "{\"type\":\"content_block_start\",\"index\":";
          json::append_int(data, open_->index);
          data += ",\"content_block\":{\"type\":\"redacted_thinking\",\"data\":";
          json::append_string(data, e.data);
          data += "}}";
          out.push_back(Event{"content_block_start", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::TextDelta>) {
          start(out);
          if (e.text.empty()) return;
          open_text(e.index, out);
          std::string data = "{\"type\":\"content_block_delta\",\"index\":";
          json::append_int(data, open_->index);
          data += ",\"delta\":{\"type\":\"text_delta\",\"text\":";
          json::append_string(data, e.text);
          data += "}}";
          out.push_back(Event{"content_block_delta", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::CitationDelta>) {
          start(out);
          if (e.citation.empty()) return;
          open_text(e.index, out);
          std::string data = "{\"type\":\"content_block_delta\",\"index\":";
          json::append_int(data, open_->index);
          data += ",\"delta\":{\"type\":\"citations_delta\",\"citation\":";
          data += e.citation;  // JSON a decoder of this library wrote from a parsed object
          data += "}}";
          out.push_back(Event{"content_block_delta", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::ToolCallStart>) {
          start(out);
          close_block(out);
          open_ = Open{e.index, next_index_++, Kind::tool};
          tools_.emplace_back(e.index, open_->index);
          std::string data = "{\"type\":\"content_block_start\",\"index\":";
          json::append_int(data, open_->index);
          data += ",\"content_block\":{\"type\":\"tool_use\",\"id\":";
          json::append_string(data, cn::restyle_id(e.id, cn::id_prefix::anthropic_tool_use, ids_));
          data += ",\"name\":";
          json::append_string(data, e.name);
          data += ",\"input\":{}}}";
          out.push_back(Event{"content_block_start", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::ToolArgsDelta>) {
          start(out);
          if (e.partial_json.empty()) return;
          std::optional<std::uint32_t> index;
          if (open_ && open_->canonical == e.index && open_->kind == Kind::tool) index = open_->index;
          else  // a source that interleaves tool calls: best effort, the call's own index
            for (const auto& [c, i] : tools_)
              if (c == e.index) index = i;
          if (!index) return;
          std::string data = "{\"type\":\"content_block_delta\",\"index\":";
          json::append_int(data, *index);
          data += ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":";
          json::append_string(data, e.partial_json);
          data += "}}";
          out.push_back(Event{"content_block_delta", std::move(data)});
        } else if constexpr (std::is_same_v<E, cn::BlockStop>) {
          if (open_ && open_->canonical == e.index) close_block(out);
        } else if constexpr (std::is_same_v<E, cn::MessageDelta>) {
          start(out);
          if (e.usage) usage_ = *e.usage;
          message_delta(out, e.stop_reason, e.stop_sequence);
        } else if constexpr (std::is_same_v<E, cn::MessageStop>) {
          start(out);
          message_delta(out, cn::StopReason::end_turn, {});
          out.push_back(Event{"message_stop", "{\"type\":\"message_stop\"}"});
          done_ = true;
        } else if constexpr (std::is_same_v<E, cn::StreamError>) {
          out.push_back(Event{"error", error_data(e.error)});
        } else if constexpr (std::is_same_v<E, cn::Ping>) {
          out.push_back(Event{"ping", "{\"type\":\"ping\"}"});
        }
      },
      event);
}

void StreamEncoder::encode(const cn::StreamEvent& event, std::string& out) {
  scratch_.clear();
  encode_events(event, scratch_);
  for (const Event& e : scratch_) {
    out += "event: ";
    out += e.type;
    out += "\ndata: ";
    out += e.data;
    out += "\n\n";
  }
}

}  // namespace bulwark::api::anthropic
