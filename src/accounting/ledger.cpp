#include "accounting/ledger.hpp"

#include <emmintrin.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>

#include "accounting/raw_appender.hpp"
#include "auth/virtual_key.hpp"
#include "core/thread_name.hpp"

namespace bulwark::accounting {
namespace {

// Journal lines: tab-separated fields, "\\", "\t", "\n", "\r" and NUL escaped, so a NUL
// byte marks the end of a segment's data. The first field is the record type and version:
//   S1  spend entry alone: entry_id request_id time key_id team_id model target input
//       output cached_input cache_write cost estimated status
//   S2  overhead spend entry (what a provider charged for an attempt that was not the
//       caller's answer): the 14 S1 fields and the reason. S1 and R2 entries are the
//       caller's own (overhead empty).
//   R3  one request (RequestRecord), its audit record and, when billed, the caller's spend
//       entry: seq billed(0|1) [the 14 S1 fields; entry_id empty unless billed]
//       latency_ms error n_attempts [target outcome latency_ms overhead overhead_nano_usd
//       overhead_estimated]*n_attempts n_policy [decision]*n_policy content_mode(0-3)
//       [has_prompt prompt has_completion completion, when the mode is not 0]. The writer
//       builds the canonical audit body from these fields (write_audit_tail).
//   R2  one request, written by earlier versions (replayed, never written now): seq
//       has_spend(0|1) [the 14 S1 fields] time request_id key_id team_id body_tail, where
//       body_tail (the rest of the line, unescaped) continues the audit body after {"seq":N
//   A1  audit row with its link, written by earlier versions: seq time request_id key_id
//       team_id body prev_hash hash (replayed, never written now)
// Bytes a field must escape.
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  for (const unsigned char c : {'\\', '\t', '\n', '\r', '\0'}) t[c] = true;
  return t;
}();

// A journal line under construction in a reused buffer, written through a raw pointer
// (std::string's append and push_back are out-of-line calls; a line is some forty).
class Line : detail::RawAppender {
 public:
  explicit Line(std::string& out) : RawAppender(out, 0, 512) {}

  // Unescaped text (a tag, or the audit body tail).
  void raw(std::string_view v) { put(v); }
  // A tab and the field, escaped.
  void field(std::string_view v) {
    room(2 * v.size() + 1);  // every byte escaped, at worst
    *p_++ = '\t';
    if (v.empty()) return;  // a default view's data() is null: no memcpy from it
    // Copy runs between special characters in one go. Most fields have none: blocks of
    // 16 bytes without one are passed over at once, bytes from the first such block on
    // one by one.
    std::size_t run = 0;
    std::size_t i = 0;
    for (; i + 16 <= v.size(); i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v.data() + i));
      const __m128i special = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(b, _mm_set1_epi8('\\')), _mm_cmpeq_epi8(b, _mm_set1_epi8('\t'))),
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(b, _mm_set1_epi8('\r'))),
                       _mm_cmpeq_epi8(b, _mm_setzero_si128())));
      if (_mm_movemask_epi8(special) != 0) break;  // the byte loop below handles this block
    }
    for (; i < v.size(); ++i) {
      const char c = v[i];
      if (!kSpecial[static_cast<unsigned char>(c)]) continue;
      std::memcpy(p_, v.data() + run, i - run);
      p_ += i - run;
      *p_++ = '\\';
      *p_++ = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\0' ? '0' : '\\';
      run = i + 1;
    }
    std::memcpy(p_, v.data() + run, v.size() - run);
    p_ += v.size() - run;
  }
  void field(std::int64_t v) {
    room(25);
    *p_++ = '\t';
    if (static_cast<std::uint64_t>(v) < 10) {  // counts, flags and zero tokens: most numbers here
      *p_++ = static_cast<char>('0' + v);
      return;
    }
    p_ = std::to_chars(p_, end_, v).ptr;
  }
  // An id: prefix (alphanumeric and a dash, nothing to escape) and a counter.
  void field(std::string_view prefix, std::uint64_t n) {
    room(prefix.size() + 22);
    *p_++ = '\t';
    std::memcpy(p_, prefix.data(), prefix.size());
    p_ += prefix.size();
    p_ = std::to_chars(p_, end_, n).ptr;
  }
  std::string_view view() const { return {s_.data(), written()}; }
};

