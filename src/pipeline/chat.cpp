// The request pipeline for chat completions. The phases, in order:
//
//   1. decode        parse the caller's body in its API format (api/openai); runs after
//                    authenticate, which needs only the headers
//   2. authenticate  the virtual key from Authorization: Bearer or x-api-key, resolved
//                    from the in-memory key cache (no database round trip); keyless mode
//                    lets anonymous callers through
//   3. route         resolve the model name to its plan: targets and fallback chain (runtime)
//   4. admit         the key's model allow-list, parallel-request cap, requests and tokens
//                    per minute (key and team), then a budget reservation of the request's
//                    maximum cost, so concurrent requests cannot overrun a budget
//   5. guard         the policy profile (key's, else team's, else the model's, else the
//                    default) on the prompt and its documents: PII redaction, deny rules,
//                    size caps; a block ends the request, a redaction rewrites the body
//   6. pick upstream order the model's targets (weighted), then its fallbacks' targets
//   7. send          one attempt: connection from the worker's pool, request, response head.
//                    Hedging (per model): when the first token is late, a second attempt on
//                    another healthy target races the first; the first token wins and the
//                    other attempt is cancelled (race_attempts)
//   8. classify      an upstream error becomes an ErrorKind and a FailureClass, recorded on
//                    the target's circuit breaker; the retry policy then decides: retry the
//                    same target after a delay, fail over to the next target / fallback
//                    model, or give up. A target whose breaker refuses is skipped without
//                    spending an attempt. The caller's own mistakes end the request at once
//                    (context-length and content-filter errors have their own fallback
//                    rules; see docs/resilience.md)
//   9. stream        relay SSE events as they arrive; hold them back until the first token
//                    so a failure before it fails over invisibly; a stream that breaks after
//                    it ends with an explicit error event, never as a truncated success.
//                    The policy's output rules apply to the answer, streamed or not
//  10. account & log cost from the served answer's usage; the budget reservation and token
//                    estimate settled; spend ledger and audit record written before the
//                    response's last byte (durable across kill -9); metrics, access log
//
// Requests are confined to the worker that accepted them: no locks on this path (the
// shared limiters and budgets use atomics and short per-subject locks).
#include "pipeline/chat.hpp"

#include "pipeline/failover.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <charconv>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "accounting/audit.hpp"
#include "accounting/overhead.hpp"
#include "api/openai/chat.hpp"
#include "api/openai/text.hpp"
#include "auth/virtual_key.hpp"
#include "core/digits.hpp"
#include "pipeline/governance.hpp"
#include "pipeline/health.hpp"
#include "policy/evaluate.hpp"
#include "policy/stream_redactor.hpp"
#include "providers/http/client.hpp"
#include "router/balancer.hpp"
#include "router/policy.hpp"
#include "router/request_features.hpp"
#include "providers/openai/openai.hpp"
#include "providers/upstream.hpp"
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
  // Set when the provider charges for this attempt but it is not the caller's answer:
  // gateway overhead (ledger, audit, metric), never billed to the caller.
  std::optional<accounting::OverheadReason> overhead{};
  accounting::AttemptCharge charge{};
};

// What one attempt has seen, for what its provider charges should it not become the
// caller's answer (accounting::attempt_charge).
struct AttemptTrace {
  bool sent = false;      // the request went out
  bool accepted = false;  // a 2xx head came back: the provider is working on it
  std::size_t prompt_bytes = 0;
  std::optional<oa::Usage> usage;  // reported at the end of the answer
  std::optional<accounting::Usage> prompt_usage;  // reported before the text (OpenAIStream::start_usage)
  std::size_t text_bytes = 0;  // answer text received
  std::size_t record = SIZE_MAX;  // the attempt's entry in Request::attempts, once it has one
};

// Who is calling and what admission holds for them until the request ends.
struct Caller {
  std::shared_ptr<const auth::ResolvedKey> key;  // null: anonymous (keyless mode)
  const policy::PolicyProfile* policy = nullptr;
  bool checked_rate = false;
  accounting::RateLimiter::Admission rate;
  std::optional<accounting::ParallelLimiter::Slot> slot;
  accounting::Reservation reservation;
  std::vector<std::string> policy_decisions;  // for the audit record: rule names, never text
  std::string key_id() const { return key ? key->key.id : std::string(); }
  std::string team_id() const { return key ? key->key.team_id : std::string(); }
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
  // The live upstream connection of each racing attempt (two only while hedging); closed
  // on hang-up to cancel the upstream calls.
  std::array<phttp::Connection*, 2> active{};
  std::array<AttemptTrace, 2> trace;  // of each racing attempt, by lane slot
  Governance* gov = nullptr;  // null: no accounting (tests without a database)
  Caller caller;
  std::optional<Error> error;  // the error answered, for the audit record
  std::size_t output_bytes = 0;  // relayed answer bytes, to estimate usage a stream lacked
  std::string completion;  // the answer, kept only when the audit records content
  bool books_closed = false;
  std::optional<RoutePlan> routed;  // a routed model's plan for this request (its tier chain)
  // Streams: the response head went out (at the first token, or early with a keep-alive)
  // and a keep-alive write is in progress; the relay waits for it.
  bool head_sent = false;
  bool keepalive_busy = false;
  std::optional<Clock::duration> first_token_cap;  // x-bulwark-first-token-timeout
  // Stream failover with prefill: the answer text relayed so far (only tracked when some
  // target of the chain can continue it), and the request that continues it.
  bool track_text = false;
  std::string answered_text;
  std::optional<api::openai::ChatRequest> continuation;
  std::string route_header;         // x-bulwark-route: why this tier
  std::optional<accounting::Cost> cost;
  std::string cost_text;  // x-bulwark-cost-usd
  // Hints a target's format left out (providers::build_chat_request), per target tried;
  // the served target's become x-bulwark-dropped. Empty for almost every request.
  std::vector<std::pair<const TargetPlan*, std::string>> dropped;
};

// cancelled: lost a hedge race (the other attempt had its first token first).
enum class AttemptEnd : std::uint8_t { served, failed, failed_after_commit, client_gone, cancelled };
struct AttemptResult {
  AttemptEnd end = AttemptEnd::failed;
  Error error{};
};

// Hedging: two attempts of one request racing for its first token. Both run on the
// request's worker, so no locks. The first to see its first token (a plain answer: the
// whole answer) claims the race and closes the other's connection, which ends its read.
constexpr std::string_view kHedgeCancelled = "hedge_cancelled";
struct Race {
  int winner = -1;
  std::array<const TargetPlan*, 2> target{};
  std::array<Clock::time_point, 2> started{};
  std::array<bool, 2> running{};
};

// Which of a request's (at most two) concurrent attempts this is; no race: not hedged.
struct Lane {
  int slot = 0;
  Race* race = nullptr;
  bool cancelled() const noexcept { return race && race->winner >= 0 && race->winner != slot; }
};

void close_active(Request& r) {
  for (phttp::Connection* c : r.active)
    if (c) c->close();
}

void charge_cancelled(AttemptRecord& rec, const TargetPlan& tp, const AttemptTrace& t);

// The attempt on `lane` has its first token: it serves the request unless the other lane
// claimed it first. The other lane's attempt is cancelled, and logged as such now so that
// the response head (sent at the first token) lists it.
bool claim(Request& r, const Lane& lane) {
  if (!lane.race) return true;
  Race& race = *lane.race;
  if (race.winner >= 0) return race.winner == lane.slot;
  race.winner = lane.slot;
  // Counted as the race is decided: the answer may reach the caller before the race ends.
  if (lane.slot == 1) race.target[0]->health->counters->hedge_wins.fetch_add(1, std::memory_order_relaxed);
  const int other = 1 - lane.slot;
  if (race.running[other]) {
    if (r.active[other]) r.active[other]->close();
    r.attempts.push_back({race.target[other]->target->id, kHedgeCancelled, Clock::now() - race.started[other]});
    // Charged now, with what it had produced: the winner may close the books (a plain
    // answer does at once) before the cancelled attempt's coroutine has run again.
    charge_cancelled(r.attempts.back(), *race.target[other], r.trace[other]);
  }
  return true;
}

std::chrono::microseconds us(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d); }
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A timeout from the transport names the phase whose deadline it was, unless the
// request's own deadline was the tighter one.
Error name_timeout(Error e, ErrorKind phase, Clock::time_point used, Clock::time_point request_deadline) {
  if (e.kind == ErrorKind::total_timeout && used < request_deadline) e.kind = phase;
  return e;
}

// Whether the target's breaker would let a call through now (closed, half-open, disabled,
// or open with its open time up: that call is the half-open probe).
bool breaker_admits(const TargetPlan& t) { return t.health->breaker->admits_now(); }

// 6. pick upstream: the model's load-balancing strategy orders its targets (first choice
// first, the rest as the failover order); a target whose breaker is open goes last.
std::vector<const TargetPlan*> order_targets(const ModelPlan& plan, Random& random, std::uint64_t tokens_needed) {
  std::vector<const TargetPlan*> order;
  order.reserve(plan.targets.size());
  if (plan.targets.size() < 2) {
    for (const TargetPlan& t : plan.targets) order.push_back(&t);
    return order;
  }
  const auto now = SteadyClock::instance().now();
  const config::LoadBalancing& lb = plan.model->load_balancing;
  std::vector<router::TargetView> views;
  views.reserve(plan.targets.size());
  for (const TargetPlan& t : plan.targets) {
    views.push_back(t.stats->view(*t.target, breaker_admits(t), now, lb.stale_after, tokens_needed));
  }
  std::vector<std::uint32_t> idx;
  router::order_targets(lb.strategy, views, random, idx);
  for (std::uint32_t i : idx) order.push_back(&plan.targets[i]);
  return order;
}

Clock::duration first_token_timeout(const Request& r, const TargetPlan& tp) {
  const Clock::duration configured = tp.timeouts.first_token;
  return r.first_token_cap ? std::min(*r.first_token_cap, configured) : configured;
}

