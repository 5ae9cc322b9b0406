#include "storage/sqlite_store.hpp"

#include <sqlite3.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <utility>

namespace bulwark::storage {

std::string_view to_string(BudgetPeriod p) noexcept {
  switch (p) {
    case BudgetPeriod::day: return "day";
    case BudgetPeriod::week: return "week";
    case BudgetPeriod::month: return "month";
    case BudgetPeriod::total: return "total";
  }
  return "total";
}

std::optional<BudgetPeriod> parse_budget_period(std::string_view s) noexcept {
  if (s == "day") return BudgetPeriod::day;
  if (s == "week") return BudgetPeriod::week;
  if (s == "month") return BudgetPeriod::month;
  if (s == "total") return BudgetPeriod::total;
  return std::nullopt;
}

// A cached prepared statement, reset and unbound when the scope ends so the next user
// finds it clean.
class SqliteStore::Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) noexcept : s_(s) {}
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (s_ != nullptr) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  void text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // For values that outlive the statement's step (the batch inserts): no copy.
  void text_static(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void blob(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void i64(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void null(int i) { sqlite3_bind_null(s_, i); }
  void opt_i64(int i, const std::optional<std::int64_t>& v) {
    if (v) i64(i, *v); else null(i);
  }
  int step() { return sqlite3_step(s_); }
  std::int64_t col_i64(int i) const { return sqlite3_column_int64(s_, i); }
  bool col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
  std::optional<std::int64_t> col_opt_i64(int i) const {
    if (col_null(i)) return std::nullopt;
    return col_i64(i);
  }
  std::string col_text(int i) const {
    const auto* p = sqlite3_column_blob(s_, i);
    const int n = sqlite3_column_bytes(s_, i);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
  }

 private:
  sqlite3_stmt* s_;
};

namespace {

constexpr char kKeyColumns[] =
    "id, name, team_id, secret_hash, display_prefix, previous_hash, previous_valid_until, "
    "allowed_models, expires_at, rpm, tpm, budget_nano_usd, budget_period, max_parallel, "
    "metadata, policy_profile, revoked, created_at, updated_at, rotated_at";

const std::string kSelectKeyById = std::string("SELECT ") + kKeyColumns + " FROM keys WHERE id = ?";
const std::string kSelectKeyByHash =
    std::string("SELECT ") + kKeyColumns + " FROM keys WHERE secret_hash = ? OR previous_hash = ?";
const std::string kSelectKeysAll = std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY created_at, id";
const std::string kSelectKeysTeam =
    std::string("SELECT ") + kKeyColumns + " FROM keys WHERE team_id = ? ORDER BY created_at, id";
const std::string kInsertKey = std::string("INSERT INTO keys(") + kKeyColumns +
                               ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
const std::string kUpdateKey = std::string("UPDATE keys SET (") + kKeyColumns +
                               ") = (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) WHERE id = ?1";

constexpr char kBumpVersion[] = "UPDATE meta SET value = value + 1 WHERE name = 'keys_version'";
constexpr char kKeysVersion[] = "SELECT value FROM meta WHERE name = 'keys_version'";
constexpr char kUpsertTeam[] =
    "INSERT INTO teams(id, name, rpm, tpm, budget_nano_usd, budget_period, metadata, created_at, "
    "updated_at, policy_profile) VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
    "name=excluded.name, rpm=excluded.rpm, tpm=excluded.tpm, "
    "budget_nano_usd=excluded.budget_nano_usd, budget_period=excluded.budget_period, "
    "metadata=excluded.metadata, updated_at=excluded.updated_at, "
    "policy_profile=excluded.policy_profile";
constexpr char kTeamColumns[] =
    "SELECT id, name, rpm, tpm, budget_nano_usd, budget_period, metadata, created_at, updated_at, "
    "policy_profile FROM teams";
const std::string kSelectTeam = std::string(kTeamColumns) + " WHERE id = ?";
const std::string kSelectTeams = std::string(kTeamColumns) + " ORDER BY id";
// Batch inserts: many rows per statement cut the per-statement work (step, reset, the
// VDBE program's prologue) that dominated the writer: kBatchRows rows at a time, the rest
// in power-of-two chunks, so six statements per table cover every batch size.
constexpr std::size_t kBatchRows = 32;
static_assert((kBatchRows & (kBatchRows - 1)) == 0, "chunks halve down to one row");
constexpr int kSpendColumnCount = 15;
constexpr int kAuditColumnCount = 8;
std::string values_sql(std::string head, int columns, std::size_t rows) {
  std::string row = "(";
  for (int c = 0; c < columns; ++c) row += c == 0 ? "?" : ",?";
  row += ")";
  for (std::size_t r = 0; r < rows; ++r) {
    head += r == 0 ? " VALUES" : ",";
    head += row;
  }
  return head;
}
constexpr char kInsertSpendHead[] =
    "INSERT OR IGNORE INTO spend(entry_id, request_id, time, key_id, team_id, model, target, "
    "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, cost_nano_usd, "
    "estimated, status, overhead)";
constexpr char kInsertAuditHead[] =
    "INSERT OR IGNORE INTO audit_log(seq, time, request_id, key_id, team_id, body, prev_hash, hash)";
// [n]: the statement inserting n rows, for n a power of two (other entries unused).
std::array<std::string, kBatchRows + 1> batch_sql(const char* head, int columns) {
  std::array<std::string, kBatchRows + 1> out;
  for (std::size_t n = 1; n <= kBatchRows; n *= 2) out[n] = values_sql(head, columns, n);
  return out;
}
const std::array<std::string, kBatchRows + 1> kInsertSpend = batch_sql(kInsertSpendHead, kSpendColumnCount);
const std::array<std::string, kBatchRows + 1> kInsertAudit = batch_sql(kInsertAuditHead, kAuditColumnCount);
// The largest power of two <= min(left, kBatchRows).
std::size_t chunk_rows(std::size_t left) {
  std::size_t n = kBatchRows;
  while (n > left) n /= 2;
  return n;
}
constexpr char kBeginImmediate[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kMaxSpendRowid[] = "SELECT COALESCE(MAX(rowid), 0) FROM spend";
// Overhead rows never count towards a budget.
constexpr char kSpendAfterRowid[] =
    "SELECT key_id, team_id, time, cost_nano_usd FROM spend WHERE rowid > ? AND overhead = ''";
constexpr char kAddDaily[] =
    "INSERT INTO budget_daily(scope, subject, day, cost_nano_usd) VALUES(?,?,?,?) "
    "ON CONFLICT(scope, subject, day) DO UPDATE SET cost_nano_usd = cost_nano_usd + excluded.cost_nano_usd";
constexpr char kSpentSince[] =
    "SELECT COALESCE(SUM(cost_nano_usd), 0) FROM budget_daily WHERE scope = ? AND subject = ? AND day >= ?";
constexpr char kSpendCount[] = "SELECT COUNT(*) FROM spend";
constexpr char kAuditColumns[] =
    "SELECT seq, time, request_id, key_id, team_id, body, prev_hash, hash FROM audit_log";
const std::string kLastAudit = std::string(kAuditColumns) + " ORDER BY seq DESC LIMIT 1";
const std::string kAuditFrom = std::string(kAuditColumns) + " WHERE seq >= ? ORDER BY seq LIMIT ?";
// The caller's columns count only the caller's rows (overhead = ''); overhead apart.
constexpr char kReportTail[] =
    ", SUM(o = ''), SUM(CASE WHEN o = '' THEN input_tokens ELSE 0 END), "
    "SUM(CASE WHEN o = '' THEN output_tokens ELSE 0 END), "
    "SUM(CASE WHEN o = '' THEN cached_input_tokens ELSE 0 END), "
    "SUM(CASE WHEN o = '' THEN cache_write_tokens ELSE 0 END), "
    "SUM(CASE WHEN o = '' THEN cost_nano_usd ELSE 0 END), SUM(o = '' AND estimated), "
    "SUM(o <> ''), SUM(CASE WHEN o <> '' THEN cost_nano_usd ELSE 0 END) "
    "FROM (SELECT *, overhead AS o FROM spend WHERE time >= ? AND time < ?) GROUP BY 1 ORDER BY 1";
const std::string kReportKey = std::string("SELECT key_id") + kReportTail;
const std::string kReportTeam = std::string("SELECT team_id") + kReportTail;
const std::string kReportModel = std::string("SELECT model") + kReportTail;
const std::string kReportDay =
    std::string("SELECT strftime('%Y-%m-%d', time / 1000, 'unixepoch')") + kReportTail;

constexpr std::int64_t kMillisPerDay = 86'400'000;

std::int64_t day_of(UnixMillis t) noexcept {
  // Floor division so times before 1970 still land on their own day.
  return t >= 0 ? t / kMillisPerDay : -((-t + kMillisPerDay - 1) / kMillisPerDay);
}

std::string models_to_json(const std::vector<std::string>& models) {
  boost::json::array a;
  for (const auto& m : models) a.emplace_back(m);
  return boost::json::serialize(a);
}

std::vector<std::string> models_from_json(const std::string& text) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

}  // namespace

Error SqliteStore::error(std::string_view what) const {
  std::string msg = "sqlite: ";
  msg += what;
  msg += ": ";
  msg += sqlite3_errmsg(db_);
  return Error::gateway(ErrorKind::internal, std::move(msg));
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteOptions& options) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = "sqlite: cannot open " + options.path.string() + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return std::unexpected(Error::gateway(ErrorKind::internal, std::move(msg)));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
  sqlite3_extended_result_codes(db, 1);
  if (auto s = store->exec("PRAGMA journal_mode=WAL"); !s) return std::unexpected(s.error());
  if (auto s = store->exec(options.synchronous == Synchronous::full ? "PRAGMA synchronous=FULL"
                                                                    : "PRAGMA synchronous=NORMAL");
      !s) {
    return std::unexpected(s.error());
  }
  if (auto s = store->exec("PRAGMA foreign_keys=ON"); !s) return std::unexpected(s.error());
  auto v = migrate(db, options.migrations);
  if (!v) return std::unexpected(v.error());
  store->version_ = *v;
  return store;
}

SqliteStore::~SqliteStore() {
  for (auto& [sql, st] : stmts_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

SqliteStore::Stmt SqliteStore::prepare(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) return Stmt(it->second);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
    return Stmt(nullptr);
  }
  stmts_.emplace(sql, st);
  return Stmt(st);
}

Status SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = std::string("sqlite: ") + (err != nullptr ? err : "error") + " in: " + sql;
    sqlite3_free(err);
    return std::unexpected(Error::gateway(ErrorKind::internal, std::move(msg)));
  }
  return {};
}