// A spend row's fields after its entry_id, in S1 order (R3 lines carry them too).
void put_spend_fields(Line& out, std::string_view request_id, storage::UnixMillis time, std::string_view key_id,
                      std::string_view team_id, std::string_view model, std::string_view target, const Usage& u,
                      std::int64_t cost_nano_usd, bool estimated, int status) {
  out.field(request_id);
  out.field(time);
  out.field(key_id);
  out.field(team_id);
  out.field(model);
  out.field(target);
  out.field(u.input_tokens);
  out.field(u.output_tokens);
  out.field(u.cached_input_tokens);
  out.field(u.cache_write_tokens);
  out.field(cost_nano_usd);
  out.field(std::int64_t{estimated ? 1 : 0});
  out.field(std::int64_t{status});
}

// The 14 fields of a spend entry after its tag; entry_id is prefix + n when not set.
void put_spend(Line& out, const storage::SpendEntry& e, std::string_view prefix, std::uint64_t n) {
  if (e.entry_id.empty()) {
    out.field(prefix, n);
  } else {
    out.field(std::string_view(e.entry_id));
  }
  put_spend_fields(out, e.request_id, e.time, e.key_id, e.team_id, e.model, e.target,
                   Usage{e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens},
                   e.cost_nano_usd, e.estimated, e.status);
}

// Splits off the next tab-separated field (escaped as written).
std::string_view next_field(std::string_view& rest) {
  const std::size_t tab = rest.find('\t');
  const std::string_view f = rest.substr(0, tab);
  rest = tab == std::string_view::npos ? std::string_view{} : rest.substr(tab + 1);
  return f;
}

// Fills `out` with the next fields; false when the line has fewer.
bool next_fields(std::string_view& rest, std::span<std::string_view> out) {
  for (auto& x : out) {
    if (rest.data() == nullptr) return false;
    x = next_field(rest);
  }
  return true;
}

// Assigns the unescaped field, reusing out's capacity.
void unescape(std::string_view f, std::string& out) {
  if (f.find('\\') == std::string_view::npos) {
    out.assign(f);
    return;
  }
  out.clear();
  for (std::size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '\\' && i + 1 < f.size()) {
      const char n = f[++i];
      c = n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n == '0' ? '\0' : n;
    }
    out.push_back(c);
  }
}