// Waits while a keep-alive write is on the wire, so two writes never interleave.
asio::awaitable<void> wait_keepalive_idle(Request& r, asio::any_io_executor ex) {
  asio::steady_timer t(ex);
  while (r.keepalive_busy) {
    t.expires_after(std::chrono::milliseconds(1));
    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
}

struct OpenExchange {
  std::unique_ptr<phttp::Connection> conn;
  std::unique_ptr<phttp::Exchange> exchange;
};

// 7. send: connection, request, response head. A pooled connection the upstream had
// already closed fails before any byte comes back; that is retried once on a fresh
// connection and does not count as an attempt.
asio::awaitable<Result<OpenExchange>> open_exchange(Request& r, Worker& w, const TargetPlan& tp,
                                                    Clock::time_point head_deadline, const Lane& lane) {
  const config::Endpoint& ep = tp.provider->endpoint;
  const phttp::Destination dest{ep.tls, ep.host, ep.port, tp.tls};
  const api::openai::ChatRequest& chat = r.continuation ? *r.continuation : r.chat;
  AttemptTrace& trace = r.trace[lane.slot];  // this attempt's, from scratch
  trace = AttemptTrace{};
  trace.prompt_bytes = chat.body.size();
  auto body = api::openai::upstream_body(chat, tp.target->model);
  // In the target's own format (OpenAI passes through; Anthropic and Bedrock are
  // translated and signed), before any connection: a refusal costs none.
  std::string dropped;
  auto built = providers::build_chat_request(*tp.provider, tp.target->model, body, chat.stream, std::chrono::system_clock::now(), &dropped);
  if (!built) co_return std::unexpected(std::move(built.error()));
  if (!dropped.empty()) r.dropped.emplace_back(&tp, std::move(dropped));
  for (int round = 0; round < 2; ++round) {
    const auto now = Clock::now();
    const auto connect_by = std::min({now + tp.timeouts.connect, head_deadline, r.deadline});
    auto conn = co_await w.pool.acquire(dest, connect_by);
    if (!conn) co_return std::unexpected(name_timeout(std::move(conn.error()), ErrorKind::connect_timeout, connect_by, r.deadline));
    OpenExchange ox{std::move(*conn), nullptr};
    if (lane.cancelled()) co_return std::unexpected(Error::gateway(ErrorKind::internal, "hedge race lost"));
    const bool reused = ox.conn->reused();
    r.active[lane.slot] = ox.conn.get();
    ox.exchange = std::make_unique<phttp::Exchange>(*ox.conn);
    trace.sent = true;
    auto sent = co_await ox.exchange->write(*built, std::min(head_deadline, r.deadline));
    Status head = std::move(sent);
    if (head) head = co_await ox.exchange->read_head(std::min(head_deadline, r.deadline), kMaxUpstreamBody);
    if (head) {
      trace.accepted = ox.exchange->status() / 100 == 2;
      // Rate-limit headroom the provider reports, for the headroom-aware balancer.
      const auto& fields = ox.exchange->head();
      auto lookup = [&fields](std::string_view name) -> std::optional<std::string_view> {
        auto it = fields.find(name);
        if (it == fields.end()) return std::nullopt;
        return std::string_view(it->value().data(), it->value().size());
      };
      const router::RateLimitReport report = router::parse_rate_limit_headers(router::HeaderLookup(lookup));
      if (!report.empty()) tp.stats->record_rate_limits(report, SteadyClock::instance().now());
      co_return ox;
    }
    r.active[lane.slot] = nullptr;
    ox.conn->close();
    if (r.client_gone || lane.cancelled()) co_return std::unexpected(Error::client(ErrorKind::bad_request, "client closed the connection"));
    Error e = name_timeout(std::move(head.error()), ErrorKind::first_token_timeout, std::min(head_deadline, r.deadline), r.deadline);
    if (!(reused && e.kind == ErrorKind::connection_reset && !ox.exchange->received_anything())) co_return std::unexpected(std::move(e));
  }
  co_return std::unexpected(Error::transport(ErrorKind::connection_reset, "upstream closed the connection"));
}

// 8. classify an error answer: read its (bounded) body and map it.
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
  Error e = providers::classify_error(*tp.provider, status, lookup, body ? std::string_view(*body) : std::string_view{}, tp.target->id);
  if (wait) e.retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(wait->requested);
  if (body && ox.exchange->keep_alive()) w.pool.release(std::move(ox.conn));
  co_return e;
}

// ---- governance phases -------------------------------------------------------------

// The first field named `name` (lower case). A request carries a handful of fields: one
// pass comparing lengths first beats the fields' ordered index, whose every step is a
// case-insensitive comparison.
std::string_view header(const Request& r, std::string_view name) {
  if (!r.in.headers) return {};
  for (const auto& f : *r.in.headers) {
    const auto n = f.name_string();
    if (n.size() == name.size() && boost::beast::iequals(n, name)) return {f.value().data(), f.value().size()};
  }
  return {};
}

// The presented credential: OpenAI's Authorization: Bearer, or Anthropic's x-api-key.
std::string_view credential(const Request& r) {
  std::string_view auth = header(r, "authorization");
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
    auth.remove_prefix(7);
    while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
    return auth;
  }
  return header(r, "x-api-key");
}

// Cheap token estimates from byte counts: 4 bytes a token is the usual English average;
// the budget reservation uses 2 bytes a token so it errs on the side of reserving more.
std::int64_t estimate_input_tokens(const Request& r) { return static_cast<std::int64_t>((r.chat.body.size() + 3) / 4); }
std::int64_t upper_input_tokens(const Request& r) { return static_cast<std::int64_t>((r.chat.body.size() + 1) / 2); }

// 2. authenticate
Status authenticate(Request& r) {
  const config::GovernanceSettings& gs = r.runtime->config().governance;
  const std::string_view presented = credential(r);
  if (r.gov) {
    const bool keyless = gs.auth == config::AuthMode::keyless;
    if (!keyless || auth::looks_like_key(presented)) {
      if (presented.empty())
        return std::unexpected(Error::client(ErrorKind::unauthenticated,
                                             "Missing API key: send your Bulwark key as `Authorization: Bearer <key>` or `x-api-key`."));
      auto key = r.in.key_memo ? r.gov->key_cache().resolve(presented, *r.in.key_memo) : r.gov->key_cache().resolve(presented);
      if (!key) {
        if (!keyless) return std::unexpected(key.error());
      } else {
        r.caller.key = std::move(*key);
      }
    }
  }
  return {};
}

// A per-request time limit from a header: "30s", "1500ms" or a number of milliseconds.
// nullopt when absent.
Result<std::optional<Clock::duration>> timeout_override(const Request& r, std::string_view name) {
  const std::string_view v = header(r, name);
  if (v.empty()) return std::optional<Clock::duration>{};
  std::optional<config::Millis> d;
  if (v.find_first_not_of("0123456789") == std::string_view::npos && v.size() < 10) d = config::Millis(std::stoll(std::string(v)));
  else d = config::parse_duration(v);
  if (!d || d->count() <= 0)
    return std::unexpected(Error::client(ErrorKind::bad_request, std::string(name) + " must be a duration such as 30s or 1500ms.", std::string(name)));
  return std::optional<Clock::duration>{std::chrono::duration_cast<Clock::duration>(*d)};
}

// 3. route: an ordinary model's plan, or for a routed model the tier its policy picks
// (rules, then complexity score against thresholds moved by the objective), falling over
// to the tiers above it. A tier whose targets are all unhealthy yields to the next.
Status route_request(Request& r, Worker& w) {
  r.route = r.runtime->route(r.chat.model);
  if (r.route) return {};
  const RouterPlan* rp = r.runtime->router(r.chat.model);
  if (!rp)
    return std::unexpected(Error::client(ErrorKind::model_not_found,
                                         "The model `" + r.chat.model + "` does not exist or you do not have access to it.", "model"));
  auto extract = router::extract_request_features(r.chat.body);
  if (!extract) return std::unexpected(extract.error());
  router::RequestFeatures f = router::RequestFeatures::from(*extract);
  auto lookup = [&r](std::string_view name) -> std::optional<std::string_view> {
    const std::string_view v = header(r, name);
    if (v.empty()) return std::nullopt;
    return v;
  };
  f.header = router::HeaderLookup(lookup);
  std::string objective_text;
  if (r.caller.key) {
    f.key_name = r.caller.key->key.name;
    f.key_id = r.caller.key->key.id;
    f.team = r.caller.key->key.team_id;
    // A key's default objective lives in its metadata: {"objective": "cost"}.
    boost::system::error_code ec;
    const boost::json::value meta = boost::json::parse(r.caller.key->key.metadata_json, ec);
    if (!ec && meta.is_object())
      if (const auto* o = meta.as_object().if_contains("objective"); o && o->is_string()) objective_text = std::string(o->as_string());
  }
  std::optional<router::Objective> objective;
  if (const std::string_view h = header(r, router::kObjectiveHeader); !h.empty()) {
    objective = router::parse_objective(h);
    if (!objective)
      return std::unexpected(Error::client(ErrorKind::bad_request,
                                           "x-bulwark-objective must be cost, speed, quality or balanced.", "x-bulwark-objective"));
  } else if (!objective_text.empty()) {
    objective = router::parse_objective(objective_text);
  }
  router::Decision d = rp->policy.decide(f, objective);
  rp->policy.yield_to_healthy(d, [rp](std::size_t tier) {
    const RoutePlan* plan = rp->tiers[tier];
    if (!plan || plan->chain.empty()) return false;
    return std::any_of(plan->chain.front().targets.begin(), plan->chain.front().targets.end(), breaker_admits);
  });
  // The chosen tier's own chain, then the tiers above it, each model once.
  RoutePlan plan = *rp->tiers[d.tier];
  auto append = [&plan](const RoutePlan& more) {
    for (const ModelPlan& mp : more.chain) {
      const bool seen = std::any_of(plan.chain.begin(), plan.chain.end(), [&](const ModelPlan& x) { return x.model == mp.model; });
      if (!seen) plan.chain.push_back(mp);
    }
    plan.dearest.input = std::max(plan.dearest.input, more.dearest.input);
    plan.dearest.output = std::max(plan.dearest.output, more.dearest.output);
  };
  for (std::size_t t : rp->policy.failover_tiers(d))
    if (rp->tiers[t]) append(*rp->tiers[t]);
  plan.profile = rp->profile;  // the routed model's, not the tier's
  r.routed = std::move(plan);
  r.route = &*r.routed;
  r.route_header = std::move(d.header);
  static constexpr std::string_view kSource[] = {"rule", "score", "objective", "default"};
  w.metrics.inc(telemetry::CounterId::route_decisions,
                telemetry::label_key({r.chat.model, rp->policy.tier_name(d.tier), kSource[static_cast<std::size_t>(d.source)]}));
  return {};
}

