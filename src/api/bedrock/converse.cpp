#include "api/bedrock/converse.hpp"

#include <cctype>

#include "api/detail/support.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::bedrock {
namespace {

namespace bj = boost::json;
namespace cn = canonical;
using detail::bad_request;
using detail::path_index;
using detail::path_key;

std::string_view format_name(Dialect d) { return d == Dialect::nova ? "Amazon Nova" : "Bedrock Converse"; }

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

Status decode_block(const bj::value& value, std::string_view p, cn::Message& msg, cn::Message& results) {
  if (!value.is_object()) return std::unexpected(bad_request("'" + std::string(p) + "' must be an object.", std::string(p)));
  const bj::object& block = value.get_object();
  if (const bj::value* t = detail::find(block, "text")) {
    if (!t->is_string()) return std::unexpected(bad_request("'" + std::string(p) + ".text' must be a string.", std::string(p)));
    msg.content.emplace_back(cn::TextPart{std::string(t->get_string())});
  } else if (const bj::value* img = detail::find(block, "image"); img != nullptr && img->is_object()) {
    auto image = decode_image(img->get_object(), path_key(p, "image"));
    if (!image) return std::unexpected(std::move(image).error());
    msg.content.emplace_back(std::move(*image));
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
  } else if (detail::find(block, "reasoningContent") != nullptr && msg.role == cn::Role::assistant) {
    // the model's own reasoning, meaningful to no other format
  } else {
    const std::string_view kind = block.empty() ? std::string_view("an empty block") : std::string_view(block.begin()->key());
    return std::unexpected(bad_request("Content block '" + std::string(kind) + "' is not supported by this gateway.", std::string(p)));
  }
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

Result<bj::object> image_block(const cn::ImagePart& image, std::string_view p, Dialect dialect) {
  BULWARK_API_TRY(detail::require_inline_image(image, format_name(dialect), p));
  const std::string_view format = detail::bedrock_image_format(image.media_type);
  if (format.empty())
    return std::unexpected(bad_request("'" + std::string(p) + "' is a " + image.media_type + " image; " + std::string(format_name(dialect)) +
                                           " accepts png, jpeg, gif and webp.",
                                       std::string(p)));
  return bj::object{{"image", bj::object{{"format", format}, {"source", bj::object{{"bytes", image.data}}}}}};
}

Result<std::optional<bj::object>> block_of(const cn::ContentPart& part, std::string_view p, cn::IdSource& ids, Dialect dialect) {
  if (const auto* t = std::get_if<cn::TextPart>(&part)) {
    if (t->text.empty()) return std::nullopt;  // Bedrock rejects empty text blocks
    return bj::object{{"text", t->text}};
  }
  if (const auto* img = std::get_if<cn::ImagePart>(&part)) {
    auto block = image_block(*img, p, dialect);
    if (!block) return std::unexpected(std::move(block).error());
    return std::move(*block);
  }
  if (const auto* call = std::get_if<cn::ToolCallPart>(&part)) {
    auto input = detail::arguments_object(call->arguments, path_key(p, "arguments"));
    if (!input) return std::unexpected(std::move(input).error());
    return bj::object{{"toolUse", bj::object{{"toolUseId", cn::restyle_id(call->id, cn::id_prefix::bedrock_tool_use, ids)},
                                             {"name", call->name},
                                             {"input", std::move(*input)}}}};
  }
  if (const auto* result = std::get_if<cn::ToolResultPart>(&part)) {
    bj::array content;
    for (const cn::ToolResultContent& c : result->content) {
      if (const auto* t = std::get_if<cn::TextPart>(&c)) {
        if (!t->text.empty()) content.push_back(bj::object{{"text", t->text}});
      } else {
        auto image = image_block(std::get<cn::ImagePart>(c), p, dialect);
        if (!image) return std::unexpected(std::move(image).error());
        content.push_back(std::move(*image));
      }
    }
    if (content.empty()) content.push_back(bj::object{{"text", ""}});  // Converse requires content
    bj::object r{{"toolUseId", cn::restyle_id(result->tool_call_id, cn::id_prefix::bedrock_tool_use, ids)}, {"content", std::move(content)}};
    if (result->is_error) r["status"] = "error";
    return bj::object{{"toolResult", std::move(r)}};
  }
  return std::unexpected(bad_request("'" + std::string(p) + "' is audio, which " + std::string(format_name(dialect)) + " cannot express.", std::string(p)));
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
    if (*content != nullptr)
      for (std::size_t j = 0; j < (*content)->size(); ++j)
        BULWARK_API_TRY(decode_block((**content)[j], path_index(path_key(p, "content"), j), msg, results));
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
      const bj::value* text = detail::find(s.get_object(), "text");
      if (text == nullptr) continue;  // guardContent / cachePoint carry no prompt text
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
          if (tv.is_object() && tv.get_object().contains("cachePoint")) continue;  // a cache marker, not a tool
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

Result<std::string> encode_request(const cn::ChatRequest& req, std::string_view target_model_id, Dialect dialect) {
  const std::string_view format = format_name(dialect);
  BULWARK_API_TRY(detail::refuse_openai_only(req, format));
  cn::IdSource ids(0);  // every id in a request exists: nothing is generated
  bj::object o;
  if (dialect == Dialect::nova) o["schemaVersion"] = "messages-v1";

  const std::vector<detail::Turn> turns = detail::merge_turns(req.messages);
  bj::array messages;
  for (std::size_t t = 0; t < turns.size(); ++t) {
    const detail::Turn& turn = turns[t];
    const std::string p = path_key(path_index("messages", turn.message), "content");
    bj::array content;
    for (const cn::ContentPart* part : turn.parts) {
      auto block = block_of(*part, p, ids, dialect);
      if (!block) return std::unexpected(std::move(block).error());
      if (*block) content.push_back(std::move(**block));
    }
    if (content.empty()) {
      if (turn.assistant && t + 1 == turns.size()) continue;  // an empty prefill asks for nothing
      return std::unexpected(bad_request("'" + p + "' is empty; " + std::string(format) + " requires non-empty content.", p));
    }
    messages.push_back(bj::object{{"role", turn.assistant ? "assistant" : "user"}, {"content", std::move(content)}});
  }
  o["messages"] = std::move(messages);

  bj::array system;
  for (const std::string& s : req.system)
    if (!s.empty()) system.push_back(bj::object{{"text", s}});
  if (!system.empty()) o["system"] = std::move(system);

  bj::object config;
  if (req.max_tokens) config["maxTokens"] = *req.max_tokens;
  if (req.temperature) config["temperature"] = *req.temperature;
  if (req.top_p) config["topP"] = *req.top_p;
  if (!req.stop.empty()) {
    bj::array stop;
    for (const auto& s : req.stop) stop.push_back(bj::string_view(s));
    config["stopSequences"] = std::move(stop);
  }
  if (req.top_k && dialect == Dialect::nova) config["topK"] = *req.top_k;
  if (!config.empty()) o["inferenceConfig"] = std::move(config);
  if (req.top_k && dialect == Dialect::converse) {
    // Converse has no top_k: it goes to the model in its own spelling, where one is known.
    if (target_model_id.find("anthropic.") != std::string_view::npos)
      o["additionalModelRequestFields"] = bj::object{{"top_k", *req.top_k}};
    else if (target_model_id.find("amazon.nova") != std::string_view::npos)
      o["additionalModelRequestFields"] = bj::object{{"inferenceConfig", bj::object{{"topK", *req.top_k}}}};
    else
      return std::unexpected(bad_request("'top_k' cannot be expressed in Bedrock Converse for model " + std::string(target_model_id) + ".", "top_k"));
  }

  if (req.parallel_tool_calls == false)
    return std::unexpected(bad_request("'parallel_tool_calls' false cannot be expressed in " + std::string(format) + ".", "parallel_tool_calls"));
  if (!req.tools.empty()) {
    if (req.tool_choice.mode == cn::ToolChoice::Mode::none)
      return std::unexpected(bad_request("'tool_choice' none cannot be expressed in " + std::string(format) + " (it has auto, any and tool); omit the tools instead.", "tool_choice"));
    bj::array tools;
    for (std::size_t i = 0; i < req.tools.size(); ++i) {
      const cn::Tool& tool = req.tools[i];
      auto schema = detail::schema_object(tool.parameters, path_index("tools", i));
      if (!schema) return std::unexpected(std::move(schema).error());
      bj::object spec{{"name", tool.name}};
      if (!tool.description.empty()) spec["description"] = tool.description;
      spec["inputSchema"] = bj::object{{"json", std::move(*schema)}};
      tools.push_back(bj::object{{"toolSpec", std::move(spec)}});
    }
    bj::object tool_config{{"tools", std::move(tools)}};
    switch (req.tool_choice.mode) {
      case cn::ToolChoice::Mode::unset:
      case cn::ToolChoice::Mode::none: break;
      case cn::ToolChoice::Mode::auto_: tool_config["toolChoice"] = bj::object{{"auto", bj::object{}}}; break;
      case cn::ToolChoice::Mode::required: tool_config["toolChoice"] = bj::object{{"any", bj::object{}}}; break;
      case cn::ToolChoice::Mode::tool:
        tool_config["toolChoice"] = bj::object{{"tool", bj::object{{"name", req.tool_choice.name}}}};
        break;
    }
    o["toolConfig"] = std::move(tool_config);
  }
  return detail::to_json(o);
}

Result<cn::ChatResponse> decode_response(std::string_view body, Dialect) {
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
    for (std::size_t i = 0; i < content->get_array().size(); ++i)
      if (auto s = decode_block(content->get_array()[i], path_index("output.message.content", i), msg, results); !s)
        return std::unexpected(detail::as_upstream(s.error()));
    resp.content = std::move(msg.content);
  }
  if (const bj::value* sr = detail::find(o, "stopReason"); sr != nullptr && sr->is_string()) resp.stop_reason = stop_reason_from(sr->get_string());
  if (const bj::value* u = detail::find(o, "usage"); u != nullptr && u->is_object()) resp.usage = decode_usage(u->get_object());
  if (const bj::value* m = detail::find(o, "metrics"); m != nullptr && m->is_object() && m->get_object().contains("latencyMs"))
    resp.latency_ms = detail::count(m->get_object(), "latencyMs");
  return resp;
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
  bj::error_code ec;
  bj::value v = detail::parse_value(payload, ec);
  if (ec || !v.is_object()) return std::unexpected(detail::upstream_protocol("a ConverseStream event is not a JSON object"));
  const bj::object& o = v.get_object();
  const auto index = static_cast<std::uint32_t>(detail::count(o, "contentBlockIndex"));

  if (event_type.ends_with("Exception") || event_type.ends_with("exception")) {
    std::string message = "the upstream reported an error mid-stream";
    if (const bj::value* m = detail::find(o, "message"); m != nullptr && m->is_string()) message = m->get_string();
    else if (const bj::value* m2 = detail::find(o, "Message"); m2 != nullptr && m2->is_string()) message = m2->get_string();
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
    const bj::value* start = detail::find(o, "start");
    const bj::value* tu = start != nullptr && start->is_object() ? detail::find(start->get_object(), "toolUse") : nullptr;
    if (tu != nullptr && tu->is_object()) {
      cn::ToolCallStart call{index, {}, {}};
      if (const bj::value* id = detail::find(tu->get_object(), "toolUseId"); id != nullptr && id->is_string()) call.id = id->get_string();
      if (const bj::value* n = detail::find(tu->get_object(), "name"); n != nullptr && n->is_string()) call.name = n->get_string();
      out.emplace_back(std::move(call));
    }
  } else if (event_type == "contentBlockDelta") {
    const bj::value* dv = detail::find(o, "delta");
    if (dv == nullptr || !dv->is_object()) return std::unexpected(detail::upstream_protocol("contentBlockDelta without a delta"));
    const bj::object& delta = dv->get_object();
    if (const bj::value* t = detail::find(delta, "text"); t != nullptr && t->is_string()) {
      out.emplace_back(cn::TextDelta{index, std::string(t->get_string())});
    } else if (const bj::value* tu = detail::find(delta, "toolUse"); tu != nullptr && tu->is_object()) {
      if (const bj::value* in = detail::find(tu->get_object(), "input"); in != nullptr && in->is_string() && !in->get_string().empty())
        out.emplace_back(cn::ToolArgsDelta{index, std::string(in->get_string())});
    }
    // reasoningContent and citation deltas are not carried
  } else if (event_type == "contentBlockStop") {
    out.emplace_back(cn::BlockStop{index});
  } else if (event_type == "messageStop") {
    if (const bj::value* sr = detail::find(o, "stopReason"); sr != nullptr && sr->is_string()) stop_ = stop_reason_from(sr->get_string());
    stopped_ = true;
  } else if (event_type == "metadata") {
    std::optional<cn::Usage> usage;
    std::optional<std::int64_t> latency;
    if (const bj::value* u = detail::find(o, "usage"); u != nullptr && u->is_object()) usage = decode_usage(u->get_object());
    if (const bj::value* m = detail::find(o, "metrics"); m != nullptr && m->is_object() && m->get_object().contains("latencyMs"))
      latency = detail::count(m->get_object(), "latencyMs");
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
        // Ping: ConverseStream has no keep-alive event.
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
