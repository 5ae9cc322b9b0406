#include "mock/server.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <thread>
#include <tuple>
#include <vector>

#include "core/random.hpp"
#include "core/json_write.hpp"
#include "mock/anthropic.hpp"
#include "mock/bedrock.hpp"
#include "mock/openai.hpp"
#include "providers/bedrock/sigv4.hpp"

namespace bulwark::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

const OpenAIFormat kOpenAI;
const AnthropicFormat kAnthropic;
const BedrockConverseFormat kConverse;
const BedrockInvokeFormat kInvokeAnthropic{bedrock::Family::anthropic};
const BedrockInvokeFormat kInvokeMeta{bedrock::Family::meta};
const BedrockInvokeFormat kInvokeTitan{bedrock::Family::titan_text};
const BedrockInvokeFormat kInvokeNova{bedrock::Family::nova};
const BedrockInvokeFormat kInvokeUnknown{bedrock::Family::unknown};

const WireFormat& invoke_format(bedrock::Family f) {
  switch (f) {
    case bedrock::Family::anthropic: return kInvokeAnthropic;
    case bedrock::Family::meta: return kInvokeMeta;
    case bedrock::Family::titan_text: return kInvokeTitan;
    case bedrock::Family::nova: return kInvokeNova;
    case bedrock::Family::unknown: break;
  }
  return kInvokeUnknown;
}

// How one chat route is served.
struct ChatRoute {
  const WireFormat* wire = &kOpenAI;
  std::string_view api;          // for GET /_mock/last-request
  std::optional<bool> stream;    // fixed by the operation (Bedrock), else from the body
  std::string_view path_model;   // the model named by the path (Bedrock)
};

void append_hex16(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 0xf];
    v >>= 4;
  }
  out.append(buf, 16);
}

void append_hex(std::string& out, std::size_t v) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  (void)ec;
  out.append(buf, static_cast<std::size_t>(end - buf));
}