// 4. admit: model allow-list, parallel cap, rates, then the budget reservation.
Status admit(Request& r) {
  if (!r.gov || !r.caller.key) return {};
  const storage::KeyRecord& key = r.caller.key->key;
  const std::optional<storage::TeamRecord>& team = r.caller.key->team;
  if (!r.caller.key->allows_model(r.chat.model))
    return std::unexpected(Error::client(ErrorKind::permission_denied,
                                         "This key is not allowed to use the model `" + r.chat.model + "`.", "model"));
  if (key.max_parallel > 0) {
    auto slot = r.gov->parallel().try_acquire("key:" + key.id, key.max_parallel);
    if (!slot) {
      Error e = Error::client(ErrorKind::rate_limited,
                              "Too many parallel requests for this key (limit " + std::to_string(key.max_parallel) + ").");
      e.retry_after = std::chrono::milliseconds(1000);
      return std::unexpected(std::move(e));
    }
    r.caller.slot = std::move(*slot);
  }
  // Fixed-size lists with ids the key cache made once: admission allocates nothing.
  std::array<accounting::RateSubject, 2> rate_subjects;
  std::size_t n_rate = 0;
  if (key.limits.rpm > 0 || key.limits.tpm > 0) rate_subjects[n_rate++] = {r.caller.key->key_subject, key.limits.rpm, key.limits.tpm};
  if (team && (team->limits.rpm > 0 || team->limits.tpm > 0))
    rate_subjects[n_rate++] = {r.caller.key->team_subject, team->limits.rpm, team->limits.tpm};
  if (n_rate > 0) {
    const std::int64_t estimate = estimate_input_tokens(r) + r.chat.max_tokens.value_or(0);
    r.caller.rate = r.gov->rates().admit(std::span(rate_subjects.data(), n_rate), estimate);
    r.caller.checked_rate = true;
    if (!r.caller.rate.allowed) {
      const bool tokens = r.caller.rate.denied_by.ends_with("tpm");
      const bool by_team = r.caller.rate.denied_by.starts_with("team:");
      Error e = Error::client(ErrorKind::rate_limited, std::string("Rate limit reached for this ") + (by_team ? "team" : "key") +
                                                           (tokens ? ": tokens per minute." : ": requests per minute."));
      e.retry_after = std::max(std::chrono::milliseconds(1), std::chrono::ceil<std::chrono::milliseconds>(r.caller.rate.retry_after));
      return std::unexpected(std::move(e));
    }
  }
  std::array<accounting::BudgetSubject, 2> budget_subjects;
  std::size_t n_budget = 0;
  if (key.limits.budget_nano_usd)
    budget_subjects[n_budget++] = {storage::SpendScope::key, key.id, *key.limits.budget_nano_usd, key.limits.budget_period};
  if (team && team->limits.budget_nano_usd)
    budget_subjects[n_budget++] = {storage::SpendScope::team, team->id, *team->limits.budget_nano_usd, team->limits.budget_period};
  if (n_budget > 0) {
    const auto max_out = r.chat.max_tokens.value_or(static_cast<std::int64_t>(r.runtime->config().governance.default_max_tokens));
    const std::int64_t amount = accounting::max_cost(r.route->dearest, upper_input_tokens(r), max_out);
    auto reservation = r.gov->budgets().reserve(std::span(budget_subjects.data(), n_budget), amount);
    if (!reservation) return std::unexpected(reservation.error());
    r.caller.reservation = std::move(*reservation);
  }
  return {};
}

std::string describe(const policy::PolicyDecision& d, std::string_view where) {
  std::string out(where);
  out += ':';
  out += policy::name_of(d.verdict);
  for (const policy::RuleHit& h : d.hits) {
    out += ' ';
    out += policy::name_of(h.rule);
    if (h.rule == policy::Rule::pii) {
      out += '.';
      out += policy::name_of(static_cast<policy::PiiKind>(h.detail));
    }
    out += '=';
    out += policy::name_of(h.action);
    out += 'x';
    out += std::to_string(h.count);
  }
  return out;
}

bool guards_output(const policy::PolicyProfile* p) {
  return p && (p->enabled_pii() != 0 || !p->spec().deny.empty());
}

// The request's policy profile: its key's, else its team's, else the requested model's
// (models.X.policy), else governance.default_policy. The most specific level that names a
// profile decides; profiles are not combined. A name no longer configured (a key made
// before a reload removed its profile) is logged and passed over.
const policy::PolicyProfile* choose_policy(const Request& r) {
  const auto named = [&r](const std::string& name, std::string_view level) -> const policy::PolicyProfile* {
    if (name.empty()) return nullptr;
    const policy::PolicyProfile* p = r.runtime->policy(name);
    if (!p)
      log::warn("policy_profile_unknown", {{"request_id", r.in.request_id}, {"level", level}, {"profile", name}});
    return p;
  };
  const policy::PolicyProfile* p = nullptr;
  if (r.caller.key) {
    p = named(r.caller.key->key.policy_profile, "key");
    if (!p && r.caller.key->team) p = named(r.caller.key->team->policy_profile, "team");
  }
  if (!p && r.route) p = r.route->profile;
  return p ? p : r.runtime->default_policy();
}

// 5. guard: the policy on the prompt. A redaction rewrites the body sent upstream.
Status guard_input(Request& r) {
  r.caller.policy = choose_policy(r);
  const policy::PolicyProfile* profile = r.caller.policy;
  if (!profile) return {};
  policy::RequestFacts facts{r.chat.model, static_cast<std::uint64_t>(estimate_input_tokens(r)), {}};
  if (r.chat.max_tokens && *r.chat.max_tokens >= 0) facts.max_tokens = static_cast<std::uint64_t>(*r.chat.max_tokens);
  // Most prompts hold nothing the profile acts on: shown on the raw body, without parsing
  // it again; the exact path runs otherwise (and is the one that redacts).
  if (auto quick = policy::evaluate_input_raw(*profile, r.chat.body, facts)) {
    if (!quick->blocked()) return {};
    r.caller.policy_decisions.push_back(describe(*quick, "input"));
    log::info("policy_blocked", {{"request_id", r.in.request_id}, {"policy", quick->policy_id}, {"reason", quick->reason_code}, {"detector", quick->detector}});
    return std::unexpected(policy::block_error(*quick, false));
  }
  // Message texts and documents' texts; documents it cannot read are named for the
  // profile's uninspectable_documents rule.
  auto texts = api::openai::request_texts(r.chat.body);
  if (!texts) return std::unexpected(texts.error());
  const policy::PolicyDecision d = policy::evaluate_input(*profile, texts->texts, facts, texts->uninspectable, texts->json);
  if (!d.hits.empty() || d.blocked()) r.caller.policy_decisions.push_back(describe(d, "input"));
  if (d.blocked()) {
    log::info("policy_blocked", {{"request_id", r.in.request_id}, {"policy", d.policy_id}, {"reason", d.reason_code}, {"detector", d.detector}});
    return std::unexpected(policy::block_error(d, false));
  }
  if (d.verdict == policy::Verdict::redacted) {
    auto body = api::openai::with_request_texts(r.chat.body, texts->texts);
    if (!body) return std::unexpected(body.error());
    const bool include_usage = r.chat.include_usage;
    auto chat = api::openai::decode_chat_request(std::move(*body));
    if (!chat) return std::unexpected(chat.error());
    r.chat = std::move(*chat);
    r.chat.include_usage = include_usage;
  }
  return {};
}

// The output rules fail closed: an answer they may have to act on that they cannot read,
// or cannot rewrite once redacted, is withheld. Records and logs the decision; returns the
// error to answer with.
Error withhold_answer(Request& r, const policy::PolicyProfile& profile, std::string what) {
  const policy::PolicyDecision d = policy::answer_not_inspectable(profile, std::move(what));
  r.caller.policy_decisions.push_back(describe(d, "output"));
  log::warn("policy_answer_withheld", {{"request_id", r.in.request_id}, {"policy", d.policy_id}, {"detector", d.detector}});
  return policy::block_error(d, true);
}

// The policy on a complete answer (its content, the text blocks with their citations'
// cited_text when it has them, its reasoning and its tool calls' arguments); rewrites it
// when redacting.
Status guard_answer(Request& r, std::string& body) {
  const policy::PolicyProfile* profile = r.caller.policy;
  if (!guards_output(profile)) return {};
  if (policy::evaluate_output_raw(*profile, body)) return {};  // nothing to act on (see guard_input)
  auto texts = api::openai::answer_texts(body);
  if (!texts) return std::unexpected(withhold_answer(r, *profile, "unreadable"));
  bool redacted = false;
  for (std::size_t i = 0; i < texts->texts.size(); ++i) {
    const bool json = std::ranges::binary_search(texts->json, i);
    const policy::PolicyDecision d =
        policy::evaluate_output(*profile, texts->texts[i], json ? policy::TextForm::json : policy::TextForm::plain);
    if (!d.hits.empty() || d.blocked()) r.caller.policy_decisions.push_back(describe(d, "output"));
    if (d.blocked()) return std::unexpected(policy::block_error(d, true));
    redacted = redacted || d.verdict == policy::Verdict::redacted;
  }
  if (redacted) {
    auto rewritten = api::openai::with_answer_texts(body, texts->texts);
    if (!rewritten) return std::unexpected(withhold_answer(r, *profile, "rewrite"));
    body = std::move(*rewritten);
  }
  return {};
}

accounting::Usage usage_of(const oa::Usage& u) {
  accounting::Usage out;
  out.cached_input_tokens = std::min(u.cached_prompt_tokens, u.prompt_tokens);
  out.cache_write_tokens = std::min(u.cache_write_tokens, u.prompt_tokens - out.cached_input_tokens);
  out.input_tokens = u.prompt_tokens - out.cached_input_tokens - out.cache_write_tokens;
  out.output_tokens = u.completion_tokens;
  return out;
}

// Canonical usage counts uncached input apart from cache reads and writes, as accounting does.
accounting::Usage usage_of(const api::canonical::Usage& u) {
  return accounting::Usage{u.input, u.output, u.cache_read, u.cache_write};
}

