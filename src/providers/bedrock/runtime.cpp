#include "providers/bedrock/runtime.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <optional>
#include <variant>
#include <vector>

#include "api/bedrock/converse.hpp"
#include "api/bedrock/invoke.hpp"
#include "providers/bedrock/errors.hpp"
#include "providers/bedrock/eventstream.hpp"
#include "providers/bedrock/sigv4.hpp"
#include "providers/upstream_detail.hpp"

namespace bulwark::providers::aws_bedrock {
namespace {

namespace cn = api::canonical;
namespace ab = api::bedrock;
namespace es = bulwark::bedrock::eventstream;
using Api = config::Provider::Bedrock::Api;

bool invoke_api(const config::Provider& p) noexcept { return p.bedrock.api == Api::invoke; }

Result<ab::invoke::Family> family(std::string_view target_model) {
  if (auto f = ab::invoke::family_of(target_model)) return *f;
  return std::unexpected(Error::gateway(
      ErrorKind::internal, "bedrock InvokeModel has no translation for the model family of `" + std::string(target_model) +
                               "` (Claude, Llama 3, Titan Text and Nova are translated); use `api: converse` for it"));
}

class Stream final : public OpenAIStream {
 public:
  Stream(const config::Provider& provider, std::string_view target_model, std::string_view request_id)
      : sink_(target_model, request_id) {
    if (invoke_api(provider))
      if (auto f = ab::invoke::family_of(target_model)) invoke_.emplace(*f);
  }

  Status feed(std::string_view bytes, std::string& out) override {
    if (failed_) return {};
    decoder_.feed(bytes);
    for (;;) {
      auto next = decoder_.next();
      if (!next) {
        failed_ = true;
        return std::unexpected(bulwark::bedrock::map_decode_error(next.error()));
      }
      if (!*next) return {};
      events_.clear();
      if (auto ok = handle(**next); !ok) {
        failed_ = true;
        return ok;
      }
      sink_.emit(events_, out);
      if (failed_) return {};
    }
  }

  std::optional<cn::Usage> start_usage() const override { return sink_.start_usage(); }

  Status finish(std::string& out) override {
    if (failed_ || sink_.done()) return {};
    events_.clear();
    if (auto ended = decoder_.finish(); !ended) {
      events_.emplace_back(cn::StreamError{bulwark::bedrock::map_decode_error(ended.error())});
    } else if (invoke_) {
      invoke_->finish(events_);
    } else {
      converse_.finish(events_);
    }
    sink_.emit(events_, out);
    return {};
  }

 private:
  Status handle(const es::Message& m) {
    switch (es::message_type(m)) {
      case es::MessageType::exception:
      case es::MessageType::error:
        events_.emplace_back(cn::StreamError{bulwark::bedrock::map_stream_exception(m)});
        failed_ = true;
        return {};
      case es::MessageType::unknown:
        return {};
      case es::MessageType::event:
        break;
    }
    const std::string_view type = es::event_type(m).value_or("");
    if (invoke_) {
      if (type != "chunk") return {};
      auto json = ab::invoke::chunk_json(m.payload);
      if (!json) return std::unexpected(std::move(json).error());
      return invoke_->feed(*json, events_);
    }
    return converse_.feed(type, m.payload, events_);
  }

