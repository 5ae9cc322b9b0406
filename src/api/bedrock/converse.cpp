#include "api/bedrock/converse.hpp"

#include <cctype>
#include <cmath>

#include "api/detail/dom.hpp"
#include "api/detail/support.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::bedrock {
namespace {

namespace bj = boost::json;
namespace sd = simdjson::dom;
namespace cn = canonical;
using detail::bad_request;
using detail::path_index;
using detail::path_key;

std::string_view format_name(Dialect d) { return d == Dialect::nova ? "Amazon Nova" : "Bedrock Converse"; }

bool is_claude(std::string_view model_id) { return model_id.find("anthropic.") != std::string_view::npos; }
bool is_nova(std::string_view model_id) { return model_id.find("amazon.nova") != std::string_view::npos; }

constexpr std::string_view kCachePoint = "{\"cachePoint\":{\"type\":\"default\"}}";

// reasoningContent ({reasoningText:{text, signature}} or {redactedContent}) as a part.
Result<cn::ReasoningPart> decode_reasoning(const bj::value& rc, std::string_view p) {
  const std::string rp = path_key(p, "reasoningContent");
  if (!rc.is_object()) return std::unexpected(bad_request("'" + rp + "' must be an object.", rp));
  cn::ReasoningPart r;
  if (const bj::value* rt = detail::find(rc.get_object(), "reasoningText"); rt != nullptr && rt->is_object()) {
    BULWARK_API_TRY(detail::read_string(rt->get_object(), "text", r.text, path_key(rp, "reasoningText")));
    BULWARK_API_TRY(detail::read_string(rt->get_object(), "signature", r.signature, path_key(rp, "reasoningText")));
  } else {
    BULWARK_API_TRY(detail::read_string(rc.get_object(), "redactedContent", r.redacted, rp));
    if (r.redacted.empty()) return std::unexpected(bad_request("'" + rp + "' must hold reasoningText or redactedContent.", rp));
  }
  return r;
}

void append_reasoning(std::string& out, const cn::ReasoningPart& r) {
  if (!r.redacted.empty()) {
    out += "{\"reasoningContent\":{\"redactedContent\":";
    json::append_string(out, r.redacted);
    out += "}}";
    return;
  }
  out += "{\"reasoningContent\":{\"reasoningText\":{\"text\":";
  json::append_string(out, r.text);
  if (!r.signature.empty()) {
    out += ",\"signature\":";
    json::append_string(out, r.signature);
  }
  out += "}}}";
}

bool iequals_tail(std::string_view a, std::string_view b) {
  // "throttlingException" and "ThrottlingException" name the same exception.
  if (a.size() != b.size() || a.empty()) return false;
  return std::tolower(static_cast<unsigned char>(a[0])) == std::tolower(static_cast<unsigned char>(b[0])) && a.substr(1) == b.substr(1);
}

Result<cn::ImagePart> decode_image(const bj::object& block, std::string_view p) {
  cn::ImagePart image;
  std::string format;
  BULWARK_API_TRY(detail::read_string(block, "format", format, p));
  if (detail::bedrock_image_format(detail::media_type_of(format)).empty())
    return std::unexpected(bad_request("'" + std::string(p) + ".format' must be png, jpeg, gif or webp.", std::string(p)));
  image.media_type = detail::media_type_of(format);
  auto source = detail::read_object(block, "source", p);
  if (!source) return std::unexpected(std::move(source).error());
  if (*source == nullptr) return std::unexpected(bad_request("'" + std::string(p) + ".source' is required.", std::string(p)));
  BULWARK_API_TRY(detail::read_string(**source, "bytes", image.data, path_key(p, "source")));
  if (image.data.empty())
    return std::unexpected(bad_request("'" + std::string(p) + ".source.bytes' is required (S3 locations are not supported).", std::string(p)));
  return image;
}

// A document block: pdf or txt from inline bytes; other formats and sources cannot be translated.
Result<cn::DocumentPart> decode_document(const bj::object& block, std::string_view p) {
  cn::DocumentPart doc;
  std::string format;
  BULWARK_API_TRY(detail::read_string(block, "format", format, p));
  if (format == "pdf") doc.media_type = "application/pdf";
  else if (format == "txt") doc.media_type = "text/plain";
  else return std::unexpected(bad_request("'" + std::string(p) + ".format' " + format + " cannot be translated by this gateway (pdf and txt can).", std::string(p)));
  BULWARK_API_TRY(detail::read_string(block, "name", doc.title, p));
  auto source = detail::read_object(block, "source", p);
  if (!source) return std::unexpected(std::move(source).error());
  if (*source != nullptr) BULWARK_API_TRY(detail::read_string(**source, "bytes", doc.data, path_key(p, "source")));
  if (doc.data.empty())
    return std::unexpected(bad_request("'" + std::string(p) + ".source.bytes' is required (S3 locations, text and content sources are not supported).", std::string(p)));
  BULWARK_API_TRY(detail::read_string(block, "context", doc.context, p));
  if (const bj::value* c = detail::find(block, "citations"); c != nullptr && c->is_object()) {
    std::optional<bool> enabled;
    BULWARK_API_TRY(detail::read_bool(c->get_object(), "enabled", enabled, path_key(p, "citations")));
    // A Converse (or Nova InvokeModel) caller could reach an Anthropic target that cites,
    // but its answers and streams would come back without the citations: refused, not
    // silently dropped (docs/formats.md, "Not covered yet").
    if (enabled.value_or(false))
      return std::unexpected(bad_request("'" + path_key(p, "citations") + "': this gateway does not write citations back in Converse or Nova answers; " +
                                         "ask through Anthropic Messages or Claude on InvokeModel.", path_key(p, "citations")));
  }
  return doc;
}

// Converse's document name: letters, digits, single spaces, hyphens, parentheses and
// square brackets. Anything else becomes a hyphen; empty -> document-N.
std::string document_name(std::string_view title, std::size_t number) {
  std::string out;
  for (const char c : title) {
    if (out.size() >= 200) break;
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '(' || c == ')' || c == '[' || c == ']') out.push_back(c);
    else if (std::isspace(u) != 0) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.empty()) out = "document-" + std::to_string(number);
  return out;
}

