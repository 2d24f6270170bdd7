// The small SQL surface both backends provide, so the store logic is written once (sql_store.cpp).
// Statements use '?' placeholders; the PostgreSQL adapter rewrites them to $n.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace crmhost::store {

// NULL, integer or text. Text is a view: the referenced string must outlive the call.
using SqlParam = std::variant<std::monostate, std::int64_t, std::string_view>;
using SqlParams = std::vector<SqlParam>;

inline SqlParam opt_param(const std::optional<std::int64_t> &v) {
  return v ? SqlParam(*v) : SqlParam();
}

class SqlRow {
 public:
  virtual bool is_null(int col) const = 0;
  virtual std::int64_t i64(int col) const = 0;  // NULL reads as 0
  virtual std::string text(int col) const = 0;  // NULL reads as ""
  std::optional<std::int64_t> opt_i64(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::int64_t>(i64(col));
  }
  virtual ~SqlRow() = default;
};

using RowHandler = std::function<void(const SqlRow &)>;

// One open transaction. Errors are thrown as StoreError.
class SqlTx {
 public:
  virtual void query(std::string_view sql, const SqlParams &params, const RowHandler &on_row) = 0;
  virtual std::int64_t exec(std::string_view sql,
                            const SqlParams &params = {}) = 0;  // rows changed
  // Runs `INSERT ... ON CONFLICT DO NOTHING` (no RETURNING clause) and returns the id of the new
  // row, or nullopt when it conflicted. SQLite answers from last_insert_rowid, which is cheaper
  // than RETURNING on the hot enqueue path.
  virtual std::optional<std::int64_t> insert_returning_id(std::string_view sql,
                                                          const SqlParams &params) = 0;
  // Runs a script of several statements without parameters (migrations).
  virtual void exec_script(std::string_view sql) = 0;

  std::optional<std::int64_t> query_i64(std::string_view sql, const SqlParams &params) {
    std::optional<std::int64_t> out;
    query(sql, params, [&](const SqlRow &r) { out = r.i64(0); });
    return out;
  }
  virtual ~SqlTx() = default;
};

}  // namespace crmhost::store
