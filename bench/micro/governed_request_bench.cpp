// Governance's whole per-request work on the worker, step by step as the pipeline runs it
// (pipeline/chat.cpp): resolve the key through the connection's memo, admit (model
// allow-list, key and team rates, key and team budget reservation), the policy's raw scan
// of bench/run.sh's request, its raw scan of bulwark-mock's answer, the cost, settling
// rates and budgets, and the request's journal line (audit record and spend entry).
// arg cold=0: a warm loop; cold=1: caches and branch predictors chilled before every
// request (bench/micro/cold.hpp), as a gateway at one connection finds them. The cold
// figure is the one to compare with bench/governance.sh's "governance adds".
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
#include "bench_bodies.hpp"
#include "cold.hpp"
#include "policy/evaluate.hpp"
#include "policy/profile.hpp"
#include "ledger_fixture.hpp"
#include "storage/sqlite_store.hpp"

namespace {

using namespace bulwark;

using bench::ScratchDir;
using bench::bench_profile;
const std::string& kRequest = bench::kBenchRequest;
const std::string& kAnswer = bench::kMockAnswer;

void BM_GovernedRequest(benchmark::State& state) {
  const bool cold = state.range(0) != 0;
  ScratchDir dir;
  auto store = storage::SqliteStore::open({.path = dir.path / "gov.db", .synchronous = storage::Synchronous::normal});
  if (!store) return state.SkipWithError("store");
  const Clock& clock = SteadyClock::instance();
  auth::KeyService keys(**store, clock);
  auth::TeamSpec team;
  team.id = "bench";
  team.name = "bench";
  team.limits.rpm = team.limits.tpm = 1'000'000'000;
  team.limits.budget_nano_usd = std::int64_t{1'000'000} * 1'000'000'000;
  if (!keys.create_team(team)) return state.SkipWithError("team");
  auth::KeySpec spec;
  spec.name = "bench";
  spec.team_id = "bench";
  spec.limits = team.limits;
  auto created = keys.create(spec);
  if (!created) return state.SkipWithError("key");
  auth::KeyCache cache(**store, clock);
  if (!cache.refresh()) return state.SkipWithError("refresh");
  const accounting::LedgerOptions o = bench::loop_ledger_options(dir.path);
  auto ledger = accounting::Ledger::open(**store, o);
  if (!ledger) return state.SkipWithError("ledger");
  auto trail = accounting::AuditTrail::open(**ledger, clock);
  if (!trail) return state.SkipWithError("audit");
  accounting::RateLimiter rates(clock);
  accounting::BudgetTracker budgets(clock);
  const policy::PolicyProfile profile = bench_profile();
  const accounting::ModelPrice price{150'000'000, 600'000'000, 75'000'000, 0};
  auth::KeyMemo memo;
  bench::Chill chill;
  std::int64_t n = 0;

  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      chill();
      state.ResumeTiming();
    }
    // authenticate
    auto key = cache.resolve(created->secret, memo);
    if (!key) return state.SkipWithError("resolve");
    const auth::ResolvedKey& k = **key;
    // admit
    if (!k.allows_model("bench")) return state.SkipWithError("model");
    const accounting::RateSubject rs[] = {{k.key_subject, k.key.limits.rpm, k.key.limits.tpm},
                                          {k.team_subject, k.team->limits.rpm, k.team->limits.tpm}};
    auto rate = rates.admit(rs, 40 + 16);
    const accounting::BudgetSubject bs[] = {
        {storage::SpendScope::key, k.key.id, *k.key.limits.budget_nano_usd, k.key.limits.budget_period},
        {storage::SpendScope::team, k.team->id, *k.team->limits.budget_nano_usd, k.team->limits.budget_period}};
    auto reservation = budgets.reserve(bs, accounting::max_cost(price, 80, 16));
    if (!rate.allowed || !reservation) return state.SkipWithError("admit");
    // guard the prompt, then (the upstream answers) the answer
    const policy::RequestFacts facts{"bench", 40, 16};
    if (!policy::evaluate_input_raw(profile, kRequest, facts)) return state.SkipWithError("input raw path");
    if (!policy::evaluate_output_raw(profile, kAnswer)) return state.SkipWithError("output raw path");
    // account
    const accounting::Usage usage{.input_tokens = 9, .output_tokens = 16};
    const accounting::Cost cost = accounting::cost_of(price, usage);
    rates.settle_tokens(rate, 25);
    budgets.settle(*reservation, cost.nano_usd);
    const std::string request_id = "bench-" + std::to_string(++n);
    const accounting::AttemptView attempts[] = {{"up:bench", "ok", 0}};
    accounting::RequestRecord r;
    r.time = storage::to_unix_millis(clock.wall());
    r.request_id = request_id;
    r.key_id = k.key.id;
    r.team_id = k.team->id;
    r.model = "bench";
    r.target = "up:bench";
    r.attempts = attempts;
    r.tokens = usage;
    r.cost_nano_usd = cost.nano_usd;
    r.status = 200;
    r.billed = true;
    if (!(*trail)->append(r)) return state.SkipWithError("append");
  }
  (*ledger)->close();
}
BENCHMARK(BM_GovernedRequest)->ArgName("cold")->Arg(0)->Arg(1);

}  // namespace
