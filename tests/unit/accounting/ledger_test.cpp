#include "accounting/ledger.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <fstream>
#include <thread>

#include "accounting/audit.hpp"
#include "gated_store.hpp"
#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::accounting {
namespace {

using storage::SpendEntry;

constexpr std::int64_t kJan15 = 1'736'899'200'000;

SpendEntry entry(int i, std::string key = "k1", std::string model = "gpt-4o") {
  SpendEntry e;
  e.request_id = "req-" + std::to_string(i);
  e.time = kJan15 + i;
  e.key_id = std::move(key);
  e.team_id = "t1";
  e.model = std::move(model);
  e.target = "openai-east";
  e.input_tokens = 10;
  e.output_tokens = 20;
  e.cost_nano_usd = 1000 + i;
  e.status = 200;
  return e;
}

class LedgerTest : public ::testing::Test {
 protected:
  std::unique_ptr<storage::SqliteStore> open_store() {
    auto s = storage::SqliteStore::open({.path = dir_ / "gov.db"});
    EXPECT_TRUE(s) << s.error().message;
    return std::move(*s);
  }
  LedgerOptions options(std::size_t capacity = 65536) {
    LedgerOptions o;
    o.journal_dir = dir_ / "journal";
    o.queue_capacity = capacity;
    return o;
  }
  test::TempDir dir_;
};

TEST_F(LedgerTest, RecordsFlushesAndReports) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE((*ledger)->record(entry(i, i % 2 ? "k1" : "k2", i % 3 ? "gpt-4o" : "o3")));
  }
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*store->spend_entry_count(), 100);
  const auto st = (*ledger)->stats();
  EXPECT_EQ(st.recorded, 100u);
  EXPECT_EQ(st.committed, 100u);
  auto by_key = (*ledger)->report({kJan15, kJan15 + 1000, storage::SpendGroup::key});
  ASSERT_TRUE(by_key);
  ASSERT_EQ(by_key->size(), 2u);
  EXPECT_EQ((*by_key)[0].requests + (*by_key)[1].requests, 100);
  auto by_model = (*ledger)->report({kJan15, kJan15 + 1000, storage::SpendGroup::model});
  ASSERT_EQ(by_model->size(), 2u);
  EXPECT_EQ((*by_model)[1].group, "o3");
  EXPECT_EQ((*by_model)[1].requests, 34);
  // Counters for budget recovery were updated in the same transactions.
  std::int64_t total = 0;
  for (int i = 0; i < 100; ++i) total += 1000 + i;
  EXPECT_EQ(*store->spent_since(storage::SpendScope::team, "t1", kJan15), total);
}

// While the writer is held inside one commit, later records pile up and go in together.
TEST_F(LedgerTest, BatchesWhatQueuedDuringACommit) {
  auto real = open_store();
  test::GatedStore gated(*real);
  auto ledger = Ledger::open(gated, options());
  ASSERT_TRUE(ledger);
  gated.close_gate();
  ASSERT_TRUE((*ledger)->record(entry(0)));
  gated.wait_for_waiter();  // the writer holds batch 1 (one entry) at the gate
  for (int i = 1; i < 500; ++i) ASSERT_TRUE((*ledger)->record(entry(i)));
  gated.open_gate();
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ((*ledger)->stats().batches, 2u);
  EXPECT_EQ(gated.appends(), 2);
  EXPECT_EQ(*real->spend_entry_count(), 500);
}

TEST_F(LedgerTest, FullQueueRefusesInsteadOfBlocking) {
  auto real = open_store();
  test::GatedStore gated(*real);
  auto ledger = Ledger::open(gated, options(10));
  ASSERT_TRUE(ledger);
  gated.close_gate();
  ASSERT_TRUE((*ledger)->record(entry(0)));
  gated.wait_for_waiter();
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE((*ledger)->record(entry(i)));
  auto refused = (*ledger)->record(entry(11));
  EXPECT_FALSE(refused);
  EXPECT_EQ((*ledger)->stats().rejected, 1u);
  gated.open_gate();
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*real->spend_entry_count(), 11);
}

