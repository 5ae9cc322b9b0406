#pragma once
// What the governance benchmarks set a ledger up with: a fresh temporary directory for the
// database and journal (removed afterwards), and options for a loop that records far
// faster than traffic would.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "accounting/ledger.hpp"

namespace bulwark::bench {

struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    std::string t = (std::filesystem::temp_directory_path() / "bulwark-bench-XXXXXX").string();
    if (::mkdtemp(t.data()) != nullptr) path = t;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

// A queue and journal segment large enough that a tight loop never outruns the writer into
// refusals.
inline accounting::LedgerOptions loop_ledger_options(const std::filesystem::path& dir) {
  accounting::LedgerOptions o;
  o.journal_dir = dir / "journal";
  o.queue_capacity = 1 << 22;
  o.journal_segment_bytes = 256u << 20;
  return o;
}

}  // namespace bulwark::bench
