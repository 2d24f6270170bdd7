// SqlStore: entity links, conflicts, sync runs, encrypted connection state and leases.
#include "store/sql_store.hpp"
#include "store/sql_store_helpers.hpp"

namespace crmhost::store {
namespace {

using namespace sql_helpers;

EntityLink read_link(const SqlRow &r) {
  return EntityLink{r.text(0),     r.text(1), r.text(2),      r.text(3),
                    r.text(4),     r.text(5), opt_time(r, 6), from_unix_ms(r.i64(7)),
                    opt_time(r, 8)};
}
constexpr const char *kLinkColumns =
    "pipeline, source_connection, source_id, target_connection, target_id, last_payload_hash, "
    "last_pushed_at, updated_at, target_modified_at";

Conflict read_conflict(const SqlRow &r) {
  Conflict c;
  c.id = r.i64(0);
  c.pipeline = r.text(1);
  c.object = r.text(2);
  c.source_connection = r.text(3);
  c.source_id = r.text(4);
  c.target_connection = r.text(5);
  c.target_id = r.text(6);
  c.detail = r.text(7);
  c.event_id = r.opt_i64(8);
  c.created_at = from_unix_ms(r.i64(9));
  c.resolved_at = opt_time(r, 10);
  c.resolution = r.text(11);
  return c;
}
constexpr const char *kConflictColumns =
    "id, pipeline, object, source_connection, source_id, target_connection, target_id, detail, "
    "event_id, created_at, resolved_at, resolution";

SyncRunKind parse_run_kind(const std::string &s) {
  if (s == "backfill") return SyncRunKind::backfill;
  if (s == "replay") return SyncRunKind::replay;
  return SyncRunKind::poll;
}
SyncRunStatus parse_run_status(const std::string &s) {
  if (s == "succeeded") return SyncRunStatus::succeeded;
  if (s == "failed") return SyncRunStatus::failed;
  if (s == "interrupted") return SyncRunStatus::interrupted;
  return SyncRunStatus::running;
}
SyncRun read_run(const SqlRow &r) {
  SyncRun run;
  run.id = r.i64(0);
  run.pipeline = r.text(1);
  run.kind = parse_run_kind(r.text(2));
  run.status = parse_run_status(r.text(3));
  run.started_at = from_unix_ms(r.i64(4));
  run.finished_at = opt_time(r, 5);
  run.counts = {r.i64(6), r.i64(7), r.i64(8), r.i64(9)};
  run.error = r.text(10);
  return run;
}
constexpr const char *kRunColumns =
    "id, pipeline, kind, status, started_at, finished_at, fetched, enqueued, duplicates, failed, "
    "error";

Lease read_lease(const SqlRow &r) {
  return Lease{r.text(0), r.text(1), from_unix_ms(r.i64(2)), r.i64(3)};
}

// Binds a state value to its row so a ciphertext copied to another (connection, key) fails.
std::string state_aad(const std::string &connection, const std::string &key) {
  return "crmhost.connection_state.v1:" + std::to_string(connection.size()) + ":" + connection +
         ":" + key;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entity links

void SqlStore::upsert_link(const EntityLink &link) {
  write_tx([&](SqlTx &tx) {
    tx.exec(
        "INSERT INTO entity_links (pipeline, source_connection, source_id, target_connection, "
        "target_id, last_payload_hash, last_pushed_at, updated_at, target_modified_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (pipeline, source_connection, source_id) DO UPDATE SET "
        "target_connection = excluded.target_connection, target_id = excluded.target_id, "
        "last_payload_hash = excluded.last_payload_hash, last_pushed_at = excluded.last_pushed_at, "
        "updated_at = excluded.updated_at, target_modified_at = CASE "
        "WHEN excluded.target_modified_at IS NULL THEN entity_links.target_modified_at "
        "WHEN entity_links.target_modified_at IS NULL OR "
        "entity_links.target_modified_at < excluded.target_modified_at "
        "THEN excluded.target_modified_at ELSE entity_links.target_modified_at END",
        {link.pipeline, link.source_connection, link.source_id, link.target_connection,
         link.target_id, link.last_payload_hash, opt_time_param(link.last_pushed_at),
         to_unix_ms(now()), opt_time_param(link.target_modified_at)});
  });
}

std::optional<EntityLink> SqlStore::find_link_by_source(const std::string &pipeline,
                                                        const std::string &source_connection,
                                                        const std::string &source_id) {
  std::optional<EntityLink> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query(std::string("SELECT ") + kLinkColumns +
                 " FROM entity_links WHERE pipeline = ? AND source_connection = ? AND "
                 "source_id = ?",
             {pipeline, source_connection, source_id},
             [&](const SqlRow &r) { out = read_link(r); });
  });
  return out;
}

std::optional<EntityLink> SqlStore::find_link_by_target(const std::string &pipeline,
                                                        const std::string &target_connection,
                                                        const std::string &target_id) {
  std::optional<EntityLink> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query(std::string("SELECT ") + kLinkColumns +
                 " FROM entity_links WHERE pipeline = ? AND target_connection = ? AND "
                 "target_id = ?",
             {pipeline, target_connection, target_id},
             [&](const SqlRow &r) { out = read_link(r); });
  });
  return out;
}

