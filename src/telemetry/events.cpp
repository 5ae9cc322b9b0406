#include "telemetry/events.hpp"

#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <cmath>
#include <ctime>
#include <random>

#include "core/json_write.hpp"
#include "core/random.hpp"
#include "core/thread_name.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::telemetry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseBody = 64 * 1024;  // what a receiver answers is not read further
constexpr auto kMaxBackoff = std::chrono::seconds(30);

struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;     // path and query
  std::string authority;  // Host header
  std::string origin;     // scheme://host:port, the only part of the URL ever logged
};

Result<Endpoint> parse_url(const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return std::unexpected(Error::gateway(ErrorKind::internal, "events.webhook.url is not an absolute URL"));
  Endpoint e;
  const auto scheme = u->scheme();
  if (scheme == "https") e.tls = true;
  else if (scheme != "http")
    return std::unexpected(Error::gateway(ErrorKind::internal, "events.webhook.url: the scheme must be http or https"));
  e.host = std::string(u->encoded_host());
  if (e.host.size() > 2 && e.host.front() == '[') e.host = e.host.substr(1, e.host.size() - 2);
  if (e.host.empty()) return std::unexpected(Error::gateway(ErrorKind::internal, "events.webhook.url has no host"));
  if (u->has_fragment()) return std::unexpected(Error::gateway(ErrorKind::internal, "events.webhook.url must not have a fragment"));
  const unsigned port = u->has_port() ? u->port_number() : (e.tls ? 443u : 80u);
  if (port == 0) return std::unexpected(Error::gateway(ErrorKind::internal, "events.webhook.url has no usable port"));
  e.port = std::to_string(port);
  e.target = std::string(u->encoded_path());
  if (e.target.empty()) e.target = "/";
  if (u->has_query()) e.target += "?" + std::string(u->encoded_query());
  e.authority = std::string(u->encoded_host_and_port());
  e.origin = std::string(scheme) + "://" + std::string(u->encoded_host_and_port());
  return e;
}

struct Outcome {
  bool ok = false;
  bool retryable = true;
  unsigned status = 0;  // 0: no HTTP answer
  std::string error;    // never holds the URL's path or a header value
};

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, http::request<http::string_body>& req, Outcome& out) {
  auto [wec, wn] = co_await http::async_write(stream, req, use_tuple);
  if (wec) {
    out.error = "write: " + wec.message();
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (rec && !parser.is_header_done()) {
    out.error = "read: " + rec.message();
    co_return;
  }
  // The status decides; a body we could not read in full does not matter.
  out.status = parser.get().result_int();
  out.ok = out.status >= 200 && out.status < 300;
  out.retryable = !out.ok && (out.status >= 500 || out.status == 408 || out.status == 425 || out.status == 429);
  if (!out.ok) out.error = "status " + std::to_string(out.status);
}

// One delivery attempt. Everything lives in this coroutine's frame: parameters are values
// or pointers to objects that outlive the io_context run.
asio::awaitable<void> post_once(const Endpoint* ep, asio::ssl::context* tls, http::request<http::string_body>* req,
                                std::chrono::milliseconds timeout, Outcome* out) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(ep->host, ep->port, use_tuple);
  if (rec) {
    out->error = "resolve: " + rec.message();
    co_return;
  }
  if (!ep->tls) {
    beast::tcp_stream stream(ex);
    stream.expires_after(timeout);  // a deadline for everything below
    auto [cec, cep] = co_await stream.async_connect(results, use_tuple);
    if (cec) {
      out->error = "connect: " + cec.message();
      co_return;
    }
    co_await exchange(stream, *req, *out);
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(ex, *tls);
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), ep->host.c_str())) {
    out->error = "tls: cannot set SNI";
    co_return;
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(ep->host));
  auto [cec, cep] = co_await beast::get_lowest_layer(stream).async_connect(results, use_tuple);
  if (cec) {
    out->error = "connect: " + cec.message();
    co_return;
  }
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (hec) {
    out->error = "tls handshake: " + hec.message();
    co_return;
  }
  co_await exchange(stream, *req, *out);
  auto [sec] = co_await stream.async_shutdown(use_tuple);
  (void)sec;  // many servers just close
}

