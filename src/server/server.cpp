#include "server/server.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdio>
#include <list>
#include <thread>
#include <unordered_set>

#include "api/openai/chat.hpp"
#include "auth/key_cache.hpp"
#include "core/thread_name.hpp"
#include "pipeline/admin.hpp"
#include "pipeline/admin_governance.hpp"
#include "pipeline/chat.hpp"
#include "pipeline/governance.hpp"
#include "pipeline/ingress.hpp"
#include "pipeline/health.hpp"
#include "pipeline/worker.hpp"
#include "providers/http/deadline.hpp"
#include "providers/http/write_now.hpp"
#include "server/http2_session.hpp"
#include "server/tls.hpp"
#include "server/transport.hpp"
#include "telemetry/log.hpp"

namespace bulwark::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;
using TlsStream = ssl::stream<tcp::socket>;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A client connection as the drain sees it: told to wind down when SIGTERM arrives.
struct Conn {
  std::function<void()> on_drain;
};

// Connections by protocol and transport, for the metrics collector.
enum class Proto : std::uint8_t { h1_plain, h1_tls, h2_plain, h2_tls, count_ };

struct WorkerCtx {
  WorkerCtx(unsigned i, RuntimeHolder& h, telemetry::Registry& r)
      : io(1), index(i), holder(h), registry(r), worker(io.get_executor(), i, r.shard(i), 0x5eed + i * 7919ULL) {}

  // The runtime for the next request: re-read only when a reload moved the generation.
  const std::shared_ptr<const pipeline::Runtime>& runtime() {
    if (const auto g = holder.generation(); g != generation) {
      current = holder.get();
      generation = g;
      worker.access_log = current->config().log.access;
    }
    return current;
  }

  asio::io_context io;
  unsigned index;
  RuntimeHolder& holder;
  telemetry::Registry& registry;
  pipeline::Worker worker;
  std::optional<tcp::acceptor> acceptor;
  std::shared_ptr<const pipeline::Runtime> current;
  std::uint64_t generation = 0;
  std::unordered_set<Conn*> conns;
  std::shared_ptr<ssl::context> tls;  // set: every connection starts with a TLS handshake
  asio::any_io_executor admin;         // the admin thread: governance admin calls run there
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Proto::count_)> accepted{};
  std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(Proto::count_)> open{};
  std::atomic<std::uint64_t> h2_streams{0};
  std::atomic<int> busy{0};
  bool draining = false;
  std::thread thread;
};

tcp::socket& lowest(tcp::socket& s) { return s; }
tcp::socket& lowest(TlsStream& s) { return s.next_layer(); }

// Counts one connection of a protocol for as long as it lives.
class ProtoCount {
 public:
  ProtoCount(WorkerCtx& wc, Proto p) : wc_(wc), p_(static_cast<std::size_t>(p)) {
    wc_.accepted[p_].fetch_add(1, std::memory_order_relaxed);
    wc_.open[p_].fetch_add(1, std::memory_order_relaxed);
  }
  ~ProtoCount() { wc_.open[p_].fetch_sub(1, std::memory_order_relaxed); }
  ProtoCount(const ProtoCount&) = delete;
  ProtoCount& operator=(const ProtoCount&) = delete;

 private:
  WorkerCtx& wc_;
  std::size_t p_;
};

// An HTTP/1.1 connection over a plain socket or a TLS stream (owned by the caller).
template <class Stream>
struct Session {
  // On expiry the pending operation is cancelled, not the socket closed: a request that
  // stopped arriving still gets its 408 before the connection closes.
  Session(WorkerCtx& w, Stream& s) : wc(w), stream(s), deadline(wc.io.get_executor(), [this] { cancel(); }) {}
  void cancel() noexcept {
    boost::system::error_code ignored;
    lowest(stream).cancel(ignored);
  }
  WorkerCtx& wc;
  Stream& stream;
  providers::http::Deadline deadline;  // one watchdog per connection, not one timer per I/O
  bool idle = true;
  auth::KeyMemo key_memo;  // the key this connection's requests last authenticated with
};

// The pipeline's view of the client connection. Response heads are written by hand:
// the fixed part is small and Beast's serializer was a measurable share of each request.
template <class Stream>
class ClientDownstream final : public pipeline::Downstream {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  ClientDownstream(Session<Stream>& s, unsigned version, bool keep_alive) : session_(s), version_(version), keep_alive_(keep_alive) {}

  bool ok() const noexcept { return ok_; }

