#include "server/http2_session.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/field.hpp>
#include <charconv>
#include <cstring>
#include <exception>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "providers/http/deadline.hpp"
#include "telemetry/log.hpp"

namespace bulwark::server {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kOutBatch = 64 * 1024;     // bytes gathered from nghttp2 per socket write
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr auto kLinger = std::chrono::seconds(2);  // after GOAWAY: wait this long for the peer to close

// Connection-specific fields are forbidden in HTTP/2 (RFC 9113 §8.2.2).
bool connection_specific(std::string_view name) {
  return name == "connection" || name == "transfer-encoding" || name == "keep-alive" || name == "proxy-connection" ||
         name == "upgrade" || name == "content-length";
}

nghttp2_nv nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

// Wakes every wait on a timer used as a condition variable.
void wake(asio::steady_timer& t) { t.cancel(); }

}  // namespace

class Http2Session::Impl : public std::enable_shared_from_this<Http2Session::Impl> {
 public:
  class Stream;

  Impl(Transport& t, Http2Options o, Http2Handlers h)
      : transport(t),
        options(o),
        handlers(std::move(h)),
        writer_wake(t.executor()),
        done_wake(t.executor()),
        idle(t.executor(), [this] { shutdown(); }),
        linger(t.executor(), [this] { transport.close(); }) {}
  ~Impl() {
    if (session) nghttp2_session_del(session);
  }

  bool init();
  asio::awaitable<void> run(std::string initial);
  asio::awaitable<void> writer(std::shared_ptr<Impl> self);
  asio::awaitable<void> run_stream(std::shared_ptr<Impl> self, std::shared_ptr<Stream> st);
  void spawn(std::shared_ptr<Stream> st);
  void shutdown();
  void die();
  void wake_flush_waiters();
  void stream_closed(Stream& st, std::uint32_t error_code);
  void maybe_idle();
  bool writer_idle() const { return !writing && (dead || !nghttp2_session_want_write(session)); }

  Transport& transport;
  Http2Options options;
  Http2Handlers handlers;
  nghttp2_session* session = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<Stream>> streams;  // open, as nghttp2 sees them
  asio::steady_timer writer_wake;  // cancelled to wake the writer
  asio::steady_timer done_wake;    // cancelled when the writer stops, a stream coroutine ends, or a flush completes
  providers::http::Deadline idle;
  providers::http::Deadline linger;  // also the socket write timeout
  std::string out;
  bool dead = false;
  bool writing = false;
  bool writer_running = false;
  bool goaway_sent = false;
  int live = 0;  // stream coroutines
  std::unordered_set<Stream*> flush_waiters;  // answered streams waiting for the writer to go idle
  Stats stats;
};

// One request stream: collects the request, then is the pipeline's Downstream.
class Http2Session::Impl::Stream final : public pipeline::Downstream {
 public:
  Stream(Impl& c, std::int32_t i)
      : conn(c), id(i), req_wake(c.transport.executor()), write_wake(c.transport.executor()), hangup_wake(c.transport.executor()) {
    req.version(20);
  }

  asio::awaitable<bool> send(unsigned status, std::span<const pipeline::Header> headers, std::string_view content_type,
                             std::string body) override {
    if (!usable() || responded) co_return false;
    const bool empty = body.empty();
    pending = std::move(body);
    offset = 0;
    eof = true;
    const std::string length = std::to_string(pending.size());
    if (!submit(status, headers, content_type, &length, !empty)) co_return false;
    if (empty) eof_sent = true;
    co_return co_await drained(0);
  }

  asio::awaitable<bool> begin_stream(unsigned status, std::span<const pipeline::Header> headers,
                                     std::string_view content_type) override {
    if (!usable() || responded) co_return false;
    co_return submit(status, headers, content_type, nullptr, true);
  }

  asio::awaitable<bool> write(std::string_view bytes) override {
    if (!usable() || !responded || eof) co_return false;
    if (bytes.empty()) co_return true;
    if (offset > 0 && offset >= pending.size() / 2) {
      pending.erase(0, offset);
      offset = 0;
    }
    pending.append(bytes);
    resume();
    co_return co_await drained(kStreamHighWater);
  }

  asio::awaitable<bool> end_stream() override {
    if (!usable() || !responded || eof) co_return false;
    eof = true;
    resume();
    co_return co_await drained(0);
  }