TEST_F(LedgerTest, FullJournalSegmentRefusesInsteadOfBlocking) {
  auto real = open_store();
  test::GatedStore gated(*real);
  LedgerOptions o = options();
  o.journal_segment_bytes = 4096;
  auto ledger = Ledger::open(gated, o);
  ASSERT_TRUE(ledger);
  gated.close_gate();
  ASSERT_TRUE((*ledger)->record(entry(0)));
  gated.wait_for_waiter();  // segment 0 is being committed; appends go to segment 1
  int accepted = 0;
  while ((*ledger)->record(entry(accepted + 1))) ++accepted;
  EXPECT_GT(accepted, 10);
  EXPECT_LT(accepted, 60);  // ~80-byte lines in a 4 KiB segment
  EXPECT_EQ((*ledger)->stats().rejected, 1u);
  gated.open_gate();
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*real->spend_entry_count(), accepted + 1);
  // Both segments are empty again: there is room once more.
  ASSERT_TRUE((*ledger)->record(entry(1000)));
  ASSERT_TRUE((*ledger)->flush());
}

TEST_F(LedgerTest, CleanShutdownCommitsEverything) {
  {
    auto store = open_store();
    auto ledger = Ledger::open(*store, options());
    ASSERT_TRUE(ledger);
    for (int i = 0; i < 2000; ++i) ASSERT_TRUE((*ledger)->record(entry(i)));
    // No flush: destruction must drain.
  }
  auto store = open_store();
  EXPECT_EQ(*store->spend_entry_count(), 2000);
  // And the journal was emptied, so nothing is replayed.
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  EXPECT_EQ((*ledger)->stats().replayed, 0u);
  ASSERT_TRUE((*ledger)->record(entry(1)));
  (*ledger)->close();
  EXPECT_FALSE((*ledger)->record(entry(2)));  // closed
  EXPECT_EQ(*store->spend_entry_count(), 2001);
}

// Runs `recorded` entries in a child, tells the parent, which SIGKILLs it. With
// hold_writer the child's writer is parked before its first commit, so only the journal
// can bring the entries back.
void crash_child_after(const std::filesystem::path& dir, int recorded, bool hold_writer) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    auto s = storage::SqliteStore::open({.path = dir / "gov.db"});
    if (!s) ::_exit(2);
    test::GatedStore gated(**s);
    if (hold_writer) gated.close_gate();
    LedgerOptions o;
    o.journal_dir = dir / "journal";
    auto ledger = Ledger::open(gated, o);
    if (!ledger) ::_exit(3);
    for (int i = 0; i < recorded; ++i) {
      if (!(*ledger)->record(entry(i))) ::_exit(4);
    }
    const char done = 'x';
    if (::write(pipefd[1], &done, 1) != 1) ::_exit(5);
    for (;;) ::pause();  // wait for the kill
  }
  ::close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1) << "child failed before recording";
  ::close(pipefd[0]);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

TEST_F(LedgerTest, KillNineBeforeAnyCommitLosesNothingRecorded) {
  crash_child_after(dir_.path(), 3000, /*hold_writer=*/true);
  auto store = open_store();
  EXPECT_EQ(*store->spend_entry_count(), 0);  // nothing reached SQLite before the kill
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ((*ledger)->stats().replayed, 3000u);
  EXPECT_EQ(*store->spend_entry_count(), 3000);
}

TEST_F(LedgerTest, KillNineMidStreamLosesNothingAndCountsNothingTwice) {
  crash_child_after(dir_.path(), 5000, /*hold_writer=*/false);
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ(*store->spend_entry_count(), 5000);
  std::int64_t total = 0;
  for (int i = 0; i < 5000; ++i) total += 1000 + i;
  EXPECT_EQ(*store->spent_since(storage::SpendScope::key, "k1", kJan15), total);
}