  asio::awaitable<bool> send(unsigned status, std::span<const pipeline::Header> headers, std::string_view content_type,
                             std::string body) override {
    head(status, headers, content_type);
    head_ += "content-length: ";
    head_ += std::to_string(body.size());
    head_ += "\r\n\r\n";
    const std::array<asio::const_buffer, 2> bufs{asio::buffer(head_), asio::buffer(body)};
    co_return co_await write_buffers(bufs);
  }

  asio::awaitable<bool> begin_stream(unsigned status, std::span<const pipeline::Header> headers,
                                     std::string_view content_type) override {
    head(status, headers, content_type);
    head_ += "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    const std::array<asio::const_buffer, 1> bufs{asio::buffer(head_)};
    co_return co_await write_buffers(bufs);
  }

  asio::awaitable<bool> write(std::string_view bytes) override {
    if (!ok_) co_return false;
    if (bytes.empty()) co_return true;
    char size[24];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    const std::array<asio::const_buffer, 3> bufs{asio::buffer(size, static_cast<std::size_t>(n)),
                                                 asio::buffer(bytes.data(), bytes.size()), asio::buffer("\r\n", 2)};
    co_return co_await write_buffers(bufs);
  }

  asio::awaitable<bool> end_stream() override {
    if (!ok_) co_return false;
    const std::array<asio::const_buffer, 1> bufs{asio::buffer("0\r\n\r\n", 5)};
    co_return co_await write_buffers(bufs);
  }

  asio::awaitable<bool> wait_hangup() override {
    auto& sock = lowest(session_.stream);
    if constexpr (kTls) co_return co_await wait_hangup_tls(sock);
    for (;;) {
      auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, use_tuple);
      if (ec == asio::error::operation_aborted) co_return false;
      if (ec) co_return true;
      char probe;
      const ssize_t n = ::recv(sock.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) co_return true;
      if (n > 0) {
        // A pipelined next request, not a hang-up: stop watching, wait to be cancelled.
        asio::steady_timer forever(sock.get_executor(), Clock::time_point::max());
        co_await forever.async_wait(use_tuple);
        co_return false;
      }
    }
  }

 private:
  void head(unsigned status, std::span<const pipeline::Header> headers, std::string_view content_type) {
    // Sized once: grown append by append, a governed response's head was copied six times.
    std::size_t size = 192 + content_type.size();  // status line, server, connection, what send() or begin_stream() adds
    for (const auto& [k, v] : headers) size += k.size() + v.size() + 4;
    head_.clear();
    head_.reserve(size);
    head_ += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    head_ += std::to_string(status);
    head_ += ' ';
    head_ += http::obsolete_reason(static_cast<http::status>(status));
    head_ += "\r\nserver: bulwark\r\ncontent-type: ";
    head_ += content_type;
    head_ += "\r\n";
    for (const auto& [k, v] : headers) {
      head_ += k;
      head_ += ": ";
      head_ += v;
      head_ += "\r\n";
    }
    if (!keep_alive_) head_ += "connection: close\r\n";
    else if (version_ == 10) head_ += "connection: keep-alive\r\n";
  }

  // Over TLS the bytes waiting on the socket are records (a close_notify alert, a
  // pipelined request) that cannot be peeked at without decrypting: a hang-up is seen as
  // the peer's FIN (POLLRDHUP) behind them, checked while data waits unread.
  static asio::awaitable<bool> wait_hangup_tls(tcp::socket& sock) {
    asio::steady_timer recheck(sock.get_executor());
    for (;;) {
      auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, use_tuple);
      if (ec == asio::error::operation_aborted) co_return false;
      if (ec) co_return true;
      pollfd p{sock.native_handle(), POLLIN | POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) co_return true;
      recheck.expires_after(std::chrono::milliseconds(200));
      auto [tec] = co_await recheck.async_wait(use_tuple);
      if (tec) co_return false;
    }
  }

  template <class Buffers>
  asio::awaitable<bool> write_buffers(const Buffers& bufs) {
    if (!ok_) co_return false;
    if constexpr (!kTls) {
      // What the socket takes at once skips the reactor (providers/http/write_now.hpp).
      const auto now = providers::http::write_now(session_.stream, bufs);
      if (now.error) co_return ok_ = false;
      if (now.bytes == asio::buffer_size(bufs)) co_return true;
      co_return co_await write_async(providers::http::rest_of(bufs, now.bytes));
    } else {
      co_return co_await write_async(bufs);
    }
  }
  template <class Buffers>
  asio::awaitable<bool> write_async(const Buffers& bufs) {
    session_.deadline.arm_after(kWriteTimeout);  // a client that stops reading is cut off
    auto [ec, n] = co_await asio::async_write(session_.stream, bufs, use_tuple);
    ok_ = !ec;
    co_return ok_;
  }

  Session<Stream>& session_;
  unsigned version_;
  bool keep_alive_;
  bool ok_ = true;
  std::string head_;
};