  es::Decoder decoder_;
  std::optional<ab::invoke::StreamDecoder> invoke_;
  ab::converse::StreamDecoder converse_;
  detail::OpenAISink sink_;
  std::vector<cn::StreamEvent> events_;
  bool failed_ = false;
};

}  // namespace

std::string request_path(const config::Provider& provider, std::string_view model_id, bool stream) {
  std::string path = provider.endpoint.path_prefix;
  path += "/model/";
  path += bulwark::bedrock::uri_encode(model_id, false);
  if (invoke_api(provider)) path += stream ? "/invoke-with-response-stream" : "/invoke";
  else path += stream ? "/converse-stream" : "/converse";
  return path;
}

Status check_model(const config::Provider& provider, std::string_view target_model) {
  if (!invoke_api(provider)) return {};
  auto f = family(target_model);
  if (!f) return std::unexpected(std::move(f).error());
  return {};
}

Result<UpstreamRequest> build_request(const config::Provider& provider, const bulwark::bedrock::Auth& auth,
                                      std::string_view target_model, std::string_view openai_body, bool stream,
                                      std::chrono::system_clock::time_point now, std::string* dropped) {
  auto req = detail::decode_openai(openai_body, stream);
  if (!req) return std::unexpected(std::move(req).error());
  Result<std::string> body;
  bool caches = false;  // whether the target's body carries cache breakpoints
  if (invoke_api(provider)) {
    auto f = family(target_model);
    if (!f) return std::unexpected(std::move(f).error());
    body = ab::invoke::encode_request(*req, *f, target_model);
    caches = *f == ab::invoke::Family::anthropic || *f == ab::invoke::Family::nova;
  } else {
    body = ab::converse::encode_request(*req, target_model);
    caches = ab::converse::takes_cache_points(target_model);
  }
  if (!body) return std::unexpected(std::move(body).error());
  if (dropped != nullptr && !caches && api::canonical::has_cache_marks(*req)) *dropped = "cache_control";

  UpstreamRequest out{bhttp::verb::post, request_path(provider, target_model, stream), 11};
  const std::string host = provider.endpoint.authority();
  const std::string_view accept = stream ? "application/vnd.amazon.eventstream" : "application/json";
  out.set(bhttp::field::host, host);
  out.set(bhttp::field::content_type, "application/json");
  out.set(bhttp::field::accept, accept);
  out.set(bhttp::field::user_agent, "bulwark/" BULWARK_VERSION);
  if (invoke_api(provider)) out.set("x-amzn-bedrock-accept", "application/json");
  for (const auto& [name, value] : provider.headers) out.set(name, value);
  if (const auto* bearer = std::get_if<bulwark::bedrock::BearerToken>(&auth)) {
    out.set(bhttp::field::authorization, bearer->authorization_header());
  } else {
    const auto& creds = std::get<bulwark::bedrock::Credentials>(auth);
    // Signed: host, content-type, accept, plus x-amz-date, x-amz-content-sha256 and the
    // session token the signer adds. Extra configured headers travel unsigned.
    const bulwark::bedrock::HeaderField fields[] = {
        {"host", host}, {"content-type", "application/json"}, {"accept", accept}};
    const bulwark::bedrock::SigningInput in{"POST", std::string_view(out.target().data(), out.target().size()), "",
                                            fields, *body};
    thread_local bulwark::bedrock::SigningKeyCache keys;  // per worker: no lock shared across threads
    const auto signed_headers =
        bulwark::bedrock::sign(in, creds, provider.bedrock.region, "bedrock", now, {}, &keys);
    for (const auto& [name, value] : signed_headers.fields()) out.set(name, value);
  }
  out.keep_alive(true);
  out.body() = std::move(*body);
  out.prepare_payload();
  return out;
}

Result<std::string> openai_answer(const config::Provider& provider, std::string_view target_model,
                                  std::string_view body, std::string_view request_id) {
  Result<cn::ChatResponse> resp;
  if (invoke_api(provider)) {
    auto f = family(target_model);
    if (!f) return std::unexpected(std::move(f).error());
    resp = ab::invoke::decode_response(body, *f);
  } else {
    resp = ab::converse::decode_response(body);
  }
  if (!resp) return std::unexpected(std::move(resp).error());
  return detail::openai_from(std::move(*resp), target_model, request_id);
}

std::unique_ptr<OpenAIStream> make_stream(const config::Provider& provider, std::string_view target_model,
                                          std::string_view request_id) {
  return std::make_unique<Stream>(provider, target_model, request_id);
}

Error classify_error(unsigned status, const resilience::HeaderLookup& headers, std::string_view body,
                     std::string_view target_id) {
  std::string_view type;
  if (headers)
    if (auto t = headers("x-amzn-errortype")) type = *t;
  Error e = bulwark::bedrock::map_http_error(static_cast<int>(status), type, body);
  e.upstream_status = static_cast<int>(status);
  const std::string where = detail::where(target_id, status);
  const std::string name = bulwark::bedrock::normalize_error_type(type);
  switch (e.kind) {
    case ErrorKind::upstream_auth:
      // AWS's words can name the key or the account: never passed on.
      e.message = where + ": the gateway's credentials for this provider were refused" + (name.empty() ? "" : " (" + name + ")");
      break;
    case ErrorKind::upstream_bad_request:
    case ErrorKind::context_length_exceeded:
    case ErrorKind::content_filtered:
      break;  // "bedrock: ValidationException: <what the caller got wrong>"
    default:
      e.message = where + ": " + e.message;
  }
  return e;
}

}  // namespace bulwark::providers::aws_bedrock
