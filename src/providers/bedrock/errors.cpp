#include "providers/bedrock/errors.hpp"

#include <boost/json.hpp>

#include <array>
#include <cctype>

namespace bulwark::bedrock {
namespace {

constexpr std::size_t kMaxMessage = 512;

struct Row {
  std::string_view type;
  ErrorKind kind;
  bool retryable;
  int modeled_status;  // the HTTP status Bedrock's API model gives the exception
};

// Bedrock Runtime's modeled exceptions plus the common AWS auth errors.
constexpr std::array kRows{
    Row{"ThrottlingException", ErrorKind::upstream_rate_limited, true, 429},
    Row{"TooManyRequestsException", ErrorKind::upstream_rate_limited, true, 429},
    // A quota does not clear on an immediate retry to the same target; the kind still lets
    // the router fail over.
    Row{"ServiceQuotaExceededException", ErrorKind::upstream_rate_limited, false, 400},
    Row{"ModelNotReadyException", ErrorKind::upstream_overloaded, true, 429},
    Row{"ServiceUnavailableException", ErrorKind::upstream_overloaded, true, 503},
    Row{"ServiceUnavailable", ErrorKind::upstream_overloaded, true, 503},
    Row{"InternalServerException", ErrorKind::upstream_server_error, true, 500},
    Row{"InternalFailure", ErrorKind::upstream_server_error, true, 500},
    Row{"ModelTimeoutException", ErrorKind::first_token_timeout, true, 408},
    Row{"ModelStreamErrorException", ErrorKind::stream_truncated, true, 424},
    Row{"ModelErrorException", ErrorKind::upstream_server_error, false, 424},
    Row{"ValidationException", ErrorKind::upstream_bad_request, false, 400},
    Row{"AccessDeniedException", ErrorKind::upstream_auth, false, 403},
    Row{"UnrecognizedClientException", ErrorKind::upstream_auth, false, 403},
    Row{"InvalidSignatureException", ErrorKind::upstream_auth, false, 403},
    Row{"IncompleteSignatureException", ErrorKind::upstream_auth, false, 400},
    Row{"MissingAuthenticationTokenException", ErrorKind::upstream_auth, false, 403},
    Row{"ExpiredTokenException", ErrorKind::upstream_auth, false, 403},
    Row{"ResourceNotFoundException", ErrorKind::upstream_not_found, false, 404},
};

const Row* find_row(std::string_view type) noexcept {
  for (const auto& r : kRows)
    if (r.type == type) return &r;
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains(std::string_view hay, std::string_view needle) noexcept {
  return hay.find(needle) != std::string_view::npos;
}

Error by_status(int status) {
  Error e;
  e.origin = Origin::upstream;
  e.upstream_status = status;
  if (status == 429) {
    e.kind = ErrorKind::upstream_rate_limited;
    e.retryable = true;
  } else if (status == 503) {
    e.kind = ErrorKind::upstream_overloaded;
    e.retryable = true;
  } else if (status >= 500) {
    e.kind = ErrorKind::upstream_server_error;
    e.retryable = true;
  } else if (status == 401 || status == 403) {
    e.kind = ErrorKind::upstream_auth;
  } else if (status == 404) {
    e.kind = ErrorKind::upstream_not_found;
  } else if (status >= 400) {
    e.kind = ErrorKind::upstream_bad_request;
  } else {
    e.kind = ErrorKind::upstream_protocol;
  }
  return e;
}

std::string_view json_string(const boost::json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return v->get_string();
  return {};
}

}  // namespace

std::string normalize_error_type(std::string_view raw) {
  std::string_view t = raw;
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  if (auto colon = t.find(':'); colon != std::string_view::npos) t = t.substr(0, colon);
  if (auto hash = t.rfind('#'); hash != std::string_view::npos) t = t.substr(hash + 1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string out(t);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

bool is_context_length_message(std::string_view message) noexcept {
  std::string m;
  try {
    m = lower(message);
  } catch (...) {
    return false;
  }
  // Phrases Bedrock and the model providers behind it use for an over-long input.
  static constexpr std::array kPhrases{
      std::string_view{"input is too long"},
      std::string_view{"prompt is too long"},
      std::string_view{"too many input tokens"},
      std::string_view{"too many tokens"},
      std::string_view{"maximum context length"},
      std::string_view{"context length exceeded"},
      std::string_view{"context window"},
      std::string_view{"exceeds the context"},
      std::string_view{"input token count"},
      std::string_view{"maximum tokens you requested exceeds"},
  };
  for (auto p : kPhrases)
    if (contains(m, p)) return true;
  // "max_tokens: 8192 > 4096 ...", "prompt length plus max_tokens exceeds ..."
  bool about_tokens = contains(m, "max_tokens") || contains(m, "prompt length") ||
                      contains(m, "input length");
  return about_tokens && (contains(m, "exceed") || contains(m, " > "));
}

Error map_error(std::string_view error_type, int http_status, std::string_view message) {
  std::string type = normalize_error_type(error_type);
  const Row* row = find_row(type);
  Error e;
  if (row != nullptr) {
    e.kind = row->kind;
    e.retryable = row->retryable;
    e.origin = Origin::upstream;
    e.upstream_status = http_status != 0 ? http_status : row->modeled_status;
  } else {
    e = by_status(http_status);
  }
  if (e.kind == ErrorKind::upstream_bad_request && is_context_length_message(message)) {
    e.kind = ErrorKind::context_length_exceeded;
    e.retryable = false;
  }
  std::string text = "bedrock";
  if (!type.empty()) text += ": " + type;
  if (!message.empty()) {
    text += ": ";
    text.append(message.substr(0, kMaxMessage));
  }
  e.message = std::move(text);
  return e;
}

Error map_http_error(int http_status, std::string_view errortype_header, std::string_view body) {
  std::string_view type = errortype_header;
  std::string message;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    if (type.empty()) type = json_string(o, "__type");
    std::string_view msg = json_string(o, "message");
    if (msg.empty()) msg = json_string(o, "Message");
    message = msg;
  }
  // `type` may point into v, which lives until the end of this function.
  return map_error(type, http_status, message);
}

Error map_stream_exception(const eventstream::Message& m) {
  using eventstream::MessageType;
  MessageType mt = eventstream::message_type(m);
  if (mt == MessageType::error) {
    // Protocol-level errors carry no modeled type, only :error-code and :error-message.
    auto code = eventstream::error_code(m).value_or("");
    auto msg = eventstream::error_message(m).value_or("");
    Error e = map_error(code, 0, msg);
    if (find_row(normalize_error_type(code)) == nullptr) {
      e.kind = ErrorKind::upstream_server_error;
      e.retryable = false;
      e.origin = Origin::upstream;
    }
    return e;
  }
  auto type = eventstream::exception_type(m).value_or("");
  std::string message;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(m.payload, ec);
  if (!ec && v.is_object()) {
    std::string_view msg = json_string(v.get_object(), "message");
    if (msg.empty()) msg = json_string(v.get_object(), "Message");
    message = msg;
  }
  Error e = map_error(type, 0, message);
  if (find_row(normalize_error_type(type)) == nullptr) {
    // An exception type this table does not know, after the stream began.
    e.kind = ErrorKind::upstream_server_error;
    e.retryable = false;
  }
  return e;
}

Error map_decode_error(const eventstream::Error& err) {
  if (err.kind == eventstream::ErrorKind::truncated)
    return Error::transport(ErrorKind::stream_truncated, "bedrock event stream: " + err.message, false);
  return Error::transport(ErrorKind::upstream_protocol, "bedrock event stream: " + err.message, false);
}

}  // namespace bulwark::bedrock
