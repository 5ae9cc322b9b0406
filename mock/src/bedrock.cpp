#include "mock/bedrock.hpp"

#include <simdjson.h>

#include <array>

#include "core/json_write.hpp"
#include "mock/anthropic.hpp"
#include "mock/answer.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "wire_util.hpp"

namespace bulwark::mock {
namespace bedrock {
namespace {

namespace dom = simdjson::dom;
namespace es = bulwark::bedrock::eventstream;
using detail::bad_json;
using detail::bad_request;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Bedrock's schema validation message for a body that does not fit the model's schema.
std::unexpected<Error> malformed(std::string_view detail) {
  return bad_request("Malformed input request: " + std::string(detail) +
                     ", please reformat your input and try again.");
}

std::unexpected<Error> not_json() {
  return bad_json("Malformed input request, please reformat your input and try again.");
}

// Rejects keys outside `allowed`, as Bedrock's per-model JSON schemas do.
std::optional<std::unexpected<Error>> extraneous(dom::object o, std::string_view where,
                                                 std::initializer_list<std::string_view> allowed) {
  for (auto field : o) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == field.key;
    if (!ok)
      return malformed(std::string(where) + ": extraneous key [" + std::string(field.key) +
                       "] is not permitted");
  }
  return std::nullopt;
}

std::optional<std::uint32_t> read_cap(dom::object o, std::string_view key, bool& bad) {
  dom::element v;
  if (o.at_key(key).get(v) != simdjson::SUCCESS || v.is_null()) return std::nullopt;
  std::int64_t n = 0;
  if (v.get_int64().get(n) != simdjson::SUCCESS || n < 1) {
    bad = true;
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(std::min<std::int64_t>(n, UINT32_MAX));
}

// Converse and Nova share the messages schema: [{role, content: [{text}|...]}] plus a
// system list of {text}.
Result<ChatRequest> decode_messages(dom::object obj, bool nova) {
  auto& d = detail::dom_decoder();
  ChatRequest req;
  req.format = "bedrock";
  dom::element v;
  if (obj.at_key("system").get(v) == simdjson::SUCCESS) {
    dom::array sys;
    if (v.get_array().get(sys) != simdjson::SUCCESS)
      return nova ? malformed("#/system: expected type: JSONArray, found: " + std::string(v.is_string() ? "String" : "JSONObject"))
                  : bad_request("1 validation error detected: Value at 'system' failed to satisfy constraint: Member must be a list");
    if (!detail::read_text_content(v, req.prompt_tokens, d.joined))
      return bad_request("The system field must be a list of {\"text\": string} blocks.");
  }
  dom::array msgs;
  if (obj.at_key("messages").get(v) != simdjson::SUCCESS)
    return nova ? malformed("#: required key [messages] not found")
                : bad_request("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null");
  if (v.get_array().get(msgs) != simdjson::SUCCESS)
    return bad_request("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must be a list");
  std::size_t i = 0;
  for (dom::element m : msgs) {
    ++i;
    dom::object mo;
    std::string_view role;
    dom::array content;
    if (m.get_object().get(mo) != simdjson::SUCCESS || mo.at_key("role").get(v) != simdjson::SUCCESS ||
        v.get_string().get(role) != simdjson::SUCCESS || (role != "user" && role != "assistant"))
      return bad_request("1 validation error detected: Value at 'messages." + std::to_string(i) +
                         ".member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]");
    if (mo.at_key("content").get(v) != simdjson::SUCCESS || v.get_array().get(content) != simdjson::SUCCESS)
      return bad_request("1 validation error detected: Value at 'messages." + std::to_string(i) +
                         ".member.content' failed to satisfy constraint: Member must be a list");
    if (!detail::read_text_content(v, req.prompt_tokens, d.joined))
      return bad_request("The content of message " + std::to_string(i) + " is not valid.");
    req.last_is_assistant = role == "assistant";
  }
  if (i == 0) return bad_request("A conversation must start with a user message. Try again with a conversation that starts with a user message.");
  if (req.last_is_assistant) req.last_content = d.joined;

  const std::string_view cap_key = nova ? "max_new_tokens" : "maxTokens";
  if (obj.at_key("inferenceConfig").get(v) == simdjson::SUCCESS) {
    dom::object cfg;
    if (v.get_object().get(cfg) != simdjson::SUCCESS)
      return bad_request("inferenceConfig must be an object.");
    if (nova)
      if (auto e = extraneous(cfg, "#/inferenceConfig",
                              {"max_new_tokens", "temperature", "top_p", "top_k", "stopSequences",
                               "reasoningConfig"}))
        return *e;
    bool bad = false;
    req.max_tokens = read_cap(cfg, cap_key, bad);
    if (bad)
      return bad_request("1 validation error detected: Value at 'inferenceConfig." +
                         std::string(cap_key) + "' failed to satisfy constraint: Member must have value greater than or equal to 1");
  }
  // Claude on Converse: additionalModelRequestFields.thinking, in Anthropic's spelling.
  if (dom::object th; obj.at_key("additionalModelRequestFields").at_key("thinking").get_object().get(th) == simdjson::SUCCESS) {
    std::string_view type;
    req.thinking = th.at_key("type").get_string().get(type) == simdjson::SUCCESS && type == "enabled";
  }
  return req;
}

void append_metrics(std::string& out, const Plan& p) {
  const auto gen = p.token_delay * (p.completion_tokens > 0 ? p.completion_tokens - 1 : 0);
  json::append_int(out, (p.latency + p.first_token + gen).count());
}

void append_invocation_metrics(std::string& out, const Plan& p) {
  out += "\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":";
  json::append_int(out, p.prompt_tokens);
  out += ",\"outputTokenCount\":";
  json::append_int(out, p.completion_tokens);
  out += ",\"invocationLatency\":";
  append_metrics(out, p);
  out += ",\"firstByteLatency\":";
  json::append_int(out, (p.latency + p.first_token).count());
  out += '}';
}

// Real Bedrock pads every stream payload with "p" so that sizes leak nothing.
constexpr std::string_view kPad = ",\"p\":\"abcdefghijklmnop\"}";

void frame(std::string& out, std::string_view event_type, std::string payload) {
  auto r = es::encode_to(es::make_event(event_type, std::move(payload)), out);
  (void)r;  // our names and payloads are far below every limit
}

void exception_frame(std::string& out, std::string_view exception_type, std::string payload) {
  auto r = es::encode_to(es::make_exception(exception_type, std::move(payload)), out);
  (void)r;
}

std::string_view converse_stop(const Plan& p) noexcept {
  return p.max_tokens_reached ? "max_tokens" : "end_turn";
}

}  // namespace

std::string_view Route::api_name() const noexcept {
  switch (api) {
    case Api::converse: return "converse";
    case Api::converse_stream: return "converse-stream";
    case Api::invoke: return "invoke";
    case Api::invoke_stream: return "invoke-with-response-stream";
  }
  return "converse";
}

std::optional<Route> parse_route(std::string_view path, bool* known_operation) {
  if (known_operation) *known_operation = false;
  constexpr std::string_view kPrefix = "/model/";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  const auto rest = path.substr(kPrefix.size());
  const auto slash = rest.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const auto op = rest.substr(slash + 1);
  Route r;
  if (op == "converse") r.api = Api::converse;
  else if (op == "converse-stream") r.api = Api::converse_stream;
  else if (op == "invoke") r.api = Api::invoke;
  else if (op == "invoke-with-response-stream") r.api = Api::invoke_stream;
  else return std::nullopt;
  if (known_operation) *known_operation = true;
  r.model_id = percent_decode(rest.substr(0, slash));
  return r;
}

Family family_of(std::string_view id) noexcept {
  // An ARN (foundation model, inference profile) names the model after its last '/'.
  if (const auto slash = id.rfind('/'); slash != std::string_view::npos) id = id.substr(slash + 1);
  auto has = [&](std::string_view f) {
    if (id.starts_with(f)) return true;
    // A cross-region inference profile prefixes a region group: "us.", "eu.", "apac.", ...
    const auto dot = id.find('.');
    return dot != std::string_view::npos && id.substr(dot + 1).starts_with(f);
  };
  if (has("anthropic.")) return Family::anthropic;
  if (has("meta.")) return Family::meta;
  if (has("amazon.titan-text")) return Family::titan_text;
  if (has("amazon.nova")) return Family::nova;
  return Family::unknown;
}

std::string_view name_of(Family f) noexcept {
  switch (f) {
    case Family::anthropic: return "anthropic";
    case Family::meta: return "meta";
    case Family::titan_text: return "amazon.titan-text";
    case Family::nova: return "amazon.nova";
    case Family::unknown: break;
  }
  return "unknown";
}

std::string_view http_exception(ErrorType type, int status) noexcept {
  switch (status) {
    case 400: return "ValidationException";
    case 401:
    case 403: return "AccessDeniedException";
    case 404: return "ResourceNotFoundException";
    case 408: return "ModelTimeoutException";
    case 424: return "ModelErrorException";
    case 429: return type == ErrorType::model_not_ready ? "ModelNotReadyException" : "ThrottlingException";
    case 500: return "InternalServerException";
    case 503: return "ServiceUnavailableException";
    default: break;
  }
  switch (type) {
    case ErrorType::rate_limit: return "ThrottlingException";
    case ErrorType::overloaded:
    case ErrorType::unavailable: return "ServiceUnavailableException";
    case ErrorType::server_error:
    case ErrorType::bad_gateway: return "InternalServerException";
    case ErrorType::context_length:
    case ErrorType::content_filter:
    case ErrorType::invalid_request: return "ValidationException";
    case ErrorType::auth:
    case ErrorType::permission: return "AccessDeniedException";
    case ErrorType::not_found: return "ResourceNotFoundException";
    case ErrorType::model_timeout: return "ModelTimeoutException";
    case ErrorType::model_error: return "ModelErrorException";
    case ErrorType::model_not_ready: return "ModelNotReadyException";
  }
  return status >= 500 ? "InternalServerException" : "ValidationException";
}

std::string_view stream_exception(ErrorType type) noexcept {
  switch (type) {
    case ErrorType::rate_limit:
    case ErrorType::model_not_ready: return "throttlingException";
    case ErrorType::overloaded:
    case ErrorType::unavailable: return "serviceUnavailableException";
    case ErrorType::server_error:
    case ErrorType::bad_gateway: return "internalServerException";
    case ErrorType::model_error: return "modelStreamErrorException";
    case ErrorType::model_timeout: return "modelTimeoutException";
    case ErrorType::context_length:
    case ErrorType::content_filter:
    case ErrorType::invalid_request:
    case ErrorType::auth:
    case ErrorType::permission:
    case ErrorType::not_found: return "validationException";
  }
  return "internalServerException";
}

std::string_view stock_message(std::string_view e) noexcept {
  // Compared without the first letter's case: HTTP and stream names differ only there.
  auto is = [&](std::string_view name) { return e.size() == name.size() && e.substr(1) == name.substr(1); };
  if (is("ThrottlingException")) return "Too many requests, please wait before trying again.";
  if (is("ServiceUnavailableException")) return "Bedrock is unable to process your request.";
  if (is("InternalServerException"))
    return "The system encountered an unexpected error during processing. Try your request again.";
  if (is("ModelStreamErrorException"))
    return "The model encountered an error while streaming the response. Try your request again.";
  if (is("ModelTimeoutException"))
    return "Model has timed out in processing the request. Try your request again.";
  if (is("ModelErrorException")) return "The model returned an error. Try your request again.";
  if (is("ModelNotReadyException"))
    return "Model is not ready to serve inference requests. The AWS SDK will automatically retry the operation up to 5 times. For information about configuring automatic retries, see Retry behavior in the AWS SDKs and Tools reference guide.";
  if (is("AccessDeniedException")) return "You don't have access to the model with the specified model ID.";
  if (is("ResourceNotFoundException")) return "Could not resolve the foundation model from the provided model identifier.";
  return "The provided request is not valid.";
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const auto left = bytes.size() - i; left > 0) {
    const std::uint32_t v = at(i) << 16 | (left == 2 ? at(i + 1) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace bedrock

// ---- Shared ----

int BedrockFormatBase::error_status(const Plan& p) const {
  // Bedrock answers bad credentials with 403, never 401.
  return p.status == 401 ? 403 : p.status;
}

void BedrockFormatBase::append_plan_error(std::string& out, const Plan& p) const {
  const auto name = p.provider_type.empty() ? bedrock::http_exception(p.error, error_status(p))
                                            : p.provider_type;
  std::string_view msg = p.message;
  if (p.error == ErrorType::context_length) msg = "Input is too long for requested model.";
  out += "{\"message\":";
  json::append_string(out, msg.empty() ? bedrock::stock_message(name) : msg);
  out += '}';
}

void BedrockFormatBase::append_error(std::string& out, ErrorType type, std::string_view message) const {
  const auto name = bedrock::http_exception(type, default_status(type));
  out += "{\"message\":";
  json::append_string(out, message.empty() ? bedrock::stock_message(name) : message);
  out += '}';
}

void BedrockFormatBase::append_models(std::string& out, std::span<const std::string> names,
                                      std::int64_t) const {
  // Bedrock's ListFoundationModels lives on the control plane; the mock has no route for
  // it, but the shape is kept for completeness.
  out += "{\"modelSummaries\":[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += "{\"modelId\":";
    json::append_string(out, names[i]);
    out += '}';
  }
  out += "]}";
}

void BedrockFormatBase::append_headers(std::string& out, const ResponseInfo& info) const {
  // x-amzn-RequestId is a UUID; derive one from the answer id.
  std::string hex;
  detail::append_hex16(hex, info.id);
  detail::append_hex16(hex, info.id * 0x9e3779b97f4a7c15ULL + 1);
  out += "\r\nx-amzn-RequestId: ";
  out.append(hex, 0, 8);
  out += '-';
  out.append(hex, 8, 4);
  out += "-4";
  out.append(hex, 13, 3);
  out += "-8";
  out.append(hex, 17, 3);
  out += '-';
  out.append(hex, 20, 12);
  if (info.error) {
    out += "\r\nx-amzn-ErrorType: ";
    if (!info.provider_type.empty()) out += info.provider_type;
    else out += bedrock::http_exception(*info.error, info.status);
  }
}

void BedrockFormatBase::append_stream_error(std::string& out, const Plan& p, const AnswerMeta&) const {
  const auto name = bedrock::stream_exception(p.error);
  std::string payload = "{\"message\":";
  json::append_string(payload, p.message.empty() ? bedrock::stock_message(name) : p.message);
  if (name == "modelStreamErrorException") {
    payload += ",\"originalStatusCode\":";
    json::append_int(payload, p.status);
    payload += ",\"originalMessage\":\"Internal server error\"";
  }
  payload += '}';
  bedrock::exception_frame(out, name, std::move(payload));
}

// ---- Converse ----

Result<ChatRequest> BedrockConverseFormat::decode_chat(std::string_view body) const {
  auto& d = detail::dom_decoder();
  simdjson::dom::element doc;
  if (d.parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS)
    return bedrock::not_json();
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS)
    return detail::bad_request("The request body must be a JSON object.");
  return bedrock::decode_messages(obj, false);
}

std::size_t BedrockConverseFormat::append_completion(std::string& out, const Plan& p,
                                                     const AnswerMeta& m) const {
  out += R"({"output":{"message":{"role":"assistant","content":[)";
  if (m.thinking) {
    out += R"({"reasoningContent":{"reasoningText":{"text":)";
    json::append_string(out, kThinkingText);
    out += ",\"signature\":";
    json::append_string(out, kThinkingSignature);
    out += "}}},";
  }
  out += R"({"text":")";
  const std::size_t cut_at = detail::append_answer_text(out, p, p.after_tokens);
  out += "\"}]}},\"stopReason\":\"";
  out += bedrock::converse_stop(p);
  out += "\",\"usage\":{\"inputTokens\":";
  json::append_int(out, p.prompt_tokens);
  out += ",\"outputTokens\":";
  json::append_int(out, p.completion_tokens);
  out += ",\"totalTokens\":";
  json::append_int(out, p.prompt_tokens + p.completion_tokens);
  out += "},\"metrics\":{\"latencyMs\":";
  bedrock::append_metrics(out, p);
  out += "}}";
  return cut_at;
}

void BedrockConverseFormat::append_stream_open(std::string& out, const Plan&, const AnswerMeta& m) const {
  bedrock::frame(out, "messageStart", std::string(R"({"role":"assistant")") + std::string(bedrock::kPad));
  if (!m.thinking) return;
  // Claude's reasoning on ConverseStream: text deltas, then the signature, in block 0.
  std::string payload = R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"text":)";
  json::append_string(payload, kThinkingText);
  payload += "}}";
  payload += bedrock::kPad;
  bedrock::frame(out, "contentBlockDelta", std::move(payload));
  payload = R"({"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":)";
  json::append_string(payload, kThinkingSignature);
  payload += "}}";
  payload += bedrock::kPad;
  bedrock::frame(out, "contentBlockDelta", std::move(payload));
  bedrock::frame(out, "contentBlockStop", std::string(R"({"contentBlockIndex":0)") + std::string(bedrock::kPad));
}

void BedrockConverseFormat::append_stream_token(std::string& out, const AnswerMeta& m,
                                                std::string_view text, bool, std::uint32_t) const {
  if (text.empty()) return;
  std::string payload = m.thinking ? R"({"contentBlockIndex":1,"delta":{"text":)" : R"({"contentBlockIndex":0,"delta":{"text":)";
  json::append_string(payload, text);
  payload += '}';
  payload += bedrock::kPad;
  bedrock::frame(out, "contentBlockDelta", std::move(payload));
}

void BedrockConverseFormat::append_stream_close(std::string& out, const Plan& p, const AnswerMeta& m,
                                                bool omit_done) const {
  bedrock::frame(out, "contentBlockStop", std::string(m.thinking ? R"({"contentBlockIndex":1)" : R"({"contentBlockIndex":0)") + std::string(bedrock::kPad));
  if (omit_done) return;
  std::string payload = "{\"stopReason\":\"";
  payload += bedrock::converse_stop(p);
  payload += '"';
  payload += bedrock::kPad;
  bedrock::frame(out, "messageStop", std::move(payload));
  payload = "{\"usage\":{\"inputTokens\":";
  json::append_int(payload, p.prompt_tokens);
  payload += ",\"outputTokens\":";
  json::append_int(payload, p.completion_tokens);
  payload += ",\"totalTokens\":";
  json::append_int(payload, p.prompt_tokens + p.completion_tokens);
  payload += "},\"metrics\":{\"latencyMs\":";
  bedrock::append_metrics(payload, p);
  payload += '}';
  payload += bedrock::kPad;
  bedrock::frame(out, "metadata", std::move(payload));
}

void BedrockConverseFormat::append_stream_malformed(std::string& out, const AnswerMeta&) const {
  // A correctly framed event (CRCs fine) whose JSON payload is cut off.
  bedrock::frame(out, "contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":)");
}

// ---- InvokeModel ----

Result<ChatRequest> BedrockInvokeFormat::decode_chat(std::string_view body) const {
  using bedrock::Family;
  if (family_ == Family::anthropic) return anthropic::decode(body, anthropic::Dialect::bedrock);
  auto& d = detail::dom_decoder();
  simdjson::dom::element doc;
  if (d.parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS)
    return bedrock::not_json();
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS)
    return bedrock::malformed("#: expected type: JSONObject");
  if (family_ == Family::nova) {
    if (auto e = bedrock::extraneous(obj, "#", {"schemaVersion", "messages", "system",
                                                "inferenceConfig", "toolConfig"}))
      return *e;
    return bedrock::decode_messages(obj, true);
  }

