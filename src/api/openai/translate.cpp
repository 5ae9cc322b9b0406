#include "api/openai/translate.hpp"

#include <algorithm>

#include "api/detail/dom.hpp"
#include "api/detail/support.hpp"
#include "api/openai/chat.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::openai {
namespace {

namespace bj = boost::json;
namespace sd = simdjson::dom;
namespace cn = canonical;
using detail::bad_request;
using detail::path_index;
using detail::path_key;

// Requests are read with simdjson (api/detail/dom.hpp): this is the hot path of every
// OpenAI request going to an Anthropic or Bedrock upstream.

// cache_control on a part, a tool call, a tool message or a tool: not OpenAI's own field
// but the gateway's (and LiteLLM's) spelling of Anthropic's, so that a cache breakpoint
// survives the OpenAI form inside the gateway (docs/formats.md).
Status read_cache(sd::object o, std::string_view p, std::optional<cn::CacheMark>& out) {
  const auto cc = detail::find(o, "cache_control");
  if (!cc) return {};
  const std::string cp = path_key(p, "cache_control");
  sd::object cco;
  if (cc->get_object().get(cco) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + cp + "' must be an object.", cp));
  std::string type;
  cn::CacheMark mark;
  BULWARK_API_TRY(detail::read_string(cco, "type", type, cp));
  if (type != "ephemeral") return std::unexpected(bad_request("'" + cp + ".type' must be ephemeral.", cp));
  BULWARK_API_TRY(detail::read_string(cco, "ttl", mark.ttl, cp));
  out = std::move(mark);
  return {};
}

// An assistant message's thinking_blocks (LiteLLM's field for Anthropic's signed thinking).
Status read_thinking_blocks(sd::object m, std::string_view p, std::vector<cn::ContentPart>& out) {
  auto blocks = detail::read_array(m, "thinking_blocks", p);
  if (!blocks) return std::unexpected(std::move(blocks).error());
  if (!*blocks) return {};
  std::size_t i = 0;
  for (sd::element b : **blocks) {
    const std::string bp = path_index(path_key(p, "thinking_blocks"), i++);
    sd::object bo;
    if (b.get_object().get(bo) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + bp + "' must be an object.", bp));
    std::string type;
    cn::ReasoningPart r;
    BULWARK_API_TRY(detail::read_string(bo, "type", type, bp));
    if (type == "thinking") {
      BULWARK_API_TRY(detail::read_string(bo, "thinking", r.text, bp));
      BULWARK_API_TRY(detail::read_string(bo, "signature", r.signature, bp));
    } else if (type == "redacted_thinking") {
      BULWARK_API_TRY(detail::read_string(bo, "data", r.redacted, bp));
    } else {
      return std::unexpected(bad_request("'" + bp + ".type' must be thinking or redacted_thinking.", bp));
    }
    out.emplace_back(std::move(r));
  }
  return {};
}

// Text parts of a system, developer or tool message's content: a string or text parts.
Result<std::vector<cn::TextPart>> texts_of(sd::element content, std::string_view path) {
  std::vector<cn::TextPart> out;
  std::string_view s;
  if (content.get_string().get(s) == simdjson::SUCCESS) {
    out.push_back(cn::TextPart{std::string(s)});
    return out;
  }
  sd::array parts;
  if (content.get_array().get(parts) != simdjson::SUCCESS)
    return std::unexpected(bad_request("'" + std::string(path) + "' must be a string or an array of text parts.", std::string(path)));
  std::size_t i = 0;
  for (sd::element value : parts) {
    const std::string p = path_index(path, i++);
    sd::object part;
    if (value.get_object().get(part) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + p + "' must be an object.", p));
    std::string type, text;
    BULWARK_API_TRY(detail::read_string(part, "type", type, p));
    if (type != "text" && type != "refusal")
      return std::unexpected(bad_request("'" + p + "' must be a text part here, not '" + type + "'.", p));
    BULWARK_API_TRY(detail::read_string(part, type == "text" ? "text" : "refusal", text, p));
    cn::TextPart t{std::move(text)};
    BULWARK_API_TRY(read_cache(part, p, t.cache));
    out.push_back(std::move(t));
  }
  return out;
}

Status decode_user_part(sd::element value, std::string_view p, std::vector<cn::ContentPart>& out) {
  sd::object part;
  if (value.get_object().get(part) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + std::string(p) + "' must be an object.", std::string(p)));
  std::string type;
  BULWARK_API_TRY(detail::read_string(part, "type", type, p));
  if (type == "text") {
    cn::TextPart t;
    BULWARK_API_TRY(detail::read_string(part, "text", t.text, p));
    BULWARK_API_TRY(read_cache(part, p, t.cache));
    out.emplace_back(std::move(t));
  } else if (type == "image_url") {
    const auto iu = detail::find(part, "image_url");
    const std::string ip = path_key(p, "image_url");
    cn::ImagePart image;
    std::string url;
    sd::object iuo;
    if (std::string_view u; iu && iu->get_string().get(u) == simdjson::SUCCESS) {  // an early, still-seen shorthand
      url.assign(u);
    } else if (iu && iu->get_object().get(iuo) == simdjson::SUCCESS) {
      BULWARK_API_TRY(detail::read_string(iuo, "url", url, ip));
      BULWARK_API_TRY(detail::read_string(iuo, "detail", image.detail, ip));
    }
    if (url.empty()) return std::unexpected(bad_request("'" + ip + ".url' is required.", ip));
    if (auto data = detail::parse_data_url(url)) {
      image.media_type.assign(data->media_type);
      image.data.assign(data->data);
    } else if (url.starts_with("data:")) {
      return std::unexpected(bad_request("'" + ip + ".url' must be a base64 data: URL or an http(s) URL.", ip));
    } else {
      image.url = std::move(url);
    }
    BULWARK_API_TRY(read_cache(part, p, image.cache));
    out.emplace_back(std::move(image));
  } else if (type == "file") {
    auto f = detail::read_object(part, "file", p);
    if (!f) return std::unexpected(std::move(f).error());
    const std::string fp = path_key(p, "file");
    if (!*f) return std::unexpected(bad_request("'" + fp + "' is required.", fp));
    if (detail::find(**f, "file_id"))
      return std::unexpected(bad_request("'" + fp + ".file_id' (an uploaded file) cannot be translated by this gateway; send file_data.", fp));
    std::string url;
    cn::DocumentPart doc;
    BULWARK_API_TRY(detail::read_string(**f, "file_data", url, fp));
    BULWARK_API_TRY(detail::read_string(**f, "filename", doc.title, fp));
    const auto data = detail::parse_data_url(url);
    if (!data || (data->media_type != "application/pdf" && data->media_type != "text/plain"))
      return std::unexpected(bad_request("'" + fp + ".file_data' must be a base64 data: URL of a PDF (application/pdf) or plain text (text/plain).", fp));
    doc.media_type.assign(data->media_type);
    doc.data.assign(data->data);
    // The gateway's form also carries Anthropic's document context and citations.
    BULWARK_API_TRY(detail::read_string(**f, "context", doc.context, fp));
    if (auto c = detail::read_object(**f, "citations", fp); !c) {
      return std::unexpected(std::move(c).error());
    } else if (*c) {
      std::optional<bool> enabled;
      BULWARK_API_TRY(detail::read_bool(**c, "enabled", enabled, path_key(fp, "citations")));
      doc.citations = enabled.value_or(false);
    }
    BULWARK_API_TRY(read_cache(part, p, doc.cache));
    out.emplace_back(std::move(doc));
  } else if (type == "input_audio") {
    auto ia = detail::read_object(part, "input_audio", p);
    if (!ia) return std::unexpected(std::move(ia).error());
    const std::string ap = path_key(p, "input_audio");
    if (!*ia) return std::unexpected(bad_request("'" + ap + "' is required.", ap));
    cn::AudioPart audio;
    BULWARK_API_TRY(detail::read_string(**ia, "data", audio.data, ap));
    BULWARK_API_TRY(detail::read_string(**ia, "format", audio.format, ap));
    out.emplace_back(std::move(audio));
  } else {
    return std::unexpected(bad_request("Content part type '" + type + "' is not supported by this gateway.", std::string(p)));
  }
  return {};
}

