#pragma once
// Cold caches for a micro-benchmark. A gateway at one connection runs the kernel's
// loopback TCP, the HTTP parser and the upstream client between two requests, so by the
// time it reaches any one step of a request that step's code and data have left the
// nearer caches and its branches are forgotten. A warm loop over the same step shows
// none of that (governance measured about six times cheaper warm than in place).
// Chill::operator() stands in for the rest of a request: it writes through more memory
// than the L2 holds (which, inclusive of the L1s, also takes their code lines) and runs
// branches no predictor can learn. Call it with the timer paused.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bulwark::bench {

class Chill {
 public:
  explicit Chill(std::size_t bytes = std::size_t{4} << 20) : junk_(bytes / sizeof(std::uint64_t)) {}

  [[gnu::noinline]] void operator()() {
    for (std::size_t i = 0; i < junk_.size(); i += 8) junk_[i] += i;  // one write per 64-byte line
    std::uint64_t acc = 0;
    for (int i = 0; i < 20'000; ++i) {
      seed_ ^= seed_ << 13, seed_ ^= seed_ >> 7, seed_ ^= seed_ << 17;
      if (seed_ & 1U) acc += seed_;
      else acc ^= seed_ >> 3;
      if (seed_ & 2U) acc *= 3;
    }
    benchmark::DoNotOptimize(acc);
    benchmark::ClobberMemory();
  }

 private:
  std::vector<std::uint64_t> junk_;
  std::uint64_t seed_ = 0x9e3779b97f4a7c15ULL;
};

}  // namespace bulwark::bench
