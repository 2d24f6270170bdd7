#include "store/sql_store.hpp"

#include <algorithm>

#include "store/sql_store_helpers.hpp"

namespace crmhost::store {
namespace {

using namespace sql_helpers;

constexpr const char *kEventColumns =
    "id, pipeline, source, connection, object, record_id, event_type, payload, dedupe_key, "
    "status, attempts, next_attempt_at, last_error, request_id, received_at, finished_at, "
    "claim_owner, claim_token, claimed_until";

// Statuses a claim picks up; must match the events_due partial index predicate literally.
constexpr const char *kClaimableStatuses = "status IN ('pending', 'failed', 'in_flight')";

Event read_event(const SqlRow &r) {
  Event e;
  e.id = r.i64(0);
  e.pipeline = r.text(1);
  e.source = parse_event_source(r.text(2));
  e.connection = r.text(3);
  e.object = r.text(4);
  e.record_id = r.text(5);
  e.event_type = r.text(6);
  e.payload = r.text(7);
  e.dedupe_key = r.text(8);
  e.status = parse_event_status(r.text(9));
  e.attempts = static_cast<int>(r.i64(10));
  e.next_attempt_at = from_unix_ms(r.i64(11));
  e.last_error = r.text(12);
  e.request_id = r.text(13);
  e.received_at = from_unix_ms(r.i64(14));
  e.finished_at = opt_time(r, 15);
  e.claim_owner = r.text(16);
  e.claim_token = r.text(17);
  e.claimed_until = opt_time(r, 18);
  return e;
}

Cursor read_cursor(const SqlRow &r) {
  return Cursor{r.text(0), r.text(1), r.text(2), r.i64(3), from_unix_ms(r.i64(4))};
}

}  // namespace

SqlStore::SqlStore(const StoreOptions &options, SqlDialect dialect)
    : dialect_(std::move(dialect)), keys_(KeyRing::from_options(options)), clock_(options.clock) {}

Timestamp SqlStore::now() const {
  return clock_ ? clock_() : now_ms();
}

// ---------------------------------------------------------------------------------------------
// Schema

int SqlStore::read_schema_version(SqlTx &tx) {
  if (tx.query_i64(dialect_.schema_version_table_exists_sql, {}).value_or(0) == 0) return 0;
  return static_cast<int>(
      tx.query_i64("SELECT COALESCE(MAX(version), 0) FROM schema_version", {}).value_or(0));
}

int SqlStore::schema_version() {
  int version = 0;
  read_tx([&](SqlTx &tx) { version = read_schema_version(tx); });
  return version;
}

int SqlStore::migrate(std::optional<int> target_in) {
  const int latest = static_cast<int>(dialect_.migrations.size());
  const int target = target_in.value_or(latest);
  require(target >= 0 && target <= latest, "cannot migrate to schema version " +
                                               std::to_string(target) + ": this crmhost knows 0.." +
                                               std::to_string(latest));
  int result = 0;
  write_tx([&](SqlTx &tx) {
    if (!dialect_.migration_lock_sql.empty()) tx.exec(dialect_.migration_lock_sql);
    tx.exec_script(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    int current = read_schema_version(tx);
    if (current > latest) {
      throw StoreError(StoreError::Kind::schema_too_new,
                       "database schema version " + std::to_string(current) +
                           " is newer than this crmhost supports (" + std::to_string(latest) +
                           "); upgrade crmhost or use a matching database");
    }
    for (const Migration &m : dialect_.migrations) {
      if (m.version <= current || m.version > target) continue;
      tx.exec_script(m.sql);
      tx.exec("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
              {std::int64_t{m.version}, std::string_view(m.description), to_unix_ms(now())});
      current = m.version;
    }
    result = current;
  });
  opened_schema_version_ = result;
  return result;
}

void SqlStore::open_schema(const StoreOptions &options) {
  const int latest = static_cast<int>(dialect_.migrations.size());
  const int current = schema_version();
  if (current > latest) {
    throw StoreError(StoreError::Kind::schema_too_new,
                     "database schema version " + std::to_string(current) +
                         " is newer than this crmhost supports (" + std::to_string(latest) +
                         "); upgrade crmhost or use a matching database");
  }
  opened_schema_version_ = current;
  if (options.apply_migrations && current < options.migrate_to.value_or(latest)) {
    migrate(options.migrate_to);
  }
}

// ---------------------------------------------------------------------------------------------
// Events

EnqueueResult SqlStore::enqueue_in(SqlTx &tx, const std::vector<NewEvent> &events,
                                   std::int64_t now_unix) {
  EnqueueResult out;
  out.reserve(events.size());
  const std::string insert =
      std::string("INSERT INTO events (pipeline, source, connection, object, ") +
      "record_id, event_type, payload, dedupe_key, status, attempts, " +
      "next_attempt_at, request_id, received_at) VALUES " +
      "(?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) " +
      "ON CONFLICT (pipeline, dedupe_key) DO NOTHING";
  for (const NewEvent &e : events) {
    std::optional<std::int64_t> id = tx.insert_returning_id(
        insert, {e.pipeline, to_string(e.source), e.connection, e.object, e.record_id, e.event_type,
                 e.payload, e.dedupe_key, e.not_before ? to_unix_ms(*e.not_before) : now_unix,
                 e.request_id, now_unix});
    if (id) {
      out.push_back({*id, false});
      continue;
    }
    id = tx.query_i64("SELECT id FROM events WHERE pipeline = ? AND dedupe_key = ?",
                      {e.pipeline, e.dedupe_key});
    if (!id)
      throw StoreError(StoreError::Kind::internal, "duplicate event vanished during enqueue");
    out.push_back({*id, true});
  }
  return out;
}

void SqlStore::write_tx_async(std::function<void(SqlTx &)> fn,
                              std::function<void(std::exception_ptr)> done) {
  std::exception_ptr error;
  try {
    write_tx(fn);
  } catch (...) {
    error = std::current_exception();
  }
  done(error);
}

void SqlStore::enqueue_async(std::vector<NewEvent> events, EnqueueDone done) {
  for (const NewEvent &e : events) {
    if (e.pipeline.empty() || e.dedupe_key.empty()) {
      done(std::make_exception_ptr(StoreError(StoreError::Kind::invalid_argument,
                                              "an event needs a pipeline and a dedupe key")),
           {});
      return;
    }
  }
  if (events.empty()) return done(nullptr, {});
  auto shared_events = std::make_shared<std::vector<NewEvent>>(std::move(events));
  auto out = std::make_shared<EnqueueResult>();
  write_tx_async([this, shared_events,
                  out](SqlTx &tx) { *out = enqueue_in(tx, *shared_events, to_unix_ms(now())); },
                 [out, done = std::move(done)](std::exception_ptr error) {
                   done(error, error ? EnqueueResult{} : std::move(*out));
                 });
}

EnqueueResult SqlStore::enqueue(const std::vector<NewEvent> &events) {
  for (const NewEvent &e : events) {
    require(!e.pipeline.empty() && !e.dedupe_key.empty(),
            "an event needs a pipeline and a dedupe key");
  }
  if (events.empty()) return {};
  EnqueueResult out;
  write_tx([&](SqlTx &tx) { out = enqueue_in(tx, events, to_unix_ms(now())); });
  return out;
}

std::vector<Event> SqlStore::claim(const ClaimRequest &request) {
  require(request.max_events > 0 && request.lease.count() > 0,
          "claim needs max_events > 0 and a positive lease");
  const std::string token = random_hex(16);
  // While in flight, next_attempt_at holds the claim expiry: an abandoned claim becomes due again.
  const std::string sql = std::string("UPDATE events SET status = 'in_flight', ") +
                          "attempts = attempts + 1, claim_owner = ?, claim_token = ?, " +
                          "claimed_until = ?, next_attempt_at = ? WHERE id IN (SELECT id FROM " +
                          "events WHERE pipeline = ? AND " + kClaimableStatuses +
                          " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?" +
                          dialect_.claim_lock_clause + ") RETURNING " + kEventColumns;
  std::vector<Event> claimed;
  write_tx([&](SqlTx &tx) {
    const std::int64_t now_unix = to_unix_ms(now());
    const std::int64_t until = now_unix + request.lease.count();
    std::vector<Event> rows;
    tx.query(sql,
             {request.owner, token, until, until, request.pipeline, now_unix,
              std::int64_t{request.max_events}},
             [&](const SqlRow &r) { rows.push_back(read_event(r)); });
    claimed = std::move(rows);
  });
  std::sort(claimed.begin(), claimed.end(),
            [](const Event &a, const Event &b) { return a.id < b.id; });
  return claimed;
}

bool SqlStore::complete(EventId id, const std::string &claim_token) {
  return complete_many({id}, claim_token) == 1;
}

std::size_t SqlStore::complete_many(const std::vector<EventId> &ids,
                                    const std::string &claim_token) {
  if (ids.empty() || claim_token.empty()) return 0;
  constexpr std::size_t kChunk = 500;
  std::int64_t done = 0;
  write_tx([&](SqlTx &tx) {
    const std::int64_t now_unix = to_unix_ms(now());
    done = 0;
    for (std::size_t start = 0; start < ids.size(); start += kChunk) {
      const std::size_t n = std::min(kChunk, ids.size() - start);
      SqlParams params{now_unix, claim_token};
      for (std::size_t i = 0; i < n; ++i) params.emplace_back(ids[start + i]);
      done += tx.exec(
          "UPDATE events SET status = 'done', finished_at = ?, claim_token = '', "
          "claimed_until = NULL WHERE status = 'in_flight' AND claim_token = ? AND id IN (" +
              placeholders(n) + ")",
          params);
    }
  });
  return static_cast<std::size_t>(done);
}

bool SqlStore::fail(EventId id, const std::string &claim_token, const std::string &error,
                    Timestamp retry_at) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec(
        "UPDATE events SET status = 'failed', next_attempt_at = ?, last_error = ?, "
        "claim_token = '', claimed_until = NULL "
        "WHERE id = ? AND status = 'in_flight' AND claim_token = ? AND claim_token <> ''",
        {to_unix_ms(retry_at), error, id, claim_token});
  });
  return changed == 1;
}