// `last` is the part the previous block became (a cachePoint marks it); null at the start.
Status decode_block(const bj::value& value, std::string_view p, cn::Message& msg, cn::Message& results, cn::ContentPart** last) {
  if (!value.is_object()) return std::unexpected(bad_request("'" + std::string(p) + "' must be an object.", std::string(p)));
  const bj::object& block = value.get_object();
  const std::size_t msg_parts = msg.content.size(), result_parts = results.content.size();
  if (block.contains("cachePoint")) {
    if (*last != nullptr) cn::cache_of(**last) = cn::CacheMark{};
    return {};  // a cachePoint first in a turn has no block of its own to mark: nothing changes
  }
  if (const bj::value* t = detail::find(block, "text")) {
    if (!t->is_string()) return std::unexpected(bad_request("'" + std::string(p) + ".text' must be a string.", std::string(p)));
    msg.content.emplace_back(cn::TextPart{std::string(t->get_string())});
  } else if (const bj::value* img = detail::find(block, "image"); img != nullptr && img->is_object()) {
    auto image = decode_image(img->get_object(), path_key(p, "image"));
    if (!image) return std::unexpected(std::move(image).error());
    msg.content.emplace_back(std::move(*image));
  } else if (const bj::value* dv = detail::find(block, "document"); dv != nullptr && dv->is_object() && msg.role == cn::Role::user) {
    auto doc = decode_document(dv->get_object(), path_key(p, "document"));
    if (!doc) return std::unexpected(std::move(doc).error());
    msg.content.emplace_back(std::move(*doc));
  } else if (const bj::value* tu = detail::find(block, "toolUse"); tu != nullptr && tu->is_object()) {
    const std::string tp = path_key(p, "toolUse");
    cn::ToolCallPart call;
    BULWARK_API_TRY(detail::read_string(tu->get_object(), "toolUseId", call.id, tp));
    BULWARK_API_TRY(detail::read_string(tu->get_object(), "name", call.name, tp));
    const bj::value* input = detail::find(tu->get_object(), "input");
    call.arguments = detail::arguments_text(input);
    msg.content.emplace_back(std::move(call));
  } else if (const bj::value* tr = detail::find(block, "toolResult"); tr != nullptr && tr->is_object()) {
    const std::string tp = path_key(p, "toolResult");
    cn::ToolResultPart result;
    BULWARK_API_TRY(detail::read_string(tr->get_object(), "toolUseId", result.tool_call_id, tp));
    std::string status;
    BULWARK_API_TRY(detail::read_string(tr->get_object(), "status", status, tp));
    result.is_error = status == "error";
    auto content = detail::read_array(tr->get_object(), "content", tp);
    if (!content) return std::unexpected(std::move(content).error());
    if (*content != nullptr) {
      for (std::size_t i = 0; i < (*content)->size(); ++i) {
        const std::string cp = path_index(path_key(tp, "content"), i);
        const bj::value& c = (**content)[i];
        if (!c.is_object()) return std::unexpected(bad_request("'" + cp + "' must be an object.", cp));
        if (const bj::value* ct = detail::find(c.get_object(), "text"); ct != nullptr && ct->is_string()) {
          result.content.emplace_back(cn::TextPart{std::string(ct->get_string())});
        } else if (const bj::value* j = detail::find(c.get_object(), "json")) {
          result.content.emplace_back(cn::TextPart{detail::to_json(*j)});  // JSON results read as their text
        } else if (const bj::value* im = detail::find(c.get_object(), "image"); im != nullptr && im->is_object()) {
          auto image = decode_image(im->get_object(), path_key(cp, "image"));
          if (!image) return std::unexpected(std::move(image).error());
          result.content.emplace_back(std::move(*image));
        } else {
          return std::unexpected(bad_request("'" + cp + "' must hold text, json or image.", cp));
        }
      }
    }
    results.content.emplace_back(std::move(result));
  } else if (const bj::value* rc = detail::find(block, "reasoningContent"); rc != nullptr && msg.role == cn::Role::assistant) {
    auto r = decode_reasoning(*rc, p);
    if (!r) return std::unexpected(std::move(r).error());
    msg.content.emplace_back(std::move(*r));
  } else {
    const std::string_view kind = block.empty() ? std::string_view("an empty block") : std::string_view(block.begin()->key());
    return std::unexpected(bad_request("Content block '" + std::string(kind) + "' is not supported by this gateway.", std::string(p)));
  }
  if (results.content.size() != result_parts) *last = &results.content.back();
  else if (msg.content.size() != msg_parts) *last = &msg.content.back();
  return {};
}

cn::Usage decode_usage(const bj::object& u) {
  cn::Usage usage{detail::count(u, "inputTokens"), detail::count(u, "outputTokens"), detail::count(u, "cacheReadInputTokens"),
                  detail::count(u, "cacheWriteInputTokens")};
  // Nova's InvokeModel spelling.
  if (usage.cache_read == 0) usage.cache_read = detail::count(u, "cacheReadInputTokenCount");
  if (usage.cache_write == 0) usage.cache_write = detail::count(u, "cacheWriteInputTokenCount");
  return usage;
}

cn::Usage decode_usage(sd::object u) {
  cn::Usage usage{detail::count(u, "inputTokens"), detail::count(u, "outputTokens"), detail::count(u, "cacheReadInputTokens"),
                  detail::count(u, "cacheWriteInputTokens")};
  // Nova's InvokeModel spelling.
  if (usage.cache_read == 0) usage.cache_read = detail::count(u, "cacheReadInputTokenCount");
  if (usage.cache_write == 0) usage.cache_write = detail::count(u, "cacheWriteInputTokenCount");
  return usage;
}

void write_usage(std::string& out, const cn::Usage& usage, Dialect dialect) {
  out += "{\"inputTokens\":";
  json::append_int(out, usage.input);
  out += ",\"outputTokens\":";
  json::append_int(out, usage.output);
  out += ",\"totalTokens\":";
  json::append_int(out, usage.total());
  out += dialect == Dialect::nova ? ",\"cacheReadInputTokenCount\":" : ",\"cacheReadInputTokens\":";
  json::append_int(out, usage.cache_read);
  out += dialect == Dialect::nova ? ",\"cacheWriteInputTokenCount\":" : ",\"cacheWriteInputTokens\":";
  json::append_int(out, usage.cache_write);
  out += '}';
}

// Requests are written straight into the body (no JSON tree): this is the hot path of an
// OpenAI request going to a Bedrock upstream.

Status write_image_block(std::string& out, const cn::ImagePart& image, std::string_view p, Dialect dialect) {
  BULWARK_API_TRY(detail::require_inline_image(image, format_name(dialect), p));
  const std::string_view format = detail::bedrock_image_format(image.media_type);
  if (format.empty())
    return std::unexpected(bad_request("'" + std::string(p) + "' is a " + image.media_type + " image; " + std::string(format_name(dialect)) +
                                           " accepts png, jpeg, gif and webp.",
                                       std::string(p)));
  out += "{\"image\":{\"format\":";
  json::append_string(out, format);
  out += ",\"source\":{\"bytes\":";
  json::append_string(out, image.data);
  out += "}}}";
  return {};
}

