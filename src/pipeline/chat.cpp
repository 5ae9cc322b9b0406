// The request pipeline for chat completions. The phases, in order:
//
//   1. decode        parse the caller's body in its API format (api/openai)
//   2. route         resolve the model name to its plan: targets and fallback chain (runtime)
//   3. pick upstream order the model's targets (weighted), then its fallbacks' targets
//   4. send          one attempt: connection from the worker's pool, request, response head
//   5. classify      an upstream error becomes an ErrorKind and a FailureClass, recorded on
//                    the target's circuit breaker; the retry policy then decides: retry the
//                    same target after a delay, fail over to the next target / fallback
//                    model, or give up. A target whose breaker refuses is skipped without
//                    spending an attempt. The caller's own mistakes end the request at once
//                    (context-length and content-filter errors have their own fallback
//                    rules; see docs/resilience.md)
//   6. stream        relay SSE events as they arrive; hold them back until the first token
//                    so a failure before it fails over invisibly; a stream that breaks after
//                    it ends with an explicit error event, never as a truncated success
//   7. account & log usage from the answer that was served, metrics, the access log line
//
// Requests are confined to the worker that accepted them: no locks on this path.
#include "pipeline/chat.hpp"

#include "pipeline/failover.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "api/openai/chat.hpp"
#include "providers/http/client.hpp"
#include "providers/openai/openai.hpp"
#include "resilience/retry_after.hpp"
#include "resilience/retry_policy.hpp"
#include "telemetry/log.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::pipeline {
namespace {

namespace asio = boost::asio;
namespace oa = providers::openai;
namespace phttp = providers::http;
namespace res = resilience;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxUpstreamBody = 64 * 1024 * 1024;
constexpr std::size_t kMaxUpstreamErrorBody = 1024 * 1024;

struct AttemptRecord {
  std::string target;
  std::string_view outcome;  // "ok", an ErrorKind name, or "breaker_open" (skipped)
  Clock::duration took{};
  bool counted = true;  // false: the breaker refused, no request was sent
};

// The small per-request state; everything else is read from the Runtime.
struct Request {
  IncomingRequest in;
  const Runtime* runtime = nullptr;
  api::openai::ChatRequest chat;
  const RoutePlan* route = nullptr;
  Clock::time_point deadline{};
  std::vector<AttemptRecord> attempts;
  const ModelPlan* served_model = nullptr;
  const TargetPlan* served = nullptr;
  oa::Usage usage;
  Clock::duration upstream_time{};
  std::optional<Clock::time_point> first_token;
  unsigned status = 0;
  bool client_gone = false;
  phttp::Connection* active = nullptr;  // closed on hang-up to cancel the upstream call
};

enum class AttemptEnd : std::uint8_t { served, failed, failed_after_commit, client_gone };
struct AttemptResult {
  AttemptEnd end = AttemptEnd::failed;
  Error error{};
};

std::chrono::microseconds us(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d); }
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A timeout from the transport names the phase whose deadline it was, unless the
// request's own deadline was the tighter one.
Error name_timeout(Error e, ErrorKind phase, Clock::time_point used, Clock::time_point request_deadline) {
  if (e.kind == ErrorKind::total_timeout && used < request_deadline) e.kind = phase;
  return e;
}

// 3. pick upstream: the model's targets, the first drawn by weight, the rest in weight order.
std::vector<const TargetPlan*> order_targets(const ModelPlan& plan, Random& random) {
  std::vector<const TargetPlan*> order;
  order.reserve(plan.targets.size());
  for (const TargetPlan& t : plan.targets) order.push_back(&t);
  if (order.size() < 2) return order;
  double total = 0;
  for (const TargetPlan* t : order) total += t->target->weight;
  if (total <= 0) return order;
  double x = random.uniform() * total;
  std::size_t pick = 0;
  for (; pick + 1 < order.size(); ++pick) {
    x -= order[pick]->target->weight;
    if (x < 0) break;
  }
  std::rotate(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(pick), order.begin() + static_cast<std::ptrdiff_t>(pick) + 1);
  std::stable_sort(order.begin() + 1, order.end(),
                   [](const TargetPlan* a, const TargetPlan* b) { return a->target->weight > b->target->weight; });
  return order;
}

