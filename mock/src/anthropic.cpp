#include "mock/anthropic.hpp"

#include <simdjson.h>

#include "core/json_write.hpp"
#include "mock/answer.hpp"
#include "wire_util.hpp"

namespace bulwark::mock {
namespace anthropic {
namespace {

namespace dom = simdjson::dom;
using detail::bad_json;
using detail::bad_request;

std::string_view stock_message(std::string_view type, ErrorType t) noexcept {
  if (t == ErrorType::content_filter) return "Output blocked by content filtering policy";
  if (type == "rate_limit_error")
    return "This request would exceed the rate limit for your organization. Please try again "
           "later.";
  if (type == "overloaded_error") return "Overloaded";
  if (type == "api_error") return "Internal server error";
  if (type == "authentication_error") return "invalid x-api-key";
  if (type == "permission_error")
    return "Your API key does not have permission to use the specified resource.";
  if (type == "not_found_error") return "The requested resource could not be found.";
  if (type == "request_too_large") return "Request exceeds the maximum allowed number of bytes.";
  return "Invalid request.";
}

// How many words of a cited plain-text document the citation quotes.
constexpr std::size_t kCitedWords = 5;

bool is_space(char c) noexcept { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The document's text up to the end of its kCitedWords-th word (all of it when shorter).
std::string_view cited_prefix(std::string_view text) noexcept {
  std::size_t words = 0;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!is_space(text[i])) in_word = true;
    else if (in_word) {
      in_word = false;
      if (++words == kCitedWords) return text.substr(0, i);
    }
  }
  return text;
}

// Anthropic counts characters, not bytes: UTF-8 lead bytes.
std::size_t code_points(std::string_view s) noexcept {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Anthropic numbers the documents of a whole request in order (document_index). The
// first one with citations enabled is cited: a plain-text source by its first words
// (char_location), a PDF by its first page (page_location with an empty cited_text: the
// mock reads no PDFs). Other sources are not cited.
void cite_first_document(dom::element content, std::uint32_t& documents, std::string& citation) {
  dom::array blocks;
  if (content.get_array().get(blocks) != simdjson::SUCCESS) return;
  for (dom::element b : blocks) {
    std::string_view type;
    if (b["type"].get_string().get(type) != simdjson::SUCCESS || type != "document") continue;
    const std::uint32_t index = documents++;
    bool enabled = false;
    if (!citation.empty() || b.at_pointer("/citations/enabled").get_bool().get(enabled) != simdjson::SUCCESS || !enabled)
      continue;
    std::string_view source, data, title;
    if (b.at_pointer("/source/type").get_string().get(source) != simdjson::SUCCESS ||
        b.at_pointer("/source/data").get_string().get(data) != simdjson::SUCCESS)
      continue;
    const bool titled = b["title"].get_string().get(title) == simdjson::SUCCESS;
    const auto head = [&](std::string_view kind, std::string_view quoted) {
      citation = "{\"type\":";
      json::append_string(citation, kind);
      citation += ",\"cited_text\":";
      json::append_string(citation, quoted);
      citation += ",\"document_index\":";
      json::append_int(citation, index);
      citation += ",\"document_title\":";
      if (titled) json::append_string(citation, title);
      else citation += "null";
    };
    if (source == "text") {
      const std::string_view quoted = cited_prefix(data);
      head("char_location", quoted);
      citation += ",\"start_char_index\":0,\"end_char_index\":";
      json::append_int(citation, code_points(quoted));
      citation += '}';
    } else if (source == "base64") {
      head("page_location", "");
      citation += ",\"start_page_number\":1,\"end_page_number\":2}";
    }
  }
}

}  // namespace

std::string_view error_type_name(ErrorType type, int status) noexcept {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: break;
  }
  switch (type) {
    case ErrorType::rate_limit: return "rate_limit_error";
    case ErrorType::overloaded:
    case ErrorType::model_not_ready: return "overloaded_error";
    case ErrorType::server_error:
    case ErrorType::bad_gateway:
    case ErrorType::unavailable:
    case ErrorType::model_timeout:
    case ErrorType::model_error: return "api_error";
    case ErrorType::context_length:
    case ErrorType::content_filter:
    case ErrorType::invalid_request: return "invalid_request_error";
    case ErrorType::auth: return "authentication_error";
    case ErrorType::permission: return "permission_error";
    case ErrorType::not_found: return "not_found_error";
  }
  return status >= 500 ? "api_error" : "invalid_request_error";
}

std::string_view stop_reason(const Plan& p) noexcept {
  return p.max_tokens_reached ? "max_tokens" : "end_turn";
}

std::string context_message(const Plan& p) {
  return "prompt is too long: " + std::to_string(p.prompt_tokens) + " tokens > " +
         std::to_string(p.context_window) + " maximum";
}

Result<ChatRequest> decode(std::string_view body, Dialect dialect) {
  auto& d = detail::dom_decoder();
  dom::element doc;
  if (d.parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS)
    return dialect == Dialect::api
               ? bad_json("There was an error parsing the body of your request: invalid JSON")
               : bad_json("Malformed input request, please reformat your input and try again.");
  dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS)
    return bad_request(dialect == Dialect::api ? "The request body must be a JSON object."
                                               : "Malformed input request: #: expected type: JSONObject, please reformat your input and try again.");
  auto missing = [&](std::string_view key) {
    return dialect == Dialect::api
               ? bad_request(std::string(key) + ": Field required", std::string(key))
               : bad_request("Malformed input request: #: required key [" + std::string(key) +
                                 "] not found, please reformat your input and try again.",
                             std::string(key));
  };
  auto wrong = [&](std::string_view key, std::string_view what) {
    return dialect == Dialect::api
               ? bad_request(std::string(key) + ": Input should be " + std::string(what), std::string(key))
               : bad_request("Malformed input request: #/" + std::string(key) + ": expected " +
                                 std::string(what) + ", please reformat your input and try again.",
                             std::string(key));
  };

