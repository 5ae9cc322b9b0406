#pragma once
// The spend ledger and the writer that persists spend and audit records.
//
// The request path never waits for the database. record_request() formats one journal
// line (the request's fields: its audit record and, when billed, its spend entry) in a
// per-thread buffer,
// then under one short mutex gives the audit record its sequence number and copies the
// line into an append-only journal segment: a memory-mapped file, so the bytes are in the
// kernel's page cache at once, with no system call and no fsync by default. The journal
// segment is the queue: the writer thread swaps segments, decodes the lines of the one it
// took, computes the audit hash chain, commits everything in one SQLite transaction
// (group commit) and then zeroes that segment. Two segments alternate so appends never
// wait for a commit.
//
// Durability promise:
//  - clean shutdown (close/destructor): everything recorded is committed.
//  - process crash or kill -9: nothing whose record() returned is lost; the journal is
//    in the page cache, and open() replays it (idempotent: entry ids and audit sequence
//    numbers are unique, duplicates are skipped; the hash chain is recomputed from the
//    last committed record, which gives the same hashes the writer would have).
//  - OS crash or power loss: committed batches survive (synchronous=FULL); entries not
//    yet committed (about one commit interval plus one commit) are lost unless
//    fsync_journal is set, which msyncs each record (much slower).
// The request path must call record()/record_request() before the response's last byte.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "accounting/request_record.hpp"
#include "core/error.hpp"
#include "storage/store.hpp"

namespace bulwark::accounting {

struct LedgerOptions {
  std::filesystem::path journal_dir;  // created if missing; holds ledger-journal-{0,1}.log
  // Records waiting for the writer beyond this are refused, not blocked on.
  std::size_t queue_capacity = 65536;
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

  // A spend entry alone. Assigns entry_id when empty. Fails (never blocks) when the
  // queue is full or closed.
  Status record(const storage::SpendEntry& entry);
  // A request's audit record and, when billed, the caller's spend entry, as one journal
  // line of the record's fields; the writer builds the canonical audit body. The content
  // is written as given (AuditTrail::append applies the ContentMode first). Returns the
  // audit sequence number. Fails (never blocks) like record(); a refused record uses no
  // sequence number, so the chain has no gap.
  Result<std::int64_t> record_request(const RequestRecord& record);

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

  // Decoded journal lines, reused from batch to batch so steady-state commits allocate
  // nothing. Exposed for tests of the journal format.
  struct Batch {
    std::vector<storage::SpendEntry> spend;
    std::vector<storage::AuditRow> audit;  // prev_hash/hash empty until chained
    std::size_t spend_n = 0;
    std::size_t audit_n = 0;
    void clear() noexcept { spend_n = audit_n = 0; }
    std::span<const storage::SpendEntry> spend_rows() const { return {spend.data(), spend_n}; }
    std::span<const storage::AuditRow> audit_rows() const { return {audit.data(), audit_n}; }
  };
  // Decodes the complete lines of journal data into out (appending). Torn or unknown
  // lines are skipped. Returns the number of lines decoded.
  static std::size_t decode_journal(std::string_view data, Batch& out);

 private:
  Ledger(storage::Store& store, LedgerOptions options) : store_(store), options_(std::move(options)) {}
  Status replay();
  Status map_segments();
  Result<std::int64_t> append_line(std::string_view line, bool audit);
  // Puts the batch's audit rows in sequence order, drops those at or below chain_seq_
  // (already stored: a replayed duplicate) and fills prev_hash/hash continuing from
  // chain_hash_. Rows of old "A1" journal lines arrive with their link and keep it.
  void chain(Batch& batch);
  void run();

  storage::Store& store_;
  LedgerOptions options_;
  int fds_[2] = {-1, -1};
  char* maps_[2] = {nullptr, nullptr};
  std::size_t used_[2] = {0, 0};
  std::size_t count_[2] = {0, 0};  // records in each segment not yet committed
  std::string id_prefix_;
  std::atomic<std::uint64_t> next_id_{0};

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  int active_ = 0;  // journal segment receiving appends
  bool stopping_ = false;
  bool closed_ = false;
  int flush_waiters_ = 0;
  std::int64_t next_seq_ = 1;  // next audit sequence number (under mu_)
  std::chrono::steady_clock::time_point last_commit_{};
  std::uint64_t recorded_ = 0;
  std::uint64_t committed_ = 0;
  std::uint64_t rejected_ = 0;
  std::uint64_t batches_ = 0;
  std::uint64_t replayed_ = 0;
  std::uint64_t commit_failures_ = 0;
  std::optional<Error> last_error_;
  // The writer's end of the audit chain: the last stored (or chained) record.
  std::int64_t chain_seq_ = 0;
  std::string chain_hash_;
  Batch batch_;  // writer thread only
  std::thread writer_;
};

}  // namespace bulwark::accounting
