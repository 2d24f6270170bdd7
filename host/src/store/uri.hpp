// Parsing of store URIs and redaction of the secrets they may carry.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace crmhost::store {

enum class Backend { sqlite, postgresql };

struct StoreUri {
  Backend backend = Backend::sqlite;
  std::filesystem::path sqlite_path;  // SQLite: the database file
  std::string pg_conninfo;            // PostgreSQL: the libpq URI, unchanged
};

// Throws StoreError(invalid_argument) naming the (redacted) URI when it cannot be used.
StoreUri parse_store_uri(const std::string &uri);

// The password in a URI's userinfo or `password=` parameter, as written (for scrubbing messages).
std::string uri_password(std::string_view uri);

}  // namespace crmhost::store
