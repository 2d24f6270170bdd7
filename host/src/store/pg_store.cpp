// PostgreSQL backend through libpqxx 6.4: a bounded connection pool, prepared statements per
// connection, claims with FOR UPDATE SKIP LOCKED so several hosts can share one queue.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <pqxx/pqxx>
#include <unordered_map>

#include "store/backends.hpp"
#include "store/sql_store.hpp"
#include "store/uri.hpp"

namespace crmhost::store {
namespace {

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 0xf]};
    }
  }
  return out;
}

std::string read_password_file(const std::filesystem::path &file) {
  std::ifstream in(file);
  std::string password;
  if (!in || !std::getline(in, password)) {
    throw StoreError(StoreError::Kind::invalid_argument,
                     "cannot read PostgreSQL password file " + file.string());
  }
  while (!password.empty() && std::isspace(static_cast<unsigned char>(password.back()))) {
    password.pop_back();
  }
  return password;
}

// '?' placeholders to $1, $2, ... (our SQL never has '?' inside literals).
std::string to_dollar_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  for (char c : sql) {
    if (c == '?')
      out += "$" + std::to_string(++n);
    else
      out.push_back(c);
  }
  return out;
}

class PgRow final : public SqlRow {
 public:
  explicit PgRow(const pqxx::row &row) : row_(row) {}
  bool is_null(int col) const override { return row_[col].is_null(); }
  std::int64_t i64(int col) const override {
    return row_[col].is_null() ? 0 : row_[col].as<std::int64_t>();
  }
  std::string text(int col) const override {
    return row_[col].is_null() ? std::string() : std::string(row_[col].c_str(), row_[col].size());
  }

 private:
  const pqxx::row &row_;
};

struct PgConnection {
  explicit PgConnection(const std::string &conninfo) : conn(conninfo) {}
  pqxx::connection conn;
  std::unordered_map<std::string, std::string> prepared;  // sql -> statement name
};

class PgTx final : public SqlTx {
 public:
  PgTx(PgConnection &c, pqxx::transaction_base &tx) : c_(c), tx_(tx) {}

  void query(std::string_view sql, const SqlParams &params, const RowHandler &on_row) override {
    const pqxx::result result = run(sql, params);
    for (const pqxx::row &row : result) on_row(PgRow(row));
  }
  std::int64_t exec(std::string_view sql, const SqlParams &params) override {
    return static_cast<std::int64_t>(run(sql, params).affected_rows());
  }
  std::optional<std::int64_t> insert_returning_id(std::string_view sql,
                                                  const SqlParams &params) override {
    std::optional<std::int64_t> id;
    query(std::string(sql) + " RETURNING id", params, [&](const SqlRow &r) { id = r.i64(0); });
    return id;
  }
  void exec_script(std::string_view sql) override { tx_.exec(std::string(sql)); }

 private:
  pqxx::result run(std::string_view sql, const SqlParams &params) {
    auto it = c_.prepared.find(std::string(sql));
    if (it == c_.prepared.end()) {
      const std::string name = "crmhost_" + std::to_string(c_.prepared.size());
      c_.conn.prepare(name, to_dollar_placeholders(sql));
      it = c_.prepared.emplace(std::string(sql), name).first;
    }
    // libpq takes C strings; nullptr is SQL NULL.
    std::vector<std::string> storage;
    storage.reserve(params.size());
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const SqlParam &p : params) {
      if (const auto *v = std::get_if<std::int64_t>(&p)) {
        storage.push_back(std::to_string(*v));
        values.push_back(storage.back().c_str());
      } else if (const auto *s = std::get_if<std::string_view>(&p)) {
        storage.emplace_back(*s);
        values.push_back(storage.back().c_str());
      } else {
        values.push_back(nullptr);
      }
    }
    return tx_.exec_prepared(it->second, pqxx::prepare::make_dynamic_params(values));
  }

  PgConnection &c_;
  pqxx::transaction_base &tx_;
};

// Connection-class SQLSTATEs, shutdowns, resource limits and serialization failures are worth
// retrying later; everything else is a bug or bad input.
StoreError::Kind kind_of_sqlstate(const std::string &state) {
  if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state.rfind("53", 0) == 0 ||
      state == "40001" || state == "40P01" || state == "55P03") {
    return StoreError::Kind::unavailable;
  }
  if (state.rfind("23", 0) == 0 || state.rfind("22", 0) == 0) {
    return StoreError::Kind::invalid_argument;
  }
  return StoreError::Kind::internal;
}

class PgStore final : public SqlStore {
 public:
  PgStore(const std::string &conninfo, const StoreOptions &options)
      : SqlStore(options, dialect()),
        conninfo_(conninfo),
        display_uri_(redact_uri(conninfo)),
        schema_(options.pg_schema),
        pool_size_(static_cast<std::size_t>(std::max(1, options.pg_pool_size))) {
    if (!options.pg_password_file.empty()) {
      secret_ = read_password_file(options.pg_password_file);
      conninfo_ += (conninfo_.find('?') == std::string::npos ? "?" : "&");
      conninfo_ += "password=" + percent_encode(secret_);
    }
    if (conninfo_.find("connect_timeout=") == std::string::npos) {
      conninfo_ += (conninfo_.find('?') == std::string::npos ? "?" : "&");
      conninfo_ += "connect_timeout=10";
    }
    if (secret_.empty()) secret_ = uri_password(conninfo);
    release(acquire());  // fail early, with a clear message, if the database is unreachable
    open_schema(options);
  }