asio::awaitable<void> send_error(pipeline::Downstream& ds, const Error& e, const std::string& request_id) {
  const pipeline::Header h[] = {{"x-bulwark-request-id", request_id}};
  co_await ds.send(static_cast<unsigned>(http_status_of(e.kind)), h, "application/json", api::openai::error_body(e));
}

asio::awaitable<void> send_json(pipeline::Downstream& ds, const std::string& request_id, unsigned status, std::string body,
                                std::string_view type = "application/json") {
  const pipeline::Header h[] = {{"x-bulwark-request-id", request_id}};
  co_await ds.send(status, h, type, std::move(body));
}

// A governance admin call as a coroutine of its own, for the admin thread: its parameters
// are copied into its frame. A lambda coroutine keeps its captures in the closure, not the
// frame, and given to co_spawn here (g++ 12, Boost 1.81) its captured runtime lost one
// reference per call until the runtime was freed under the workers.
asio::awaitable<pipeline::AdminReply> admin_call(std::shared_ptr<const pipeline::Runtime> runtime, pipeline::AdminCall call) {
  co_return pipeline::admin_governance(*runtime, call);
}

// Routes one request. Everything under /v1 speaks OpenAI's error shape.
asio::awaitable<void> dispatch(WorkerCtx& wc, http::request<http::string_body>& req, pipeline::Downstream& ds,
                               Clock::time_point received, auth::KeyMemo& key_memo) {
  std::string_view target = req.target();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  const auto& rt = wc.runtime();
  const auto method = req.method();
  auto only = [&](http::verb v) -> bool { return method == v; };

  if (target == "/v1/chat/completions") {
    if (!only(http::verb::post)) {
      co_await send_error(ds, Error::client(ErrorKind::method_not_allowed, "Use POST for /v1/chat/completions."), wc.worker.next_request_id());
      co_return;
    }
    pipeline::IncomingRequest in{std::move(req.body()), wc.worker.next_request_id(), received, &req.base(), &key_memo};
    co_await pipeline::handle_chat_completion(rt, wc.worker, std::move(in), ds);
  } else if (auto ingress = pipeline::match_ingress(req.method_string(), target)) {
    // Anthropic Messages and Bedrock Runtime callers: their body becomes the pipeline's
    // OpenAI form, and the answer goes back in their format through the translating
    // downstream (errors included).
    const std::string id = wc.worker.next_request_id();
    auto openai_body = pipeline::to_openai_request(ingress->format, req.body(), ingress->model, ingress->stream);
    std::string model = ingress->model;
    if (openai_body && model.empty())
      if (auto decoded = api::openai::decode_chat_request(std::string(*openai_body))) model = decoded->model;
    auto tds = pipeline::translating_downstream(ingress->format, ds, model, req.body());
    if (!openai_body) {
      const Error& e = openai_body.error();
      log::info("request_rejected", {{"request_id", id}, {"reason", name_of(e.kind)}, {"path", target}});
      const pipeline::Header h[] = {{"x-bulwark-request-id", id}};
      co_await tds->send(static_cast<unsigned>(http_status_of(e.kind)), h, "application/json", api::openai::error_body(e));
    } else {
      pipeline::IncomingRequest in{std::move(*openai_body), id, received, &req.base(), &key_memo};
      co_await pipeline::handle_chat_completion(rt, wc.worker, std::move(in), *tds);
    }
  } else if (target == "/v1/models" && only(http::verb::get)) {
    co_await send_json(ds, wc.worker.next_request_id(), 200, rt->models_json());
  } else if (target == "/healthz" && only(http::verb::get)) {
    co_await send_json(ds, wc.worker.next_request_id(), 200, "{\"status\":\"ok\"}");
  } else if (target == "/readyz" && only(http::verb::get)) {
    if (wc.draining) co_await send_json(ds, wc.worker.next_request_id(), 503, "{\"status\":\"draining\"}");
    else co_await send_json(ds, wc.worker.next_request_id(), 200, "{\"status\":\"ready\"}");
  } else if (target == "/admin/targets" && only(http::verb::get)) {
    auto [status, body] = pipeline::admin_targets(*rt, req[http::field::authorization]);
    co_await send_json(ds, wc.worker.next_request_id(), status, std::move(body));
  } else if (target.starts_with("/admin/targets/") && only(http::verb::post)) {
    const std::string id = wc.worker.next_request_id();
    auto [status, body] = pipeline::admin_target_action(*rt, req[http::field::authorization], target, id);
    co_await send_json(ds, id, status, std::move(body));
  } else if (pipeline::is_governance_admin_path(req.target())) {
    // On the admin thread, not this worker: a spend report over a large ledger may take
    // long, and every connection this worker serves would wait for it. The runtime is
    // held by value: a reload may replace this worker's while the call runs.
    const pipeline::AdminCall call{req.method_string(), req.target(), req.body(), req[http::field::authorization]};
    auto answer = co_await asio::co_spawn(wc.admin, admin_call(rt, call), asio::use_awaitable);
    co_await send_json(ds, wc.worker.next_request_id(), answer.status, std::move(answer.body), answer.content_type);
  } else if (target == "/metrics" && only(http::verb::get)) {
    co_await send_json(ds, wc.worker.next_request_id(), 200, wc.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
  } else {
    const std::string id = wc.worker.next_request_id();
    log::info("route_not_found", {{"request_id", id}, {"method", std::string_view(req.method_string())}, {"path", target}});
    co_await send_error(ds, Error::client(ErrorKind::route_not_found, "Unknown request URL: " + std::string(req.method_string()) + " " + std::string(target) + "."), id);
  }
}

// The HTTP/1.1 loop on one connection. `buffer` may already hold the first bytes (read
// while looking for the HTTP/2 preface).
template <class Stream>
asio::awaitable<void> serve_h1(WorkerCtx& wc, Stream& stream, beast::flat_buffer buffer) {
  Session<Stream> session(wc, stream);
  Conn conn{[&session] {
    if (session.idle) session.cancel();  // idle keep-alive connections close now; busy ones after their response
  }};
  wc.conns.insert(&conn);

  for (;;) {
    const auto& limits = wc.runtime()->config().limits;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    session.idle = true;
    if (wc.draining) break;
    session.deadline.arm_after(limits.keepalive_idle_timeout);
    auto [read_ec, hn] = co_await http::async_read_header(session.stream, buffer, parser, use_tuple);
    const boost::system::error_code hec = session.deadline.expired() ? beast::error::timeout : read_ec;
    session.idle = false;
    const auto received = Clock::now();
    ClientDownstream<Stream> ds(session, parser.get().version() ? parser.get().version() : 11, false);
    if (hec) {
      // A quiet close or an idle keep-alive timing out is normal; anything else gets an answer.
      const bool partial = buffer.size() > 0;
      if (hec == http::error::header_limit) {
        log::warn("request_rejected", {{"reason", "headers_too_large"}});
        co_await send_error(ds, Error::client(ErrorKind::headers_too_large, "Request headers exceed " + std::to_string(limits.max_header_bytes) + " bytes."), wc.worker.next_request_id());
      } else if (hec == http::error::body_limit) {  // a Content-Length over the limit fails at the header
        log::warn("request_rejected", {{"reason", "payload_too_large"}});
        co_await send_error(ds, Error::client(ErrorKind::payload_too_large, "Request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes."), wc.worker.next_request_id());
      } else if (hec == beast::error::timeout && partial) {
        log::warn("request_rejected", {{"reason", "read_timeout"}});
        co_await send_error(ds, Error::client(ErrorKind::request_timeout, "Timed out reading the request."), wc.worker.next_request_id());
      } else if (hec.category() == http::make_error_code(http::error::bad_method).category() &&
                 hec != http::error::end_of_stream && hec != http::error::partial_message) {
        log::warn("request_rejected", {{"reason", "malformed_http"}, {"detail", hec.message()}});
        co_await send_error(ds, Error::client(ErrorKind::bad_request, "Malformed HTTP request: " + hec.message() + "."), wc.worker.next_request_id());
      }
      break;
    }
    if (auto expect = parser.get()[http::field::expect]; beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(session.stream, asio::buffer(kContinue.data(), kContinue.size()), use_tuple);
    }
    wc.busy.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code bec;
    // The body usually came in with the head: parsed here, since Beast's read of bytes
    // already buffered posts its completion (a reactor poll, a system call).
    while (!parser.is_done() && buffer.size() > 0) {
      const std::size_t used = parser.put(buffer.data(), bec);
      buffer.consume(used);
      if (bec == http::error::need_more) bec = {};
      if (bec || used == 0) break;
    }
    if (!bec && !parser.is_done()) {
      session.deadline.arm_after(limits.read_timeout);
      auto [ec2, n2] = co_await http::async_read(session.stream, buffer, parser, use_tuple);
      bec = session.deadline.expired() ? beast::error::timeout : ec2;
    }
    session.deadline.disarm();  // the answer may take minutes; writes arm their own timeout
    if (bec) {
      if (bec == http::error::body_limit) {
        log::warn("request_rejected", {{"reason", "payload_too_large"}});
        co_await send_error(ds, Error::client(ErrorKind::payload_too_large, "Request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes."), wc.worker.next_request_id());
      } else if (bec == beast::error::timeout) {
        log::warn("request_rejected", {{"reason", "read_timeout"}});
        co_await send_error(ds, Error::client(ErrorKind::request_timeout, "Timed out reading the request body."), wc.worker.next_request_id());
      }
      wc.busy.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
    auto req = parser.release();
    const bool keep_alive = req.keep_alive() && !wc.draining;
    ClientDownstream<Stream> rds(session, req.version(), keep_alive);
    co_await dispatch(wc, req, rds, received, session.key_memo);
    wc.busy.fetch_sub(1, std::memory_order_relaxed);
    if (!rds.ok() || !keep_alive) break;
  }
  wc.conns.erase(&conn);
}

// One HTTP/2 stream's request through the same routes as HTTP/1.1 (by value: it lives in
// this frame while the pipeline reads its headers).
// The connection's key memo is shared by its streams: they run on this worker's thread and
// a key is resolved without suspending, so they never use it at the same time.
asio::awaitable<void> dispatch_h2(WorkerCtx* wc, Http2Request req, pipeline::Downstream* ds, Clock::time_point received,
                                  std::shared_ptr<auth::KeyMemo> key_memo) {
  co_await dispatch(*wc, req, *ds, received, *key_memo);
}

asio::awaitable<void> reject_h2(WorkerCtx* wc, Error e, pipeline::Downstream* ds) {
  const char* reason = e.kind == ErrorKind::payload_too_large   ? "payload_too_large"
                       : e.kind == ErrorKind::headers_too_large ? "headers_too_large"
                                                                : "read_timeout";
  log::warn("request_rejected", {{"reason", reason}, {"protocol", "h2"}});
  co_await send_error(*ds, e, wc->worker.next_request_id());
}

// The HTTP/2 session on one connection (over either transport).
asio::awaitable<void> serve_h2(WorkerCtx& wc, Transport& transport, std::string initial) {
  const auto& limits = wc.runtime()->config().limits;
  Http2Options options;
  options.max_header_bytes = limits.max_header_bytes;
  options.max_body_bytes = limits.max_body_bytes;
  options.read_timeout = limits.read_timeout;
  options.idle_timeout = limits.keepalive_idle_timeout;
  options.write_timeout = kWriteTimeout;
  WorkerCtx* w = &wc;
  auto key_memo = std::make_shared<auth::KeyMemo>();
  Http2Handlers handlers;
  handlers.request = [w, key_memo](Http2Request req, pipeline::Downstream& ds, Clock::time_point received) {
    w->h2_streams.fetch_add(1, std::memory_order_relaxed);
    return dispatch_h2(w, std::move(req), &ds, received, key_memo);
  };
  handlers.reject = [w](Error e, pipeline::Downstream& ds) {
    w->h2_streams.fetch_add(1, std::memory_order_relaxed);
    return reject_h2(w, std::move(e), &ds);
  };
  handlers.busy = [w](int d) { w->busy.fetch_add(d, std::memory_order_relaxed); };
  Http2Session session(transport, options, std::move(handlers));
  Conn conn{[&session] { session.shutdown(); }};
  wc.conns.insert(&conn);
  if (wc.draining) session.shutdown();
  co_await session.run(std::move(initial));
  wc.conns.erase(&conn);
}

// Plain TCP: HTTP/2 when the first bytes are its connection preface (prior knowledge),
// HTTP/1.1 otherwise. What was read to decide is handed to the protocol that runs.
asio::awaitable<void> serve_plain(WorkerCtx& wc, tcp::socket socket) {
  beast::flat_buffer buffer;
  bool h2 = false;
  {
    bool stop = false;
    Conn conn{[&socket] {
      boost::system::error_code ignored;
      socket.cancel(ignored);
    }};
    wc.conns.insert(&conn);
    providers::http::Deadline deadline(socket.get_executor(), [&socket] {
      boost::system::error_code ignored;
      socket.cancel(ignored);
    });
    deadline.arm_after(wc.runtime()->config().limits.keepalive_idle_timeout);
    while (!wc.draining) {
      const std::string_view got(static_cast<const char*>(buffer.data().data()), buffer.size());
      const std::size_t n = std::min(got.size(), kH2Preface.size());
      if (got.substr(0, n) != kH2Preface.substr(0, n)) break;  // not HTTP/2: HTTP/1.1
      if (n == kH2Preface.size()) {
        h2 = true;
        break;
      }
      auto [ec, read] = co_await socket.async_read_some(buffer.prepare(4096), use_tuple);
      if (ec) {
        stop = true;  // closed, or idle until the timeout: nothing to answer
        break;
      }
      buffer.commit(read);
    }
    wc.conns.erase(&conn);
    if (stop || (wc.draining && buffer.size() == 0)) co_return;
  }
  if (h2) {
    ProtoCount count(wc, Proto::h2_plain);
    StreamTransport<tcp::socket> transport(socket);
    std::string initial(static_cast<const char*>(buffer.data().data()), buffer.size());
    co_await serve_h2(wc, transport, std::move(initial));
  } else {
    ProtoCount count(wc, Proto::h1_plain);
    co_await serve_h1(wc, socket, std::move(buffer));
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  }
}

// TLS: handshake within the read timeout, then HTTP/2 when ALPN chose h2, else HTTP/1.1.
asio::awaitable<void> serve_tls(WorkerCtx& wc, tcp::socket socket, std::shared_ptr<ssl::context> ctx) {
  boost::system::error_code ignored;
  const auto peer = socket.remote_endpoint(ignored);
  TlsStream stream(std::move(socket), *ctx);
  {
    Conn conn{[&stream] {
      boost::system::error_code e;
      stream.next_layer().cancel(e);
    }};
    wc.conns.insert(&conn);
    providers::http::Deadline deadline(stream.get_executor(), [&stream] {
      boost::system::error_code e;
      stream.next_layer().cancel(e);
    });
    deadline.arm_after(wc.runtime()->config().limits.read_timeout);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
    const bool timed_out = deadline.expired();
    deadline.disarm();
    wc.conns.erase(&conn);
    if (ec) {
      // The reason only (OpenSSL's text, or a timeout): nothing from the certificate or key.
      if (ec != asio::error::eof && ec != asio::error::connection_reset)
        log::info("tls_handshake_failed",
                  {{"peer", peer.address().to_string()}, {"error", timed_out ? std::string("timed out") : ec.message()}});
      co_return;
    }
  }
  if (alpn_is_h2(stream.native_handle())) {
    ProtoCount count(wc, Proto::h2_tls);
    StreamTransport<TlsStream> transport(stream);
    co_await serve_h2(wc, transport, {});
  } else {
    ProtoCount count(wc, Proto::h1_tls);
    co_await serve_h1(wc, stream, beast::flat_buffer{});
    stream.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

asio::awaitable<void> run_connection(WorkerCtx& wc, tcp::socket socket) {
  wc.worker.metrics.add(telemetry::GaugeId::open_connections, 1);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  try {
    if (wc.tls) co_await serve_tls(wc, std::move(socket), wc.tls);
    else co_await serve_plain(wc, std::move(socket));
  } catch (const std::exception& e) {
    log::error("connection_failed", {{"error", e.what()}});
  }
  wc.worker.metrics.add(telemetry::GaugeId::open_connections, -1);
}

asio::awaitable<void> accept_loop(WorkerCtx& wc) {
  for (;;) {
    auto [ec, socket] = co_await wc.acceptor->async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !wc.acceptor->is_open()) co_return;
      log::warn("accept_failed", {{"error", ec.message()}});
      asio::steady_timer backoff(wc.io, std::chrono::milliseconds(50));  // e.g. EMFILE: do not spin
      co_await backoff.async_wait(use_tuple);
      continue;
    }
    asio::co_spawn(wc.io, run_connection(wc, std::move(socket)), asio::detached);
  }
}

// bulwark_client_connections_total{protocol,tls} and bulwark_open_client_connections{protocol,tls}.
void render_connection_metrics(const std::vector<std::unique_ptr<WorkerCtx>>& workers, std::string& out) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kLabels{
      {{"h1", "false"}, {"h1", "true"}, {"h2", "false"}, {"h2", "true"}}};
  std::array<std::uint64_t, 4> accepted{};
  std::array<std::int64_t, 4> open{};
  std::uint64_t streams = 0;
  for (const auto& w : workers) {
    for (std::size_t i = 0; i < 4; ++i) {
      accepted[i] += w->accepted[i].load(std::memory_order_relaxed);
      open[i] += w->open[i].load(std::memory_order_relaxed);
    }
    streams += w->h2_streams.load(std::memory_order_relaxed);
  }
  auto series = [&](std::string_view name, std::size_t i, auto value) {
    out += name;
    out += "{protocol=\"";
    out += kLabels[i].first;
    out += "\",tls=\"";
    out += kLabels[i].second;
    out += "\"} ";
    out += std::to_string(value);
    out += '\n';
  };
  out += "# HELP bulwark_client_connections_total Client connections by protocol (after TLS and preface detection).\n";
  out += "# TYPE bulwark_client_connections_total counter\n";
  for (std::size_t i = 0; i < 4; ++i) series("bulwark_client_connections_total", i, accepted[i]);
  out += "# HELP bulwark_open_client_connections Open client connections by protocol.\n";
  out += "# TYPE bulwark_open_client_connections gauge\n";
  for (std::size_t i = 0; i < 4; ++i) series("bulwark_open_client_connections", i, open[i]);
  out += "# HELP bulwark_http2_requests_total Requests received as HTTP/2 streams.\n";
  out += "# TYPE bulwark_http2_requests_total counter\n";
  out += "bulwark_http2_requests_total " + std::to_string(streams) + "\n";
}

tcp::acceptor open_listener(asio::io_context& io, const tcp::endpoint& ep) {
  tcp::acceptor acc(io);
  acc.open(ep.protocol());
  acc.set_option(asio::socket_base::reuse_address(true));
  int one = 1;
  if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw std::runtime_error("SO_REUSEPORT is not available");
  acc.bind(ep);
  acc.listen(asio::socket_base::max_listen_connections);
  return acc;
}

void apply_log_level(const config::Config& cfg) {
  if (auto l = log::parse_level(cfg.log.level)) log::set_level(*l);
}

// Loads the config and builds its Runtime. The governance services are opened with the
// first config and kept for the life of the process (their database cannot move).
std::shared_ptr<const pipeline::Runtime> load_runtime(const std::string& path, bool at_start,
                                                      std::unique_ptr<pipeline::Governance>& governance) {
  auto cfg = config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error())
      log::error(at_start ? "config_invalid" : "config_reload_rejected", {{"error", e.to_string(path)}});
    return nullptr;
  }
  if (!governance && (*cfg)->governance.enabled) {
    auto opened = pipeline::Governance::open((*cfg)->governance);
    if (!opened) {
      log::error("governance_open_failed", {{"database", (*cfg)->governance.database}, {"error", opened.error().message}});
      return nullptr;
    }
    governance = std::move(*opened);
  } else if (governance && (*cfg)->governance.database != governance->database()) {
    log::warn("config_reload_partial", {{"detail", "governance.database changes need a restart; kept the old one"}});
  }
  auto rt = pipeline::Runtime::build(*cfg, pipeline::HealthRegistry::instance(), config::process_env(), governance.get());
  if (!rt) {
    log::error(at_start ? "config_invalid" : "config_reload_rejected", {{"error", rt.error().message}});
    return nullptr;
  }
  return std::move(*rt);
}