bool to_i64(std::string_view s, std::int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool to_flag(std::string_view s, bool& v) {
  if (s != "0" && s != "1") return false;
  v = s == "1";
  return true;
}

// The 14 fields of a spend entry, S1's and R3's alike; entry_id may be empty (an R3 line's
// refusal has none).
bool decode_spend_fields(std::string_view& rest, storage::SpendEntry& e) {
  std::string_view f[14];
  if (!next_fields(rest, f)) return false;
  std::int64_t status = 0;
  unescape(f[0], e.entry_id);
  unescape(f[1], e.request_id);
  unescape(f[3], e.key_id);
  unescape(f[4], e.team_id);
  unescape(f[5], e.model);
  unescape(f[6], e.target);
  const bool ok = to_i64(f[2], e.time) && to_i64(f[7], e.input_tokens) && to_i64(f[8], e.output_tokens) &&
                  to_i64(f[9], e.cached_input_tokens) && to_i64(f[10], e.cache_write_tokens) &&
                  to_i64(f[11], e.cost_nano_usd) && to_flag(f[12], e.estimated) && to_i64(f[13], status);
  e.status = static_cast<int>(status);
  e.overhead.clear();  // the slot is reused: only S2 sets it
  return ok;
}

bool decode_spend(std::string_view& rest, storage::SpendEntry& e) {
  return decode_spend_fields(rest, e) && !e.entry_id.empty();
}

template <class T>
T& slot(std::vector<T>& v, std::size_t n) {
  if (n == v.size()) v.emplace_back();
  return v[n];
}

// Field texts of the R3 line being decoded: the field itself when it holds no escape,
// else an unescaped copy in a pool reused from line to line (a deque: views into its
// strings stay valid as it grows).
class FieldTexts {
 public:
  void reset() noexcept { used_ = 0; }
  std::string_view operator()(std::string_view f) {
    if (f.find('\\') == std::string_view::npos) return f;
    if (used_ == pool_.size()) pool_.emplace_back();
    std::string& s = pool_[used_++];
    unescape(f, s);
    return s;
  }

 private:
  std::deque<std::string> pool_;
  std::size_t used_ = 0;
};

// An R3 line after its tag: the request's fields back into a RequestRecord, then the
// caller's spend entry (when billed) and the audit row with its canonical body.
bool decode_request(std::string_view rest, Ledger::Batch& b) {
  thread_local FieldTexts text;
  thread_local std::vector<AttemptView> attempts;
  thread_local std::vector<std::string> policy;
  thread_local storage::SpendEntry unbilled;  // a refusal's fields: no spend row
  text.reset();
  RequestRecord r;
  std::int64_t seq = 0, n = 0;
  std::string_view head[2];
  if (!next_fields(rest, head) || !to_i64(head[0], seq) || !to_flag(head[1], r.billed)) return false;
  // The spend fields go straight into the batch's next spend row when billed (counted
  // only once the whole line has decoded); the record's views point into that entry.
  storage::SpendEntry& e = r.billed ? slot(b.spend, b.spend_n) : unbilled;
  if (!decode_spend_fields(rest, e)) return false;
  if (r.billed == e.entry_id.empty()) return false;  // a billed record names its entry, no other does
  view_spend_fields(e, r);
  std::string_view tail[2];
  if (!next_fields(rest, tail) || !to_i64(tail[0], r.latency_ms)) return false;
  r.error = text(tail[1]);
  // A count larger than the fields left is a corrupt line, not an allocation to make.
  const auto count = [&](std::size_t fields_each) {
    return rest.data() != nullptr && to_i64(next_field(rest), n) && n >= 0 &&
           static_cast<std::size_t>(n) * fields_each <= rest.size() + 1;
  };
  if (!count(6)) return false;
  attempts.resize(static_cast<std::size_t>(n));
  for (AttemptView& a : attempts) {
    std::string_view af[6];
    if (!next_fields(rest, af)) return false;
    a.target = text(af[0]);
    a.outcome = text(af[1]);
    a.overhead = text(af[3]);
    if (!to_i64(af[2], a.latency_ms) || !to_i64(af[4], a.overhead_nano_usd) || !to_flag(af[5], a.overhead_estimated))
      return false;
  }
  r.attempts = attempts;
  if (!count(1)) return false;
  policy.resize(static_cast<std::size_t>(n));
  for (std::string& p : policy) {
    if (rest.data() == nullptr) return false;
    unescape(next_field(rest), p);
  }
  r.policy_decisions = policy;
  std::int64_t mode = 0;
  if (rest.data() == nullptr || !to_i64(next_field(rest), mode) || mode < 0 || mode > 3) return false;
  r.content = static_cast<ContentMode>(mode);
  if (r.content != ContentMode::off) {
    std::string_view cf[4];
    bool has_prompt = false, has_completion = false;
    if (!next_fields(rest, cf) || !to_flag(cf[0], has_prompt) || !to_flag(cf[2], has_completion)) return false;
    if (has_prompt) r.prompt = text(cf[1]);
    if (has_completion) r.completion = text(cf[3]);
  }
  if (rest.data() != nullptr) return false;  // fields left over: not a line this version wrote
  if (r.billed) ++b.spend_n;
  storage::AuditRow& row = slot(b.audit, b.audit_n);
  row.seq = seq;
  row.time = r.time;
  row.request_id.assign(r.request_id);
  row.key_id.assign(r.key_id);
  row.team_id.assign(r.team_id);
  start_audit_body(row.body, seq);
  write_audit_tail(row.body, r);
  row.prev_hash.clear();
  row.hash.clear();
  ++b.audit_n;
  return true;
}

bool decode_line(std::string_view line, Ledger::Batch& b) {
  std::string_view rest = line;
  const std::string_view tag = next_field(rest);
  if (tag == "S1") {
    if (!decode_spend(rest, slot(b.spend, b.spend_n)) || rest.data() != nullptr) return false;
    ++b.spend_n;
    return true;
  }
  if (tag == "S2") {
    storage::SpendEntry& e = slot(b.spend, b.spend_n);
    if (!decode_spend(rest, e) || rest.data() == nullptr) return false;
    const std::string_view reason = next_field(rest);
    if (rest.data() != nullptr || reason.empty()) return false;
    unescape(reason, e.overhead);
    ++b.spend_n;
    return true;
  }
  if (tag == "R3") return decode_request(rest, b);
  if (tag == "R2") {
    storage::AuditRow& r = slot(b.audit, b.audit_n);
    std::int64_t has_spend = 0;
    if (!to_i64(next_field(rest), r.seq) || !to_i64(next_field(rest), has_spend)) return false;
    if (has_spend != 0 && !decode_spend(rest, slot(b.spend, b.spend_n))) return false;
    std::string_view f[4];
    if (!next_fields(rest, f)) return false;
    if (rest.data() == nullptr || !to_i64(f[0], r.time)) return false;
    unescape(f[1], r.request_id);
    unescape(f[2], r.key_id);
    unescape(f[3], r.team_id);
    // The body as hashed: {"seq":N followed by the tail.
    start_audit_body(r.body, r.seq);
    r.body.append(rest);
    r.prev_hash.clear();
    r.hash.clear();
    if (has_spend != 0) ++b.spend_n;
    ++b.audit_n;
    return true;
  }
  if (tag == "A1") {
    storage::AuditRow& r = slot(b.audit, b.audit_n);
    std::string_view f[8];
    if (!next_fields(rest, f)) return false;
    if (rest.data() != nullptr || !to_i64(f[0], r.seq) || !to_i64(f[1], r.time)) return false;
    unescape(f[2], r.request_id);
    unescape(f[3], r.key_id);
    unescape(f[4], r.team_id);
    unescape(f[5], r.body);
    unescape(f[6], r.prev_hash);
    unescape(f[7], r.hash);
    if (r.hash.empty()) return false;
    ++b.audit_n;
    return true;
  }
  return false;
}

Error io_error(const char* what) {
  return Error::gateway(ErrorKind::internal, std::string("ledger journal: ") + what + ": " + std::strerror(errno));
}

// The per-thread buffer a record is formatted in before the lock is taken.
std::string& line_buffer() {
  thread_local std::string line;
  return line;
}

}  // namespace