struct OpenExchange {
  std::unique_ptr<phttp::Connection> conn;
  std::unique_ptr<phttp::Exchange> exchange;
};

// 4. send: connection, request, response head. A pooled connection the upstream had
// already closed fails before any byte comes back; that is retried once on a fresh
// connection and does not count as an attempt.
asio::awaitable<Result<OpenExchange>> open_exchange(Request& r, Worker& w, const TargetPlan& tp,
                                                    Clock::time_point head_deadline) {
  const config::Endpoint& ep = tp.provider->endpoint;
  const phttp::Destination dest{ep.tls, ep.host, ep.port, tp.tls};
  auto body = api::openai::upstream_body(r.chat, tp.target->model);
  for (int round = 0; round < 2; ++round) {
    const auto now = Clock::now();
    const auto connect_by = std::min({now + tp.timeouts.connect, head_deadline, r.deadline});
    auto conn = co_await w.pool.acquire(dest, connect_by);
    if (!conn) co_return std::unexpected(name_timeout(std::move(conn.error()), ErrorKind::connect_timeout, connect_by, r.deadline));
    OpenExchange ox{std::move(*conn), nullptr};
    const bool reused = ox.conn->reused();
    r.active = ox.conn.get();
    auto req = oa::build_request(*tp.provider, round == 0 ? body : std::string(body), r.chat.stream);
    ox.exchange = std::make_unique<phttp::Exchange>(*ox.conn);
    auto sent = co_await ox.exchange->write(req, std::min(head_deadline, r.deadline));
    Status head = std::move(sent);
    if (head) head = co_await ox.exchange->read_head(std::min(head_deadline, r.deadline), kMaxUpstreamBody);
    if (head) co_return ox;
    r.active = nullptr;
    ox.conn->close();
    if (r.client_gone) co_return std::unexpected(Error::client(ErrorKind::bad_request, "client closed the connection"));
    Error e = name_timeout(std::move(head.error()), ErrorKind::first_token_timeout, std::min(head_deadline, r.deadline), r.deadline);
    if (!(reused && e.kind == ErrorKind::connection_reset && !ox.exchange->received_anything())) co_return std::unexpected(std::move(e));
  }
  co_return std::unexpected(Error::transport(ErrorKind::connection_reset, "upstream closed the connection"));
}

// 5. classify an error answer: read its (bounded) body and map it.
asio::awaitable<Error> read_error_answer(Request& r, Worker& w, const TargetPlan& tp, OpenExchange& ox) {
  const unsigned status = ox.exchange->status();
  // How long the upstream asks us to wait (Retry-After, retry-after-ms, x-ratelimit-reset-*):
  // the requested value, unclamped, so the retry policy's max_retry_after decides.
  const auto& head = ox.exchange->head();
  const res::HeaderLookup lookup = [&head](std::string_view name) -> std::optional<std::string_view> {
    auto it = head.find(name);
    if (it == head.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  };
  const auto wait = res::parse_retry_after(lookup, static_cast<int>(status), std::chrono::system_clock::now(),
                                           res::kRetryAfterSaturation);
  auto body = co_await ox.exchange->read_all(std::min(Clock::now() + tp.timeouts.idle, r.deadline), kMaxUpstreamErrorBody);
  Error e = oa::classify_error(status, body ? std::string_view(*body) : std::string_view{}, tp.target->id);
  if (wait) e.retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(wait->requested);
  if (body && ox.exchange->keep_alive()) w.pool.release(std::move(ox.conn));
  co_return e;
}

std::vector<std::string> response_headers(const Request& r) {
  std::vector<std::string> h;
  h.reserve(10);
  h.emplace_back("x-bulwark-request-id");
  h.push_back(r.in.request_id);
  h.emplace_back("x-bulwark-attempts");
  h.push_back(std::to_string(std::count_if(r.attempts.begin(), r.attempts.end(), [](const AttemptRecord& a) { return a.counted; })));
  if (r.served) {
    h.emplace_back("x-bulwark-model");
    h.push_back(r.served_model->model->name);
    h.emplace_back("x-bulwark-target");
    h.push_back(r.served->target->id);
  }
  if (!r.attempts.empty()) {
    std::string log;
    for (const AttemptRecord& a : r.attempts) {
      if (!log.empty()) log += ", ";
      log += a.target;
      log += ';';
      log += a.outcome;
      log += ';';
      log += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(a.took).count());
      log += "ms";
    }
    h.emplace_back("x-bulwark-attempt-log");
    h.push_back(std::move(log));
  }
  return h;
}