bool SqlStore::dead_letter(EventId id, const std::string &claim_token, const std::string &error) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec(
        "UPDATE events SET status = 'dead', finished_at = ?, last_error = ?, claim_token = '', "
        "claimed_until = NULL "
        "WHERE id = ? AND status = 'in_flight' AND claim_token = ? AND claim_token <> ''",
        {to_unix_ms(now()), error, id, claim_token});
  });
  return changed == 1;
}

namespace {
constexpr const char *kReplaySet =
    "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL, "
    "claim_token = '', claimed_until = NULL WHERE status <> 'in_flight'";
}

std::int64_t SqlStore::requeue_expired_claims() {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    // next_attempt_at already holds the claim expiry, so the event keeps its place in the queue.
    changed = tx.exec(
        "UPDATE events SET status = 'pending', claim_token = '', claimed_until = NULL "
        "WHERE status = 'in_flight' AND claimed_until <= ?",
        {to_unix_ms(now())});
  });
  return changed;
}

bool SqlStore::replay(EventId id) {
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    changed = tx.exec(std::string(kReplaySet) + " AND id = ?", {to_unix_ms(now()), id});
  });
  return changed == 1;
}

std::int64_t SqlStore::replay(const ReplayFilter &filter) {
  require(!filter.statuses.empty(), "replay filter needs at least one status");
  std::string sql = kReplaySet;
  std::vector<std::string> status_names;
  for (EventStatus s : filter.statuses) {
    require(s != EventStatus::in_flight, "in-flight events cannot be replayed");
    status_names.emplace_back(to_string(s));
  }
  SqlParams params{std::int64_t{0}};  // now, filled in inside the transaction
  sql += " AND status IN (" + placeholders(status_names.size()) + ")";
  for (const auto &s : status_names) params.emplace_back(s);
  if (filter.pipeline) {
    sql += " AND pipeline = ?";
    params.emplace_back(*filter.pipeline);
  }
  if (filter.received_from) {
    sql += " AND received_at >= ?";
    params.emplace_back(to_unix_ms(*filter.received_from));
  }
  if (filter.received_to) {
    sql += " AND received_at < ?";
    params.emplace_back(to_unix_ms(*filter.received_to));
  }
  if (filter.error_contains) {
    sql += " AND " + dialect_.substring_function + "(last_error, ?) > 0";
    params.emplace_back(*filter.error_contains);
  }
  std::int64_t changed = 0;
  write_tx([&](SqlTx &tx) {
    params[0] = to_unix_ms(now());
    changed = tx.exec(sql, params);
  });
  return changed;
}

