#include "accounting/ledger.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "auth/virtual_key.hpp"

namespace bulwark::accounting {
namespace {

// Journal lines: tab-separated fields, "\\", "\t", "\n", "\r" and NUL escaped, so a NUL
// byte marks the end of a segment's data. First field is the record type and version.
void put(std::string& out, std::string_view s) {
  out.push_back('\t');
  // Copy runs between special characters in one go; most fields have none.
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c != '\\' && c != '\t' && c != '\n' && c != '\r' && c != '\0') continue;
    out.append(s.data() + run, i - run);
    out.push_back('\\');
    out.push_back(c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\0' ? '0' : '\\');
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
}

void put(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.push_back('\t');
  out.append(buf, end);
}

std::string encode(const storage::SpendEntry& e) {
  std::string out = "S1";
  out.reserve(256);
  put(out, e.entry_id);
  put(out, e.request_id);
  put(out, e.time);
  put(out, e.key_id);
  put(out, e.team_id);
  put(out, e.model);
  put(out, e.target);
  put(out, e.input_tokens);
  put(out, e.output_tokens);
  put(out, e.cached_input_tokens);
  put(out, e.cache_write_tokens);
  put(out, e.cost_nano_usd);
  put(out, e.estimated ? 1 : 0);
  put(out, e.status);
  out.push_back('\n');
  return out;
}

std::string encode(const storage::AuditRow& r) {
  std::string out = "A1";
  out.reserve(r.body.size() + 256);
  put(out, r.seq);
  put(out, r.time);
  put(out, r.request_id);
  put(out, r.key_id);
  put(out, r.team_id);
  put(out, r.body);
  put(out, r.prev_hash);
  put(out, r.hash);
  out.push_back('\n');
  return out;
}

std::vector<std::string> split(std::string_view line) {
  std::vector<std::string> f(1);
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\t') {
      f.emplace_back();
    } else if (c == '\\' && i + 1 < line.size()) {
      const char n = line[++i];
      f.back().push_back(n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n == '0' ? '\0' : n);
    } else {
      f.back().push_back(c);
    }
  }
  return f;
}

bool to_i64(const std::string& s, std::int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool decode(const std::vector<std::string>& f, storage::SpendEntry& e) {
  if (f.size() != 15) return false;
  std::int64_t est = 0, status = 0;
  e.entry_id = f[1];
  e.request_id = f[2];
  e.key_id = f[4];
  e.team_id = f[5];
  e.model = f[6];
  e.target = f[7];
  const bool ok = to_i64(f[3], e.time) && to_i64(f[8], e.input_tokens) && to_i64(f[9], e.output_tokens) &&
                  to_i64(f[10], e.cached_input_tokens) && to_i64(f[11], e.cache_write_tokens) &&
                  to_i64(f[12], e.cost_nano_usd) && to_i64(f[13], est) && to_i64(f[14], status);
  e.estimated = est != 0;
  e.status = static_cast<int>(status);
  return ok && !e.entry_id.empty();
}

bool decode(const std::vector<std::string>& f, storage::AuditRow& r) {
  if (f.size() != 9) return false;
  r.request_id = f[3];
  r.key_id = f[4];
  r.team_id = f[5];
  r.body = f[6];
  r.prev_hash = f[7];
  r.hash = f[8];
  return to_i64(f[1], r.seq) && to_i64(f[2], r.time);
}

Error io_error(const char* what) {
  return Error::gateway(ErrorKind::internal, std::string("ledger journal: ") + what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<Ledger>> Ledger::open(storage::Store& store, LedgerOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.journal_dir, ec);
  if (ec) return std::unexpected(Error::gateway(ErrorKind::internal, "ledger journal dir: " + ec.message()));
  std::unique_ptr<Ledger> l(new Ledger(store, std::move(options)));
  for (int i = 0; i < 2; ++i) {
    const auto path = l->options_.journal_dir / ("ledger-journal-" + std::to_string(i) + ".log");
    l->fds_[i] = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->fds_[i] < 0) return std::unexpected(io_error("open"));
  }
  if (l->options_.journal_segment_bytes < 4096) l->options_.journal_segment_bytes = 4096;
  auto prefix = auth::random_id();
  if (!prefix) return std::unexpected(prefix.error());
  l->id_prefix_ = prefix->substr(0, 16) + "-";
  if (auto s = l->replay(); !s) return std::unexpected(s.error());
  if (auto s = l->map_segments(); !s) return std::unexpected(s.error());
  l->writer_ = std::thread([p = l.get()] { p->run(); });
  return l;
}

Ledger::~Ledger() {
  close();
  for (char*& m : maps_) {
    if (m != nullptr) ::munmap(m, options_.journal_segment_bytes);
    m = nullptr;
  }
  for (int& fd : fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

Status Ledger::replay() {
  std::vector<storage::SpendEntry> spend;
  std::vector<storage::AuditRow> audit;
  for (const int fd : fds_) {
    std::string data;
    char buf[65536];
    if (::lseek(fd, 0, SEEK_SET) < 0) return std::unexpected(io_error("seek"));
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(io_error("read"));
      }
      if (n == 0) break;
      data.append(buf, static_cast<std::size_t>(n));
    }
    data.resize(std::min(data.size(), data.find('\0')));  // zeros: unused space
    std::size_t start = 0;
    // A line without its newline is a torn write from a crash mid-record; that record's
    // record() never returned, so dropping it breaks no promise.
    for (std::size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
      const auto f = split(std::string_view(data).substr(start, nl - start));
      if (f[0] == "S1") {
        storage::SpendEntry e;
        if (decode(f, e)) spend.push_back(std::move(e));
      } else if (f[0] == "A1") {
        storage::AuditRow r;
        if (decode(f, r)) audit.push_back(std::move(r));
      }
    }
  }
  if (!spend.empty() || !audit.empty()) {
    auto r = store_.append(spend, audit);
    if (!r) return std::unexpected(r.error());
  }
  replayed_ = spend.size() + audit.size();
  return {};
}

Status Ledger::map_segments() {
  const std::size_t cap = options_.journal_segment_bytes;
  for (int i = 0; i < 2; ++i) {
    // Start zero-filled; blocks are reserved up front so a full disk fails here rather
    // than as SIGBUS on a later store into the mapping.
    if (::ftruncate(fds_[i], 0) != 0 || ::ftruncate(fds_[i], static_cast<off_t>(cap)) != 0) {
      return std::unexpected(io_error("truncate"));
    }
    const int rc = ::posix_fallocate(fds_[i], 0, static_cast<off_t>(cap));
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
      errno = rc;
      return std::unexpected(io_error("fallocate"));
    }
    void* m = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fds_[i], 0);
    if (m == MAP_FAILED) return std::unexpected(io_error("mmap"));
    maps_[i] = static_cast<char*>(m);
    used_[i] = 0;
  }
  return {};
}

