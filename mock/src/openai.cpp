#include "mock/openai.hpp"

#include <simdjson.h>

#include "mock/answer.hpp"
#include "core/json_write.hpp"

namespace bulwark::mock {
namespace {

namespace od = simdjson::ondemand;

constexpr std::string_view kBadJson =
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)";

struct Decoder {
  od::parser parser;
  std::string padded;   // body copy with simdjson's padding
  std::string joined;   // text parts of an array content, concatenated
};

Decoder& decoder() {
  thread_local Decoder d;
  return d;
}

std::unexpected<Error> bad_json() { return std::unexpected(Error::client(ErrorKind::invalid_json, std::string(kBadJson))); }
std::unexpected<Error> bad_request(std::string msg, std::string param = {}) {
  return std::unexpected(Error::client(ErrorKind::bad_request, std::move(msg), std::move(param)));
}

void append_hex(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 0xf];
    v >>= 4;
  }
  out.append(buf, 16);
}

// Appends the text of tokens first..n, dropping `skip` bytes of the first one.
void append_text(std::string& out, const Plan& p, std::uint32_t count, std::size_t* cut_at,
                 std::uint32_t cut_tokens) {
  const std::size_t start = out.size();
  std::uint32_t sent = 0;
  if (cut_at && cut_tokens == 0) *cut_at = out.size();
  for (std::uint32_t i = p.resume.first_token; i <= p.tokens && sent < count; ++i, ++sent) {
    append_token(out, i, p.tokens);
    if (i == p.resume.first_token && p.resume.skip_chars)
      out.erase(start, p.resume.skip_chars);
    if (cut_at && sent + 1 == cut_tokens) *cut_at = out.size();
  }
  if (cut_at && cut_tokens > sent) *cut_at = out.size();
}

void append_chunk_head(std::string& out, const AnswerMeta& m) {
  out += "data: {\"id\":\"chatcmpl-";
  append_hex(out, m.id);
  out += "\",\"object\":\"chat.completion.chunk\",\"created\":";
  json::append_int(out, m.created);
  out += ",\"model\":";
  json::append_string(out, m.model);
  out += ",\"system_fingerprint\":\"";
  out += OpenAIFormat::kSystemFingerprint;
  out += "\",\"choices\":[";
}

void append_chunk_tail(std::string& out, const AnswerMeta& m) {
  out += m.include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";
}

// A tool call up to its arguments' value: {"index":0,"id":"call_…","type":"function",
// "function":{"name":…,"arguments":
void append_tool_call_head(std::string& out, const AnswerMeta& m, const ToolCall& call) {
  out += "{\"index\":0,\"id\":\"call_";
  append_hex(out, m.id);
  out += "\",\"type\":\"function\",\"function\":{\"name\":";
  json::append_string(out, call.name);
  out += ",\"arguments\":";
}

void append_usage(std::string& out, const Plan& p) {
  out += "{\"prompt_tokens\":";
  json::append_int(out, p.prompt_tokens);
  out += ",\"completion_tokens\":";
  json::append_int(out, p.completion_tokens);
  out += ",\"total_tokens\":";
  json::append_int(out, p.prompt_tokens + p.completion_tokens);
  out += '}';
}

struct ErrorText {
  std::string_view message;
  std::string_view type;
  std::string_view code;  // raw JSON: a quoted string, a number or null
};

ErrorText error_text(ErrorType t) {
  switch (t) {
    case ErrorType::rate_limit:
      return {"Rate limit reached for requests per min (RPM). Please try again later.",
              "requests", "\"rate_limit_exceeded\""};
    case ErrorType::overloaded:
      return {"That model is currently overloaded with other requests. You can retry your "
              "request, or contact us through our help center at help.openai.com if the error "
              "persists.",
              "server_error", "null"};
    case ErrorType::server_error:
      return {"The server had an error while processing your request. Sorry about that!",
              "server_error", "null"};
    case ErrorType::bad_gateway:
      // What OpenAI's edge returns: the type is Cloudflare's and the code a number.
      return {"Bad gateway.", "cf_bad_gateway", "502"};
    case ErrorType::unavailable:
      return {"The server is currently unavailable. Please try again later.", "server_error",
              "null"};
    case ErrorType::context_length:
      return {"This model's maximum context length was exceeded. Please reduce the length of "
              "the messages.",
              "invalid_request_error", "\"context_length_exceeded\""};
    case ErrorType::content_filter:
      return {"The response was filtered due to the prompt triggering content management "
              "policy. Please modify your prompt and retry.",
              "invalid_request_error", "\"content_filter\""};
    case ErrorType::invalid_request:
      return {"Invalid request.", "invalid_request_error", "null"};
    case ErrorType::auth:
      return {"Incorrect API key provided.", "invalid_request_error", "\"invalid_api_key\""};
    case ErrorType::permission:
      return {"You are not allowed to access this model.", "invalid_request_error",
              "\"permission_denied\""};
    case ErrorType::not_found:
      return {"The model does not exist or you do not have access to it.",
              "invalid_request_error", "\"model_not_found\""};
    case ErrorType::model_timeout:
      return {"Request timed out.", "server_error", "\"timeout\""};
    case ErrorType::model_error:
      return {"The model produced an error while processing your request.", "server_error",
              "null"};
    case ErrorType::model_not_ready:
      return {"The model is not ready to serve requests yet. Please try again later.",
              "server_error", "null"};
  }
  return {"The server had an error while processing your request.", "server_error", "null"};
}

}  // namespace

