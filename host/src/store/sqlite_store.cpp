// SQLite backend: WAL mode, one writer thread with group commit, a few read connections.
//
// Every write (enqueue, claim, complete, ...) is a job handed to the writer thread. The writer
// drains all queued jobs into one BEGIN IMMEDIATE ... COMMIT, each job inside its own SAVEPOINT so
// one failing job does not undo the others, and wakes the callers only after COMMIT returned:
// an acknowledged write is durable, and concurrent producers share one fsync.
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "store/backends.hpp"
#include "store/sql_store.hpp"

namespace crmhost::store {
namespace {

bool is_transient(int code) {
  switch (code & 0xff) {  // primary result code
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

[[noreturn]] void throw_sqlite(sqlite3 *db, int code, std::string_view context) {
  std::string message =
      "SQLite " + std::string(context) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(code));
  StoreError::Kind kind = StoreError::Kind::internal;
  if (is_transient(code)) kind = StoreError::Kind::unavailable;
  if ((code & 0xff) == SQLITE_CONSTRAINT) kind = StoreError::Kind::invalid_argument;
  throw StoreError(kind, message);
}

class SqliteRow final : public SqlRow {
 public:
  explicit SqliteRow(sqlite3_stmt *stmt) : stmt_(stmt) {}
  bool is_null(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::int64_t i64(int col) const override { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const override {
    const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3_stmt *stmt_;
};

// One database connection with its prepared-statement cache. Used by one thread at a time.
class SqliteConnection final : public SqlTx {
 public:
  SqliteConnection(const std::filesystem::path &path, int flags, Millis busy_timeout) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string message = "cannot open SQLite database " + path.string() + ": " +
                            (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
      sqlite3_close_v2(db_);
      throw StoreError(StoreError::Kind::unavailable, message);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
    exec_script("PRAGMA foreign_keys = ON");
    exec_script("PRAGMA cache_size = -16000");  // 16 MB: keeps the hot index pages in memory
  }
  ~SqliteConnection() override {
    for (auto &[sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  SqliteConnection(const SqliteConnection &) = delete;
  // False once SQLite has ended the transaction itself, as it may on SQLITE_FULL or an I/O error.
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  SqliteConnection &operator=(const SqliteConnection &) = delete;

  void query(std::string_view sql, const SqlParams &params, const RowHandler &on_row) override {
    sqlite3_stmt *stmt = prepare(sql, params);
    SqliteRow row(stmt);
    int rc;
    try {
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (on_row) on_row(row);
      }
    } catch (...) {
      sqlite3_reset(stmt);
      sqlite3_clear_bindings(stmt);
      throw;
    }
    finish(stmt, rc, sql);
  }

  std::int64_t exec(std::string_view sql, const SqlParams &params) override {
    sqlite3_stmt *stmt = prepare(sql, params);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    finish(stmt, rc, sql);
    return sqlite3_changes64(db_);
  }

  std::optional<std::int64_t> insert_returning_id(std::string_view sql,
                                                  const SqlParams &params) override {
    if (exec(sql, params) != 1) return std::nullopt;
    return sqlite3_last_insert_rowid(db_);
  }

  void exec_script(std::string_view sql) override {
    char *error = nullptr;
    const int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      std::string message = error ? error : sqlite3_errstr(rc);
      sqlite3_free(error);
      throw StoreError(
          is_transient(rc) ? StoreError::Kind::unavailable : StoreError::Kind::internal,
          "SQLite: " + message);
    }
  }

  void set_wal_hook(int (*hook)(void *, sqlite3 *, const char *, int), void *arg) {
    sqlite3_wal_hook(db_, hook, arg);  // replaces the built-in autocheckpoint
  }

  void checkpoint() {
    const int rc =
        sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("store: SQLite checkpoint failed: {}", sqlite3_errmsg(db_));
    }
  }

 private:
  sqlite3_stmt *prepare(std::string_view sql, const SqlParams &params) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt *stmt = nullptr;
      const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                        SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) throw_sqlite(db_, rc, "prepare");
      it = cache_.emplace(std::string(sql), stmt).first;
    }
    sqlite3_stmt *stmt = it->second;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      if (const auto *v = std::get_if<std::int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, index, *v);
      } else if (const auto *s = std::get_if<std::string_view>(&params[i])) {
        // SQLITE_STATIC: the caller keeps the text alive until the statement is reset.
        rc = sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
      } else {
        rc = sqlite3_bind_null(stmt, index);
      }
      if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(stmt);
        throw_sqlite(db_, rc, "bind");
      }
    }
    return stmt;
  }

  void finish(sqlite3_stmt *stmt, int rc, std::string_view) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);  // drop the SQLITE_STATIC pointers into caller memory
    if (rc != SQLITE_DONE) throw_sqlite(db_, rc, "statement");
  }

  // Transparent lookup by string_view without building a std::string per call.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  sqlite3 *db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt *, Hash, std::equal_to<>> cache_;
};