Status decode_message(sd::element value, std::size_t index, cn::ChatRequest& req) {
  const std::string p = path_index("messages", index);
  sd::object m;
  if (value.get_object().get(m) != simdjson::SUCCESS) return std::unexpected(bad_request("Each message must be an object.", "messages"));
  std::string role;
  BULWARK_API_TRY(detail::read_string(m, "role", role, p));
  const auto content = detail::find(m, "content");
  const std::string cp = path_key(p, "content");

  if (role == "system" || role == "developer") {
    if (!content) return std::unexpected(bad_request("'" + cp + "' is required.", cp));
    auto texts = texts_of(*content, cp);
    if (!texts) return std::unexpected(std::move(texts).error());
    for (auto& t : *texts) {
      if (t.cache) req.system_cache.emplace_back(req.system.size(), std::move(*t.cache));
      req.system.push_back(std::move(t.text));
    }
    return {};
  }

  cn::Message msg;
  BULWARK_API_TRY(detail::read_string(m, "name", msg.name, p));
  if (role == "user") {
    msg.role = cn::Role::user;
    std::string_view text;
    if (content && content->get_string().get(text) == simdjson::SUCCESS) {
      msg.content.emplace_back(cn::TextPart{std::string(text)});
    } else if (content) {
      sd::array parts;
      if (content->get_array().get(parts) != simdjson::SUCCESS)
        return std::unexpected(bad_request("'" + cp + "' must be a string or an array of content parts.", cp));
      std::size_t i = 0;
      for (sd::element part : parts) BULWARK_API_TRY(decode_user_part(part, path_index(cp, i++), msg.content));
    }
  } else if (role == "assistant") {
    msg.role = cn::Role::assistant;
    if (detail::find(m, "function_call"))
      return std::unexpected(bad_request("'" + path_key(p, "function_call") + "' (the legacy function calling) is not supported; use tool_calls.", path_key(p, "function_call")));
    BULWARK_API_TRY(read_thinking_blocks(m, p, msg.content));  // reasoning precedes the answer
    if (content) {
      auto texts = texts_of(*content, cp);
      if (!texts) return std::unexpected(std::move(texts).error());
      for (auto& t : *texts) msg.content.emplace_back(std::move(t));
    }
    auto calls = detail::read_array(m, "tool_calls", p);
    if (!calls) return std::unexpected(std::move(calls).error());
    if (*calls) {
      std::size_t i = 0;
      for (sd::element c : **calls) {
        const std::string tp = path_index(path_key(p, "tool_calls"), i++);
        sd::object co;
        if (c.get_object().get(co) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + tp + "' must be an object.", tp));
        cn::ToolCallPart call;
        BULWARK_API_TRY(detail::read_string(co, "id", call.id, tp));
        auto fn = detail::read_object(co, "function", tp);
        if (!fn) return std::unexpected(std::move(fn).error());
        if (!*fn) return std::unexpected(bad_request("'" + tp + ".function' is required.", tp));
        const std::string fp = path_key(tp, "function");
        BULWARK_API_TRY(detail::read_string(**fn, "name", call.name, fp));
        BULWARK_API_TRY(detail::read_string(**fn, "arguments", call.arguments, fp));
        if (call.name.empty()) return std::unexpected(bad_request("'" + fp + ".name' is required.", fp));
        BULWARK_API_TRY(read_cache(co, tp, call.cache));
        msg.content.emplace_back(std::move(call));
      }
    }
  } else if (role == "tool") {
    msg.role = cn::Role::tool;
    cn::ToolResultPart result;
    BULWARK_API_TRY(detail::read_string(m, "tool_call_id", result.tool_call_id, p));
    if (result.tool_call_id.empty()) return std::unexpected(bad_request("'" + p + ".tool_call_id' is required.", path_key(p, "tool_call_id")));
    if (content) {
      auto texts = texts_of(*content, cp);
      if (!texts) return std::unexpected(std::move(texts).error());
      for (auto& t : *texts) result.content.emplace_back(cn::TextPart{std::move(t.text)});
    }
    BULWARK_API_TRY(read_cache(m, p, result.cache));
    msg.content.emplace_back(std::move(result));
  } else {
    const std::string rp = path_key(p, "role");
    return std::unexpected(bad_request("'" + rp + "' must be one of system, developer, user, assistant, tool (not '" + role + "').", rp));
  }
  req.messages.push_back(std::move(msg));
  return {};
}

Status decode_tools(sd::object o, cn::ChatRequest& req) {
  auto tools = detail::read_array(o, "tools", "");
  if (!tools) return std::unexpected(std::move(tools).error());
  if (*tools) {
    std::size_t i = 0;
    for (sd::element t : **tools) {
      const std::string p = path_index("tools", i++);
      sd::object to;
      if (t.get_object().get(to) != simdjson::SUCCESS) return std::unexpected(bad_request("'" + p + "' must be an object.", p));
      std::string type = "function";
      BULWARK_API_TRY(detail::read_string(to, "type", type, p));
      if (type != "function") return std::unexpected(bad_request("Tool type '" + type + "' is not supported; only 'function'.", p));
      auto fn = detail::read_object(to, "function", p);
      if (!fn) return std::unexpected(std::move(fn).error());
      if (!*fn) return std::unexpected(bad_request("'" + p + ".function' is required.", p));
      const std::string fp = path_key(p, "function");
      cn::Tool tool;
      BULWARK_API_TRY(detail::read_string(**fn, "name", tool.name, fp));
      BULWARK_API_TRY(detail::read_string(**fn, "description", tool.description, fp));
      if (tool.name.empty()) return std::unexpected(bad_request("'" + fp + ".name' is required.", fp));
      if (const auto params = detail::find(**fn, "parameters")) {
        if (!params->is_object()) return std::unexpected(bad_request("'" + fp + ".parameters' must be an object.", fp));
        tool.parameters = detail::to_json(*params);
      }
      BULWARK_API_TRY(read_cache(to, p, tool.cache));
      req.tools.push_back(std::move(tool));
    }
  }
  if (const auto tc = detail::find(o, "tool_choice")) {
    std::string_view s;
    sd::object tco;
    if (tc->get_string().get(s) == simdjson::SUCCESS) {
      if (s == "auto") req.tool_choice.mode = cn::ToolChoice::Mode::auto_;
      else if (s == "none") req.tool_choice.mode = cn::ToolChoice::Mode::none;
      else if (s == "required") req.tool_choice.mode = cn::ToolChoice::Mode::required;
      else return std::unexpected(bad_request("'tool_choice' must be auto, none, required or a function.", "tool_choice"));
    } else if (tc->get_object().get(tco) == simdjson::SUCCESS) {
      auto fn = detail::read_object(tco, "function", "tool_choice");
      if (!fn) return std::unexpected(std::move(fn).error());
      if (*fn) BULWARK_API_TRY(detail::read_string(**fn, "name", req.tool_choice.name, "tool_choice.function"));
      if (req.tool_choice.name.empty()) return std::unexpected(bad_request("'tool_choice.function.name' is required.", "tool_choice"));
      req.tool_choice.mode = cn::ToolChoice::Mode::tool;
    } else {
      return std::unexpected(bad_request("'tool_choice' must be a string or an object.", "tool_choice"));
    }
  }
  std::optional<bool> parallel;
  BULWARK_API_TRY(detail::read_bool(o, "parallel_tool_calls", parallel, ""));
  req.parallel_tool_calls = parallel;
  return {};
}

