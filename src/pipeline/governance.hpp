#pragma once
// The process-wide governance services: the store, the key cache, rate limiters, budgets,
// the spend ledger and the audit trail. Opened once at start and kept across reloads
// (their state is the point: buckets, reservations and the audit chain must not restart
// when the config does). What a reload may change (prices, policy profiles, the auth
// mode) lives in the Runtime instead.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "accounting/audit.hpp"
#include "accounting/budget.hpp"
#include "accounting/ledger.hpp"
#include "accounting/rate_limiter.hpp"
#include "auth/key_cache.hpp"
#include "auth/key_service.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/store.hpp"
#include "telemetry/metrics.hpp"

namespace bulwark::pipeline {

class Governance {
 public:
  // Opens (creating and migrating) the database, replays the spend journal of a previous
  // process, loads the keys and starts the key-refresh thread.
  static Result<std::unique_ptr<Governance>> open(const config::GovernanceSettings& settings,
                                                  const Clock& clock = SteadyClock::instance());
  ~Governance();
  Governance(const Governance&) = delete;
  Governance& operator=(const Governance&) = delete;

  storage::Store& store() noexcept { return *store_; }
  auth::KeyService& keys() noexcept { return *keys_; }
  const auth::KeyCache& key_cache() const noexcept { return *cache_; }
  accounting::RateLimiter& rates() noexcept { return rates_; }
  accounting::ParallelLimiter& parallel() noexcept { return parallel_; }
  accounting::BudgetTracker& budgets() noexcept { return *budgets_; }
  accounting::Ledger& ledger() noexcept { return *ledger_; }
  accounting::AuditTrail& audit() noexcept { return *audit_; }
  const Clock& clock() const noexcept { return clock_; }
  const std::string& database() const noexcept { return database_; }

  // bulwark_ledger_* counters and the key cache size on /metrics.
  void install_metrics(telemetry::Registry& registry);

  // Commits everything recorded and stops the background threads. Idempotent.
  void close();

 private:
  explicit Governance(const Clock& clock) : clock_(clock), rates_(clock) {}
  void refresh_loop(std::chrono::milliseconds every);

  const Clock& clock_;
  std::string database_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<auth::KeyService> keys_;
  std::unique_ptr<auth::KeyCache> cache_;
  accounting::RateLimiter rates_;
  accounting::ParallelLimiter parallel_;
  std::unique_ptr<accounting::BudgetTracker> budgets_;
  std::unique_ptr<accounting::Ledger> ledger_;
  std::unique_ptr<accounting::AuditTrail> audit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread refresher_;
};

// Where the shipped price file is looked for: $BULWARK_PRICES, <exe>/../share/bulwark/
// pricing/, then the source tree's data/pricing/.
Result<std::string> locate_default_prices();

}  // namespace bulwark::pipeline