 protected:
  void write_tx(const std::function<void(SqlTx &)> &fn) override {
    try {
      run<pqxx::work>(fn);
    } catch (...) {
      note_write_outcome(std::current_exception());
      throw;
    }
    note_write_outcome(nullptr);
  }
  void read_tx(const std::function<void(SqlTx &)> &fn) override { run<pqxx::read_transaction>(fn); }

 private:
  static SqlDialect dialect() {
    return SqlDialect{
        "postgresql", " FOR UPDATE SKIP LOCKED", "strpos",
        // Several hosts starting together: one migrates, the others wait and then see it done.
        "SELECT pg_advisory_xact_lock(7243010001)",
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name = 'schema_version'",
        postgresql_migrations()};
  }

  std::string scrub(std::string message) const {
    if (secret_.empty()) return message;
    for (auto pos = message.find(secret_); pos != std::string::npos;
         pos = message.find(secret_, pos)) {
      message.replace(pos, secret_.size(), "***");
    }
    return message;
  }

  // Runs fn in a transaction. A connection found broken is dropped with every idle one (the
  // server probably restarted) and the transaction is retried once on a fresh connection: it
  // cannot have committed, because a failure during COMMIT raises in_doubt_error instead.
  template <typename Tx>
  void run(const std::function<void(SqlTx &)> &fn) {
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<PgConnection> conn = acquire();
      try {
        Tx tx(conn->conn);
        PgTx adapter(*conn, tx);
        fn(adapter);
        tx.commit();
        release(std::move(conn));
        return;
      } catch (const pqxx::in_doubt_error &e) {
        discard(std::move(conn));
        throw StoreError(
            StoreError::Kind::unavailable,
            "PostgreSQL connection lost during COMMIT; outcome unknown: " + scrub(e.what()));
      } catch (const pqxx::failure &e) {
        const auto *sql = dynamic_cast<const pqxx::sql_error *>(&e);
        const std::string state = sql ? sql->sqlstate() : "";
        const bool lost = dynamic_cast<const pqxx::broken_connection *>(&e) != nullptr ||
                          !conn->conn.is_open() || state.rfind("08", 0) == 0 ||
                          state.rfind("57P", 0) == 0;
        if (lost) {
          discard(std::move(conn));
          if (attempt == 0) {
            spdlog::warn("store: PostgreSQL connection lost, retrying on a new one: {}",
                         scrub(e.what()));
            continue;
          }
          throw StoreError(StoreError::Kind::unavailable,
                           "PostgreSQL connection lost: " + scrub(e.what()));
        }
        release(std::move(conn));
        throw StoreError(sql ? kind_of_sqlstate(state) : StoreError::Kind::internal,
                         "PostgreSQL: " + scrub(e.what()));
      } catch (const StoreError &) {
        // From the store logic: the transaction was rolled back, the connection is fine.
        release(std::move(conn));
        throw;
      } catch (const std::exception &e) {
        release(std::move(conn));
        throw StoreError(StoreError::Kind::internal, "PostgreSQL: " + scrub(e.what()));
      }
    }
  }

  std::unique_ptr<PgConnection> acquire() {
    {
      std::unique_lock lock(mutex_);
      available_.wait(lock, [&] { return !idle_.empty() || open_ < pool_size_; });
      if (!idle_.empty()) {
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        return conn;
      }
      ++open_;  // reserve a slot, connect outside the lock
    }
    try {
      auto conn = std::make_unique<PgConnection>(conninfo_);
      if (!schema_.empty()) {
        if (!schema_created_.load()) {
          // CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent creator: serialise it.
          pqxx::work tx(conn->conn);
          tx.exec("SELECT pg_advisory_xact_lock(7243010002)");
          tx.exec("CREATE SCHEMA IF NOT EXISTS " + conn->conn.quote_name(schema_));
          tx.commit();
          schema_created_ = true;
        }
        // set_variable is re-applied by libpqxx if it ever reactivates the connection.
        conn->conn.set_variable("search_path", conn->conn.quote_name(schema_));
      }
      return conn;
    } catch (const std::exception &e) {
      {
        std::lock_guard lock(mutex_);
        --open_;
      }
      available_.notify_one();
      throw StoreError(StoreError::Kind::unavailable,
                       "cannot connect to PostgreSQL at " + display_uri_ + ": " + scrub(e.what()));
    }
  }

  void release(std::unique_ptr<PgConnection> conn) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(conn));
    }
    available_.notify_one();
  }

  void discard(std::unique_ptr<PgConnection> conn) {
    std::vector<std::unique_ptr<PgConnection>> dropped;
    {
      std::lock_guard lock(mutex_);
      dropped.swap(idle_);
      open_ -= dropped.size() + 1;
    }
    conn.reset();
    dropped.clear();  // close outside the lock
    available_.notify_all();
  }

  std::string conninfo_;
  std::string display_uri_;  // as the user wrote it, password redacted
  std::string schema_;
  std::atomic<bool> schema_created_{false};
  std::string secret_;  // scrubbed from every message we build
  std::size_t pool_size_;

  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  std::size_t open_ = 0;  // idle + in use + being opened
};

}  // namespace

std::unique_ptr<Store> open_postgresql_store(const std::string &conninfo,
                                             const StoreOptions &options) {
  return std::make_unique<PgStore>(conninfo, options);
}

}  // namespace crmhost::store