// SIGHUP re-reads the listener's certificate and key (a renewed certificate needs no
// restart); new connections use them, open ones keep theirs. Turning TLS on or off needs a
// restart. A file that fails to load keeps the old context.
void reload_tls(const config::Config& next, std::shared_ptr<ssl::context>& current,
                std::vector<std::unique_ptr<WorkerCtx>>& workers) {
  if (static_cast<bool>(next.tls) != static_cast<bool>(current)) {
    log::warn("config_reload_partial", {{"detail", "turning tls on or off needs a restart; kept the listener as it was"}});
    return;
  }
  if (!next.tls) return;
  auto made = make_server_tls_context(*next.tls);
  if (!made) {
    log::error("tls_reload_failed", {{"error", made.error()}});
    return;
  }
  current = std::move(*made);
  for (auto& w : workers) asio::post(w->io, [wp = w.get(), ctx = current] { wp->tls = ctx; });
}

}  // namespace

int serve(const ServeOptions& options) {
  std::unique_ptr<pipeline::Governance> governance;
  auto runtime = load_runtime(options.config_path, true, governance);
  if (!runtime) return 2;
  const config::Config& cfg = runtime->config();
  apply_log_level(cfg);

  std::string host = cfg.listen.host;
  std::uint16_t port = cfg.listen.port;
  if (!options.listen_override.empty()) {
    const auto colon = options.listen_override.rfind(':');
    host = options.listen_override.substr(0, colon);
    port = static_cast<std::uint16_t>(std::stoi(options.listen_override.substr(colon + 1)));
  }
  unsigned n = options.workers ? options.workers : cfg.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());

  std::shared_ptr<ssl::context> tls;
  if (cfg.tls) {
    auto made = make_server_tls_context(*cfg.tls);
    if (!made) {
      log::error("tls_config_invalid", {{"error", made.error()}});
      return 2;
    }
    tls = std::move(*made);
  }

  RuntimeHolder holder(runtime);
  telemetry::Registry registry(n);
  pipeline::install_health_metrics(registry);
  if (governance) governance->install_metrics(registry);
  // One thread for governance admin calls (SQLite reads and writes an operator asks for),
  // so they never hold up a worker's requests. Declared before the workers: it must
  // outlive them.
  asio::thread_pool admin_pool(1);
  asio::post(admin_pool, [] { name_this_thread("bw-admin"); });
  std::vector<std::unique_ptr<WorkerCtx>> workers;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    log::error("listen_failed", {{"error", "listen host must be an IP address: " + host}});
    return 2;
  }
  try {
    for (unsigned i = 0; i < n; ++i) {
      workers.push_back(std::make_unique<WorkerCtx>(i, holder, registry));
      workers.back()->tls = tls;
      workers.back()->admin = admin_pool.get_executor();
      workers.back()->acceptor.emplace(open_listener(workers.back()->io, tcp::endpoint(address, port)));
      port = workers.back()->acceptor->local_endpoint().port();  // with port 0, the others join the one picked
    }
  } catch (const std::exception& e) {
    log::error("listen_failed", {{"error", e.what()}, {"address", host + ":" + std::to_string(port)}});
    return 2;
  }

  registry.add_collector([&workers](std::string& out) { render_connection_metrics(workers, out); });
  for (std::size_t i = 0; i < workers.size(); ++i) {
    auto& w = workers[i];
    asio::co_spawn(w->io, accept_loop(*w), asio::detached);
    w->thread = std::thread([&io = w->io, i] {
      name_this_thread("bw-worker-" + std::to_string(i));
      io.run();
    });
  }
  log::info("listening", {{"address", host + ":" + std::to_string(port)},
                          {"workers", n},
                          {"tls", tls != nullptr},
                          {"http2", tls ? (cfg.tls->http2 ? "h2 (ALPN)" : "off") : "h2c (prior knowledge)"},
                          {"version", BULWARK_VERSION}});
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);

  asio::io_context main_io(1);
  asio::signal_set stop_signals(main_io, SIGTERM, SIGINT);
  asio::signal_set reload_signal(main_io, SIGHUP);
  asio::steady_timer drain_timer(main_io);
  Clock::time_point drain_deadline{};

  std::function<void()> arm_reload = [&] {
    reload_signal.async_wait([&](const boost::system::error_code& e, int) {
      if (e) return;
      if (auto next = load_runtime(options.config_path, false, governance)) {
        if (next->config().listen.host != cfg.listen.host || next->config().listen.port != cfg.listen.port)
          log::warn("config_reload_partial", {{"detail", "listen address changes need a restart; kept the old one"}});
        reload_tls(next->config(), tls, workers);
        apply_log_level(next->config());
        holder.set(std::move(next));
        log::info("config_reloaded", {{"path", options.config_path}});
      }
      arm_reload();
    });
  };
  arm_reload();

  std::function<void()> poll_drain = [&] {
    int busy = 0;
    for (auto& w : workers) busy += w->busy.load(std::memory_order_relaxed);
    if (busy == 0 || Clock::now() >= drain_deadline) {
      if (busy) log::warn("shutdown_forced", {{"requests_cut", busy}});
      for (auto& w : workers) w->io.stop();
      reload_signal.cancel();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&](const boost::system::error_code& e) {
      if (!e) poll_drain();
    });
  };

  stop_signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    log::info("shutdown_started", {{"signal", sig}});
    drain_deadline = Clock::now() + holder.get()->config().limits.shutdown_grace;
    for (auto& w : workers) {
      asio::post(w->io, [wp = w.get()] {
        wp->draining = true;
        boost::system::error_code ignored;
        wp->acceptor->close(ignored);
        // Idle keep-alive connections close now; busy ones after their response;
        // HTTP/2 connections get GOAWAY (streams in flight finish, new ones are refused).
        const std::vector<Conn*> conns(wp->conns.begin(), wp->conns.end());
        for (Conn* c : conns) c->on_drain();
      });
    }
    poll_drain();
  });

  main_io.run();
  for (auto& w : workers) w->thread.join();
  // An admin call still running (its worker stopped waiting) ends before the store closes.
  admin_pool.join();
  // Every request has ended: commit what the ledger still holds.
  if (governance) governance->close();
  log::info("shutdown_complete", {});
  return 0;
}

}  // namespace bulwark::server