std::size_t Ledger::decode_journal(std::string_view data, Batch& out) {
  std::size_t lines = 0;
  // A line without its newline is a torn write from a crash mid-record; that record's
  // record() never returned, so dropping it breaks no promise.
  for (std::size_t start = 0, nl; (nl = data.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    if (decode_line(data.substr(start, nl - start), out)) ++lines;
  }
  return lines;
}

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
  l->next_seq_ = l->chain_seq_ + 1;
  if (auto s = l->map_segments(); !s) return std::unexpected(s.error());
  l->writer_ = std::thread([p = l.get()] {
    name_this_thread("bw-ledger");
    p->run();
  });
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
  Batch b;
  std::size_t lines = 0;
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
    lines += decode_journal(data, b);
  }
  // The chain continues from the last stored record; journal rows at or below it were
  // committed before the crash (the segment was not zeroed yet) and are skipped.
  auto last = store_.last_audit();
  if (!last) return std::unexpected(last.error());
  chain_seq_ = *last ? (*last)->seq : 0;
  chain_hash_ = *last ? (*last)->hash : std::string(64, '0');
  chain(b);
  if (b.spend_n > 0 || b.audit_n > 0) {
    auto r = store_.append(b.spend_rows(), b.audit_rows());
    if (!r) return std::unexpected(r.error());
  }
  replayed_ = lines;
  return {};
}

void Ledger::chain(Batch& b) {
  storage::AuditRow* rows = b.audit.data();
  const auto by_seq = [](const storage::AuditRow& x, const storage::AuditRow& y) { return x.seq < y.seq; };
  // Sorted already except when replaying two segments.
  if (!std::is_sorted(rows, rows + b.audit_n, by_seq)) std::sort(rows, rows + b.audit_n, by_seq);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < b.audit_n; ++i) {
    if (rows[i].seq <= chain_seq_) continue;
    if (kept != i) std::swap(rows[kept], rows[i]);
    storage::AuditRow& r = rows[kept++];
    if (r.hash.empty()) {
      r.prev_hash.assign(chain_hash_);
      auth::sha256_hex(r.prev_hash, r.body, r.hash);
    }
    chain_hash_.assign(r.hash);
    chain_seq_ = r.seq;
  }
  b.audit_n = kept;
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

Result<std::int64_t> Ledger::append_line(std::string_view line, bool audit) {
  bool wake = false;
  std::int64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::shutting_down, "ledger is closed"));
    }
    if (count_[active_] >= options_.queue_capacity) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::internal, "ledger queue full"));
    }
    // An audit record's line starts with its tag and sequence number, known only here.
    char head[32] = "R3\t";
    std::size_t head_n = 0;
    if (audit) {
      auto [end, ec] = std::to_chars(head + 3, head + sizeof head, next_seq_);
      (void)ec;
      head_n = static_cast<std::size_t>(end - head);
    }
    std::size_t& used = used_[active_];
    if (used + head_n + line.size() > options_.journal_segment_bytes) {
      ++rejected_;
      return std::unexpected(Error::gateway(ErrorKind::internal, "ledger journal segment full"));
    }
    // A store into a shared file mapping is in the page cache as soon as it is made:
    // it survives the process being killed, with no system call on this path.
    char* dst = maps_[active_] + used;
    std::memcpy(dst, head, head_n);
    std::memcpy(dst + head_n, line.data(), line.size());
    const std::size_t n = head_n + line.size();
    if (options_.fsync_journal) {
      // Slow mode for power-loss durability.
      const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
      const auto from = reinterpret_cast<std::uintptr_t>(dst) & ~(page - 1);
      const auto to = reinterpret_cast<std::uintptr_t>(dst + n);
      if (::msync(reinterpret_cast<void*>(from), to - from, MS_SYNC) != 0) {
        std::memset(dst, 0, n);
        ++rejected_;
        return std::unexpected(io_error("msync"));
      }
    }
    used += n;
    if (audit) seq = next_seq_++;
    // The writer sleeps only on an empty segment, so only the first record wakes it.
    wake = count_[active_]++ == 0;
    ++recorded_;
  }
  if (wake) work_cv_.notify_one();
  return seq;
}