std::string cost_usd(std::int64_t nano) {
  // USD with 6 decimals (a millionth of a dollar) is what a caller reads; the ledger
  // keeps the exact nano-dollars.
  std::string s = accounting::format_usd(nano);
  if (auto dot = s.find('.'); dot != std::string::npos && s.size() > dot + 7) s.resize(dot + 7);
  return s;
}

accounting::AttemptSeen seen_of(const AttemptTrace& t) {
  accounting::AttemptSeen seen;
  seen.prompt_bytes = t.prompt_bytes;
  seen.output_text_bytes = t.text_bytes;
  if (t.usage) {
    seen.reported = usage_of(*t.usage);
    seen.output_final = true;  // OpenAI's usage chunk, and the one translated streams end with
  } else if (t.prompt_usage) {
    seen.reported = *t.prompt_usage;
  }
  return seen;
}

// The attempt `rec` was accepted by its provider but is not the caller's answer: what
// the provider charges for it is booked as gateway overhead (recorded in the ledger when
// the books close; the metric now).
void charge_overhead(AttemptRecord& rec, const TargetPlan& tp, const AttemptTrace& t, accounting::OverheadReason why) {
  if (rec.overhead) return;  // booked once
  rec.overhead = why;
  rec.charge = accounting::attempt_charge(tp.price ? &*tp.price : nullptr, seen_of(t));
  OverheadCounters& c = overhead_counters();
  const auto i = static_cast<std::size_t>(why);
  c.attempts[i].fetch_add(1, std::memory_order_relaxed);
  if (rec.charge.cost.nano_usd > 0)
    c.nano_usd[i].fetch_add(static_cast<std::uint64_t>(rec.charge.cost.nano_usd), std::memory_order_relaxed);
}

// A hedge race's loser, once its request went out.
void charge_cancelled(AttemptRecord& rec, const TargetPlan& tp, const AttemptTrace& t) {
  if (!t.sent) return;
  charge_overhead(rec, tp, t, accounting::OverheadReason::hedge_cancelled);
  if (rec.charge.cost.nano_usd > 0)
    tp.health->counters->hedge_cancelled_nano_usd.fetch_add(static_cast<std::uint64_t>(rec.charge.cost.nano_usd), std::memory_order_relaxed);
}

accounting::OverheadReason failure_reason(ErrorKind k) {
  const bool timeout = k == ErrorKind::idle_timeout || k == ErrorKind::first_token_timeout || k == ErrorKind::total_timeout;
  return timeout ? accounting::OverheadReason::timeout : accounting::OverheadReason::failed;
}

// 10. account: settles what admission held, prices the answer, and writes the spend and
// audit records. Runs once, right before the response's last byte goes out.
void close_books(Request& r) {
  if (r.books_closed) return;
  r.books_closed = true;
  accounting::Usage usage;
  bool estimated = false;
  if (r.served) {
    if (r.usage.present) {
      usage = usage_of(r.usage);
    } else {
      // A continued stream is billed as its continuation: that request's prompt (which
      // holds the text relayed before the break) and what it added.
      usage = accounting::estimate_usage(r.continuation ? r.continuation->body.size() : r.chat.body.size(), r.output_bytes);
      estimated = true;
    }
    accounting::Cost cost{0, estimated};
    if (r.served->price) cost = accounting::cost_of(*r.served->price, usage, estimated);
    r.cost = cost;
    r.cost_text = cost_usd(cost.nano_usd);
  }
  if (!r.gov) return;
  if (r.caller.checked_rate && r.caller.rate.allowed) r.gov->rates().settle_tokens(r.caller.rate, usage.total());
  const std::int64_t charged = r.cost ? r.cost->nano_usd : 0;
  if (r.caller.reservation.active()) r.gov->budgets().settle(r.caller.reservation, charged);
  const storage::UnixMillis now = storage::to_unix_millis(r.gov->clock().wall());
  const std::string_view key_id = r.caller.key ? std::string_view(r.caller.key->key.id) : std::string_view{};
  const std::string_view team_id = r.caller.key ? std::string_view(r.caller.key->key.team_id) : std::string_view{};
  // Gateway overhead: one spend entry per attempt a provider charges for that did not
  // become the caller's answer, flagged so that no budget and no caller's cost counts it.
  // Recorded (journal, durable) before the request's own line. Per-thread scratch: once
  // its strings have grown, recording allocates nothing.
  thread_local std::vector<accounting::AttemptView> attempts;
  attempts.resize(r.attempts.size());
  for (std::size_t i = 0; i < r.attempts.size(); ++i) {
    const AttemptRecord& at = r.attempts[i];
    accounting::AttemptView& v = attempts[i];
    v = accounting::AttemptView{at.target, at.outcome,
                                std::chrono::duration_cast<std::chrono::milliseconds>(at.took).count()};
    if (!at.overhead) continue;
    v.overhead = accounting::name_of(*at.overhead);
    v.overhead_nano_usd = at.charge.cost.nano_usd;
    v.overhead_estimated = at.charge.cost.estimated;
    thread_local storage::SpendEntry o;
    o.entry_id.clear();
    o.request_id.assign(r.in.request_id);
    o.time = now;
    o.key_id.assign(key_id);
    o.team_id.assign(team_id);
    o.model.assign(r.chat.model);
    o.target.assign(at.target);
    o.input_tokens = at.charge.usage.input_tokens;
    o.output_tokens = at.charge.usage.output_tokens;
    o.cached_input_tokens = at.charge.usage.cached_input_tokens;
    o.cache_write_tokens = at.charge.usage.cache_write_tokens;
    o.cost_nano_usd = at.charge.cost.nano_usd;
    o.estimated = at.charge.cost.estimated;
    o.status = static_cast<int>(r.status);
    o.overhead.assign(v.overhead);
    if (auto ok = r.gov->ledger().record(o); !ok)
      log::error("ledger_record_failed", {{"request_id", r.in.request_id}, {"error", ok.error().message}});
  }
  // The request's own line: its audit record's fields, views into the request (the
  // ledger's writer builds the canonical body), and the caller's spend when it was served.
  accounting::RequestRecord rec;
  rec.time = now;
  rec.request_id = r.in.request_id;
  rec.key_id = key_id;
  rec.team_id = team_id;
  rec.model = r.chat.model;
  if (r.served) rec.target = r.served->target->id;
  rec.attempts = attempts;
  rec.policy_decisions = r.caller.policy_decisions;
  rec.tokens = usage;
  rec.cost_nano_usd = charged;
  rec.estimated = estimated;
  rec.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - r.in.received).count();
  rec.status = static_cast<int>(r.status);
  if (r.error) rec.error = name_of(r.error->kind);
  // Raw text: the trail keeps it as audit_content says (dropped when off).
  rec.prompt = r.chat.body;
  rec.completion = r.completion;
  rec.billed = r.served != nullptr;
  if (auto ok = r.gov->audit().append(rec); !ok)
    log::error("ledger_record_failed", {{"request_id", r.in.request_id}, {"error", ok.error().message}});
}

// "1.250s": seconds with milliseconds, rounded to the nearest millisecond. Integer
// formatting: snprintf("%.3f") was a visible share of a governed request's CPU.
std::string reset_text(Duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  const std::int64_t ms = ns >= 0 ? (ns + 500'000) / 1'000'000 : -((-ns + 500'000) / 1'000'000);
  const std::uint64_t abs_ms = ms >= 0 ? static_cast<std::uint64_t>(ms) : static_cast<std::uint64_t>(-ms);
  char buf[32];
  char* p = buf;
  if (ms < 0) *p++ = '-';
  p = std::to_chars(p, buf + sizeof buf, abs_ms / 1000).ptr;
  *p++ = '.';
  put_padded_digits(p, abs_ms % 1000, 3);
  p += 3;
  *p++ = 's';
  return std::string(buf, p);
}

// Response header fields: names are string literals (no copies), values owned.
using HeaderFields = std::vector<std::pair<std::string_view, std::string>>;

