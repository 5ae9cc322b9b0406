#pragma once
// The spend ledger and the writer that persists spend and audit records.
//
// record() never waits for the database. Under one short mutex it copies the entry, as
// one line, into an append-only journal segment (a memory-mapped file: the bytes are in
// the kernel's page cache at once, no system call, no fsync by default) and pushes it
// onto a bounded in-memory queue. A writer
// thread takes everything queued, commits it in one SQLite transaction, then zeroes
// the journal segment those entries were in. Two journal segments alternate so that
// appends never wait for a commit: at each take the writer switches new appends to the
// other segment.
//
// Durability promise:
//  - clean shutdown (close/destructor): everything recorded is committed.
//  - process crash or kill -9: nothing whose record() returned is lost; the journal is
//    in the page cache, and open() replays it (idempotent: entry ids and audit sequence
//    numbers are unique, duplicates are skipped).
//  - OS crash or power loss: committed batches survive (synchronous=FULL); entries not
//    yet committed (the last few milliseconds, bounded by one commit time) are lost
//    unless fsync_journal is set, which msyncs each record (much slower).
// The request path must call record() before sending the response's last byte.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "storage/store.hpp"

namespace bulwark::accounting {

struct LedgerOptions {
  std::filesystem::path journal_dir;  // created if missing; holds ledger-journal-{0,1}.log
  std::size_t queue_capacity = 65536;  // records beyond this are refused, not blocked on
  // Each of the two journal segments is a file of this size, preallocated and memory-
  // mapped. Records that would not fit before the next commit empties it are refused.
  std::size_t journal_segment_bytes = 32u << 20;
  bool fsync_journal = false;
  std::chrono::milliseconds retry_backoff{100};  // after a failed commit
  // Group commit: at most one transaction (and fsync) per interval under load. The journal
  // already makes recorded entries survive a crash, so this bounds only how stale the
  // database may be (reports, budgets recovered at start); 0 commits as soon as possible.
  std::chrono::milliseconds commit_interval{20};
};

struct LedgerStats {
  std::uint64_t recorded = 0;   // accepted by record/record_audit
  std::uint64_t committed = 0;  // of those, committed to the store
  std::uint64_t rejected = 0;   // refused (queue full, journal write failed, closed)
  std::uint64_t batches = 0;
  std::uint64_t replayed = 0;   // records found in the journal at open
  std::uint64_t commit_failures = 0;
};

class Ledger {
 public:
  // Replays any journal left by a previous process into the store, then starts the writer.
  static Result<std::unique_ptr<Ledger>> open(storage::Store& store, LedgerOptions options);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Assigns entry_id when empty. Fails (never blocks) when the queue is full or closed.
  Status record(storage::SpendEntry entry);
  // Used by AuditTrail: the same queue, journal and transactions as spend.
  Status record_audit(storage::AuditRow row);

  // Blocks until everything recorded before the call is committed (or a commit failed).
  Status flush();
  // Drains, commits, stops the writer and empties the journal. Idempotent.
  void close();

  LedgerStats stats() const;
  storage::Store& store() noexcept { return store_; }

  // Spend by key, team, model or UTC day over [from, to).
  Result<std::vector<storage::SpendAggregate>> report(const storage::SpendQuery& q) {
    return store_.spend_report(q);
  }

 private:
  Ledger(storage::Store& store, LedgerOptions options) : store_(store), options_(std::move(options)) {}
  Status replay();
  Status map_segments();
  Status append_line(const std::string& line, storage::SpendEntry* spend, storage::AuditRow* audit);
  void run();

  storage::Store& store_;
  LedgerOptions options_;
  int fds_[2] = {-1, -1};
  char* maps_[2] = {nullptr, nullptr};
  std::size_t used_[2] = {0, 0};
  std::string id_prefix_;
  std::atomic<std::uint64_t> next_id_{0};

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  int active_ = 0;  // journal segment receiving appends
  bool stopping_ = false;
  bool closed_ = false;
  int flush_waiters_ = 0;
  std::chrono::steady_clock::time_point last_commit_{};
  std::vector<storage::SpendEntry> spend_q_;
  std::vector<storage::AuditRow> audit_q_;
  std::uint64_t recorded_ = 0;
  std::uint64_t committed_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t batches_ = 0;
  std::uint64_t replayed_ = 0;
  std::uint64_t commit_failures_ = 0;
  std::optional<Error> last_error_;
  std::thread writer_;
};

}  // namespace bulwark::accounting
