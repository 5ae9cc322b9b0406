#include "api/bedrock/invoke.hpp"

#include "api/detail/support.hpp"
#include "core/json_write.hpp"

namespace bulwark::api::bedrock::invoke {
namespace {

namespace bj = boost::json;
namespace cn = canonical;
using detail::bad_request;
using detail::path_index;
using detail::path_key;

constexpr std::string_view kBegin = "<|begin_of_text|>";
constexpr std::string_view kHeaderStart = "<|start_header_id|>";
constexpr std::string_view kHeaderEnd = "<|end_header_id|>\n\n";
constexpr std::string_view kEot = "<|eot_id|>";
constexpr std::string_view kMetrics = "amazon-bedrock-invocationMetrics";

std::string_view format_name(Family f) {
  switch (f) {
    case Family::anthropic: return "Bedrock Claude (InvokeModel)";
    case Family::llama3: return "Meta Llama 3 (InvokeModel)";
    case Family::titan_text: return "Amazon Titan Text (InvokeModel)";
    case Family::nova: return "Amazon Nova (InvokeModel)";
  }
  return "InvokeModel";
}

// The text-only families: everything but plain text turns and sampling is refused.
Status refuse_beyond_text(const cn::ChatRequest& req, Family family) {
  const std::string_view format = format_name(family);
  BULWARK_API_TRY(detail::refuse_openai_only(req, format));
  const auto refuse = [&](std::string field, std::string_view what) -> Status {
    return std::unexpected(bad_request("'" + field + "' cannot be expressed in " + std::string(format) + ": it " + std::string(what) + ".", field));
  };
  if (!req.tools.empty()) return refuse("tools", "has no tool use");
  if (req.tool_choice.mode == cn::ToolChoice::Mode::required || req.tool_choice.mode == cn::ToolChoice::Mode::tool)
    return refuse("tool_choice", "has no tool use");
  if (req.top_k) return refuse("top_k", "has no top_k");
  if (req.reasoning.mode == cn::Reasoning::Mode::enabled)
    return std::unexpected(bad_request("Extended thinking ('thinking' / 'reasoning_effort') cannot be expressed in " + std::string(format) +
                                           ": the model does not reason.",
                                       "thinking"));
  if (family == Family::llama3 && !req.stop.empty()) return refuse("stop", "has no stop sequences");
  for (std::size_t i = 0; i < req.messages.size(); ++i) {
    const std::string p = path_key(path_index("messages", i), "content");
    for (std::size_t j = 0; j < req.messages[i].content.size(); ++j) {
      const cn::ContentPart& part = req.messages[i].content[j];
      if (std::holds_alternative<cn::ImagePart>(part)) return refuse(path_index(p, j), "takes text only (no images)");
      if (std::holds_alternative<cn::DocumentPart>(part)) return refuse(path_index(p, j), "takes text only (no documents)");
      if (std::holds_alternative<cn::ToolCallPart>(part) || std::holds_alternative<cn::ToolResultPart>(part))
        return refuse(path_index(p, j), "has no tool use");
    }
  }
  return {};
}

std::string text_of(const cn::Message& m) {
  std::string out;
  for (const cn::ContentPart& part : m.content) {
    if (const auto* t = std::get_if<cn::TextPart>(&part)) {
      if (!out.empty() && !t->text.empty()) out += '\n';
      out += t->text;
    }
  }
  return out;
}

std::string join_system(const cn::ChatRequest& req) {
  std::string out;
  for (const std::string& s : req.system) {
    if (s.empty()) continue;
    if (!out.empty()) out += "\n\n";
    out += s;
  }
  return out;
}

// Titan has no roles: one user message is sent as is, a conversation in Titan's
// documented "User: ... / Bot: ..." form, the system prompt first.
std::string titan_input(const cn::ChatRequest& req) {
  const std::string system = join_system(req);
  if (system.empty() && req.messages.size() == 1 && req.messages[0].role == cn::Role::user) return text_of(req.messages[0]);
  std::string out = system;
  if (!out.empty()) out += "\n\n";
  for (const cn::Message& m : req.messages) {
    out += m.role == cn::Role::assistant ? "Bot: " : "User: ";
    out += text_of(m);
    out += '\n';
  }
  if (req.messages.empty() || req.messages.back().role != cn::Role::assistant) out += "Bot:";
  else out.pop_back();  // continue the final Bot turn
  return out;
}

// Splits a Llama 3 template prompt into system and turns; false when it is not one.
bool parse_llama3(std::string_view prompt, cn::ChatRequest& req) {
  if (!prompt.starts_with(kBegin)) return false;
  prompt.remove_prefix(kBegin.size());
  while (!prompt.empty()) {
    if (!prompt.starts_with(kHeaderStart)) return false;
    prompt.remove_prefix(kHeaderStart.size());
    const std::size_t he = prompt.find(kHeaderEnd);
    if (he == std::string_view::npos) return false;
    const std::string_view role = prompt.substr(0, he);
    prompt.remove_prefix(he + kHeaderEnd.size());
    const std::size_t eot = prompt.find(kEot);
    const std::string_view text = prompt.substr(0, eot);
    prompt.remove_prefix(eot == std::string_view::npos ? prompt.size() : eot + kEot.size());
    if (role == "system") {
      req.system.emplace_back(text);
    } else if (role == "user" || role == "assistant") {
      // The trailing empty assistant header is the cue to answer, not a turn.
      if (role == "assistant" && eot == std::string_view::npos && text.empty()) break;
      req.messages.push_back(cn::Message{role == "user" ? cn::Role::user : cn::Role::assistant, {cn::TextPart{std::string(text)}}, {}});
    } else {
      return false;  // ipython and other roles are not chat turns
    }
  }
  return true;
}

cn::StopReason titan_reason(std::string_view r) {
  if (r == "FINISH") return cn::StopReason::end_turn;
  if (r == "LENGTH") return cn::StopReason::max_tokens;
  if (r == "STOP_CRITERIA_MET") return cn::StopReason::stop_sequence;
  if (r == "CONTENT_FILTERED") return cn::StopReason::content_filter;
  if (r.empty()) return cn::StopReason::none;
  return cn::StopReason::end_turn;
}

std::string_view titan_reason_name(cn::StopReason r) {
  switch (r) {
    case cn::StopReason::max_tokens: return "LENGTH";
    case cn::StopReason::stop_sequence: return "STOP_CRITERIA_MET";
    case cn::StopReason::content_filter:
    case cn::StopReason::refusal:
    case cn::StopReason::guardrail: return "CONTENT_FILTERED";
    default: return "FINISH";
  }
}

cn::StopReason llama_reason(std::string_view r) {
  if (r == "stop") return cn::StopReason::end_turn;
  if (r == "length") return cn::StopReason::max_tokens;
  if (r.empty()) return cn::StopReason::none;
  return cn::StopReason::end_turn;
}

std::string_view llama_reason_name(cn::StopReason r) { return r == cn::StopReason::max_tokens ? "length" : "stop"; }

const bj::object* object_at(const bj::object& o, std::string_view key) {
  const bj::value* v = detail::find(o, key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::string string_at(const bj::object& o, std::string_view key) {
  const bj::value* v = detail::find(o, key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

anthropic::RequestOptions claude_options() {
  anthropic::RequestOptions options;
  options.include_model = false;
  options.include_stream = false;
  options.anthropic_version = std::string(kAnthropicVersion);
  return options;
}

}  // namespace

std::string_view to_string(Family family) noexcept {
  switch (family) {
    case Family::anthropic: return "anthropic";
    case Family::llama3: return "llama3";
    case Family::titan_text: return "titan_text";
    case Family::nova: return "nova";
  }
  return "anthropic";
}

std::optional<Family> family_of(std::string_view id) noexcept {
  // An inference profile prefixes a region group ("us.", "eu.", "apac.", "global.").
  if (id.starts_with("arn:")) id = id.substr(id.rfind('/') == std::string_view::npos ? 0 : id.rfind('/') + 1);
  for (std::string_view p : {"us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca."})
    if (id.starts_with(p)) {
      id.remove_prefix(p.size());
      break;
    }
  if (id.starts_with("anthropic.")) return Family::anthropic;
  if (id.starts_with("meta.llama3")) return Family::llama3;
  if (id.starts_with("amazon.titan-text") || id.starts_with("amazon.titan-tg1")) return Family::titan_text;
  if (id.starts_with("amazon.nova")) return Family::nova;
  return std::nullopt;
}

Result<std::string> llama3_prompt(const cn::ChatRequest& req) {
  BULWARK_API_TRY(refuse_beyond_text(req, Family::llama3));
  std::string out(kBegin);
  const auto turn = [&](std::string_view role, std::string_view text, bool close) {
    out += kHeaderStart;
    out += role;
    out += kHeaderEnd;
    out += text;
    if (close) out += kEot;
  };
  if (const std::string system = join_system(req); !system.empty()) turn("system", system, true);
  for (std::size_t i = 0; i < req.messages.size(); ++i) {
    const cn::Message& m = req.messages[i];
    const bool last_assistant = i + 1 == req.messages.size() && m.role == cn::Role::assistant;
    turn(m.role == cn::Role::assistant ? "assistant" : "user", text_of(m), !last_assistant);
  }
  if (req.messages.empty() || req.messages.back().role != cn::Role::assistant) turn("assistant", "", false);
  return out;
}

Result<cn::ChatRequest> decode_request(std::string_view body, Family family) {
  if (family == Family::anthropic) {
    anthropic::DecodeOptions options;
    options.require_model = false;
    return anthropic::decode_request(body, options);
  }
  if (family == Family::nova) return converse::decode_request(body, Dialect::nova);
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(std::move(parsed).error());
  const bj::object& o = **parsed;
  cn::ChatRequest req;
  if (family == Family::llama3) {
    std::string prompt;
    BULWARK_API_TRY(detail::read_string(o, "prompt", prompt, ""));
    if (prompt.empty()) return std::unexpected(bad_request("'prompt' is required.", "prompt"));
    if (!parse_llama3(prompt, req)) {
      req = cn::ChatRequest{};
      req.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{std::move(prompt)}}, {}});
    }
    BULWARK_API_TRY(detail::read_int(o, "max_gen_len", req.max_tokens, ""));
    BULWARK_API_TRY(detail::read_double(o, "temperature", req.temperature, ""));
    BULWARK_API_TRY(detail::read_double(o, "top_p", req.top_p, ""));
    return req;
  }
  std::string input;
  BULWARK_API_TRY(detail::read_string(o, "inputText", input, ""));
  if (input.empty()) return std::unexpected(bad_request("'inputText' is required.", "inputText"));
  req.messages.push_back(cn::Message{cn::Role::user, {cn::TextPart{std::move(input)}}, {}});
  auto config = detail::read_object(o, "textGenerationConfig", "");
  if (!config) return std::unexpected(std::move(config).error());
  if (*config != nullptr) {
    BULWARK_API_TRY(detail::read_int(**config, "maxTokenCount", req.max_tokens, "textGenerationConfig"));
    BULWARK_API_TRY(detail::read_double(**config, "temperature", req.temperature, "textGenerationConfig"));
    BULWARK_API_TRY(detail::read_double(**config, "topP", req.top_p, "textGenerationConfig"));
    BULWARK_API_TRY(detail::read_strings(**config, "stopSequences", req.stop, "textGenerationConfig"));
  }
  return req;
}

Result<std::string> encode_request(const cn::ChatRequest& req, Family family, std::string_view target_model_id) {
  switch (family) {
    case Family::anthropic: return anthropic::encode_request(req, target_model_id, claude_options());
    case Family::nova: return converse::encode_request(req, target_model_id, Dialect::nova);
    case Family::llama3: {
      auto prompt = llama3_prompt(req);
      if (!prompt) return std::unexpected(std::move(prompt).error());
      bj::object o{{"prompt", std::move(*prompt)}};
      if (req.max_tokens) o["max_gen_len"] = *req.max_tokens;
      if (req.temperature) o["temperature"] = *req.temperature;
      if (req.top_p) o["top_p"] = *req.top_p;
      return detail::to_json(o);
    }
    case Family::titan_text: {
      BULWARK_API_TRY(refuse_beyond_text(req, family));
      bj::object config;
      if (req.max_tokens) config["maxTokenCount"] = *req.max_tokens;
      if (req.temperature) config["temperature"] = *req.temperature;
      if (req.top_p) config["topP"] = *req.top_p;
      if (!req.stop.empty()) {
        bj::array stop;
        for (const auto& s : req.stop) stop.push_back(bj::string_view(s));
        config["stopSequences"] = std::move(stop);
      }
      bj::object o{{"inputText", titan_input(req)}};
      if (!config.empty()) o["textGenerationConfig"] = std::move(config);
      return detail::to_json(o);
    }
  }
  return std::unexpected(bad_request("unknown model family"));
}

Result<cn::ChatResponse> decode_response(std::string_view body, Family family) {
  if (family == Family::anthropic) return anthropic::decode_response(body);
  if (family == Family::nova) return converse::decode_response(body, Dialect::nova);
  bj::value storage;
  auto parsed = detail::parse_object(body, storage);
  if (!parsed) return std::unexpected(detail::as_upstream(std::move(parsed).error()));
  const bj::object& o = **parsed;
  cn::ChatResponse resp;
  if (family == Family::llama3) {
    const bj::value* g = detail::find(o, "generation");
    if (g == nullptr || !g->is_string()) return std::unexpected(detail::upstream_protocol("the upstream answer has no generation"));
    resp.content.emplace_back(cn::TextPart{std::string(g->get_string())});
    resp.stop_reason = llama_reason(string_at(o, "stop_reason"));
    resp.usage.input = detail::count(o, "prompt_token_count");
    resp.usage.output = detail::count(o, "generation_token_count");
    return resp;
  }
  const bj::value* results = detail::find(o, "results");
  if (results == nullptr || !results->is_array() || results->get_array().empty() || !results->get_array()[0].is_object())
    return std::unexpected(detail::upstream_protocol("the upstream answer has no results"));
  const bj::object& r = results->get_array()[0].get_object();
  resp.content.emplace_back(cn::TextPart{string_at(r, "outputText")});
  resp.stop_reason = titan_reason(string_at(r, "completionReason"));
  resp.usage.input = detail::count(o, "inputTextTokenCount");
  resp.usage.output = detail::count(r, "tokenCount");
  return resp;
}

std::string encode_response(const cn::ChatResponse& resp, Family family, std::uint64_t id_seed) {
  switch (family) {
    case Family::anthropic: return anthropic::encode_response(resp, id_seed);
    case Family::nova: return converse::encode_response(resp, id_seed, Dialect::nova);
    case Family::llama3: {
      std::string out = "{\"generation\":";
      json::append_string(out, cn::text_of(resp));
      out += ",\"prompt_token_count\":";
      json::append_int(out, resp.usage.prompt());
      out += ",\"generation_token_count\":";
      json::append_int(out, resp.usage.output);
      out += ",\"stop_reason\":";
      json::append_string(out, llama_reason_name(resp.stop_reason));
      out += '}';
      return out;
    }
    case Family::titan_text: {
      std::string out = "{\"inputTextTokenCount\":";
      json::append_int(out, resp.usage.prompt());
      out += ",\"results\":[{\"tokenCount\":";
      json::append_int(out, resp.usage.output);
      out += ",\"outputText\":";
      json::append_string(out, cn::text_of(resp));
      out += ",\"completionReason\":";
      json::append_string(out, titan_reason_name(resp.stop_reason));
      out += "}]}";
      return out;
    }
  }
  return "{}";
}

std::string chunk_payload(std::string_view chunk) {
  std::string out = "{\"bytes\":\"";
  out += detail::base64_encode(chunk);
  out += "\"}";
  return out;
}

Result<std::string> chunk_json(std::string_view payload) {
  bj::error_code ec;
  bj::value v = detail::parse_value(payload, ec);
  const bj::value* bytes = !ec && v.is_object() ? detail::find(v.get_object(), "bytes") : nullptr;
  if (bytes == nullptr || !bytes->is_string()) return std::unexpected(detail::upstream_protocol("a stream chunk has no bytes"));
  auto decoded = detail::base64_decode(bytes->get_string());
  if (!decoded) return std::unexpected(detail::upstream_protocol("a stream chunk's bytes are not base64"));
  return std::move(*decoded);
}

// ---- stream decoding ----

void StreamDecoder::complete(std::vector<cn::StreamEvent>& out, cn::StopReason reason) {
  if (text_open_) out.emplace_back(cn::BlockStop{0});
  text_open_ = false;
  out.emplace_back(cn::MessageDelta{reason, {}, usage_, std::nullopt});
  out.emplace_back(cn::MessageStop{});
  done_ = true;
}

Status StreamDecoder::feed(std::string_view chunk, std::vector<cn::StreamEvent>& out) {
  if (family_ == Family::anthropic) return anthropic_.feed(chunk, out);
  if (family_ == Family::nova) return nova_.feed_chunk(chunk, out);
  if (done_) return {};
  bj::error_code ec;
  bj::value v = detail::parse_value(chunk, ec);
  if (ec || !v.is_object()) return std::unexpected(detail::upstream_protocol("a stream chunk is not a JSON object"));
  const bj::object& o = v.get_object();
  const bool llama = family_ == Family::llama3;
  if (!started_) {
    usage_.input = detail::count(o, llama ? "prompt_token_count" : "inputTextTokenCount");
    out.emplace_back(cn::MessageStart{{}, {}, usage_});
    started_ = true;
  }
  const std::string text = string_at(o, llama ? "generation" : "outputText");
  if (!text.empty()) {
    text_open_ = true;
    out.emplace_back(cn::TextDelta{0, text});
  }
  if (const std::int64_t n = detail::count(o, llama ? "generation_token_count" : "totalOutputTextTokenCount"); n != 0) usage_.output = n;
  // Bedrock's own count on the last chunk is the authoritative one.
  if (const bj::object* m = object_at(o, kMetrics)) {
    usage_.input = detail::count(*m, "inputTokenCount");
    usage_.output = detail::count(*m, "outputTokenCount");
  }
  const std::string reason = string_at(o, llama ? "stop_reason" : "completionReason");
  if (!reason.empty()) complete(out, llama ? llama_reason(reason) : titan_reason(reason));
  return {};
}

bool StreamDecoder::done() const noexcept {
  if (family_ == Family::anthropic) return anthropic_.done();
  if (family_ == Family::nova) return nova_.done();
  return done_;
}

void StreamDecoder::finish(std::vector<cn::StreamEvent>& out) {
  if (family_ == Family::anthropic) return anthropic_.finish(out);
  if (family_ == Family::nova) return nova_.finish(out);
  if (done_) return;
  out.emplace_back(cn::StreamError{Error::transport(ErrorKind::stream_truncated, "the upstream stream ended before the answer was complete", false)});
  done_ = true;
}

// ---- stream encoding ----

StreamEncoder::StreamEncoder(Family family, StreamOptions options)
    : family_(family),
      anthropic_(anthropic::StreamOptions{options.id, options.model, options.id_seed}),
      nova_(converse::StreamOptions{options.id_seed, Dialect::nova}) {}

std::string StreamEncoder::metrics() const {
  std::string out = "\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":";
  json::append_int(out, usage_.prompt());
  out += ",\"outputTokenCount\":";
  json::append_int(out, usage_.output);
  out += ",\"invocationLatency\":";
  json::append_int(out, latency_ms_.value_or(0));
  out += ",\"firstByteLatency\":0}";
  return out;
}

void StreamEncoder::text_chunk(std::vector<std::string>& chunks, std::string_view text, std::string_view stop_reason, bool last) {
  const bool llama = family_ == Family::llama3;
  std::string out = llama ? "{\"generation\":" : "{\"outputText\":";
  json::append_string(out, text);
  if (llama) {
    out += ",\"prompt_token_count\":";
    if (first_) json::append_int(out, usage_.prompt());
    else out += "null";
    out += ",\"generation_token_count\":";
    json::append_int(out, last ? usage_.output : chunks_);
    out += ",\"stop_reason\":";
  } else {
    out += ",\"index\":0,\"totalOutputTextTokenCount\":";
    json::append_int(out, last ? usage_.output : chunks_);
    out += ",\"completionReason\":";
  }
  if (stop_reason.empty()) out += "null";
  else json::append_string(out, stop_reason);
  if (!llama && first_) {
    out += ",\"inputTextTokenCount\":";
    json::append_int(out, usage_.prompt());
  }
  if (last) {
    out += ',';
    out += metrics();
  }
  out += '}';
  first_ = false;
  chunks.push_back(std::move(out));
}

void StreamEncoder::encode(const cn::StreamEvent& event, std::vector<std::string>& chunks) {
  if (done_) return;
  // Usage and latency for the invocation metrics, whatever the family.
  if (const auto* s = std::get_if<cn::MessageStart>(&event)) usage_ = s->usage;
  if (const auto* d = std::get_if<cn::MessageDelta>(&event)) {
    if (d->usage) usage_ = *d->usage;
    if (d->latency_ms) latency_ms_ = d->latency_ms;
    if (d->stop_reason != cn::StopReason::none) stop_ = d->stop_reason;
  }
  const bool stop = std::holds_alternative<cn::MessageStop>(event);
  if (family_ == Family::anthropic || family_ == Family::nova) {
    const std::size_t before = chunks.size();
    if (family_ == Family::anthropic) {
      events_.clear();
      anthropic_.encode_events(event, events_);
      for (anthropic::Event& e : events_)
        if (e.type != "ping") chunks.push_back(std::move(e.data));  // InvokeModel streams carry no pings
    } else {
      nova_.encode_chunks(event, chunks);
    }
    if (stop && chunks.size() > before) {
      std::string& last = chunks.back();
      last.pop_back();  // the closing brace
      last += ',';
      last += metrics();
      last += '}';
    }
    done_ = stop;
    return;
  }
  if (const auto* t = std::get_if<cn::TextDelta>(&event); t != nullptr && !t->text.empty()) {
    ++chunks_;
    text_chunk(chunks, t->text, {}, false);
  } else if (stop) {
    const std::string_view reason = family_ == Family::llama3 ? llama_reason_name(stop_) : titan_reason_name(stop_);
    text_chunk(chunks, "", reason, true);
    done_ = true;
  }
  // Tool, reasoning and citation events cannot occur (Llama and Titan requests carry no
  // tools, thinking or documents); errors travel as the stream's exception events, framed
  // by the caller: see converse::stream_exception_type.
}

}  // namespace bulwark::api::bedrock::invoke