  ChatRequest req;
  req.format = dialect == Dialect::api ? "anthropic" : "bedrock";
  dom::element v;
  if (dialect == Dialect::api) {
    if (obj.at_key("model").get(v) != simdjson::SUCCESS) return missing("model");
    if (v.get_string().get(req.model) != simdjson::SUCCESS) return wrong("model", "a valid string");
    if (obj.at_key("stream").get(v) == simdjson::SUCCESS && !v.is_null() &&
        v.get_bool().get(req.stream) != simdjson::SUCCESS)
      return wrong("stream", "a valid boolean");
  } else {
    // Bedrock validates against a JSON schema that forbids the API-only keys.
    for (std::string_view extra : {"model", "stream"})
      if (obj.at_key(extra).error() == simdjson::SUCCESS)
        return bad_request("Malformed input request: #: extraneous key [" + std::string(extra) +
                           "] is not permitted, please reformat your input and try again.");
    std::string_view version;
    if (obj.at_key("anthropic_version").get(v) != simdjson::SUCCESS) return missing("anthropic_version");
    if (v.get_string().get(version) != simdjson::SUCCESS) return wrong("anthropic_version", "type: String");
    if (version != "bedrock-2023-05-31")
      return bad_request("Invalid API version \"" + std::string(version) +
                         "\"; only bedrock-2023-05-31 is supported.");
  }

  if (obj.at_key("max_tokens").get(v) != simdjson::SUCCESS) return missing("max_tokens");
  std::int64_t max_tokens = 0;
  if (v.get_int64().get(max_tokens) != simdjson::SUCCESS) return wrong("max_tokens", "a valid integer");
  if (max_tokens < 1) return bad_request("max_tokens: Input should be greater than or equal to 1", "max_tokens");
  req.max_tokens = static_cast<std::uint32_t>(std::min<std::int64_t>(max_tokens, UINT32_MAX));

  if (obj.at_key("system").get(v) == simdjson::SUCCESS && !v.is_null()) {
    if (!detail::read_text_content(v, req.prompt_tokens, d.joined))
      return wrong("system", "a valid string or a list of text blocks");
  }

  dom::array msgs;
  if (obj.at_key("messages").get(v) != simdjson::SUCCESS) return missing("messages");
  if (v.get_array().get(msgs) != simdjson::SUCCESS) return wrong("messages", "a valid list");
  std::size_t i = 0;
  std::uint32_t documents = 0;
  for (dom::element m : msgs) {
    const std::string at = "messages." + std::to_string(i++);
    dom::object mo;
    if (m.get_object().get(mo) != simdjson::SUCCESS) return wrong(at, "a valid dictionary");
    std::string_view role;
    if (mo.at_key("role").get(v) != simdjson::SUCCESS) return missing(at + ".role");
    if (v.get_string().get(role) != simdjson::SUCCESS || (role != "user" && role != "assistant"))
      return wrong(at + ".role", "'user' or 'assistant'");
    if (mo.at_key("content").get(v) != simdjson::SUCCESS) return missing(at + ".content");
    if (!detail::read_text_content(v, req.prompt_tokens, d.joined))
      return wrong(at + ".content", "a valid string or a list of content blocks");
    cite_first_document(v, documents, req.citation);
    req.last_is_assistant = role == "assistant";
  }
  if (dom::object th; obj.at_key("thinking").get_object().get(th) == simdjson::SUCCESS) {
    std::string_view type;
    req.thinking = th.at_key("type").get_string().get(type) == simdjson::SUCCESS && type == "enabled";
  }
  if (i == 0) return bad_request("messages: at least one message is required", "messages");
  if (req.last_is_assistant) {
    // d.joined holds the last message's text: the prefill.
    std::string_view pre = d.joined;
    if (!pre.empty() && (pre.back() == ' ' || pre.back() == '\n' || pre.back() == '\t' ||
                         pre.back() == '\r'))
      return bad_request("messages: final assistant content cannot end with trailing whitespace",
                         "messages");
    req.last_content = pre;
  }
  return req;
}