// One canonical part as a Converse content block, preceded by a comma unless it is the
// first; nothing for an empty text (Bedrock rejects empty text blocks). `written` counts
// the blocks written so far.
Status write_block_only(std::string& out, std::size_t& written, const cn::ContentPart& part, std::string_view p, cn::IdSource& ids,
                        Dialect dialect, bool reasoning, std::size_t& documents) {
  const auto next = [&] {
    if (written++ != 0) out += ',';
  };
  if (const auto* doc = std::get_if<cn::DocumentPart>(&part)) {
    const std::string fmt(format_name(dialect));
    if (doc->citations)
      return std::unexpected(bad_request("'" + std::string(p) + "' asks for citations, which only Anthropic Messages and Claude on InvokeModel carry (not " + fmt + ").", std::string(p)));
    if (!doc->context.empty())
      return std::unexpected(bad_request("'" + std::string(p) + "' has a document context, which " + fmt + " cannot express.", std::string(p)));
    next();
    out += "{\"document\":{\"format\":";
    out += doc->media_type == "text/plain" ? "\"txt\"" : "\"pdf\"";
    out += ",\"name\":";
    json::append_string(out, document_name(doc->title, ++documents));
    out += ",\"source\":{\"bytes\":";
    json::append_string(out, doc->data);
    out += "}}}";
    return {};
  }
  if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
    // Only Claude takes its reasoning back; for other models it is their own past output
    // and leaving it out changes nothing they are asked.
    if (!reasoning) return {};
    next();
    append_reasoning(out, *r);
    return {};
  }
  if (const auto* t = std::get_if<cn::TextPart>(&part)) {
    if (t->text.empty()) return {};
    next();
    out += "{\"text\":";
    json::append_string(out, t->text);
    out += '}';
    return {};
  }
  if (const auto* img = std::get_if<cn::ImagePart>(&part)) {
    next();
    return write_image_block(out, *img, p, dialect);
  }
  if (const auto* call = std::get_if<cn::ToolCallPart>(&part)) {
    next();
    out += "{\"toolUse\":{\"toolUseId\":";
    json::append_string(out, cn::restyle_id(call->id, cn::id_prefix::bedrock_tool_use, ids));
    out += ",\"name\":";
    json::append_string(out, call->name);
    out += ",\"input\":";
    BULWARK_API_TRY(detail::append_arguments_object(out, call->arguments, path_key(p, "arguments")));
    out += "}}";
    return {};
  }
  if (const auto* result = std::get_if<cn::ToolResultPart>(&part)) {
    next();
    out += "{\"toolResult\":{\"toolUseId\":";
    json::append_string(out, cn::restyle_id(result->tool_call_id, cn::id_prefix::bedrock_tool_use, ids));
    out += ",\"content\":[";
    bool first = true;
    for (const cn::ToolResultContent& c : result->content) {
      if (const auto* t = std::get_if<cn::TextPart>(&c)) {
        if (t->text.empty()) continue;
        if (!first) out += ',';
        out += "{\"text\":";
        json::append_string(out, t->text);
        out += '}';
      } else {
        if (!first) out += ',';
        BULWARK_API_TRY(write_image_block(out, std::get<cn::ImagePart>(c), p, dialect));
      }
      first = false;
    }
    if (first) out += "{\"text\":\"\"}";  // Converse requires content
    out += ']';
    if (result->is_error) out += ",\"status\":\"error\"";
    out += "}}";
    return {};
  }
  return std::unexpected(bad_request("'" + std::string(p) + "' is audio, which " + std::string(format_name(dialect)) + " cannot express.", std::string(p)));
}

// The block, then a cachePoint after it when it is marked and the model takes them.
Status write_block(std::string& out, std::size_t& written, const cn::ContentPart& part, std::string_view p, cn::IdSource& ids,
                   Dialect dialect, bool claude, bool cache, std::size_t& documents) {
  const std::size_t before = written;
  BULWARK_API_TRY(write_block_only(out, written, part, p, ids, dialect, claude, documents));
  if (cache && written != before && cn::cache_of(part)) {
    out += ',';
    out += kCachePoint;
    ++written;
  }
  return {};
}

// A double as JSON (support.hpp's write(): non-finite numbers become null).
void append_number(std::string& out, double v) {
  if (std::isfinite(v)) json::append_double(out, v);
  else out += "null";
}

void write_exception(std::string& out, const Error& error) {
  out += "{\"message\":";
  json::append_string(out, error.message);
  out += '}';
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
    case cn::StopReason::refusal: return "content_filtered";
    case cn::StopReason::guardrail: return "guardrail_intervened";
  }
  return "end_turn";
}

cn::StopReason stop_reason_from(std::string_view name) noexcept {
  if (name == "end_turn") return cn::StopReason::end_turn;
  if (name == "max_tokens" || name == "model_context_window_exceeded") return cn::StopReason::max_tokens;
  if (name == "stop_sequence") return cn::StopReason::stop_sequence;
  if (name == "tool_use") return cn::StopReason::tool_use;
  if (name == "content_filtered") return cn::StopReason::content_filter;
  if (name == "guardrail_intervened") return cn::StopReason::guardrail;
  if (name.empty()) return cn::StopReason::none;
  return cn::StopReason::end_turn;
}

std::string error_body(const Error& error) {
  std::string out = "{\"__type\":";
  json::append_string(out, shape_of(error.kind).bedrock_type);
  out += ",\"message\":";
  json::append_string(out, error.message);
  out += '}';
  return out;
}

std::string_view error_type(const Error& error) noexcept { return shape_of(error.kind).bedrock_type; }

std::string_view stream_exception_type(const Error& error) noexcept {
  const std::string_view type = shape_of(error.kind).bedrock_type;
  if (type == "ThrottlingException") return "throttlingException";
  if (type == "ValidationException") return "validationException";
  if (type == "ServiceUnavailableException") return "serviceUnavailableException";
  if (type == "ModelStreamErrorException" || type == "ModelTimeoutException") return "modelStreamErrorException";
  return "internalServerException";
}

ErrorKind upstream_error_kind(std::string_view name) noexcept {
  if (iequals_tail(name, "ThrottlingException")) return ErrorKind::upstream_rate_limited;
  if (iequals_tail(name, "ServiceUnavailableException")) return ErrorKind::upstream_overloaded;
  if (iequals_tail(name, "ValidationException")) return ErrorKind::upstream_bad_request;
  if (iequals_tail(name, "ModelStreamErrorException")) return ErrorKind::stream_truncated;
  if (iequals_tail(name, "ModelTimeoutException")) return ErrorKind::total_timeout;
  if (iequals_tail(name, "AccessDeniedException") || iequals_tail(name, "UnrecognizedClientException")) return ErrorKind::upstream_auth;
  if (iequals_tail(name, "ResourceNotFoundException")) return ErrorKind::upstream_not_found;
  return ErrorKind::upstream_server_error;
}