Status SqliteStore::bump_keys_version() {
  auto st = prepare(kBumpVersion);
  if (!st || st.step() != SQLITE_DONE) return std::unexpected(error("bumping keys version"));
  return {};
}

namespace {
// Runs body inside BEGIN IMMEDIATE ... COMMIT, rolling back on failure.
template <class F>
auto in_transaction(sqlite3* db, F&& body) -> decltype(body()) {
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return std::unexpected(Error::gateway(
        ErrorKind::internal, std::string("sqlite: begin: ") + sqlite3_errmsg(db)));
  }
  auto r = body();
  if (!r) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return r;
  }
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    Error e = Error::gateway(ErrorKind::internal, std::string("sqlite: commit: ") + sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return std::unexpected(std::move(e));
  }
  return r;
}
}  // namespace

Status SqliteStore::write_key(const char* sql, const KeyRecord& k) {
  auto st = prepare(sql);
  if (!st) return std::unexpected(error("preparing key statement"));
  st.text(1, k.id);
  st.text(2, k.name);
  st.text(3, k.team_id);
  st.blob(4, k.secret_hash);
  st.text(5, k.display_prefix);
  if (k.previous_hash) st.blob(6, *k.previous_hash); else st.null(6);
  st.opt_i64(7, k.previous_valid_until);
  st.text(8, models_to_json(k.allowed_models));
  st.opt_i64(9, k.expires_at);
  st.i64(10, k.limits.rpm);
  st.i64(11, k.limits.tpm);
  st.opt_i64(12, k.limits.budget_nano_usd);
  st.text(13, to_string(k.limits.budget_period));
  st.i64(14, k.max_parallel);
  st.text(15, k.metadata_json);
  st.text(16, k.policy_profile);
  st.i64(17, k.revoked ? 1 : 0);
  st.i64(18, k.created_at);
  st.i64(19, k.updated_at);
  st.opt_i64(20, k.rotated_at);
  const int rc = st.step();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
    return std::unexpected(Error::client(ErrorKind::bad_request, "a key with this id or secret already exists"));
  }
  if (rc != SQLITE_DONE) return std::unexpected(error("writing key"));
  if (sqlite3_changes(db_) != 1) {
    return std::unexpected(Error::client(ErrorKind::bad_request, "no key with id " + k.id));
  }
  return {};
}