void append_error_json(std::string& out, std::string_view type, std::string_view message) {
  out += "{\"type\":\"error\",\"error\":{\"type\":";
  json::append_string(out, type);
  out += ",\"message\":";
  json::append_string(out, message);
  out += "}}";
}

namespace {

void append_usage(std::string& out, std::uint64_t input, std::uint64_t output) {
  out += "\"usage\":{\"input_tokens\":";
  json::append_int(out, input);
  out += ",\"output_tokens\":";
  json::append_int(out, output);
  out += '}';
}

void append_message_head(std::string& out, const AnswerMeta& m, std::string_view id_prefix) {
  out += "{\"id\":\"";
  out += id_prefix;
  detail::append_hex16(out, m.id);
  out += "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
  json::append_string(out, m.model);
}

}  // namespace

std::size_t append_message(std::string& out, const Plan& p, const AnswerMeta& m,
                           std::string_view id_prefix) {
  append_message_head(out, m, id_prefix);
  out += ",\"content\":[";
  if (m.thinking) {
    out += "{\"type\":\"thinking\",\"thinking\":";
    json::append_string(out, kThinkingText);
    out += ",\"signature\":";
    json::append_string(out, kThinkingSignature);
    out += "},";
  }
  out += "{\"type\":\"text\",\"text\":\"";
  const std::size_t cut_at = detail::append_answer_text(out, p, p.after_tokens);
  out += '"';
  if (!m.citation.empty()) {
    out += ",\"citations\":[";
    out += m.citation;
    out += ']';
  }
  out += "}],\"stop_reason\":\"";
  out += stop_reason(p);
  out += "\",\"stop_sequence\":null,";
  append_usage(out, p.prompt_tokens, p.completion_tokens);
  out += '}';
  return cut_at;
}

void append_message_start(std::string& out, const Plan& p, const AnswerMeta& m,
                          std::string_view id_prefix) {
  out += "{\"type\":\"message_start\",\"message\":";
  append_message_head(out, m, id_prefix);
  out += ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,";
  append_usage(out, p.prompt_tokens, 1);
  out += "}}";
}

void append_block_start(std::string& out, std::uint32_t index) {
  out += R"({"type":"content_block_start","index":)";
  json::append_int(out, index);
  out += R"(,"content_block":{"type":"text","text":""}})";
}

void append_text_delta(std::string& out, std::string_view text, std::uint32_t index) {
  out += R"({"type":"content_block_delta","index":)";
  json::append_int(out, index);
  out += R"(,"delta":{"type":"text_delta","text":)";
  json::append_string(out, text);
  out += "}}";
}

void append_block_stop(std::string& out, std::uint32_t index) {
  out += R"({"type":"content_block_stop","index":)";
  json::append_int(out, index);
  out += '}';
}

std::vector<std::string> thinking_events() {
  std::vector<std::string> out(4);
  out[0] = R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})";
  out[1] = R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":)";
  json::append_string(out[1], kThinkingText);
  out[1] += "}}";
  out[2] = R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":)";
  json::append_string(out[2], kThinkingSignature);
  out[2] += "}}";
  append_block_stop(out[3], 0);
  return out;
}

void append_citations_delta(std::string& out, const AnswerMeta& m) {
  out += R"({"type":"content_block_delta","index":)";
  json::append_int(out, m.thinking ? 1 : 0);
  out += R"(,"delta":{"type":"citations_delta","citation":)";
  out += m.citation;
  out += "}}";
}

void append_message_delta(std::string& out, const Plan& p) {
  out += R"({"type":"message_delta","delta":{"stop_reason":")";
  out += stop_reason(p);
  out += "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":";
  json::append_int(out, p.completion_tokens);
  out += "}}";
}

}  // namespace anthropic

namespace {

void sse(std::string& out, std::string_view event) {
  out += "event: ";
  out += event;
  out += "\ndata: ";
}

}  // namespace

