// The operator-event notifier against a real HTTP receiver on 127.0.0.1.
#include "telemetry/events.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace tel = bulwark::telemetry;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct Received {
  std::string target;
  std::string body;
  std::string content_type;
  std::string event_header;
  std::string event_id;
  std::string custom;
};

// What the receiver does with its n-th request (1-based).
struct Reply {
  unsigned status = 200;
  bool hold = false;  // wait until release() before answering
  bool hang = false;  // never answer (until the test ends)
};

// A minimal HTTP/1.1 receiver: one thread per connection, one request per connection.
class Receiver {
 public:
  explicit Receiver(std::function<Reply(int)> script = {}) : script_(std::move(script)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~Receiver() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      released_ = true;
    }
    cv_.notify_all();
    // Wake the blocking accept with a connection of our own.
    try {
      asio::io_context io;
      tcp::socket s(io);
      s.connect({asio::ip::make_address("127.0.0.1"), port_});
    } catch (...) {
    }
    accept_thread_.join();
    for (auto& t : conn_threads_) t.join();
  }

  std::string url(std::string_view path = "/hook") const { return "http://127.0.0.1:" + std::to_string(port_) + std::string(path); }
  std::vector<Received> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  int requests() const {
    std::lock_guard lock(mu_);
    return count_;
  }
  bool wait_requests(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  void accept_loop() {
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (ec) continue;
      conn_threads_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
  }

  void serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(socket, buffer, req, ec);
    if (ec) return;
    int n = 0;
    {
      std::lock_guard lock(mu_);
      n = ++count_;
      received_.push_back({std::string(req.target()), req.body(), std::string(req[http::field::content_type]),
                           std::string(req["x-bulwark-event"]), std::string(req["x-bulwark-event-id"]),
                           std::string(req["x-custom"])});
    }
    cv_.notify_all();
    const Reply reply = script_ ? script_(n) : Reply{};
    if (reply.hold || reply.hang) {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return reply.hang ? stopping_ : released_; });
    }
    http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
    res.set(http::field::content_type, "text/plain");
    res.body() = "ok";
    res.prepare_payload();
    http::write(socket, res, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  std::function<Reply(int)> script_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  unsigned short port_ = 0;
  std::thread accept_thread_;
  std::list<std::thread> conn_threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;
  int count_ = 0;
  bool released_ = false;
  bool stopping_ = false;
};