// The OpenAI-only options, kept so that an OpenAI upstream gets them and others refuse them.
Status decode_openai_only(sd::object o, cn::ChatRequest& req) {
  std::optional<std::int64_t> n;
  BULWARK_API_TRY(detail::read_int(o, "n", n, ""));
  if (n) {
    if (*n < 1) return std::unexpected(bad_request("'n' must be at least 1.", "n"));
    req.n = *n;
  }
  std::optional<bool> logprobs;
  BULWARK_API_TRY(detail::read_bool(o, "logprobs", logprobs, ""));
  req.logprobs = logprobs.value_or(false);
  BULWARK_API_TRY(detail::read_int(o, "top_logprobs", req.top_logprobs, ""));
  BULWARK_API_TRY(detail::read_double(o, "presence_penalty", req.presence_penalty, ""));
  BULWARK_API_TRY(detail::read_double(o, "frequency_penalty", req.frequency_penalty, ""));
  BULWARK_API_TRY(detail::read_int(o, "seed", req.seed, ""));
  if (const auto rf = detail::find(o, "response_format")) {
    sd::object rfo;
    if (rf->get_object().get(rfo) != simdjson::SUCCESS) return std::unexpected(bad_request("'response_format' must be an object.", "response_format"));
    const auto type = detail::find(rfo, "type");
    std::string_view ts;
    if (!type || type->get_string().get(ts) != simdjson::SUCCESS || ts != "text") req.response_format = detail::to_json(*rf);
  }
  if (const auto audio = detail::find(o, "audio")) req.audio = detail::to_json(*audio);
  if (const auto lb = detail::find(o, "logit_bias")) {
    sd::object lbo;
    if (lb->get_object().get(lbo) != simdjson::SUCCESS) return std::unexpected(bad_request("'logit_bias' must be an object.", "logit_bias"));
    if (lbo.size() != 0) req.logit_bias = detail::to_json(*lb);
  }
  return {};
}

// reasoning_effort (OpenAI's), or thinking (Anthropic's, in the gateway's form) which wins.
Status decode_reasoning(sd::object o, cn::ChatRequest& req) {
  // One pass over the top-level keys for both (rarely present) fields: this runs for
  // every request, and each absent-key lookup is a scan of its own.
  bool has_effort = false, has_thinking = false;
  for (const sd::key_value_pair field : o) {
    has_effort = has_effort || field.key == "reasoning_effort";
    has_thinking = has_thinking || field.key == "thinking";
  }
  if (has_effort) {
    std::string effort;
    BULWARK_API_TRY(detail::read_string(o, "reasoning_effort", effort, ""));
    if (effort == "none") req.reasoning.mode = cn::Reasoning::Mode::disabled;
    else if (!effort.empty()) req.reasoning = {cn::Reasoning::Mode::enabled, 0, std::move(effort)};
  }
  if (!has_thinking) return {};
  auto thinking = detail::read_object(o, "thinking", "");
  if (!thinking) return std::unexpected(std::move(thinking).error());
  if (!*thinking) return {};
  std::string type;
  BULWARK_API_TRY(detail::read_string(**thinking, "type", type, "thinking"));
  if (type == "enabled") {
    std::optional<std::int64_t> budget;
    BULWARK_API_TRY(detail::read_int(**thinking, "budget_tokens", budget, "thinking"));
    if (!budget || *budget < 1) return std::unexpected(bad_request("'thinking.budget_tokens' must be a positive integer.", "thinking.budget_tokens"));
    req.reasoning = {cn::Reasoning::Mode::enabled, *budget, {}};
  } else if (type == "disabled") {
    req.reasoning = {cn::Reasoning::Mode::disabled, 0, {}};
  } else {
    return std::unexpected(bad_request("'thinking.type' must be enabled or disabled.", "thinking.type"));
  }
  return {};
}

cn::Usage decode_usage(const bj::object& u) {
  cn::Usage usage;
  usage.output = detail::count(u, "completion_tokens");
  if (const bj::value* d = detail::find(u, "prompt_tokens_details"); d != nullptr && d->is_object())
    usage.cache_read = detail::count(d->get_object(), "cached_tokens");
  // Not OpenAI's own field: gateways that relay Anthropic or Bedrock usage add it.
  usage.cache_write = detail::count(u, "cache_creation_input_tokens");
  usage.input = std::max<std::int64_t>(0, detail::count(u, "prompt_tokens") - usage.cache_read - usage.cache_write);
  return usage;
}

void write_usage(std::string& out, const cn::Usage& usage) {
  out += "{\"prompt_tokens\":";
  json::append_int(out, usage.prompt());
  out += ",\"completion_tokens\":";
  json::append_int(out, usage.output);
  out += ",\"total_tokens\":";
  json::append_int(out, usage.total());
  out += ",\"prompt_tokens_details\":{\"cached_tokens\":";
  json::append_int(out, usage.cache_read);
  out += '}';
  // OpenAI has no cache-write count: keep it visible (as other gateways do) rather than lose it.
  if (usage.cache_write != 0) {
    out += ",\"cache_creation_input_tokens\":";
    json::append_int(out, usage.cache_write);
  }
  out += '}';
}

}  // namespace

std::string_view finish_reason(cn::StopReason reason) noexcept {
  switch (reason) {
    case cn::StopReason::none: return "";
    case cn::StopReason::end_turn:
    case cn::StopReason::stop_sequence: return "stop";
    case cn::StopReason::max_tokens: return "length";
    case cn::StopReason::tool_use: return "tool_calls";
    case cn::StopReason::content_filter:
    case cn::StopReason::refusal:
    case cn::StopReason::guardrail: return "content_filter";
  }
  return "stop";
}

cn::StopReason stop_reason_from(std::string_view reason) noexcept {
  if (reason == "stop") return cn::StopReason::end_turn;
  if (reason == "length") return cn::StopReason::max_tokens;
  if (reason == "tool_calls" || reason == "function_call") return cn::StopReason::tool_use;
  if (reason == "content_filter") return cn::StopReason::content_filter;
  if (reason.empty()) return cn::StopReason::none;
  return cn::StopReason::end_turn;  // an unknown reason still ended the answer
}