Result<ChatRequest> AnthropicFormat::decode_chat(std::string_view body) const {
  return anthropic::decode(body, anthropic::Dialect::api);
}

std::size_t AnthropicFormat::append_completion(std::string& out, const Plan& p,
                                               const AnswerMeta& m) const {
  return anthropic::append_message(out, p, m, "msg_");
}

void AnthropicFormat::append_stream_open(std::string& out, const Plan& p, const AnswerMeta& m) const {
  sse(out, "message_start");
  anthropic::append_message_start(out, p, m, "msg_");
  out += "\n\n";
  if (m.thinking) {
    static constexpr std::string_view kTypes[] = {"content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"};
    const std::vector<std::string> events = anthropic::thinking_events();
    for (std::size_t i = 0; i < events.size(); ++i) {
      sse(out, kTypes[i]);
      out += events[i];
      out += "\n\n";
    }
  }
  sse(out, "content_block_start");
  anthropic::append_block_start(out, m.thinking ? 1 : 0);
  out += "\n\n";
  if (!m.citation.empty()) {  // the block's citation comes before its text
    sse(out, "content_block_delta");
    anthropic::append_citations_delta(out, m);
    out += "\n\n";
  }
  out += "event: ping\ndata: {\"type\": \"ping\"}\n\n";
}

void AnthropicFormat::append_stream_token(std::string& out, const AnswerMeta& m, std::string_view text,
                                          bool, std::uint32_t) const {
  if (text.empty()) return;  // the block start already opened the answer
  sse(out, "content_block_delta");
  anthropic::append_text_delta(out, text, m.thinking ? 1 : 0);
  out += "\n\n";
}

void AnthropicFormat::append_stream_close(std::string& out, const Plan& p, const AnswerMeta& m,
                                          bool omit_done) const {
  sse(out, "content_block_stop");
  anthropic::append_block_stop(out, m.thinking ? 1 : 0);
  out += "\n\n";
  sse(out, "message_delta");
  anthropic::append_message_delta(out, p);
  out += "\n\n";
  if (!omit_done) out += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
}

void AnthropicFormat::append_stream_malformed(std::string& out, const AnswerMeta&) const {
  sse(out, "content_block_delta");
  out += R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)";
  out += "\n\n";
}

void AnthropicFormat::append_stream_error(std::string& out, const Plan& p, const AnswerMeta&) const {
  sse(out, "error");
  append_plan_error(out, p);
  out += "\n\n";
}

int AnthropicFormat::error_status(const Plan& p) const {
  // Anthropic's overload is its own status; an explicit non-default status is kept.
  if (p.error == ErrorType::overloaded && p.status == default_status(ErrorType::overloaded)) return 529;
  return p.status;
}

void AnthropicFormat::append_plan_error(std::string& out, const Plan& p) const {
  const std::string_view type =
      p.provider_type.empty() ? anthropic::error_type_name(p.error, error_status(p)) : p.provider_type;
  if (p.error == ErrorType::context_length) {
    anthropic::append_error_json(out, type, anthropic::context_message(p));
    return;
  }
  anthropic::append_error_json(out, type, p.message.empty() ? anthropic::stock_message(type, p.error) : p.message);
}

void AnthropicFormat::append_error(std::string& out, ErrorType type, std::string_view message) const {
  const auto name = anthropic::error_type_name(type, default_status(type));
  anthropic::append_error_json(out, name, message.empty() ? anthropic::stock_message(name, type) : message);
}

void AnthropicFormat::append_models(std::string& out, std::span<const std::string> names,
                                    std::int64_t) const {
  out += "{\"data\":[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += "{\"type\":\"model\",\"id\":";
    json::append_string(out, names[i]);
    out += ",\"display_name\":";
    json::append_string(out, names[i]);
    out += ",\"created_at\":\"2024-01-01T00:00:00Z\"}";
  }
  out += "],\"has_more\":false,\"first_id\":";
  if (names.empty()) out += "null";
  else json::append_string(out, names.front());
  out += ",\"last_id\":";
  if (names.empty()) out += "null";
  else json::append_string(out, names.back());
  out += '}';
}

void AnthropicFormat::append_headers(std::string& out, const ResponseInfo& info) const {
  if (!info.error) return;
  // The SDKs follow this header over their own status heuristics.
  const bool retry = info.status == 408 || info.status == 409 || info.status == 429 ||
                     info.status >= 500;
  out += retry ? "\r\nx-should-retry: true" : "\r\nx-should-retry: false";
}

}  // namespace bulwark::mock