Result<ChatRequest> OpenAIFormat::decode_chat(std::string_view body) const {
  Decoder& d = decoder();
  d.padded.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  d.padded.assign(body);
  od::document doc;
  if (d.parser.iterate(simdjson::padded_string_view(d.padded.data(), d.padded.size(),
                                                    d.padded.capacity()))
          .get(doc))
    return bad_json();
  od::object obj;
  if (auto e = doc.get_object().get(obj)) {
    if (e == simdjson::INCORRECT_TYPE) return bad_request("The request body must be a JSON object.");
    return bad_json();
  }

  ChatRequest req;
  bool have_model = false;
  bool have_messages = false;
  for (auto field_result : obj) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return bad_json();
    auto&& val = field.value();
    od::json_type type;
    if (val.type().get(type)) return bad_json();
    if (key == "model") {
      if (type != od::json_type::string || val.get_string().get(req.model))
        return bad_request("model must be a string.", "model");
      have_model = true;
    } else if (key == "stream") {
      if (type == od::json_type::null) continue;
      if (type != od::json_type::boolean || val.get_bool().get(req.stream))
        return bad_request("stream must be a boolean.", "stream");
    } else if (key == "stream_options") {
      if (type == od::json_type::null) continue;
      od::object opts;
      if (type != od::json_type::object || val.get_object().get(opts))
        return bad_request("stream_options must be an object.", "stream_options");
      for (auto opt_result : opts) {
        od::field opt;
        std::string_view okey;
        if (std::move(opt_result).get(opt) || opt.unescaped_key().get(okey)) return bad_json();
        if (okey != "include_usage") continue;
        auto&& ov = opt.value();
        bool b = false;
        if (ov.get_bool().get(b))
          return bad_request("stream_options.include_usage must be a boolean.", "stream_options");
        req.include_usage = b;
      }
    } else if (key == "messages") {
      od::array msgs;
      if (type != od::json_type::array || val.get_array().get(msgs))
        return bad_request("messages must be an array.", "messages");
      have_messages = true;
      for (auto msg_result : msgs) {
        od::object msg;
        if (msg_result.get(msg)) return bad_request("Each message must be an object.", "messages");
        std::string_view role;
        std::string_view content;
        for (auto mf_result : msg) {
          od::field mf;
          std::string_view mkey;
          if (std::move(mf_result).get(mf) || mf.unescaped_key().get(mkey)) return bad_json();
          auto&& mv = mf.value();
          if (mkey == "role") {
            if (mv.get_string().get(role)) return bad_request("role must be a string.", "messages");
          } else if (mkey == "content") {
            od::json_type ct;
            if (mv.type().get(ct)) return bad_json();
            if (ct == od::json_type::string) {
              if (mv.get_string().get(content)) return bad_json();
              req.prompt_tokens += count_words(content);
            } else if (ct == od::json_type::array) {
              d.joined.clear();
              od::array parts;
              if (mv.get_array().get(parts)) return bad_json();
              for (auto part_result : parts) {
                od::object part;
                if (part_result.get(part))
                  return bad_request("Each content part must be an object.", "messages");
                for (auto pf_result : part) {
                  od::field pf;
                  std::string_view pkey;
                  if (std::move(pf_result).get(pf) || pf.unescaped_key().get(pkey)) return bad_json();
                  if (pkey != "text") continue;
                  std::string_view text;
                  if (pf.value().get_string().get(text))
                    return bad_request("A text part's text must be a string.", "messages");
                  req.prompt_tokens += count_words(text);
                  d.joined += text;
                }
              }
              content = d.joined;
            } else if (ct != od::json_type::null) {
              return bad_request("content must be a string, an array of parts or null.", "messages");
            }
          }
        }
        req.last_is_assistant = role == "assistant";
        req.last_content = req.last_is_assistant ? content : std::string_view{};
      }
    }
  }
  // Anything after the object (a second value, garbage) makes the body invalid.
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) return bad_json();
  if (!have_model) return bad_request("you must provide a model parameter", "model");
  if (!have_messages) return bad_request("Missing required parameter: 'messages'.", "messages");
  return req;
}