  asio::awaitable<bool> wait_hangup() override {
    while (!hung_up && !conn.dead) {
      hangup_wake.expires_at(Clock::time_point::max());
      co_await hangup_wake.async_wait(use_tuple);
      if (hung_up || conn.dead) break;
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) co_return false;
    }
    co_return true;
  }

  // Called from nghttp2's data source: copies what is buffered.
  ssize_t read(std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
    const std::size_t left = pending.size() - offset;
    const std::size_t n = std::min(left, length);
    if (n > 0) std::memcpy(buf, pending.data() + offset, n);
    offset += n;
    if (offset == pending.size()) {
      pending.clear();
      offset = 0;
    }
    if (n == 0 && !eof) {
      deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (eof && offset == pending.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      eof_sent = true;
    }
    if (pending.size() - offset <= kStreamHighWater) wake(write_wake);
    return static_cast<ssize_t>(n);
  }

  void wake_all() {
    wake(req_wake);
    wake(write_wake);
    wake(hangup_wake);
  }

  bool usable() const { return !conn.dead && !closed && ok; }

  Impl& conn;
  std::int32_t id;
  Http2Request req;
  std::size_t header_bytes = 0;
  std::optional<Error> refused;
  bool request_done = false;  // END_STREAM received
  bool started = false;       // the coroutine was spawned
  bool closed = false;        // nghttp2 closed the stream
  bool hung_up = false;       // closed by the peer (or the connection) before our answer ended
  bool responded = false;
  bool eof = false;       // the answer has no more bytes to come
  bool eof_sent = false;  // ... and nghttp2 has taken the last of them
  bool deferred = false;
  bool ok = true;
  std::string pending;
  std::size_t offset = 0;
  Clock::time_point received = Clock::now();
  asio::steady_timer req_wake, write_wake, hangup_wake;

 private:
  bool submit(unsigned status, std::span<const pipeline::Header> headers, std::string_view content_type,
              const std::string* length, bool with_data) {
    const std::string code = std::to_string(status);
    std::vector<nghttp2_nv> nva;
    nva.reserve(headers.size() + 5);
    nva.push_back(nv(":status", code));
    nva.push_back(nv("server", "bulwark"));
    nva.push_back(nv("content-type", content_type));
    for (const auto& [k, v] : headers)
      if (!connection_specific(k)) nva.push_back(nv(k, v));
    if (!length) nva.push_back(nv("cache-control", "no-cache"));
    else if (status != 204 && status != 304) nva.push_back(nv("content-length", *length));
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                                nghttp2_data_source* source, void*) -> ssize_t {
      return static_cast<Stream*>(source->ptr)->read(buf, len, flags);
    };
    const int rv = nghttp2_submit_response(conn.session, id, nva.data(), nva.size(), with_data ? &provider : nullptr);
    if (rv != 0) {
      ok = false;
      return false;
    }
    responded = true;
    wake(conn.writer_wake);
    return true;
  }

  void resume() {
    if (deferred && !closed && !conn.dead) {
      deferred = false;
      nghttp2_session_resume_data(conn.session, id);
    }
    wake(conn.writer_wake);
  }

  // Waits until at most `limit` bytes are unsent (limit 0: the answer was handed over in
  // full), the stream ends, or the write timeout passes (then the stream is reset).
  asio::awaitable<bool> drained(std::size_t limit) {
    const auto until = Clock::now() + conn.options.write_timeout;
    for (;;) {
      if (!usable()) break;
      const bool done = limit == 0 ? eof_sent : pending.size() - offset <= limit;
      if (done) break;
      write_wake.expires_at(until);
      auto [ec] = co_await write_wake.async_wait(use_tuple);
      if (!ec && Clock::now() >= until) {
        // The client stopped reading (flow control closed): cut this stream off.
        log::warn("http2_stream_write_timeout", {{"stream", id}});
        if (!closed && !conn.dead) {
          nghttp2_submit_rst_stream(conn.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
          wake(conn.writer_wake);
        }
        ok = false;
        break;
      }
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) {
        ok = false;
        break;
      }
    }
    co_return usable() || (closed && !hung_up && eof_sent);
  }
};

namespace {

using Impl = Http2Session::Impl;
using Stream = Http2Session::Impl::Stream;

Stream* stream_of(nghttp2_session* s, std::int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, id));
}

void refuse(Stream& st, Error e) {
  if (st.refused) return;
  st.refused = std::move(e);
  st.req.body().clear();
  st.req.body().shrink_to_fit();
  wake(st.req_wake);
}

int on_begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* ud) {
  auto& c = *static_cast<Impl*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto st = std::make_shared<Stream>(c, frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st.get());
  c.streams.emplace(frame->hd.stream_id, st);
  ++c.stats.streams;
  c.idle.disarm();
  c.spawn(std::move(st));
  return 0;
}

