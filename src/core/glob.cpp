#include "core/glob.hpp"

#include <cstddef>

namespace bulwark {
namespace {
char fold(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool glob_match(std::string_view p, std::string_view t, GlobCase mode) noexcept {
  const bool insensitive = mode == GlobCase::ascii_insensitive;
  const auto same = [insensitive](char a, char b) { return insensitive ? fold(a) == fold(b) : a == b; };
  std::size_t pi = 0, ti = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      resume = ti;
    } else if (pi < p.size() && (p[pi] == '?' || same(p[pi], t[ti]))) {
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

}  // namespace bulwark
