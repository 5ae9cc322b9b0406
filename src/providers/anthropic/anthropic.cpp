#include "providers/anthropic/anthropic.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include "api/anthropic/messages.hpp"
#include "providers/bedrock/errors.hpp"
#include "providers/openai/openai.hpp"
#include "providers/upstream_detail.hpp"

namespace bulwark::providers::anthropic {
namespace {

namespace cn = api::canonical;
namespace am = api::anthropic;

std::string_view json_string(const boost::json::object& o, std::string_view key) {
  if (const auto* v = o.if_contains(key); v != nullptr && v->is_string()) return v->get_string();
  return {};
}

class Stream final : public OpenAIStream {
 public:
  Stream(std::string_view target_model, std::string_view request_id) : sink_(target_model, request_id) {}

  Status feed(std::string_view bytes, std::string& out) override {
    if (failed_) return {};
    Status status;
    splitter_.feed(bytes, [&](std::string_view event) {
      if (!status || failed_) return;
      events_.clear();
      if (auto ok = decoder_.feed_sse(event, events_); !ok) {
        status = std::unexpected(std::move(ok).error());
        return;
      }
      for (const cn::StreamEvent& e : events_)
        if (std::holds_alternative<cn::StreamError>(e)) failed_ = true;
      sink_.emit(events_, out);
    });
    return status;
  }

  std::optional<cn::Usage> start_usage() const override { return sink_.start_usage(); }

  Status finish(std::string& out) override {
    if (failed_ || sink_.done()) return {};
    if (splitter_.has_partial()) {
      // A last event without its blank line: take it as complete (the body did end).
      std::string rest;
      splitter_.feed("\n\n", [&](std::string_view event) { rest.assign(event); });
      if (!rest.empty()) {
        events_.clear();
        if (auto ok = decoder_.feed_sse(rest, events_); !ok) return ok;
        sink_.emit(events_, out);
      }
    }
    events_.clear();
    decoder_.finish(events_);
    sink_.emit(events_, out);
    return {};
  }

 private:
  openai::SseSplitter splitter_;
  am::StreamDecoder decoder_;
  detail::OpenAISink sink_;
  std::vector<cn::StreamEvent> events_;
  bool failed_ = false;
};

}  // namespace

Result<UpstreamRequest> build_request(const config::Provider& provider, std::string_view target_model,
                                      std::string_view openai_body, bool stream) {
  auto req = detail::decode_openai(openai_body, stream);
  if (!req) return std::unexpected(std::move(req).error());
  auto body = am::encode_request(*req, target_model);
  if (!body) return std::unexpected(std::move(body).error());
  UpstreamRequest out{bhttp::verb::post, provider.endpoint.path_prefix + "/v1/messages", 11};
  out.set(bhttp::field::host, provider.endpoint.authority());
  out.set(bhttp::field::content_type, "application/json");
  out.set(bhttp::field::accept, stream ? "text/event-stream" : "application/json");
  out.set(bhttp::field::user_agent, "bulwark/" BULWARK_VERSION);
  out.set("anthropic-version", provider.anthropic_version);
  if (!provider.api_key.empty()) out.set("x-api-key", provider.api_key.reveal());
  for (const auto& [name, value] : provider.headers) out.set(name, value);
  out.keep_alive(true);
  out.body() = std::move(*body);
  out.prepare_payload();
  return out;
}

Result<std::string> openai_answer(std::string_view target_model, std::string_view body, std::string_view request_id) {
  auto resp = am::decode_response(body);
  if (!resp) return std::unexpected(std::move(resp).error());
  return detail::openai_from(std::move(*resp), target_model, request_id);
}

std::unique_ptr<OpenAIStream> make_stream(std::string_view target_model, std::string_view request_id) {
  return std::make_unique<Stream>(target_model, request_id);
}

Error classify_error(unsigned status, const resilience::HeaderLookup& headers, std::string_view body,
                     std::string_view target_id) {
  std::string type, message;
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    if (const auto* err = o.if_contains("error"); err != nullptr && err->is_object()) {
      type = json_string(err->get_object(), "type");
      message = json_string(err->get_object(), "message");
    }
  }
  const std::string where = detail::where(target_id, status);
  auto upstream = [&](ErrorKind kind, bool retryable, std::string msg) {
    return Error{kind, Origin::upstream, retryable, std::move(msg), {}, static_cast<int>(status), std::nullopt};
  };
  const std::string detail = message.empty() ? where : message;
  Error e;
  if (status == 529 || type == "overloaded_error") {
    e = upstream(ErrorKind::upstream_overloaded, true, where + ": overloaded");
  } else if (status == 429 || type == "rate_limit_error") {
    e = upstream(ErrorKind::upstream_rate_limited, true, where + ": rate limited");
  } else if (status == 401 || status == 403 || type == "authentication_error" || type == "permission_error") {
    e = upstream(ErrorKind::upstream_auth, false, where + ": the gateway's credentials for this provider were refused");
  } else if (status == 404 || type == "not_found_error") {
    e = upstream(ErrorKind::upstream_not_found, false, where + ": model or route not found");
  } else if (status == 413 || type == "request_too_large") {
    e = upstream(ErrorKind::upstream_bad_request, false, detail);
  } else if (status == 400 || status == 422 || type == "invalid_request_error") {
    if (bedrock::is_context_length_message(message) || detail::contains_ci(message, "context limit"))
      e = upstream(ErrorKind::context_length_exceeded, false, detail);
    else
      e = upstream(ErrorKind::upstream_bad_request, false, detail);
  } else if (status == 503) {
    e = upstream(ErrorKind::upstream_overloaded, true, where + ": overloaded");
  } else if (status == 408 || status == 504) {
    e = upstream(ErrorKind::upstream_server_error, true, where + ": upstream timed out");
  } else if (status >= 500) {
    e = upstream(ErrorKind::upstream_server_error, true, where);
  } else {
    e = upstream(ErrorKind::upstream_bad_request, false, detail);
  }
  // Anthropic says whether a retry may help; it decides for the kinds a retry can fix.
  if (headers && !is_callers_fault(e.kind) && e.kind != ErrorKind::upstream_auth) {
    if (auto should = headers("x-should-retry")) {
      if (*should == "true") e.retryable = true;
      else if (*should == "false") e.retryable = false;
    }
  }
  return e;
}

}  // namespace bulwark::providers::anthropic