TEST_F(LedgerTest, ReplayIgnoresTornLinesAndDuplicates) {
  {
    auto store = open_store();
    auto ledger = Ledger::open(*store, options());
    ASSERT_TRUE(ledger);
    SpendEntry e = entry(1);
    e.entry_id = "fixed-id";
    ASSERT_TRUE((*ledger)->record(e));
  }
  {
    // A leftover journal repeating the committed entry, plus a line cut mid-write.
    std::ofstream j(dir_ / "journal" / "ledger-journal-1.log", std::ios::trunc);
    j << "S1\tfixed-id\treq-1\t" << kJan15 + 1 << "\tk1\tt1\tgpt-4o\topenai-east\t10\t20\t0\t0\t1001\t0\t200\n";
    j << "S1\ttorn-id\treq-2\t" << kJan15 + 2 << "\tk1\tt1\tgpt";
  }
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  EXPECT_EQ((*ledger)->stats().replayed, 1u);
  EXPECT_EQ(*store->spend_entry_count(), 1);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::key, "k1", kJan15), 1001);
}

TEST_F(LedgerTest, FieldsWithSeparatorsSurviveTheJournal) {
  std::filesystem::create_directories(dir_ / "journal");
  {
    std::ofstream j(dir_ / "journal" / "ledger-journal-0.log", std::ios::trunc);
    j << "S1\tid-esc\treq\\tx\\ny\t" << kJan15 << "\tk\\\\1\tt1\tm\ttg\t1\t2\t3\t4\t5\t1\t500\n";
  }
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  auto rows = store->spend_report({kJan15, kJan15 + 1, storage::SpendGroup::key});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].group, "k\\1");
  EXPECT_EQ((*rows)[0].cached_input_tokens, 3);
  EXPECT_EQ((*rows)[0].estimated_requests, 1);
}

// The tail of a canonical body (after {"seq":N), for R2 lines written by hand.
std::string tail_for(storage::UnixMillis t, const std::string& req) {
  return ",\"time\":" + std::to_string(t) + ",\"request_id\":\"" + req + "\",\"key_id\":\"k1\",\"team_id\":\"t1\"}";
}

// A request's record, as views into `e` (which must outlive it).
RequestRecord record_of(const SpendEntry& e, bool billed = true) {
  RequestRecord r;
  view_spend_fields(e, r);
  r.billed = billed;
  return r;
}

std::string body_of(std::int64_t seq, const RequestRecord& r) {
  std::string body = "{\"seq\":" + std::to_string(seq);
  write_audit_tail(body, r);
  return body;
}

TEST_F(LedgerTest, RequestLineCarriesSpendAndAuditTogether) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  const SpendEntry e1 = entry(1);
  SpendEntry e2 = entry(2);
  e2.target.clear();
  e2.status = 429;
  const RequestRecord r1 = record_of(e1);
  RequestRecord r2 = record_of(e2, /*billed=*/false);  // a refusal: no spend
  r2.error = "rate_limited";
  auto seq1 = (*ledger)->record_request(r1);
  auto seq2 = (*ledger)->record_request(r2);
  ASSERT_TRUE(seq1 && seq2);
  EXPECT_EQ(*seq1, 1);
  EXPECT_EQ(*seq2, 2);
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*store->spend_entry_count(), 1);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::team, "t1", kJan15), e1.cost_nano_usd);
  auto rows = store->audit_rows(1, 10);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].body, body_of(1, r1));
  EXPECT_EQ((*rows)[1].body, body_of(2, r2));
  EXPECT_EQ((*rows)[0].request_id, "req-1");
  EXPECT_EQ((*rows)[0].time, e1.time);
  EXPECT_EQ((*rows)[0].prev_hash, AuditTrail::genesis_hash());
  EXPECT_EQ((*rows)[0].hash, AuditTrail::chain_hash((*rows)[0].prev_hash, (*rows)[0].body));
  EXPECT_EQ((*rows)[1].prev_hash, (*rows)[0].hash);
  auto v = AuditTrail::verify(*store, 2);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ((*ledger)->stats().committed, 2u);  // two lines, three rows
}

