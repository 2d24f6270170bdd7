// Versioned schema migrations, one list per backend. The schemas differ only in types: both store
// times as BIGINT unix milliseconds and use the same table and column names.
#pragma once

#include <span>
#include <string>

namespace crmhost::store {

struct Migration {
  int version;
  const char *description;
  std::string sql;  // several statements; runs inside the migration transaction
};

std::span<const Migration> sqlite_migrations();
std::span<const Migration> postgresql_migrations();

}  // namespace crmhost::store