Status Ledger::record(const storage::SpendEntry& entry) {
  Line line(line_buffer());
  line.raw(entry.overhead.empty() ? "S1" : "S2");
  put_spend(line, entry, id_prefix_, entry.entry_id.empty() ? next_id_.fetch_add(1, std::memory_order_relaxed) : 0);
  if (!entry.overhead.empty()) line.field(std::string_view(entry.overhead));
  line.raw("\n");
  if (auto r = append_line(line.view(), false); !r) return std::unexpected(r.error());
  return {};
}

Result<std::int64_t> Ledger::record_request(const RequestRecord& r) {
  // "R3\t<seq>" goes in front under the lock.
  Line line(line_buffer());
  if (r.billed) {
    line.raw("\t1");
    if (r.entry_id.empty()) {
      line.field(id_prefix_, next_id_.fetch_add(1, std::memory_order_relaxed));
    } else {
      line.field(r.entry_id);
    }
  } else {
    line.raw("\t0\t");
  }
  put_spend_fields(line, r.request_id, r.time, r.key_id, r.team_id, r.model, r.target, r.tokens, r.cost_nano_usd,
                   r.estimated, r.status);
  line.field(r.latency_ms);
  line.field(r.error);
  line.field(static_cast<std::int64_t>(r.attempts.size()));
  for (const AttemptView& a : r.attempts) {
    line.field(a.target);
    line.field(a.outcome);
    line.field(a.latency_ms);
    line.field(a.overhead);
    line.field(a.overhead_nano_usd);
    line.field(std::int64_t{a.overhead_estimated ? 1 : 0});
  }
  line.field(static_cast<std::int64_t>(r.policy_decisions.size()));
  for (const std::string& p : r.policy_decisions) line.field(std::string_view(p));
  line.field(static_cast<std::int64_t>(r.content));
  if (r.content != ContentMode::off) {
    line.field(std::int64_t{r.prompt ? 1 : 0});
    line.field(r.prompt.value_or(std::string_view{}));
    line.field(std::int64_t{r.completion ? 1 : 0});
    line.field(r.completion.value_or(std::string_view{}));
  }
  line.raw("\n");
  auto seq = append_line(line.view(), true);
  // A record with full content can be large: do not keep that much per thread.
  if (line_buffer().capacity() > (256u << 10)) std::string().swap(line_buffer());
  return seq;
}

void Ledger::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || count_[active_] > 0; });
    if (count_[active_] == 0) break;  // stopping and drained
    // Group commit: a crash loses nothing the journal holds, so waiting a little to commit
    // many records in one transaction (one fsync) costs no durability, only freshness of
    // the database; flush() and close() cut the wait short.
    if (options_.commit_interval.count() > 0) {
      const auto due = last_commit_ + options_.commit_interval;
      work_cv_.wait_until(lock, due, [&] { return stopping_ || flush_waiters_ > 0; });
    }
    // New appends go to the other segment, so the one holding exactly this batch can be
    // decoded without the lock and emptied once the batch is committed.
    const int segment = active_;
    active_ = 1 - active_;
    const std::size_t used = used_[segment];
    const std::size_t records = count_[segment];
    lock.unlock();

    // Decoding and chaining here, not on the request path: the lines are the queue.
    batch_.clear();
    decode_journal(std::string_view(maps_[segment], used), batch_);
    chain(batch_);
    bool ok = false;
    for (int attempt = 0;; ++attempt) {
      auto r = store_.append(batch_.spend_rows(), batch_.audit_rows());
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
    // Only this thread touches the inactive segment until it switches back to it.
    if (ok) std::memset(maps_[segment], 0, used);
    lock.lock();
    last_commit_ = std::chrono::steady_clock::now();
    if (ok) {
      used_[segment] = 0;
      count_[segment] = 0;
      committed_ += records;
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