namespace converse {

Result<cn::ChatRequest> decode_request(std::string_view body, Dialect dialect) {
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(std::move(parsed).error());
  const bj::object& o = **parsed;
  cn::ChatRequest req;

  auto messages = detail::read_array(o, "messages", "");
  if (!messages) return std::unexpected(std::move(messages).error());
  if (*messages == nullptr) return std::unexpected(bad_request("'messages' is required.", "messages"));
  for (std::size_t i = 0; i < (*messages)->size(); ++i) {
    const std::string p = path_index("messages", i);
    const bj::value& mv = (**messages)[i];
    if (!mv.is_object()) return std::unexpected(bad_request("Each message must be an object.", "messages"));
    std::string role;
    BULWARK_API_TRY(detail::read_string(mv.get_object(), "role", role, p));
    if (role != "user" && role != "assistant") return std::unexpected(bad_request("'" + p + ".role' must be user or assistant.", path_key(p, "role")));
    cn::Message msg{role == "user" ? cn::Role::user : cn::Role::assistant, {}, {}};
    cn::Message results{cn::Role::tool, {}, {}};
    auto content = detail::read_array(mv.get_object(), "content", p);
    if (!content) return std::unexpected(std::move(content).error());
    // Parts are marked through this pointer before the next block may grow the vectors.
    cn::ContentPart* last = nullptr;
    if (*content != nullptr)
      for (std::size_t j = 0; j < (*content)->size(); ++j)
        BULWARK_API_TRY(decode_block((**content)[j], path_index(path_key(p, "content"), j), msg, results, &last));
    if (!results.content.empty()) req.messages.push_back(std::move(results));
    if (!msg.content.empty() || (*content == nullptr || (*content)->empty())) req.messages.push_back(std::move(msg));
  }

  auto system = detail::read_array(o, "system", "");
  if (!system) return std::unexpected(std::move(system).error());
  if (*system != nullptr) {
    for (std::size_t i = 0; i < (*system)->size(); ++i) {
      const std::string p = path_index("system", i);
      const bj::value& s = (**system)[i];
      if (!s.is_object()) return std::unexpected(bad_request("'" + p + "' must be an object.", p));
      if (s.get_object().contains("cachePoint")) {
        if (!req.system.empty()) req.system_cache.emplace_back(req.system.size() - 1, cn::CacheMark{});
        continue;
      }
      const bj::value* text = detail::find(s.get_object(), "text");
      if (text == nullptr) continue;  // guardContent carries no prompt text
      if (!text->is_string()) return std::unexpected(bad_request("'" + p + ".text' must be a string.", p));
      req.system.emplace_back(text->get_string());
    }
  }

  auto config = detail::read_object(o, "inferenceConfig", "");
  if (!config) return std::unexpected(std::move(config).error());
  if (*config != nullptr) {
    const bj::object& c = **config;
    BULWARK_API_TRY(detail::read_int(c, "maxTokens", req.max_tokens, "inferenceConfig"));
    BULWARK_API_TRY(detail::read_int(c, "max_new_tokens", req.max_tokens, "inferenceConfig"));  // Nova's first spelling
    BULWARK_API_TRY(detail::read_double(c, "temperature", req.temperature, "inferenceConfig"));
    BULWARK_API_TRY(detail::read_double(c, "topP", req.top_p, "inferenceConfig"));
    BULWARK_API_TRY(detail::read_double(c, "top_p", req.top_p, "inferenceConfig"));
    BULWARK_API_TRY(detail::read_strings(c, "stopSequences", req.stop, "inferenceConfig"));
    if (dialect == Dialect::nova) {
      BULWARK_API_TRY(detail::read_int(c, "topK", req.top_k, "inferenceConfig"));
      BULWARK_API_TRY(detail::read_int(c, "top_k", req.top_k, "inferenceConfig"));
    }
  }
  auto extra = detail::read_object(o, "additionalModelRequestFields", "");
  if (!extra) return std::unexpected(std::move(extra).error());
  if (*extra != nullptr) {
    BULWARK_API_TRY(detail::read_int(**extra, "top_k", req.top_k, "additionalModelRequestFields"));
    if (const bj::value* ic = detail::find(**extra, "inferenceConfig"); ic != nullptr && ic->is_object())
      BULWARK_API_TRY(detail::read_int(ic->get_object(), "topK", req.top_k, "additionalModelRequestFields.inferenceConfig"));
    // Claude's extended thinking, in Anthropic's spelling.
    auto thinking = detail::read_object(**extra, "thinking", "additionalModelRequestFields");
    if (!thinking) return std::unexpected(std::move(thinking).error());
    if (*thinking != nullptr) {
      const std::string tp = "additionalModelRequestFields.thinking";
      std::string type;
      BULWARK_API_TRY(detail::read_string(**thinking, "type", type, tp));
      if (type == "enabled") {
        std::optional<std::int64_t> budget;
        BULWARK_API_TRY(detail::read_int(**thinking, "budget_tokens", budget, tp));
        if (!budget) return std::unexpected(bad_request("'" + tp + ".budget_tokens' is required.", tp));
        req.reasoning = {cn::Reasoning::Mode::enabled, *budget, {}};
      } else if (type == "disabled") {
        req.reasoning.mode = cn::Reasoning::Mode::disabled;
      } else {
        return std::unexpected(bad_request("'" + tp + ".type' must be enabled or disabled.", tp));
      }
    }
  }

  auto tool_config = detail::read_object(o, "toolConfig", "");
  if (!tool_config) return std::unexpected(std::move(tool_config).error());
  if (*tool_config != nullptr) {
    auto tools = detail::read_array(**tool_config, "tools", "toolConfig");
    if (!tools) return std::unexpected(std::move(tools).error());
    if (*tools != nullptr) {
      for (std::size_t i = 0; i < (*tools)->size(); ++i) {
        const std::string p = path_index("toolConfig.tools", i);
        const bj::value& tv = (**tools)[i];
        const bj::value* spec = tv.is_object() ? detail::find(tv.get_object(), "toolSpec") : nullptr;
        if (spec == nullptr || !spec->is_object()) {
          if (tv.is_object() && tv.get_object().contains("cachePoint")) {  // marks the tool before it
            if (!req.tools.empty()) req.tools.back().cache = cn::CacheMark{};
            continue;
          }
          return std::unexpected(bad_request("'" + p + "' must be a toolSpec.", p));
        }
        const std::string sp = path_key(p, "toolSpec");
        cn::Tool tool;
        BULWARK_API_TRY(detail::read_string(spec->get_object(), "name", tool.name, sp));
        BULWARK_API_TRY(detail::read_string(spec->get_object(), "description", tool.description, sp));
        if (tool.name.empty()) return std::unexpected(bad_request("'" + sp + ".name' is required.", sp));
        if (const bj::value* schema = detail::find(spec->get_object(), "inputSchema"); schema != nullptr && schema->is_object())
          if (const bj::value* j = detail::find(schema->get_object(), "json"); j != nullptr && j->is_object()) tool.parameters = detail::to_json(*j);
        req.tools.push_back(std::move(tool));
      }
    }
    auto choice = detail::read_object(**tool_config, "toolChoice", "toolConfig");
    if (!choice) return std::unexpected(std::move(choice).error());
    if (*choice != nullptr) {
      const bj::object& c = **choice;
      if (c.contains("auto")) req.tool_choice.mode = cn::ToolChoice::Mode::auto_;
      else if (c.contains("any")) req.tool_choice.mode = cn::ToolChoice::Mode::required;
      else if (const bj::value* t = detail::find(c, "tool"); t != nullptr && t->is_object()) {
        req.tool_choice.mode = cn::ToolChoice::Mode::tool;
        BULWARK_API_TRY(detail::read_string(t->get_object(), "name", req.tool_choice.name, "toolConfig.toolChoice.tool"));
      } else {
        return std::unexpected(bad_request("'toolConfig.toolChoice' must be auto, any or tool.", "toolConfig.toolChoice"));
      }
    }
  }
  return req;
}

bool takes_cache_points(std::string_view model_id, Dialect dialect) noexcept {
  return dialect == Dialect::nova || is_claude(model_id) || is_nova(model_id);
}

Result<std::string> encode_request(const cn::ChatRequest& req, std::string_view target_model_id, Dialect dialect) {
  const std::string_view format = format_name(dialect);
  BULWARK_API_TRY(detail::refuse_openai_only(req, format));
  const bool claude = dialect == Dialect::converse && is_claude(target_model_id);
  const bool cache = takes_cache_points(target_model_id, dialect);
  if (req.reasoning.mode == cn::Reasoning::Mode::enabled && !claude)
    return std::unexpected(bad_request("Extended thinking ('thinking' / 'reasoning_effort') cannot be expressed in " + std::string(format) +
                                           " for model " + std::string(target_model_id) + " (only Claude models take it).",
                                       "thinking"));
  if (claude && req.reasoning.mode == cn::Reasoning::Mode::enabled && cn::thinking_budget(req.reasoning) == 0)
    return std::unexpected(bad_request("'reasoning_effort' " + req.reasoning.effort + " has no thinking budget (use minimal, low, medium or high).", "reasoning_effort"));
  cn::IdSource ids(0);  // every id in a request exists: nothing is generated
  std::string out;
  std::size_t text_size = 0;
  for (const std::string& s : req.system) text_size += s.size();
  for (const cn::Message& m : req.messages)
    for (const cn::ContentPart& part : m.content)
      if (const auto* t = std::get_if<cn::TextPart>(&part)) text_size += t->text.size();
  out.reserve(256 + text_size + text_size / 8);
  out += dialect == Dialect::nova ? "{\"schemaVersion\":\"messages-v1\",\"messages\":[" : "{\"messages\":[";

  const std::vector<detail::Turn> turns = detail::merge_turns(req.messages);
  bool first_turn = true;
  std::size_t documents = 0;  // numbers the unnamed ones
  for (std::size_t t = 0; t < turns.size(); ++t) {
    const detail::Turn& turn = turns[t];
    const std::string p = path_key(path_index("messages", turn.message), "content");
    const std::size_t mark = out.size();  // an empty turn is taken back
    if (!first_turn) out += ',';
    out += turn.assistant ? "{\"role\":\"assistant\",\"content\":[" : "{\"role\":\"user\",\"content\":[";
    std::size_t blocks = 0;
    for (const cn::ContentPart* part : turn.parts) BULWARK_API_TRY(write_block(out, blocks, *part, p, ids, dialect, claude, cache, documents));
    if (blocks == 0) {
      out.resize(mark);
      if (turn.assistant && t + 1 == turns.size()) continue;  // an empty prefill asks for nothing
      return std::unexpected(bad_request("'" + p + "' is empty; " + std::string(format) + " requires non-empty content.", p));
    }
    out += "]}";
    first_turn = false;
  }
  out += ']';

  bool first = true;
  for (std::size_t i = 0; i < req.system.size(); ++i) {
    const std::string& s = req.system[i];
    if (s.empty()) continue;
    out += first ? ",\"system\":[" : ",";
    first = false;
    out += "{\"text\":";
    json::append_string(out, s);
    out += '}';
    if (cache && cn::system_cache_of(req, i) != nullptr) {
      out += ',';
      out += kCachePoint;
    }
  }
  if (!first) out += ']';

  // inferenceConfig: only the fields given; absent altogether when none is.
  first = true;
  const auto config_key = [&](std::string_view key) {
    out += first ? ",\"inferenceConfig\":{\"" : ",\"";
    first = false;
    out += key;
    out += "\":";
  };
  const std::int64_t budget = claude ? cn::thinking_budget(req.reasoning) : 0;
  if (req.max_tokens) {
    config_key("maxTokens");
    json::append_int(out, *req.max_tokens);
  } else if (budget != 0) {
    config_key("maxTokens");  // thinking needs room above its budget (as anthropic::encode_request)
    json::append_int(out, 4096 + budget);
  }
  if (req.temperature) {
    config_key("temperature");
    append_number(out, *req.temperature);
  }
  if (req.top_p) {
    config_key("topP");
    append_number(out, *req.top_p);
  }
  if (!req.stop.empty()) {
    config_key("stopSequences");
    out += '[';
    for (std::size_t i = 0; i < req.stop.size(); ++i) {
      if (i != 0) out += ',';
      json::append_string(out, req.stop[i]);
    }
    out += ']';
  }
  if (req.top_k && dialect == Dialect::nova) {
    config_key("topK");
    json::append_int(out, *req.top_k);
  }
  if (!first) out += '}';
  const bool thinking = claude && req.reasoning.mode != cn::Reasoning::Mode::unset;
  if (thinking && !(req.top_k && dialect == Dialect::converse)) out += ",\"additionalModelRequestFields\":{";
  if (req.top_k && dialect == Dialect::converse) {
    // Converse has no top_k: it goes to the model in its own spelling, where one is known.
    if (claude) {
      out += ",\"additionalModelRequestFields\":{\"top_k\":";
      json::append_int(out, *req.top_k);
      if (!thinking) out += '}';
      else out += ',';
    } else if (is_nova(target_model_id)) {
      out += ",\"additionalModelRequestFields\":{\"inferenceConfig\":{\"topK\":";
      json::append_int(out, *req.top_k);
      out += "}}";
    } else {
      return std::unexpected(bad_request("'top_k' cannot be expressed in Bedrock Converse for model " + std::string(target_model_id) + ".", "top_k"));
    }
  }
  if (thinking) {  // Claude's extended thinking, in Anthropic's spelling
    if (req.reasoning.mode == cn::Reasoning::Mode::enabled) {
      out += "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":";
      json::append_int(out, budget);
      out += "}}";
    } else {
      out += "\"thinking\":{\"type\":\"disabled\"}}";
    }
  }

  if (req.parallel_tool_calls == false)
    return std::unexpected(bad_request("'parallel_tool_calls' false cannot be expressed in " + std::string(format) + ".", "parallel_tool_calls"));
  if (!req.tools.empty()) {
    if (req.tool_choice.mode == cn::ToolChoice::Mode::none)
      return std::unexpected(bad_request("'tool_choice' none cannot be expressed in " + std::string(format) + " (it has auto, any and tool); omit the tools instead.", "tool_choice"));
    out += ",\"toolConfig\":{\"tools\":[";
    for (std::size_t i = 0; i < req.tools.size(); ++i) {
      const cn::Tool& tool = req.tools[i];
      if (i != 0) out += ',';
      out += "{\"toolSpec\":{\"name\":";
      json::append_string(out, tool.name);
      if (!tool.description.empty()) {
        out += ",\"description\":";
        json::append_string(out, tool.description);
      }
      out += ",\"inputSchema\":{\"json\":";
      BULWARK_API_TRY(detail::append_schema_object(out, tool.parameters, path_index("tools", i)));
      out += "}}}";
      if (cache && tool.cache) {
        out += ',';
        out += kCachePoint;
      }
    }
    out += ']';
    switch (req.tool_choice.mode) {
      case cn::ToolChoice::Mode::unset:
      case cn::ToolChoice::Mode::none: break;
      case cn::ToolChoice::Mode::auto_: out += ",\"toolChoice\":{\"auto\":{}}"; break;
      case cn::ToolChoice::Mode::required: out += ",\"toolChoice\":{\"any\":{}}"; break;
      case cn::ToolChoice::Mode::tool:
        out += ",\"toolChoice\":{\"tool\":{\"name\":";
        json::append_string(out, req.tool_choice.name);
        out += "}}";
        break;
    }
    out += '}';
  }
  out += '}';
  return out;
}

namespace {

// The complete decoder (Boost.JSON, every block type and its errors): the fast path below
// hands over to it whenever an answer holds anything but text, tool use and reasoning.
Result<cn::ChatResponse> decode_response_full(std::string_view body) {
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(detail::as_upstream(std::move(parsed).error()));
  const bj::object& o = **parsed;
  cn::ChatResponse resp;
  const bj::value* output = detail::find(o, "output");
  const bj::value* message = output != nullptr && output->is_object() ? detail::find(output->get_object(), "message") : nullptr;
  if (message == nullptr || !message->is_object()) return std::unexpected(detail::upstream_protocol("the upstream answer has no output.message"));
  if (const bj::value* content = detail::find(message->get_object(), "content"); content != nullptr && content->is_array()) {
    cn::Message msg{cn::Role::assistant, {}, {}};
    cn::Message results{cn::Role::tool, {}, {}};
    cn::ContentPart* last = nullptr;
    for (std::size_t i = 0; i < content->get_array().size(); ++i)
      if (auto s = decode_block(content->get_array()[i], path_index("output.message.content", i), msg, results, &last); !s)
        return std::unexpected(detail::as_upstream(s.error()));
    resp.content = std::move(msg.content);
  }
  if (const bj::value* sr = detail::find(o, "stopReason"); sr != nullptr && sr->is_string()) resp.stop_reason = stop_reason_from(sr->get_string());
  if (const bj::value* u = detail::find(o, "usage"); u != nullptr && u->is_object()) resp.usage = decode_usage(u->get_object());
  if (const bj::value* m = detail::find(o, "metrics"); m != nullptr && m->is_object() && m->get_object().contains("latencyMs"))
    resp.latency_ms = detail::count(m->get_object(), "latencyMs");
  return resp;
}

// An answer of text, tool-use and reasoning blocks read with simdjson; nullopt hands the
// answer to decode_response_full (anything else, or anything malformed), so that rare
// shapes keep one implementation and its error messages.
std::optional<cn::ChatResponse> decode_response_fast(std::string_view body) {
  auto parsed = detail::parse_object(detail::ParserSlot::answer, body);
  if (!parsed) return std::nullopt;
  const sd::object o = *parsed;
  sd::object message;
  if (o.at_key("output").at_key("message").get_object().get(message) != simdjson::SUCCESS) return std::nullopt;
  cn::ChatResponse resp;
  if (const auto content = detail::find(message, "content")) {
    sd::array blocks;
    if (content->get_array().get(blocks) != simdjson::SUCCESS) return std::nullopt;
    for (sd::element b : blocks) {
      sd::object block;
      if (b.get_object().get(block) != simdjson::SUCCESS) return std::nullopt;
      if (const auto text = detail::find(block, "text")) {
        std::string_view t;
        if (text->get_string().get(t) != simdjson::SUCCESS) return std::nullopt;
        resp.content.emplace_back(cn::TextPart{std::string(t)});
      } else if (sd::object tu; block.at_key("toolUse").get_object().get(tu) == simdjson::SUCCESS) {
        if (detail::find(block, "image")) return std::nullopt;  // the full decoder's order: image first
        cn::ToolCallPart call;
        if (!detail::read_string(tu, "toolUseId", call.id, "") || !detail::read_string(tu, "name", call.name, "")) return std::nullopt;
        const auto input = detail::find(tu, "input");
        call.arguments = input ? detail::to_json(*input) : std::string("{}");
        resp.content.emplace_back(std::move(call));
      } else if (detail::find(block, "image") || detail::find(block, "toolResult") || !detail::find(block, "reasoningContent")) {
        return std::nullopt;
      } else {
        sd::object rc;
        if (block.at_key("reasoningContent").get_object().get(rc) != simdjson::SUCCESS) return std::nullopt;
        cn::ReasoningPart r;
        if (sd::object rt; rc.at_key("reasoningText").get_object().get(rt) == simdjson::SUCCESS) {
          r.text = detail::string_of(rt, "text");
          r.signature = detail::string_of(rt, "signature");
        } else {
          r.redacted = detail::string_of(rc, "redactedContent");
          if (r.redacted.empty()) return std::nullopt;
        }
        resp.content.emplace_back(std::move(r));
      }
    }
  }
  if (std::string_view sr; o.at_key("stopReason").get_string().get(sr) == simdjson::SUCCESS) resp.stop_reason = stop_reason_from(sr);
  if (sd::object u; o.at_key("usage").get_object().get(u) == simdjson::SUCCESS) resp.usage = decode_usage(u);
  if (sd::object m; o.at_key("metrics").get_object().get(m) == simdjson::SUCCESS && detail::contains(m, "latencyMs"))
    resp.latency_ms = detail::count(m, "latencyMs");
  return resp;
}

}  // namespace

Result<cn::ChatResponse> decode_response(std::string_view body, Dialect) {
  if (auto fast = decode_response_fast(body)) return std::move(*fast);
  return decode_response_full(body);
}

std::string encode_response(const cn::ChatResponse& resp, std::uint64_t id_seed, Dialect dialect) {
  cn::IdSource ids(id_seed);
  std::string out = "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[";
  bool first = true;
  for (const cn::ContentPart& part : resp.content) {
    if (const auto* t = std::get_if<cn::TextPart>(&part)) {
      if (!first) out += ',';
      out += "{\"text\":";
      json::append_string(out, t->text);
      out += '}';
    } else if (const auto* call = std::get_if<cn::ToolCallPart>(&part)) {
      if (!first) out += ',';
      out += "{\"toolUse\":{\"toolUseId\":";
      json::append_string(out, cn::restyle_id(call->id, cn::id_prefix::bedrock_tool_use, ids));
      out += ",\"name\":";
      json::append_string(out, call->name);
      out += ",\"input\":";
      // Arguments that are not a JSON object (a broken upstream) become {}: clients expect an object.
      auto input = detail::arguments_object(call->arguments, "arguments");
      if (input) detail::write(out, *input);
      else out += "{}";
      out += "}}";
    } else if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
      if (!first) out += ',';
      append_reasoning(out, *r);
    } else {
      continue;
    }
    first = false;
  }
  out += "]}},\"stopReason\":";
  json::append_string(out, stop_reason_name(resp.stop_reason));
  out += ",\"usage\":";
  write_usage(out, resp.usage, dialect);
  if (dialect == Dialect::converse) {
    out += ",\"metrics\":{\"latencyMs\":";
    json::append_int(out, resp.latency_ms.value_or(0));
    out += '}';
  }
  out += '}';
  return out;
}