Result<cn::ChatRequest> decode_request(std::string_view body) {
  auto parsed = detail::parse_object(detail::ParserSlot::request, body);
  if (!parsed) return std::unexpected(std::move(parsed).error());
  const sd::object o = *parsed;
  cn::ChatRequest req;

  if (!detail::contains(o, "model")) return std::unexpected(bad_request("You must provide a model parameter.", "model"));
  BULWARK_API_TRY(detail::read_string(o, "model", req.model, ""));
  auto messages = detail::read_array(o, "messages", "");
  if (!messages) return std::unexpected(std::move(messages).error());
  if (!*messages) return std::unexpected(bad_request("Missing required parameter: 'messages'.", "messages"));
  if ((*messages)->size() == 0) return std::unexpected(bad_request("'messages' must contain at least one message.", "messages"));
  std::size_t i = 0;
  for (sd::element m : **messages) BULWARK_API_TRY(decode_message(m, i++, req));

  BULWARK_API_TRY(decode_tools(o, req));
  BULWARK_API_TRY(detail::read_strings(o, "stop", req.stop, ""));
  BULWARK_API_TRY(detail::read_double(o, "temperature", req.temperature, ""));
  BULWARK_API_TRY(detail::read_double(o, "top_p", req.top_p, ""));
  // max_completion_tokens is the current name; max_tokens the older one.
  BULWARK_API_TRY(detail::read_int(o, "max_tokens", req.max_tokens, ""));
  BULWARK_API_TRY(detail::read_int(o, "max_completion_tokens", req.max_tokens, ""));
  if (req.max_tokens && *req.max_tokens < 0) return std::unexpected(bad_request("'max_tokens' must be a non-negative integer.", "max_tokens"));
  std::optional<bool> stream;
  BULWARK_API_TRY(detail::read_bool(o, "stream", stream, ""));
  req.stream = stream.value_or(false);
  auto so = detail::read_object(o, "stream_options", "");
  if (!so) return std::unexpected(std::move(so).error());
  if (*so) {
    std::optional<bool> iu;
    BULWARK_API_TRY(detail::read_bool(**so, "include_usage", iu, "stream_options"));
    req.include_usage = iu.value_or(false);
  }
  BULWARK_API_TRY(detail::read_string(o, "user", req.user, ""));
  BULWARK_API_TRY(decode_openai_only(o, req));
  BULWARK_API_TRY(decode_reasoning(o, req));
  return req;
}

bool has_reasoning_parts(const cn::ChatRequest& req) noexcept {
  for (const cn::Message& m : req.messages)
    for (const cn::ContentPart& part : m.content)
      if (std::holds_alternative<cn::ReasoningPart>(part)) return true;
  return false;
}

bool has_document_extensions(const cn::ChatRequest& req) noexcept {
  for (const cn::Message& m : req.messages)
    for (const cn::ContentPart& part : m.content)
      if (const auto* d = std::get_if<cn::DocumentPart>(&part); d != nullptr && (d->citations || !d->context.empty())) return true;
  return false;
}

bool needs_extensions(const cn::ChatRequest& req) noexcept {
  const bool thinking = req.reasoning.mode != cn::Reasoning::Mode::unset && req.reasoning.effort.empty();
  return thinking || cn::has_cache_marks(req) || has_reasoning_parts(req) || has_document_extensions(req);
}