std::vector<Header> as_views(const std::vector<std::string>& h) {
  std::vector<Header> v;
  v.reserve(h.size() / 2);
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) v.emplace_back(h[i], h[i + 1]);
  return v;
}

asio::awaitable<void> respond_error(Request& r, Downstream& ds, const Error& e) {
  r.status = static_cast<unsigned>(http_status_of(e.kind));
  auto h = response_headers(r);
  if (e.retry_after) {
    h.emplace_back("retry-after");
    h.push_back(std::to_string((e.retry_after->count() + 999) / 1000));
  }
  co_await ds.send(r.status, as_views(h), "application/json", api::openai::error_body(e));
}

// One non-streamed attempt, answered to the caller when it succeeds.
// on_served runs before the answer goes out: the breaker must hear of a success (say, a
// half-open probe's) before the caller can send its next request.
asio::awaitable<AttemptResult> attempt_unary(Request& r, Worker& w, const ModelPlan& mp, const TargetPlan& tp,
                                             Downstream& ds, const std::function<void(Clock::duration)>& on_served) {
  const auto start = Clock::now();
  auto ox = co_await open_exchange(r, w, tp, start + tp.timeouts.first_token);
  if (!ox) co_return AttemptResult{AttemptEnd::failed, std::move(ox.error())};
  if (ox->exchange->status() != 200) {
    Error e = co_await read_error_answer(r, w, tp, *ox);
    co_return AttemptResult{AttemptEnd::failed, std::move(e)};
  }
  const auto body_deadline = std::min(Clock::now() + tp.timeouts.idle, r.deadline);
  auto body = co_await ox->exchange->read_all(body_deadline, kMaxUpstreamBody);
  r.active = nullptr;
  if (!body) {
    ox->conn->close();
    co_return AttemptResult{AttemptEnd::failed, name_timeout(std::move(body.error()), ErrorKind::idle_timeout, body_deadline, r.deadline)};
  }
  if (ox->exchange->keep_alive()) w.pool.release(std::move(ox->conn));
  r.usage = oa::read_usage(*body);
  r.served_model = &mp;
  r.served = &tp;
  r.status = 200;
  r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
  r.upstream_time += Clock::now() - start;
  on_served(Clock::now() - start);
  auto h = response_headers(r);
  const bool sent = co_await ds.send(200, as_views(h), "application/json", std::move(*body));
  if (!sent) r.client_gone = true;
  co_return AttemptResult{AttemptEnd::served, {}};
}

std::string stream_error_event(const Error& e) {
  return "data: " + api::openai::error_body(e) + "\n\n";
}