Status Ledger::append_line(const std::string& line, storage::SpendEntry* spend, storage::AuditRow* audit) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::shutting_down, "ledger is closed"));
    }
    if (spend_q_.size() + audit_q_.size() >= options_.queue_capacity) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::internal, "ledger queue full"));
    }
    std::size_t& used = used_[active_];
    if (used + line.size() > options_.journal_segment_bytes) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::internal, "ledger journal segment full"));
    }
    // A store into a shared file mapping is in the page cache as soon as it is made:
    // it survives the process being killed, with no system call on this path.
    char* dst = maps_[active_] + used;
    std::memcpy(dst, line.data(), line.size());
    if (options_.fsync_journal) {
      // Slow mode for power-loss durability.
      const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
      const auto from = reinterpret_cast<std::uintptr_t>(dst) & ~(page - 1);
      const auto to = reinterpret_cast<std::uintptr_t>(dst + line.size());
      if (::msync(reinterpret_cast<void*>(from), to - from, MS_SYNC) != 0) {
        std::memset(dst, 0, line.size());
        ++rejected_;
        return std::unexpected(io_error("msync"));
      }
    }
    used += line.size();
    // The writer sleeps only on an empty queue, so only the first record wakes it.
    wake = spend_q_.empty() && audit_q_.empty();
    if (spend != nullptr) spend_q_.push_back(std::move(*spend));
    if (audit != nullptr) audit_q_.push_back(std::move(*audit));
    ++recorded_;
  }
  if (wake) work_cv_.notify_one();
  return {};
}

Status Ledger::record(storage::SpendEntry entry) {
  if (entry.entry_id.empty()) {
    entry.entry_id = id_prefix_ + std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed));
  }
  const std::string line = encode(entry);
  return append_line(line, &entry, nullptr);
}

Status Ledger::record_audit(storage::AuditRow row) {
  const std::string line = encode(row);
  return append_line(line, nullptr, &row);
}

void Ledger::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !spend_q_.empty() || !audit_q_.empty(); });
    if (spend_q_.empty() && audit_q_.empty()) break;  // stopping and drained
    // Group commit: a crash loses nothing the journal holds, so waiting a little to commit
    // many records in one transaction (one fsync) costs no durability, only freshness of
    // the database; flush() and close() cut the wait short.
    if (options_.commit_interval.count() > 0) {
      const auto due = last_commit_ + options_.commit_interval;
      work_cv_.wait_until(lock, due, [&] { return stopping_ || flush_waiters_ > 0; });
    }
    std::vector<storage::SpendEntry> spend;
    std::vector<storage::AuditRow> audit;
    spend.swap(spend_q_);
    audit.swap(audit_q_);
    // New appends go to the other segment, so the one holding exactly this batch can be
    // emptied once the batch is committed.
    const int segment = active_;
    active_ = 1 - active_;
    lock.unlock();

    bool ok = false;
    for (int attempt = 0;; ++attempt) {
      auto r = store_.append(spend, audit);
      if (r) {
        ok = true;
        break;
      }
      lock.lock();
      ++commit_failures_;
      last_error_ = r.error();
      const bool give_up = stopping_ && attempt >= 2;
      lock.unlock();
      done_cv_.notify_all();
      if (give_up) break;  // the journal keeps the batch for the next open
      std::this_thread::sleep_for(options_.retry_backoff);
    }
    if (ok) {
      // Only this thread touches the inactive segment until it switches back to it.
      std::memset(maps_[segment], 0, used_[segment]);
      used_[segment] = 0;
    }
    lock.lock();
    last_commit_ = std::chrono::steady_clock::now();
    if (ok) {
      committed_ += spend.size() + audit.size();
      ++batches_;
      last_error_.reset();
    }
    done_cv_.notify_all();
    if (!ok) break;
  }
  closed_ = true;
  done_cv_.notify_all();
}

Status Ledger::flush() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = recorded_;
  ++flush_waiters_;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_ >= target || last_error_.has_value() || closed_; });
  --flush_waiters_;
  if (committed_ >= target) return {};
  if (last_error_) return std::unexpected(*last_error_);
  return std::unexpected(Error::gateway(ErrorKind::shutting_down, "ledger closed before flushing"));
}

void Ledger::close() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

LedgerStats Ledger::stats() const {
  std::lock_guard lock(mu_);
  return LedgerStats{recorded_, committed_, rejected_, batches_, replayed_, commit_failures_};
}

}  // namespace bulwark::accounting
