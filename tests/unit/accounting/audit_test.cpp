#include "accounting/audit.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <sstream>

#include "auth/virtual_key.hpp"
#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::accounting {
namespace {

constexpr std::int64_t kJan15 = 1'736'899'200'000;

AuditEvent event(int i) {
  AuditEvent e;
  e.request_id = "req-" + std::to_string(i);
  e.key_id = "key_abc";
  e.team_id = "team-1";
  e.model = "gpt-4o";
  e.target = "openai-east";
  e.attempts = {{"openai-west", "upstream_overloaded", 120}, {"openai-east", "ok", 800}};
  e.policy_decisions = {"pii:none", "allow"};
  e.tokens = {.input_tokens = 100 + i, .output_tokens = 50};
  e.cost_nano_usd = 100 * (i + 1);
  e.latency_ms = 930;
  e.status = 200;
  e.prompt = "my card is 4111 1111 1111 1111";
  e.completion = "noted";
  return e;
}

class AuditTest : public ::testing::Test {
 protected:
  void open_all(AuditOptions opts = {}) {
    trail_.reset();
    ledger_.reset();
    store_.reset();
    auto s = storage::SqliteStore::open({.path = dir_ / "gov.db"});
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    LedgerOptions lo;
    lo.journal_dir = dir_ / "journal";
    auto l = Ledger::open(*store_, lo);
    ASSERT_TRUE(l) << l.error().message;
    ledger_ = std::move(*l);
    auto a = AuditTrail::open(*ledger_, clock_, std::move(opts));
    ASSERT_TRUE(a) << a.error().message;
    trail_ = std::move(*a);
  }
  void append(int n, int first = 0) {
    for (int i = first; i < first + n; ++i) ASSERT_TRUE(trail_->append(event(i)));
    ASSERT_TRUE(ledger_->flush());
  }
  // Tampering as someone with write access to the file would: the append-only triggers
  // are dropped first.
  void tamper(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "gov.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const std::string all =
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete; " + sql;
    EXPECT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  VerifyReport verify(std::optional<std::int64_t> expected_last = std::nullopt) {
    auto r = AuditTrail::verify(*store_, expected_last);
    EXPECT_TRUE(r);
    return r ? *r : VerifyReport{};
  }

  test::TempDir dir_;
  ManualClock clock_{TimePoint{std::chrono::milliseconds(kJan15)}};
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<AuditTrail> trail_;
};

TEST_F(AuditTest, IntactChainVerifies) {
  open_all();
  append(10);
  const auto r = verify(10);
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.checked, 10);
  auto rows = store_->audit_rows(1, 100);
  ASSERT_EQ(rows->size(), 10u);
  EXPECT_EQ((*rows)[0].prev_hash, AuditTrail::genesis_hash());
  EXPECT_EQ((*rows)[1].prev_hash, (*rows)[0].hash);
  EXPECT_EQ((*rows)[0].time, kJan15);
}

TEST_F(AuditTest, ModifiedRecordIsReportedAtItsSeq) {
  open_all();
  append(10);
  tamper("UPDATE audit_log SET body = replace(body, '\"cost_nano_usd\":400', '\"cost_nano_usd\":1') WHERE seq = 4");
  const auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 4);
}

TEST_F(AuditTest, ModifiedQueryColumnIsReported) {
  open_all();
  append(10);
  tamper("UPDATE audit_log SET key_id = 'key_other' WHERE seq = 7");
  const auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 7);
}

TEST_F(AuditTest, RehashedRecordBreaksTheNextLink) {
  open_all();
  append(10);
  // The forger fixes record 5's own hash, but record 6 still names the original.
  auto rows = store_->audit_rows(5, 1);
  ASSERT_EQ(rows->size(), 1u);
  std::string body = (*rows)[0].body;
  body.replace(body.find("\"status\":200"), 12, "\"status\":201");
  const std::string forged = AuditTrail::chain_hash((*rows)[0].prev_hash, body);
  tamper("UPDATE audit_log SET body = '" + body + "', hash = '" + forged + "' WHERE seq = 5");
  const auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 6);
}

TEST_F(AuditTest, DeletedRecordIsReported) {
  open_all();
  append(10);
  tamper("DELETE FROM audit_log WHERE seq = 6");
  const auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 6);
}

TEST_F(AuditTest, ReorderedRecordsAreReported) {
  open_all();
  append(10);
  // Swap the content of records 3 and 8, keeping the sequence column in place.
  tamper(
      "CREATE TEMP TABLE s AS SELECT * FROM audit_log WHERE seq IN (3, 8);"
      "UPDATE audit_log SET (time, request_id, key_id, team_id, body, prev_hash, hash) = "
      "(SELECT time, request_id, key_id, team_id, body, prev_hash, hash FROM s WHERE s.seq = 11 - audit_log.seq) "
      "WHERE seq IN (3, 8);");
  const auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 3);
}