std::int64_t SqlStore::close_links(const std::vector<std::string> &pipelines,
                                   const std::string &connection, const std::string &id) {
  std::int64_t removed = 0;
  write_tx([&](SqlTx &tx) {
    removed = 0;
    for (const auto &pipeline : pipelines)
      removed += tx.exec(
          "DELETE FROM entity_links WHERE pipeline = ? AND ((source_connection = ? AND "
          "source_id = ?) OR (target_connection = ? AND target_id = ?))",
          {pipeline, connection, id, connection, id});
  });
  return removed;
}

void SqlStore::note_archived(const std::string &connection, const std::string &id) {
  write_tx([&](SqlTx &tx) {
    tx.exec(
        "INSERT INTO archived_records (connection, record_id, archived_at) VALUES (?, ?, ?) "
        "ON CONFLICT (connection, record_id) DO UPDATE SET archived_at = excluded.archived_at",
        {connection, id, to_unix_ms(now())});
  });
}

std::optional<Timestamp> SqlStore::archived_at(const std::string &connection,
                                               const std::string &id) {
  std::optional<Timestamp> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query("SELECT archived_at FROM archived_records WHERE connection = ? AND record_id = ?",
             {connection, id}, [&](const SqlRow &r) { out = from_unix_ms(r.i64(0)); });
  });
  return out;
}

void SqlStore::forget_archived(const std::string &connection, const std::string &id) {
  write_tx([&](SqlTx &tx) {
    tx.exec("DELETE FROM archived_records WHERE connection = ? AND record_id = ?",
            {connection, id});
  });
}

bool SqlStore::note_target_modified(const std::string &pipeline,
                                    const std::string &target_connection,
                                    const std::string &target_id, Timestamp modified_at) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    const std::int64_t at = to_unix_ms(modified_at);
    changed = tx.exec(
        "UPDATE entity_links SET target_modified_at = ?, updated_at = ? WHERE pipeline = ? AND "
        "target_connection = ? AND target_id = ? AND "
        "(target_modified_at IS NULL OR target_modified_at < ?)",
        {at, to_unix_ms(now()), pipeline, target_connection, target_id, at});
  });
  return changed > 0;
}

void SqlStore::record_push(const std::string &pipeline, const std::string &source_connection,
                           const std::string &source_id, const std::string &payload_hash) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    const std::int64_t now_unix = to_unix_ms(now());
    changed = tx.exec(
        "UPDATE entity_links SET last_payload_hash = ?, last_pushed_at = ?, updated_at = ? "
        "WHERE pipeline = ? AND source_connection = ? AND source_id = ?",
        {payload_hash, now_unix, now_unix, pipeline, source_connection, source_id});
  });
  require(changed == 1,
          "no entity link for " + pipeline + "/" + source_connection + "/" + source_id);
}

// ---------------------------------------------------------------------------------------------
// Conflicts and sync runs