// Every field of a request goes through the journal as written, separators and all: the
// body the writer builds is the one the request path would have built, and nothing in a
// field can start a line of its own.
TEST_F(LedgerTest, RequestFieldsWithSeparatorsSurviveTheJournal) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  SpendEntry e = entry(1);
  e.request_id = "req\t1\nS1\tforged\tline";
  e.key_id = "k\\1";
  e.estimated = true;
  RequestRecord r = record_of(e);
  const std::vector<AttemptView> attempts{
      {"east\r", "upstream_5xx", 12, "failed", 4500, true},
      {"west", "ok", 30},
  };
  const std::vector<std::string> policy{"input:redacted pii:email\tx2", std::string("nul\0byte", 8)};
  r.attempts = attempts;
  r.policy_decisions = policy;
  r.latency_ms = 42;
  r.content = ContentMode::full;
  r.prompt = std::string_view("{\"messages\":[\"a\\nb\"]}\n");
  r.completion = std::string_view("\xff\xfe line\r\n");
  r.entry_id = "fixed\tid";
  ASSERT_TRUE((*ledger)->record_request(r));
  ASSERT_TRUE((*ledger)->flush());
  auto rows = store->audit_rows(1, 10);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].body, body_of(1, r));
  EXPECT_EQ((*rows)[0].request_id, e.request_id);
  EXPECT_EQ((*rows)[0].key_id, "k\\1");
  const auto o = boost::json::parse((*rows)[0].body).as_object();
  EXPECT_EQ(o.at("request_id").as_string(), e.request_id);
  EXPECT_EQ(o.at("attempts").as_array().at(0).at("overhead").at("cost_nano_usd").as_int64(), 4500);
  EXPECT_EQ(o.at("content").at("mode").as_string(), "full");
  EXPECT_EQ(*store->spend_entry_count(), 1);  // the forged line in a field is not a line
  auto by_key = store->spend_report({kJan15, kJan15 + 10, storage::SpendGroup::key});
  ASSERT_TRUE(by_key);
  ASSERT_EQ(by_key->size(), 1u);
  EXPECT_EQ((*by_key)[0].group, "k\\1");
  EXPECT_EQ((*by_key)[0].estimated_requests, 1);
}

// Fields are scanned 16 bytes at a time for bytes to escape: a special byte at every
// position of a long field, and specials in a later block than the first, survive.
TEST_F(LedgerTest, SpecialBytesAnywhereInALongFieldSurviveTheJournal) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  constexpr std::string_view kSpecials("\t\n\r\\\0", 5);
  std::vector<std::string> ids;
  for (std::size_t at = 0; at < 48; ++at) {
    std::string id(48, 'a');
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>('a' + (i + at) % 26);
    id[at] = kSpecials[at % kSpecials.size()];
    if (at + 17 < id.size()) id[at + 17] = kSpecials[(at + 1) % kSpecials.size()];  // a second, a block later
    ids.push_back(std::move(id));
  }
  ids.emplace_back(16, 'x');  // exactly one block, nothing to escape
  ids.emplace_back(std::string(32, 'y') + "\n");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    SpendEntry e = entry(static_cast<int>(i + 1));
    e.request_id = ids[i];
    RequestRecord r = record_of(e);
    ASSERT_TRUE((*ledger)->record_request(r));
  }
  ASSERT_TRUE((*ledger)->flush());
  auto rows = store->audit_rows(1, 100);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ((*rows)[i].request_id, ids[i]) << "record " << i;
}

