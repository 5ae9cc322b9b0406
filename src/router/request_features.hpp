#pragma once
// What the routing policy looks at in a request (docs/routing.md, "Request features").
// `RequestFeatures` is a cheap view assembled per request by the pipeline: the parts read
// from the body come from `extract_request_features` (owned by a `RequestExtract`), the
// rest (headers, the caller's key and team, the objective) from the pipeline itself.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace simdjson::dom {
class element;
}

namespace bulwark::router {

// A non-owning reference to `std::optional<std::string_view>(std::string_view name)`: a
// request header by lower-case name. No allocation; the callable must outlive the call.
class HeaderLookup {
 public:
  HeaderLookup() = default;
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, HeaderLookup> &&
             std::is_invocable_r_v<std::optional<std::string_view>, F&, std::string_view>)
  HeaderLookup(F& f) noexcept  // NOLINT(google-explicit-constructor)
      : ctx_(const_cast<void*>(static_cast<const void*>(&f))),
        fn_([](void* c, std::string_view n) -> std::optional<std::string_view> { return (*static_cast<F*>(c))(n); }) {}
  std::optional<std::string_view> operator()(std::string_view name) const {
    return fn_ ? fn_(ctx_, name) : std::nullopt;
  }
  explicit operator bool() const noexcept { return fn_ != nullptr; }

 private:
  void* ctx_ = nullptr;
  std::optional<std::string_view> (*fn_)(void*, std::string_view) = nullptr;
};

// The body-derived part of the features, owning its strings.
struct RequestExtract {
  std::string last_user_message;  // text parts of the last role=user message, joined by '\n'
  std::string user;               // the body's `user` field
  std::vector<std::pair<std::string, std::string>> metadata;  // the body's `metadata` (string values)
  std::uint64_t input_tokens = 0;  // estimate_input_tokens
  std::optional<std::int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  bool has_tools = false;   // non-empty `tools` or legacy `functions`
  bool has_images = false;  // an image_url / image / input_image content part
  std::size_t messages = 0;
  std::size_t images = 0;
};

// Token estimate without a tokenizer (documented in docs/routing.md): message text bytes
// / 4 (rounded up) + 4 per message + 512 per image + the bytes of every string in `tools`
// / `functions` (names, descriptions, schema keys and values) / 4. English BPE runs at about
// 4 bytes per token; this is for rules ("input_tokens gt 8000"), not for billing.
inline constexpr std::uint64_t kTokensPerMessage = 4;
inline constexpr std::uint64_t kTokensPerImage = 512;
inline constexpr std::uint64_t estimate_tokens_from_bytes(std::uint64_t bytes) noexcept { return (bytes + 3) / 4; }

// From an OpenAI chat completions body. `body` should have simdjson padding capacity (as
// api::openai::ChatRequest::body has); otherwise it is copied. Uses a thread-local
// simdjson DOM parser. Fails only on invalid JSON or a non-object.
Result<RequestExtract> extract_request_features(const std::string& body);
// From a document the caller already parsed with the simdjson DOM API (no second parse).
Result<RequestExtract> extract_request_features(const simdjson::dom::element& doc);

// Everything a rule can test. Views must outlive the decide() call.
struct RequestFeatures {
  HeaderLookup header;  // request headers by lower-case name (may be empty)
  const std::vector<std::pair<std::string, std::string>>* metadata = nullptr;
  std::string_view user;
  std::string_view key_name;  // the caller's virtual key name (rules' `key` globs)
  std::string_view key_id;    // ... or its id: a `key` glob may match either
  std::string_view team;
  std::uint64_t input_tokens = 0;
  std::optional<std::int64_t> max_tokens;
  bool has_tools = false;
  bool has_images = false;
  std::string_view last_user_message;  // the text the complexity scorer reads

  // The body-derived fields from `x` (which must outlive the features).
  static RequestFeatures from(const RequestExtract& x) noexcept {
    RequestFeatures f;
    f.metadata = &x.metadata;
    f.user = x.user;
    f.input_tokens = x.input_tokens;
    f.max_tokens = x.max_tokens;
    f.has_tools = x.has_tools;
    f.has_images = x.has_images;
    f.last_user_message = x.last_user_message;
    return f;
  }
  std::optional<std::string_view> metadata_value(std::string_view key) const noexcept {
    if (!metadata) return std::nullopt;
    for (const auto& [k, v] : *metadata)
      if (k == key) return std::string_view(v);
    return std::nullopt;
  }
};

}  // namespace bulwark::router