std::int64_t SqlStore::record_conflict(const Conflict &c) {
  std::int64_t id = 0;
  write_tx([&](SqlTx &tx) {
    id = tx.query_i64(
               "INSERT INTO conflicts (pipeline, object, source_connection, source_id, "
               "target_connection, target_id, detail, event_id, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
               {c.pipeline, c.object, c.source_connection, c.source_id, c.target_connection,
                c.target_id, c.detail, opt_param(c.event_id), to_unix_ms(now())})
             .value_or(0);
  });
  return id;
}

std::vector<Conflict> SqlStore::list_conflicts(const std::optional<std::string> &pipeline,
                                               bool open_only, int limit) {
  std::string sql = std::string("SELECT ") + kConflictColumns + " FROM conflicts WHERE 1 = 1";
  SqlParams params;
  if (pipeline) {
    sql += " AND pipeline = ?";
    params.emplace_back(*pipeline);
  }
  if (open_only) sql += " AND resolved_at IS NULL";
  sql += " ORDER BY id DESC LIMIT ?";
  params.emplace_back(std::int64_t{limit});
  std::vector<Conflict> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query(sql, params, [&](const SqlRow &r) { out.push_back(read_conflict(r)); });
  });
  return out;
}

bool SqlStore::resolve_conflict(std::int64_t id, const std::string &resolution) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec(
        "UPDATE conflicts SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
        {to_unix_ms(now()), resolution, id});
  });
  return changed == 1;
}

std::int64_t SqlStore::start_sync_run(const std::string &pipeline, SyncRunKind kind) {
  std::int64_t id = 0;
  write_tx([&](SqlTx &tx) {
    id = tx.query_i64(
               "INSERT INTO sync_runs (pipeline, kind, status, started_at, owner) VALUES (?, ?, "
               "'running', ?, ?) RETURNING id",
               {pipeline, to_string(kind), to_unix_ms(now()), process_identity()})
             .value_or(0);
  });
  return id;
}

void SqlStore::finish_sync_run(std::int64_t id, SyncRunStatus status, const SyncRunCounts &counts,
                               const std::string &error) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec(
        "UPDATE sync_runs SET status = ?, finished_at = ?, fetched = ?, enqueued = ?, "
        "duplicates = ?, failed = ?, error = ? WHERE id = ?",
        {to_string(status), to_unix_ms(now()), counts.fetched, counts.enqueued, counts.duplicates,
         counts.failed, error, id});
  });
  require(changed == 1, "no sync run " + std::to_string(id));
}

std::int64_t SqlStore::close_interrupted_sync_runs() {
  std::vector<std::pair<std::int64_t, std::string>> open;
  read_tx([&](SqlTx &tx) {
    open.clear();
    tx.query("SELECT id, owner FROM sync_runs WHERE status = 'running'", {},
             [&](const SqlRow &r) { open.emplace_back(r.i64(0), r.text(1)); });
  });
  std::int64_t closed = 0;
  for (const auto &[id, owner] : open) {
    if (!process_has_ended(owner)) continue;
    write_tx([&](SqlTx &tx) {
      closed += tx.exec(
          "UPDATE sync_runs SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ? "
          "AND status = 'running'",
          {to_unix_ms(now()),
           std::string("interrupted: the crmhost process running it (") +
               (owner.empty() ? "unknown" : owner) +
               ") ended without finishing it, by a crash or a kill",
           id});
    });
  }
  return closed;
}

std::optional<SyncRun> SqlStore::get_sync_run(std::int64_t id) {
  std::optional<SyncRun> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query(std::string("SELECT ") + kRunColumns + " FROM sync_runs WHERE id = ?", {id},
             [&](const SqlRow &r) { out = read_run(r); });
  });
  return out;
}