  ChatRequest req;
  req.format = "bedrock";
  simdjson::dom::element v;
  std::string_view prompt;
  bool bad = false;
  if (family_ == Family::meta) {
    if (auto e = bedrock::extraneous(obj, "#", {"prompt", "max_gen_len", "temperature", "top_p", "images"}))
      return *e;
    if (obj.at_key("prompt").get(v) != simdjson::SUCCESS) return bedrock::malformed("#: required key [prompt] not found");
    if (v.get_string().get(prompt) != simdjson::SUCCESS) return bedrock::malformed("#/prompt: expected type: String");
    req.max_tokens = bedrock::read_cap(obj, "max_gen_len", bad);
    if (bad) return bedrock::malformed("#/max_gen_len: expected minimum: 1");
  } else if (family_ == Family::titan_text) {
    if (auto e = bedrock::extraneous(obj, "#", {"inputText", "textGenerationConfig"})) return *e;
    if (obj.at_key("inputText").get(v) != simdjson::SUCCESS) return bedrock::malformed("#: required key [inputText] not found");
    if (v.get_string().get(prompt) != simdjson::SUCCESS) return bedrock::malformed("#/inputText: expected type: String");
    if (obj.at_key("textGenerationConfig").get(v) == simdjson::SUCCESS) {
      simdjson::dom::object cfg;
      if (v.get_object().get(cfg) != simdjson::SUCCESS)
        return bedrock::malformed("#/textGenerationConfig: expected type: JSONObject");
      if (auto e = bedrock::extraneous(cfg, "#/textGenerationConfig",
                                       {"maxTokenCount", "temperature", "topP", "stopSequences"}))
        return *e;
      req.max_tokens = bedrock::read_cap(cfg, "maxTokenCount", bad);
      if (bad) return bedrock::malformed("#/textGenerationConfig/maxTokenCount: expected minimum: 1");
    }
  } else {
    return detail::bad_request("The provided model identifier is invalid (bulwark-mock emulates InvokeModel "
                       "bodies only for anthropic., meta., amazon.titan-text and amazon.nova models).");
  }
  req.prompt_tokens = count_words(prompt);
  return req;
}