TEST_F(LedgerTest, DecodeJournalReadsEveryLineKindAndSkipsTornOnes) {
  const std::string journal =
      "R2\t7\t1\tid-7\treq\\t7\t" + std::to_string(kJan15) + "\tk1\tt1\tgpt-4o\teast\t1\t2\t3\t4\t5\t1\t200\t" +
      std::to_string(kJan15) + "\treq\\t7\tk1\tt1\t,\"x\":\"a\\\\tb\"}\n" +          // request with spend
      "R2\t8\t0\t" + std::to_string(kJan15) + "\treq-8\t\t\t,\"x\":8}\n" +            // refusal: no spend, no key
      "A1\t3\t" + std::to_string(kJan15) + "\tr3\tk\tt\t{\"seq\":3}\tp3\th3\n" +      // written by an older version
      "S1\tid-9\treq-9\t" + std::to_string(kJan15) + "\tk1\tt1\tm\ttg\t1\t2\t3\t4\t5\t0\t200\n" +
      "Z9\twhat\n" +                                                                   // unknown kind
      "R2\t9\t1\tid-9";                                                                 // torn: no newline
  Ledger::Batch b;
  EXPECT_EQ(Ledger::decode_journal(journal, b), 4u);
  ASSERT_EQ(b.spend_n, 2u);
  ASSERT_EQ(b.audit_n, 3u);
  EXPECT_EQ(b.spend[0].entry_id, "id-7");
  EXPECT_EQ(b.spend[0].request_id, "req\t7");
  EXPECT_EQ(b.spend[0].cost_nano_usd, 5);
  EXPECT_TRUE(b.spend[0].estimated);
  EXPECT_EQ(b.spend[1].entry_id, "id-9");
  EXPECT_EQ(b.audit[0].seq, 7);
  EXPECT_EQ(b.audit[0].request_id, "req\t7");
  EXPECT_EQ(b.audit[0].body, "{\"seq\":7,\"x\":\"a\\\\tb\"}");  // the tail is taken as written
  EXPECT_TRUE(b.audit[0].hash.empty());                          // chained by the writer
  EXPECT_EQ(b.audit[1].seq, 8);
  EXPECT_EQ(b.audit[1].key_id, "");
  EXPECT_EQ(b.audit[2].seq, 3);
  EXPECT_EQ(b.audit[2].hash, "h3");
  // Decoding into the same batch again reuses its rows.
  b.clear();
  EXPECT_EQ(Ledger::decode_journal(journal, b), 4u);
  EXPECT_EQ(b.audit_n, 3u);
}

TEST_F(LedgerTest, DecodeJournalBuildsTheAuditBodyOfRequestLinesAndSkipsMalformedOnes) {
  const std::string t = std::to_string(kJan15);
  const std::string head = "\treq\\t10\t" + t + "\tk1\tt1\tgpt-4o\teast\t1\t2\t3\t4\t5\t0\t200\t7\t";
  const std::string good = "R3\t10\t1\tid-10" + head +
                           "\t2\teast\tupstream_5xx\t3\tfailed\t40\t1\twest\tok\t4\t\t0\t0"  // attempts
                           "\t1\tinput:flagged injection"                                      // policy
                           "\t2\t1\t[redacted 9 bytes]\t0\t\n";                               // content
  const std::string refusal = "R3\t11\t0\t" + head + "\t0\t0\t0\n";
  const std::string journal =
      good + refusal +
      "R3\t12\t1\t" + head + "\t0\t0\t0\n" +             // billed without an entry id
      "R3\t13\t0\tid-13" + head + "\t0\t0\t0\n" +        // an entry id on a refusal
      "R3\t14\t0\t" + head + "\t99\tx\t0\t0\n" +         // more attempts than fields
      "R3\t15\t0\t" + head + "\t0\t0\t0\textra\n" +      // a field too many
      "R3\t16\t2\t" + head + "\t0\t0\t0\n" +             // not a flag
      "R3\t17\t0\t" + head + "\t0\t0\t7\n" +             // no such content mode
      "R3\t18\t0\t" + head + "\t0\t0\t1\t1\n";           // content fields missing
  Ledger::Batch b;
  EXPECT_EQ(Ledger::decode_journal(journal, b), 2u);
  ASSERT_EQ(b.spend_n, 1u);
  ASSERT_EQ(b.audit_n, 2u);
  const SpendEntry& e = b.spend[0];
  EXPECT_EQ(e.entry_id, "id-10");
  EXPECT_EQ(e.request_id, "req\t10");
  EXPECT_EQ(e.target, "east");
  EXPECT_EQ(e.cached_input_tokens, 3);
  EXPECT_EQ(e.cost_nano_usd, 5);
  EXPECT_EQ(e.status, 200);
  EXPECT_TRUE(e.overhead.empty());
  // The body is what write_audit_tail makes of the same record.
  const std::vector<AttemptView> attempts{{"east", "upstream_5xx", 3, "failed", 40, true}, {"west", "ok", 4}};
  const std::vector<std::string> policy{"input:flagged injection"};
  RequestRecord r;
  r.time = kJan15;
  r.request_id = "req\t10";
  r.key_id = "k1";
  r.team_id = "t1";
  r.model = "gpt-4o";
  r.target = "east";
  r.attempts = attempts;
  r.policy_decisions = policy;
  r.tokens = Usage{1, 2, 3, 4};
  r.cost_nano_usd = 5;
  r.latency_ms = 7;
  r.status = 200;
  r.content = ContentMode::redacted;
  r.prompt = std::string_view("[redacted 9 bytes]");
  EXPECT_EQ(b.audit[0].seq, 10);
  EXPECT_EQ(b.audit[0].request_id, "req\t10");
  EXPECT_EQ(b.audit[0].body, body_of(10, r));
  EXPECT_TRUE(b.audit[0].hash.empty());  // chained by the writer
  const auto o = boost::json::parse(b.audit[0].body).as_object();
  EXPECT_EQ(o.at("content").at("prompt").as_string(), "[redacted 9 bytes]");
  EXPECT_FALSE(o.at("content").as_object().contains("completion"));
  EXPECT_EQ(b.audit[1].seq, 11);
  EXPECT_FALSE(boost::json::parse(b.audit[1].body).as_object().contains("content"));
}