// One HTTP/1.1 chunk of a chunked body.
void append_chunk(std::string& out, std::string_view data) {
  append_hex(out, data.size());
  out += "\r\n";
  out += data;
  out += "\r\n";
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

struct Worker {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  FastRandom ids;
  bulwark::bedrock::SigningKeyCache signing_keys;  // SigV4 keys derived once a day, per worker
  std::thread thread;
  explicit Worker(std::uint64_t seed) : ids(seed) {}
};

// Headers beyond the fixed set.
struct Extra {
  std::uint64_t attempt = 0;  // 0: no x-mock-attempt header
  std::optional<Millis> retry_after;
  bool retry_after_in_ms = false;
  std::string_view headers{};  // more header lines, "\r\nname: value" each
};

// Everything one connection needs; buffers are reused across its requests.
struct Session {
  tcp::socket sock;
  Worker& worker;
  Engine& engine;
  const Clock& clock;
  const ServerOptions& opts;
  // The format of the route being served; control and transport errors use OpenAI's.
  const WireFormat* format = &kOpenAI;
  beast::flat_buffer in;
  std::string out;
  std::string body;
  std::string event;
  std::string model;
  std::string token;
  std::string headers;       // the format's own header lines for the current answer
  std::string auth_message;  // a rejection message that must outlive Engine::plan
  std::vector<bulwark::bedrock::HeaderField> fields;  // SigV4 verification input
  LastRequest last;
  asio::steady_timer timer;

  Session(tcp::socket s, Worker& w, Engine& e, const Clock& c, const ServerOptions& o)
      : sock(std::move(s)), worker(w), engine(e), clock(c), opts(o), timer(sock.get_executor()) {
    out.reserve(4096);
    body.reserve(2048);
  }

  void head(int status, std::string_view content_type, std::uint64_t request_id, bool keep_alive,
            const Extra& extra, std::optional<std::size_t> content_length) {
    out += "HTTP/1.1 ";
    json::append_int(out, status);
    out += ' ';
    out += http::obsolete_reason(static_cast<http::status>(status));
    out += "\r\nserver: bulwark-mock\r\ncontent-type: ";
    out += content_type;
    if (content_length) {
      out += "\r\ncontent-length: ";
      json::append_int(out, *content_length);
    } else {
      out += "\r\ntransfer-encoding: chunked\r\ncache-control: no-cache";
    }
    out += "\r\nx-request-id: req_";
    append_hex16(out, request_id);
    if (extra.attempt) {
      out += "\r\nx-mock-attempt: ";
      json::append_int(out, extra.attempt);
    }
    if (extra.retry_after) {
      const auto ms = extra.retry_after->count();
      out += "\r\nretry-after: ";
      json::append_int(out, (ms + 999) / 1000);
      if (extra.retry_after_in_ms) {
        out += "\r\nretry-after-ms: ";
        json::append_int(out, ms);
      }
    }
    out += extra.headers;
    if (!keep_alive) out += "\r\nconnection: close";
    out += "\r\n\r\n";
  }

  // A complete response with `body` as its body, plus the format's `headers`.
  void respond(int status, std::uint64_t request_id, bool keep_alive, Extra extra = Extra{},
               std::string_view content_type = "application/json") {
    out.clear();
    extra.headers = headers;
    head(status, content_type, request_id, keep_alive, extra, body.size());
    out += body;
  }

  // The body of an error outside the fault engine; also sets the format's headers.
  void error_body(ErrorType type, std::string_view message, int status = 0) {
    body.clear();
    format->append_error(body, type, message);
    headers.clear();
    ResponseInfo info;
    info.status = status ? status : default_status(type);
    info.error = type;
    format->append_headers(headers, info);
  }

  asio::awaitable<bool> flush() {
    if (out.empty()) co_return true;
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), nothrow);
    out.clear();
    co_return !ec;
  }

  asio::awaitable<bool> sleep(Millis d) {
    if (d.count() <= 0) co_return true;
    timer.expires_after(d);
    auto [ec] = co_await timer.async_wait(nothrow);
    co_return !ec;
  }

  // Reads and discards until the peer closes: the socket stays open meanwhile.
  asio::awaitable<void> drain() {
    char scratch[4096];
    for (;;) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(scratch), nothrow);
      if (ec) co_return;
    }
  }

  void close_gracefully() {
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  void close_with_reset() {
    boost::system::error_code ec;
    sock.set_option(asio::socket_base::linger(true, 0), ec);
    sock.close(ec);
  }

  AuthState anthropic_auth(const http::request<http::string_body>& req) const {
    AuthState a;
    a.required = opts.api_key.has_value();
    const auto it = req.find("x-api-key");
    a.present = it != req.end();
    a.valid = a.required && a.present && std::string_view(it->value()) == *opts.api_key;
    a.status = 401;
    a.provider_type = "authentication_error";
    a.message = a.present ? "invalid x-api-key" : "x-api-key header is required";
    return a;
  }

  AuthState bedrock_auth(const http::request<http::string_body>& req) {
    AuthState a;
    a.required = opts.aws_keys.has_value() || opts.aws_bearer_token.has_value();
    const auto it = req.find(http::field::authorization);
    a.present = it != req.end();
    if (!a.required) return a;
    const std::string_view value = a.present ? std::string_view(it->value()) : std::string_view{};
    a.status = 403;
    if (value.starts_with("Bearer ")) {
      a.valid = opts.aws_bearer_token && value.substr(7) == *opts.aws_bearer_token;
      a.provider_type = "AccessDeniedException";
      a.message = "Authentication failed: Please make sure your API Key is valid.";
      return a;
    }
    if (!opts.aws_keys) {
      // Only an API key is configured: a signed (or unsigned) request cannot be matched.
      a.provider_type = a.present ? "UnrecognizedClientException" : "MissingAuthenticationTokenException";
      a.message = a.present ? "The security token included in the request is invalid."
                            : "Missing Authentication Token";
      return a;
    }
    const std::string_view target = req.target();
    const auto q = target.find('?');
    fields.clear();
    for (const auto& f : req) fields.push_back({f.name_string(), f.value()});
    bulwark::bedrock::SigningInput signed_in;
    signed_in.method = req.method_string();
    signed_in.path = target.substr(0, q);
    signed_in.query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    signed_in.headers = fields;
    signed_in.payload = req.body();
    const auto& keys = *opts.aws_keys;
    const bulwark::bedrock::SecretLookup lookup =
        [&keys](std::string_view id) -> std::optional<bulwark::bedrock::VerifierSecret> {
      if (id != keys.access_key_id) return std::nullopt;
      return bulwark::bedrock::VerifierSecret{keys.secret_access_key, keys.session_token};
    };
    bulwark::bedrock::VerifyOptions vo;
    vo.region = opts.aws_region;
    vo.service = "bedrock";
    vo.max_skew = opts.aws_max_skew;
    vo.keys = &worker.signing_keys;  // as AWS does, a derived key serves a whole day of requests
    auto verified = bulwark::bedrock::verify(signed_in, lookup, clock.wall(), vo);
    if (verified) {
      a.valid = true;
      return a;
    }
    auth_message = std::move(verified.error().message);
    a.message = auth_message;
    a.status = verified.error().http_status();
    a.provider_type = verified.error().aws_type();
    return a;
  }

  AuthState auth_for(const WireFormat& wire, const http::request<http::string_body>& req) {
    if (&wire == &kAnthropic) return anthropic_auth(req);
    if (wire.family() == "bedrock") return bedrock_auth(req);
    return auth_of(req);
  }

  // Keeps this request as the format's last one, header names lower-cased. Credential
  // values are redacted; a SigV4 Authorization header is kept whole (it holds no secret
  // and shows the scope).
  void note_request(const http::request<http::string_body>& req, std::string_view family,
                    std::string_view api, std::string_view model_name) {
    last.api.assign(api);
    last.method.assign(req.method_string());
    last.target.assign(req.target());
    last.model.assign(model_name);
    last.headers.clear();
    for (const auto& f : req) {
      const std::string_view name = f.name_string();
      const std::string_view value = f.value();
      // Lower-cased, so tests can look names up whatever the client's spelling.
      for (char c : name) last.headers += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      last.headers += ": ";
      if (beast::iequals(name, "authorization")) {
        if (value.starts_with("AWS4-HMAC-SHA256")) last.headers += value;
        else {
          last.headers += value.substr(0, value.find(' '));
          last.headers += " <redacted>";
        }
      } else if (beast::iequals(name, "x-api-key") || beast::iequals(name, "x-amz-security-token") ||
                 beast::iequals(name, "api-key")) {
        last.headers += "<redacted>";
      } else {
        last.headers += value;
      }
      last.headers += '\n';
    }
    last.body.assign(req.body());
    last.at_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          clock.wall().time_since_epoch())
                          .count();
    engine.note_request(family, last);
  }

  AuthState auth_of(const http::request<http::string_body>& req) const {
    AuthState a;
    a.required = opts.api_key.has_value();
    const auto it = req.find(http::field::authorization);
    a.present = it != req.end();
    if (a.required && a.present) {
      const std::string_view v = it->value();
      a.valid = v.size() == 7 + opts.api_key->size() && v.starts_with("Bearer ") &&
                v.substr(7) == *opts.api_key;
    }
    return a;
  }

  // Token k (0-based) of the answer the plan sends, prefill remainder applied.
  std::string_view token_text(const Plan& p, std::uint32_t k) {
    token.clear();
    append_token(token, p.resume.first_token + k, p.tokens);
    std::string_view t = token;
    if (k == 0) t.remove_prefix(std::min<std::size_t>(p.resume.skip_chars, t.size()));
    return t;
  }

  // keep_going: flush `out` and read the next request; done: the connection is finished.
  enum class Next { keep_going, done };

  // `route` by value: the callers pass temporaries, which a coroutine must not keep by
  // reference. Its views point at constants or at the caller's frame, which outlives this.
  asio::awaitable<Next> chat(http::request<http::string_body>& req, bool keep_alive,
                             ChatRoute route) {
    const WireFormat& wire = *route.wire;
    format = &wire;
    const std::uint64_t id = worker.ids.next();
    if (&wire == &kAnthropic && req.find("anthropic-version") == req.end()) {
      // Anthropic checks this header before anything else in the request.
      note_request(req, wire.family(), route.api, {});
      engine.note_rejected(wire.family());
      error_body(ErrorType::invalid_request, "anthropic-version: header is required", 400);
      respond(400, id, keep_alive);
      co_return Next::keep_going;
    }
    auto decoded = wire.decode_chat(req.body());
    if (!decoded) {
      note_request(req, wire.family(), route.api, route.path_model);
      engine.note_rejected(wire.family());
      error_body(ErrorType::invalid_request, decoded.error().message, 400);
      respond(400, id, keep_alive);
      co_return Next::keep_going;
    }
    ChatRequest cr = *decoded;
    if (route.stream) cr.stream = *route.stream;
    if (!route.path_model.empty()) cr.model = route.path_model;
    model.assign(cr.model);  // the decoder's views die at the first suspension
    note_request(req, wire.family(), route.api, model);
    const Plan plan = engine.plan(cr, auth_for(wire, req));
    const bool stream = cr.stream;
    const AnswerMeta meta{id,
                          std::chrono::duration_cast<std::chrono::seconds>(
                              clock.wall().time_since_epoch())
                              .count(),
                          model, cr.include_usage, plan.prompt_tokens, cr.thinking,
                          std::move(cr.citation)};
    Extra extra{plan.attempt, std::nullopt, false, {}};
    ResponseInfo info;
    info.plan = &plan;
    info.id = id;
    info.stream = stream;

    switch (plan.kind) {
      case ActionKind::error: {
        {
          const bool ok = co_await sleep(plan.latency);
          if (!ok) co_return Next::done;
        }
        body.clear();
        wire.append_plan_error(body, plan);
        info.status = wire.error_status(plan);
        info.error = plan.error;
        info.provider_type = plan.provider_type;
        info.stream = false;
        headers.clear();
        wire.append_headers(headers, info);
        extra.retry_after = plan.retry_after;
        extra.retry_after_in_ms = plan.retry_after_in_ms;
        respond(info.status, id, keep_alive, extra);
        co_return Next::keep_going;
      }
      case ActionKind::reset:
        {
          const bool slept = co_await sleep(plan.latency);
          if (slept) close_with_reset();
        }
        co_return Next::done;
      case ActionKind::hang:
        co_await drain();
        co_return Next::done;
      default: break;
    }

    headers.clear();
    wire.append_headers(headers, info);
    extra.headers = headers;
    if (!stream) {
      const auto generation =
          plan.token_delay * (plan.completion_tokens > 0 ? plan.completion_tokens - 1 : 0);
      {
        const bool ok = co_await sleep(plan.latency + plan.first_token + generation);
        if (!ok) co_return Next::done;
      }
      body.clear();
      body.reserve(512 + static_cast<std::size_t>(plan.completion_tokens) * 8);
      const std::size_t cut_at = wire.append_completion(body, plan, meta);
      switch (plan.kind) {
        case ActionKind::cut:
        case ActionKind::stall: {
          // The full length is announced, then the body stops short.
          out.clear();
          head(200, "application/json", id, keep_alive, extra, body.size());
          out.append(body, 0, cut_at);
          {
            const bool ok = co_await flush();
            if (!ok) co_return Next::done;
          }
          if (plan.kind == ActionKind::cut) close_gracefully();
          else co_await drain();
          co_return Next::done;
        }
        case ActionKind::malformed:
          body.resize(cut_at);
          respond(200, id, keep_alive, extra);
          co_return Next::keep_going;
        default:
          respond(200, id, keep_alive, extra);
          co_return Next::keep_going;
      }
    }

    {

      const bool ok = co_await sleep(plan.latency);

      if (!ok) co_return Next::done;

    }
    out.clear();
    head(200, wire.stream_content_type(), id, keep_alive, extra, std::nullopt);
    event.clear();
    wire.append_stream_open(event, plan, meta);
    if (!event.empty()) append_chunk(out, event);
    if (plan.first_token.count() > 0) {
      {
        const bool ok = co_await flush();
        if (!ok) co_return Next::done;
      }
      {
        const bool ok = co_await sleep(plan.first_token);
        if (!ok) co_return Next::done;
      }
    }
    const bool faulty = plan.kind == ActionKind::cut || plan.kind == ActionKind::stall ||
                        plan.kind == ActionKind::malformed || plan.kind == ActionKind::stream_error;
    // A tool call's argument fragments take the place of the tokens.
    const ToolCall* call = plan.tool_call && wire.answers_tool_calls() ? &*plan.tool_call : nullptr;
    const std::uint32_t chunks = call ? static_cast<std::uint32_t>(call->arguments.size()) : plan.completion_tokens;
    const std::uint32_t count = faulty ? std::min(plan.after_tokens, chunks) : chunks;
    for (std::uint32_t k = 0; k < count; ++k) {
      if (k > 0 && plan.token_delay.count() > 0) {
        {
          const bool ok = co_await flush();
          if (!ok) co_return Next::done;
        }
        {
          const bool ok = co_await sleep(plan.token_delay);
          if (!ok) co_return Next::done;
        }
      }
      event.clear();
      if (call) wire.append_stream_tool_fragment(event, meta, *call, k);
      else wire.append_stream_token(event, meta, token_text(plan, k), k == 0, k);
      append_chunk(out, event);
      // Bound the buffer on long undelayed streams.
      if (out.size() > (64u << 10)) {
        const bool ok = co_await flush();
        if (!ok) co_return Next::done;
      }
    }
    switch (plan.kind) {
      case ActionKind::cut:
        {
          const bool ok = co_await flush();
          if (ok) close_gracefully();
        }
        co_return Next::done;
      case ActionKind::stall:
        {
          const bool ok = co_await flush();
          if (ok) co_await drain();
        }
        co_return Next::done;
      case ActionKind::malformed:
        event.clear();
        wire.append_stream_malformed(event, meta);
        append_chunk(out, event);
        out += "0\r\n\r\n";
        co_return Next::keep_going;
      case ActionKind::stream_error:
        // The error is the stream's last event; the HTTP body then ends properly.
        event.clear();
        wire.append_stream_error(event, plan, meta);
        append_chunk(out, event);
        out += "0\r\n\r\n";
        co_return Next::keep_going;
      default:
        event.clear();
        if (count == 0) wire.append_stream_token(event, meta, "", true);  // role-only chunk
        wire.append_stream_close(event, plan, meta, plan.kind == ActionKind::omit_done);
        append_chunk(out, event);
        out += "0\r\n\r\n";
        co_return Next::keep_going;
    }
  }

  void control(http::request<http::string_body>& req, std::string_view path, std::uint64_t id,
               bool keep_alive, bool& handled) {
    handled = true;
    const auto method = req.method();
    if (path == "/_mock/behaviors" && method == http::verb::get) {
      body = engine.behaviors_json();
      respond(200, id, keep_alive);
    } else if (path.starts_with("/_mock/behaviors/") &&
               (method == http::verb::put || method == http::verb::delete_)) {
      const std::string name = percent_decode(path.substr(std::string_view("/_mock/behaviors/").size()));
      if (name.empty()) {
        error_body(ErrorType::invalid_request, "missing model name in the path");
        respond(400, id, keep_alive);
      } else if (method == http::verb::put) {
        auto b = parse_behavior(req.body());
        if (!b) {
          error_body(ErrorType::invalid_request, b.error().message);
          respond(400, id, keep_alive);
        } else {
          body.clear();
          append_json(body, *b);
          engine.set_behavior(name, std::move(*b));
          respond(200, id, keep_alive);
        }
      } else if (engine.remove_behavior(name)) {
        body = "{\"deleted\":true}";
        respond(200, id, keep_alive);
      } else {
        error_body(ErrorType::invalid_request, "no behaviour is set for model '" + name + "'");
        respond(404, id, keep_alive);
      }
    } else if (path == "/_mock/stats" && method == http::verb::get) {
      body = engine.stats_json();
      respond(200, id, keep_alive);
    } else if ((path == "/_mock/last-request" || path.starts_with("/_mock/last-request/")) &&
               method == http::verb::get) {
      const std::string_view which =
          path.size() > std::string_view("/_mock/last-request/").size()
              ? path.substr(std::string_view("/_mock/last-request/").size())
              : std::string_view{};
      auto json = engine.last_request_json(which);
      if (json) {
        body = std::move(*json);
        respond(200, id, keep_alive);
      } else {
        error_body(ErrorType::not_found, "no request received yet on format '" + std::string(which) + "'");
        respond(404, id, keep_alive);
      }
    } else if (path == "/_mock/reset" && method == http::verb::post) {
      engine.reset_stats();
      body = "{\"reset\":true}";
      respond(200, id, keep_alive);
    } else {
      handled = false;
    }
  }

  asio::awaitable<Next> dispatch(http::request<http::string_body>& req, bool keep_alive) {
    std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    const auto method = req.method();
    headers.clear();
    if (path == "/v1/chat/completions" && method == http::verb::post)
      co_return co_await chat(req, keep_alive, ChatRoute{&kOpenAI, "chat.completions", {}, {}});
    if (path == "/v1/messages" && method == http::verb::post)
      co_return co_await chat(req, keep_alive, ChatRoute{&kAnthropic, "messages", {}, {}});
    bool bedrock_op = false;
    const auto bedrock_route = bedrock::parse_route(path, &bedrock_op);
    if (bedrock_route && method == http::verb::post) {
      const auto& r = *bedrock_route;
      const bool invoke = r.api == bedrock::Api::invoke || r.api == bedrock::Api::invoke_stream;
      const WireFormat& wire = invoke ? invoke_format(bedrock::family_of(r.model_id)) : kConverse;
      co_return co_await chat(req, keep_alive,
                              ChatRoute{&wire, r.api_name(), r.stream(), r.model_id});
    }
    format = path.starts_with("/model/") ? static_cast<const WireFormat*>(&kConverse) : &kOpenAI;

    const std::uint64_t id = worker.ids.next();
    if (path == "/healthz" && method == http::verb::get) {
      body = "{\"status\":\"ok\"}";
      respond(200, id, keep_alive);
    } else if (path == "/v1/models" && method == http::verb::get) {
      // Anthropic's clients send anthropic-version; they get Anthropic's list and key check.
      if (req.find("anthropic-version") != req.end()) format = &kAnthropic;
      const auto auth = format == &kAnthropic ? anthropic_auth(req) : auth_of(req);
      if (auth.required && !auth.valid) {
        error_body(ErrorType::auth, auth.message, 401);
        respond(401, id, keep_alive);
      } else {
        body.clear();
        const auto names = engine.model_names();
        const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                                 clock.wall().time_since_epoch())
                                 .count();
        format->append_models(body, names, created);
        respond(200, id, keep_alive);
      }
    } else {
      bool handled = false;
      if (path.starts_with("/_mock/")) control(req, path, id, keep_alive, handled);
      if (!handled) {
        const bool known = path == "/v1/chat/completions" || path == "/v1/models" ||
                           path == "/v1/messages" || bedrock_op || path == "/healthz" ||
                           path == "/_mock/behaviors" || path == "/_mock/stats" ||
                           path == "/_mock/reset" || path.starts_with("/_mock/behaviors/") ||
                           path.starts_with("/_mock/last-request");
        std::string msg = known ? "Method not allowed (" : "Invalid URL (";
        msg += std::string_view(req.method_string());
        msg += ' ';
        msg += path;
        msg += ')';
        error_body(ErrorType::invalid_request, msg, known ? 405 : 404);
        respond(known ? 405 : 404, id, keep_alive);
      }
    }
    co_return Next::keep_going;
  }

  asio::awaitable<void> run() {
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(opts.body_limit);
      auto [ec, n] = co_await http::async_read_header(sock, in, parser, nothrow);
      if (!ec && !parser.is_done()) {
        // curl and others wait (up to a second) for this before sending a large body.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          std::tie(ec, n) = co_await asio::async_write(sock, asio::buffer(kContinue), nothrow);
        }
        if (!ec) std::tie(ec, n) = co_await http::async_read(sock, in, parser, nothrow);
      }
      if (ec) {
        if (ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::operation_aborted || ec == asio::error::connection_reset)
          co_return;
        // A broken request gets a plain 400 (413 when too large), then the connection closes.
        const bool too_large = ec == http::error::body_limit;
        error_body(ErrorType::invalid_request,
                   too_large ? "Request body too large." : "Malformed HTTP request.");
        respond(too_large ? 413 : 400, worker.ids.next(), false);
        co_await flush();
        close_gracefully();
        co_return;
      }
      auto& req = parser.get();
      const bool keep_alive = req.keep_alive();
      const Next next = co_await dispatch(req, keep_alive);
      if (next == Next::done) co_return;
      {
        const bool ok = co_await flush();
        if (!ok) co_return;
      }
      if (!keep_alive) {
        close_gracefully();
        co_return;
      }
    }
  }
};

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bulwark-mock: connection failed: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "bulwark-mock: connection failed\n");
  }
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  Engine& engine;
  const Clock& clock;
  std::vector<std::unique_ptr<Worker>> workers;
  std::uint16_t port = 0;
  std::atomic<bool> running{false};

  Impl(ServerOptions o, Engine& e, const Clock& c) : opts(std::move(o)), engine(e), clock(c) {}

  asio::awaitable<void> accept_loop(Worker& w) {
    asio::steady_timer backoff(w.io);
    for (;;) {
      auto [ec, sock] = co_await w.acceptor.async_accept(nothrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !w.acceptor.is_open()) co_return;
        // Out of descriptors or similar: pause rather than spin.
        backoff.expires_after(std::chrono::milliseconds(10));
        co_await backoff.async_wait(nothrow);
        continue;
      }
      boost::system::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      auto session = std::make_shared<Session>(std::move(sock), w, engine, clock, opts);
      asio::co_spawn(w.io, [session]() { return session->run(); },
                     [](std::exception_ptr e) { log_exception(e); });
    }
  }
};