std::optional<Event> SqlStore::get_event(EventId id) {
  std::optional<Event> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query(std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?", {id},
             [&](const SqlRow &r) { out = read_event(r); });
  });
  return out;
}

std::vector<Event> SqlStore::list_events(const EventQuery &query) {
  require(query.limit > 0, "list_events needs a positive limit");
  std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE id > ?";
  const std::string status = query.status ? std::string(to_string(*query.status)) : "";
  SqlParams params{query.after_id};
  if (query.pipeline) {
    sql += " AND pipeline = ?";
    params.emplace_back(*query.pipeline);
  }
  if (query.status) {
    sql += " AND status = ?";
    params.emplace_back(status);
  }
  sql += " ORDER BY id LIMIT ?";
  params.emplace_back(std::int64_t{query.limit});
  std::vector<Event> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query(sql, params, [&](const SqlRow &r) { out.push_back(read_event(r)); });
  });
  return out;
}

std::vector<StatusCount> SqlStore::count_by_status(const std::optional<std::string> &pipeline) {
  std::string sql = "SELECT pipeline, status, COUNT(*) FROM events";
  SqlParams params;
  if (pipeline) {
    sql += " WHERE pipeline = ?";
    params.emplace_back(*pipeline);
  }
  sql += " GROUP BY pipeline, status ORDER BY pipeline, status";
  std::vector<StatusCount> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query(sql, params, [&](const SqlRow &r) {
      out.push_back({r.text(0), parse_event_status(r.text(1)), r.i64(2)});
    });
  });
  return out;
}

