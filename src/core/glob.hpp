#pragma once
// Globs for model allow-lists: '*' matches any run of bytes (including none), '?' exactly
// one byte, everything else itself ("gpt-4o*", "anthropic.*"). Greedy with one backtrack
// point: linear for the patterns an allow-list holds.
#include <string_view>

namespace bulwark {

enum class GlobCase : bool { sensitive, ascii_insensitive };

bool glob_match(std::string_view pattern, std::string_view text, GlobCase mode = GlobCase::sensitive) noexcept;

}  // namespace bulwark