HeaderFields response_headers(const Request& r) {
  HeaderFields h;
  h.reserve(r.caller.checked_rate ? 14 : 8);  // the rate-limit headers add 6
  h.emplace_back("x-bulwark-request-id", r.in.request_id);
  h.emplace_back("x-bulwark-attempts",
                 std::to_string(std::count_if(r.attempts.begin(), r.attempts.end(), [](const AttemptRecord& a) { return a.counted; })));
  if (r.served) {
    h.emplace_back("x-bulwark-model", r.served_model->model->name);
    h.emplace_back("x-bulwark-target", r.served->target->id);
    for (const auto& [target, what] : r.dropped)
      if (target == r.served) {
        h.emplace_back("x-bulwark-dropped", what);
        break;
      }
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
    h.emplace_back("x-bulwark-attempt-log", std::move(log));
  }
  if (!r.route_header.empty()) h.emplace_back("x-bulwark-route", r.route_header);
  if (!r.cost_text.empty()) h.emplace_back("x-bulwark-cost-usd", r.cost_text);
  // OpenAI's names, so SDKs and dashboards that read them work unchanged.
  if (r.caller.checked_rate) {
    struct Names {
      std::string_view limit, remaining, reset;
    };
    static constexpr Names kRequests{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"};
    static constexpr Names kTokens{"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"};
    const auto add = [&h](const Names& n, const accounting::RateDecision& d) {
      if (d.limit <= 0) return;
      h.emplace_back(n.limit, std::to_string(d.limit));
      h.emplace_back(n.remaining, std::to_string(d.remaining));
      h.emplace_back(n.reset, reset_text(d.reset));
    };
    add(kRequests, r.caller.rate.requests);
    add(kTokens, r.caller.rate.tokens);
  }
  return h;
}

std::vector<Header> as_views(const HeaderFields& h) {
  std::vector<Header> v;
  v.reserve(h.size());
  for (const auto& [name, value] : h) v.emplace_back(name, value);
  return v;
}

asio::awaitable<void> end_stream_with_error(Request& r, Downstream& ds, const Error& e);

asio::awaitable<void> respond_error(Request& r, Downstream& ds, const Error& e) {
  if (r.head_sent) {  // a stream already answered 200: the error goes in the stream
    co_await end_stream_with_error(r, ds, e);
    co_return;
  }
  r.status = static_cast<unsigned>(http_status_of(e.kind));
  r.error = e;
  r.served = nullptr;  // nothing was served, so nothing is billed
  close_books(r);
  auto h = response_headers(r);
  if (e.retry_after) {
    h.emplace_back("retry-after", std::to_string((e.retry_after->count() + 999) / 1000));
    h.emplace_back("retry-after-ms", std::to_string(e.retry_after->count()));
  }
  co_await ds.send(r.status, as_views(h), "application/json", api::openai::error_body(e));
}

// One non-streamed attempt, answered to the caller when it succeeds.
// on_served runs before the answer goes out: the breaker must hear of a success (say, a
// half-open probe's) before the caller can send its next request.
asio::awaitable<AttemptResult> attempt_unary(Request& r, Worker& w, const ModelPlan& mp, const TargetPlan& tp,
                                             Downstream& ds, const std::function<void(Clock::duration)>& on_served,
                                             const Lane& lane) {
  const auto start = Clock::now();
  auto ox = co_await open_exchange(r, w, tp, start + first_token_timeout(r, tp), lane);
  if (lane.cancelled()) co_return AttemptResult{AttemptEnd::cancelled, {}};
  if (!ox) co_return AttemptResult{AttemptEnd::failed, std::move(ox.error())};
  if (ox->exchange->status() != 200) {
    Error e = co_await read_error_answer(r, w, tp, *ox);
    r.active[lane.slot] = nullptr;
    if (lane.cancelled()) co_return AttemptResult{AttemptEnd::cancelled, {}};
    co_return AttemptResult{AttemptEnd::failed, std::move(e)};
  }
  const auto body_deadline = std::min(Clock::now() + tp.timeouts.idle, r.deadline);
  auto body = co_await ox->exchange->read_all(body_deadline, kMaxUpstreamBody);
  r.active[lane.slot] = nullptr;
  if (lane.cancelled()) co_return AttemptResult{AttemptEnd::cancelled, {}};
  if (!body) {
    ox->conn->close();
    co_return AttemptResult{AttemptEnd::failed, name_timeout(std::move(body.error()), ErrorKind::idle_timeout, body_deadline, r.deadline)};
  }
  if (ox->exchange->keep_alive()) w.pool.release(std::move(ox->conn));
  AttemptTrace& trace = r.trace[lane.slot];
  trace.text_bytes = body->size();  // an upper bound; the usage normally says
  if (providers::translates(*tp.provider)) {
    auto converted = providers::openai_answer(*tp.provider, tp.target->model, *body, r.in.request_id);
    if (!converted) co_return AttemptResult{AttemptEnd::failed, std::move(converted.error())};
    *body = std::move(*converted);
  }
  const oa::Usage usage = oa::read_usage(*body);
  if (usage.present) trace.usage = usage;
  if (!claim(r, lane)) co_return AttemptResult{AttemptEnd::cancelled, {}};
  r.usage = usage;
  r.served_model = &mp;
  r.served = &tp;
  r.status = 200;
  r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
  r.upstream_time += Clock::now() - start;
  on_served(Clock::now() - start);
  r.output_bytes = body->size();
  if (auto guarded = guard_answer(r, *body); !guarded) {
    charge_overhead(r.attempts.back(), tp, trace, accounting::OverheadReason::discarded);
    co_await respond_error(r, ds, guarded.error());
    co_return AttemptResult{AttemptEnd::served, {}};
  }
  if (r.gov && r.runtime->config().governance.audit_content != "off") r.completion = *body;
  close_books(r);
  auto h = response_headers(r);
  const bool sent = co_await ds.send(200, as_views(h), "application/json", std::move(*body));
  if (!sent) r.client_gone = true;
  co_return AttemptResult{AttemptEnd::served, {}};
}

// The JSON of a one-line SSE data event ("data: {...}\n\n").
std::string_view data_payload(std::string_view event) {
  if (event.starts_with("data:")) event.remove_prefix(5);
  if (event.starts_with(' ')) event.remove_prefix(1);
  while (!event.empty() && (event.back() == '\n' || event.back() == '\r')) event.remove_suffix(1);
  return event;
}

// Appends choice 0's content delta of one data event to the answer text so far.
void track_answer_text(Request& r, std::string_view event) {
  auto deltas = api::openai::delta_texts(data_payload(event));
  if (!deltas) return;
  for (const api::openai::DeltaText& d : *deltas)
    if (d.choice == 0) r.answered_text += d.text;
}

std::string stream_error_event(const Error& e) {
  return "data: " + api::openai::error_body(e) + "\n\n";
}

// One streamed attempt (phase 9). Events are held back until the first token so that a
// failure before it can fail over without the caller seeing anything.
asio::awaitable<AttemptResult> attempt_stream(Request& r, Worker& w, const ModelPlan& mp, const TargetPlan& tp,
                                              Downstream& ds, const Lane& lane) {
  const auto start = Clock::now();
  const auto first_token_by = std::min(start + first_token_timeout(r, tp), r.deadline);
  auto ox = co_await open_exchange(r, w, tp, first_token_by, lane);
  if (lane.cancelled()) co_return AttemptResult{AttemptEnd::cancelled, {}};
  if (!ox) co_return AttemptResult{AttemptEnd::failed, std::move(ox.error())};
  if (ox->exchange->status() != 200) {
    Error e = co_await read_error_answer(r, w, tp, *ox);
    r.active[lane.slot] = nullptr;
    if (lane.cancelled()) co_return AttemptResult{AttemptEnd::cancelled, {}};
    co_return AttemptResult{AttemptEnd::failed, std::move(e)};
  }

  AttemptTrace& trace = r.trace[lane.slot];
  std::unique_ptr<providers::OpenAIStream> conv;
  if (providers::translates(*tp.provider)) conv = providers::OpenAIStream::make(*tp.provider, tp.target->model, r.in.request_id);
  std::string converted;
  oa::SseSplitter splitter;
  std::string held;  // events not yet sent: everything before the first token
  std::string out;
  // A continuation (stream failover with prefill) relays at once: the caller already has
  // the beginning of this answer.
  bool committed = r.continuation.has_value(), saw_done = false, saw_token = false;
  std::optional<Error> failure;  // the upstream's fault: may fail over before commit
  std::optional<Error> blocked;  // the policy's verdict on the answer: ends the request
  HeaderFields headers;
  // The policy's output rules, applied delta by delta with the one-shot result: a
  // StreamRedactor per channel of a choice, its content, its reasoning and each of its tool
  // calls' arguments (JSON text). A channel's held-back tail is sent when its choice moves
  // on to another channel (a signature closes reasoning), at finish_reason and at [DONE],
  // so a block is complete before the next starts (what Anthropic and Bedrock callers get).
  const bool guard = guards_output(r.caller.policy);
  constexpr std::size_t kContent = SIZE_MAX, kReasoning = SIZE_MAX - 1;  // else a tool call's index (or kFunctionCall)
  static_assert(api::openai::kFunctionCall != kContent && api::openai::kFunctionCall != kReasoning);
  constexpr std::size_t kMaxGuardedChoices = 128;  // OpenAI's own cap on n
  struct Channel {
    std::size_t choice, what;
    policy::StreamRedactor redactor;
  };
  std::vector<Channel> channels;
  std::string rebuilt, last_payload;
  std::size_t last_choice = 0;
  // Sends what channel `i` holds back and closes it.
  auto flush_channel = [&](std::size_t i) {
    Channel& ch = channels[i];
    std::string tail;
    if (ch.redactor.finish(tail) == policy::StreamStatus::blocked) blocked = policy::block_error(ch.redactor.decision(), true);
    else if (!tail.empty()) {
      const std::string id = "chatcmpl-" + r.in.request_id;
      out += "data: ";
      if (ch.what == kContent) {
        // Shaped like the upstream's own chunks (id, created, model) when we have seen one.
        const api::openai::DeltaText piece[] = {{ch.choice, std::move(tail)}};
        auto chunk = last_payload.empty() || last_choice != ch.choice ? Result<std::string>(std::unexpected(Error{})) : api::openai::with_delta_texts(last_payload, piece);
        out += chunk ? *chunk : api::openai::text_chunk(id, r.chat.model, ch.choice, piece[0].text);
      } else if (ch.what == kReasoning) {
        out += api::openai::reasoning_chunk(id, r.chat.model, ch.choice, tail);
      } else {
        out += api::openai::tool_arguments_chunk(id, r.chat.model, ch.choice, ch.what, tail);
      }
      out += "\n\n";
    }
    if (!ch.redactor.decision().hits.empty() || blocked)
      r.caller.policy_decisions.push_back(describe(ch.redactor.decision(), "output"));
    channels.erase(channels.begin() + static_cast<std::ptrdiff_t>(i));
  };
  auto flush_redactors = [&] {
    while (!channels.empty() && !blocked) flush_channel(0);
  };
  // A chunk the rules cannot read, or cannot rewrite once redacted, ends the stream.
  auto withhold = [&](std::string what) { blocked = withhold_answer(r, *r.caller.policy, std::move(what)); };
  // Feeds one channel's text to its redactor and puts what may be relayed in its place;
  // false when the policy blocks.
  auto redact = [&](std::size_t choice, std::size_t what, std::string& text) {
    if (choice >= kMaxGuardedChoices) {  // bounds the redactors one stream can make us keep
      withhold("choices");
      return false;
    }
    auto ch = std::ranges::find_if(channels, [&](const Channel& c) { return c.choice == choice && c.what == what; });
    if (ch == channels.end()) {
      const auto form = what == kContent || what == kReasoning ? policy::TextForm::plain : policy::TextForm::json;
      ch = channels.insert(channels.end(), Channel{choice, what, policy::StreamRedactor(*r.caller.policy, form)});
    }
    std::string safe;
    if (ch->redactor.feed(text, safe) == policy::StreamStatus::blocked) {
      blocked = policy::block_error(ch->redactor.decision(), true);
      r.caller.policy_decisions.push_back(describe(ch->redactor.decision(), "output"));
      return false;
    }
    text = std::move(safe);
    return true;
  };
  // Runs the redactors over one data event; returns the event to relay.
  auto redact_event = [&](std::string_view event) -> std::string_view {
    const std::string_view payload = data_payload(event);
    // One parse for every channel the chunk carries; its document takes the redacted texts.
    auto chunk = api::openai::DeltaChunk::read(payload);
    if (!chunk) {
      withhold("unreadable");
      return {};
    }
    std::vector<api::openai::DeltaText>& texts = chunk->content;
    std::vector<api::openai::DeltaText>& reasoning = chunk->reasoning;
    std::vector<api::openai::DeltaArguments>& args = chunk->arguments;
    const bool signature = payload.find("\"thinking_blocks\"") != std::string_view::npos;
    // Channels this chunk's choices have left are flushed before it.
    const auto carries = [&](std::size_t choice, std::size_t what) {
      if (what == kContent) return std::ranges::any_of(texts, [&](const auto& d) { return d.choice == choice; });
      if (what == kReasoning) return std::ranges::any_of(reasoning, [&](const auto& d) { return d.choice == choice; });
      return std::ranges::any_of(args, [&](const auto& a) { return a.choice == choice && a.tool == what; });
    };
    const auto touches = [&](std::size_t choice) {
      return carries(choice, kContent) || carries(choice, kReasoning) ||
             std::ranges::any_of(args, [&](const auto& a) { return a.choice == choice; });
    };
    for (std::size_t i = 0; i < channels.size() && !blocked;) {
      const Channel& ch = channels[i];
      if ((touches(ch.choice) && !carries(ch.choice, ch.what)) || (signature && ch.what == kReasoning)) flush_channel(i);
      else ++i;
    }
    if (blocked) return {};
    if (texts.empty() && reasoning.empty() && args.empty()) return event;
    for (api::openai::DeltaText& d : texts)
      if (!redact(d.choice, kContent, d.text)) return {};
    for (api::openai::DeltaText& d : reasoning)
      if (!redact(d.choice, kReasoning, d.text)) return {};
    for (api::openai::DeltaArguments& a : args)
      if (!redact(a.choice, a.tool, a.text)) return {};
    if (texts.size() == 1 && reasoning.empty() && args.empty()) {  // template for a flushed tail
      last_payload.assign(payload);
      last_choice = texts[0].choice;
    }
    rebuilt = "data: ";
    rebuilt += chunk->write();
    rebuilt += "\n\n";
    return rebuilt;
  };
  // A citation (the gateway's delta `citation`) quotes a document: the output rules on its
  // cited_text. It arrives whole in one chunk, so it is scanned whole, not through the
  // stream redactors. Returns the event to relay.
  std::string rebuilt_citation;
  auto redact_citations = [&](std::string_view event) -> std::string_view {
    const std::string_view payload = data_payload(event);
    auto cited = api::openai::delta_cited_texts(payload);
    if (!cited) {
      withhold("unreadable");
      return {};
    }
    if (cited->empty()) return event;
    bool redacted = false;
    for (api::openai::DeltaText& c : *cited) {
      const policy::PolicyDecision d = policy::evaluate_output(*r.caller.policy, c.text);
      if (!d.hits.empty() || d.blocked()) r.caller.policy_decisions.push_back(describe(d, "output"));
      if (d.blocked()) {
        blocked = policy::block_error(d, true);
        return {};
      }
      redacted = redacted || d.verdict == policy::Verdict::redacted;
    }
    if (!redacted) return event;
    auto rewritten = api::openai::with_delta_cited_texts(payload, *cited);
    if (!rewritten) {
      withhold("rewrite");
      return {};
    }
    rebuilt_citation = "data: " + *rewritten + "\n\n";
    return rebuilt_citation;
  };
  const bool keep_text = r.gov && r.runtime->config().governance.audit_content != "off";
  constexpr std::size_t kMaxAuditedAnswer = 1 << 20;
  // Until its first token an attempt's events are its own (another attempt may be racing
  // it, or it may fail over invisibly); they join the request's answer with that token.
  std::size_t pre_bytes = 0;
  std::string pre_completion;
  std::optional<oa::Usage> pre_usage;
  bool cancelled = false;  // a racing attempt had its first token first
  auto take_token = [&]() -> bool {
    if (saw_token) return true;
    if (!claim(r, lane)) {
      cancelled = true;
      return false;
    }
    saw_token = true;
    r.output_bytes += pre_bytes;
    if (keep_text) r.completion += pre_completion;
    if (pre_usage) r.usage = *pre_usage;
    return true;
  };

  for (;;) {
    const auto deadline = saw_token ? std::min(Clock::now() + tp.timeouts.idle, r.deadline) : first_token_by;
    auto piece = co_await ox->exchange->read_some(deadline);
    if (r.client_gone) break;
    if (!piece) {
      failure = name_timeout(std::move(piece.error()), saw_token ? ErrorKind::idle_timeout : ErrorKind::first_token_timeout,
                             deadline, r.deadline);
      break;
    }
    // Anthropic and Bedrock streams are converted to OpenAI SSE first; OpenAI's pass as is.
    std::string_view bytes = *piece;
    const bool ended = piece->empty();
    if (conv) {
      converted.clear();
      auto ok = ended ? conv->finish(converted) : conv->feed(*piece, converted);
      if (!ok) {
        failure = std::move(ok.error());
        break;
      }
      bytes = converted;
      if (!trace.prompt_usage && !saw_token)
        if (const auto u = conv->start_usage()) trace.prompt_usage = usage_of(*u);
    }
    out.clear();
    splitter.feed(bytes, [&](std::string_view event) {
      if (failure || blocked || saw_done || cancelled) return;
      const oa::StreamEvent ev = oa::inspect_event(event);
      switch (ev.kind) {
        case oa::StreamEvent::Kind::comment:
          if (committed) out += event;
          return;
        case oa::StreamEvent::Kind::done:
          // Held back: the books are closed before the caller sees the end.
          if (!take_token()) return;
          saw_done = true;
          if (guard) flush_redactors();
          return;
        case oa::StreamEvent::Kind::error:
          failure = Error::transport(ErrorKind::upstream_server_error,
                                     "upstream " + tp.target->id + " sent an error in the stream: " + ev.error_message);
          return;
        case oa::StreamEvent::Kind::malformed:
          failure = Error::transport(ErrorKind::upstream_protocol, "upstream " + tp.target->id + " sent a malformed stream event");
          return;
        case oa::StreamEvent::Kind::data:
          if (ev.usage.present) trace.usage = ev.usage;
          trace.text_bytes += ev.text_bytes;
          if ((ev.content_deltas > 0 || ev.has_finish) && !take_token()) return;
          if (ev.usage.present) (saw_token ? r.usage : pre_usage.emplace()) = ev.usage;
          if (ev.usage_only && !r.chat.include_usage) return;  // we asked for it, the caller did not
          (saw_token ? r.output_bytes : pre_bytes) += event.size();
          if (r.track_text && ev.content_deltas > 0) track_answer_text(r, event);
          if (guard && ev.content_deltas > 0) event = redact_event(event);
          if (blocked) return;
          // Only a chunk that names the key is parsed again (citations are rare).
          if (guard && event.find("\"citation\"") != std::string_view::npos) event = redact_citations(event);
          if (blocked) return;
          if (guard && ev.has_finish) flush_redactors();
          if (blocked) return;
          out += event;
          if (keep_text) {
            std::string& kept = saw_token ? r.completion : pre_completion;
            if (kept.size() < kMaxAuditedAnswer) kept += event;
          }
          return;
      }
    });
    if (ended && !failure && !blocked) {
      if (!saw_done)
        failure = Error::transport(ErrorKind::stream_truncated, "upstream " + tp.target->id + " ended the stream before [DONE]");
    }
    if (blocked) break;
    if (committed && r.continuation && saw_token && r.served != &tp) {  // the continuation took over
      r.served_model = &mp;
      r.served = &tp;
      trace.record = r.attempts.size();
      r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
    }
    if (!committed) {
      held += out;
      if (saw_token && !failure) {
        committed = true;
        r.first_token = Clock::now();
        tp.health->first_token->record(*r.first_token - start);
        r.served_model = &mp;
        r.served = &tp;
        trace.record = r.attempts.size();
        r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
        r.status = 200;
        co_await wait_keepalive_idle(r, w.executor);
        bool ok = true;
        if (!r.head_sent) {
          headers = response_headers(r);
          r.head_sent = true;
          ok = co_await ds.begin_stream(200, as_views(headers), "text/event-stream");
        }
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
    if (failure || saw_done || cancelled) break;
  }
  if (cancelled || lane.cancelled()) {
    r.active[lane.slot] = nullptr;
    ox->conn->close();
    co_return AttemptResult{AttemptEnd::cancelled, {}};
  }

  // After [DONE], read the end of the chunked body so the connection can be reused;
  // keep_alive() below only holds if that completed the response.
  const bool clean = saw_done && !failure && !blocked && !r.client_gone;
  if (clean && !ox->exchange->done()) co_await ox->exchange->read_some(std::min(Clock::now() + tp.timeouts.idle, r.deadline));
  r.active[lane.slot] = nullptr;
  r.upstream_time += Clock::now() - start;
  if (clean && ox->exchange->keep_alive()) w.pool.release(std::move(ox->conn));
  else ox->conn->close();

  if (r.client_gone) {
    if (!committed) {
      r.attempts.push_back({tp.target->id, "client_gone", Clock::now() - start});
      if (trace.accepted) charge_overhead(r.attempts.back(), tp, trace, accounting::OverheadReason::client_gone);
    }
    co_return AttemptResult{AttemptEnd::client_gone, {}};
  }
  if (blocked) {
    // The policy refused the answer: the target did its job, the caller gets no more of it.
    if (!committed) {
      r.served_model = &mp;
      r.served = &tp;
      r.attempts.push_back({tp.target->id, "ok", Clock::now() - start});
      charge_overhead(r.attempts.back(), tp, trace, accounting::OverheadReason::discarded);
      co_await respond_error(r, ds, *blocked);
      co_return AttemptResult{AttemptEnd::served, {}};
    }
    r.status = static_cast<unsigned>(http_status_of(blocked->kind));
    r.error = *blocked;
    close_books(r);
    const bool ok = co_await ds.write(stream_error_event(*blocked));
    if (ok) co_await ds.end_stream();
    co_return AttemptResult{AttemptEnd::served, {}};
  }
  if (!failure) {
    close_books(r);
    std::string tail;
    if (!r.cost_text.empty()) tail = ": x-bulwark-cost-usd " + r.cost_text + "\n\n";
    tail += "data: [DONE]\n\n";
    bool ok = co_await ds.write(tail);
    if (ok) ok = co_await ds.end_stream();
    if (!ok) r.client_gone = true;
    co_return AttemptResult{AttemptEnd::served, {}};
  }
  if (!committed) co_return AttemptResult{AttemptEnd::failed, std::move(*failure)};
  if (r.served == &tp && trace.record < r.attempts.size()) {
    r.attempts[trace.record].outcome = name_of(failure->kind);
  } else {
    trace.record = r.attempts.size();
    r.attempts.push_back({tp.target->id, name_of(failure->kind), Clock::now() - start});
  }
  // run_attempts continues on a prefill target or ends the stream with an error event.
  co_return AttemptResult{AttemptEnd::failed_after_commit, std::move(*failure)};
}

// The caller already has part of the answer and no target can finish it: say plainly
// that it is incomplete, never [DONE].
asio::awaitable<void> end_stream_with_error(Request& r, Downstream& ds, const Error& e) {
  r.status = static_cast<unsigned>(http_status_of(e.kind));
  r.error = e;
  close_books(r);  // billed as served so far, estimated when the usage never came
  const bool ok = co_await ds.write(stream_error_event(e));
  if (ok) co_await ds.end_stream();
}

// The request that continues a broken stream on a prefill target: the caller's messages
// and, last, the assistant text relayed so far.
Status prepare_continuation(Request& r) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(r.chat.body, ec);
  if (ec || !doc.is_object()) return std::unexpected(Error::gateway(ErrorKind::internal, "cannot re-read the request body"));
  boost::json::value* messages = doc.as_object().if_contains("messages");
  if (!messages || !messages->is_array()) return std::unexpected(Error::gateway(ErrorKind::internal, "request without messages"));
  boost::json::object prefill;
  prefill["role"] = "assistant";
  prefill["content"] = r.answered_text;
  messages->as_array().emplace_back(std::move(prefill));
  auto chat = api::openai::decode_chat_request(boost::json::serialize(doc));
  if (!chat) return std::unexpected(chat.error());
  chat->include_usage = r.chat.include_usage;
  r.continuation = std::move(*chat);
  return {};
}

std::string summarize(const std::vector<AttemptRecord>& attempts, const std::vector<Error>& errors) {
  std::vector<const AttemptRecord*> made;
  for (const AttemptRecord& a : attempts)
    if (a.counted && a.outcome != kHedgeCancelled) made.push_back(&a);
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

void add_candidates(std::vector<Candidate>& out, const ModelPlan& mp, Random& random, std::uint64_t tokens_needed) {
  for (const TargetPlan* tp : order_targets(mp, random, tokens_needed)) out.push_back({&mp, tp});
}

// Waits for a retry's delay, never past the request's deadline.
asio::awaitable<void> wait_for_retry(Worker& w, Clock::time_point until) {
  asio::steady_timer timer(w.executor);
  timer.expires_at(until);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
}

// One attempt on one target, run by run_attempts (alone, or as one of two racing lanes
// when hedging): what it needs to book its outcome afterwards.
struct LaneRun {
  std::size_t index = 0;  // into the request's candidates
  res::CallPermit permit;
  Clock::time_point started{};
  Clock::duration took{};
  AttemptResult result;
  bool verdict_recorded = false;  // a plain answer's success is recorded before it is sent
  AttemptTrace trace;  // copied from the request when the attempt ended
};

asio::awaitable<void> run_lane(Request& r, Worker& w, Downstream& ds, const Candidate& c, LaneRun& run, Lane lane) {
  const TargetPlan& tp = *c.target;
  run.started = Clock::now();
  // on_served runs before a plain answer goes out: the breaker must hear of a success
  // (say, a half-open probe's) before the caller can send its next request.
  const std::function<void(Clock::duration)> on_served = [&run, &tp](Clock::duration upstream_took) {
    run.permit.record(res::FailureClass::success, upstream_took);
    tp.health->latency->record(upstream_took);
    tp.health->first_token->record(upstream_took);
    run.verdict_recorded = true;
  };
  {
    const router::TargetStats::InFlight in_flight(*tp.stats);  // for least-in-flight and P2C
    if (r.chat.stream) run.result = co_await attempt_stream(r, w, *c.model, tp, ds, lane);
    else run.result = co_await attempt_unary(r, w, *c.model, tp, ds, on_served, lane);
  }
  r.active[lane.slot] = nullptr;  // whatever path ended the attempt, its connection is gone or pooled
  run.trace = r.trace[lane.slot];
  run.took = Clock::now() - run.started;
  const AttemptEnd end = run.result.end;
  if (end == AttemptEnd::served) tp.stats->record_latency(run.took);
  else if (end == AttemptEnd::failed || end == AttemptEnd::failed_after_commit) {
    if (!is_callers_fault(run.result.error.kind)) tp.stats->record_failure(run.took);
  }
  const std::string_view outcome = end == AttemptEnd::served        ? std::string_view("ok")
                                   : end == AttemptEnd::cancelled   ? kHedgeCancelled
                                   : end == AttemptEnd::client_gone ? std::string_view("client_gone")
                                                                    : name_of(run.result.error.kind);
  w.metrics.inc(telemetry::CounterId::upstream_attempts, telemetry::label_key({tp.target->id, outcome}));
  w.metrics.observe(telemetry::HistogramId::upstream_duration, tp.target->id, seconds(run.took));
}

// Books a failed attempt: its breaker's verdict, the attempt log, the error list.
void book_failure(Request& r, const TargetPlan& tp, LaneRun& run, std::vector<Error>& errors) {
  run.permit.record(res::classify(run.result.error), run.took);
  r.attempts.push_back({tp.target->id, name_of(run.result.error.kind), run.took});
  if (run.trace.accepted) charge_overhead(r.attempts.back(), tp, run.trace, failure_reason(run.result.error.kind));
  log::warn("upstream_attempt_failed", {{"request_id", r.in.request_id},
                                        {"target", tp.target->id},
                                        {"error", name_of(run.result.error.kind)},
                                        {"upstream_status", run.result.error.upstream_status},
                                        {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(run.took).count()}});
  errors.push_back(std::move(run.result.error));
}

// The attempt that lost a hedge race: it says nothing about its target's health, unless
// it had already been slower than the breaker's slow-call duration. What the provider
// charges for it was booked as overhead when it was cancelled (claim).
void book_cancelled(const TargetPlan& tp, LaneRun& run) {
  if (run.took >= tp.health->breaker->policy().slow_call_duration) run.permit.record(res::FailureClass::success, run.took);
  else run.permit.release();
}

// Phases 7-9 with hedging: runs the attempt on cands[lanes[0].index]; if it has no first
// token after the hedge delay, starts a second on the next allowed, healthy target (within
// the primary's hedge budget). The first to produce a token serves; the other is
// cancelled. Returns the lane run_attempts goes on with: the winner, else the attempt
// that finished last. The other lane's outcome is booked here (its failure goes into
// `errors` before the returned one's).
asio::awaitable<int> race_attempts(Request& r, Worker& w, Downstream& ds, const std::vector<Candidate>& cands,
                                   const FailoverFilter& filter, std::array<LaneRun, 2>& lanes, std::vector<Error>& errors) {
  using namespace asio::experimental::awaitable_operators;
  const Candidate primary = cands[lanes[0].index];
  const TargetHealth& health = *primary.target->health;
  const config::HedgeSettings& hs = primary.model->model->resilience.hedge;
  Race race;
  race.target[0] = primary.target;
  race.started[0] = Clock::now();
  race.running[0] = true;
  bool hedged = false;
  int last_done = 0;
  // A lane that fails while the other still runs is booked at once, so that the attempt
  // log keeps the order of events (the other lane's answer lists it).
  std::array<bool, 2> booked{};
  const auto finished = [&](int lane) {
    race.running[lane] = false;
    last_done = lane;
    if (lanes[lane].result.end == AttemptEnd::failed && race.winner < 0 && race.running[1 - lane]) {
      book_failure(r, *cands[lanes[lane].index].target, lanes[lane], errors);
      booked[lane] = true;
    }
  };
  asio::steady_timer timer(w.executor);
  timer.expires_after(hedge_delay(hs, health));

  auto first = [&]() -> asio::awaitable<void> {
    co_await run_lane(r, w, ds, primary, lanes[0], Lane{0, &race});
    finished(0);
    timer.cancel();  // no hedge is needed any more (the second lane, if running, goes on)
  };
  auto second = [&]() -> asio::awaitable<void> {
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
    if (!race.running[0] || race.winner >= 0 || r.client_gone || Clock::now() >= r.deadline) co_return;
    std::size_t j = next_allowed(cands, lanes[0].index + 1, filter);
    std::optional<res::CallPermit> permit;
    for (; j < cands.size(); j = next_allowed(cands, j + 1, filter)) {
      if (cands[j].target == primary.target) continue;
      if (auto p = cands[j].target->health->breaker->try_acquire()) {
        permit = std::move(*p);
        break;
      }
    }
    if (!permit) co_return;  // no other healthy target to hedge on
    if (!health.hedge_budget->try_acquire()) {
      health.counters->hedges_refused.fetch_add(1, std::memory_order_relaxed);
      co_return;  // the unused permit is released: no call was made
    }
    hedged = true;
    health.counters->hedges.fetch_add(1, std::memory_order_relaxed);
    log::info("hedge_started", {{"request_id", r.in.request_id},
                                {"primary", primary.target->target->id},
                                {"hedge", cands[j].target->target->id},
                                {"after_ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - race.started[0]).count()}});
    cands[j].target->health->budget->record_request();
    lanes[1].index = j;
    lanes[1].permit = std::move(*permit);
    race.target[1] = cands[j].target;
    race.started[1] = Clock::now();
    race.running[1] = true;
    co_await run_lane(r, w, ds, cands[j], lanes[1], Lane{1, &race});
    finished(1);
  };
  co_await (first() && second());

  if (!hedged) co_return 0;
  const int reported = race.winner >= 0 ? race.winner : last_done;
  const int other = 1 - reported;
  LaneRun& o = lanes[other];
  const TargetPlan& otp = *cands[o.index].target;
  if (!booked[other]) {
    switch (o.result.end) {
      case AttemptEnd::cancelled: book_cancelled(otp, o); break;
      case AttemptEnd::failed: book_failure(r, otp, o, errors); break;
      default: o.permit.release(); break;  // client_gone: says nothing about the target
    }
  }
  if (race.winner == 1) r.upstream_time += race.started[1] - race.started[0];  // the wait on the first attempt
  co_return reported;
}

// Phases 6 to 9: the attempts, in order, until one serves the caller.
asio::awaitable<void> run_attempts(Request& r, Worker& w, Downstream& ds) {
  std::vector<Error> errors;
  const res::RetryPolicy& policy = r.route->retry;
  res::RetryState state(policy, r.deadline);
  std::vector<Candidate> cands;
  const auto tokens_needed = static_cast<std::uint64_t>(estimate_input_tokens(r) + r.chat.max_tokens.value_or(0));
  for (const ModelPlan& mp : r.route->chain) add_candidates(cands, mp, w.random, tokens_needed);
  FailoverFilter filter;
  bool content_fallback_used = false;
  bool hedge_tried = false;  // at most one hedge per request
  std::optional<Duration> soonest_half_open;  // of the breakers that refused

  for (std::size_t i = next_allowed(cands, 0, filter); i < cands.size();) {
    std::size_t next = cands.size();
    bool recorded_request = false;
    for (;;) {  // attempts on this target
      if (Clock::now() >= r.deadline) {
        errors.push_back(Error::gateway(ErrorKind::total_timeout, "the request's total timeout passed"));
        goto exhausted;
      }
      std::array<LaneRun, 2> lanes;
      int lane = 0;
      {
        const TargetPlan& first = *cands[i].target;
        auto permit = first.health->breaker->try_acquire();
        if (!permit) {
          // Refused without a request: not an attempt, move on.
          r.attempts.push_back({first.target->id, "breaker_open", {}, false});
          first.health->counters->breaker_rejections.fetch_add(1, std::memory_order_relaxed);
          if (permit.error().retry_in && (!soonest_half_open || *permit.error().retry_in < *soonest_half_open))
            soonest_half_open = *permit.error().retry_in;
          next = next_allowed(cands, i + 1, filter);
          break;
        }
        if (!recorded_request) {
          first.health->budget->record_request();
          recorded_request = true;
        }
        lanes[0].index = i;
        lanes[0].permit = std::move(*permit);
        if (!hedge_tried && !r.continuation && cands[i].model->model->resilience.hedge.enabled) {
          hedge_tried = true;
          lane = co_await race_attempts(r, w, ds, cands, filter, lanes, errors);
          if (lanes[1].started != Clock::time_point{}) state.count_extra_attempt();
        } else {
          co_await run_lane(r, w, ds, cands[i], lanes[0], Lane{});
        }
      }
      // The rest concerns the attempt that answered, or else failed last: after a hedge
      // that may be the second target, which becomes the current one (the first target's
      // outcome is booked). Failover goes on after whichever of the two comes later.
      LaneRun& run = lanes[lane];
      const std::size_t tried_upto = std::max(lanes[0].index, lanes[1].index);
      i = run.index;
      const Candidate c = cands[i];
      const TargetPlan& tp = *c.target;
      const TargetHealth& health = *tp.health;
      AttemptResult& result = run.result;
      switch (result.end) {
        case AttemptEnd::served:
          if (!run.verdict_recorded) {
            run.permit.record(res::FailureClass::success, run.took);
            health.latency->record(run.took);
          }
          co_return;
        case AttemptEnd::failed_after_commit: {
          run.permit.record(res::classify(result.error), run.took);
          // Stream failover after the first token: a later target that supports prefill
          // finishes the answer from where it broke; otherwise the stream ends in error.
          std::size_t k = i + 1;
          while (k < cands.size() && !cands[k].target->target->prefill) ++k;
          if (k < cands.size() && r.track_text && !r.client_gone && Clock::now() < r.deadline &&
              errors.size() + 1 < policy.max_attempts_per_request) {
            if (auto ok = prepare_continuation(r); ok) {
              // The broken attempt is overhead; the caller pays for the continuation, whose
              // prompt holds the text relayed so far (see docs/governance.md).
              if (run.trace.record < r.attempts.size())
                charge_overhead(r.attempts[run.trace.record], tp, run.trace, accounting::OverheadReason::stream_broken);
              r.output_bytes = 0;
              r.usage = {};
              log::warn("stream_continued", {{"request_id", r.in.request_id},
                                             {"from", tp.target->id},
                                             {"to", cands[k].target->target->id},
                                             {"error", name_of(result.error.kind)},
                                             {"prefill_bytes", r.answered_text.size()}});
              health.counters->failovers.fetch_add(1, std::memory_order_relaxed);
              errors.push_back(std::move(result.error));
              i = k;
              goto next_candidate;
            }
          }
          co_await end_stream_with_error(r, ds, result.error);
          co_return;
        }
        case AttemptEnd::client_gone:
        case AttemptEnd::cancelled:  // not reported for the lane run_attempts goes on with
          run.permit.release();  // says nothing about the target
          r.status = 499;
          co_return;
        case AttemptEnd::failed:
          break;
      }
      const res::FailureClass cls = res::classify(result.error);
      book_failure(r, tp, run, errors);
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
            if (const RoutePlan* route = r.runtime->route(name)) add_candidates(alt, route->chain.front(), w.random, tokens_needed);
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
        const std::size_t after = next_allowed(cands, std::max(i, tried_upto) + 1, filter);
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

// While a stream waits for its first token (slow model, retries, failover), sends the
// response head and then an SSE comment every `every`, so idle-timeouts of proxies and
// load balancers between us and the caller do not cut it. Never completes on its own
// (completing would cancel the attempts it races with); stops writing once the relay
// has the stream.
asio::awaitable<void> keep_alive(Request& r, Worker& w, Downstream& ds, Clock::duration every) {
  asio::steady_timer timer(w.executor);
  for (;;) {
    timer.expires_after(every);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // cancelled: the request is over
    if (r.first_token || r.client_gone) continue;
    r.keepalive_busy = true;
    bool ok = true;
    if (!r.head_sent) {
      r.head_sent = true;
      const auto h = response_headers(r);
      ok = co_await ds.begin_stream(200, as_views(h), "text/event-stream");
    }
    if (ok) ok = co_await ds.write(": keep-alive\n\n");
    r.keepalive_busy = false;
    if (!ok) {
      r.client_gone = true;
      close_active(r);
    }
  }
}

// Races the attempts against the caller hanging up: a hang-up closes the live upstream
// connection, which ends the upstream request at once instead of generating for nobody.
asio::awaitable<void> watch_hangup(Request& r, Downstream& ds) {
  const bool hung_up = co_await ds.wait_hangup();
  if (!hung_up) co_return;
  r.client_gone = true;
  close_active(r);
}

// 10. account & log: metrics and the access log line.
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
  std::string id(32, '\0');
  put_hex16(id.data(), random.next());
  put_hex16(id.data() + 16, ++requests);
  return id;
}

asio::awaitable<void> handle_chat_completion(std::shared_ptr<const Runtime> runtime, Worker& worker, IncomingRequest in,
                                             Downstream& downstream) {
  using namespace asio::experimental::awaitable_operators;
  Request r;
  r.in = std::move(in);
  r.runtime = runtime.get();
  r.gov = runtime->governance();
  worker.metrics.add(telemetry::GaugeId::in_flight, 1);

  // Each phase either passes the request on or ends it with an answer (phase numbers as
  // in the comment at the top of this file).
  std::optional<Error> refused;
  // 2. authenticate first: a caller without a valid key learns nothing about its body,
  // and a flood of them costs no JSON parsing
  if (auto ok = authenticate(r); !ok) refused = std::move(ok.error());
  // 1. decode
  if (!refused) {
    auto chat = api::openai::decode_chat_request(std::move(r.in.body));
    if (!chat) refused = std::move(chat.error());
    else r.chat = std::move(*chat);
  }
  // 3. route
  if (!refused)
    if (auto ok = route_request(r, worker); !ok) refused = std::move(ok.error());
  // 4. admit
  if (!refused)
    if (auto ok = admit(r); !ok) refused = std::move(ok.error());
  // 5. guard
  if (!refused)
    if (auto ok = guard_input(r); !ok) refused = std::move(ok.error());

  // The caller's own time limits (x-bulwark-timeout, x-bulwark-first-token-timeout) may
  // only shorten the configured ones.
  if (!refused) {
    r.deadline = r.in.received + r.route->timeouts.total;
    if (auto cap = timeout_override(r, "x-bulwark-timeout"); !cap) refused = std::move(cap.error());
    else if (*cap) r.deadline = std::min(r.deadline, r.in.received + **cap);
    if (auto cap = timeout_override(r, "x-bulwark-first-token-timeout"); !cap) refused = std::move(cap.error());
    else r.first_token_cap = *cap;
    if (r.chat.stream)
      for (const ModelPlan& mp : r.route->chain)
        for (const TargetPlan& tp : mp.targets) r.track_text = r.track_text || tp.target->prefill;
  }
  if (refused && (refused->kind == ErrorKind::unauthenticated || refused->kind == ErrorKind::permission_denied ||
                  refused->kind == ErrorKind::rate_limited || refused->kind == ErrorKind::budget_exceeded))
    log::info("request_refused", {{"request_id", r.in.request_id},
                                  {"error", name_of(refused->kind)},
                                  {"key_id", r.caller.key_id()},
                                  {"model", r.chat.model}});
  if (refused) {
    co_await respond_error(r, downstream, *refused);
  } else {
    // 6-9. attempts; a streamed answer is also raced against the caller hanging up, and
    // kept alive while its first token is slow to come
    const auto keepalive = runtime->config().limits.stream_keepalive;
    if (r.chat.stream && keepalive.count() > 0)
      co_await (run_attempts(r, worker, downstream) || watch_hangup(r, downstream) ||
                keep_alive(r, worker, downstream, std::chrono::duration_cast<Clock::duration>(keepalive)));
    else if (r.chat.stream) co_await (run_attempts(r, worker, downstream) || watch_hangup(r, downstream));
    else co_await run_attempts(r, worker, downstream);
  }
  // 10. account & log (the books are normally closed before the last byte; a caller
  // that hung up is accounted here)
  close_books(r);
  account(r, worker, Clock::now());
  worker.metrics.add(telemetry::GaugeId::in_flight, -1);
}

}  // namespace bulwark::pipeline