Status SqliteStore::insert_key(const KeyRecord& key) {
  std::lock_guard lock(mu_);
  return in_transaction(db_, [&]() -> Status {
    if (auto s = write_key(kInsertKey.c_str(), key); !s) return s;
    return bump_keys_version();
  });
}

Status SqliteStore::update_key(const KeyRecord& key) {
  std::lock_guard lock(mu_);
  return in_transaction(db_, [&]() -> Status {
    if (auto s = write_key(kUpdateKey.c_str(), key); !s) return s;
    return bump_keys_version();
  });
}

namespace {
KeyRecord read_key(const auto& st) {
  KeyRecord k;
  k.id = st.col_text(0);
  k.name = st.col_text(1);
  k.team_id = st.col_text(2);
  k.secret_hash = st.col_text(3);
  k.display_prefix = st.col_text(4);
  if (!st.col_null(5)) k.previous_hash = st.col_text(5);
  k.previous_valid_until = st.col_opt_i64(6);
  k.allowed_models = models_from_json(st.col_text(7));
  k.expires_at = st.col_opt_i64(8);
  k.limits.rpm = st.col_i64(9);
  k.limits.tpm = st.col_i64(10);
  k.limits.budget_nano_usd = st.col_opt_i64(11);
  k.limits.budget_period = parse_budget_period(st.col_text(12)).value_or(BudgetPeriod::total);
  k.max_parallel = st.col_i64(13);
  k.metadata_json = st.col_text(14);
  k.policy_profile = st.col_text(15);
  k.revoked = st.col_i64(16) != 0;
  k.created_at = st.col_i64(17);
  k.updated_at = st.col_i64(18);
  k.rotated_at = st.col_opt_i64(19);
  return k;
}

TeamRecord read_team(const auto& st) {
  TeamRecord t;
  t.id = st.col_text(0);
  t.name = st.col_text(1);
  t.limits.rpm = st.col_i64(2);
  t.limits.tpm = st.col_i64(3);
  t.limits.budget_nano_usd = st.col_opt_i64(4);
  t.limits.budget_period = parse_budget_period(st.col_text(5)).value_or(BudgetPeriod::total);
  t.metadata_json = st.col_text(6);
  t.created_at = st.col_i64(7);
  t.updated_at = st.col_i64(8);
  t.policy_profile = st.col_text(9);
  return t;
}

AuditRow read_audit(const auto& st) {
  AuditRow r;
  r.seq = st.col_i64(0);
  r.time = st.col_i64(1);
  r.request_id = st.col_text(2);
  r.key_id = st.col_text(3);
  r.team_id = st.col_text(4);
  r.body = st.col_text(5);
  r.prev_hash = st.col_text(6);
  r.hash = st.col_text(7);
  return r;
}
}  // namespace