Server::Server(ServerOptions options, Engine& engine, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), engine, clock)) {}

Server::~Server() { stop(); }

std::uint16_t Server::port() const noexcept { return impl_->port; }

Status Server::start() {
  auto& im = *impl_;
  if (im.running) return std::unexpected(Error::gateway(ErrorKind::internal, "server already started"));
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(im.opts.host, ec);
  if (ec) return std::unexpected(Error::client(ErrorKind::bad_request, "invalid listen address '" + im.opts.host + "'"));
  const unsigned n = std::max(1u, im.opts.workers);
  std::uint16_t port = im.opts.port;
  im.workers.clear();
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(im.opts.seed * 0x9e3779b97f4a7c15ULL + i + 1);
    const tcp::endpoint ep(address, port);
    auto& acc = w->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc.set_option(reuse_port(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      im.workers.clear();
      return std::unexpected(Error::gateway(
          ErrorKind::internal, "cannot listen on " + im.opts.host + ":" + std::to_string(port) +
                                   ": " + ec.message()));
    }
    // Later workers join the port the first one got (matters for port 0).
    port = acc.local_endpoint().port();
    im.workers.push_back(std::move(w));
  }
  im.port = port;
  for (auto& w : im.workers) {
    Worker& wr = *w;
    asio::co_spawn(wr.io, im.accept_loop(wr), asio::detached);
    wr.thread = std::thread([&wr] { wr.io.run(); });
  }
  im.running = true;
  return {};
}

void Server::stop() {
  auto& im = *impl_;
  if (!im.running.exchange(false)) return;
  for (auto& w : im.workers) w->io.stop();
  for (auto& w : im.workers)
    if (w->thread.joinable()) w->thread.join();
  // Destroying the loops destroys the suspended sessions and closes their sockets.
  im.workers.clear();
}

}  // namespace bulwark::mock