int on_header(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
              const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* ud) {
  auto& c = *static_cast<Impl*>(ud);
  Stream* st = stream_of(s, frame->hd.stream_id);
  if (!st || st->refused) return 0;
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > c.options.max_header_bytes) {
    refuse(*st, Error::client(ErrorKind::headers_too_large,
                              "Request headers exceed " + std::to_string(c.options.max_header_bytes) + " bytes."));
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers are not used
  if (n == ":method") st->req.method_string(v);
  else if (n == ":path") st->req.target(v);
  else if (n == ":authority") st->req.set(http::field::host, v);
  else if (n.starts_with(':')) return 0;  // :scheme
  else st->req.insert(n, v);
  return 0;
}

int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* ud) {
  auto& c = *static_cast<Impl*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Stream* st = stream_of(s, frame->hd.stream_id);
  if (!st) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST && !st->refused) {
    // A declared length over the limit is refused before any of the body arrives.
    if (auto it = st->req.find(http::field::content_length); it != st->req.end()) {
      std::size_t declared = 0;
      const std::string_view v = it->value();
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), declared);
      if (ec == std::errc{} && declared > c.options.max_body_bytes)
        refuse(*st, Error::client(ErrorKind::payload_too_large,
                                  "Request body exceeds " + std::to_string(c.options.max_body_bytes) + " bytes."));
    }
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) st->request_done = true;
  wake(st->req_wake);
  return 0;
}

int on_data_chunk(nghttp2_session* s, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len, void* ud) {
  auto& c = *static_cast<Impl*>(ud);
  Stream* st = stream_of(s, id);
  if (!st || st->refused) return 0;
  if (st->req.body().size() + len > c.options.max_body_bytes) {
    refuse(*st, Error::client(ErrorKind::payload_too_large,
                              "Request body exceeds " + std::to_string(c.options.max_body_bytes) + " bytes."));
    return 0;
  }
  st->req.body().append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error_code, void* ud) {
  auto& c = *static_cast<Impl*>(ud);
  auto it = c.streams.find(id);
  if (it == c.streams.end()) return 0;
  auto st = std::move(it->second);
  c.streams.erase(it);
  c.stream_closed(*st, error_code);
  return 0;
}

}  // namespace

bool Http2Session::Impl::init() {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  const int rv = nghttp2_session_server_new(&session, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const std::array<nghttp2_settings_entry, 2> iv{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.initial_window},
  }};
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv.data(), iv.size()) != 0) return false;
  if (options.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, static_cast<std::int32_t>(options.connection_window));
  if (goaway_sent)  // shut down before it ran: refuse every stream
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  return true;
}

void Http2Session::Impl::spawn(std::shared_ptr<Stream> st) {
  ++live;
  asio::co_spawn(transport.executor(), run_stream(shared_from_this(), std::move(st)), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log::error("http2_stream_failed", {{"error", x.what()}});
    }
  });
}

void Http2Session::Impl::shutdown() {
  if (dead || goaway_sent) return;
  goaway_sent = true;
  if (!session) return;  // before run(): init() sends it
  nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  wake(writer_wake);
}

void Http2Session::Impl::die() {
  if (dead) return;
  dead = true;
  idle.disarm();
  linger.disarm();
  transport.close();
  for (auto& [id, st] : streams) {
    st->closed = true;
    if (!st->eof_sent) st->hung_up = true;
    st->wake_all();
  }
  streams.clear();
  wake_flush_waiters();
  wake(writer_wake);
  wake(done_wake);
}

void Http2Session::Impl::wake_flush_waiters() {
  for (Stream* st : flush_waiters) wake(st->write_wake);
}

void Http2Session::Impl::stream_closed(Stream& st, std::uint32_t error_code) {
  st.closed = true;
  if (error_code != NGHTTP2_NO_ERROR || !st.eof_sent) st.hung_up = true;
  st.wake_all();
  maybe_idle();
}

void Http2Session::Impl::maybe_idle() {
  if (!dead && streams.empty() && live == 0) idle.arm_after(options.idle_timeout);
}