// ---- stream decoding ----

void StreamDecoder::complete(std::vector<cn::StreamEvent>& out, std::optional<cn::Usage> usage, std::optional<std::int64_t> latency) {
  if (done_) return;
  out.emplace_back(cn::MessageDelta{stop_ == cn::StopReason::none ? cn::StopReason::end_turn : stop_, {}, usage, latency});
  out.emplace_back(cn::MessageStop{});
  done_ = true;
}

Status StreamDecoder::feed(std::string_view event_type, std::string_view payload, std::vector<cn::StreamEvent>& out) {
  // Read with simdjson: one parse per relayed event, on a thread-local parser.
  const auto parsed = detail::parse_value(detail::ParserSlot::event, payload);
  sd::object o;
  if (!parsed || parsed->get_object().get(o) != simdjson::SUCCESS)
    return std::unexpected(detail::upstream_protocol("a ConverseStream event is not a JSON object"));
  const auto index = static_cast<std::uint32_t>(detail::count(o, "contentBlockIndex"));

  if (event_type.ends_with("Exception") || event_type.ends_with("exception")) {
    std::string message = "the upstream reported an error mid-stream";
    std::string_view m;
    if (o.at_key("message").get_string().get(m) == simdjson::SUCCESS) message = m;
    else if (o.at_key("Message").get_string().get(m) == simdjson::SUCCESS) message = m;
    Error e = Error::gateway(upstream_error_kind(event_type), std::move(message));
    e.origin = Origin::upstream;
    e.retryable = e.kind == ErrorKind::upstream_rate_limited || e.kind == ErrorKind::upstream_overloaded ||
                  e.kind == ErrorKind::upstream_server_error;
    out.emplace_back(cn::StreamError{std::move(e)});
    return {};
  }
  if (!started_ && event_type != "messageStart") {
    out.emplace_back(cn::MessageStart{});  // tolerate a stream that skips messageStart
    started_ = true;
  }
  if (event_type == "messageStart") {
    if (!started_) out.emplace_back(cn::MessageStart{});
    started_ = true;
  } else if (event_type == "contentBlockStart") {
    if (sd::object tu; o.at_key("start").at_key("toolUse").get_object().get(tu) == simdjson::SUCCESS)
      out.emplace_back(cn::ToolCallStart{index, std::string(detail::string_of(tu, "toolUseId")), std::string(detail::string_of(tu, "name"))});
  } else if (event_type == "contentBlockDelta") {
    sd::object delta;
    if (o.at_key("delta").get_object().get(delta) != simdjson::SUCCESS)
      return std::unexpected(detail::upstream_protocol("contentBlockDelta without a delta"));
    if (std::string_view t; delta.at_key("text").get_string().get(t) == simdjson::SUCCESS) {
      out.emplace_back(cn::TextDelta{index, std::string(t)});
    } else if (sd::object tu; delta.at_key("toolUse").get_object().get(tu) == simdjson::SUCCESS) {
      if (const std::string_view in = detail::string_of(tu, "input"); !in.empty()) out.emplace_back(cn::ToolArgsDelta{index, std::string(in)});
    } else if (sd::object rc; delta.at_key("reasoningContent").get_object().get(rc) == simdjson::SUCCESS) {
      if (std::string_view x; rc.at_key("text").get_string().get(x) == simdjson::SUCCESS) out.emplace_back(cn::ReasoningDelta{index, std::string(x)});
      if (std::string_view x; rc.at_key("signature").get_string().get(x) == simdjson::SUCCESS) out.emplace_back(cn::SignatureDelta{index, std::string(x)});
      if (std::string_view x; rc.at_key("redactedContent").get_string().get(x) == simdjson::SUCCESS)
        out.emplace_back(cn::RedactedReasoning{index, std::string(x)});
    }
    // citation deltas cannot come: a Converse upstream is never asked for citations
  } else if (event_type == "contentBlockStop") {
    out.emplace_back(cn::BlockStop{index});
  } else if (event_type == "messageStop") {
    if (std::string_view sr; o.at_key("stopReason").get_string().get(sr) == simdjson::SUCCESS) stop_ = stop_reason_from(sr);
    stopped_ = true;
  } else if (event_type == "metadata") {
    std::optional<cn::Usage> usage;
    std::optional<std::int64_t> latency;
    if (sd::object u; o.at_key("usage").get_object().get(u) == simdjson::SUCCESS) usage = decode_usage(u);
    if (sd::object m; o.at_key("metrics").get_object().get(m) == simdjson::SUCCESS && detail::contains(m, "latencyMs"))
      latency = detail::count(m, "latencyMs");
    complete(out, usage, latency);
  }
  return {};
}

