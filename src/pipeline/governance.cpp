#include "pipeline/governance.hpp"

#include <cstdlib>
#include <filesystem>

#include "core/thread_name.hpp"
#include "storage/sqlite_store.hpp"
#include "telemetry/log.hpp"

namespace bulwark::pipeline {

namespace fs = std::filesystem;

Result<std::string> locate_default_prices() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("BULWARK_PRICES"); env != nullptr && *env != '\0') candidates.emplace_back(env);
  std::error_code ec;
  if (const auto exe = fs::read_symlink("/proc/self/exe", ec); !ec)
    candidates.push_back(exe.parent_path() / ".." / "share" / "bulwark" / "pricing" / "default-prices.yaml");
#ifdef BULWARK_SOURCE_DATA_DIR
  candidates.push_back(fs::path(BULWARK_SOURCE_DATA_DIR) / "pricing" / "default-prices.yaml");
#endif
  std::string tried;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p, ec)) return p.lexically_normal().string();
    tried += (tried.empty() ? "" : ", ") + p.string();
  }
  return std::unexpected(Error::gateway(ErrorKind::internal, "default price file not found; tried " + tried));
}

Result<std::unique_ptr<Governance>> Governance::open(const config::GovernanceSettings& settings, const Clock& clock) {
  std::unique_ptr<Governance> g(new Governance(clock));
  const fs::path db(settings.database);
  g->database_ = settings.database;
  std::error_code ec;
  if (db.has_parent_path()) fs::create_directories(db.parent_path(), ec);
  if (ec)
    return std::unexpected(Error::gateway(ErrorKind::internal, "cannot create " + db.parent_path().string() + ": " + ec.message()));
  storage::SqliteOptions options;
  options.path = db;
  auto store = storage::SqliteStore::open(options);
  if (!store) return std::unexpected(store.error());
  g->store_ = std::move(*store);

  // The ledger first: replaying a journal left by a killed process may add audit records
  // the audit chain must continue from.
  accounting::LedgerOptions lo;
  lo.journal_dir = settings.journal_dir.empty() ? (db.has_parent_path() ? db.parent_path() : fs::path(".")) : fs::path(settings.journal_dir);
  lo.journal_segment_bytes = settings.journal_segment;
  auto ledger = accounting::Ledger::open(*g->store_, lo);
  if (!ledger) return std::unexpected(ledger.error());
  g->ledger_ = std::move(*ledger);
  if (const auto replayed = g->ledger_->stats().replayed; replayed > 0)
    log::warn("ledger_replayed", {{"records", replayed}, {"reason", "journal left by a previous process"}});

  accounting::AuditOptions ao;
  if (settings.audit_content == "hashed") ao.content = accounting::ContentMode::hashed;
  else if (settings.audit_content == "redacted") ao.content = accounting::ContentMode::redacted;
  else if (settings.audit_content == "full") ao.content = accounting::ContentMode::full;
  auto audit = accounting::AuditTrail::open(*g->ledger_, clock, std::move(ao));
  if (!audit) return std::unexpected(audit.error());
  g->audit_ = std::move(*audit);

  g->keys_ = std::make_unique<auth::KeyService>(*g->store_, clock);
  g->cache_ = std::make_unique<auth::KeyCache>(*g->store_, clock);
  if (auto ok = g->cache_->refresh(); !ok) return std::unexpected(ok.error());
  g->keys_->on_change([cache = g->cache_.get()] {
    if (auto ok = cache->refresh(); !ok) log::error("key_cache_refresh_failed", {{"error", ok.error().message}});
  });

  // Budgets start from the spend already recorded this period, read before traffic.
  g->budgets_ = std::make_unique<accounting::BudgetTracker>(clock, g->store_.get());
  std::vector<accounting::BudgetSubject> subjects;  // views into keys and teams below
  const auto keys = g->store_->list_keys(std::nullopt);
  if (keys) {
    for (const auto& k : *keys)
      if (k.limits.budget_nano_usd && !k.revoked)
        subjects.push_back({storage::SpendScope::key, k.id, *k.limits.budget_nano_usd, k.limits.budget_period});
  }
  const auto teams = g->store_->list_teams();
  if (teams) {
    for (const auto& t : *teams)
      if (t.limits.budget_nano_usd) subjects.push_back({storage::SpendScope::team, t.id, *t.limits.budget_nano_usd, t.limits.budget_period});
  }
  if (auto ok = g->budgets_->recover(subjects); !ok) return std::unexpected(ok.error());

  g->refresher_ = std::thread([raw = g.get(), every = settings.key_refresh] {
    name_this_thread("bw-key-refresh");
    raw->refresh_loop(every);
  });
  log::info("governance_open", {{"database", settings.database},
                                {"keys", g->cache_->size()},
                                {"auth", settings.auth == config::AuthMode::keys ? "keys" : "keyless"}});
  return g;
}

// Picks up key changes made by other processes (the CLI, another instance).
void Governance::refresh_loop(std::chrono::milliseconds every) {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, every, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (auto r = cache_->refresh_if_changed(); !r) log::warn("key_cache_refresh_failed", {{"error", r.error().message}});
    lock.lock();
  }
}

void Governance::install_metrics(telemetry::Registry& registry) {
  registry.add_collector([this](std::string& out) {
    const accounting::LedgerStats s = ledger_->stats();
    auto counter = [&out](std::string_view name, std::string_view help, std::uint64_t v) {
      telemetry::append_family(out, name, help, "counter", v);
    };
    counter("bulwark_ledger_recorded_total", "Spend and audit records accepted by the ledger.", s.recorded);
    counter("bulwark_ledger_committed_total", "Records committed to the database.", s.committed);
    counter("bulwark_ledger_rejected_total", "Records refused (queue or journal full): lost accounting.", s.rejected);
    counter("bulwark_ledger_batches_total", "Database transactions the ledger writer committed.", s.batches);
    counter("bulwark_ledger_commit_failures_total", "Failed ledger commits (retried).", s.commit_failures);
    telemetry::append_family(out, "bulwark_virtual_keys", "Virtual keys in the in-memory cache.", "gauge", cache_->size());
  });
}

void Governance::close() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (ledger_) ledger_->close();
}

Governance::~Governance() { close(); }

}  // namespace bulwark::pipeline