std::size_t BedrockInvokeFormat::append_completion(std::string& out, const Plan& p,
                                                   const AnswerMeta& m) const {
  using bedrock::Family;
  std::size_t cut_at = 0;
  switch (family_) {
    case Family::anthropic: return anthropic::append_message(out, p, m, "msg_bdrk_");
    case Family::meta:
      out += "{\"generation\":\"";
      cut_at = detail::append_answer_text(out, p, p.after_tokens);
      out += "\",\"prompt_token_count\":";
      json::append_int(out, p.prompt_tokens);
      out += ",\"generation_token_count\":";
      json::append_int(out, p.completion_tokens);
      out += ",\"stop_reason\":\"";
      out += p.max_tokens_reached ? "length" : "stop";
      out += "\"}";
      return cut_at;
    case Family::titan_text:
      out += "{\"inputTextTokenCount\":";
      json::append_int(out, p.prompt_tokens);
      out += ",\"results\":[{\"tokenCount\":";
      json::append_int(out, p.completion_tokens);
      out += ",\"outputText\":\"";
      cut_at = detail::append_answer_text(out, p, p.after_tokens);
      out += "\",\"completionReason\":\"";
      out += p.max_tokens_reached ? "LENGTH" : "FINISH";
      out += "\"}]}";
      return cut_at;
    case Family::nova:
    case Family::unknown:
      break;
  }
  out += R"({"output":{"message":{"role":"assistant","content":[{"text":")";
  cut_at = detail::append_answer_text(out, p, p.after_tokens);
  out += "\"}]}},\"stopReason\":\"";
  out += bedrock::converse_stop(p);
  out += "\",\"usage\":{\"inputTokens\":";
  json::append_int(out, p.prompt_tokens);
  out += ",\"outputTokens\":";
  json::append_int(out, p.completion_tokens);
  out += ",\"totalTokens\":";
  json::append_int(out, p.prompt_tokens + p.completion_tokens);
  out += "}}";
  return cut_at;
}

