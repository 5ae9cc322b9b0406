#include "api/openai/text.hpp"

#include <simdjson.h>

#include <boost/json.hpp>
#include <functional>

#include "api/detail/support.hpp"
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

// A file part's file_data: the text of a plain-text document, or why the gateway cannot
// read it (a static string). The classification the reading and the rewriting walks share,
// so both see the same texts in the same order.
std::expected<std::string, std::string_view> document_text(std::string_view file_data) {
  const auto url = detail::parse_data_url(file_data);
  if (!url) return std::unexpected("file");
  std::string type(url->media_type.substr(0, url->media_type.find(';')));
  for (char& ch : type) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (type == "application/pdf") return std::unexpected("pdf");
  if (!type.starts_with("text/")) return std::unexpected("binary");
  auto text = detail::base64_decode(url->data);
  if (!text) return std::unexpected("invalid_base64");
  return std::move(*text);
}

// The data: URL prefix of a file_data ("data:text/plain;base64,"), kept on a rewrite.
std::string_view data_url_prefix(std::string_view file_data) {
  constexpr std::string_view kBase64 = ";base64,";
  return file_data.substr(0, file_data.find(kBase64) + kBase64.size());
}

// Calls `visit` on each string that holds written text, in document order. For a
// plain-text document the string is its file_data and `decoded` its current text;
// otherwise `decoded` is null.
using Visit = std::function<void(bj::string& slot, const std::string* decoded)>;

void visit_file(bj::object& part, const Visit& visit) {
  bj::value* file = part.if_contains("file");
  if (!file || !file->is_object()) return;
  bj::object& f = file->as_object();
  if (bj::value* data = f.if_contains("file_data"); data && data->is_string())
    if (auto text = document_text(data->as_string())) visit(data->as_string(), &*text);
  if (bj::value* context = f.if_contains("context"); context && context->is_string()) visit(context->as_string(), nullptr);
  if (bj::value* name = f.if_contains("filename"); name && name->is_string()) visit(name->as_string(), nullptr);
}

void visit_content(bj::value& content, const Visit& visit) {
  if (content.is_string()) {
    visit(content.as_string(), nullptr);
  } else if (content.is_array()) {
    for (bj::value& part : content.as_array()) {
      if (!part.is_object()) continue;
      bj::object& o = part.as_object();
      const bj::value* type = o.if_contains("type");
      if (!type || !type->is_string()) continue;
      if (type->as_string() == "text") {
        if (bj::value* text = o.if_contains("text"); text && text->is_string()) visit(text->as_string(), nullptr);
      } else if (type->as_string() == "file") {
        visit_file(o, visit);
      }
    }
  }
}

// The `arguments` string of a function object ({name, arguments}), if it has one.
bj::string* arguments_of(bj::value* function) {
  if (!function || !function->is_object()) return nullptr;
  bj::value* args = function->as_object().if_contains("arguments");
  return args && args->is_string() ? &args->as_string() : nullptr;
}

// A message's (or an answer's message's) tool calls: tool_calls[].function.arguments,
// then the legacy function_call.arguments.
void visit_tool_calls(bj::object& message, const Visit& visit) {
  if (bj::value* calls = message.if_contains("tool_calls"); calls && calls->is_array())
    for (bj::value& call : calls->as_array())
      if (call.is_object())
        if (bj::string* args = arguments_of(call.as_object().if_contains("function"))) visit(*args, nullptr);
  if (bj::string* args = arguments_of(message.if_contains("function_call"))) visit(*args, nullptr);
}

// A message's reasoning (an answer's, or an assistant turn's in a prompt's history):
// reasoning_content, then the text of each of its thinking_blocks (a redacted block's
// data is opaque, not text).
void visit_reasoning(bj::object& message, const Visit& visit) {
  if (bj::value* rc = message.if_contains("reasoning_content"); rc && rc->is_string()) visit(rc->as_string(), nullptr);
  bj::value* blocks = message.if_contains("thinking_blocks");
  if (!blocks || !blocks->is_array()) return;
  for (bj::value& b : blocks->as_array())
    if (b.is_object())
      if (bj::value* t = b.as_object().if_contains("thinking"); t && t->is_string()) visit(t->as_string(), nullptr);
}

void visit_request(bj::value& doc, const Visit& visit) {
  if (!doc.is_object()) return;
  bj::value* messages = doc.as_object().if_contains("messages");
  if (!messages || !messages->is_array()) return;
  for (bj::value& m : messages->as_array()) {
    if (!m.is_object()) continue;
    if (bj::value* c = m.as_object().if_contains("content")) visit_content(*c, visit);
    visit_reasoning(m.as_object(), visit);
    visit_tool_calls(m.as_object(), visit);
  }
}

