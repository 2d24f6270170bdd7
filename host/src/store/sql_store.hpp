// Store logic shared by both backends, written against SqlTx. A backend supplies transactions
// (write_tx/read_tx), its migrations and a few dialect details.
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string>

#include "store/migrations.hpp"
#include "store/secret_box.hpp"
#include "store/sql.hpp"
#include "store/store.hpp"

namespace crmhost::store {

struct SqlDialect {
  std::string name;                // "sqlite" / "postgresql"
  std::string claim_lock_clause;   // PostgreSQL: " FOR UPDATE SKIP LOCKED"
  std::string substring_function;  // instr / strpos: (haystack, needle) -> 1-based position
  std::string migration_lock_sql;  // serialises concurrent migrations of several hosts
  std::string schema_version_table_exists_sql;
  std::span<const Migration> migrations;
};

class SqlStore : public Store {
 public:
  int schema_version() override;
  int migrate(std::optional<int> target) override;
  std::string backend_name() const override { return dialect_.name; }

  EnqueueResult enqueue(const std::vector<NewEvent> &events) override;
  void enqueue_async(std::vector<NewEvent> events, EnqueueDone done) override;
  std::vector<Event> claim(const ClaimRequest &request) override;
  bool complete(EventId id, const std::string &claim_token) override;
  std::size_t complete_many(const std::vector<EventId> &ids,
                            const std::string &claim_token) override;
  bool fail(EventId id, const std::string &claim_token, const std::string &error,
            Timestamp retry_at) override;
  bool dead_letter(EventId id, const std::string &claim_token, const std::string &error) override;
  std::int64_t requeue_expired_claims() override;
  bool replay(EventId id) override;
  std::int64_t replay(const ReplayFilter &filter) override;
  std::optional<Event> get_event(EventId id) override;
  std::vector<Event> list_events(const EventQuery &query) override;
  std::vector<StatusCount> count_by_status(const std::optional<std::string> &pipeline) override;
  std::int64_t purge_done_events(Millis older_than, int batch_size) override;

  std::optional<Cursor> get_cursor(const std::string &pipeline, const std::string &object) override;
  CursorAdvanceResult advance_cursor(const CursorAdvance &advance) override;
  std::vector<Cursor> cursor_history(const std::string &pipeline, const std::string &object,
                                     int limit) override;
  Cursor rewind_cursor(const std::string &pipeline, const std::string &object,
                       std::int64_t version) override;

  void upsert_link(const EntityLink &link) override;
  std::int64_t close_links(const std::vector<std::string> &pipelines, const std::string &connection,
                           const std::string &id) override;
  void note_archived(const std::string &connection, const std::string &id) override;
  std::optional<Timestamp> archived_at(const std::string &connection,
                                       const std::string &id) override;
  void forget_archived(const std::string &connection, const std::string &id) override;
  std::optional<EntityLink> find_link_by_source(const std::string &pipeline,
                                                const std::string &source_connection,
                                                const std::string &source_id) override;
  bool note_target_modified(const std::string &pipeline, const std::string &target_connection,
                            const std::string &target_id, Timestamp modified_at) override;
  std::optional<EntityLink> find_link_by_target(const std::string &pipeline,
                                                const std::string &target_connection,
                                                const std::string &target_id) override;
  void record_push(const std::string &pipeline, const std::string &source_connection,
                   const std::string &source_id, const std::string &payload_hash) override;

  std::int64_t record_conflict(const Conflict &conflict) override;
  std::vector<Conflict> list_conflicts(const std::optional<std::string> &pipeline, bool open_only,
                                       int limit) override;
  bool resolve_conflict(std::int64_t id, const std::string &resolution) override;

  std::int64_t start_sync_run(const std::string &pipeline, SyncRunKind kind) override;
  void finish_sync_run(std::int64_t id, SyncRunStatus status, const SyncRunCounts &counts,
                       const std::string &error) override;
  std::optional<SyncRun> get_sync_run(std::int64_t id) override;
  std::int64_t close_interrupted_sync_runs() override;
  std::vector<SyncRun> list_sync_runs(const std::optional<std::string> &pipeline,
                                      int limit) override;

  void put_state(const std::string &connection, const std::string &key,
                 const std::string &value) override;
  std::optional<std::string> get_state(const std::string &connection,
                                       const std::string &key) override;
  bool delete_state(const std::string &connection, const std::string &key) override;
  std::vector<std::string> list_state_keys(const std::string &connection) override;
  void put_connection_status(const std::string &connection, const std::string &json) override;
  std::vector<ConnectionStatus> list_connection_status() override;

  std::optional<Lease> acquire_lease(const std::string &name, const std::string &owner,
                                     Millis ttl) override;
  bool renew_lease(const std::string &name, const std::string &owner, Millis ttl) override;
  bool release_lease(const std::string &name, const std::string &owner) override;
  std::optional<Lease> get_lease(const std::string &name) override;

 protected:
  SqlStore(const StoreOptions &options, SqlDialect dialect);

  // Runs fn in one write transaction and returns after it committed. fn may run more than once
  // (a backend retries on a fresh connection when the first one was found broken), so it must
  // assign its results rather than accumulate them.
  virtual void write_tx(const std::function<void(SqlTx &)> &fn) = 0;
  // write_tx without waiting: `done` gets the outcome after the commit. By default it waits on
  // the calling thread; a backend with a writer thread queues the job and returns at once.
  virtual void write_tx_async(std::function<void(SqlTx &)> fn,
                              std::function<void(std::exception_ptr)> done);
  virtual void read_tx(const std::function<void(SqlTx &)> &fn) = 0;

  // Called by the backend's constructor once connections work: refuses a too-new schema and
  // applies migrations when the options ask for it.
  void open_schema(const StoreOptions &options);

  Timestamp now() const;

 private:
  EnqueueResult enqueue_in(SqlTx &tx, const std::vector<NewEvent> &events, std::int64_t now);
  int read_schema_version(SqlTx &tx);
  Cursor set_cursor_in(SqlTx &tx, const std::string &pipeline, const std::string &object,
                       const std::string &value, std::optional<std::int64_t> expected_version,
                       std::int64_t now, bool &applied);

  SqlDialect dialect_;
  KeyRing keys_;
  std::function<Timestamp()> clock_;
  std::atomic<int> opened_schema_version_{
      0};  // features of later migrations are skipped below their version
};

}  // namespace crmhost::store