// Overhead entries (what providers charged for attempts that were not the caller's
// answer) travel as S2 lines, are reported apart from the caller's cost and never count
// towards a budget.
TEST_F(LedgerTest, OverheadEntriesAreReportedApartAndNeverCountTowardsBudgets) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  ASSERT_TRUE((*ledger)->record(entry(1)));  // the caller's: 1001
  SpendEntry o = entry(2);
  o.overhead = "stream_broken";
  o.cost_nano_usd = 700;
  ASSERT_TRUE((*ledger)->record(o));
  o = entry(3, "k2");
  o.overhead = "hedge_cancelled";
  o.cost_nano_usd = 50;
  ASSERT_TRUE((*ledger)->record(o));
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*store->spend_entry_count(), 3);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::key, "k1", kJan15), 1001);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::team, "t1", kJan15), 1001);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::key, "k2", kJan15), 0);
  auto rows = store->spend_report({kJan15, kJan15 + 10, storage::SpendGroup::key});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].group, "k1");
  EXPECT_EQ((*rows)[0].requests, 1);
  EXPECT_EQ((*rows)[0].cost_nano_usd, 1001);
  EXPECT_EQ((*rows)[0].input_tokens, 10);
  EXPECT_EQ((*rows)[0].overhead_attempts, 1);
  EXPECT_EQ((*rows)[0].overhead_nano_usd, 700);
  EXPECT_EQ((*rows)[1].group, "k2");
  EXPECT_EQ((*rows)[1].requests, 0);
  EXPECT_EQ((*rows)[1].cost_nano_usd, 0);
  EXPECT_EQ((*rows)[1].overhead_nano_usd, 50);
}

