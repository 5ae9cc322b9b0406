#pragma once
// Policy model allow-lists match ASCII case-insensitively ("GPT-4o" allows "gpt-4o").
#include <string_view>

#include "core/glob.hpp"

namespace bulwark::policy {

inline bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  return bulwark::glob_match(pattern, text, GlobCase::ascii_insensitive);
}

}  // namespace bulwark::policy