Result<std::optional<KeyRecord>> SqliteStore::one_key(const char* sql, std::string_view a,
                                                      std::string_view b) {
  std::lock_guard lock(mu_);
  auto st = prepare(sql);
  if (!st) return std::unexpected(error("preparing key lookup"));
  if (sql == kSelectKeyByHash.c_str()) {
    st.blob(1, a);
    st.blob(2, b);
  } else {
    st.text(1, a);
  }
  const int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<KeyRecord>{};
  if (rc != SQLITE_ROW) return std::unexpected(error("reading key"));
  return std::optional<KeyRecord>{read_key(st)};
}

Result<std::optional<KeyRecord>> SqliteStore::get_key(std::string_view id) {
  return one_key(kSelectKeyById.c_str(), id, {});
}

Result<std::optional<KeyRecord>> SqliteStore::find_key_by_hash(std::string_view secret_hash) {
  return one_key(kSelectKeyByHash.c_str(), secret_hash, secret_hash);
}

Result<std::vector<KeyRecord>> SqliteStore::list_keys(std::optional<std::string_view> team_id) {
  std::lock_guard lock(mu_);
  auto st = prepare(team_id ? kSelectKeysTeam.c_str() : kSelectKeysAll.c_str());
  if (!st) return std::unexpected(error("preparing key list"));
  if (team_id) st.text(1, *team_id);
  std::vector<KeyRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_key(st));
  if (rc != SQLITE_DONE) return std::unexpected(error("listing keys"));
  return out;
}

