// Request-path costs of governance: key lookup, rate limits, budget, pricing, ledger, audit.
// Registrations only; the bench executable provides main.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "accounting/audit.hpp"
#include "accounting/budget.hpp"
#include "accounting/ledger.hpp"
#include "accounting/pricing.hpp"
#include "accounting/rate_limiter.hpp"
#include "auth/key_cache.hpp"
#include "auth/key_service.hpp"
#include "ledger_fixture.hpp"
#include "storage/sqlite_store.hpp"

namespace {

using namespace bulwark;

using bench::ScratchDir;

// arg 0: every request resolved in full (hash and probe); 1: through a connection's memo,
// as keep-alive requests presenting the same secret are.
void BM_KeyCacheResolve(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db", .synchronous = storage::Synchronous::normal});
  if (!store) return state.SkipWithError("store");
  auth::KeyService keys(**store, SteadyClock::instance());
  std::string secret;
  for (int i = 0; i < 1000; ++i) {
    auth::KeySpec spec;
    spec.name = "k" + std::to_string(i);
    auto k = keys.create(spec);
    if (!k) return state.SkipWithError("create");
    if (i == 500) secret = k->secret;
  }
  auth::KeyCache cache(**store, SteadyClock::instance());
  if (!cache.refresh()) return state.SkipWithError("refresh");
  auth::KeyMemo memo;
  const bool memoised = state.range(0) != 0;
  for (auto _ : state) {
    auto r = memoised ? cache.resolve(secret, memo) : cache.resolve(secret);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_KeyCacheResolve)->ArgName("memo")->Arg(0)->Arg(1);

void BM_GcraAcquire(benchmark::State& state) {
  static accounting::Gcra g(1'000'000'000, std::chrono::minutes(1));
  for (auto _ : state) {
    benchmark::DoNotOptimize(g.acquire(SteadyClock::instance().now()));
  }
}
BENCHMARK(BM_GcraAcquire)->Threads(1)->Threads(2);

void BM_RateLimiterAdmitKeyAndTeam(benchmark::State& state) {
  accounting::RateLimiter rl(SteadyClock::instance());
  const accounting::RateSubject s[] = {{"key:key_0123456789abcdef0123456789abcdef", 1'000'000'000, 1'000'000'000},
                                       {"team:team_0123456789abcdef", 1'000'000'000, 1'000'000'000}};
  for (auto _ : state) {
    auto a = rl.admit(s, 1000);
    rl.settle_tokens(a, 800);
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_RateLimiterAdmitKeyAndTeam);

void BM_BudgetReserveSettle(benchmark::State& state) {
  accounting::BudgetTracker b(SteadyClock::instance());
  const accounting::BudgetSubject s[] = {
      {storage::SpendScope::key, "key_0123456789abcdef0123456789abcdef", INT64_MAX / 2, storage::BudgetPeriod::month},
      {storage::SpendScope::team, "team_0123456789abcdef", INT64_MAX / 2, storage::BudgetPeriod::month}};
  for (auto _ : state) {
    auto r = b.reserve(s, 10'000);
    b.settle(*r, 7'000);
  }
}
BENCHMARK(BM_BudgetReserveSettle);

void BM_PricingFindAndCost(benchmark::State& state) {
  accounting::PriceTable t;
  t.set("gpt-4o", {2'500'000'000, 10'000'000'000, 1'250'000'000, 2'500'000'000});
  t.set("anthropic.claude-sonnet-4-20250514-v1:0", {3'000'000'000, 15'000'000'000, 300'000'000, 3'750'000'000});
  const accounting::Usage u{.input_tokens = 1200, .output_tokens = 300, .cached_input_tokens = 4000};
  for (auto _ : state) {
    auto p = t.find("us.anthropic.claude-sonnet-4-20250514-v1:0");
    benchmark::DoNotOptimize(accounting::cost_of(*p, u));
  }
}
BENCHMARK(BM_PricingFindAndCost);

storage::SpendEntry sample_entry(int i) {
  storage::SpendEntry e;
  e.request_id = "req-" + std::to_string(i);
  e.time = 1'736'899'200'000 + i;
  e.key_id = "key_0123456789abcdef0123456789abcdef";
  e.team_id = "team_0123456789abcdef";
  e.model = "gpt-4o";
  e.target = "openai-east";
  e.input_tokens = 1200;
  e.output_tokens = 300;
  e.cost_nano_usd = 6'000'000;
  e.status = 200;
  return e;
}

// What the request path pays: journal copy + enqueue. The writer commits behind it.
void BM_LedgerRecord(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db"});
  if (!store) return state.SkipWithError("store");
  const accounting::LedgerOptions o = bench::loop_ledger_options(dir.path);
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  int i = 0;
  for (auto _ : state) {
    if (!(*ledger)->record(sample_entry(i++))) state.SkipWithError("record");
  }
  (*ledger)->close();
}
BENCHMARK(BM_LedgerRecord);

// One record then wait for its commit (synchronous=FULL: includes the WAL fsync). This is
// the window a power loss could take without fsync_journal.
void BM_LedgerRecordToCommit(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db"});
  if (!store) return state.SkipWithError("store");
  accounting::LedgerOptions o;
  o.journal_dir = dir.path / "journal";
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  int i = 0;
  for (auto _ : state) {
    if (!(*ledger)->record(sample_entry(i++)) || !(*ledger)->flush()) state.SkipWithError("record");
  }
}
BENCHMARK(BM_LedgerRecordToCommit)->UseRealTime()->Unit(benchmark::kMicrosecond);

// A tight loop appends far faster than the writer commits (the writer does the SHA-256
// and SQLite work), so the journal would fill: let it drain, untimed, now and then.
void drain(benchmark::State& state, accounting::Ledger& ledger) {
  state.PauseTiming();
  if (!ledger.flush()) state.SkipWithError("flush");
  state.ResumeTiming();
}

void BM_AuditAppend(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db"});
  if (!store) return state.SkipWithError("store");
  const accounting::LedgerOptions o = bench::loop_ledger_options(dir.path);
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  auto trail = accounting::AuditTrail::open(**ledger, SteadyClock::instance());
  if (!trail) return state.SkipWithError("audit");
  accounting::AuditEvent e;
  e.request_id = "req-1";
  e.key_id = "key_0123456789abcdef0123456789abcdef";
  e.team_id = "team_0123456789abcdef";
  e.model = "gpt-4o";
  e.target = "openai-east";
  e.attempts = {{"openai-east", "ok", 800}};
  e.policy_decisions = {"allow"};
  e.tokens = {.input_tokens = 1200, .output_tokens = 300};
  e.status = 200;
  int n = 0;
  for (auto _ : state) {
    if (!(*trail)->append(e)) state.SkipWithError("append");
    if (++n % 50'000 == 0) drain(state, **ledger);
  }
  (*ledger)->close();
}
BENCHMARK(BM_AuditAppend);

accounting::AuditEvent sample_event(int i) {
  accounting::AuditEvent e;
  e.request_id = "req-" + std::to_string(i);
  e.key_id = "key_0123456789abcdef0123456789abcdef";
  e.team_id = "team_0123456789abcdef";
  e.model = "gpt-4o";
  e.target = "openai-east";
  e.attempts = {{"openai-east", "ok", 800}};
  e.policy_decisions = {"input:redacted pii.email=redactx1"};
  e.tokens = {.input_tokens = 1200, .output_tokens = 300};
  e.cost_nano_usd = 6'000'000;
  e.latency_ms = 12;
  e.status = 200;
  return e;
}

// What a governed request's accounting costs the request path: its record's fields (audit
// and the caller's spend) as one journal line, from views as the pipeline hands them over.
void BM_AuditAppendWithSpend(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db"});
  if (!store) return state.SkipWithError("store");
  const accounting::LedgerOptions o = bench::loop_ledger_options(dir.path);
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  auto trail = accounting::AuditTrail::open(**ledger, SteadyClock::instance());
  if (!trail) return state.SkipWithError("audit");
  const accounting::AuditEvent e = sample_event(1);
  std::vector<accounting::AttemptView> attempts;
  accounting::RequestRecord r = e.view(attempts, 0);
  r.billed = true;
  int n = 0;
  for (auto _ : state) {
    if (!(*trail)->append(r)) state.SkipWithError("append");
    if (++n % 50'000 == 0) drain(state, **ledger);
  }
  (*ledger)->close();
}
BENCHMARK(BM_AuditAppendWithSpend);

// The whole accounting cost of a request, request path plus writer thread (process CPU
// time): batches of range(0) request lines (spend + audit), each flushed, i.e. decoded,
// chained (SHA-256), inserted and committed with synchronous=FULL. Per record.
void BM_LedgerRequestThroughWriter(benchmark::State& state) {
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db"});
  if (!store) return state.SkipWithError("store");
  accounting::LedgerOptions o;
  o.journal_dir = dir.path / "journal";
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  auto trail = accounting::AuditTrail::open(**ledger, SteadyClock::instance());
  if (!trail) return state.SkipWithError("audit");
  const auto batch = static_cast<int>(state.range(0));
  const accounting::AuditEvent e = sample_event(1);
  std::vector<accounting::AttemptView> attempts;
  accounting::RequestRecord r = e.view(attempts, 0);
  r.billed = true;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      if (!(*trail)->append(r)) state.SkipWithError("append");
    }
    if (!(*ledger)->flush()) state.SkipWithError("flush");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  (*ledger)->close();
}
BENCHMARK(BM_LedgerRequestThroughWriter)->Arg(20)->Arg(200)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

}  // namespace