std::size_t OpenAIFormat::append_completion(std::string& out, const Plan& p,
                                            const AnswerMeta& m) const {
  out += "{\"id\":\"chatcmpl-";
  append_hex(out, m.id);
  out += "\",\"object\":\"chat.completion\",\"created\":";
  json::append_int(out, m.created);
  out += ",\"model\":";
  json::append_string(out, m.model);
  std::size_t cut_at = 0;
  if (p.tool_call) {
    // One tool call, its arguments whole; a cut, stall or malformed answer stops after the
    // first after_tokens fragments of its arguments.
    const bool legacy = p.tool_call->legacy;
    out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,";
    if (legacy) {
      out += "\"function_call\":{\"name\":";
      json::append_string(out, p.tool_call->name);
      out += ",\"arguments\":";
    } else {
      out += "\"tool_calls\":[";
      append_tool_call_head(out, m, *p.tool_call);
    }
    out += '"';
    cut_at = out.size();
    for (std::size_t i = 0; i < p.tool_call->arguments.size(); ++i) {
      json::append_escaped(out, p.tool_call->arguments[i]);  // escaping a whole is escaping its parts
      if (i < p.after_tokens) cut_at = out.size();
    }
    out += '"';
    out += legacy ? "},\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"function_call\"}],\"usage\":"
                  : "}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":";
  } else {
    out += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"";
    append_text(out, p, p.completion_tokens, &cut_at, p.after_tokens);
    out += "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":";
  }
  append_usage(out, p);
  out += ",\"system_fingerprint\":\"";
  out += kSystemFingerprint;
  out += "\"}";
  return cut_at;
}

void OpenAIFormat::append_stream_open(std::string&, const Plan&, const AnswerMeta&) const {
  // OpenAI has no opening event: the first content chunk carries the role.
}

void OpenAIFormat::append_stream_token(std::string& out, const AnswerMeta& m, std::string_view text,
                                       bool first, std::uint32_t) const {
  append_chunk_head(out, m);
  out += first ? "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
               : "{\"index\":0,\"delta\":{\"content\":";
  json::append_string(out, text);
  out += "},\"logprobs\":null,\"finish_reason\":null}";
  append_chunk_tail(out, m);
}

void OpenAIFormat::append_stream_tool_fragment(std::string& out, const AnswerMeta& m, const ToolCall& call,
                                               std::uint32_t index) const {
  append_chunk_head(out, m);
  if (call.legacy) {
    out += index == 0 ? "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"function_call\":{\"name\":"
                      : "{\"index\":0,\"delta\":{\"function_call\":{";
    if (index == 0) {
      json::append_string(out, call.name);
      out += ',';
    }
    out += "\"arguments\":";
  } else if (index == 0) {
    out += "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[";
    append_tool_call_head(out, m, call);
  } else {
    out += "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":";
  }
  json::append_string(out, index < call.arguments.size() ? std::string_view(call.arguments[index]) : std::string_view());
  out += call.legacy ? "}},\"logprobs\":null,\"finish_reason\":null}" : "}}]},\"logprobs\":null,\"finish_reason\":null}";
  append_chunk_tail(out, m);
}

void OpenAIFormat::append_stream_close(std::string& out, const Plan& p, const AnswerMeta& m,
                                       bool omit_done) const {
  append_chunk_head(out, m);
  out += !p.tool_call        ? "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}"
         : p.tool_call->legacy ? "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"function_call\"}"
                               : "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}";
  append_chunk_tail(out, m);
  if (m.include_usage) {
    append_chunk_head(out, m);
    out += "],\"usage\":";
    append_usage(out, p);
    out += "}\n\n";
  }
  if (!omit_done) out += "data: [DONE]\n\n";
}

void OpenAIFormat::append_stream_malformed(std::string& out, const AnswerMeta& m) const {
  // A chunk cut off inside its JSON, as a broken upstream proxy would deliver it.
  append_chunk_head(out, m);
  out += "{\"index\":0,\"delta\":{\"content\":\n\n";
}

void OpenAIFormat::append_stream_error(std::string& out, const Plan& p, const AnswerMeta&) const {
  // OpenAI reports a failure after the stream started as a data event with an error object.
  out += "data: ";
  append_error(out, p.error, p.message);
  out += "\n\n";
}

void OpenAIFormat::append_error(std::string& out, ErrorType type, std::string_view message) const {
  const auto t = error_text(type);
  out += "{\"error\":{\"message\":";
  json::append_string(out, message.empty() ? t.message : message);
  out += ",\"type\":";
  json::append_string(out, t.type);
  out += ",\"param\":";
  out += type == ErrorType::context_length ? "\"messages\"" : "null";
  out += ",\"code\":";
  out += t.code;
  out += "}}";
}

void OpenAIFormat::append_models(std::string& out, std::span<const std::string> names,
                                 std::int64_t created) const {
  out += "{\"object\":\"list\",\"data\":[";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += "{\"id\":";
    json::append_string(out, names[i]);
    out += ",\"object\":\"model\",\"created\":";
    json::append_int(out, created);
    out += ",\"owned_by\":\"bulwark-mock\"}";
  }
  out += "]}";
}

}  // namespace bulwark::mock
