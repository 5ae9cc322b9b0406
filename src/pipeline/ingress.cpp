#include "pipeline/ingress.hpp"

#include "core/percent.hpp"

#include <boost/json.hpp>
#include <vector>

#include "api/anthropic/messages.hpp"
#include "api/bedrock/converse.hpp"
#include "api/bedrock/invoke.hpp"
#include "api/canonical/stream.hpp"
#include "api/openai/chat.hpp"
#include "api/openai/translate.hpp"
#include "core/json_write.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "providers/openai/openai.hpp"

namespace bulwark::pipeline {
namespace {

namespace asio = boost::asio;
namespace cn = api::canonical;
namespace am = api::anthropic;
namespace ab = api::bedrock;
namespace es = bedrock::eventstream;
using Family = ab::invoke::Family;

constexpr std::string_view kEventStream = "application/vnd.amazon.eventstream";


std::uint64_t seed_of(std::string_view text) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// An InvokeModel caller's model family: from the model id, else from the body's shape.
std::optional<Family> invoke_family(std::string_view model, std::string_view body) {
  if (auto f = ab::invoke::family_of(model)) return f;
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  if (o.contains("anthropic_version")) return Family::anthropic;
  if (o.contains("prompt")) return Family::llama3;
  if (o.contains("inputText")) return Family::titan_text;
  if (o.contains("messages") || o.contains("schemaVersion")) return Family::nova;
  return std::nullopt;
}

// An OpenAI error object ({"message","type","param","code"}) back to the Error it was
// written from: the kind whose code (and status, when known) match core/error.cpp's table.
Error error_from_openai(const boost::json::object& err, unsigned status) {
  auto str = [&](std::string_view key) -> std::string {
    if (const auto* v = err.if_contains(key); v != nullptr && v->is_string()) return std::string(v->get_string());
    return {};
  };
  const std::string code = str("code"), type = str("type");
  std::optional<ErrorKind> kind;
  const auto last = static_cast<std::size_t>(ErrorKind::internal);
  for (int pass = 0; pass < 3 && !kind; ++pass) {
    for (std::size_t i = 0; i <= last && !kind; ++i) {
      const ErrorShape& s = shape_of(static_cast<ErrorKind>(i));
      const bool status_ok = status == 0 || s.http_status == static_cast<int>(status);
      if (pass == 0 && !code.empty() && s.openai_code == code && status_ok) kind = s.kind;
      if (pass == 1 && !code.empty() && s.openai_code == code) kind = s.kind;
      if (pass == 2 && status != 0 && s.http_status == static_cast<int>(status) && s.openai_type == type) kind = s.kind;
    }
  }
  if (!kind) {
    if (status == 0 || status >= 500) kind = ErrorKind::upstream_server_error;
    else if (status == 401) kind = ErrorKind::unauthenticated;
    else if (status == 403) kind = ErrorKind::permission_denied;
    else if (status == 404) kind = ErrorKind::model_not_found;
    else if (status == 429) kind = ErrorKind::rate_limited;
    else kind = ErrorKind::bad_request;
  }
  Error e{*kind, Origin::gateway, false, str("message"), str("param"), 0, std::nullopt};
  if (e.message.empty()) e.message = std::string(name_of(*kind));
  return e;
}

Error error_from_openai_body(std::string_view body, unsigned status) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (!ec && v.is_object())
    if (const auto* err = v.get_object().if_contains("error"); err != nullptr && err->is_object())
      return error_from_openai(err->get_object(), status);
  return error_from_openai(boost::json::object{}, status);
}

// The data of one SSE event ("data: ..." lines joined); nullopt for a comment-only event.
std::optional<std::string> sse_data(std::string_view event) {
  std::optional<std::string> data;
  while (!event.empty()) {
    const std::size_t nl = event.find('\n');
    std::string_view line = event.substr(0, nl);
    event.remove_prefix(nl == std::string_view::npos ? event.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.starts_with("data:")) continue;
    line.remove_prefix(5);
    if (line.starts_with(' ')) line.remove_prefix(1);
    if (data) data->push_back('\n');
    else data.emplace();
    data->append(line);
  }
  return data;
}

std::string bedrock_message(const Error& e) {
  std::string p = "{\"message\":";
  json::append_string(p, e.message);
  p += '}';
  return p;
}

void frame(const es::Message& m, std::string& out) {
  if (auto ok = es::encode_to(m, out); !ok) {
    // Only an oversized header could fail; the payloads here have no such limit.
    (void)es::encode_to(es::make_exception("internalServerException", "{\"message\":\"event too large\"}"), out);
  }
}

class PassThrough final : public Downstream {
 public:
  explicit PassThrough(Downstream& inner) : inner_(inner) {}
  asio::awaitable<bool> send(unsigned status, std::span<const Header> headers, std::string_view content_type,
                             std::string body) override {
    return inner_.send(status, headers, content_type, std::move(body));
  }
  asio::awaitable<bool> begin_stream(unsigned status, std::span<const Header> headers,
                                     std::string_view content_type) override {
    return inner_.begin_stream(status, headers, content_type);
  }
  asio::awaitable<bool> write(std::string_view bytes) override { return inner_.write(bytes); }
  asio::awaitable<bool> end_stream() override { return inner_.end_stream(); }
  asio::awaitable<bool> wait_hangup() override { return inner_.wait_hangup(); }