Status StreamDecoder::feed_chunk(std::string_view chunk_json, std::vector<cn::StreamEvent>& out) {
  bj::error_code ec;
  bj::value v = detail::parse_value(chunk_json, ec);
  if (ec || !v.is_object()) return std::unexpected(detail::upstream_protocol("a stream chunk is not a JSON object"));
  const bj::object& o = v.get_object();
  // In stream order, so that a chunk carrying both messageStop and metadata completes.
  for (std::string_view type : {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}) {
    if (const bj::value* payload = detail::find(o, type)) BULWARK_API_TRY(feed(type, detail::to_json(*payload), out));
  }
  // The last chunk of every InvokeModel stream: Bedrock's own count, used when the model's
  // metadata event did not come.
  if (const bj::value* m = detail::find(o, "amazon-bedrock-invocationMetrics"); m != nullptr && m->is_object() && stopped_ && !done_) {
    const bj::object& metrics = m->get_object();
    cn::Usage usage{detail::count(metrics, "inputTokenCount"), detail::count(metrics, "outputTokenCount"),
                    detail::count(metrics, "cacheReadInputTokenCount"), detail::count(metrics, "cacheWriteInputTokenCount")};
    complete(out, usage, detail::count(metrics, "invocationLatency"));
  }
  return {};
}