Result<std::string> encode_request(const cn::ChatRequest& req, std::string_view target_model, const RequestOptions& options) {
  if (req.top_k) return std::unexpected(bad_request("'top_k' cannot be expressed in OpenAI chat completions.", "top_k"));
  const bool gateway = options.gateway_form;
  // cache_control in the gateway's form only: an OpenAI upstream caches prefixes by itself.
  const auto cache = [gateway](bj::object& obj, const std::optional<cn::CacheMark>& mark) {
    if (!gateway || !mark) return;
    bj::object cc{{"type", "ephemeral"}};
    if (!mark->ttl.empty()) cc["ttl"] = mark->ttl;
    obj["cache_control"] = std::move(cc);
  };
  bj::object o;
  if (gateway && needs_extensions(req)) o[kExtensionsKey] = true;  // first: see has_extensions()
  o["model"] = target_model;
  bj::array messages;
  for (std::size_t i = 0; i < req.system.size(); ++i) {
    const cn::CacheMark* mark = gateway ? cn::system_cache_of(req, i) : nullptr;
    if (mark == nullptr) {
      messages.push_back(bj::object{{"role", "system"}, {"content", req.system[i]}});
      continue;
    }
    bj::object part{{"type", "text"}, {"text", req.system[i]}};
    cache(part, *mark);
    messages.push_back(bj::object{{"role", "system"}, {"content", bj::array{std::move(part)}}});
  }
  for (std::size_t i = 0; i < req.messages.size(); ++i) {
    const cn::Message& m = req.messages[i];
    const std::string p = path_index("messages", i);
    if (m.role == cn::Role::tool) {
      for (const cn::ContentPart& part : m.content) {
        const auto* result = std::get_if<cn::ToolResultPart>(&part);
        if (result == nullptr) continue;
        std::string text;
        for (const cn::ToolResultContent& c : result->content) {
          if (!std::holds_alternative<cn::TextPart>(c))
            return std::unexpected(bad_request("'" + p + "' has an image in a tool result, which OpenAI chat completions cannot express.", p));
          text += std::get<cn::TextPart>(c).text;
        }
        bj::object tool_msg{{"role", "tool"}, {"tool_call_id", result->tool_call_id}, {"content", std::move(text)}};
        cache(tool_msg, result->cache);
        messages.push_back(std::move(tool_msg));
      }
      continue;
    }
    bj::object msg;
    msg["role"] = cn::to_string(m.role);
    if (!m.name.empty()) msg["name"] = m.name;
    if (m.role == cn::Role::assistant) {
      std::string text;
      bool has_text = false, text_cached = false;
      bj::array calls, thinking, text_parts;
      for (const cn::ContentPart& part : m.content) {
        if (const auto* t = std::get_if<cn::TextPart>(&part)) {
          text += t->text;
          has_text = true;
          bj::object tp{{"type", "text"}, {"text", t->text}};
          cache(tp, t->cache);
          text_cached = text_cached || (gateway && t->cache);
          text_parts.push_back(std::move(tp));
        } else if (const auto* c = std::get_if<cn::ToolCallPart>(&part)) {
          bj::object call{{"id", c->id},
                          {"type", "function"},
                          {"function", bj::object{{"name", c->name}, {"arguments", c->arguments.empty() ? "{}" : c->arguments}}}};
          cache(call, c->cache);
          calls.push_back(std::move(call));
        } else if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
          // The model's own reasoning: kept in the gateway's form (for Anthropic and Claude
          // targets, which need it back), left out for an OpenAI upstream.
          if (!gateway) continue;
          if (!r->redacted.empty()) thinking.push_back(bj::object{{"type", "redacted_thinking"}, {"data", r->redacted}});
          else thinking.push_back(bj::object{{"type", "thinking"}, {"thinking", r->text}, {"signature", r->signature}});
        } else {
          return std::unexpected(bad_request("'" + p + "' is an assistant message with non-text content, which OpenAI cannot express.", p));
        }
      }
      if (text_cached) msg["content"] = std::move(text_parts);
      else if (has_text) msg["content"] = std::move(text);
      else msg["content"] = nullptr;
      if (!calls.empty()) msg["tool_calls"] = std::move(calls);
      if (!thinking.empty()) msg["thinking_blocks"] = std::move(thinking);
    } else {
      const bool plain = m.content.size() == 1 && std::holds_alternative<cn::TextPart>(m.content[0]) &&
                         !(gateway && std::get<cn::TextPart>(m.content[0]).cache);
      if (plain) {
        msg["content"] = std::get<cn::TextPart>(m.content[0]).text;
      } else {
        bj::array parts;
        for (const cn::ContentPart& part : m.content) {
          if (const auto* t = std::get_if<cn::TextPart>(&part)) {
            bj::object tp{{"type", "text"}, {"text", t->text}};
            cache(tp, t->cache);
            parts.push_back(std::move(tp));
          } else if (const auto* img = std::get_if<cn::ImagePart>(&part)) {
            bj::object iu;
            iu["url"] = img->url.empty() ? "data:" + img->media_type + ";base64," + img->data : img->url;
            if (!img->detail.empty()) iu["detail"] = img->detail;
            bj::object ip{{"type", "image_url"}, {"image_url", std::move(iu)}};
            cache(ip, img->cache);
            parts.push_back(std::move(ip));
          } else if (const auto* doc = std::get_if<cn::DocumentPart>(&part)) {
            if (!gateway && (doc->citations || !doc->context.empty()))
              return std::unexpected(bad_request("'" + p + "' has a document with " + (doc->citations ? "citations" : "a context") +
                                                     ", which only Anthropic Messages and Claude on InvokeModel carry (not OpenAI chat completions).",
                                                 p));
            bj::object file{{"file_data", "data:" + doc->media_type + ";base64," + doc->data}};
            if (!doc->title.empty()) file["filename"] = doc->title;
            if (!doc->context.empty()) file["context"] = doc->context;
            if (doc->citations) file["citations"] = bj::object{{"enabled", true}};
            bj::object fp{{"type", "file"}, {"file", std::move(file)}};
            cache(fp, doc->cache);
            parts.push_back(std::move(fp));
          } else if (const auto* a = std::get_if<cn::AudioPart>(&part)) {
            parts.push_back(bj::object{{"type", "input_audio"}, {"input_audio", bj::object{{"data", a->data}, {"format", a->format}}}});
          } else {
            return std::unexpected(bad_request("'" + p + "' is a user message with tool content, which OpenAI cannot express.", p));
          }
        }
        msg["content"] = std::move(parts);
      }
    }
    messages.push_back(std::move(msg));
  }
  o["messages"] = std::move(messages);

  if (!req.tools.empty()) {
    bj::array tools;
    for (std::size_t i = 0; i < req.tools.size(); ++i) {
      const cn::Tool& t = req.tools[i];
      auto schema = detail::schema_object(t.parameters, path_index("tools", i));
      if (!schema) return std::unexpected(std::move(schema).error());
      bj::object fn{{"name", t.name}};
      if (!t.description.empty()) fn["description"] = t.description;
      fn["parameters"] = std::move(*schema);
      bj::object tool{{"type", "function"}, {"function", std::move(fn)}};
      cache(tool, t.cache);
      tools.push_back(std::move(tool));
    }
    o["tools"] = std::move(tools);
  }
  switch (req.tool_choice.mode) {
    case cn::ToolChoice::Mode::unset: break;
    case cn::ToolChoice::Mode::auto_: o["tool_choice"] = "auto"; break;
    case cn::ToolChoice::Mode::none: o["tool_choice"] = "none"; break;
    case cn::ToolChoice::Mode::required: o["tool_choice"] = "required"; break;
    case cn::ToolChoice::Mode::tool:
      o["tool_choice"] = bj::object{{"type", "function"}, {"function", bj::object{{"name", req.tool_choice.name}}}};
      break;
  }
  if (req.parallel_tool_calls) o["parallel_tool_calls"] = *req.parallel_tool_calls;
  if (!req.stop.empty()) {
    bj::array stop;
    for (const auto& s : req.stop) stop.push_back(bj::string_view(s));
    o["stop"] = std::move(stop);
  }
  if (req.temperature) o["temperature"] = *req.temperature;
  if (req.top_p) o["top_p"] = *req.top_p;
  // max_tokens rather than max_completion_tokens: every OpenAI-compatible server knows it.
  if (req.max_tokens) o["max_tokens"] = *req.max_tokens;
  if (req.stream) {
    o["stream"] = true;
    o["stream_options"] = bj::object{{"include_usage", true}};  // the gateway always wants usage
  }
  if (!req.user.empty()) o["user"] = req.user;
  if (req.n != 1) o["n"] = req.n;
  if (req.logprobs) o["logprobs"] = true;
  if (req.top_logprobs) o["top_logprobs"] = *req.top_logprobs;
  if (req.presence_penalty) o["presence_penalty"] = *req.presence_penalty;
  if (req.frequency_penalty) o["frequency_penalty"] = *req.frequency_penalty;
  if (req.seed) o["seed"] = *req.seed;
  // These hold JSON text this library wrote from a parsed value: they parse again.
  bj::error_code ec;
  if (!req.response_format.empty()) o["response_format"] = detail::parse_value(req.response_format, ec);
  if (!req.audio.empty()) o["audio"] = detail::parse_value(req.audio, ec);
  if (!req.logit_bias.empty()) o["logit_bias"] = detail::parse_value(req.logit_bias, ec);
  if (req.reasoning.mode == cn::Reasoning::Mode::enabled) {
    if (!req.reasoning.effort.empty()) o["reasoning_effort"] = req.reasoning.effort;
    else if (gateway) o["thinking"] = bj::object{{"type", "enabled"}, {"budget_tokens", req.reasoning.budget_tokens}};
    else o["reasoning_effort"] = cn::effort_for_budget(req.reasoning.budget_tokens);  // docs/formats.md's thresholds
  } else if (req.reasoning.mode == cn::Reasoning::Mode::disabled) {
    if (req.reasoning.effort == "none") o["reasoning_effort"] = "none";
    else if (gateway) o["thinking"] = bj::object{{"type", "disabled"}};
    // An OpenAI upstream without an effort does not reason unless it always does: nothing to say.
  }
  return detail::to_json(o);
}