void BedrockInvokeFormat::append_chunk(std::string& out, std::string_view json) const {
  std::string payload = "{\"bytes\":\"";
  payload += bedrock::base64(json);
  payload += '"';
  payload += bedrock::kPad;
  bedrock::frame(out, "chunk", std::move(payload));
}

void BedrockInvokeFormat::append_stream_open(std::string& out, const Plan& p, const AnswerMeta& m) const {
  std::string j;
  switch (family_) {
    case bedrock::Family::anthropic:
      anthropic::append_message_start(j, p, m, "msg_bdrk_");
      append_chunk(out, j);
      if (m.thinking)
        for (const std::string& e : anthropic::thinking_events()) append_chunk(out, e);
      j.clear();
      anthropic::append_block_start(j, m.thinking ? 1 : 0);
      append_chunk(out, j);
      if (!m.citation.empty()) {
        j.clear();
        anthropic::append_citations_delta(j, m);
        append_chunk(out, j);
      }
      return;
    case bedrock::Family::nova:
      append_chunk(out, R"({"messageStart":{"role":"assistant"}})");
      return;
    default: return;  // meta and titan start with their first token
  }
}

void BedrockInvokeFormat::append_stream_token(std::string& out, const AnswerMeta& m,
                                              std::string_view text, bool first,
                                              std::uint32_t index) const {
  if (text.empty()) return;
  std::string j;
  switch (family_) {
    case bedrock::Family::anthropic: anthropic::append_text_delta(j, text, m.thinking ? 1 : 0); break;
    case bedrock::Family::meta:
      j += "{\"generation\":";
      json::append_string(j, text);
      j += ",\"prompt_token_count\":";
      if (first) json::append_int(j, m.prompt_tokens);
      else j += "null";
      j += ",\"generation_token_count\":";
      json::append_int(j, index + 1);
      j += ",\"stop_reason\":null}";
      break;
    case bedrock::Family::titan_text:
      j += "{\"outputText\":";
      json::append_string(j, text);
      j += ",\"index\":0,\"totalOutputTextTokenCount\":";
      json::append_int(j, index + 1);
      j += ",\"completionReason\":null,\"inputTextTokenCount\":";
      json::append_int(j, m.prompt_tokens);
      j += '}';
      break;
    case bedrock::Family::nova:
    case bedrock::Family::unknown:
      j += R"({"contentBlockDelta":{"delta":{"text":)";
      json::append_string(j, text);
      j += "},\"contentBlockIndex\":0}}";
      break;
  }
  append_chunk(out, j);
}