std::vector<SyncRun> SqlStore::list_sync_runs(const std::optional<std::string> &pipeline,
                                              int limit) {
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM sync_runs";
  SqlParams params;
  if (pipeline) {
    sql += " WHERE pipeline = ?";
    params.emplace_back(*pipeline);
  }
  sql += " ORDER BY id DESC LIMIT ?";
  params.emplace_back(std::int64_t{limit});
  std::vector<SyncRun> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query(sql, params, [&](const SqlRow &r) { out.push_back(read_run(r)); });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Connection state

void SqlStore::put_state(const std::string &connection, const std::string &key,
                         const std::string &value) {
  const SealedValue sealed = seal(keys_, state_aad(connection, key), value);
  write_tx([&](SqlTx &tx) {
    tx.exec(
        "INSERT INTO connection_state (connection, key, key_id, nonce, ciphertext, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connection, key) DO UPDATE SET "
        "key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
        "updated_at = excluded.updated_at",
        {connection, key, sealed.key_id, sealed.nonce, sealed.ciphertext, to_unix_ms(now())});
  });
}

std::optional<std::string> SqlStore::get_state(const std::string &connection,
                                               const std::string &key) {
  std::optional<SealedValue> sealed;
  read_tx([&](SqlTx &tx) {
    sealed.reset();
    tx.query(
        "SELECT key_id, nonce, ciphertext FROM connection_state WHERE connection = ? AND key = ?",
        {connection, key}, [&](const SqlRow &r) {
          sealed = SealedValue{r.text(0), r.text(1), r.text(2)};
        });
  });
  if (!sealed) return std::nullopt;
  return unseal(keys_, state_aad(connection, key), *sealed);
}

bool SqlStore::delete_state(const std::string &connection, const std::string &key) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed =
        tx.exec("DELETE FROM connection_state WHERE connection = ? AND key = ?", {connection, key});
  });
  return changed == 1;
}

std::vector<std::string> SqlStore::list_state_keys(const std::string &connection) {
  std::vector<std::string> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query("SELECT key FROM connection_state WHERE connection = ? ORDER BY key", {connection},
             [&](const SqlRow &r) { out.push_back(r.text(0)); });
  });
  return out;
}

void SqlStore::put_connection_status(const std::string &connection, const std::string &json) {
  write_tx([&](SqlTx &tx) {
    tx.exec(
        "INSERT INTO connection_status (connection, status, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (connection) DO UPDATE SET status = excluded.status, "
        "updated_at = excluded.updated_at",
        {connection, json, to_unix_ms(now())});
  });
}

std::vector<ConnectionStatus> SqlStore::list_connection_status() {
  std::vector<ConnectionStatus> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query("SELECT connection, status, updated_at FROM connection_status ORDER BY connection", {},
             [&](const SqlRow &r) {
               out.push_back({r.text(0), r.text(1), from_unix_ms(r.i64(2))});
             });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Leases

std::optional<Lease> SqlStore::acquire_lease(const std::string &name, const std::string &owner,
                                             Millis ttl) {
  require(!name.empty() && !owner.empty() && ttl.count() > 0,
          "a lease needs a name, an owner and a positive ttl");
  std::optional<Lease> out;
  write_tx([&](SqlTx &tx) {
    out.reset();
    const std::int64_t now_unix = to_unix_ms(now());
    // Free, expired or already ours: take it. The fencing token grows when the owner changes.
    tx.query(
        "INSERT INTO leases (name, owner, expires_at, fencing_token) VALUES (?, ?, ?, 1) "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at, fencing_token = CASE WHEN leases.owner = "
        "excluded.owner THEN leases.fencing_token ELSE leases.fencing_token + 1 END "
        "WHERE leases.owner = excluded.owner OR leases.expires_at <= ? "
        "RETURNING name, owner, expires_at, fencing_token",
        {name, owner, now_unix + ttl.count(), now_unix},
        [&](const SqlRow &r) { out = read_lease(r); });
  });
  return out;
}

bool SqlStore::renew_lease(const std::string &name, const std::string &owner, Millis ttl) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec("UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?",
                      {to_unix_ms(now()) + ttl.count(), name, owner});
  });
  return changed == 1;
}

bool SqlStore::release_lease(const std::string &name, const std::string &owner) {
  // The row stays (expired) so the fencing token keeps growing across owners.
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed =
        tx.exec("UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ?", {name, owner});
  });
  return changed == 1;
}

std::optional<Lease> SqlStore::get_lease(const std::string &name) {
  std::optional<Lease> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query("SELECT name, owner, expires_at, fencing_token FROM leases WHERE name = ?", {name},
             [&](const SqlRow &r) { out = read_lease(r); });
  });
  return out;
}

}  // namespace crmhost::store