Result<cn::ChatResponse> decode_response(std::string_view body) {
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(detail::as_upstream(std::move(parsed).error()));
  const bj::object& o = **parsed;
  cn::ChatResponse resp;
  if (auto s = detail::read_string(o, "id", resp.id, ""); !s) return std::unexpected(detail::as_upstream(s.error()));
  if (auto s = detail::read_string(o, "model", resp.model, ""); !s) return std::unexpected(detail::as_upstream(s.error()));
  resp.created = detail::count(o, "created");
  const bj::value* choices = detail::find(o, "choices");
  if (choices == nullptr || !choices->is_array() || choices->get_array().empty() || !choices->get_array()[0].is_object())
    return std::unexpected(detail::upstream_protocol("the upstream answer has no choices"));
  const bj::object& choice = choices->get_array()[0].get_object();
  if (const bj::value* fr = detail::find(choice, "finish_reason"); fr != nullptr && fr->is_string())
    resp.stop_reason = stop_reason_from(fr->get_string());
  const bj::value* message = detail::find(choice, "message");
  if (message == nullptr || !message->is_object()) return std::unexpected(detail::upstream_protocol("the upstream answer has no message"));
  const bj::object& m = message->get_object();
  // Reasoning: thinking_blocks (signed, the gateway's own form) or else reasoning_content
  // (DeepSeek, vLLM, OpenRouter: text only).
  if (const bj::value* tb = detail::find(m, "thinking_blocks"); tb != nullptr && tb->is_array()) {
    for (const bj::value& b : tb->get_array()) {
      if (!b.is_object()) continue;
      const bj::object& bo = b.get_object();
      cn::ReasoningPart r;
      const auto str = [&](std::string_view key) -> std::string {
        const bj::value* v = detail::find(bo, key);
        return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
      };
      if (str("type") == "redacted_thinking") r.redacted = str("data");
      else r = cn::ReasoningPart{str("thinking"), str("signature"), {}};
      resp.content.emplace_back(std::move(r));
    }
  } else if (const bj::value* rc = detail::find(m, "reasoning_content"); rc != nullptr && rc->is_string() && !rc->get_string().empty()) {
    resp.content.emplace_back(cn::ReasoningPart{std::string(rc->get_string()), {}, {}});
  }
  const bj::value* blocks = detail::find(m, "text_blocks");
  if (blocks != nullptr && blocks->is_array()) {
    // The gateway's own field: the text blocks with their citations (see encode_response).
    for (const bj::value& b : blocks->get_array()) {
      if (!b.is_object()) continue;
      cn::TextPart part;
      if (const bj::value* t = detail::find(b.get_object(), "text"); t != nullptr && t->is_string()) part.text = t->get_string();
      if (const bj::value* c = detail::find(b.get_object(), "citations"); c != nullptr && c->is_array()) part.citations = detail::to_json(*c);
      resp.content.emplace_back(std::move(part));
    }
  } else if (const bj::value* c = detail::find(m, "content"); c != nullptr && c->is_string())
    resp.content.emplace_back(cn::TextPart{std::string(c->get_string())});
  else if (const bj::value* r = detail::find(m, "refusal"); r != nullptr && r->is_string()) {
    resp.content.emplace_back(cn::TextPart{std::string(r->get_string())});
    resp.stop_reason = cn::StopReason::refusal;
  }
  if (const bj::value* calls = detail::find(m, "tool_calls"); calls != nullptr && calls->is_array()) {
    for (const bj::value& c : calls->get_array()) {
      if (!c.is_object()) continue;
      cn::ToolCallPart call;
      if (const bj::value* id = detail::find(c.get_object(), "id"); id != nullptr && id->is_string()) call.id = id->get_string();
      if (const bj::value* fn = detail::find(c.get_object(), "function"); fn != nullptr && fn->is_object()) {
        if (const bj::value* n = detail::find(fn->get_object(), "name"); n != nullptr && n->is_string()) call.name = n->get_string();
        if (const bj::value* a = detail::find(fn->get_object(), "arguments"); a != nullptr && a->is_string()) call.arguments = a->get_string();
      }
      resp.content.emplace_back(std::move(call));
    }
  }
  if (const bj::value* u = detail::find(o, "usage"); u != nullptr && u->is_object()) resp.usage = decode_usage(u->get_object());
  return resp;
}

// Written straight into the answer (no JSON tree): every non-streamed answer from an
// Anthropic or Bedrock upstream goes through here.
std::string encode_response(const cn::ChatResponse& resp, std::uint64_t id_seed) {
  cn::IdSource ids(id_seed);
  std::string out;
  std::size_t text_size = 0;
  for (const cn::ContentPart& part : resp.content)
    if (const auto* t = std::get_if<cn::TextPart>(&part)) text_size += t->text.size();
  out.reserve(320 + text_size + text_size / 8);
  out += "{\"id\":";
  // The completion id is restyled after the tool-call ids, as before: ids come from one
  // IdSource, so the order of generation is part of the answer.
  std::string calls;
  bool has_text = false;
  for (const cn::ContentPart& part : resp.content) {
    if (std::holds_alternative<cn::TextPart>(part)) {
      has_text = true;
    } else if (const auto* c = std::get_if<cn::ToolCallPart>(&part)) {
      calls += calls.empty() ? "[" : ",";
      calls += "{\"id\":";
      json::append_string(calls, cn::restyle_id(c->id, cn::id_prefix::openai_tool_call, ids));
      calls += ",\"type\":\"function\",\"function\":{\"name\":";
      json::append_string(calls, c->name);
      calls += ",\"arguments\":";
      json::append_string(calls, c->arguments.empty() ? std::string_view("{}") : std::string_view(c->arguments));
      calls += "}}";
    }
  }
  json::append_string(out, cn::restyle_id(resp.id, cn::id_prefix::openai_completion, ids));
  out += ",\"object\":\"chat.completion\",\"created\":";
  json::append_int(out, resp.created);
  out += ",\"model\":";
  json::append_string(out, resp.model);
  out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
  if (!has_text) {
    out += "null";
  } else {
    // The text parts joined: one JSON string, escaped part by part.
    out += '"';
    for (const cn::ContentPart& part : resp.content)
      if (const auto* t = std::get_if<cn::TextPart>(&part)) json::append_escaped(out, t->text);
    out += '"';
  }
  out += ",\"refusal\":null";
  // Reasoning has no standard field: reasoning_content (the text, as DeepSeek, vLLM and
  // OpenRouter write it) and thinking_blocks (signed blocks, LiteLLM's field), only when present.
  bool has_reasoning = false;
  for (const cn::ContentPart& part : resp.content)
    if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
      if (!has_reasoning) out += ",\"reasoning_content\":\"";
      has_reasoning = true;
      json::append_escaped(out, r->text);
    }
  if (has_reasoning) {
    out += "\",\"thinking_blocks\":[";
    bool first = true;
    for (const cn::ContentPart& part : resp.content)
      if (const auto* r = std::get_if<cn::ReasoningPart>(&part)) {
        if (!first) out += ',';
        first = false;
        detail::append_thinking_block(out, *r);
      }
    out += ']';
  }
  // Citations have no OpenAI field: when some text block has them, the blocks are also
  // written as text_blocks (the gateway's own field), so that the answer can be written
  // back to an Anthropic caller with them.
  bool cited = false;
  for (const cn::ContentPart& part : resp.content)
    if (const auto* t = std::get_if<cn::TextPart>(&part); t != nullptr && !t->citations.empty()) cited = true;
  if (cited) {
    out += ",\"text_blocks\":[";
    bool first = true;
    for (const cn::ContentPart& part : resp.content)
      if (const auto* t = std::get_if<cn::TextPart>(&part)) {
        if (!first) out += ',';
        first = false;
        out += "{\"text\":";
        json::append_string(out, t->text);
        if (!t->citations.empty()) {
          out += ",\"citations\":";
          out += t->citations;
        }
        out += '}';
      }
    out += ']';
  }
  if (!calls.empty()) {
    out += ",\"tool_calls\":";
    out += calls;
    out += ']';
  }
  out += "},\"logprobs\":null,\"finish_reason\":";
  json::append_string(out, finish_reason(resp.stop_reason == cn::StopReason::none ? cn::StopReason::end_turn : resp.stop_reason));
  out += "}],\"usage\":";
  write_usage(out, resp.usage);
  out += '}';
  return out;
}

