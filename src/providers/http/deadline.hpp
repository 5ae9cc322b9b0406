#pragma once
// One watchdog timer per connection instead of one timer wait per I/O operation (which is
// what beast::tcp_stream does, and it doubles the completions per request). Extending the
// deadline only stores it: the pending wait, when it fires early, waits again. Only an
// earlier deadline re-arms the timer. On expiry the owner's callback closes the socket, so
// whatever operation is pending fails, and expired() tells it why.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>

namespace bulwark::providers::http {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline(boost::asio::any_io_executor ex, std::function<void()> on_expire)
      : state_(std::make_shared<State>(std::move(ex), std::move(on_expire))) {}
  ~Deadline() {
    state_->on_expire = nullptr;
    state_->deadline = Clock::time_point::max();
    boost::system::error_code ignored;
    state_->timer.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void arm(Clock::time_point at) {
    State& s = *state_;
    s.expired = false;
    s.deadline = at;
    if (!s.waiting) start(state_, at);
    else if (at < s.waiting_for) s.timer.expires_at(at);  // cancels the wait; the handler re-waits
  }
  void arm_after(Clock::duration d) { arm(Clock::now() + d); }
  void disarm() noexcept { state_->deadline = Clock::time_point::max(); }
  bool expired() const noexcept { return state_->expired; }

 private:
  struct State {
    State(boost::asio::any_io_executor ex, std::function<void()> cb) : timer(std::move(ex)), on_expire(std::move(cb)) {}
    boost::asio::steady_timer timer;
    std::function<void()> on_expire;
    Clock::time_point deadline = Clock::time_point::max();
    Clock::time_point waiting_for{};
    bool waiting = false;
    bool expired = false;
  };

  static void start(const std::shared_ptr<State>& sp, Clock::time_point at) {
    sp->waiting = true;
    sp->waiting_for = at;
    sp->timer.expires_at(at);
    sp->timer.async_wait([wp = std::weak_ptr<State>(sp)](const boost::system::error_code&) {
      auto s = wp.lock();
      if (!s) return;
      s->waiting = false;
      if (s->deadline == Clock::time_point::max() || !s->on_expire) return;
      if (Clock::now() >= s->deadline) {
        s->expired = true;
        s->deadline = Clock::time_point::max();
        s->on_expire();
      } else {
        start(s, s->deadline);
      }
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace bulwark::providers::http