void append_field_value(std::string& out, const EventField& f) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::string_view>) json::append_string(out, v);
        else if constexpr (std::is_same_v<V, std::int64_t>) json::append_int(out, v);
        else if constexpr (std::is_same_v<V, double>) {
          if (std::isfinite(v)) json::append_double(out, v);
          else out += "null";
        } else json::append_bool(out, v);
      },
      f.value);
}

std::string hex64(std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kHex[v & 0xf];
  return s;
}

}  // namespace

struct EventNotifier::Active {
  WebhookSettings settings;
  Endpoint endpoint;
  std::shared_ptr<asio::ssl::context> tls;
  std::string instance;
};

std::string rfc3339_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  long frac = static_cast<long>(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

EventNotifier::EventNotifier() : host_(host_name()) {
  std::random_device rd;
  nonce_ = hex64((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                 static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
}

EventNotifier::~EventNotifier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EventNotifier& EventNotifier::process() {
  static EventNotifier notifier;
  return notifier;
}

Status EventNotifier::configure(std::optional<WebhookSettings> settings) {
  std::shared_ptr<const Active> next;
  if (settings) {
    {
      std::lock_guard lock(mu_);
      if (active_ && active_->settings == *settings) return {};
    }
    auto ep = parse_url(settings->url);
    if (!ep) return std::unexpected(ep.error());
    auto a = std::make_shared<Active>();
    a->endpoint = std::move(*ep);
    if (a->endpoint.tls) {
      try {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
        if (settings->verify_tls) {
          ctx->set_verify_mode(asio::ssl::verify_peer);
          if (settings->ca_file.empty()) ctx->set_default_verify_paths();
          else ctx->load_verify_file(settings->ca_file);
        } else {
          ctx->set_verify_mode(asio::ssl::verify_none);
        }
        a->tls = std::move(ctx);
      } catch (const std::exception& e) {
        return std::unexpected(Error::gateway(ErrorKind::internal, std::string("events.webhook: TLS setup failed: ") + e.what()));
      }
    }
    a->instance = settings->instance.empty() ? host_ : settings->instance;
    if (settings->queue == 0) settings->queue = 1;
    a->settings = std::move(*settings);
    next = std::move(a);
  }
  {
    std::lock_guard lock(mu_);
    if (!next && !active_) return {};
    active_ = std::move(next);
    ++generation_;
    if (!active_) {
      stats_.dropped += queue_.size();
      queue_.clear();
    } else {
      while (queue_.size() > active_->settings.queue) {
        queue_.pop_front();
        ++stats_.dropped;
      }
    }
  }
  cv_.notify_all();
  idle_cv_.notify_all();
  return {};
}

bool EventNotifier::enabled() const {
  std::lock_guard lock(mu_);
  return active_ != nullptr;
}

bool EventNotifier::publish(std::string_view type, std::initializer_list<EventField> fields) {
  const std::string at = rfc3339_utc(std::chrono::system_clock::now());
  {
    std::lock_guard lock(mu_);
    if (!active_ || stop_) return false;
  }
  // Format outside the lock; the identity is read again under it below.
  std::string rest;
  rest.reserve(256);
  for (const EventField& f : fields) {
    rest += ',';
    json::append_string(rest, f.key);
    rest += ':';
    append_field_value(rest, f);
  }
  bool start = false;
  {
    std::lock_guard lock(mu_);
    if (!active_ || stop_) return false;
    Item item;
    item.id = "evt_" + nonce_ + "_" + std::to_string(++sequence_);
    item.type = std::string(type);
    std::string& b = item.body;
    b.reserve(rest.size() + 200);
    b += "{\"id\":";
    json::append_string(b, item.id);
    b += ",\"type\":";
    json::append_string(b, type);
    b += ",\"at\":";
    json::append_string(b, at);
    b += ",\"instance\":";
    json::append_string(b, active_->instance);
    b += ",\"host\":";
    json::append_string(b, host_);
    b += ",\"pid\":";
    json::append_int(b, static_cast<std::int64_t>(::getpid()));
    b += rest;
    b += '}';
    while (queue_.size() >= active_->settings.queue) {
      queue_.pop_front();
      ++stats_.dropped;
    }
    queue_.push_back(std::move(item));
    ++stats_.published;
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread([this] {
          name_this_thread("bw-events");
          run();
        });
      } catch (const std::system_error&) {
        queue_.pop_back();
        --stats_.published;
        ++stats_.dropped;
        return false;
      }
      start = true;
    }
  }
  if (!start) cv_.notify_one();
  return true;
}

EventStats EventNotifier::stats() const {
  std::lock_guard lock(mu_);
  EventStats s = stats_;
  s.queued = queue_.size() + (busy_ ? 1 : 0);
  return s;
}

void EventNotifier::render_metrics(std::string& out) const {
  const EventStats s = stats();
  auto counter = [&](std::string_view name, std::string_view help, std::uint64_t v) {
    append_family(out, name, help, "counter", v);
  };
  counter("bulwark_events_published_total", "Operator events queued for the webhook.", s.published);
  counter("bulwark_events_sent_total", "Operator events delivered to the webhook (2xx answer).", s.sent);
  counter("bulwark_events_failed_total", "Operator events given up after their delivery attempts failed.", s.failed);
  counter("bulwark_events_dropped_total", "Operator events dropped from a full queue or when the webhook was turned off.",
          s.dropped);
  counter("bulwark_event_delivery_retries_total", "Webhook delivery attempts after the first, over all events.", s.retries);
  append_family(out, "bulwark_events_queued", "Operator events waiting for delivery.", "gauge", s.queued);
}

bool EventNotifier::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

bool EventNotifier::wait_backoff(std::chrono::milliseconds d, std::uint64_t generation) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stop_ || generation_ != generation; });
  return !stop_;
}