// One streamed attempt (phase 6). Events are held back until the first token so that a
// failure before it can fail over without the caller seeing anything.
asio::awaitable<AttemptResult> attempt_stream(Request& r, Worker& w, const ModelPlan& mp, const TargetPlan& tp,
                                              Downstream& ds) {
  const auto start = Clock::now();
  const auto first_token_by = std::min(start + tp.timeouts.first_token, r.deadline);
  auto ox = co_await open_exchange(r, w, tp, first_token_by);
  if (!ox) co_return AttemptResult{AttemptEnd::failed, std::move(ox.error())};
  if (ox->exchange->status() != 200) {
    Error e = co_await read_error_answer(r, w, tp, *ox);
    co_return AttemptResult{AttemptEnd::failed, std::move(e)};
  }

  oa::SseSplitter splitter;
  std::string held;  // events not yet sent: everything before the first token
  std::string out;
  bool committed = false, saw_done = false, saw_token = false;
  std::optional<Error> failure;
  std::vector<std::string> headers;

  for (;;) {
    const auto deadline = saw_token ? std::min(Clock::now() + tp.timeouts.idle, r.deadline) : first_token_by;
    auto piece = co_await ox->exchange->read_some(deadline);
    if (r.client_gone) break;
    if (!piece) {
      failure = name_timeout(std::move(piece.error()), saw_token ? ErrorKind::idle_timeout : ErrorKind::first_token_timeout,
                             deadline, r.deadline);
      break;
    }
    if (piece->empty()) {
      if (!saw_done)
        failure = Error::transport(ErrorKind::stream_truncated, "upstream " + tp.target->id + " ended the stream before [DONE]");
      break;
    }
    out.clear();
    splitter.feed(*piece, [&](std::string_view event) {
      if (failure || saw_done) return;
      const oa::StreamEvent ev = oa::inspect_event(event);
      switch (ev.kind) {
        case oa::StreamEvent::Kind::comment:
          if (committed) out += event;
          return;
        case oa::StreamEvent::Kind::done:
          saw_done = true;
          saw_token = true;
          out += event;
          return;
        case oa::StreamEvent::Kind::error:
          failure = Error::transport(ErrorKind::upstream_server_error,
                                     "upstream " + tp.target->id + " sent an error in the stream: " + ev.error_message);
          return;
        case oa::StreamEvent::Kind::malformed:
          failure = Error::transport(ErrorKind::upstream_protocol, "upstream " + tp.target->id + " sent a malformed stream event");
          return;
        case oa::StreamEvent::Kind::data:
          if (ev.usage.present) r.usage = ev.usage;
          if (ev.content_deltas > 0 || ev.has_finish) saw_token = true;
          if (ev.usage_only && !r.chat.include_usage) return;  // we asked for it, the caller did not
          out += event;
          return;
      }
    });
    if (!committed) {
      held += out;
      if (saw_token && !failure) {
        committed = true;
        r.first_token = Clock::now();
        r.served_model = &mp;
        r.served = &tp;
        r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
        headers = response_headers(r);
        r.status = 200;
        bool ok = co_await ds.begin_stream(200, as_views(headers), "text/event-stream");
        if (ok) ok = co_await ds.write(held);
        if (!ok) {
          r.client_gone = true;
          break;
        }
        held.clear();
      }
    } else if (!out.empty()) {
      const bool ok = co_await ds.write(out);
      if (!ok) {
        r.client_gone = true;
        break;
      }
    }
    if (failure || saw_done) break;
  }

  // After [DONE], read the end of the chunked body so the connection can be reused;
  // keep_alive() below only holds if that completed the response.
  if (saw_done && !failure && !r.client_gone && !ox->exchange->done())
    co_await ox->exchange->read_some(std::min(Clock::now() + tp.timeouts.idle, r.deadline));
  r.active = nullptr;
  r.upstream_time += Clock::now() - start;
  if (saw_done && !failure && !r.client_gone && ox->exchange->keep_alive()) w.pool.release(std::move(ox->conn));
  else ox->conn->close();

  if (r.client_gone) {
    if (!committed) r.attempts.push_back({tp.target->id, "client_gone", Clock::now() - start});
    co_return AttemptResult{AttemptEnd::client_gone, {}};
  }
  if (!failure) {
    const bool ok = co_await ds.end_stream();
    if (!ok) r.client_gone = true;
    co_return AttemptResult{AttemptEnd::served, {}};
  }
  if (!committed) co_return AttemptResult{AttemptEnd::failed, std::move(*failure)};
  // The caller already has part of the answer: say plainly that it is incomplete.
  r.attempts.back().outcome = name_of(failure->kind);
  r.status = static_cast<unsigned>(http_status_of(failure->kind));
  const bool ok = co_await ds.write(stream_error_event(*failure));
  if (ok) co_await ds.end_stream();
  co_return AttemptResult{AttemptEnd::failed_after_commit, std::move(*failure)};
}