tel::WebhookSettings settings_for(const Receiver& r) {
  tel::WebhookSettings s;
  s.url = r.url();
  s.timeout = 2s;
  s.retries = 3;
  s.backoff = 20ms;
  s.instance = "gw-test";
  return s;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST(Events, Rfc3339InUtcWithMilliseconds) {
  const auto t = std::chrono::system_clock::time_point{std::chrono::milliseconds(1'700'000'000'123)};
  EXPECT_EQ(tel::rfc3339_utc(t), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(tel::rfc3339_utc(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(Events, NothingIsQueuedWithoutAWebhook) {
  tel::EventNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.publish("breaker.transition", {{"target", "a/b"}}));
  EXPECT_EQ(n.stats().published, 0u);
}

TEST(Events, ABadUrlIsRefusedAndKeepsTheOldSettings) {
  tel::EventNotifier n;
  tel::WebhookSettings s;
  for (const char* url : {"ftp://127.0.0.1/x", "not a url", "http:///path"}) {
    s.url = url;
    EXPECT_FALSE(n.configure(s).has_value()) << url;
  }
  EXPECT_FALSE(n.enabled());
  s.url = "http://127.0.0.1:9/ok";
  ASSERT_TRUE(n.configure(s).has_value());
  s.url = "gopher://x";
  EXPECT_FALSE(n.configure(s).has_value());
  EXPECT_TRUE(n.enabled());
  // The error never repeats the URL (it may carry a token).
  s.url = "ftp://hooks.example/secret-token-123";
  auto err = n.configure(s);
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().message.find("secret-token-123"), std::string::npos);
}

TEST(Events, DeliversTheEnvelopeAndFieldsAsJson) {
  Receiver r;
  tel::EventNotifier n;
  auto s = settings_for(r);
  s.url = r.url("/hooks/bulwark?src=test");
  s.headers = {{"x-custom", "yes"}};
  ASSERT_TRUE(n.configure(s).has_value());
  ASSERT_TRUE(n.publish("breaker.transition",
                        {{"target", "mock/m\"x"}, {"from", "closed"}, {"to", "open"}, {"calls", 10}, {"rate", 0.5}, {"ok", true}}));
  ASSERT_TRUE(r.wait_requests(1, 5s));
  ASSERT_TRUE(n.wait_idle(5s));
  const auto got = r.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].target, "/hooks/bulwark?src=test");
  EXPECT_EQ(got[0].content_type, "application/json");
  EXPECT_EQ(got[0].event_header, "breaker.transition");
  EXPECT_EQ(got[0].custom, "yes");
  const auto doc = boost::json::parse(got[0].body).as_object();
  EXPECT_EQ(doc.at("type").as_string(), "breaker.transition");
  EXPECT_EQ(doc.at("target").as_string(), "mock/m\"x");
  EXPECT_EQ(doc.at("from").as_string(), "closed");
  EXPECT_EQ(doc.at("to").as_string(), "open");
  EXPECT_EQ(doc.at("calls").as_int64(), 10);
  EXPECT_DOUBLE_EQ(doc.at("rate").as_double(), 0.5);
  EXPECT_EQ(doc.at("ok").as_bool(), true);
  EXPECT_EQ(doc.at("instance").as_string(), "gw-test");
  EXPECT_EQ(doc.at("host").as_string(), tel::host_name());
  EXPECT_EQ(doc.at("id").as_string(), got[0].event_id);
  const std::string at(doc.at("at").as_string());
  EXPECT_EQ(at.size(), 24u) << at;
  EXPECT_EQ(at.back(), 'Z');
  const auto st = n.stats();
  EXPECT_EQ(st.published, 1u);
  EXPECT_EQ(st.sent, 1u);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(st.queued, 0u);
}

TEST(Events, RetriesServerErrorsWithTheSameIdThenSucceeds) {
  Receiver r([](int n) { return Reply{n <= 2 ? 503u : 200u}; });
  tel::EventNotifier n;
  ASSERT_TRUE(n.configure(settings_for(r)).has_value());
  ASSERT_TRUE(n.publish("test.event", {{"k", "v"}}));
  ASSERT_TRUE(r.wait_requests(3, 5s));
  ASSERT_TRUE(n.wait_idle(5s));
  const auto got = r.received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].event_id, got[2].event_id);
  EXPECT_EQ(got[0].body, got[2].body);
  const auto st = n.stats();
  EXPECT_EQ(st.sent, 1u);
  EXPECT_EQ(st.retries, 2u);
  EXPECT_EQ(st.failed, 0u);
}

TEST(Events, GivesUpAfterTheRetriesAndOnClientErrorsAtOnce) {
  Receiver r([](int n) { return Reply{n <= 4 ? 500u : 400u}; });
  tel::EventNotifier n;
  auto s = settings_for(r);
  s.retries = 3;
  ASSERT_TRUE(n.configure(s).has_value());
  ASSERT_TRUE(n.publish("first", {}));   // 500 x4: fails after 1 + 3 attempts
  ASSERT_TRUE(n.publish("second", {}));  // 400: not retried
  ASSERT_TRUE(r.wait_requests(5, 5s));
  ASSERT_TRUE(n.wait_idle(5s));
  EXPECT_EQ(r.requests(), 5);
  const auto st = n.stats();
  EXPECT_EQ(st.sent, 0u);
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.retries, 3u);
}

TEST(Events, AnUnreachableReceiverFailsWithoutBlockingPublishers) {
  // A port nothing listens on: connections are refused.
  unsigned short port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  tel::EventNotifier n;
  tel::WebhookSettings s;
  s.url = "http://127.0.0.1:" + std::to_string(port) + "/x";
  s.retries = 1;
  s.backoff = 10ms;
  ASSERT_TRUE(n.configure(s).has_value());
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.wait_idle(5s));
  EXPECT_EQ(n.stats().failed, 1u);
  EXPECT_EQ(n.stats().retries, 1u);
}

