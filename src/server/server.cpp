#include "server/server.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
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
#include "pipeline/admin.hpp"
#include "pipeline/chat.hpp"
#include "pipeline/health.hpp"
#include "pipeline/worker.hpp"
#include "providers/http/deadline.hpp"
#include "telemetry/log.hpp"

namespace bulwark::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

struct Session;

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
  std::unordered_set<Session*> sessions;
  std::atomic<int> busy{0};
  bool draining = false;
  std::thread thread;
};

struct Session {
  // On expiry the pending operation is cancelled, not the socket closed: a request that
  // stopped arriving still gets its 408 before the connection closes.
  Session(WorkerCtx& w, tcp::socket s) : wc(w), stream(std::move(s)), deadline(wc.io.get_executor(), [this] { cancel(); }) {}
  void cancel() noexcept {
    boost::system::error_code ignored;
    stream.cancel(ignored);
  }
  void close() noexcept {
    boost::system::error_code ignored;
    stream.close(ignored);
  }
  WorkerCtx& wc;
  tcp::socket stream;
  providers::http::Deadline deadline;  // one watchdog per connection, not one timer per I/O
  bool idle = true;
};

// The pipeline's view of the client connection. Response heads are written by hand:
// the fixed part is small and Beast's serializer was a measurable share of each request.
class ClientDownstream final : public pipeline::Downstream {
 public:
  ClientDownstream(Session& s, unsigned version, bool keep_alive) : session_(s), version_(version), keep_alive_(keep_alive) {}

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
    auto& sock = session_.stream;
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
    head_.clear();
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

  template <class Buffers>
  asio::awaitable<bool> write_buffers(const Buffers& bufs) {
    if (!ok_) co_return false;
    session_.deadline.arm_after(kWriteTimeout);  // a client that stops reading is cut off
    auto [ec, n] = co_await asio::async_write(session_.stream, bufs, use_tuple);
    ok_ = !ec;
    co_return ok_;
  }

  Session& session_;
  unsigned version_;
  bool keep_alive_;
  bool ok_ = true;
  std::string head_;
};

asio::awaitable<void> send_error(ClientDownstream& ds, const Error& e, const std::string& request_id) {
  const pipeline::Header h[] = {{"x-bulwark-request-id", request_id}};
  co_await ds.send(static_cast<unsigned>(http_status_of(e.kind)), h, "application/json", api::openai::error_body(e));
}

asio::awaitable<void> send_json(ClientDownstream& ds, const std::string& request_id, unsigned status, std::string body,
                                std::string_view type = "application/json") {
  const pipeline::Header h[] = {{"x-bulwark-request-id", request_id}};
  co_await ds.send(status, h, type, std::move(body));
}

// Routes one request. Everything under /v1 speaks OpenAI's error shape.
asio::awaitable<void> dispatch(WorkerCtx& wc, http::request<http::string_body>& req, ClientDownstream& ds,
                               Clock::time_point received) {
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
    pipeline::IncomingRequest in{std::move(req.body()), wc.worker.next_request_id(), received};
    co_await pipeline::handle_chat_completion(rt, wc.worker, std::move(in), ds);
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
  } else if (target == "/metrics" && only(http::verb::get)) {
    co_await send_json(ds, wc.worker.next_request_id(), 200, wc.registry.render(), "text/plain; version=0.0.4; charset=utf-8");
  } else {
    const std::string id = wc.worker.next_request_id();
    log::info("route_not_found", {{"request_id", id}, {"method", std::string_view(req.method_string())}, {"path", target}});
    co_await send_error(ds, Error::client(ErrorKind::route_not_found, "Unknown request URL: " + std::string(req.method_string()) + " " + std::string(target) + "."), id);
  }
}

asio::awaitable<void> run_session(WorkerCtx& wc, tcp::socket socket) {
  Session session(wc, std::move(socket));
  wc.sessions.insert(&session);
  wc.worker.metrics.add(telemetry::GaugeId::open_connections, 1);
  boost::system::error_code ignored;
  session.stream.set_option(tcp::no_delay(true), ignored);
  beast::flat_buffer buffer;

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
    ClientDownstream ds(session, parser.get().version() ? parser.get().version() : 11, false);
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
    if (!parser.is_done()) {
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
    ClientDownstream rds(session, req.version(), keep_alive);
    co_await dispatch(wc, req, rds, received);
    wc.busy.fetch_sub(1, std::memory_order_relaxed);
    if (!rds.ok() || !keep_alive) break;
  }
  session.stream.shutdown(tcp::socket::shutdown_send, ignored);
  session.close();
  wc.sessions.erase(&session);
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
    asio::co_spawn(wc.io, run_session(wc, std::move(socket)), asio::detached);
  }
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

std::shared_ptr<const pipeline::Runtime> load_runtime(const std::string& path, bool at_start) {
  auto cfg = config::load_file(path);
  if (!cfg) {
    for (const auto& e : cfg.error())
      log::error(at_start ? "config_invalid" : "config_reload_rejected", {{"error", e.to_string(path)}});
    return nullptr;
  }
  auto rt = pipeline::Runtime::build(*cfg);
  if (!rt) {
    log::error(at_start ? "config_invalid" : "config_reload_rejected", {{"error", rt.error().message}});
    return nullptr;
  }
  return std::move(*rt);
}

}  // namespace

int serve(const ServeOptions& options) {
  auto runtime = load_runtime(options.config_path, true);
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

  RuntimeHolder holder(runtime);
  telemetry::Registry registry(n);
  pipeline::install_health_metrics(registry);
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
      workers.back()->acceptor.emplace(open_listener(workers.back()->io, tcp::endpoint(address, port)));
      port = workers.back()->acceptor->local_endpoint().port();  // with port 0, the others join the one picked
    }
  } catch (const std::exception& e) {
    log::error("listen_failed", {{"error", e.what()}, {"address", host + ":" + std::to_string(port)}});
    return 2;
  }

  for (auto& w : workers) {
    asio::co_spawn(w->io, accept_loop(*w), asio::detached);
    w->thread = std::thread([&io = w->io] { io.run(); });
  }
  log::info("listening", {{"address", host + ":" + std::to_string(port)}, {"workers", n}, {"version", BULWARK_VERSION}});
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
      if (auto next = load_runtime(options.config_path, false)) {
        if (next->config().listen.host != cfg.listen.host || next->config().listen.port != cfg.listen.port)
          log::warn("config_reload_partial", {{"detail", "listen address changes need a restart; kept the old one"}});
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
        // Idle keep-alive connections close now; busy ones after their response.
        for (Session* s : wp->sessions)
          if (s->idle) s->stream.cancel(ignored);
      });
    }
    poll_drain();
  });

  main_io.run();
  for (auto& w : workers) w->thread.join();
  log::info("shutdown_complete", {});
  return 0;
}

}  // namespace bulwark::server