void StreamDecoder::finish(std::vector<cn::StreamEvent>& out) {
  if (done_) return;
  if (stopped_) {
    complete(out, std::nullopt, std::nullopt);
    return;
  }
  out.emplace_back(cn::StreamError{Error::transport(ErrorKind::stream_truncated, "the upstream stream ended before the answer was complete", false)});
  done_ = true;
}

// ---- stream encoding ----

StreamEncoder::StreamEncoder(StreamOptions options) : options_(options), ids_(options.id_seed) {}

void StreamEncoder::start(std::vector<StreamPayload>& out) {
  if (started_) return;
  started_ = true;
  out.push_back(StreamPayload{"messageStart", "{\"role\":\"assistant\"}", false});
}

void StreamEncoder::close_block(std::vector<StreamPayload>& out) {
  if (!open_) return;
  std::string payload = "{\"contentBlockIndex\":";
  json::append_int(payload, open_->index);
  payload += '}';
  out.push_back(StreamPayload{"contentBlockStop", std::move(payload), false});
  open_.reset();
}

void StreamEncoder::stop(std::vector<StreamPayload>& out, cn::StopReason reason) {
  if (stopped_) return;
  stopped_ = true;
  close_block(out);
  std::string payload = "{\"stopReason\":";
  json::append_string(payload, stop_reason_name(reason));
  payload += '}';
  out.push_back(StreamPayload{"messageStop", std::move(payload), false});
  std::string metadata = "{\"usage\":";
  write_usage(metadata, usage_, options_.dialect);
  metadata += ",\"metrics\":{\"latencyMs\":";
  json::append_int(metadata, latency_ms_.value_or(0));
  metadata += "}}";
  out.push_back(StreamPayload{"metadata", std::move(metadata), false});
}