TEST_F(LedgerTest, DecodeJournalReadsOverheadLinesBesideOldOnes) {
  const std::string t = std::to_string(kJan15);
  const std::string journal =
      "S2\tid-1\treq-1\t" + t + "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t9\t1\t200\tstream_broken\n" +
      "S1\tid-2\treq-2\t" + t + "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t5\t0\t200\n" +
      "S2\tid-3\treq-3\t" + t + "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t9\t1\t200\n" +  // without its reason: refused
      "S2\tid-4\treq-4\t" + t + "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t9\t1\t200\tfailed\textra\n";  // too many fields
  Ledger::Batch b;
  EXPECT_EQ(Ledger::decode_journal(journal, b), 2u);
  ASSERT_EQ(b.spend_n, 2u);
  EXPECT_EQ(b.spend[0].overhead, "stream_broken");
  EXPECT_EQ(b.spend[0].cost_nano_usd, 9);
  EXPECT_EQ(b.spend[1].overhead, "");
  // Reused rows: an S1 line decoded where an S2 was does not inherit its reason.
  b.clear();
  EXPECT_EQ(Ledger::decode_journal("S1\tid-2\treq-2\t" + t + "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t5\t0\t200\n", b), 1u);
  EXPECT_EQ(b.spend[0].overhead, "");
}

// kill -9 before any commit: S1, S2 and R2 lines in the journal are all replayed, overhead
// kept apart from the caller's spend.
TEST_F(LedgerTest, ReplayAfterACrashKeepsOverheadApart) {
  std::filesystem::create_directories(dir_ / "journal");
  const std::string t = std::to_string(kJan15);
  {
    std::ofstream j(dir_ / "journal" / "ledger-journal-0.log", std::ios::trunc);
    j << "S1\tid-1\treq-1\t" << t << "\tk1\tt1\tm\ttg\t1\t2\t0\t0\t100\t0\t200\n";
    j << "S2\tid-2\treq-2\t" << t << "\tk1\tt1\tm\ttg\t3\t4\t0\t0\t40\t1\t200\tstream_broken\n";
    j << "R2\t1\t1\tid-3\treq-2\t" << t << "\tk1\tt1\tm\ttg2\t5\t6\t0\t0\t60\t0\t200\t" << t << "\treq-2\tk1\tt1\t"
      << ",\"time\":" << t << "}\n";
  }
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ((*ledger)->stats().replayed, 3u);
  EXPECT_EQ(*store->spend_entry_count(), 3);
  EXPECT_EQ(*store->spent_since(storage::SpendScope::key, "k1", kJan15), 160);
  auto rows = store->spend_report({kJan15, kJan15 + 1, storage::SpendGroup::model});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].requests, 2);
  EXPECT_EQ((*rows)[0].cost_nano_usd, 160);
  EXPECT_EQ((*rows)[0].overhead_attempts, 1);
  EXPECT_EQ((*rows)[0].overhead_nano_usd, 40);
}

// Sequence numbers are taken only by accepted records, so a refusal leaves no gap in the
// chain, and numbering continues across segment switches.
TEST_F(LedgerTest, RefusedRequestsTakeNoSequenceNumber) {
  auto real = open_store();
  test::GatedStore gated(*real);
  auto ledger = Ledger::open(gated, options(5));
  ASSERT_TRUE(ledger);
  gated.close_gate();
  std::vector<SpendEntry> es;
  for (int i = 0; i < 8; ++i) es.push_back(entry(i));
  const auto rec = [&](int i) { return record_of(es[static_cast<std::size_t>(i)], /*billed=*/false); };
  ASSERT_EQ(*(*ledger)->record_request(rec(0)), 1);
  gated.wait_for_waiter();  // seq 1 is being committed; segment 1 takes the next five
  for (int i = 1; i <= 5; ++i) {
    auto seq = (*ledger)->record_request(rec(i));
    ASSERT_TRUE(seq);
    EXPECT_EQ(*seq, i + 1);
  }
  EXPECT_FALSE((*ledger)->record_request(rec(6)));  // queue full
  gated.open_gate();
  ASSERT_TRUE((*ledger)->flush());
  auto seq = (*ledger)->record_request(rec(7));
  ASSERT_TRUE(seq);
  EXPECT_EQ(*seq, 7);
  ASSERT_TRUE((*ledger)->flush());
  auto v = AuditTrail::verify(*real, 7);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->reason << " at " << v->first_bad_seq.value_or(-1);
}

