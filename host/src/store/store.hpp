// The durable store behind crmhost: one event queue plus the sync bookkeeping around it
// (cursors, entity links, conflicts, sync runs, encrypted plugin state, leases).
//
// Two backends implement the same interface: SQLite (default, single host) and PostgreSQL
// (several hosts may share one database). Pick one with open_store().
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace crmhost::store {

// All times are wall-clock milliseconds; the database stores them as BIGINT unix ms.
using Timestamp = std::chrono::sys_time<std::chrono::milliseconds>;
using Millis = std::chrono::milliseconds;
using EventId = std::int64_t;

Timestamp now_ms();
std::int64_t to_unix_ms(Timestamp t);
Timestamp from_unix_ms(std::int64_t ms);

// ---------------------------------------------------------------------------------------------
// Errors

class StoreError : public std::runtime_error {
 public:
  enum class Kind {
    invalid_argument,  // bad URI, bad option, unknown id format...
    unavailable,       // database unreachable, connection lost, busy: retry later (HTTP 503)
    schema_too_new,    // database was migrated by a newer crmhost
    crypto,            // missing/invalid secret key, ciphertext rejected
    internal,          // anything else: a bug or a broken database
  };

  StoreError(Kind kind, const std::string &message) : std::runtime_error(message), kind_(kind) {}

  Kind kind() const { return kind_; }
  // True when the same call may succeed later without any change on our side.
  bool retryable() const { return kind_ == Kind::unavailable; }

 private:
  Kind kind_;
};

// ---------------------------------------------------------------------------------------------
// Events

enum class EventSource { webhook, poll, backfill, replay };
enum class EventStatus { pending, in_flight, done, failed, dead };

std::string_view to_string(EventSource s);
std::string_view to_string(EventStatus s);
EventSource parse_event_source(std::string_view s);  // throws StoreError(invalid_argument)
EventStatus parse_event_status(std::string_view s);

struct NewEvent {
  std::string pipeline;
  EventSource source = EventSource::webhook;
  std::string connection;
  std::string object;
  std::string record_id;
  std::string event_type;  // e.g. "created", "updated", "deleted"
  std::string payload;
  std::string dedupe_key;  // UNIQUE per pipeline; see default_dedupe_key()
  std::string request_id;  // correlation id of the delivery/poll that produced the event
  std::optional<Timestamp> not_before;  // first attempt time; default: now
};

struct Event {
  EventId id = 0;
  std::string pipeline;
  EventSource source = EventSource::webhook;
  std::string connection;
  std::string object;
  std::string record_id;
  std::string event_type;
  std::string payload;
  std::string dedupe_key;
  EventStatus status = EventStatus::pending;
  int attempts = 0;  // number of times the event was claimed
  Timestamp next_attempt_at{};
  std::string last_error;
  std::string request_id;
  Timestamp received_at{};
  std::optional<Timestamp> finished_at;  // set by done and dead
  std::string claim_owner;               // worker that holds (or last held) the claim
  std::string claim_token;               // non-empty while in_flight; required to settle
  std::optional<Timestamp> claimed_until;
};

// One entry per input event, in input order. A duplicate carries the id of the stored event.
struct EnqueueOutcome {
  EventId id = 0;
  bool duplicate = false;
};
using EnqueueResult = std::vector<EnqueueOutcome>;

struct ClaimRequest {
  std::string pipeline;
  std::string owner;  // worker identity, for operators (host:pid:thread)
  int max_events = 100;
  Millis lease{Millis(30'000)};  // after this the claim expires and the events are claimable again
};

struct EventQuery {
  std::optional<std::string> pipeline;
  std::optional<EventStatus> status;
  EventId after_id = 0;  // keyset pagination: events with id > after_id, ascending
  int limit = 100;
};

struct ReplayFilter {
  std::optional<std::string> pipeline;
  std::vector<EventStatus> statuses{EventStatus::failed, EventStatus::dead};  // never in_flight
  std::optional<Timestamp> received_from;                                     // inclusive
  std::optional<Timestamp> received_to;                                       // exclusive
  std::optional<std::string> error_contains;
};

struct StatusCount {
  std::string pipeline;
  EventStatus status = EventStatus::pending;
  std::int64_t count = 0;
};

// ---------------------------------------------------------------------------------------------
// Cursors, links, conflicts, runs, leases

struct Cursor {
  std::string pipeline;
  std::string object;
  std::string value;     // opaque to the store
  std::int64_t version;  // increases by one on every change (advance or rewind)
  Timestamp updated_at{};
};

struct CursorAdvance {
  std::string pipeline;
  std::string object;
  std::string new_value;
  // Compare-and-set: when set, the advance only happens if the cursor is still at this version
  // (0 = no cursor yet). Protects a running poll against a concurrent rewind.
  std::optional<std::int64_t> expected_version;
  std::vector<NewEvent> events;  // the page's events, enqueued in the same transaction
};

struct CursorAdvanceResult {
  bool applied = false;  // false: expected_version did not match, nothing was written
  std::int64_t version = 0;
  EnqueueResult events;
};

struct EntityLink {
  std::string pipeline;
  std::string source_connection;
  std::string source_id;
  std::string target_connection;
  std::string target_id;
  std::string last_payload_hash;  // of the payload last pushed to the target
  std::optional<Timestamp> last_pushed_at;
  Timestamp updated_at{};
  // The newest modification time seen for the target record: the source version last written
  // there, or a change the target itself reported (two-way pipelines). For newest_wins.
  // upsert_link never lowers it (a concurrent note_target_modified wins when newer).
  std::optional<Timestamp> target_modified_at;
};

struct Conflict {
  std::int64_t id = 0;
  std::string pipeline;
  std::string object;
  std::string source_connection;
  std::string source_id;
  std::string target_connection;
  std::string target_id;
  std::string detail;  // JSON describing both sides, written by the engine
  std::optional<EventId> event_id;
  Timestamp created_at{};
  std::optional<Timestamp> resolved_at;
  std::string resolution;  // empty while open
};

enum class SyncRunKind { poll, backfill, replay };
// interrupted: the process running it ended without finishing it (a crash or SIGKILL); closed so
// at the next start.
enum class SyncRunStatus { running, succeeded, failed, interrupted };
std::string_view to_string(SyncRunKind k);
std::string_view to_string(SyncRunStatus s);

struct SyncRunCounts {
  std::int64_t fetched = 0;
  std::int64_t enqueued = 0;
  std::int64_t duplicates = 0;
  std::int64_t failed = 0;
};

struct SyncRun {
  std::int64_t id = 0;
  std::string pipeline;
  SyncRunKind kind = SyncRunKind::poll;
  SyncRunStatus status = SyncRunStatus::running;
  Timestamp started_at{};
  std::optional<Timestamp> finished_at;
  SyncRunCounts counts;
  std::string error;
};

struct ConnectionStatus {
  std::string connection;
  std::string json;
  Timestamp updated_at{};
};

struct Lease {
  std::string name;
  std::string owner;
  Timestamp expires_at{};
  // Increases whenever the lease changes hands; lets a resource reject a stale holder.
  std::int64_t fencing_token = 0;
};

// ---------------------------------------------------------------------------------------------
// Opening

enum class SqliteSync { normal, full };

struct StoreOptions {
  bool apply_migrations = true;
  std::optional<int> migrate_to;  // stop at this schema version (tests, staged upgrades)

  // SQLite
  SqliteSync sqlite_synchronous = SqliteSync::full;
  Millis sqlite_busy_timeout{Millis(5'000)};
  int sqlite_readers = 2;
  // A cap on the database's size in pages (0: none): writes beyond it fail as on a full disk.
  int64_t sqlite_max_pages = 0;

  // PostgreSQL
  int pg_pool_size = 4;
  std::string pg_schema;         // empty: the connection's default search_path
  std::string pg_password_file;  // alternative to a password in the URI or PGPASSWORD

  // connection_state encryption. Empty: CRMHOST_SECRET_KEY / CRMHOST_SECRET_KEYS_OLD env.
  // Key spec: "[KEYID:]<64 hex chars | base64 of 32 bytes>". The key file holds the current key
  // on its first line and older keys (still accepted for decryption) on the following lines.
  std::string secret_key;
  std::vector<std::string> old_secret_keys;
  std::filesystem::path secret_key_file;

  // Time source; tests substitute a fake clock to expire claims and leases without sleeping.
  std::function<Timestamp()> clock;
};

int latest_schema_version();

// ---------------------------------------------------------------------------------------------
// The store. Every method is thread-safe and each one is a single transaction.

class Store {
 public:
  virtual ~Store() = default;

  // While writes fail for a reason of the store's own (the disk full, the database unreachable or
  // read-only): the latest such error; nullopt once a write succeeds again. /readyz reports it,
  // since reads (and so a health check that only reads) keep working on a full disk.
  std::optional<std::string> write_failure() const;

  // Schema
  virtual int schema_version() = 0;
  // Applies pending migrations up to `target` (default: latest); returns the resulting version.
  virtual int migrate(std::optional<int> target = std::nullopt) = 0;
  virtual std::string backend_name() const = 0;  // "sqlite" or "postgresql"

  // Events: the durable queue. Enqueue is atomic for the batch and returns after commit.
  virtual EnqueueResult enqueue(const std::vector<NewEvent> &events) = 0;
  // The same, without blocking the caller: `done` runs once the batch committed (or failed: then
  // with the error and nothing stored), possibly on a store thread, so it must be quick. Lets a
  // webhook wait for its commit without holding a thread. The default runs enqueue inline.
  using EnqueueDone = std::function<void(std::exception_ptr, EnqueueResult)>;
  virtual void enqueue_async(std::vector<NewEvent> events, EnqueueDone done);
  virtual std::vector<Event> claim(const ClaimRequest &request) = 0;
  // Settling requires the token of the current claim; false means the claim was lost (expired and
  // taken over, or replayed) and nothing was changed.
  [[nodiscard]] virtual bool complete(EventId id, const std::string &claim_token) = 0;
  // Completes many events of one claim; returns how many were still held and were completed.
  virtual std::size_t complete_many(const std::vector<EventId> &ids,
                                    const std::string &claim_token) = 0;
  [[nodiscard]] virtual bool fail(EventId id, const std::string &claim_token,
                                  const std::string &error, Timestamp retry_at) = 0;
  [[nodiscard]] virtual bool dead_letter(EventId id, const std::string &claim_token,
                                         const std::string &error) = 0;
  // Expired claims are claimable as they are; this also flips them back to pending so that lists
  // and counts show them as such. Returns how many were requeued. Safe to call from any host.
  virtual std::int64_t requeue_expired_claims() = 0;
  // Replay puts an event back to pending (attempts reset). In-flight events are left alone.
  virtual bool replay(EventId id) = 0;
  virtual std::int64_t replay(const ReplayFilter &filter) = 0;
  virtual std::optional<Event> get_event(EventId id) = 0;
  virtual std::vector<Event> list_events(const EventQuery &query) = 0;
  virtual std::vector<StatusCount> count_by_status(
      const std::optional<std::string> &pipeline = std::nullopt) = 0;
  // Deletes done events finished before now - older_than, batch_size rows per transaction.
  virtual std::int64_t purge_done_events(Millis older_than, int batch_size = 1000) = 0;

  // Cursors
  virtual std::optional<Cursor> get_cursor(const std::string &pipeline,
                                           const std::string &object) = 0;
  virtual CursorAdvanceResult advance_cursor(const CursorAdvance &advance) = 0;
  virtual std::vector<Cursor> cursor_history(const std::string &pipeline, const std::string &object,
                                             int limit = 50) = 0;
  // Sets the cursor back to the value it had at `version` (recorded as a new version).
  virtual Cursor rewind_cursor(const std::string &pipeline, const std::string &object,
                               std::int64_t version) = 0;

  // Entity links
  virtual void upsert_link(const EntityLink &link) = 0;
  virtual std::optional<EntityLink> find_link_by_source(const std::string &pipeline,
                                                        const std::string &source_connection,
                                                        const std::string &source_id) = 0;
  virtual std::optional<EntityLink> find_link_by_target(const std::string &pipeline,
                                                        const std::string &target_connection,
                                                        const std::string &target_id) = 0;
  // Notes a change the target system reported for a linked record: raises the link's
  // target_modified_at to `modified_at` (never lowers it). Returns whether a link changed.
  virtual bool note_target_modified(const std::string &pipeline,
                                    const std::string &target_connection,
                                    const std::string &target_id, Timestamp modified_at) = 0;
  virtual void record_push(const std::string &pipeline, const std::string &source_connection,
                           const std::string &source_id, const std::string &payload_hash) = 0;
  // A record is gone (deleted, or answered not_found): removes the links of `pipelines` that
  // have it as source or as target, so neither direction writes to it again. Returns how many.
  virtual std::int64_t close_links(const std::vector<std::string> &pipelines,
                                   const std::string &connection, const std::string &id) = 0;
  // A record crmhost archived (on_delete: archive) stays at its provider and may come back as an
  // ordinary upsert (Odoo reports an archived partner with active false): the time it was
  // archived lets the reverse pipeline tell that echo from a later real edit.
  virtual void note_archived(const std::string &connection, const std::string &id) = 0;
  virtual std::optional<Timestamp> archived_at(const std::string &connection,
                                               const std::string &id) = 0;
  virtual void forget_archived(const std::string &connection, const std::string &id) = 0;

  // Conflicts
  virtual std::int64_t record_conflict(const Conflict &conflict) = 0;
  virtual std::vector<Conflict> list_conflicts(const std::optional<std::string> &pipeline,
                                               bool open_only = true, int limit = 100) = 0;
  virtual bool resolve_conflict(std::int64_t id, const std::string &resolution) = 0;

  // Sync runs
  virtual std::int64_t start_sync_run(const std::string &pipeline, SyncRunKind kind) = 0;
  virtual void finish_sync_run(std::int64_t id, SyncRunStatus status, const SyncRunCounts &counts,
                               const std::string &error = {}) = 0;
  virtual std::optional<SyncRun> get_sync_run(std::int64_t id) = 0;
  // Marks `interrupted` the runs still `running` whose process has ended (one of this machine
  // that no longer lives, or an owner from before owners were recorded); runs of live processes
  // and of other machines are left alone. Returns how many were closed. Called at start.
  virtual std::int64_t close_interrupted_sync_runs() = 0;

 protected:
  // Backends report each write transaction's outcome: an `unavailable` StoreError sets the
  // failure, success clears it, other errors (a constraint, a bad argument) leave it as it is.
  void note_write_outcome(std::exception_ptr error);

 private:
  mutable std::mutex write_health_mutex_;
  std::optional<std::string> write_failure_;

 public:
  virtual std::vector<SyncRun> list_sync_runs(const std::optional<std::string> &pipeline,
                                              int limit = 50) = 0;

  // Plugin key-value state, encrypted at rest (AES-256-GCM).
  virtual void put_state(const std::string &connection, const std::string &key,
                         const std::string &value) = 0;
  virtual std::optional<std::string> get_state(const std::string &connection,
                                               const std::string &key) = 0;
  virtual bool delete_state(const std::string &connection, const std::string &key) = 0;
  virtual std::vector<std::string> list_state_keys(const std::string &connection) = 0;

  // The last upkeep status of a connection (crm.maintenance.v1), a JSON object; not secret.
  virtual void put_connection_status(const std::string &connection, const std::string &json) = 0;
  // Every connection's status, by connection name.
  virtual std::vector<ConnectionStatus> list_connection_status() = 0;

  // Leases. acquire succeeds when the lease is free, expired, or already ours (then renews).
  virtual std::optional<Lease> acquire_lease(const std::string &name, const std::string &owner,
                                             Millis ttl) = 0;
  virtual bool renew_lease(const std::string &name, const std::string &owner, Millis ttl) = 0;
  virtual bool release_lease(const std::string &name, const std::string &owner) = 0;
  virtual std::optional<Lease> get_lease(const std::string &name) = 0;
};

// Opens (and by default migrates) the store named by `uri`:
//   sqlite:///abs/path/state.db, sqlite://relative/state.db, postgresql://..., postgres://...
// Throws StoreError with a message that never contains a password.
std::unique_ptr<Store> open_store(const std::string &uri, const StoreOptions &options = {});

// The URI with any password replaced by "***" (userinfo and `password=` query parameters).
std::string redact_uri(std::string_view uri);

// This process, as recorded in sync runs: "hostname:pid:nonce" (the nonce tells a restarted
// process that got the same pid, as pid 1 in a container does, from its predecessor).
const std::string &process_identity();
// Whether the process `identity` names has certainly ended: one of this machine that is not this
// process and whose pid no longer runs, or an empty identity (rows from before it was recorded).
// A process of another machine is never judged ended.
bool process_has_ended(const std::string &identity);

// "{connection}:{object}:{event_type}:{record_id}:{sha256(payload) hex}"
std::string default_dedupe_key(const NewEvent &event);
std::string sha256_hex(std::string_view data);

}  // namespace crmhost::store