TEST_F(AuditTest, TruncatedTailNeedsTheExpectedLength) {
  open_all();
  append(10);
  tamper("DELETE FROM audit_log WHERE seq >= 9");
  EXPECT_TRUE(verify().ok);  // a chain alone cannot tell
  const auto r = verify(10);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 9);
}

TEST_F(AuditTest, ChainContinuesAcrossRestart) {
  open_all();
  append(3);
  open_all();
  append(2, 3);
  const auto r = verify(5);
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.checked, 5);
}

TEST_F(AuditTest, ContentModes) {
  const auto content_of = [&](ContentMode mode) {
    AuditOptions o;
    o.content = mode;
    std::string body;
    open_all(std::move(o));
    auto seq = trail_->append(event(0));
    EXPECT_TRUE(seq);
    EXPECT_TRUE(ledger_->flush());
    body = (*store_->audit_rows(*seq, 1))[0].body;
    return boost::json::parse(body).as_object();
  };
  auto off = content_of(ContentMode::off);
  EXPECT_FALSE(off.contains("content"));
  auto hashed = content_of(ContentMode::hashed);
  EXPECT_EQ(hashed.at("content").at("prompt").as_string(),
            "sha256:" + auth::to_hex(auth::sha256("my card is 4111 1111 1111 1111")));
  auto redacted = content_of(ContentMode::redacted);
  EXPECT_EQ(redacted.at("content").at("prompt").as_string(), "[redacted 30 bytes]");
  auto full = content_of(ContentMode::full);
  EXPECT_EQ(full.at("content").at("completion").as_string(), "noted");
  EXPECT_EQ(full.at("content").at("mode").as_string(), "full");
  EXPECT_TRUE(verify().ok);  // mixed modes in one chain still verify
}

TEST_F(AuditTest, CanonicalBodyHasEveryField) {
  open_all();
  const auto o = boost::json::parse(trail_->canonical(1, kJan15, event(2))).as_object();
  for (const char* k : {"seq", "time", "request_id", "key_id", "team_id", "model", "target", "attempts", "policy",
                        "tokens", "cost_nano_usd", "estimated", "latency_ms", "status", "error"}) {
    EXPECT_TRUE(o.contains(k)) << k;
  }
  EXPECT_EQ(o.at("attempts").as_array().size(), 2u);
  EXPECT_EQ(o.at("tokens").at("input").as_int64(), 102);
  // Same input, same bytes.
  EXPECT_EQ(trail_->canonical(1, kJan15, event(2)), trail_->canonical(1, kJan15, event(2)));
}

TEST_F(AuditTest, EscapesAwkwardStringsAndStillVerifies) {
  open_all();
  AuditEvent e = event(0);
  e.model = "a\"b\\c\n\x01 caf\xc3\xa9 \xff\xc3";  // quote, backslash, control, UTF-8, invalid bytes
  e.policy_decisions = {"tab\there"};
  const auto o = boost::json::parse(trail_->canonical(1, kJan15, e)).as_object();
  EXPECT_EQ(o.at("model").as_string(), "a\"b\\c\n\x01 caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(o.at("policy").as_array()[0].as_string(), "tab\there");
  ASSERT_TRUE(trail_->append(e));
  ASSERT_TRUE(ledger_->flush());
  EXPECT_TRUE(verify(1).ok);
}

TEST_F(AuditTest, ExportsJsonLines) {
  open_all();
  append(5);
  std::ostringstream out;
  ASSERT_TRUE(AuditTrail::export_jsonl(*store_, out, 2));
  std::istringstream in(out.str());
  std::string line;
  std::int64_t expect = 2;
  while (std::getline(in, line)) {
    const auto o = boost::json::parse(line).as_object();
    EXPECT_EQ(o.at("seq").as_int64(), expect);
    EXPECT_EQ(o.at("record").at("seq").as_int64(), expect);
    EXPECT_EQ(o.at("record").at("key_id").as_string(), "key_abc");
    ++expect;
  }
  EXPECT_EQ(expect, 6);
}

TEST_F(AuditTest, RecordsSurviveKillNine) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    auto s = storage::SqliteStore::open({.path = dir_ / "gov.db"});
    if (!s) ::_exit(2);
    LedgerOptions lo;
    lo.journal_dir = dir_ / "journal";
    auto l = Ledger::open(**s, lo);
    if (!l) ::_exit(3);
    auto a = AuditTrail::open(**l, clock_);
    if (!a) ::_exit(4);
    for (int i = 0; i < 500; ++i) {
      if (!(*a)->append(event(i))) ::_exit(5);
    }
    const char done = 'x';
    if (::write(pipefd[1], &done, 1) != 1) ::_exit(6);
    for (;;) ::pause();
  }
  ::close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
  ::close(pipefd[0]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  open_all();
  const auto r = verify(500);
  EXPECT_TRUE(r.ok) << r.reason << " at " << r.first_bad_seq.value_or(-1);
  append(1, 500);
  EXPECT_TRUE(verify(501).ok);
}

}  // namespace
}  // namespace bulwark::accounting