std::string summarize(const std::vector<AttemptRecord>& attempts, const std::vector<Error>& errors) {
  std::vector<const AttemptRecord*> made;
  for (const AttemptRecord& a : attempts)
    if (a.counted) made.push_back(&a);
  std::string msg = "All " + std::to_string(errors.size()) + " upstream attempt(s) failed: ";
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i) msg += "; ";
    msg += made.size() > i ? made[i]->target : std::string("?");
    msg += " -> ";
    msg += name_of(errors[i].kind);
  }
  msg += ". Last error: " + errors.back().message;
  return msg;
}

void add_candidates(std::vector<Candidate>& out, const ModelPlan& mp, Random& random) {
  for (const TargetPlan* tp : order_targets(mp, random)) out.push_back({&mp, tp});
}

// Waits for a retry's delay, never past the request's deadline.
asio::awaitable<void> wait_for_retry(Worker& w, Clock::time_point until) {
  asio::steady_timer timer(w.executor);
  timer.expires_at(until);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
}

// Phases 3 to 6: the attempts, in order, until one serves the caller.
asio::awaitable<void> run_attempts(Request& r, Worker& w, Downstream& ds) {
  std::vector<Error> errors;
  const res::RetryPolicy& policy = r.route->retry;
  res::RetryState state(policy, r.deadline);
  std::vector<Candidate> cands;
  for (const ModelPlan& mp : r.route->chain) add_candidates(cands, mp, w.random);
  FailoverFilter filter;
  bool content_fallback_used = false;
  std::optional<Duration> soonest_half_open;  // of the breakers that refused

  for (std::size_t i = next_allowed(cands, 0, filter); i < cands.size();) {
    const Candidate c = cands[i];
    const TargetPlan& tp = *c.target;
    const TargetHealth& health = *tp.health;
    std::size_t next = cands.size();
    bool recorded_request = false;
    for (;;) {  // attempts on this target
      if (Clock::now() >= r.deadline) {
        errors.push_back(Error::gateway(ErrorKind::total_timeout, "the request's total timeout passed"));
        goto exhausted;
      }
      auto permit = health.breaker->try_acquire();
      if (!permit) {
        // Refused without a request: not an attempt, move on.
        r.attempts.push_back({tp.target->id, "breaker_open", {}, false});
        health.counters->breaker_rejections.fetch_add(1, std::memory_order_relaxed);
        if (permit.error().retry_in && (!soonest_half_open || *permit.error().retry_in < *soonest_half_open))
          soonest_half_open = *permit.error().retry_in;
        next = next_allowed(cands, i + 1, filter);
        break;
      }
      if (!recorded_request) {
        health.budget->record_request();
        recorded_request = true;
      }
      const auto started = Clock::now();
      bool verdict_recorded = false;
      const std::function<void(Clock::duration)> record_success = [&](Clock::duration upstream_took) {
        permit->record(res::FailureClass::success, upstream_took);
        health.latency->record(upstream_took);
        verdict_recorded = true;
      };
      AttemptResult result;
      if (r.chat.stream) result = co_await attempt_stream(r, w, *c.model, tp, ds);
      else result = co_await attempt_unary(r, w, *c.model, tp, ds, record_success);
      const auto took = Clock::now() - started;
      w.metrics.inc(telemetry::CounterId::upstream_attempts,
                    telemetry::label_key({tp.target->id, result.end == AttemptEnd::served ? "ok" : name_of(result.error.kind)}));
      w.metrics.observe(telemetry::HistogramId::upstream_duration, tp.target->id, seconds(took));
      switch (result.end) {
        case AttemptEnd::served:
          if (!verdict_recorded) record_success(took);
          co_return;
        case AttemptEnd::failed_after_commit:
          permit->record(res::classify(result.error), took);
          co_return;
        case AttemptEnd::client_gone:
          permit->release();  // says nothing about the target
          r.status = 499;
          co_return;
        case AttemptEnd::failed:
          break;
      }
      const res::FailureClass cls = res::classify(result.error);
      permit->record(cls, took);
      r.attempts.push_back({tp.target->id, name_of(result.error.kind), took});
      log::warn("upstream_attempt_failed", {{"request_id", r.in.request_id},
                                            {"target", tp.target->id},
                                            {"error", name_of(result.error.kind)},
                                            {"upstream_status", result.error.upstream_status},
                                            {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(took).count()}});
      errors.push_back(std::move(result.error));
      const Error& err = errors.back();

      // The caller's own mistake: no other target would take it either.
      if (cls == res::FailureClass::client_fault) {
        co_await respond_error(r, ds, err);
        co_return;
      }
      // Refused by the target's content filter: never retried; tried elsewhere only on
      // the models the failed model names for it. The provider's reason goes back.
      if (cls == res::FailureClass::content_filter) {
        const auto& alternatives = c.model->model->fallbacks_on_content_filter;
        if (!content_fallback_used && !alternatives.empty() && errors.size() < policy.max_attempts_per_request) {
          content_fallback_used = true;
          std::vector<Candidate> alt;
          for (const std::string& name : alternatives)
            if (const RoutePlan* route = r.runtime->route(name)) add_candidates(alt, route->chain.front(), w.random);
          if (!alt.empty()) {
            health.counters->failovers.fetch_add(1, std::memory_order_relaxed);
            cands = std::move(alt);
            filter = FailoverFilter{};
            i = 0;
            goto next_candidate;
          }
        }
        co_await respond_error(r, ds, err);
        co_return;
      }
      // Prompt too long for this target: only a larger context window can help.
      if (cls == res::FailureClass::context_length) {
        filter.context = true;
        filter.failed_window = tp.target->context_window;
      }
      {
        const std::size_t after = next_allowed(cands, i + 1, filter);
        const res::RetryDecision decision =
            state.on_failure(err, after < cands.size(), Clock::now(), w.random, health.budget.get());
        if (const auto* retry = std::get_if<res::RetrySame>(&decision)) {
          health.counters->retries.fetch_add(1, std::memory_order_relaxed);
          const auto until = std::min(Clock::now() + std::chrono::duration_cast<Clock::duration>(retry->delay), r.deadline);
          co_await wait_for_retry(w, until);
          if (r.client_gone) {
            r.status = 499;
            co_return;
          }
          continue;  // same target
        }
        if (std::holds_alternative<res::FailOver>(decision)) {
          health.counters->failovers.fetch_add(1, std::memory_order_relaxed);
          next = after;
          break;
        }
        log::info("upstream_give_up", {{"request_id", r.in.request_id},
                                       {"target", tp.target->id},
                                       {"reason", res::to_string(std::get<res::GiveUp>(decision).reason)}});
        goto exhausted;
      }
    }
    i = next;
  next_candidate:;
  }
exhausted:
  if (errors.empty()) {
    // Every target was skipped by its breaker.
    Error e = Error::gateway(ErrorKind::no_healthy_target,
                             "No healthy upstream for model `" + r.chat.model + "`: every target's circuit breaker is open.");
    if (soonest_half_open)
      e.retry_after = std::max(std::chrono::milliseconds(1), std::chrono::ceil<std::chrono::milliseconds>(*soonest_half_open));
    co_await respond_error(r, ds, e);
    co_return;
  }
  Error final = errors.back();
  // A context-length or content-filter refusal keeps the provider's explanation.
  if (!is_callers_fault(final.kind) && (errors.size() > 1 || final.origin != Origin::client))
    final.message = summarize(r.attempts, errors);
  co_await respond_error(r, ds, final);
}