Status SqliteStore::upsert_team(const TeamRecord& t) {
  std::lock_guard lock(mu_);
  return in_transaction(db_, [&]() -> Status {
    auto st = prepare(kUpsertTeam);
    if (!st) return std::unexpected(error("preparing team upsert"));
    st.text(1, t.id);
    st.text(2, t.name);
    st.i64(3, t.limits.rpm);
    st.i64(4, t.limits.tpm);
    st.opt_i64(5, t.limits.budget_nano_usd);
    st.text(6, to_string(t.limits.budget_period));
    st.text(7, t.metadata_json);
    st.i64(8, t.created_at);
    st.i64(9, t.updated_at);
    st.text(10, t.policy_profile);
    if (st.step() != SQLITE_DONE) return std::unexpected(error("writing team"));
    return bump_keys_version();
  });
}

Result<std::optional<TeamRecord>> SqliteStore::get_team(std::string_view id) {
  std::lock_guard lock(mu_);
  auto st = prepare(kSelectTeam.c_str());
  if (!st) return std::unexpected(error("preparing team lookup"));
  st.text(1, id);
  const int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<TeamRecord>{};
  if (rc != SQLITE_ROW) return std::unexpected(error("reading team"));
  return std::optional<TeamRecord>{read_team(st)};
}

Result<std::vector<TeamRecord>> SqliteStore::list_teams() {
  std::lock_guard lock(mu_);
  auto st = prepare(kSelectTeams.c_str());
  if (!st) return std::unexpected(error("preparing team list"));
  std::vector<TeamRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_team(st));
  if (rc != SQLITE_DONE) return std::unexpected(error("listing teams"));
  return out;
}

Result<std::uint64_t> SqliteStore::keys_version() {
  std::lock_guard lock(mu_);
  auto st = prepare(kKeysVersion);
  if (!st || st.step() != SQLITE_ROW) return std::unexpected(error("reading keys version"));
  return static_cast<std::uint64_t>(st.col_i64(0));
}

namespace {
// (scope, subject, UTC day): the key of a budget_daily counter.
struct DailyKey {
  const char* scope;
  std::string_view subject;
  std::int64_t day;
  auto operator<=>(const DailyKey& o) const {
    if (auto c = std::string_view(scope) <=> std::string_view(o.scope); c != 0) return c;
    if (auto c = subject <=> o.subject; c != 0) return c;
    return day <=> o.day;
  }
};

void add_daily(std::map<DailyKey, std::int64_t>& daily, std::string_view key_id, std::string_view team_id,
               UnixMillis time, std::int64_t cost) {
  const std::int64_t day = day_of(time);
  if (!key_id.empty()) daily[DailyKey{"key", key_id, day}] += cost;
  if (!team_id.empty()) daily[DailyKey{"team", team_id, day}] += cost;
}
}  // namespace

