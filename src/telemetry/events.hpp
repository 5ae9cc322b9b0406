#pragma once
// Operator events (breaker transitions today, budget alerts later) posted as JSON to a
// webhook. Generic: an event is a type plus flat fields; the notifier adds the envelope
// (id, type, time, instance, host) and delivers it.
//
// publish() only formats the event and appends it to a bounded in-memory queue (the
// oldest event is dropped when it is full, and counted); it never does I/O, so it may be
// called from a worker thread or from inside a breaker's transition listener. One
// dedicated background thread, started on the first publish, delivers the events in
// order, one HTTP/1.1 POST each (http or https, a fresh connection per delivery), with
// a bounded number of retries and exponential backoff. Delivery is at least once: a
// receiver that answered too late may see an event twice (dedupe on `id`).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "telemetry/log.hpp"

namespace bulwark::telemetry {

struct WebhookSettings {
  std::string url;                               // http://host[:port]/path or https://...
  std::chrono::milliseconds timeout{2'000};      // one delivery attempt: connect, TLS, send, response
  std::size_t queue = 1'000;                     // events waiting; the oldest is dropped beyond this
  std::uint32_t retries = 3;                     // further attempts after a failed one
  std::chrono::milliseconds backoff{500};        // before the first retry; doubled each time (jittered)
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers (may hold secrets: never logged)
  bool verify_tls = true;
  std::string ca_file;  // empty: the system's trust store
  std::string instance;  // the gateway's name in events; empty: the host name
  friend bool operator==(const WebhookSettings&, const WebhookSettings&) = default;
};

struct EventStats {
  std::uint64_t published = 0;  // accepted into the queue
  std::uint64_t sent = 0;       // delivered (the receiver answered 2xx)
  std::uint64_t failed = 0;     // given up: retries exhausted, a non-retryable answer, or shut down mid-retry
  std::uint64_t dropped = 0;    // pushed out of a full queue, or discarded when the webhook was turned off
  std::uint64_t retries = 0;    // delivery attempts after the first, over all events
  std::size_t queued = 0;       // waiting now (the one being delivered included)
};

// Fields of an event: same shape as log fields (string, integer, double, bool).
using EventField = log::Field;

class EventNotifier {
 public:
  EventNotifier();
  // Stops the thread: an attempt in flight finishes (bounded by its timeout), nothing is
  // retried and the events still queued are lost.
  ~EventNotifier();
  EventNotifier(const EventNotifier&) = delete;
  EventNotifier& operator=(const EventNotifier&) = delete;

  // The process-wide notifier (configured from the `events:` section on every successful
  // configuration load).
  static EventNotifier& process();

  // Applies new settings; nullopt turns the webhook off (queued events are dropped and
  // counted). Unchanged settings are a no-op. A bad URL or CA file is an error and
  // leaves the old settings in place. Thread-safe.
  Status configure(std::optional<WebhookSettings> settings);
  bool enabled() const;

  // Queues one event: {"id", "type", "at" (RFC 3339, UTC, ms), "instance", "host",
  // ...fields}. Returns false (and does nothing) when no webhook is configured. Never
  // blocks on I/O; safe from any thread.
  bool publish(std::string_view type, std::initializer_list<EventField> fields);

  EventStats stats() const;
  // Prometheus text: bulwark_events_{published,sent,failed,dropped}_total,
  // bulwark_event_delivery_retries_total, bulwark_events_queued.
  void render_metrics(std::string& out) const;

  // Waits until the queue is empty and no delivery is running (tests, shutdown).
  bool wait_idle(std::chrono::milliseconds timeout) const;

 private:
  struct Active;  // parsed settings + TLS context, shared with the sender thread
  struct Item {
    std::string id;
    std::string type;
    std::string body;
  };
  void run();
  bool wait_backoff(std::chrono::milliseconds d, std::uint64_t generation);

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;       // wakes the sender (new event, settings, stop)
  mutable std::condition_variable idle_cv_;  // wakes wait_idle()
  std::shared_ptr<const Active> active_;
  std::uint64_t generation_ = 0;  // bumped by configure()
  std::deque<Item> queue_;
  bool busy_ = false;  // the sender holds an event
  bool stop_ = false;
  std::thread thread_;
  std::uint64_t sequence_ = 0;
  std::string nonce_;
  std::string host_;
  EventStats stats_;
};

// "2025-01-31T12:34:56.789Z"
std::string rfc3339_utc(std::chrono::system_clock::time_point t);
// gethostname(), or "unknown".
std::string host_name();

}  // namespace bulwark::telemetry
