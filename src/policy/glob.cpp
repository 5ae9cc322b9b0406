#include "policy/glob.hpp"

#include <cstddef>

namespace bulwark::policy {
namespace {
char fold(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool glob_match(std::string_view p, std::string_view t) noexcept {
  // Greedy with one backtrack point: linear for the patterns an allow-list holds.
  std::size_t pi = 0, ti = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      resume = ti;
    } else if (pi < p.size() && (p[pi] == '?' || fold(p[pi]) == fold(t[ti]))) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++resume;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace bulwark::policy
