#include "providers/openai/openai.hpp"

#include <simdjson.h>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

namespace bulwark::providers::openai {
namespace {

simdjson::dom::parser& dom_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

void read_usage_object(simdjson::dom::element u, Usage& out) {
  if (!u.is_object()) return;
  out.present = true;
  std::int64_t v = 0;
  if (!u["prompt_tokens"].get(v)) out.prompt_tokens = v;
  if (!u["completion_tokens"].get(v)) out.completion_tokens = v;
  if (!u["total_tokens"].get(v)) out.total_tokens = v;
  else out.total_tokens = out.prompt_tokens + out.completion_tokens;
  if (!u.at_pointer("/prompt_tokens_details/cached_tokens").get(v)) out.cached_prompt_tokens = v;
  // Prompt-cache writes, which the Anthropic and Bedrock conversions report here
  // (included in prompt_tokens, like cached reads).
  if (!u["cache_creation_input_tokens"].get(v)) out.cache_write_tokens = v;
}

bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && std::tolower(static_cast<unsigned char>(hay[i + j])) == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

}  // namespace

bhttp::request<bhttp::string_body> build_request(const config::Provider& provider, std::string body, bool stream) {
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, provider.endpoint.path_prefix + "/chat/completions", 11};
  req.set(bhttp::field::host, provider.endpoint.authority());
  req.set(bhttp::field::content_type, "application/json");
  req.set(bhttp::field::accept, stream ? "text/event-stream" : "application/json");
  req.set(bhttp::field::user_agent, "bulwark/" BULWARK_VERSION);
  if (!provider.api_key.empty()) req.set(bhttp::field::authorization, "Bearer " + provider.api_key.reveal());
  for (const auto& [name, value] : provider.headers) req.set(name, value);
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

Error classify_error(unsigned status, std::string_view body, std::string_view target_id) {
  std::string message, code, type;
  simdjson::dom::element doc;
  if (!dom_parser().parse(body.data(), body.size()).get(doc)) {
    std::string_view s;
    if (!doc.at_pointer("/error/message").get(s)) message = s;
    if (!doc.at_pointer("/error/code").get(s)) code = s;
    if (!doc.at_pointer("/error/type").get(s)) type = s;
    if (message.empty() && !doc["message"].get(s)) message = s;  // some compatible servers
  }
  const std::string where = "upstream " + std::string(target_id) + " returned HTTP " + std::to_string(status);
  auto upstream = [&](ErrorKind kind, bool retryable, std::string msg) {
    Error e{kind, Origin::upstream, retryable, std::move(msg), {}, static_cast<int>(status), std::nullopt};
    return e;
  };
  const std::string detail = message.empty() ? where : message;
  if (status == 429) {
    if (code == "insufficient_quota" || type == "insufficient_quota")
      return upstream(ErrorKind::upstream_rate_limited, false, where + ": quota exhausted");
    return upstream(ErrorKind::upstream_rate_limited, true, where + ": rate limited");
  }
  if (status == 400 || status == 413 || status == 422) {
    if (code == "context_length_exceeded" || contains_ci(message, "maximum context length") ||
        contains_ci(message, "context length") || contains_ci(message, "too many tokens"))
      return upstream(ErrorKind::context_length_exceeded, false, detail);
    if (code == "content_filter" || code == "content_policy_violation" || contains_ci(message, "content management policy") ||
        contains_ci(message, "content filter"))
      return upstream(ErrorKind::content_filtered, false, detail);
    return upstream(ErrorKind::upstream_bad_request, false, detail);
  }
  if (status == 401 || status == 403)
    return upstream(ErrorKind::upstream_auth, false, where + ": the gateway's credentials for this provider were refused");
  if (status == 404) return upstream(ErrorKind::upstream_not_found, false, where + ": model or route not found");
  if (status == 503 || status == 529) return upstream(ErrorKind::upstream_overloaded, true, where + ": overloaded");
  if (status == 408 || status == 504) return upstream(ErrorKind::upstream_server_error, true, where + ": upstream timed out");
  if (status >= 500) return upstream(ErrorKind::upstream_server_error, true, where);
  return upstream(ErrorKind::upstream_bad_request, false, detail);
}

Usage read_usage(std::string_view body) {
  Usage usage;
  // The usage object comes last in every answer we know: parse just that object instead
  // of the whole answer. If the text is not where expected, parse the whole document.
  if (const auto key = body.rfind("\"usage\""); key != std::string_view::npos) {
    const auto open = body.find_first_not_of(" \t\r\n:", key + 7);
    if (open != std::string_view::npos && body[open] == '{') {
      // usage nests one level (prompt_tokens_details): take the span up to the brace that
      // balances the opening one.
      int depth = 0;
      std::size_t end = open;
      for (; end < body.size(); ++end) {
        if (body[end] == '{') ++depth;
        else if (body[end] == '}' && --depth == 0) break;
        else if (body[end] == '"') {
          for (++end; end < body.size() && body[end] != '"'; ++end)
            if (body[end] == '\\') ++end;
        }
      }
      simdjson::dom::element u;
      if (end < body.size() && !dom_parser().parse(body.data() + open, end - open + 1).get(u)) {
        read_usage_object(u, usage);
        return usage;
      }
    }
  }
  simdjson::dom::element doc;
  if (dom_parser().parse(body.data(), body.size()).get(doc)) return usage;
  simdjson::dom::element u;
  if (!doc["usage"].get(u)) read_usage_object(u, usage);
  return usage;
}

std::size_t SseSplitter::find_event_end(std::string_view s, std::size_t from) {
  for (std::size_t i = s.find('\n', from); i != std::string_view::npos; i = s.find('\n', i + 1)) {
    if (i + 1 < s.size() && s[i + 1] == '\n') return i + 2;
    if (i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

StreamEvent inspect_event(std::string_view event) {
  StreamEvent ev;
  // Collect the data lines; anything else (comments, event:, id:) is metadata.
  std::string_view data;
  std::string joined;
  bool any_data = false;
  std::size_t pos = 0;
  while (pos < event.size()) {
    std::size_t eol = event.find('\n', pos);
    if (eol == std::string_view::npos) eol = event.size();
    std::string_view line = event.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol + 1;
    if (line.starts_with("data:")) {
      std::string_view v = line.substr(5);
      if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (!any_data) data = v;
      else {
        if (joined.empty()) joined.assign(data);
        joined.push_back('\n');
        joined.append(v);
      }
      any_data = true;
    }
  }
  if (!joined.empty()) data = joined;
  if (!any_data) {
    ev.kind = StreamEvent::Kind::comment;
    return ev;
  }
  if (data == "[DONE]") {
    ev.kind = StreamEvent::Kind::done;
    return ev;
  }
  simdjson::dom::element doc;
  if (dom_parser().parse(data.data(), data.size()).get(doc) || !doc.is_object()) {
    ev.kind = StreamEvent::Kind::malformed;
    return ev;
  }
  simdjson::dom::element err;
  if (!doc["error"].get(err) && !err.is_null()) {
    ev.kind = StreamEvent::Kind::error;
    std::string_view m;
    if (!err["message"].get(m)) ev.error_message = m;
    return ev;
  }
  simdjson::dom::array choices;
  if (!doc["choices"].get(choices)) {
    ev.usage_only = choices.size() == 0;
    for (simdjson::dom::element c : choices) {
      simdjson::dom::element fr;
      if (!c["finish_reason"].get(fr) && !fr.is_null()) ev.has_finish = true;
      std::string_view content;
      const bool text = !c.at_pointer("/delta/content").get(content) && !content.empty();
      if (text) ev.text_bytes += content.size();
      simdjson::dom::array tc;
      const bool calls = !c.at_pointer("/delta/tool_calls").get(tc) && tc.size() > 0;
      if (calls)
        for (simdjson::dom::element call : tc)
          if (std::string_view args; !call.at_pointer("/function/arguments").get(args)) ev.text_bytes += args.size();
      // The legacy function_call (before tool_calls) streams its arguments the same way.
      std::string_view legacy_args;
      const bool legacy = !c.at_pointer("/delta/function_call/arguments").get(legacy_args);
      if (legacy) ev.text_bytes += legacy_args.size();
      if (text || calls || legacy) ++ev.content_deltas;
      // Reasoning (thinking) is the model's first output too: it counts as a token.
      else if (!c.at_pointer("/delta/reasoning_content").get(content) && !content.empty()) ++ev.content_deltas;
      else if (simdjson::dom::array tb; !c.at_pointer("/delta/thinking_blocks").get(tb) && tb.size() > 0) ++ev.content_deltas;
    }
  }
  simdjson::dom::element u;
  if (!doc["usage"].get(u)) read_usage_object(u, ev.usage);
  return ev;
}

}  // namespace bulwark::providers::openai