TEST(Events, AReceiverThatNeverAnswersCostsOneTimeoutPerAttempt) {
  Receiver r([](int) { return Reply{200, false, true}; });
  tel::EventNotifier n;
  auto s = settings_for(r);
  s.timeout = 200ms;
  s.retries = 1;
  ASSERT_TRUE(n.configure(s).has_value());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.wait_idle(5s));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(n.stats().failed, 1u);
  EXPECT_EQ(r.requests(), 2);
}

TEST(Events, AFullQueueDropsTheOldestAndCountsIt) {
  Receiver r([](int n) { return Reply{200, n == 1, false}; });  // the first delivery is held
  tel::EventNotifier n;
  auto s = settings_for(r);
  s.queue = 3;
  ASSERT_TRUE(n.configure(s).has_value());
  ASSERT_TRUE(n.publish("e", {{"n", 0}}));
  ASSERT_TRUE(r.wait_requests(1, 5s));  // the sender is now busy with event 0
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(n.publish("e", {{"n", i}}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms) << "publish must never wait for the receiver";
  auto st = n.stats();
  EXPECT_EQ(st.published, 11u);
  EXPECT_EQ(st.dropped, 7u);
  EXPECT_EQ(st.queued, 4u);  // three waiting plus the one in delivery
  std::string metrics;
  n.render_metrics(metrics);
  EXPECT_NE(metrics.find("bulwark_events_dropped_total 7\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("bulwark_events_queued 4\n"), std::string::npos) << metrics;

  r.release();
  ASSERT_TRUE(r.wait_requests(4, 5s));
  ASSERT_TRUE(n.wait_idle(5s));
  const auto got = r.received();
  ASSERT_EQ(got.size(), 4u);
  std::vector<std::int64_t> order;
  for (const auto& g : got) order.push_back(boost::json::parse(g.body).as_object().at("n").as_int64());
  EXPECT_EQ(order, (std::vector<std::int64_t>{0, 8, 9, 10}));  // the newest three survived, in order
  st = n.stats();
  EXPECT_EQ(st.sent, 4u);
  metrics.clear();
  n.render_metrics(metrics);
  EXPECT_NE(metrics.find("bulwark_events_sent_total 4\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("# TYPE bulwark_events_failed_total counter\n"), std::string::npos) << metrics;
}

TEST(Events, TurningTheWebhookOffDropsWhatIsQueued) {
  Receiver r([](int n) { return Reply{200, n == 1, false}; });
  tel::EventNotifier n;
  ASSERT_TRUE(n.configure(settings_for(r)).has_value());
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(r.wait_requests(1, 5s));
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.configure(std::nullopt).has_value());
  EXPECT_FALSE(n.enabled());
  EXPECT_EQ(n.stats().dropped, 2u);
  EXPECT_FALSE(n.publish("e", {}));
  r.release();
  ASSERT_TRUE(n.wait_idle(5s));
  EXPECT_EQ(n.stats().sent, 1u);  // the one in flight still completed
  EXPECT_EQ(r.requests(), 1);
}

TEST(Events, AReconfiguredUrlTakesEffectForTheNextEvent) {
  Receiver a, b;
  tel::EventNotifier n;
  ASSERT_TRUE(n.configure(settings_for(a)).has_value());
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.wait_idle(5s));
  ASSERT_TRUE(n.configure(settings_for(b)).has_value());
  ASSERT_TRUE(n.configure(settings_for(b)).has_value());  // unchanged: a no-op
  ASSERT_TRUE(n.publish("e", {}));
  ASSERT_TRUE(n.wait_idle(5s));
  EXPECT_EQ(a.requests(), 1);
  EXPECT_EQ(b.requests(), 1);
}

TEST(Events, ManyPublishersFromManyThreadsLoseNothingButTheOverflow) {
  Receiver r;
  tel::EventNotifier n;
  auto s = settings_for(r);
  s.queue = 100'000;
  ASSERT_TRUE(n.configure(s).has_value());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) n.publish("e", {{"i", i}});
    });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(wait_until([&] { return n.stats().sent == 100u; }, 20s)) << n.stats().sent;
  EXPECT_EQ(r.requests(), 100);
  EXPECT_EQ(n.stats().dropped, 0u);
}