 private:
  Downstream& inner_;
};

class Translating final : public Downstream {
 public:
  Translating(Format format, Downstream& inner, std::string model, std::optional<Family> family)
      : format_(format), inner_(inner), model_(std::move(model)), family_(family.value_or(Family::anthropic)) {}

  asio::awaitable<bool> send(unsigned status, std::span<const Header> headers, std::string_view content_type,
                             std::string body) override {
    std::vector<Header> h = with_headers(headers);
    if (status >= 400) {
      Error e = error_from_openai_body(body, status);
      std::string out = error_answer(e, status, h);
      const bool ok = co_await inner_.send(status, h, "application/json", std::move(out));
      co_return ok;
    }
    auto resp = api::openai::decode_response(body);
    if (!resp) {
      // Not an answer we can read (it came from the pipeline, so this is a gateway bug).
      Error e = Error::gateway(ErrorKind::internal, "the gateway could not translate the answer");
      status = 500;
      std::string out = error_answer(e, status, h);
      const bool ok = co_await inner_.send(status, h, "application/json", std::move(out));
      co_return ok;
    }
    resp->model = model_;
    std::string out;
    const std::uint64_t seed = seed_of(request_id_);
    switch (format_) {
      case Format::anthropic: out = am::encode_response(*resp, seed); break;
      case Format::bedrock_converse: out = ab::converse::encode_response(*resp, seed); break;
      case Format::bedrock_invoke: out = ab::invoke::encode_response(*resp, family_, seed); break;
      case Format::openai: out = std::move(body); break;
    }
    (void)content_type;
    const bool ok = co_await inner_.send(status, h, "application/json", std::move(out));
    co_return ok;
  }

  asio::awaitable<bool> begin_stream(unsigned status, std::span<const Header> headers,
                                     std::string_view content_type) override {
    (void)content_type;
    std::vector<Header> h = with_headers(headers);
    const std::uint64_t seed = seed_of(request_id_);
    if (format_ == Format::anthropic) anthropic_.emplace(am::StreamOptions{{}, model_, seed});
    else if (format_ == Format::bedrock_converse) converse_.emplace(ab::converse::StreamOptions{seed});
    else invoke_.emplace(family_, ab::invoke::StreamOptions{{}, model_, seed});
    const std::string_view ct = format_ == Format::anthropic ? std::string_view("text/event-stream") : kEventStream;
    const bool ok = co_await inner_.begin_stream(status, h, ct);
    co_return ok;
  }

  asio::awaitable<bool> write(std::string_view bytes) override {
    out_.clear();
    splitter_.feed(bytes, [&](std::string_view event) { convert(event); });
    if (out_.empty()) co_return true;
    const bool ok = co_await inner_.write(out_);
    co_return ok;
  }

  asio::awaitable<bool> end_stream() override { return inner_.end_stream(); }
  asio::awaitable<bool> wait_hangup() override { return inner_.wait_hangup(); }

 private:
  // The pipeline's headers plus the caller format's own; views into this object.
  std::vector<Header> with_headers(std::span<const Header> headers) {
    std::vector<Header> h(headers.begin(), headers.end());
    for (const Header& x : headers)
      if (x.first == "x-bulwark-request-id") request_id_.assign(x.second);
    if (format_ != Format::anthropic && !request_id_.empty()) h.emplace_back("x-amzn-RequestId", request_id_);
    return h;
  }

  std::string error_answer(const Error& e, unsigned& status, std::vector<Header>& h) {
    if (format_ == Format::anthropic) return am::error_body(e);
    if (status == 401) status = 403;  // Bedrock never answers 401
    error_type_.assign(ab::error_type(e));
    h.emplace_back("x-amzn-ErrorType", error_type_);
    return ab::error_body(e);
  }

  void convert(std::string_view event) {
    if (done_) return;
    const std::optional<std::string> data = sse_data(event);
    if (!data) {
      if (format_ == Format::anthropic) out_.append(event);  // SSE comments: ignored by clients
      return;
    }
    events_.clear();
    bool is_error = false;
    if (data->starts_with("{\"error\"")) {
      boost::system::error_code ec;
      const boost::json::value v = boost::json::parse(*data, ec);
      if (!ec && v.is_object())
        if (const auto* err = v.get_object().if_contains("error"); err != nullptr && err->is_object()) {
          events_.emplace_back(cn::StreamError{error_from_openai(err->get_object(), 0)});
          is_error = true;
        }
    }
    if (!is_error)
      if (auto ok = decoder_.feed(*data, events_); !ok) events_.emplace_back(cn::StreamError{std::move(ok).error()});
    for (const cn::StreamEvent& e : events_) {
      encode(e);
      if (std::holds_alternative<cn::StreamError>(e) || std::holds_alternative<cn::MessageStop>(e)) {
        done_ = true;
        return;
      }
    }
  }

