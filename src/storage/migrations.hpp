#pragma once
// Versioned schema migrations for the SQLite store: an ordered list in code. At open each
// pending migration runs in its own transaction together with its schema_migrations row,
// so a failure leaves the database at the previous version.
#include <span>
#include <string_view>

#include "core/error.hpp"

struct sqlite3;

namespace bulwark::storage {

struct Migration {
  int version;  // strictly increasing from 1
  std::string_view name;
  std::string_view sql;  // one or more statements
};

// The migrations this build knows, oldest first.
std::span<const Migration> builtin_migrations() noexcept;

// Brings db to the last version in `list`. Refuses (without changing anything) a
// database whose version is newer than this build knows, or a list out of order.
// Returns the resulting version.
Result<int> migrate(sqlite3* db, std::span<const Migration> list);

// The highest applied version; 0 for a fresh database.
Result<int> applied_version(sqlite3* db);

}  // namespace bulwark::storage
