#include "api/openai/text.hpp"

#include <simdjson.h>

#include <boost/json.hpp>
#include <functional>

#include "core/json_write.hpp"

namespace bulwark::api::openai {
namespace {

namespace bj = boost::json;

Result<bj::value> parse(std::string_view body) {
  boost::system::error_code ec;
  bj::value v = bj::parse(body, ec);
  if (ec) return std::unexpected(Error::client(ErrorKind::invalid_json, "The body is not valid JSON: " + ec.message()));
  return v;
}

// Calls `visit` on each string that holds written text, in document order.
using Visit = std::function<void(bj::string&)>;

void visit_content(bj::value& content, const Visit& visit) {
  if (content.is_string()) {
    visit(content.as_string());
  } else if (content.is_array()) {
    for (bj::value& part : content.as_array()) {
      if (!part.is_object()) continue;
      bj::object& o = part.as_object();
      const bj::value* type = o.if_contains("type");
      if (type && type->is_string() && type->as_string() == "text")
        if (bj::value* text = o.if_contains("text"); text && text->is_string()) visit(text->as_string());
    }
  }
}

void visit_request(bj::value& doc, const Visit& visit) {
  if (!doc.is_object()) return;
  bj::value* messages = doc.as_object().if_contains("messages");
  if (!messages || !messages->is_array()) return;
  for (bj::value& m : messages->as_array())
    if (m.is_object())
      if (bj::value* c = m.as_object().if_contains("content")) visit_content(*c, visit);
}

void visit_answer(bj::value& doc, const char* member, const Visit& visit) {
  if (!doc.is_object()) return;
  bj::value* choices = doc.as_object().if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (bj::value& c : choices->as_array()) {
    if (!c.is_object()) continue;
    bj::value* msg = c.as_object().if_contains(member);
    if (!msg || !msg->is_object()) continue;
    if (bj::value* content = msg->as_object().if_contains("content")) visit_content(*content, visit);
  }
}

Result<std::string> replace(std::string_view body, std::span<const std::string> texts,
                            const std::function<void(bj::value&, const Visit&)>& walk) {
  auto doc = parse(body);
  if (!doc) return std::unexpected(doc.error());
  std::size_t i = 0;
  walk(*doc, [&](bj::string& s) {
    if (i < texts.size()) s = texts[i];
    ++i;
  });
  if (i != texts.size())
    return std::unexpected(Error::gateway(ErrorKind::internal, "text count changed while rewriting a chat body"));
  return bj::serialize(*doc);
}

// Reading is on every governed request, so it uses simdjson's DOM (one parse, no
// allocation per node); only a rewrite, which is rare, builds a Boost.JSON document.
namespace sj = simdjson::dom;

sj::parser& reader() {
  thread_local sj::parser parser;
  return parser;
}

Result<sj::element> read(std::string_view body) {
  sj::element doc;
  if (reader().parse(body.data(), body.size(), true).get(doc))
    return std::unexpected(Error::client(ErrorKind::invalid_json, "The body is not valid JSON."));
  return doc;
}

void read_content(sj::element content, std::vector<std::string>& out) {
  std::string_view text;
  if (!content.get(text)) {
    out.emplace_back(text);
    return;
  }
  sj::array parts;
  if (content.get(parts)) return;
  for (sj::element part : parts) {
    std::string_view type;
    if (part["type"].get(type) || type != "text") continue;
    if (!part["text"].get(text)) out.emplace_back(text);
  }
}

}  // namespace

Result<std::vector<std::string>> request_texts(std::string_view body) {
  auto doc = read(body);
  if (!doc) return std::unexpected(doc.error());
  std::vector<std::string> out;
  sj::array messages;
  if ((*doc)["messages"].get(messages)) return out;
  for (sj::element m : messages) {
    sj::element content;
    if (!m["content"].get(content)) read_content(content, out);
  }
  return out;
}

Result<std::string> with_request_texts(std::string_view body, std::span<const std::string> texts) {
  return replace(body, texts, visit_request);
}

Result<std::vector<std::string>> answer_texts(std::string_view body) {
  auto doc = read(body);
  if (!doc) return std::unexpected(doc.error());
  std::vector<std::string> out;
  sj::array choices;
  if ((*doc)["choices"].get(choices)) return out;
  for (sj::element c : choices) {
    sj::element content;
    if (!c.at_pointer("/message/content").get(content)) read_content(content, out);
  }
  return out;
}

Result<std::string> with_answer_texts(std::string_view body, std::span<const std::string> texts) {
  return replace(body, texts, [](bj::value& d, const Visit& v) { visit_answer(d, "message", v); });
}

Result<std::vector<DeltaText>> delta_texts(std::string_view chunk_json) {
  auto doc = parse(chunk_json);
  if (!doc) return std::unexpected(doc.error());
  std::vector<DeltaText> out;
  if (!doc->is_object()) return out;
  const bj::value* choices = doc->as_object().if_contains("choices");
  if (!choices || !choices->is_array()) return out;
  std::size_t position = 0;
  for (const bj::value& c : choices->as_array()) {
    const std::size_t at = position++;
    if (!c.is_object()) continue;
    const bj::object& o = c.as_object();
    std::size_t index = at;
    if (const bj::value* i = o.if_contains("index"); i && i->is_int64() && i->as_int64() >= 0)
      index = static_cast<std::size_t>(i->as_int64());
    const bj::value* delta = o.if_contains("delta");
    if (!delta || !delta->is_object()) continue;
    const bj::value* content = delta->as_object().if_contains("content");
    if (content && content->is_string()) out.push_back({index, std::string(content->as_string())});
  }
  return out;
}

Result<std::string> with_delta_texts(std::string_view chunk_json, std::span<const DeltaText> texts) {
  auto doc = parse(chunk_json);
  if (!doc) return std::unexpected(doc.error());
  if (!doc->is_object()) return bj::serialize(*doc);
  bj::value* choices = doc->as_object().if_contains("choices");
  if (!choices || !choices->is_array()) return bj::serialize(*doc);
  std::size_t position = 0, next = 0;
  for (bj::value& c : choices->as_array()) {
    const std::size_t at = position++;
    if (!c.is_object()) continue;
    bj::object& o = c.as_object();
    bj::value* delta = o.if_contains("delta");
    if (!delta || !delta->is_object()) continue;
    bj::value* content = delta->as_object().if_contains("content");
    if (!content || !content->is_string()) continue;
    std::size_t index = at;
    if (const bj::value* i = o.if_contains("index"); i && i->is_int64() && i->as_int64() >= 0)
      index = static_cast<std::size_t>(i->as_int64());
    if (next < texts.size() && texts[next].choice == index) *content = bj::string(texts[next++].text);
  }
  return bj::serialize(*doc);
}

std::string text_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text) {
  std::string out = "{\"id\":";
  bulwark::json::append_string(out, id);
  out += ",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":";
  bulwark::json::append_string(out, model);
  out += ",\"choices\":[{\"index\":";
  bulwark::json::append_int(out, static_cast<std::int64_t>(choice));
  out += ",\"delta\":{\"content\":";
  bulwark::json::append_string(out, text);
  out += "},\"finish_reason\":null}]}";
  return out;
}

}  // namespace bulwark::api::openai