void StreamEncoder::encode(const cn::StreamEvent& event, std::vector<StreamPayload>& out) {
  if (done_) return;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, cn::MessageStart>) {
          usage_ = e.usage;
          start(out);
        } else if constexpr (std::is_same_v<E, cn::ReasoningDelta> || std::is_same_v<E, cn::SignatureDelta> ||
                             std::is_same_v<E, cn::RedactedReasoning>) {
          start(out);
          if (!open_ || open_->canonical != e.index || !open_->text) {
            close_block(out);
            open_ = Open{e.index, next_index_++, true};  // like text: no contentBlockStart
          }
          std::string payload = "{\"contentBlockIndex\":";
          json::append_int(payload, open_->index);
          if constexpr (std::is_same_v<E, cn::ReasoningDelta>) {
            payload += ",\"delta\":{\"reasoningContent\":{\"text\":";
            json::append_string(payload, e.text);
          } else if constexpr (std::is_same_v<E, cn::SignatureDelta>) {
            payload += ",\"delta\":{\"reasoningContent\":{\"signature\":";
            json::append_string(payload, e.signature);
          } else {
            payload += ",\"delta\":{\"reasoningContent\":{\"redactedContent\":";
            json::append_string(payload, e.data);
          }
          payload += "}}}";
          out.push_back(StreamPayload{"contentBlockDelta", std::move(payload), false});
        } else if constexpr (std::is_same_v<E, cn::TextDelta>) {
          start(out);
          if (e.text.empty()) return;
          if (!open_ || open_->canonical != e.index || !open_->text) {
            close_block(out);
            open_ = Open{e.index, next_index_++, true};  // text blocks have no contentBlockStart
          }
          std::string payload = "{\"contentBlockIndex\":";
          json::append_int(payload, open_->index);
          payload += ",\"delta\":{\"text\":";
          json::append_string(payload, e.text);
          payload += "}}";
          out.push_back(StreamPayload{"contentBlockDelta", std::move(payload), false});
        } else if constexpr (std::is_same_v<E, cn::ToolCallStart>) {
          start(out);
          close_block(out);
          open_ = Open{e.index, next_index_++, false};
          tools_.emplace_back(e.index, open_->index);
          std::string payload = "{\"contentBlockIndex\":";
          json::append_int(payload, open_->index);
          payload += ",\"start\":{\"toolUse\":{\"toolUseId\":";
          json::append_string(payload, cn::restyle_id(e.id, cn::id_prefix::bedrock_tool_use, ids_));
          payload += ",\"name\":";
          json::append_string(payload, e.name);
          payload += "}}}";
          out.push_back(StreamPayload{"contentBlockStart", std::move(payload), false});
        } else if constexpr (std::is_same_v<E, cn::ToolArgsDelta>) {
          start(out);
          if (e.partial_json.empty()) return;
          std::optional<std::uint32_t> index;
          if (open_ && open_->canonical == e.index && !open_->text) index = open_->index;
          else
            for (const auto& [c, i] : tools_)
              if (c == e.index) index = i;
          if (!index) return;
          std::string payload = "{\"contentBlockIndex\":";
          json::append_int(payload, *index);
          payload += ",\"delta\":{\"toolUse\":{\"input\":";
          json::append_string(payload, e.partial_json);
          payload += "}}}";
          out.push_back(StreamPayload{"contentBlockDelta", std::move(payload), false});
        } else if constexpr (std::is_same_v<E, cn::BlockStop>) {
          if (open_ && open_->canonical == e.index) close_block(out);
        } else if constexpr (std::is_same_v<E, cn::MessageDelta>) {
          start(out);
          if (e.usage) usage_ = *e.usage;
          if (e.latency_ms) latency_ms_ = e.latency_ms;
          stop(out, e.stop_reason);
        } else if constexpr (std::is_same_v<E, cn::MessageStop>) {
          start(out);
          stop(out, cn::StopReason::end_turn);
          done_ = true;
        } else if constexpr (std::is_same_v<E, cn::StreamError>) {
          std::string payload;
          write_exception(payload, e.error);
          out.push_back(StreamPayload{std::string(stream_exception_type(e.error)), std::move(payload), true});
        }
        // Ping: ConverseStream has no keep-alive event. CitationDelta: cannot reach a
        // Converse caller, whose request with citations decode_request refuses (the
        // mapping to Converse's citation blocks is not written), nor come from a Converse
        // upstream, which is never asked for them (write_block_only refuses).
      },
      event);
}

void StreamEncoder::encode_chunks(const cn::StreamEvent& event, std::vector<std::string>& out) {
  scratch_.clear();
  encode(event, scratch_);
  for (const StreamPayload& p : scratch_) {
    std::string chunk = "{";
    json::append_string(chunk, p.event_type);
    chunk += ':';
    chunk += p.payload;
    chunk += '}';
    out.push_back(std::move(chunk));
  }
}

}  // namespace converse
}  // namespace bulwark::api::bedrock