  void encode(const cn::StreamEvent& e) {
    if (anthropic_) {
      anthropic_->encode(e, out_);
      return;
    }
    if (converse_) {
      payloads_.clear();
      converse_->encode(e, payloads_);
      for (ab::StreamPayload& p : payloads_)
        frame(p.exception ? es::make_exception(p.event_type, std::move(p.payload)) : es::make_event(p.event_type, std::move(p.payload)), out_);
      return;
    }
    if (!invoke_) return;
    if (const auto* err = std::get_if<cn::StreamError>(&e)) {
      frame(es::make_exception(ab::stream_exception_type(err->error), bedrock_message(err->error)), out_);
      return;
    }
    chunks_.clear();
    invoke_->encode(e, chunks_);
    for (const std::string& c : chunks_) frame(es::make_event("chunk", ab::invoke::chunk_payload(c)), out_);
  }

  Format format_;
  Downstream& inner_;
  std::string model_;
  Family family_;
  std::string request_id_;
  std::string error_type_;
  providers::openai::SseSplitter splitter_;
  api::openai::StreamDecoder decoder_;
  std::optional<am::StreamEncoder> anthropic_;
  std::optional<ab::converse::StreamEncoder> converse_;
  std::optional<ab::invoke::StreamEncoder> invoke_;
  std::vector<cn::StreamEvent> events_;
  std::vector<ab::StreamPayload> payloads_;
  std::vector<std::string> chunks_;
  std::string out_;
  bool done_ = false;
};

}  // namespace

std::string_view to_string(Format format) noexcept {
  switch (format) {
    case Format::openai: return "openai";
    case Format::anthropic: return "anthropic";
    case Format::bedrock_converse: return "bedrock_converse";
    case Format::bedrock_invoke: return "bedrock_invoke";
  }
  return "openai";
}

std::optional<IngressRoute> match_ingress(std::string_view method, std::string_view path) {
  if (method != "POST") return std::nullopt;
  if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/v1/messages") return IngressRoute{Format::anthropic, {}, false};
  constexpr std::string_view kModel = "/model/";
  if (!path.starts_with(kModel)) return std::nullopt;
  path.remove_prefix(kModel.size());
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string_view op = path.substr(slash + 1);
  IngressRoute route;
  if (op == "converse") route = {Format::bedrock_converse, {}, false};
  else if (op == "converse-stream") route = {Format::bedrock_converse, {}, true};
  else if (op == "invoke") route = {Format::bedrock_invoke, {}, false};
  else if (op == "invoke-with-response-stream") route = {Format::bedrock_invoke, {}, true};
  else return std::nullopt;
  auto model = percent_decode(path.substr(0, slash));
  if (!model || model->empty()) return std::nullopt;
  route.model = std::move(*model);
  return route;
}

Result<std::string> to_openai_request(Format format, std::string_view caller_body, std::string_view model_from_path,
                                      bool stream_from_path) {
  Result<cn::ChatRequest> req;
  switch (format) {
    case Format::openai:
      return std::string(caller_body);
    case Format::anthropic:
      req = am::decode_request(caller_body);
      break;
    case Format::bedrock_converse:
      req = ab::converse::decode_request(caller_body);
      break;
    case Format::bedrock_invoke: {
      const auto family = invoke_family(model_from_path, caller_body);
      if (!family)
        return std::unexpected(Error::client(ErrorKind::bad_request,
                                             "InvokeModel: cannot tell the model family of `" + std::string(model_from_path) +
                                                 "` from its id or the body (Claude, Llama 3, Titan Text and Nova bodies are understood)."));
      req = ab::invoke::decode_request(caller_body, *family);
      break;
    }
  }
  if (!req) return std::unexpected(std::move(req).error());
  if (format != Format::anthropic) {
    req->model = std::string(model_from_path);
    req->stream = stream_from_path;
  }
  // The gateway's own form: what OpenAI has no field for (cache breakpoints, thinking and
  // its signed blocks) still reaches an Anthropic or Bedrock target.
  return api::openai::encode_request(*req, req->model, api::openai::RequestOptions{true});
}

std::unique_ptr<Downstream> translating_downstream(Format format, Downstream& inner, std::string model,
                                                   std::string_view caller_body) {
  if (format == Format::openai) return std::make_unique<PassThrough>(inner);
  std::optional<Family> family;
  if (format == Format::bedrock_invoke) family = invoke_family(model, caller_body);
  return std::make_unique<Translating>(format, inner, std::move(model), family);
}

}  // namespace bulwark::pipeline