void EventNotifier::run() {
  FastRandom random(std::hash<std::string>{}(nonce_));
  for (;;) {
    Item item;
    std::shared_ptr<const Active> active;
    std::uint64_t generation = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      active = active_;
      generation = generation_;
    }
    bool delivered = false;
    for (std::uint32_t attempt = 0; active; ++attempt) {
      http::request<http::string_body> req{http::verb::post, active->endpoint.target, 11};
      req.set(http::field::host, active->endpoint.authority);
      req.set(http::field::user_agent, "bulwark/" BULWARK_VERSION);
      req.set(http::field::content_type, "application/json");
      req.set(http::field::connection, "close");
      req.set("x-bulwark-event", item.type);
      req.set("x-bulwark-event-id", item.id);
      for (const auto& [k, v] : active->settings.headers) req.set(k, v);
      req.body() = item.body;
      req.prepare_payload();

      Outcome outcome;
      {
        asio::io_context io(1);
        asio::co_spawn(io, post_once(&active->endpoint, active->tls.get(), &req, active->settings.timeout, &outcome),
                       asio::detached);
        // The stream's deadline bounds connect/TLS/send/receive; this also bounds name
        // resolution, which that deadline does not cover.
        io.run_for(active->settings.timeout + std::chrono::milliseconds(250));
        if (!io.stopped() && outcome.error.empty() && outcome.status == 0) outcome.error = "timed out";
      }
      if (outcome.ok) {
        delivered = true;
        break;
      }
      const bool last = attempt >= active->settings.retries || !outcome.retryable;
      log::warn("event_delivery_failed", {{"event", item.type},
                                          {"event_id", item.id},
                                          {"webhook", active->endpoint.origin},
                                          {"attempt", attempt + 1},
                                          {"error", outcome.error},
                                          {"giving_up", last}});
      if (last) break;
      // Exponential backoff with "equal jitter": half fixed, half random.
      auto d = active->settings.backoff * (1LL << std::min<std::uint32_t>(attempt, 16));
      if (d > kMaxBackoff) d = std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff);
      const auto wait = std::chrono::milliseconds(
          static_cast<std::int64_t>(static_cast<double>(d.count()) * (0.5 + 0.5 * random.uniform())));
      if (!wait_backoff(wait, generation)) break;  // stopping
      {
        std::lock_guard lock(mu_);
        if (generation_ != generation) {  // reconfigured: continue with the new settings, if any
          active = active_;
          generation = generation_;
        }
        if (active) ++stats_.retries;
      }
    }
    {
      std::lock_guard lock(mu_);
      busy_ = false;
      if (delivered) ++stats_.sent;
      else if (active) ++stats_.failed;
      else ++stats_.dropped;  // the webhook was turned off while this one was pending
    }
    idle_cv_.notify_all();
  }
}

}  // namespace bulwark::telemetry