std::int64_t SqlStore::purge_done_events(Millis older_than, int batch_size) {
  require(batch_size > 0, "purge needs a positive batch size");
  const std::int64_t cutoff = to_unix_ms(now()) - older_than.count();
  std::int64_t total = 0;
  // One short transaction per batch so a large purge never holds the writer for long.
  for (;;) {
    std::int64_t n = 0;
    write_tx([&](SqlTx &tx) {
      n = tx.exec(
          "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE status = 'done' AND "
          "finished_at < ? ORDER BY finished_at LIMIT ?)",
          {cutoff, std::int64_t{batch_size}});
    });
    total += n;
    if (n < batch_size) return total;
  }
}

// ---------------------------------------------------------------------------------------------
// Cursors

std::optional<Cursor> SqlStore::get_cursor(const std::string &pipeline, const std::string &object) {
  std::optional<Cursor> out;
  read_tx([&](SqlTx &tx) {
    out.reset();
    tx.query(
        "SELECT pipeline, object, value, version, updated_at FROM cursors WHERE pipeline = ? "
        "AND object = ?",
        {pipeline, object}, [&](const SqlRow &r) { out = read_cursor(r); });
  });
  return out;
}

Cursor SqlStore::set_cursor_in(SqlTx &tx, const std::string &pipeline, const std::string &object,
                               const std::string &value,
                               std::optional<std::int64_t> expected_version, std::int64_t now_unix,
                               bool &applied) {
  std::optional<std::int64_t> version;
  if (!expected_version) {
    version = tx.query_i64(
        "INSERT INTO cursors (pipeline, object, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
        "ON CONFLICT (pipeline, object) DO UPDATE SET value = excluded.value, "
        "version = cursors.version + 1, updated_at = excluded.updated_at RETURNING version",
        {pipeline, object, value, now_unix});
  } else if (*expected_version == 0) {
    version = tx.query_i64(
        "INSERT INTO cursors (pipeline, object, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
        "ON CONFLICT (pipeline, object) DO NOTHING RETURNING version",
        {pipeline, object, value, now_unix});
  } else {
    // The version check and the update are one statement, so concurrent writers cannot both pass.
    version = tx.query_i64(
        "UPDATE cursors SET value = ?, version = version + 1, updated_at = ? WHERE pipeline = ? "
        "AND object = ? AND version = ? RETURNING version",
        {value, now_unix, pipeline, object, *expected_version});
  }
  applied = version.has_value();
  if (!applied) return {};
  if (opened_schema_version_ >= 2) {
    tx.exec(
        "INSERT INTO cursor_history (pipeline, object, version, value, recorded_at) "
        "VALUES (?, ?, ?, ?, ?)",
        {pipeline, object, *version, value, now_unix});
  }
  return Cursor{pipeline, object, value, *version, from_unix_ms(now_unix)};
}

