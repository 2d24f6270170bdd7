#include "store/migrations.hpp"

#include <string_view>
#include <vector>

namespace crmhost::store {
namespace {

// Shared migration text; {ID} is the auto-increment primary key type of the backend.
// SQLite's AUTOINCREMENT keeps ids from being reused after a purge (keyset pagination relies on
// it).
constexpr std::string_view kMigration1 = R"sql(
CREATE TABLE events (
  id {ID},
  pipeline TEXT NOT NULL,
  source TEXT NOT NULL,
  connection TEXT NOT NULL,
  object TEXT NOT NULL,
  record_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  payload TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  request_id TEXT NOT NULL DEFAULT '',
  received_at BIGINT NOT NULL,
  finished_at BIGINT,
  claim_owner TEXT NOT NULL DEFAULT '',
  claim_token TEXT NOT NULL DEFAULT '',
  claimed_until BIGINT,
  UNIQUE (pipeline, dedupe_key)
);
-- Claimable events: pending/failed when due, in_flight when the claim expired (next_attempt_at
-- holds the claim expiry while in flight), so one range scan finds them all.
CREATE INDEX events_due ON events (pipeline, next_attempt_at)
  WHERE status IN ('pending', 'failed', 'in_flight');
CREATE INDEX events_pipeline_status ON events (pipeline, status, id);

CREATE TABLE cursors (
  pipeline TEXT NOT NULL,
  object TEXT NOT NULL,
  value TEXT NOT NULL,
  version BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (pipeline, object)
);

CREATE TABLE entity_links (
  pipeline TEXT NOT NULL,
  source_connection TEXT NOT NULL,
  source_id TEXT NOT NULL,
  target_connection TEXT NOT NULL,
  target_id TEXT NOT NULL,
  last_payload_hash TEXT NOT NULL DEFAULT '',
  last_pushed_at BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (pipeline, source_connection, source_id),
  UNIQUE (pipeline, target_connection, target_id)
);

CREATE TABLE conflicts (
  id {ID},
  pipeline TEXT NOT NULL,
  object TEXT NOT NULL,
  source_connection TEXT NOT NULL,
  source_id TEXT NOT NULL,
  target_connection TEXT NOT NULL,
  target_id TEXT NOT NULL,
  detail TEXT NOT NULL,
  event_id BIGINT REFERENCES events (id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  resolved_at BIGINT,
  resolution TEXT NOT NULL DEFAULT ''
);
CREATE INDEX conflicts_pipeline ON conflicts (pipeline, id);

CREATE TABLE sync_runs (
  id {ID},
  pipeline TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  fetched BIGINT NOT NULL DEFAULT 0,
  enqueued BIGINT NOT NULL DEFAULT 0,
  duplicates BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_runs_pipeline ON sync_runs (pipeline, id);

CREATE TABLE connection_state (
  connection TEXT NOT NULL,
  key TEXT NOT NULL,
  key_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  ciphertext TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (connection, key)
);

CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  fencing_token BIGINT NOT NULL
);
)sql";

// Version 2: cursor history (rewind while running) and the retention index for purges.
constexpr std::string_view kMigration2 = R"sql(
CREATE TABLE cursor_history (
  pipeline TEXT NOT NULL,
  object TEXT NOT NULL,
  version BIGINT NOT NULL,
  value TEXT NOT NULL,
  recorded_at BIGINT NOT NULL,
  PRIMARY KEY (pipeline, object, version)
);
INSERT INTO cursor_history (pipeline, object, version, value, recorded_at)
  SELECT pipeline, object, version, value, updated_at FROM cursors;
CREATE INDEX events_done_finished ON events (finished_at) WHERE status = 'done';
)sql";

// Version 3: the newest modification time seen for a link's target record (newest_wins).
constexpr std::string_view kMigration3 = R"sql(
ALTER TABLE entity_links ADD COLUMN target_modified_at BIGINT;
)sql";

// Version 4: which process runs a sync run, so runs left open by a crash can be closed at start.
constexpr std::string_view kMigration4 = R"sql(
ALTER TABLE sync_runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
)sql";

// Version 5: the last upkeep status of each connection (a notification channel and its expiry),
// for `crmhost status`; not secret, so not sealed like connection_state.
constexpr std::string_view kMigration5 = R"sql(
CREATE TABLE connection_status (
  connection TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
)sql";

// Version 6: records crmhost archived for a delete on the other side (on_delete: archive), so
// their echo is not taken for a new record.
constexpr std::string_view kMigration6 = R"sql(
CREATE TABLE archived_records (
  connection TEXT NOT NULL,
  record_id TEXT NOT NULL,
  archived_at BIGINT NOT NULL,
  PRIMARY KEY (connection, record_id)
);
)sql";

std::string with_id_type(std::string_view text, std::string_view id_type) {
  std::string out(text);
  for (auto pos = out.find("{ID}"); pos != std::string::npos; pos = out.find("{ID}", pos)) {
    out.replace(pos, 4, id_type);
  }
  return out;
}

std::vector<Migration> build(std::string_view id_type) {
  return {
      {1, "initial schema", with_id_type(kMigration1, id_type)},
      {2, "cursor history and retention index", std::string(kMigration2)},
      {3, "target modification time on entity links", std::string(kMigration3)},
      {4, "the process that owns a sync run", std::string(kMigration4)},
      {5, "connection upkeep status", std::string(kMigration5)},
      {6, "records archived by crmhost", std::string(kMigration6)},
  };
}

}  // namespace

std::span<const Migration> sqlite_migrations() {
  static const std::vector<Migration> list = build("INTEGER PRIMARY KEY AUTOINCREMENT");
  return list;
}

std::span<const Migration> postgresql_migrations() {
  static const std::vector<Migration> list = build("BIGSERIAL PRIMARY KEY");
  return list;
}

}  // namespace crmhost::store
