#include "accounting/ledger.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

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