class SqliteStore final : public SqlStore {
 public:
  SqliteStore(const std::filesystem::path &path, const StoreOptions &options)
      : SqlStore(options, dialect()), path_(path), options_(options) {
    if (path.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) {
        throw StoreError(
            StoreError::Kind::unavailable,
            "cannot create the folder of SQLite database " + path.string() + ": " + ec.message());
      }
    }
    writer_conn_ = std::make_unique<SqliteConnection>(
        path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.sqlite_busy_timeout);
    // Another process opening the same new file at the same moment can hold the lock that
    // switching to WAL or migrating needs, without SQLite's busy handler applying: retry.
    retry_while_busy(options, [&] { writer_conn_->exec_script("PRAGMA journal_mode = WAL"); });
    writer_conn_->exec_script(options.sqlite_synchronous == SqliteSync::full
                                  ? "PRAGMA synchronous = FULL"
                                  : "PRAGMA synchronous = NORMAL");
    // Checkpoints (copying the WAL back into the database file) run on their own connection and
    // thread, so the writer is not stalled by them; the writer only signals when the WAL grew.
    checkpoint_conn_ = std::make_unique<SqliteConnection>(path, SQLITE_OPEN_READWRITE,
                                                          options.sqlite_busy_timeout);
    writer_conn_->set_wal_hook(&SqliteStore::on_wal_commit, this);
    checkpointer_ = std::thread([this] { checkpoint_loop(); });
    writer_ = std::thread([this] { writer_loop(); });
    try {
      retry_while_busy(options, [&] { open_schema(options); });
      if (options.sqlite_max_pages > 0)
        write_tx([&](SqlTx &tx) {
          tx.exec_script("PRAGMA max_page_count = " + std::to_string(options.sqlite_max_pages));
        });
    } catch (...) {
      stop_writer();
      throw;
    }
  }

  ~SqliteStore() override { stop_writer(); }

 protected:
  void write_tx(const std::function<void(SqlTx &)> &fn) override {
    WriteJob job{&fn, {}, {}, {}};
    std::future<void> done = job.done.get_future();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) throw StoreError(StoreError::Kind::unavailable, "SQLite store is closing");
      queue_.push_back(&job);
    }
    wakeup_.notify_one();
    done.get();  // rethrows the job's or the commit's error
  }

  void write_tx_async(std::function<void(SqlTx &)> fn,
                      std::function<void(std::exception_ptr)> done) override {
    auto *job = new WriteJob{nullptr, {}, std::move(done), std::move(fn)};
    job->fn = &job->owned_fn;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        auto cb = std::move(job->callback);
        delete job;
        return cb(std::make_exception_ptr(
            StoreError(StoreError::Kind::unavailable, "SQLite store is closing")));
      }
      queue_.push_back(job);
    }
    wakeup_.notify_one();
  }

  void read_tx(const std::function<void(SqlTx &)> &fn) override {
    std::unique_ptr<SqliteConnection> conn = take_reader();
    try {
      // A read transaction gives multi-statement reads one consistent WAL snapshot.
      conn->exec_script("BEGIN");
      fn(*conn);
      conn->exec_script("COMMIT");
    } catch (...) {
      try {
        conn->exec_script("ROLLBACK");
      } catch (const StoreError &) {
        // no transaction open: nothing to undo
      }
      return_reader(std::move(conn));
      throw;
    }
    return_reader(std::move(conn));
  }

 private:
  // Bounds one transaction, so a flood of producers still sees regular commits.
  static constexpr std::size_t kMaxJobsPerCommit = 1000;

  // A queued write: either a caller waits on `done`, or (async) `callback` gets the outcome and
  // the job owns its function and itself.
  struct WriteJob {
    const std::function<void(SqlTx &)> *fn;
    std::promise<void> done;
    std::function<void(std::exception_ptr)> callback;
    std::function<void(SqlTx &)> owned_fn;

    void finish(std::exception_ptr error) {
      if (!callback) return error ? done.set_exception(error) : done.set_value();
      auto cb = std::move(callback);
      delete this;  // async jobs are heap-allocated and end here
      cb(error);
    }
  };

  template <typename Fn>
  static void retry_while_busy(const StoreOptions &options, Fn &&fn) {
    const auto deadline = std::chrono::steady_clock::now() + options.sqlite_busy_timeout;
    for (;;) {
      try {
        fn();
        return;
      } catch (const StoreError &e) {
        if (!e.retryable() || std::chrono::steady_clock::now() >= deadline) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static SqlDialect dialect() {
    return SqlDialect{
        "sqlite",
        "",
        "instr",
        "",
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        sqlite_migrations()};
  }

  std::unique_ptr<SqliteConnection> take_reader() {
    {
      std::lock_guard lock(readers_mutex_);
      if (!readers_.empty()) {
        auto conn = std::move(readers_.back());
        readers_.pop_back();
        return conn;
      }
    }
    return std::make_unique<SqliteConnection>(path_, SQLITE_OPEN_READONLY,
                                              options_.sqlite_busy_timeout);
  }

  void return_reader(std::unique_ptr<SqliteConnection> conn) {
    std::lock_guard lock(readers_mutex_);
    if (static_cast<int>(readers_.size()) < std::max(1, options_.sqlite_readers)) {
      readers_.push_back(std::move(conn));
    }
  }

  void writer_loop() {
    for (;;) {
      std::deque<WriteJob *> batch;
      {
        std::unique_lock lock(mutex_);
        wakeup_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        batch.swap(queue_);
      }
      run_batch(batch);
    }
  }

  void run_batch(std::deque<WriteJob *> &batch) {
    SqliteConnection &db = *writer_conn_;
    try {
      db.exec("BEGIN IMMEDIATE", {});
    } catch (...) {
      note_write_outcome(std::current_exception());
      for (WriteJob *job : batch) job->finish(std::current_exception());
      return;
    }
    std::vector<std::exception_ptr> errors;
    try {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        errors.emplace_back();
        db.exec("SAVEPOINT job", {});
        try {
          (*batch[i]->fn)(db);
          db.exec("RELEASE job", {});
        } catch (...) {
          errors[i] = std::current_exception();
          if (!db.in_transaction()) {
            // SQLite rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR): the
            // batch's earlier jobs are undone too, and all get this job's error, the real cause
            // (not the "no such savepoint" that rolling back to the savepoint would raise).
            note_write_outcome(errors[i]);
            for (WriteJob *job : batch) job->finish(errors[i]);
            return;
          }
          db.exec("ROLLBACK TO job", {});
          db.exec("RELEASE job", {});
        }
        // Jobs that arrived while this batch ran join it: producers woken by the previous commit
        // re-enqueue a moment later, and would otherwise each pay for a commit of their own.
        if (i + 1 == batch.size() && batch.size() < kMaxJobsPerCommit) {
          std::lock_guard lock(mutex_);
          while (!queue_.empty() && batch.size() < kMaxJobsPerCommit) {
            batch.push_back(queue_.front());
            queue_.pop_front();
          }
        }
      }
      db.exec("COMMIT", {});
    } catch (...) {
      // The commit (or savepoint bookkeeping) failed: nothing of this batch is durable.
      const auto error = std::current_exception();
      // SQLite may have rolled back itself (a full disk): then there is nothing to undo, and
      // saying so on every failed commit only floods the log.
      if (db.in_transaction()) {
        try {
          db.exec_script("ROLLBACK");
        } catch (const StoreError &e) {
          spdlog::warn("store: SQLite rollback after a failed commit: {}", e.what());
        }
      }
      note_write_outcome(error);
      for (WriteJob *job : batch) job->finish(error);
      return;
    }
    // A job that failed on the store itself (SQLITE_FULL inside an insert) counts as a failed
    // write even though the commit of the others went through.
    std::exception_ptr health;
    for (const auto &error : errors) {
      if (!error) continue;
      try {
        std::rethrow_exception(error);
      } catch (const StoreError &e) {
        if (e.retryable()) health = error;
      } catch (...) {
      }
    }
    note_write_outcome(health);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->finish(errors[i]);
  }

  void stop_writer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wakeup_.notify_one();
    if (writer_.joinable()) writer_.join();
    {
      std::lock_guard lock(checkpoint_mutex_);
      checkpoint_stopping_ = true;
    }
    checkpoint_wakeup_.notify_one();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  // Runs on the writer thread after each commit with the WAL size in pages.
  static int on_wal_commit(void *self_ptr, sqlite3 *db, const char *, int wal_pages) {
    auto *self = static_cast<SqliteStore *>(self_ptr);
    if (wal_pages >= kCheckpointPages) {
      {
        std::lock_guard lock(self->checkpoint_mutex_);
        self->checkpoint_wanted_ = true;
      }
      self->checkpoint_wakeup_.notify_one();
    }
    // Safety net if the checkpointer cannot keep up: checkpoint inline, as SQLite would by default.
    if (wal_pages >= kInlineCheckpointPages) {
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    return SQLITE_OK;
  }

  void checkpoint_loop() {
    for (;;) {
      {
        std::unique_lock lock(checkpoint_mutex_);
        checkpoint_wakeup_.wait(lock, [&] { return checkpoint_stopping_ || checkpoint_wanted_; });
        if (checkpoint_stopping_) return;
        checkpoint_wanted_ = false;
      }
      // PASSIVE never blocks the writer or readers; frames it cannot copy yet wait for next time.
      checkpoint_conn_->checkpoint();
    }
  }

  std::filesystem::path path_;
  StoreOptions options_;
  std::unique_ptr<SqliteConnection> writer_conn_;  // owned by the writer thread after start-up

  std::mutex mutex_;
  std::condition_variable wakeup_;
  std::deque<WriteJob *> queue_;
  bool stopping_ = false;
  std::thread writer_;

  static constexpr int kCheckpointPages = 1000;         // SQLite's default autocheckpoint
  static constexpr int kInlineCheckpointPages = 50000;  // ~200 MB of WAL
  std::unique_ptr<SqliteConnection> checkpoint_conn_;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_wakeup_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stopping_ = false;
  std::thread checkpointer_;

  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<SqliteConnection>> readers_;
};

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path &path,
                                         const StoreOptions &options) {
  return std::make_unique<SqliteStore>(path, options);
}

}  // namespace crmhost::store
