#pragma once
// Prometheus metrics with one shard per worker thread: a worker only touches its own shard
// (relaxed atomics, no lock on the hot path); a scrape sums the shards. A shard's label map
// is only ever modified by its owner, under a mutex the scraper also takes, so the owner's
// lock-free lookups never race with a modification.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bulwark::telemetry {

class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds) : bounds_(bounds), counts_(bounds.size() + 1) {}
  void observe(double value) noexcept;
  std::span<const double> bounds() const noexcept { return bounds_; }
  std::uint64_t bucket(std::size_t i) const noexcept { return counts_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept { return static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) * 1e-9; }

 private:
  std::span<const double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;  // non-cumulative; +Inf last
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanos_{0};  // sums seconds as integer nanoseconds: atomic add without CAS loops
};

// Buckets in seconds.
inline constexpr std::array<double, 18> kLatencyBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                         0.5,    1,     2.5,    5,     10,   30,    60,   120,  300};
inline constexpr std::array<double, 14> kOverheadBuckets{0.000005, 0.00001, 0.000025, 0.00005, 0.0001,
                                                          0.00025,  0.0005,  0.001,    0.0025,  0.005,
                                                          0.01,     0.025,   0.05,     0.1};

// One unlabelled sample with its HELP and TYPE lines, for collectors that render their
// own families (type: "counter" or "gauge").
void append_family(std::string& out, std::string_view name, std::string_view help, std::string_view type,
                   std::uint64_t value);

enum class CounterId : std::uint8_t { requests, upstream_attempts, route_decisions, count_ };
enum class HistogramId : std::uint8_t { request_duration, upstream_duration, overhead, ttft, count_ };
enum class GaugeId : std::uint8_t { in_flight, open_connections, count_ };

class Shard {
 public:
  Shard();
  // label values joined by '\x1f' in the family's label order
  void inc(CounterId id, std::string_view labels, std::uint64_t n = 1);
  void observe(HistogramId id, std::string_view labels, double seconds);
  void add(GaugeId id, std::int64_t delta) noexcept {
    gauges_[static_cast<std::size_t>(id)].fetch_add(delta, std::memory_order_relaxed);
  }

 private:
  friend class Registry;
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <class T>
  struct Family {
    std::mutex mutex;  // taken by the owner when inserting and by the scraper when reading
    std::unordered_map<std::string, std::unique_ptr<T>, StringHash, std::equal_to<>> series;
  };
  std::array<Family<std::atomic<std::uint64_t>>, static_cast<std::size_t>(CounterId::count_)> counters_;
  std::array<Family<Histogram>, static_cast<std::size_t>(HistogramId::count_)> histograms_;
  std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(GaugeId::count_)> gauges_{};
};

class Registry {
 public:
  explicit Registry(std::size_t shards);
  Shard& shard(std::size_t i) noexcept { return *shards_[i % shards_.size()]; }
  std::size_t shard_count() const noexcept { return shards_.size(); }
  // Extra text appended at scrape time (breaker states and other process-wide state).
  void add_collector(std::function<void(std::string&)> collector);
  std::string render() const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
  mutable std::mutex collectors_mutex_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Builds "a\x1fb" label keys without allocating when small.
std::string label_key(std::initializer_list<std::string_view> values);

}  // namespace bulwark::telemetry