Result<AppendResult> SqliteStore::append(std::span<const SpendEntry> spend,
                                         std::span<const AuditRow> audit) {
  std::lock_guard lock(mu_);
  const auto body = [&]() -> Result<AppendResult> {
    AppendResult result;
    // Rows inserted now get rowids above the current maximum (spend has no AUTOINCREMENT
    // and never deletes); that is how duplicates skipped by INSERT OR IGNORE are told
    // apart from new rows when a journal replay repeats committed entries.
    std::int64_t max_rowid = 0;
    if (!spend.empty()) {
      auto st = prepare(kMaxSpendRowid);
      if (!st || st.step() != SQLITE_ROW) return std::unexpected(error("reading spend rowid"));
      max_rowid = st.col_i64(0);
    }
    for (std::size_t i = 0; i < spend.size();) {
      const std::size_t n = chunk_rows(spend.size() - i);
      auto st = prepare(kInsertSpend[n].c_str());
      if (!st) return std::unexpected(error("preparing spend insert"));
      for (std::size_t r = 0; r < n; ++r) {
        const SpendEntry& e = spend[i + r];
        const int b = static_cast<int>(r) * kSpendColumnCount;
        st.text_static(b + 1, e.entry_id);
        st.text_static(b + 2, e.request_id);
        st.i64(b + 3, e.time);
        st.text_static(b + 4, e.key_id);
        st.text_static(b + 5, e.team_id);
        st.text_static(b + 6, e.model);
        st.text_static(b + 7, e.target);
        st.i64(b + 8, e.input_tokens);
        st.i64(b + 9, e.output_tokens);
        st.i64(b + 10, e.cached_input_tokens);
        st.i64(b + 11, e.cache_write_tokens);
        st.i64(b + 12, e.cost_nano_usd);
        st.i64(b + 13, e.estimated ? 1 : 0);
        st.i64(b + 14, e.status);
        st.text_static(b + 15, e.overhead);
      }
      if (st.step() != SQLITE_DONE) return std::unexpected(error("inserting spend"));
      result.spend_inserted += static_cast<std::size_t>(sqlite3_changes(db_));
      i += n;
    }
    // Daily budget counters: one upsert per (scope, subject, day) in the batch instead of
    // two per entry, counting only entries inserted now.
    std::map<DailyKey, std::int64_t> daily;
    std::deque<std::string> owned;  // subjects read back from the table (stable addresses)
    if (result.spend_inserted == spend.size()) {
      for (const SpendEntry& e : spend)
        if (e.overhead.empty()) add_daily(daily, e.key_id, e.team_id, e.time, e.cost_nano_usd);
    } else if (result.spend_inserted > 0) {
      auto st = prepare(kSpendAfterRowid);
      if (!st) return std::unexpected(error("preparing spend read-back"));
      st.i64(1, max_rowid);
      int rc;
      while ((rc = st.step()) == SQLITE_ROW) {
        const std::string& key = owned.emplace_back(st.col_text(0));
        const std::string& team = owned.emplace_back(st.col_text(1));
        add_daily(daily, key, team, st.col_i64(2), st.col_i64(3));
      }
      if (rc != SQLITE_DONE) return std::unexpected(error("reading back spend"));
    }
    for (const auto& [k, cost] : daily) {
      auto st = prepare(kAddDaily);
      if (!st) return std::unexpected(error("preparing budget counter"));
      st.text_static(1, k.scope);
      st.text_static(2, k.subject);
      st.i64(3, k.day);
      st.i64(4, cost);
      if (st.step() != SQLITE_DONE) return std::unexpected(error("updating budget counter"));
    }
    for (std::size_t i = 0; i < audit.size();) {
      const std::size_t n = chunk_rows(audit.size() - i);
      auto st = prepare(kInsertAudit[n].c_str());
      if (!st) return std::unexpected(error("preparing audit insert"));
      for (std::size_t r = 0; r < n; ++r) {
        const AuditRow& a = audit[i + r];
        const int b = static_cast<int>(r) * kAuditColumnCount;
        st.i64(b + 1, a.seq);
        st.i64(b + 2, a.time);
        st.text_static(b + 3, a.request_id);
        st.text_static(b + 4, a.key_id);
        st.text_static(b + 5, a.team_id);
        st.text_static(b + 6, a.body);
        st.text_static(b + 7, a.prev_hash);
        st.text_static(b + 8, a.hash);
      }
      if (st.step() != SQLITE_DONE) return std::unexpected(error("inserting audit record"));
      result.audit_inserted += static_cast<std::size_t>(sqlite3_changes(db_));
      i += n;
    }
    return result;
  };
  // BEGIN and COMMIT as cached statements: the ledger commits many times a second and
  // sqlite3_exec would parse them each time.
  if (auto st = prepare(kBeginImmediate); !st || st.step() != SQLITE_DONE)
    return std::unexpected(error("begin"));
  auto result = body();
  if (result) {
    auto st = prepare(kCommit);
    if (!st || st.step() != SQLITE_DONE) result = std::unexpected(error("commit"));
  }
  if (!result) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return result;
}

