#include "accounting/budget.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "storage/sqlite_store.hpp"
#include "support/temp_dir.hpp"

namespace bulwark::accounting {
namespace {

using namespace std::chrono_literals;
using storage::BudgetPeriod;
using storage::SpendScope;

constexpr std::int64_t kJan15 = 1'736'899'200'000;  // 2025-01-15T00:00:00Z, a Wednesday
constexpr std::int64_t kDay = 86'400'000;

std::chrono::system_clock::time_point at(std::int64_t ms) {
  return std::chrono::system_clock::time_point{std::chrono::milliseconds(ms)};
}
TimePoint steady_at(std::int64_t ms) { return TimePoint{std::chrono::milliseconds(ms)}; }

TEST(PeriodStart, CalendarPeriodsInUtc) {
  const auto t = at(kJan15 + 13 * 3'600'000 + 5);  // Wed 13:00:00.005
  EXPECT_EQ(period_start(BudgetPeriod::day, t), kJan15);
  EXPECT_EQ(period_start(BudgetPeriod::week, t), kJan15 - 2 * kDay);  // Monday 13th
  EXPECT_EQ(period_start(BudgetPeriod::month, t), kJan15 - 14 * kDay);  // 1st
  EXPECT_EQ(period_start(BudgetPeriod::total, t), 0);
  // Monday itself and Sunday night.
  EXPECT_EQ(period_start(BudgetPeriod::week, at(kJan15 - 2 * kDay)), kJan15 - 2 * kDay);
  EXPECT_EQ(period_start(BudgetPeriod::week, at(kJan15 - 2 * kDay - 1)), kJan15 - 9 * kDay);
  // Leap-year February.
  const std::int64_t feb29_2024 = 1'709'164'800'000;
  EXPECT_EQ(period_start(BudgetPeriod::month, at(feb29_2024 + 5)), feb29_2024 - 28 * kDay);
}

TEST(BudgetTracker, ReserveSettleReleasesTheRest) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 1000, BudgetPeriod::month}};
  auto r = b.reserve(s, 600);
  ASSERT_TRUE(r);
  EXPECT_EQ(b.usage(SpendScope::key, "k")->reserved_nano_usd, 600);
  EXPECT_FALSE(b.reserve(s, 401));  // 0 + 600 + 401 > 1000
  b.settle(*r, 250);
  const auto u = *b.usage(SpendScope::key, "k");
  EXPECT_EQ(u.spent_nano_usd, 250);
  EXPECT_EQ(u.reserved_nano_usd, 0);
  EXPECT_TRUE(b.reserve(s, 750));
  auto over = b.reserve(s, 751);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind, ErrorKind::budget_exceeded);
}

TEST(BudgetTracker, DroppedReservationIsReleased) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 100, BudgetPeriod::day}};
  {
    auto r = b.reserve(s, 100);
    ASSERT_TRUE(r);
    EXPECT_FALSE(b.reserve(s, 1));
  }
  EXPECT_EQ(b.usage(SpendScope::key, "k")->reserved_nano_usd, 0);
  EXPECT_TRUE(b.reserve(s, 100));
}

TEST(BudgetTracker, TeamRefusalReleasesTheKeyReservation) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 1000, BudgetPeriod::month},
                             {SpendScope::team, "t", 100, BudgetPeriod::month}};
  auto r = b.reserve(s, 500);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("team"), std::string::npos);
  EXPECT_EQ(b.usage(SpendScope::key, "k")->reserved_nano_usd, 0);
}

TEST(BudgetTracker, MoreSubjectsThanAReservationHoldsIsRefusedWithoutHoldingAny) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  std::vector<std::string> ids;
  std::vector<BudgetSubject> s;
  for (std::size_t i = 0; i <= Reservation::kMaxSubjects; ++i) ids.push_back("k" + std::to_string(i));
  for (const std::string& id : ids) s.push_back({SpendScope::key, id, 1000, BudgetPeriod::month});
  auto r = b.reserve(s, 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, bulwark::ErrorKind::internal);
  EXPECT_FALSE(b.usage(SpendScope::key, "k0"));  // nothing was reserved, nothing was even looked up
  s.pop_back();
  auto ok = b.reserve(s, 10);
  ASSERT_TRUE(ok);
  EXPECT_EQ(b.usage(SpendScope::key, ids[Reservation::kMaxSubjects - 1])->reserved_nano_usd, 10);
}