// ---- stream decoding ----

void StreamDecoder::close_blocks(std::vector<cn::StreamEvent>& out) {
  for (std::uint32_t b : open_) out.emplace_back(cn::BlockStop{b});
  open_.clear();
  text_block_.reset();
  reasoning_block_.reset();
}

std::uint32_t StreamDecoder::text_block() {
  if (!text_block_) {
    text_block_ = next_block_++;
    open_.push_back(*text_block_);
    reasoning_block_.reset();
    text_tag_ = text_blocks_++;
  }
  return *text_block_;
}

// reasoning_content text and thinking_blocks (signatures, redacted blocks) of one delta.
void StreamDecoder::decode_reasoning_delta(const boost::json::object& delta, std::vector<cn::StreamEvent>& out) {
  const auto reasoning_block = [&] {
    if (!reasoning_block_) {
      reasoning_block_ = next_block_++;
      open_.push_back(*reasoning_block_);
      text_block_.reset();
    }
    return *reasoning_block_;
  };
  if (const bj::value* rc = detail::find(delta, "reasoning_content"); rc != nullptr && rc->is_string() && !rc->get_string().empty())
    out.emplace_back(cn::ReasoningDelta{reasoning_block(), std::string(rc->get_string())});
  const bj::value* tb = detail::find(delta, "thinking_blocks");
  if (tb == nullptr || !tb->is_array()) return;
  for (const bj::value& b : tb->get_array()) {
    if (!b.is_object()) continue;
    const bj::object& bo = b.get_object();
    const bj::value* type = detail::find(bo, "type");
    if (type != nullptr && type->is_string() && type->get_string() == "redacted_thinking") {
      const bj::value* data = detail::find(bo, "data");
      reasoning_block_.reset();  // a redacted block stands alone
      out.emplace_back(cn::RedactedReasoning{reasoning_block(), data != nullptr && data->is_string() ? std::string(data->get_string()) : std::string()});
      reasoning_block_.reset();
      continue;
    }
    if (const bj::value* sig = detail::find(bo, "signature"); sig != nullptr && sig->is_string() && !sig->get_string().empty()) {
      out.emplace_back(cn::SignatureDelta{reasoning_block(), std::string(sig->get_string())});
      reasoning_block_.reset();  // the signature closes the block: more reasoning is a new one
    }
  }
}

void StreamDecoder::emit_delta(std::vector<cn::StreamEvent>& out) {
  if (delta_sent_) return;
  close_blocks(out);
  out.emplace_back(cn::MessageDelta{stop_ == cn::StopReason::none ? cn::StopReason::end_turn : stop_, {}, usage_, std::nullopt});
  delta_sent_ = true;
}

Status StreamDecoder::feed(std::string_view data, std::vector<cn::StreamEvent>& out) {
  if (data == "[DONE]") {
    if (!done_) {
      emit_delta(out);
      out.emplace_back(cn::MessageStop{});
      done_ = true;
    }
    return {};
  }
  bj::error_code ec;
  bj::value v = detail::parse_value(data, ec);
  if (ec || !v.is_object()) return std::unexpected(detail::upstream_protocol("a stream chunk is not a JSON object"));
  const bj::object& o = v.get_object();
  if (const bj::value* err = detail::find(o, "error")) {
    std::string message = "the upstream reported an error mid-stream";
    if (err->is_object())
      if (const bj::value* m = detail::find(err->get_object(), "message"); m != nullptr && m->is_string()) message = m->get_string();
    Error e = Error::gateway(ErrorKind::upstream_server_error, std::move(message));
    e.origin = Origin::upstream;
    out.emplace_back(cn::StreamError{std::move(e)});
    return {};
  }
  if (!started_) {
    cn::MessageStart start;
    if (const bj::value* id = detail::find(o, "id"); id != nullptr && id->is_string()) start.id = id->get_string();
    if (const bj::value* m = detail::find(o, "model"); m != nullptr && m->is_string()) start.model = m->get_string();
    out.emplace_back(std::move(start));
    started_ = true;
  }
  if (const bj::value* choices = detail::find(o, "choices"); choices != nullptr && choices->is_array()) {
    for (const bj::value& cv : choices->get_array()) {
      if (!cv.is_object()) continue;
      const bj::object& choice = cv.get_object();
      // The canonical answer is one choice: n > 1 never reaches a translated upstream.
      if (detail::count(choice, "index") != 0) continue;
      if (const bj::value* dv = detail::find(choice, "delta"); dv != nullptr && dv->is_object()) {
        const bj::object& delta = dv->get_object();
        decode_reasoning_delta(delta, out);
        // The gateway's form: text_block says which text block a chunk belongs to where it
        // may be another than the open one (citations belong to one block); every chunk
        // with a citation has it. Absent in every other stream.
        if (const bj::value* tag = detail::find(delta, "text_block"); tag != nullptr && tag->is_int64()) {
          const std::int64_t t = tag->get_int64();
          if (text_block_ && text_tag_ != t) text_block_.reset();
          if (!text_block_) {
            text_block();
            text_tag_ = t;
            text_blocks_ = t + 1;
          }
          if (const bj::value* c = detail::find(delta, "citation"); c != nullptr && c->is_object())
            out.emplace_back(cn::CitationDelta{*text_block_, detail::to_json(*c)});
        }
        const bj::value* text = detail::find(delta, "content");
        if (text == nullptr || !text->is_string()) text = detail::find(delta, "refusal");
        if (text != nullptr && text->is_string() && !text->get_string().empty())
          out.emplace_back(cn::TextDelta{text_block(), std::string(text->get_string())});
        if (const bj::value* calls = detail::find(delta, "tool_calls"); calls != nullptr && calls->is_array()) {
          for (const bj::value& c : calls->get_array()) {
            if (!c.is_object()) continue;
            const bj::object& call = c.get_object();
            const std::int64_t tool_index = detail::count(call, "index");
            const bj::object* fn = nullptr;
            if (const bj::value* f = detail::find(call, "function"); f != nullptr && f->is_object()) fn = &f->get_object();
            std::optional<std::uint32_t> block;
            for (const auto& [ti, b] : tools_)
              if (ti == tool_index) block = b;
            if (!block) {
              block = next_block_++;
              tools_.emplace_back(tool_index, *block);
              open_.push_back(*block);
              text_block_.reset();  // text after a tool call is a new block
              reasoning_block_.reset();
              cn::ToolCallStart start{*block, {}, {}};
              if (const bj::value* id = detail::find(call, "id"); id != nullptr && id->is_string()) start.id = id->get_string();
              if (fn != nullptr)
                if (const bj::value* n = detail::find(*fn, "name"); n != nullptr && n->is_string()) start.name = n->get_string();
              out.emplace_back(std::move(start));
            }
            if (fn != nullptr)
              if (const bj::value* a = detail::find(*fn, "arguments"); a != nullptr && a->is_string() && !a->get_string().empty())
                out.emplace_back(cn::ToolArgsDelta{*block, std::string(a->get_string())});
          }
        }
      }
      if (const bj::value* fr = detail::find(choice, "finish_reason"); fr != nullptr && fr->is_string()) {
        stop_ = stop_reason_from(fr->get_string());
        finished_ = true;
        close_blocks(out);
      }
    }
  }
  if (const bj::value* u = detail::find(o, "usage"); u != nullptr && u->is_object()) {
    usage_ = decode_usage(u->get_object());
    if (finished_) emit_delta(out);
  }
  return {};
}