Result<std::vector<SpendAggregate>> SqliteStore::spend_report(const SpendQuery& q) {
  const std::string* sql = &kReportKey;
  switch (q.group_by) {
    case SpendGroup::key: sql = &kReportKey; break;
    case SpendGroup::team: sql = &kReportTeam; break;
    case SpendGroup::model: sql = &kReportModel; break;
    case SpendGroup::day: sql = &kReportDay; break;
  }
  std::lock_guard lock(mu_);
  auto st = prepare(sql->c_str());
  if (!st) return std::unexpected(error("preparing spend report"));
  st.i64(1, q.from);
  st.i64(2, q.to);
  std::vector<SpendAggregate> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    SpendAggregate a;
    a.group = st.col_text(0);
    a.requests = st.col_i64(1);
    a.input_tokens = st.col_i64(2);
    a.output_tokens = st.col_i64(3);
    a.cached_input_tokens = st.col_i64(4);
    a.cache_write_tokens = st.col_i64(5);
    a.cost_nano_usd = st.col_i64(6);
    a.estimated_requests = st.col_i64(7);
    a.overhead_attempts = st.col_i64(8);
    a.overhead_nano_usd = st.col_i64(9);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return std::unexpected(error("reading spend report"));
  return out;
}

Result<std::int64_t> SqliteStore::spent_since(SpendScope scope, std::string_view id,
                                              UnixMillis since) {
  std::lock_guard lock(mu_);
  auto st = prepare(kSpentSince);
  if (!st) return std::unexpected(error("preparing spent_since"));
  st.text(1, scope == SpendScope::key ? "key" : "team");
  st.text(2, id);
  st.i64(3, day_of(since));
  if (st.step() != SQLITE_ROW) return std::unexpected(error("reading budget counters"));
  return st.col_i64(0);
}

Result<std::int64_t> SqliteStore::spend_entry_count() {
  std::lock_guard lock(mu_);
  auto st = prepare(kSpendCount);
  if (!st || st.step() != SQLITE_ROW) return std::unexpected(error("counting spend"));
  return st.col_i64(0);
}

Result<std::optional<AuditRow>> SqliteStore::last_audit() {
  std::lock_guard lock(mu_);
  auto st = prepare(kLastAudit.c_str());
  if (!st) return std::unexpected(error("preparing audit lookup"));
  const int rc = st.step();
  if (rc == SQLITE_DONE) return std::optional<AuditRow>{};
  if (rc != SQLITE_ROW) return std::unexpected(error("reading audit"));
  return std::optional<AuditRow>{read_audit(st)};
}

Result<std::vector<AuditRow>> SqliteStore::audit_rows(std::int64_t from_seq, std::size_t limit) {
  std::lock_guard lock(mu_);
  auto st = prepare(kAuditFrom.c_str());
  if (!st) return std::unexpected(error("preparing audit read"));
  st.i64(1, from_seq);
  st.i64(2, static_cast<std::int64_t>(limit));
  std::vector<AuditRow> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out.push_back(read_audit(st));
  if (rc != SQLITE_DONE) return std::unexpected(error("reading audit"));
  return out;
}

}  // namespace bulwark::storage