CursorAdvanceResult SqlStore::advance_cursor(const CursorAdvance &advance) {
  require(!advance.pipeline.empty() && !advance.object.empty(),
          "a cursor needs a pipeline and an object");
  for (const NewEvent &e : advance.events) {
    require(!e.pipeline.empty() && !e.dedupe_key.empty(),
            "an event needs a pipeline and a dedupe key");
  }
  CursorAdvanceResult out;
  write_tx([&](SqlTx &tx) {
    const std::int64_t now_unix = to_unix_ms(now());
    CursorAdvanceResult r;
    const Cursor c = set_cursor_in(tx, advance.pipeline, advance.object, advance.new_value,
                                   advance.expected_version, now_unix, r.applied);
    if (r.applied) {
      r.version = c.version;
      r.events = enqueue_in(tx, advance.events, now_unix);
    }
    out = std::move(r);
  });
  return out;
}

std::vector<Cursor> SqlStore::cursor_history(const std::string &pipeline, const std::string &object,
                                             int limit) {
  std::vector<Cursor> out;
  read_tx([&](SqlTx &tx) {
    out.clear();
    tx.query(
        "SELECT pipeline, object, value, version, recorded_at FROM cursor_history WHERE "
        "pipeline = ? AND object = ? ORDER BY version DESC LIMIT ?",
        {pipeline, object, std::int64_t{limit}},
        [&](const SqlRow &r) { out.push_back(read_cursor(r)); });
  });
  return out;
}

Cursor SqlStore::rewind_cursor(const std::string &pipeline, const std::string &object,
                               std::int64_t version) {
  Cursor out;
  write_tx([&](SqlTx &tx) {
    std::optional<std::string> value;
    tx.query("SELECT value FROM cursor_history WHERE pipeline = ? AND object = ? AND version = ?",
             {pipeline, object, version}, [&](const SqlRow &r) { value = r.text(0); });
    require(value.has_value(), "cursor " + pipeline + "/" + object + " has no version " +
                                   std::to_string(version) + " in its history");
    bool applied = false;
    out = set_cursor_in(tx, pipeline, object, *value, std::nullopt, to_unix_ms(now()), applied);
  });
  return out;
}

}  // namespace crmhost::store