void BedrockInvokeFormat::append_stream_close(std::string& out, const Plan& p, const AnswerMeta& m,
                                              bool omit_done) const {
  std::string j;
  switch (family_) {
    case bedrock::Family::anthropic:
      anthropic::append_block_stop(j, m.thinking ? 1 : 0);
      append_chunk(out, j);
      j.clear();
      anthropic::append_message_delta(j, p);
      append_chunk(out, j);
      if (omit_done) return;
      j = "{\"type\":\"message_stop\",";
      bedrock::append_invocation_metrics(j, p);
      j += '}';
      append_chunk(out, j);
      return;
    case bedrock::Family::meta:
      if (omit_done) return;
      j = "{\"generation\":\"\",\"prompt_token_count\":null,\"generation_token_count\":";
      json::append_int(j, p.completion_tokens);
      j += ",\"stop_reason\":\"";
      j += p.max_tokens_reached ? "length" : "stop";
      j += "\",";
      bedrock::append_invocation_metrics(j, p);
      j += '}';
      append_chunk(out, j);
      return;
    case bedrock::Family::titan_text:
      if (omit_done) return;
      j = "{\"outputText\":\"\",\"index\":0,\"totalOutputTextTokenCount\":";
      json::append_int(j, p.completion_tokens);
      j += ",\"completionReason\":\"";
      j += p.max_tokens_reached ? "LENGTH" : "FINISH";
      j += "\",\"inputTextTokenCount\":";
      json::append_int(j, p.prompt_tokens);
      j += ',';
      bedrock::append_invocation_metrics(j, p);
      j += '}';
      append_chunk(out, j);
      return;
    case bedrock::Family::nova:
    case bedrock::Family::unknown:
      append_chunk(out, R"({"contentBlockStop":{"contentBlockIndex":0}})");
      if (omit_done) return;
      j = "{\"messageStop\":{\"stopReason\":\"";
      j += bedrock::converse_stop(p);
      j += "\"}}";
      append_chunk(out, j);
      j = "{\"metadata\":{\"usage\":{\"inputTokens\":";
      json::append_int(j, p.prompt_tokens);
      j += ",\"outputTokens\":";
      json::append_int(j, p.completion_tokens);
      j += "},\"metrics\":{},\"trace\":{}},";
      bedrock::append_invocation_metrics(j, p);
      j += '}';
      append_chunk(out, j);
      return;
  }
}

void BedrockInvokeFormat::append_stream_malformed(std::string& out, const AnswerMeta&) const {
  // The event and its {"bytes"} wrapper are fine; the model's chunk inside is cut off.
  switch (family_) {
    case bedrock::Family::anthropic:
      append_chunk(out, R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)");
      return;
    case bedrock::Family::meta: append_chunk(out, R"({"generation":)"); return;
    case bedrock::Family::titan_text: append_chunk(out, R"({"outputText":)"); return;
    default: append_chunk(out, R"({"contentBlockDelta":{"delta":{"text":)"); return;
  }
}

void BedrockInvokeFormat::append_headers(std::string& out, const ResponseInfo& info) const {
  BedrockFormatBase::append_headers(out, info);
  if (info.error || info.stream || !info.plan) return;
  const Plan& p = *info.plan;
  out += "\r\nx-amzn-bedrock-input-token-count: ";
  json::append_int(out, p.prompt_tokens);
  out += "\r\nx-amzn-bedrock-output-token-count: ";
  json::append_int(out, p.completion_tokens);
  out += "\r\nx-amzn-bedrock-invocation-latency: ";
  bedrock::append_metrics(out, p);
}

}  // namespace bulwark::mock