// Races the attempts against the caller hanging up: a hang-up closes the live upstream
// connection, which ends the upstream request at once instead of generating for nobody.
asio::awaitable<void> watch_hangup(Request& r, Downstream& ds) {
  const bool hung_up = co_await ds.wait_hangup();
  if (!hung_up) co_return;
  r.client_gone = true;
  if (r.active) r.active->close();
}

// 7. account & log.
void account(const Request& r, Worker& w, Clock::time_point done) {
  const std::string_view model = r.chat.model.empty() ? std::string_view("-") : std::string_view(r.chat.model);
  const std::string_view known = r.route ? model : std::string_view("(unknown)");
  w.metrics.inc(telemetry::CounterId::requests, telemetry::label_key({known, std::to_string(r.status)}));
  const auto total = done - r.in.received;
  w.metrics.observe(telemetry::HistogramId::request_duration, known, seconds(total));
  if (r.route) w.metrics.observe(telemetry::HistogramId::overhead, known, seconds(total - r.upstream_time));
  if (r.first_token) w.metrics.observe(telemetry::HistogramId::ttft, known, seconds(*r.first_token - r.in.received));
  // Failures are always logged; successes only with the access log on.
  if (r.status >= 400 ? log::enabled(log::Level::info) : (w.access_log && log::enabled(log::Level::info))) {
    log::emit(r.status >= 500 ? log::Level::warn : log::Level::info, "request", {{"request_id", r.in.request_id},
                          {"model", model},
                          {"served_by", r.served ? std::string_view(r.served->target->id) : std::string_view("-")},
                          {"status", r.status},
                          {"stream", r.chat.stream},
                          {"attempts", r.attempts.size()},
                          {"prompt_tokens", r.usage.prompt_tokens},
                          {"completion_tokens", r.usage.completion_tokens},
                          {"usage_reported", r.usage.present},
                          {"us", us(total).count()},
                          {"upstream_us", us(r.upstream_time).count()}});
  }
}

}  // namespace