// A crash after a commit but before its segment was zeroed leaves committed lines in the
// journal: replay must skip the audit rows already stored (their seq) and chain the rest
// from the last stored hash. The leftover lines here are R2, as an earlier version wrote
// them: an upgrade after a crash replays them into the same chain.
TEST_F(LedgerTest, ReplaySkipsCommittedAuditRowsAndChainsTheRest) {
  std::vector<std::string> tails;
  for (int i = 1; i <= 6; ++i) tails.push_back(tail_for(kJan15 + i, "r" + std::to_string(i)));
  {
    auto store = open_store();
    auto ledger = Ledger::open(*store, options());
    ASSERT_TRUE(ledger);
    std::vector<SpendEntry> es;
    for (int i = 1; i <= 4; ++i) es.push_back(entry(i));
    for (const SpendEntry& e : es) ASSERT_TRUE((*ledger)->record_request(record_of(e, false)));
  }
  {
    // Seqs 3 and 4 again (committed), then 5 and 6 (not yet), split over both segments
    // and out of order.
    auto line = [&](int seq) {
      return "R2\t" + std::to_string(seq) + "\t0\t" + std::to_string(kJan15 + seq) + "\tr" + std::to_string(seq) +
             "\tk1\tt1\t" + tails[static_cast<std::size_t>(seq - 1)] + "\n";
    };
    std::ofstream j0(dir_ / "journal" / "ledger-journal-0.log", std::ios::trunc);
    j0 << line(5) << line(6);
    std::ofstream j1(dir_ / "journal" / "ledger-journal-1.log", std::ios::trunc);
    j1 << line(3) << line(4);
  }
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ((*ledger)->stats().replayed, 4u);
  auto v = AuditTrail::verify(*store, 6);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->reason << " at " << v->first_bad_seq.value_or(-1);
  EXPECT_EQ(v->checked, 6);
  // New records continue after the replayed ones.
  const SpendEntry e7 = entry(7);
  auto seq = (*ledger)->record_request(record_of(e7, false));
  ASSERT_TRUE(seq);
  EXPECT_EQ(*seq, 7);
}

// Spend and audit written as request lines survive a kill -9 that came before any
// commit: the whole chain is computed at replay.
TEST_F(LedgerTest, KillNineBeforeAnyCommitKeepsRequestLinesAndTheirChain) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    auto s = storage::SqliteStore::open({.path = dir_.path() / "gov.db"});
    if (!s) ::_exit(2);
    test::GatedStore gated(**s);
    gated.close_gate();
    auto ledger = Ledger::open(gated, options());
    if (!ledger) ::_exit(3);
    for (int i = 0; i < 2000; ++i) {
      const SpendEntry e = entry(i);
      if (!(*ledger)->record_request(record_of(e, i % 4 != 0))) ::_exit(4);
    }
    const char done = 'x';
    if (::write(pipefd[1], &done, 1) != 1) ::_exit(5);
    for (;;) ::pause();
  }
  ::close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1) << "child failed before recording";
  ::close(pipefd[0]);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  auto store = open_store();
  EXPECT_EQ(*store->spend_entry_count(), 0);
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger) << ledger.error().message;
  EXPECT_EQ((*ledger)->stats().replayed, 2000u);
  EXPECT_EQ(*store->spend_entry_count(), 1500);
  auto v = AuditTrail::verify(*store, 2000);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->reason << " at " << v->first_bad_seq.value_or(-1);
  EXPECT_EQ(v->checked, 2000);
}

TEST_F(LedgerTest, ConcurrentRecordersAllLand) {
  auto store = open_store();
  auto ledger = Ledger::open(*store, options());
  ASSERT_TRUE(ledger);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) ASSERT_TRUE((*ledger)->record(entry(t * 1000 + i)));
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE((*ledger)->flush());
  EXPECT_EQ(*store->spend_entry_count(), 2000);
  EXPECT_EQ((*ledger)->stats().committed, 2000u);
}

}  // namespace
}  // namespace bulwark::accounting