// The gateway's text_blocks beside an answer's content: each block's text, then the
// cited_text of each of its citations.
void visit_text_blocks(bj::object& message, const Visit& visit) {
  bj::value* blocks = message.if_contains("text_blocks");
  if (!blocks || !blocks->is_array()) return;
  for (bj::value& b : blocks->as_array()) {
    if (!b.is_object()) continue;
    if (bj::value* text = b.as_object().if_contains("text"); text && text->is_string()) visit(text->as_string(), nullptr);
    bj::value* citations = b.as_object().if_contains("citations");
    if (!citations || !citations->is_array()) continue;
    for (bj::value& c : citations->as_array())
      if (c.is_object())
        if (bj::value* cited = c.as_object().if_contains("cited_text"); cited && cited->is_string())
          visit(cited->as_string(), nullptr);
  }
}

void visit_answer(bj::value& doc, const Visit& visit) {
  if (!doc.is_object()) return;
  bj::value* choices = doc.as_object().if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (bj::value& c : choices->as_array()) {
    if (!c.is_object()) continue;
    bj::value* msg = c.as_object().if_contains("message");
    if (!msg || !msg->is_object()) continue;
    if (bj::value* content = msg->as_object().if_contains("content")) visit_content(*content, visit);
    visit_text_blocks(msg->as_object(), visit);
    visit_reasoning(msg->as_object(), visit);
    visit_tool_calls(msg->as_object(), visit);
  }
}