asio::awaitable<void> Http2Session::Impl::writer(std::shared_ptr<Impl> self) {
  for (;;) {
    if (dead) break;
    out.clear();
    while (out.size() < kOutBatch) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n < 0) {
        log::info("http2_session_error", {{"error", nghttp2_strerror(static_cast<int>(n))}});
        die();
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (dead) break;
    if (out.empty()) {
      wake_flush_waiters();
      wake(done_wake);
      if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) {
        // GOAWAY went out and no stream is left: close our side, let the peer close its own.
        transport.shutdown_send();
        linger.arm_after(kLinger);
        break;
      }
      writer_wake.expires_at(Clock::time_point::max());
      co_await writer_wake.async_wait(use_tuple);
      continue;
    }
    writing = true;
    linger.arm_after(options.write_timeout);  // a client that stops reading is cut off
    auto [ec, n] = co_await transport.write(asio::buffer(out));
    linger.disarm();
    writing = false;
    if (ec) {
      die();
      break;
    }
  }
  writer_running = false;
  wake(done_wake);
  (void)self;
}

asio::awaitable<void> Http2Session::Impl::run_stream(std::shared_ptr<Impl> self, std::shared_ptr<Stream> st) {
  // The request: complete, refused, or not complete within the read timeout (408).
  const auto until = st->received + options.read_timeout;
  while (!st->request_done && !st->refused && !st->closed && !dead) {
    st->req_wake.expires_at(until);
    auto [ec] = co_await st->req_wake.async_wait(use_tuple);
    if (!ec && Clock::now() >= until) {
      if (!st->request_done && !st->closed && !dead)
        refuse(*st, Error::client(ErrorKind::request_timeout, "Timed out reading the request."));
      break;
    }
  }
  if (!st->closed && !dead) {
    if (handlers.busy) handlers.busy(+1);
    try {
      if (st->refused) co_await handlers.reject(*st->refused, *st);
      else co_await handlers.request(std::move(st->req), *st, st->received);
    } catch (const std::exception& e) {
      log::error("http2_stream_failed", {{"error", e.what()}});
    }
    if (!st->responded && !st->closed && !dead) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
      wake(writer_wake);
    }
    // Counted busy until the answer has left the process (drain must not cut it).
    flush_waiters.insert(st.get());
    const auto flush_until = Clock::now() + options.write_timeout;
    while (!dead && !writer_idle()) {
      st->write_wake.expires_at(flush_until);
      auto [ec] = co_await st->write_wake.async_wait(use_tuple);
      if (!ec) break;
    }
    flush_waiters.erase(st.get());
    if (handlers.busy) handlers.busy(-1);
  }
  --live;
  maybe_idle();
  wake(done_wake);
  (void)self;
}

asio::awaitable<void> Http2Session::Impl::run(std::string initial) {
  auto self = shared_from_this();
  if (!init()) {
    log::error("http2_session_error", {{"error", "nghttp2 session setup failed"}});
    co_return;
  }
  writer_running = true;
  asio::co_spawn(transport.executor(), writer(self), asio::detached);
  maybe_idle();
  std::array<std::uint8_t, kReadChunk> in;
  const auto feed = [&](const std::uint8_t* data, std::size_t n) -> bool {
    const ssize_t rv = nghttp2_session_mem_recv(session, data, n);
    if (rv < 0) {
      log::info("http2_protocol_error", {{"error", nghttp2_strerror(static_cast<int>(rv))}});
      return false;
    }
    wake(writer_wake);
    return true;
  };
  bool alive = initial.empty() || feed(reinterpret_cast<const std::uint8_t*>(initial.data()), initial.size());
  // After a fatal error nghttp2 may still have a GOAWAY to send: let the writer try.
  while (alive && !dead) {
    auto [ec, n] = co_await transport.read_some(asio::buffer(in));
    if (ec || dead) break;
    if (!feed(in.data(), n)) break;
  }
  if (!dead && writer_running && nghttp2_session_want_write(session)) {
    // Flush what is queued (a GOAWAY after a protocol error), bounded by the linger.
    linger.arm_after(kLinger);
    while (!dead && writer_running && nghttp2_session_want_write(session)) {
      done_wake.expires_at(Clock::now() + kLinger);
      co_await done_wake.async_wait(use_tuple);
    }
  }
  die();
  while (writer_running || live > 0) {
    done_wake.expires_at(Clock::time_point::max());
    co_await done_wake.async_wait(use_tuple);
  }
}

Http2Session::Http2Session(Transport& transport, Http2Options options, Http2Handlers handlers)
    : impl_(std::make_shared<Impl>(transport, options, std::move(handlers))) {}

Http2Session::~Http2Session() = default;

asio::awaitable<void> Http2Session::run(std::string initial) { return impl_->run(std::move(initial)); }

void Http2Session::shutdown() { impl_->shutdown(); }

Http2Session::Stats Http2Session::stats() const noexcept { return impl_->stats; }

}  // namespace bulwark::server
