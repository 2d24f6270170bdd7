// Small helpers shared by the SqlStore translation units.
#pragma once

#include <optional>
#include <string>

#include "store/sql.hpp"
#include "store/store.hpp"

namespace crmhost::store::sql_helpers {

inline std::optional<Timestamp> opt_time(const SqlRow &row, int col) {
  if (row.is_null(col)) return std::nullopt;
  return from_unix_ms(row.i64(col));
}

inline SqlParam opt_time_param(const std::optional<Timestamp> &t) {
  return t ? SqlParam(to_unix_ms(*t)) : SqlParam();
}

inline void require(bool ok, const std::string &what) {
  if (!ok) throw StoreError(StoreError::Kind::invalid_argument, what);
}

inline std::string placeholders(std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += i ? ", ?" : "?";
  return out;
}

}  // namespace crmhost::store::sql_helpers