Status StreamDecoder::feed_sse(std::string_view event, std::vector<cn::StreamEvent>& out) {
  std::string data;
  bool any = false;
  while (!event.empty()) {
    const std::size_t nl = event.find('\n');
    std::string_view line = event.substr(0, nl);
    event.remove_prefix(nl == std::string_view::npos ? event.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.starts_with("data:")) continue;  // comments, event:, id:, retry:
    line.remove_prefix(5);
    if (line.starts_with(' ')) line.remove_prefix(1);
    if (any) data.push_back('\n');
    data.append(line);
    any = true;
  }
  if (!any) return {};
  return feed(data, out);
}

void StreamDecoder::finish(std::vector<cn::StreamEvent>& out) {
  if (done_) return;
  if (finished_) {
    emit_delta(out);
    out.emplace_back(cn::MessageStop{});
  } else {
    out.emplace_back(cn::StreamError{Error::transport(ErrorKind::stream_truncated, "the upstream stream ended before the answer was complete", false)});
  }
  done_ = true;
}

// ---- stream encoding ----

StreamEncoder::StreamEncoder(StreamOptions options) : options_(std::move(options)), ids_(options_.id_seed) {}

void StreamEncoder::start(std::string& out) {
  if (started_) return;
  started_ = true;
  prefix_ = "{\"id\":";
  json::append_string(prefix_, cn::restyle_id(options_.id, cn::id_prefix::openai_completion, ids_));
  prefix_ += ",\"object\":\"chat.completion.chunk\",\"created\":";
  json::append_int(prefix_, options_.created);
  prefix_ += ",\"model\":";
  json::append_string(prefix_, options_.model);
  chunk(out, "{\"role\":\"assistant\",\"content\":\"\"}", {});
}

void StreamEncoder::chunk(std::string& out, std::string_view delta_json, std::string_view finish) {
  out += "data: ";
  out += prefix_;
  out += ",\"choices\":[{\"index\":0,\"delta\":";
  out += delta_json;
  out += ",\"logprobs\":null,\"finish_reason\":";
  if (finish.empty()) out += "null";
  else json::append_string(out, finish);
  out += "}]}\n\n";
}

void StreamEncoder::open_chunk(std::string& out) const {
  out += "data: ";
  out += prefix_;
  out += ",\"choices\":[{\"index\":0,\"delta\":";
}

void StreamEncoder::close_chunk(std::string& out) { out += ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"; }

void StreamEncoder::finish(std::string& out, cn::StopReason reason) {
  if (finished_) return;
  finished_ = true;
  chunk(out, "{}", finish_reason(reason == cn::StopReason::none ? cn::StopReason::end_turn : reason));
}

bool StreamEncoder::enter_text_block(std::uint32_t index) {
  if (text_block_ && *text_block_ == index) return false;
  text_block_ = index;
  text_ordinal_ = text_blocks_++;
  return true;
}

void StreamEncoder::encode(const cn::StreamEvent& event, std::string& out) {
  if (done_) return;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, cn::MessageStart>) {
          if (options_.model.empty()) options_.model = e.model;
          if (options_.id.empty()) options_.id = e.id;
          usage_ = e.usage;
          start(out);
        } else if constexpr (std::is_same_v<E, cn::TextDelta>) {
          start(out);
          if (e.text.empty()) return;
          open_chunk(out);
          out += "{\"content\":";
          json::append_string(out, e.text);
          // The gateway's form: a text block after the first is marked (see CitationDelta).
          if (enter_text_block(e.index) && text_ordinal_ != 0) {
            out += ",\"text_block\":";
            json::append_int(out, text_ordinal_);
          }
          out += '}';
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::CitationDelta>) {
          // No OpenAI field: the gateway's own, which OpenAI clients ignore. The block index
          // lets the ingress put the citation on the right text block.
          start(out);
          if (e.citation.empty()) return;
          open_chunk(out);
          out += "{\"citation\":";
          out += e.citation;  // JSON a decoder of this library wrote from a parsed object
          enter_text_block(e.index);
          out += ",\"text_block\":";
          json::append_int(out, text_ordinal_);
          out += '}';
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::ReasoningDelta>) {
          start(out);
          if (e.text.empty()) return;
          open_chunk(out);
          out += "{\"reasoning_content\":";
          json::append_string(out, e.text);
          out += '}';
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::SignatureDelta>) {
          start(out);
          open_chunk(out);
          out += "{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":";
          json::append_string(out, e.signature);
          out += "}]}";
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::RedactedReasoning>) {
          start(out);
          open_chunk(out);
          out += "{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":";
          json::append_string(out, e.data);
          out += "}]}";
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::ToolCallStart>) {
          start(out);
          const auto tool_index = static_cast<std::uint32_t>(tools_.size());
          tools_.emplace_back(e.index, tool_index);
          std::string delta = "{\"tool_calls\":[{\"index\":";
          json::append_int(delta, tool_index);
          delta += ",\"id\":";
          json::append_string(delta, cn::restyle_id(e.id, cn::id_prefix::openai_tool_call, ids_));
          delta += ",\"type\":\"function\",\"function\":{\"name\":";
          json::append_string(delta, e.name);
          delta += ",\"arguments\":\"\"}}]}";
          chunk(out, delta, {});
        } else if constexpr (std::is_same_v<E, cn::ToolArgsDelta>) {
          start(out);
          std::optional<std::uint32_t> tool_index;
          for (const auto& [block, ti] : tools_)
            if (block == e.index) tool_index = ti;
          if (!tool_index || e.partial_json.empty()) return;  // arguments of a call never started
          open_chunk(out);
          out += "{\"tool_calls\":[{\"index\":";
          json::append_int(out, *tool_index);
          out += ",\"function\":{\"arguments\":";
          json::append_string(out, e.partial_json);
          out += "}}]}";
          close_chunk(out);
        } else if constexpr (std::is_same_v<E, cn::MessageDelta>) {
          start(out);
          if (e.usage) usage_ = e.usage;
          finish(out, e.stop_reason);
        } else if constexpr (std::is_same_v<E, cn::MessageStop>) {
          start(out);
          finish(out, cn::StopReason::end_turn);
          if (options_.include_usage && usage_) {
            out += "data: ";
            out += prefix_;
            out += ",\"choices\":[],\"usage\":";
            write_usage(out, *usage_);
            out += "}\n\n";
          }
          out += "data: [DONE]\n\n";
          done_ = true;
        } else if constexpr (std::is_same_v<E, cn::StreamError>) {
          out += "data: ";
          out += error_body(e.error);
          out += "\n\n";
        } else if constexpr (std::is_same_v<E, cn::Ping>) {
          out += ": ping\n\n";  // an SSE comment: keeps the connection alive, ignored by clients
        }
        // BlockStop: OpenAI has no block boundaries.
      },
      event);
}

}  // namespace bulwark::api::openai
