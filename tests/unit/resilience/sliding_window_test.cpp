#include "resilience/sliding_window.hpp"

#include <gtest/gtest.h>

namespace bulwark::resilience {
namespace {

using namespace std::chrono_literals;

struct N {
  int v = 0;
  N& operator+=(const N& o) { v += o.v; return *this; }
  N& operator-=(const N& o) { v -= o.v; return *this; }
};

TEST(SecondRing, KeepsOnlyTheLastSeconds) {
  SecondRing<N> r(3);
  r.add(100, N{1});
  r.add(101, N{2});
  r.add(102, N{4});
  EXPECT_EQ(r.total(102).v, 7);
  EXPECT_EQ(r.total(103).v, 6);  // second 100 left
  EXPECT_EQ(r.total(104).v, 4);
  EXPECT_EQ(r.total(200).v, 0);  // a long gap empties it
  r.add(200, N{5});
  EXPECT_EQ(r.total(200).v, 5);
}

TEST(SecondRing, NeverMovesBackwards) {
  SecondRing<N> r(2);
  r.add(10, N{1});
  r.add(9, N{1});  // a slightly stale clock reading lands in the newest second
  EXPECT_EQ(r.total(10).v, 2);
  EXPECT_EQ(r.total(11).v, 2);
  EXPECT_EQ(r.total(12).v, 0);
}

TEST(CallWindow, CountBasedEvictsTheOldestCall) {
  CallWindow w(WindowKind::count_based, 3);
  const TimePoint t{};
  w.record(t, true, false);
  w.record(t, false, true);
  w.record(t, false, false);
  EXPECT_EQ(w.stats(t), (WindowStats{3, 1, 1}));
  w.record(t, false, false);  // evicts the failure
  EXPECT_EQ(w.stats(t), (WindowStats{3, 0, 1}));
  w.record(t, false, false);  // evicts the slow one
  EXPECT_EQ(w.stats(t), (WindowStats{3, 0, 0}));
  w.clear();
  EXPECT_EQ(w.stats(t), (WindowStats{}));
}

TEST(CallWindow, TimeBasedAgesOutOldCalls) {
  CallWindow w(WindowKind::time_based, 10);
  ManualClock clock;
  w.record(clock.now(), true, false);
  clock.advance(5s);
  w.record(clock.now(), false, true);
  EXPECT_EQ(w.stats(clock.now()), (WindowStats{2, 1, 1}));
  clock.advance(5s);  // the first call is now 10 s old: out
  EXPECT_EQ(w.stats(clock.now()), (WindowStats{1, 0, 1}));
  clock.advance(5s);
  EXPECT_EQ(w.stats(clock.now()), (WindowStats{}));
}

TEST(WindowStats, Rates) {
  EXPECT_DOUBLE_EQ((WindowStats{4, 1, 2}).failure_rate(), 0.25);
  EXPECT_DOUBLE_EQ((WindowStats{4, 1, 2}).slow_rate(), 0.5);
  EXPECT_DOUBLE_EQ(WindowStats{}.failure_rate(), 0.0);
}

}  // namespace
}  // namespace bulwark::resilience