Result<std::string> replace(std::string_view body, std::span<const std::string> texts,
                            const std::function<void(bj::value&, const Visit&)>& walk) {
  auto doc = parse(body);
  if (!doc) return std::unexpected(doc.error());
  std::size_t i = 0;
  walk(*doc, [&](bj::string& s, const std::string* decoded) {
    if (i < texts.size()) {
      if (!decoded) {
        s = texts[i];
      } else if (*decoded != texts[i]) {  // an unchanged document keeps its bytes
        std::string url(data_url_prefix(s));
        url += detail::base64_encode(texts[i]);
        s = url;
      }
    }
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

// The same walks as visit_request and visit_answer, reading.
void read_file(sj::element part, RequestTexts& out) {
  sj::object file;
  if (part["file"].get(file)) {
    out.uninspectable.push_back("file");
    return;
  }
  std::string_view data;
  if (!file["file_data"].get(data)) {
    auto text = document_text(data);
    if (text) out.texts.push_back(std::move(*text));
    else out.uninspectable.push_back(text.error());
  } else {
    out.uninspectable.push_back(file["file_id"].error() ? "file" : "file_id");
  }
  std::string_view s;
  if (!file["context"].get(s)) out.texts.emplace_back(s);
  if (!file["filename"].get(s)) out.texts.emplace_back(s);
}

void read_content(sj::element content, RequestTexts& out) {
  std::string_view text;
  if (!content.get(text)) {
    out.texts.emplace_back(text);
    return;
  }
  sj::array parts;
  if (content.get(parts)) return;
  for (sj::element part : parts) {
    std::string_view type;
    if (part["type"].get(type)) continue;
    if (type == "text") {
      if (!part["text"].get(text)) out.texts.emplace_back(text);
    } else if (type == "file") {
      read_file(part, out);
    }
  }
}

// The same walk as visit_tool_calls: each arguments string is JSON text (listed in `json`).
void read_tool_calls(sj::element message, std::vector<std::string>& texts, std::vector<std::size_t>& json) {
  std::string_view args;
  sj::array calls;
  if (!message["tool_calls"].get(calls))
    for (sj::element call : calls)
      if (!call["function"]["arguments"].get(args)) {
        json.push_back(texts.size());
        texts.emplace_back(args);
      }
  if (!message["function_call"]["arguments"].get(args)) {
    json.push_back(texts.size());
    texts.emplace_back(args);
  }
}

// The same walk as visit_reasoning.
void read_reasoning(sj::element message, std::vector<std::string>& out) {
  std::string_view text;
  if (!message["reasoning_content"].get(text)) out.emplace_back(text);
  sj::array blocks;
  if (message["thinking_blocks"].get(blocks)) return;
  for (sj::element b : blocks)
    if (!b["thinking"].get(text)) out.emplace_back(text);
}

void read_text_blocks(sj::element message, std::vector<std::string>& out) {
  sj::array blocks;
  if (message["text_blocks"].get(blocks)) return;
  for (sj::element b : blocks) {
    std::string_view text;
    if (!b["text"].get(text)) out.emplace_back(text);
    sj::array citations;
    if (b["citations"].get(citations)) continue;
    for (sj::element c : citations)
      if (!c["cited_text"].get(text)) out.emplace_back(text);
  }
}

// Stream chunks: the string a check reads in one choice's delta, and the walks over a
// chunk's choices that read or replace it.
using DeltaField = bj::value* (*)(bj::object& delta);

bj::value* delta_content(bj::object& delta) { return delta.if_contains("content"); }

bj::value* delta_reasoning(bj::object& delta) { return delta.if_contains("reasoning_content"); }

bj::value* delta_cited_text(bj::object& delta) {
  bj::value* citation = delta.if_contains("citation");
  return citation && citation->is_object() ? citation->as_object().if_contains("cited_text") : nullptr;
}

// An element's `index` when it is a non-negative integer, else its position in its array
// (choices and tool calls both number themselves this way).
std::size_t index_of(const bj::object& o, std::size_t position) {
  if (const bj::value* i = o.if_contains("index"); i && i->is_int64() && i->as_int64() >= 0)
    return static_cast<std::size_t>(i->as_int64());
  return position;
}

// Calls `on(choice index, its delta object)` for each choice of a chunk that has a delta.
template <typename On>
void each_choice_delta(bj::value& doc, On&& on) {
  if (!doc.is_object()) return;
  bj::value* choices = doc.as_object().if_contains("choices");
  if (!choices || !choices->is_array()) return;
  std::size_t position = 0;
  for (bj::value& c : choices->as_array()) {
    const std::size_t at = position++;
    if (!c.is_object()) continue;
    bj::value* delta = c.as_object().if_contains("delta");
    if (delta && delta->is_object()) on(index_of(c.as_object(), at), delta->as_object());
  }
}

// Calls `on(choice index, the field's string)` for each choice whose delta has it.
template <typename On>
void each_delta(bj::value& doc, DeltaField field, On&& on) {
  each_choice_delta(doc, [&](std::size_t choice, bj::object& delta) {
    bj::value* v = field(delta);
    if (v && v->is_string()) on(choice, *v);
  });
}

// A field's texts read out of a parsed chunk, and written back (the list the reader gave,
// texts replaced).
std::vector<DeltaText> read_deltas(bj::value& doc, DeltaField field) {
  std::vector<DeltaText> out;
  each_delta(doc, field, [&](std::size_t index, bj::value& v) { out.push_back({index, std::string(v.as_string())}); });
  return out;
}

void write_deltas(bj::value& doc, std::span<const DeltaText> texts, DeltaField field) {
  std::size_t next = 0;
  each_delta(doc, field, [&](std::size_t index, bj::value& v) {
    if (next < texts.size() && texts[next].choice == index) v = bj::string(texts[next++].text);
  });
}

Result<std::vector<DeltaText>> read_deltas(std::string_view chunk_json, DeltaField field) {
  auto doc = parse(chunk_json);
  if (!doc) return std::unexpected(doc.error());
  return read_deltas(*doc, field);
}

Result<std::string> write_deltas(std::string_view chunk_json, std::span<const DeltaText> texts, DeltaField field) {
  auto doc = parse(chunk_json);
  if (!doc) return std::unexpected(doc.error());
  write_deltas(*doc, texts, field);
  return bj::serialize(*doc);
}

// Calls `on(choice index, tool call index, the arguments string)` for each tool call in a
// chunk's deltas that carries an arguments fragment. A tool call without `index` takes its
// position in the array, as a choice without one does. A legacy function_call's arguments
// come after the choice's tool calls, as tool kFunctionCall.
template <typename On>
void each_delta_call(bj::value& doc, On&& on) {
  each_choice_delta(doc, [&](std::size_t choice, bj::object& delta) {
    if (bj::value* calls = delta.if_contains("tool_calls"); calls && calls->is_array()) {
      std::size_t position = 0;
      for (bj::value& call : calls->as_array()) {
        const std::size_t at = position++;
        if (!call.is_object()) continue;
        if (bj::string* args = arguments_of(call.as_object().if_contains("function")))
          on(choice, index_of(call.as_object(), at), *args);
      }
    }
    if (bj::string* args = arguments_of(delta.if_contains("function_call"))) on(choice, kFunctionCall, *args);
  });
}

}  // namespace

Result<RequestTexts> request_texts(std::string_view body) {
  auto doc = read(body);
  if (!doc) return std::unexpected(doc.error());
  RequestTexts out;
  sj::array messages;
  if ((*doc)["messages"].get(messages)) return out;
  for (sj::element m : messages) {
    sj::element content;
    if (!m["content"].get(content)) read_content(content, out);
    read_reasoning(m, out.texts);
    read_tool_calls(m, out.texts, out.json);
  }
  return out;
}

Result<std::string> with_request_texts(std::string_view body, std::span<const std::string> texts) {
  return replace(body, texts, visit_request);
}

Result<AnswerTexts> answer_texts(std::string_view body) {
  auto doc = read(body);
  if (!doc) return std::unexpected(doc.error());
  RequestTexts out;
  AnswerTexts answer;
  sj::array choices;
  if ((*doc)["choices"].get(choices)) return answer;
  for (sj::element c : choices) {
    sj::element message;
    if (c["message"].get(message)) continue;
    sj::element content;
    if (!message["content"].get(content)) read_content(content, out);
    read_text_blocks(message, out.texts);
    read_reasoning(message, out.texts);
    read_tool_calls(message, out.texts, answer.json);
  }
  answer.texts = std::move(out.texts);
  return answer;
}

Result<std::string> with_answer_texts(std::string_view body, std::span<const std::string> texts) {
  return replace(body, texts, visit_answer);
}

Result<std::vector<DeltaText>> delta_texts(std::string_view chunk_json) { return read_deltas(chunk_json, delta_content); }

Result<std::string> with_delta_texts(std::string_view chunk_json, std::span<const DeltaText> texts) {
  return write_deltas(chunk_json, texts, delta_content);
}

Result<std::vector<DeltaText>> delta_cited_texts(std::string_view chunk_json) {
  return read_deltas(chunk_json, delta_cited_text);
}

Result<std::string> with_delta_cited_texts(std::string_view chunk_json, std::span<const DeltaText> texts) {
  return write_deltas(chunk_json, texts, delta_cited_text);
}

DeltaChunk::DeltaChunk() = default;
DeltaChunk::DeltaChunk(DeltaChunk&&) noexcept = default;
DeltaChunk& DeltaChunk::operator=(DeltaChunk&&) noexcept = default;
DeltaChunk::~DeltaChunk() = default;

Result<DeltaChunk> DeltaChunk::read(std::string_view chunk_json) {
  auto doc = parse(chunk_json);
  if (!doc) return std::unexpected(doc.error());
  DeltaChunk c;
  c.doc_ = std::make_unique<bj::value>(std::move(*doc));
  c.content = read_deltas(*c.doc_, delta_content);
  c.reasoning = read_deltas(*c.doc_, delta_reasoning);
  each_delta_call(*c.doc_, [&](std::size_t choice, std::size_t tool, bj::string& args) {
    c.arguments.push_back({choice, tool, std::string(args)});
  });
  return c;
}

std::string DeltaChunk::write() {
  write_deltas(*doc_, content, delta_content);
  write_deltas(*doc_, reasoning, delta_reasoning);
  std::size_t next = 0;
  each_delta_call(*doc_, [&](std::size_t choice, std::size_t tool, bj::string& args) {
    if (next < arguments.size() && arguments[next].choice == choice && arguments[next].tool == tool)
      args = arguments[next++].text;
  });
  return bj::serialize(*doc_);
}

namespace {

// {"id":…,"object":"chat.completion.chunk","created":0,"model":…,"choices":[{"index":N,"delta":
std::string chunk_head(std::string_view id, std::string_view model, std::size_t choice) {
  std::string out = "{\"id\":";
  bulwark::json::append_string(out, id);
  out += ",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":";
  bulwark::json::append_string(out, model);
  out += ",\"choices\":[{\"index\":";
  bulwark::json::append_int(out, static_cast<std::int64_t>(choice));
  out += ",\"delta\":";
  return out;
}

constexpr std::string_view kChunkTail = ",\"finish_reason\":null}]}";

// A chunk whose delta is the one string field `key` (a name without anything to escape).
std::string string_delta_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view key,
                               std::string_view text) {
  std::string out = chunk_head(id, model, choice);
  out += "{\"";
  out += key;
  out += "\":";
  bulwark::json::append_string(out, text);
  out += '}';
  out += kChunkTail;
  return out;
}

}  // namespace

std::string text_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text) {
  return string_delta_chunk(id, model, choice, "content", text);
}

std::string reasoning_chunk(std::string_view id, std::string_view model, std::size_t choice, std::string_view text) {
  return string_delta_chunk(id, model, choice, "reasoning_content", text);
}

std::string tool_arguments_chunk(std::string_view id, std::string_view model, std::size_t choice, std::size_t tool,
                                 std::string_view arguments) {
  std::string out = chunk_head(id, model, choice);
  if (tool == kFunctionCall) {
    out += "{\"function_call\":{\"arguments\":";
    bulwark::json::append_string(out, arguments);
    out += "}}";
  } else {
    out += "{\"tool_calls\":[{\"index\":";
    bulwark::json::append_int(out, static_cast<std::int64_t>(tool));
    out += ",\"function\":{\"arguments\":";
    bulwark::json::append_string(out, arguments);
    out += "}}]}";
  }
  out += kChunkTail;
  return out;
}

}  // namespace bulwark::api::openai
