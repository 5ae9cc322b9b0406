#pragma once
// `bulwark keys|teams|spend|audit`: governance from the command line. The commands open
// the configured SQLite database directly (WAL lets them run beside a live gateway, which
// picks key changes up within governance.key_refresh), and speak the admin API's JSON.
#include <span>
#include <string_view>

namespace bulwark::app {

extern const char* const kGovernanceUsage;

// args[0] is the command ("keys", "teams", "spend" or "audit"). Returns the exit code.
int governance_command(std::span<const std::string_view> args);

}  // namespace bulwark::app
