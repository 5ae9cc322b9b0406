#pragma once
// Model allow-list globs: '*' matches any run of bytes (including none), '?' exactly one
// byte, everything else itself, ASCII case-insensitively ("gpt-4o*", "anthropic.*").
#include <string_view>

namespace bulwark::policy {

bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace bulwark::policy