std::string Worker::next_request_id() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(random.next()),
                static_cast<unsigned long long>(++requests));
  return std::string(buf, 32);
}

asio::awaitable<void> handle_chat_completion(std::shared_ptr<const Runtime> runtime, Worker& worker, IncomingRequest in,
                                             Downstream& downstream) {
  using namespace asio::experimental::awaitable_operators;
  Request r;
  r.in = std::move(in);
  worker.metrics.add(telemetry::GaugeId::in_flight, 1);

  // 1. decode
  auto chat = api::openai::decode_chat_request(std::move(r.in.body));
  if (!chat) {
    co_await respond_error(r, downstream, chat.error());
  } else {
    r.chat = std::move(*chat);
    r.runtime = runtime.get();
    // 2. route
    r.route = runtime->route(r.chat.model);
    if (!r.route) {
      co_await respond_error(r, downstream,
                             Error::client(ErrorKind::model_not_found,
                                           "The model `" + r.chat.model + "` does not exist or you do not have access to it.", "model"));
    } else {
      r.deadline = r.in.received + r.route->timeouts.total;
      // 3-6. attempts; a streamed answer is also raced against the caller hanging up
      if (r.chat.stream) co_await (run_attempts(r, worker, downstream) || watch_hangup(r, downstream));
      else co_await run_attempts(r, worker, downstream);
    }
  }
  // 7. account & log
  account(r, worker, Clock::now());
  worker.metrics.add(telemetry::GaugeId::in_flight, -1);
}

}  // namespace bulwark::pipeline