// 50 threads race for a budget worth exactly 10 requests at their maximum cost, each
// settling at that maximum: exactly 10 get through and spend never passes the budget.
TEST(BudgetTracker, ConcurrentBurstCannotOverrun) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  constexpr std::int64_t kMaxCost = 12'345;
  const BudgetSubject s[] = {{SpendScope::key, "k", 10 * kMaxCost, BudgetPeriod::day},
                             {SpendScope::team, "t", 1'000'000'000, BudgetPeriod::day}};
  std::atomic<int> admitted{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      auto r = b.reserve(s, kMaxCost);
      if (!r) return;
      ++admitted;
      b.settle(*r, kMaxCost);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  const auto u = *b.usage(SpendScope::key, "k");
  EXPECT_EQ(admitted.load(), 10);
  EXPECT_EQ(u.spent_nano_usd, 10 * kMaxCost);
  EXPECT_LE(u.spent_nano_usd, u.budget_nano_usd);
  EXPECT_EQ(u.reserved_nano_usd, 0);
  EXPECT_EQ(b.usage(SpendScope::team, "t")->spent_nano_usd, 10 * kMaxCost);
}

// Same race, repeated, with true costs below the maximum: whatever the interleaving,
// spend stays within budget and no reservation is left behind.
TEST(BudgetTracker, ManyRoundsKeepTheInvariant) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  constexpr std::int64_t kBudget = 1'000'000;
  const BudgetSubject s[] = {{SpendScope::key, "k", kBudget, BudgetPeriod::total}};
  std::vector<std::thread> threads;
  std::atomic<std::int64_t> settled{0};
  for (int t = 0; t < 50; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::int64_t max = 1000 + (t * 37 + i * 11) % 5000;
        auto r = b.reserve(s, max);
        if (!r) continue;
        const std::int64_t actual = max - (i % 3) * 100;
        settled += actual;
        b.settle(*r, actual);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto u = *b.usage(SpendScope::key, "k");
  EXPECT_LE(u.spent_nano_usd, kBudget);
  EXPECT_EQ(u.spent_nano_usd, settled.load());
  EXPECT_EQ(u.reserved_nano_usd, 0);
}

TEST(BudgetTracker, DailyBudgetRollsOverAtUtcMidnight) {
  ManualClock clock(steady_at(kJan15 + kDay - 60'000));  // 23:59 UTC
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 100, BudgetPeriod::day}};
  auto r1 = b.reserve(s, 60);
  ASSERT_TRUE(r1);
  b.settle(*r1, 60);
  auto in_flight = b.reserve(s, 40);  // still running at midnight
  ASSERT_TRUE(in_flight);
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(59s);
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(1s);  // 00:00 next day
  auto u = *b.usage(SpendScope::key, "k");
  EXPECT_EQ(u.spent_nano_usd, 0);
  EXPECT_EQ(u.reserved_nano_usd, 40);  // the in-flight request keeps its hold
  EXPECT_EQ(u.period_start, kJan15 + kDay);
  EXPECT_TRUE(b.reserve(s, 60));
  EXPECT_FALSE(b.reserve(s, 61));
  b.settle(*in_flight, 30);  // settles into the new day
  EXPECT_EQ(b.usage(SpendScope::key, "k")->spent_nano_usd, 30);
}

TEST(BudgetTracker, MonthlyBudgetRollsOverOnTheFirst) {
  ManualClock clock(steady_at(kJan15));
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::team, "t", 100, BudgetPeriod::month}};
  b.charge(s, 100);
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(std::chrono::milliseconds(16 * kDay) + 23h);  // Jan 31, 23:00
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(1h);  // Feb 1
  EXPECT_TRUE(b.reserve(s, 100));
}

TEST(BudgetTracker, WeeklyBudgetRollsOverOnMonday) {
  ManualClock clock(steady_at(kJan15 + 4 * kDay + 23 * 3'600'000));  // Sunday Jan 19, 23:00 UTC
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 100, BudgetPeriod::week}};
  b.charge(s, 100);
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(59min);
  EXPECT_FALSE(b.reserve(s, 1));
  clock.advance(1min);  // Monday Jan 20
  EXPECT_TRUE(b.reserve(s, 100));
  EXPECT_EQ(b.usage(SpendScope::key, "k")->period_start, kJan15 + 5 * kDay);
}

// The period a state holds is remembered with its end, so most calls do no calendar
// arithmetic; a wall clock stepped back before its start still finds the right period.
TEST(BudgetTracker, AWallClockSteppedBackFindsItsPeriodAgain) {
  ManualClock clock(steady_at(kJan15 + kDay - 60'000));  // Jan 15, 23:59
  BudgetTracker b(clock);
  const BudgetSubject s[] = {{SpendScope::key, "k", 100, BudgetPeriod::day}};
  b.charge(s, 70);
  clock.advance(2min);  // Jan 16
  EXPECT_EQ(b.usage(SpendScope::key, "k")->period_start, kJan15 + kDay);
  EXPECT_EQ(b.usage(SpendScope::key, "k")->spent_nano_usd, 0);
  clock.advance(-2min);  // stepped back to Jan 15
  EXPECT_EQ(b.usage(SpendScope::key, "k")->period_start, kJan15);
  EXPECT_TRUE(b.reserve(s, 100));
}

TEST(BudgetTracker, RecoversThisPeriodsSpendFromTheStore) {
  test::TempDir dir;
  auto store = storage::SqliteStore::open({.path = dir / "gov.db"});
  ASSERT_TRUE(store);
  std::vector<storage::SpendEntry> past(3);
  const std::int64_t times[] = {kJan15 - kDay + 5, kJan15 + 5, kJan15 + 10};  // yesterday, today x2
  const std::int64_t costs[] = {1000, 200, 300};
  for (std::size_t i = 0; i < 3; ++i) {
    past[i].entry_id = "e" + std::to_string(i);
    past[i].time = times[i];
    past[i].key_id = "k";
    past[i].team_id = "t";
    past[i].cost_nano_usd = costs[i];
  }
  ASSERT_TRUE((*store)->append(past, {}));
  ManualClock clock(steady_at(kJan15 + 3'600'000));
  BudgetTracker b(clock, store->get());
  const BudgetSubject day[] = {{SpendScope::key, "k", 1000, BudgetPeriod::day}};
  const BudgetSubject month[] = {{SpendScope::team, "t", 2000, BudgetPeriod::month}};
  ASSERT_TRUE(b.recover(day));
  EXPECT_EQ(b.usage(SpendScope::key, "k")->spent_nano_usd, 500);
  auto held = b.reserve(day, 500);
  ASSERT_TRUE(held);
  EXPECT_FALSE(b.reserve(day, 1));
  auto r = b.reserve(month, 500);  // loaded on first use: 1500 spent this month
  ASSERT_TRUE(r);
  EXPECT_EQ(b.usage(SpendScope::team, "t")->spent_nano_usd, 1500);
  EXPECT_FALSE(b.reserve(month, 1));
}

}  // namespace
}  // namespace bulwark::accounting
