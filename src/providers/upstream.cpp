#include "providers/upstream.hpp"

#include <atomic>
#include <cctype>
#include <unordered_map>

#include "api/canonical/ids.hpp"
#include "api/openai/translate.hpp"
#include "providers/anthropic/anthropic.hpp"
#include "providers/bedrock/runtime.hpp"
#include "providers/openai/openai.hpp"
#include "providers/upstream_detail.hpp"

namespace bulwark::providers {

// ---- detail ------------------------------------------------------------------------

namespace detail {

namespace cn = api::canonical;

Result<cn::ChatRequest> decode_openai(std::string_view openai_body, bool stream) {
  auto req = api::openai::decode_request(openai_body);
  if (!req) return std::unexpected(std::move(req).error());
  req->stream = stream;
  return req;
}

std::uint64_t seed_of(std::string_view request_id) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const char c : request_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::int64_t unix_now() noexcept {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string openai_from(cn::ChatResponse resp, std::string_view target_model, std::string_view request_id) {
  if (resp.id.empty()) resp.id = std::string(request_id);
  if (resp.model.empty()) resp.model = std::string(target_model);
  if (resp.created == 0) resp.created = unix_now();
  return api::openai::encode_response(resp, seed_of(request_id));
}

std::string where(std::string_view target_id, unsigned status) {
  return "upstream " + std::string(target_id) + " returned HTTP " + std::to_string(status);
}

OpenAISink::OpenAISink(std::string_view target_model, std::string_view request_id)
    : encoder_(api::openai::StreamOptions{{}, std::string(target_model), unix_now(), true, seed_of(request_id)}),
      request_id_(request_id) {}

void OpenAISink::emit(std::vector<cn::StreamEvent>& events, std::string& out) {
  for (cn::StreamEvent& e : events) {
    if (done_) return;
    // The provider's message id keeps the answer's identity; without one (Bedrock) the
    // request id set at construction stands. The model named is the target's.
    if (auto* start = std::get_if<cn::MessageStart>(&e); start != nullptr) {
      if (start->id.empty()) start->id = request_id_;
      if (start->usage.prompt() > 0) start_usage_ = start->usage;
    }
    encoder_.encode(e, out);
    if (std::holds_alternative<cn::MessageStop>(e) || std::holds_alternative<cn::StreamError>(e)) done_ = true;
  }
}

bool contains_ci(std::string_view hay, std::string_view needle) noexcept {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && std::tolower(static_cast<unsigned char>(hay[i + j])) ==
                                    std::tolower(static_cast<unsigned char>(needle[j])))
      ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

}  // namespace detail

// ---- credentials -------------------------------------------------------------------

namespace cn = api::canonical;

namespace {

std::atomic<std::uint64_t> g_credential_generation{0};
constexpr auto kCredentialTtl = std::chrono::minutes(5);

bedrock::CredentialConfig credential_config(const config::Provider& p) {
  const auto& b = p.bedrock;
  bedrock::CredentialConfig c;
  auto set = [](std::optional<std::string>& out, const std::string& v) {
    if (!v.empty()) out = v;
  };
  set(c.access_key_id, b.access_key_id.reveal());
  set(c.secret_access_key, b.secret_access_key.reveal());
  set(c.session_token, b.session_token.reveal());
  set(c.bearer_token, b.bearer_token.reveal());
  set(c.profile, b.profile);
  set(c.credentials_file, b.credentials_file);
  return c;
}

bool same_config(const bedrock::CredentialConfig& a, const bedrock::CredentialConfig& b) {
  return a.access_key_id == b.access_key_id && a.secret_access_key == b.secret_access_key &&
         a.session_token == b.session_token && a.bearer_token == b.bearer_token && a.profile == b.profile &&
         a.credentials_file == b.credentials_file;
}

struct CachedAuth {
  bedrock::CredentialConfig config;
  std::uint64_t generation = 0;
  std::chrono::steady_clock::time_point resolved{};
  Result<bedrock::Auth> auth;
};

// Per worker thread, so the request path takes no lock; keyed by provider name and
// checked against the provider's settings (a reload may change them under the same name).
const Result<bedrock::Auth>& cached_auth(const config::Provider& p) {
  thread_local std::unordered_map<std::string, CachedAuth> cache;
  const auto now = std::chrono::steady_clock::now();
  const std::uint64_t generation = g_credential_generation.load(std::memory_order_relaxed);
  bedrock::CredentialConfig wanted = credential_config(p);
  auto it = cache.find(p.name);
  if (it != cache.end() && it->second.generation == generation && now - it->second.resolved < kCredentialTtl &&
      same_config(it->second.config, wanted))
    return it->second.auth;
  CachedAuth fresh{std::move(wanted), generation, now, resolve_auth(p, bedrock::process_environment())};
  auto [pos, inserted] = cache.insert_or_assign(p.name, std::move(fresh));
  (void)inserted;
  return pos->second.auth;
}

}  // namespace

Result<bedrock::Auth> resolve_auth(const config::Provider& provider, const bedrock::EnvLookup& env) {
  auto auth = bedrock::resolve_credentials(credential_config(provider), env);
  if (!auth) {
    Error e = std::move(auth).error();
    e.kind = ErrorKind::upstream_auth;
    e.origin = Origin::gateway;
    e.retryable = false;
    e.message = "provider " + provider.name + ": no usable AWS credentials: " + e.message;
    return std::unexpected(std::move(e));
  }
  return auth;
}

Status check_target(const config::Provider& provider, std::string_view target_model, const bedrock::EnvLookup& env) {
  if (provider.kind != config::ProviderKind::bedrock) return {};
  if (auto auth = resolve_auth(provider, env); !auth) return std::unexpected(std::move(auth).error());
  return aws_bedrock::check_model(provider, target_model);
}

void forget_credentials() noexcept { g_credential_generation.fetch_add(1, std::memory_order_relaxed); }

// ---- the dispatch --------------------------------------------------------------------

Result<UpstreamRequest> build_chat_request(const config::Provider& provider, std::string_view target_model,
                                           std::string_view openai_body, bool stream,
                                           std::chrono::system_clock::time_point now, std::string* dropped) {
  if (dropped != nullptr) dropped->clear();
  switch (provider.kind) {
    case config::ProviderKind::openai: {
      // A plain OpenAI body passes as it is; only the gateway's extended form is re-encoded.
      if (!api::openai::has_extensions(openai_body)) return openai::build_request(provider, std::string(openai_body), stream);
      auto req = detail::decode_openai(openai_body, stream);
      if (!req) return std::unexpected(std::move(req).error());
      auto body = api::openai::encode_request(*req, target_model);
      if (!body) return std::unexpected(std::move(body).error());
      if (dropped != nullptr && cn::has_cache_marks(*req)) *dropped = "cache_control";
      return openai::build_request(provider, std::move(*body), stream);
    }
    case config::ProviderKind::anthropic:
      return anthropic::build_request(provider, target_model, openai_body, stream);
    case config::ProviderKind::bedrock: {
      const Result<bedrock::Auth>& auth = cached_auth(provider);
      if (!auth) return std::unexpected(auth.error());
      return aws_bedrock::build_request(provider, *auth, target_model, openai_body, stream, now, dropped);
    }
  }
  return std::unexpected(Error::gateway(ErrorKind::internal, "unknown provider kind"));
}

Result<std::string> openai_answer(const config::Provider& provider, std::string_view target_model,
                                  std::string_view upstream_body, std::string_view request_id) {
  switch (provider.kind) {
    case config::ProviderKind::openai:
      return std::string(upstream_body);
    case config::ProviderKind::anthropic:
      return anthropic::openai_answer(target_model, upstream_body, request_id);
    case config::ProviderKind::bedrock:
      return aws_bedrock::openai_answer(provider, target_model, upstream_body, request_id);
  }
  return std::unexpected(Error::gateway(ErrorKind::internal, "unknown provider kind"));
}

namespace {
class PassThrough final : public OpenAIStream {
 public:
  Status feed(std::string_view bytes, std::string& out) override {
    out.append(bytes);
    return {};
  }
  Status finish(std::string&) override { return {}; }
};
}  // namespace

std::unique_ptr<OpenAIStream> OpenAIStream::make(const config::Provider& provider, std::string_view target_model,
                                                 std::string_view request_id) {
  switch (provider.kind) {
    case config::ProviderKind::anthropic:
      return anthropic::make_stream(target_model, request_id);
    case config::ProviderKind::bedrock:
      return aws_bedrock::make_stream(provider, target_model, request_id);
    case config::ProviderKind::openai:
      break;
  }
  return std::make_unique<PassThrough>();
}

Error classify_error(const config::Provider& provider, unsigned status, const resilience::HeaderLookup& headers,
                     std::string_view body, std::string_view target_id) {
  switch (provider.kind) {
    case config::ProviderKind::anthropic:
      return anthropic::classify_error(status, headers, body, target_id);
    case config::ProviderKind::bedrock:
      return aws_bedrock::classify_error(status, headers, body, target_id);
    case config::ProviderKind::openai:
      break;
  }
  return openai::classify_error(status, body, target_id);
}

}  // namespace bulwark::providers
