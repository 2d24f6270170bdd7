// Cursors, entity links, conflicts, sync runs, encrypted connection state and leases.
#include <catch2/catch.hpp>

#include <fstream>

#include "store/secret_box.hpp"
#include "store_test_support.hpp"

using namespace crmhost::store;
using namespace crmhost::store::test;
using namespace std::chrono_literals;

TEST_CASE("advancing a cursor enqueues the page's events in the same transaction", "[cursors]") {
  TestDb db;
  auto store = db.open();
  CHECK_FALSE(store->get_cursor("p1", "contact"));

  CursorAdvance page1{"p1",
                      "contact",
                      "page-1-token",
                      std::nullopt,
                      {make_event("p1", "1"), make_event("p1", "2")}};
  auto r1 = store->advance_cursor(page1);
  CHECK(r1.applied);
  CHECK(r1.version == 1);
  CHECK(r1.events.size() == 2);
  auto cur = store->get_cursor("p1", "contact");
  REQUIRE(cur);
  CHECK(cur->value == "page-1-token");
  CHECK(cur->version == 1);

  // Compare-and-set: a stale expectation writes neither the cursor nor the events.
  CursorAdvance stale{"p1", "contact", "page-2-token", 0, {make_event("p1", "3")}};
  auto r2 = store->advance_cursor(stale);
  CHECK_FALSE(r2.applied);
  CHECK(store->get_cursor("p1", "contact")->value == "page-1-token");
  CHECK(store->list_events({}).size() == 2);

  stale.expected_version = 1;
  auto r3 = store->advance_cursor(stale);
  CHECK(r3.applied);
  CHECK(r3.version == 2);
  CHECK(store->list_events({}).size() == 3);

  // A page that repeats events dedupes them and still moves the cursor.
  auto r4 = store->advance_cursor({"p1", "contact", "page-3-token", 2, {make_event("p1", "3")}});
  CHECK(r4.applied);
  CHECK(r4.events[0].duplicate);
}

TEST_CASE("cursor history keeps previous values and a cursor can be rewound while running",
          "[cursors]") {
  TestDb db;
  auto store = db.open();
  for (const char *v : {"a", "b", "c"}) store->advance_cursor({"p1", "deal", v, std::nullopt, {}});
  auto history = store->cursor_history("p1", "deal", 10);
  REQUIRE(history.size() == 3);
  CHECK(history[0].version == 3);
  CHECK(history[0].value == "c");
  CHECK(history[2].value == "a");

  // A poll read version 3; meanwhile an operator rewinds to version 1.
  const auto seen_by_poll = store->get_cursor("p1", "deal");
  const Cursor rewound = store->rewind_cursor("p1", "deal", 1);
  CHECK(rewound.value == "a");
  CHECK(rewound.version == 4);
  CHECK(store->get_cursor("p1", "deal")->value == "a");
  // The running poll's advance loses the race instead of overwriting the rewind.
  CHECK_FALSE(store->advance_cursor({"p1", "deal", "d", seen_by_poll->version, {}}).applied);
  CHECK(store->advance_cursor({"p1", "deal", "b2", 4, {}}).applied);
  CHECK(store->cursor_history("p1", "deal", 2)[1].value == "a");
  CHECK_THROWS_AS(store->rewind_cursor("p1", "deal", 99), StoreError);
}

TEST_CASE("entity links map both ways and remember the last pushed payload", "[links]") {
  TestDb db;
  auto store = db.open();
  EntityLink link{"p1", "hubspot", "h-1", "zoho", "z-9", "", std::nullopt, {}, std::nullopt};
  store->upsert_link(link);
  auto by_source = store->find_link_by_source("p1", "hubspot", "h-1");
  REQUIRE(by_source);
  CHECK(by_source->target_id == "z-9");
  CHECK_FALSE(by_source->last_pushed_at);
  auto by_target = store->find_link_by_target("p1", "zoho", "z-9");
  REQUIRE(by_target);
  CHECK(by_target->source_id == "h-1");
  CHECK_FALSE(store->find_link_by_target("p2", "zoho", "z-9"));

  // Echo suppression: the target's webhook for our own push carries the hash we recorded.
  const std::string hash = sha256_hex(R"({"name":"Ada"})");
  store->record_push("p1", "hubspot", "h-1", hash);
  auto pushed = store->find_link_by_target("p1", "zoho", "z-9");
  CHECK(pushed->last_payload_hash == hash);
  CHECK(pushed->last_pushed_at);
  CHECK_THROWS_AS(store->record_push("p1", "hubspot", "missing", hash), StoreError);

  link.target_id = "z-10";  // re-linked after the target record was merged
  store->upsert_link(link);
  CHECK(store->find_link_by_source("p1", "hubspot", "h-1")->target_id == "z-10");
  CHECK_FALSE(store->find_link_by_target("p1", "zoho", "z-9"));

  // newest_wins: the target's modification time is raised, never lowered.
  CHECK_FALSE(store->find_link_by_source("p1", "hubspot", "h-1")->target_modified_at);
  CHECK(store->note_target_modified("p1", "zoho", "z-10", from_unix_ms(2000)));
  CHECK_FALSE(store->note_target_modified("p1", "zoho", "z-10", from_unix_ms(1000)));
  CHECK_FALSE(store->note_target_modified("p1", "zoho", "missing", from_unix_ms(3000)));
  link.target_modified_at = from_unix_ms(1500);
  store->upsert_link(link);
  CHECK(to_unix_ms(*store->find_link_by_source("p1", "hubspot", "h-1")->target_modified_at) ==
        2000);
  link.target_modified_at = from_unix_ms(2500);
  store->upsert_link(link);
  CHECK(to_unix_ms(*store->find_link_by_source("p1", "hubspot", "h-1")->target_modified_at) ==
        2500);
}

TEST_CASE("conflicts are recorded, listed and resolved", "[conflicts]") {
  TestDb db;
  auto store = db.open();
  const auto ids = store->enqueue({make_event("p1", "1")});
  Conflict c;
  c.pipeline = "p1";
  c.object = "contact";
  c.source_connection = "hubspot";
  c.source_id = "h-1";
  c.target_connection = "zoho";
  c.target_id = "z-1";
  c.detail = R"({"field":"email"})";
  c.event_id = ids[0].id;
  const auto id = store->record_conflict(c);
  CHECK(id > 0);
  auto open = store->list_conflicts(std::string("p1"), true, 10);
  REQUIRE(open.size() == 1);
  CHECK(open[0].event_id == ids[0].id);
  CHECK(open[0].detail == c.detail);
  CHECK(store->resolve_conflict(id, "kept source"));
  CHECK_FALSE(store->resolve_conflict(id, "again"));
  CHECK(store->list_conflicts(std::string("p1"), true, 10).empty());
  auto all = store->list_conflicts(std::nullopt, false, 10);
  REQUIRE(all.size() == 1);
  CHECK(all[0].resolution == "kept source");
  CHECK(all[0].resolved_at);
}

TEST_CASE("sync runs record kind, counts and outcome", "[runs]") {
  TestDb db;
  auto store = db.open();
  const auto poll = store->start_sync_run("p1", SyncRunKind::poll);
  const auto backfill = store->start_sync_run("p1", SyncRunKind::backfill);
  store->start_sync_run("p2", SyncRunKind::replay);
  store->finish_sync_run(poll, SyncRunStatus::succeeded, {100, 90, 10, 0});
  store->finish_sync_run(backfill, SyncRunStatus::failed, {5, 5, 0, 1}, "HTTP 429");

  auto run = store->get_sync_run(poll);
  REQUIRE(run);
  CHECK(run->kind == SyncRunKind::poll);
  CHECK(run->status == SyncRunStatus::succeeded);
  CHECK(run->counts.fetched == 100);
  CHECK(run->counts.duplicates == 10);
  CHECK(run->finished_at);
  CHECK(store->get_sync_run(backfill)->error == "HTTP 429");
  auto p1 = store->list_sync_runs(std::string("p1"), 10);
  REQUIRE(p1.size() == 2);
  CHECK(p1[0].id == backfill);  // newest first
  CHECK(store->list_sync_runs(std::nullopt, 10).size() == 3);
  CHECK(store->list_sync_runs(std::nullopt, 10).back().status == SyncRunStatus::succeeded);
  CHECK_THROWS_AS(store->finish_sync_run(9999, SyncRunStatus::failed, {}), StoreError);
}

TEST_CASE("connection state is encrypted at rest and bound to its row", "[state]") {
  TestDb db;
  auto store = db.open();
  store->put_state("hubspot", "oauth.refresh_token", "rt-secret-value");
  store->put_state("hubspot", "poll.etag", "W/\"abc\"");
  store->put_state("zoho", "oauth.refresh_token", "other-secret");
  CHECK(store->get_state("hubspot", "oauth.refresh_token") == "rt-secret-value");
  CHECK(store->list_state_keys("hubspot") ==
        std::vector<std::string>{"oauth.refresh_token", "poll.etag"});
  CHECK_FALSE(store->get_state("hubspot", "missing"));

  const std::string raw = db.sql(
      "SELECT ciphertext FROM connection_state WHERE connection = 'hubspot' AND key = "
      "'oauth.refresh_token'");
  CHECK(raw.find("rt-secret") == std::string::npos);
  CHECK(db.sql("SELECT key_id FROM connection_state WHERE connection = 'hubspot' AND key = "
               "'poll.etag'") == "test1");

  SECTION("tampered ciphertext is rejected") {
    db.sql(
        "UPDATE connection_state SET ciphertext = CASE WHEN substr(ciphertext, 1, 1) = 'A' THEN "
        "'B' ELSE 'A' END || substr(ciphertext, 2) WHERE connection = 'hubspot' AND key = "
        "'oauth.refresh_token'");
    CHECK_THROWS_AS(store->get_state("hubspot", "oauth.refresh_token"), StoreError);
  }
  SECTION("a value moved to another row is rejected") {
    db.sql(
        "UPDATE connection_state SET nonce = (SELECT nonce FROM connection_state WHERE "
        "connection = 'zoho'), ciphertext = (SELECT ciphertext FROM connection_state WHERE "
        "connection = 'zoho') WHERE connection = 'hubspot' AND key = 'oauth.refresh_token'");
    try {
      (void)store->get_state("hubspot", "oauth.refresh_token");
      FAIL("a swapped value was accepted");
    } catch (const StoreError &e) {
      CHECK(e.kind() == StoreError::Kind::crypto);
    }
  }
  CHECK(store->delete_state("hubspot", "poll.etag"));
  CHECK_FALSE(store->delete_state("hubspot", "poll.etag"));
}

TEST_CASE("records crmhost archived are noted per connection until forgotten", "[links]") {
  TestDb db;
  auto store = db.open();
  CHECK_FALSE(store->archived_at("odoo", "7"));
  const auto before = now_ms();
  store->note_archived("odoo", "7");
  const auto at = store->archived_at("odoo", "7");
  REQUIRE(at);
  CHECK(*at >= before - std::chrono::milliseconds(1));
  CHECK_FALSE(store->archived_at("odoo", "8"));
  CHECK_FALSE(store->archived_at("hubspot", "7"));
  store->note_archived("odoo", "7");  // archived again: one row, the newer time
  CHECK(*store->archived_at("odoo", "7") >= *at);
  store->forget_archived("odoo", "7");
  CHECK_FALSE(store->archived_at("odoo", "7"));
}

TEST_CASE("a connection's upkeep status is kept per connection, the latest write winning",
          "[state]") {
  TestDb db;
  auto store = db.open();
  CHECK(store->list_connection_status().empty());
  store->put_connection_status("zoho", R"({"ok":false})");
  store->put_connection_status("hubspot", R"({"ok":true})");
  store->put_connection_status("zoho", R"({"ok":true,"plugin":{"channel_id":"1"}})");
  const auto all = store->list_connection_status();
  REQUIRE(all.size() == 2);
  CHECK(all[0].connection == "hubspot");
  CHECK(all[1].connection == "zoho");
  CHECK(all[1].json == R"({"ok":true,"plugin":{"channel_id":"1"}})");
  CHECK(all[1].updated_at.time_since_epoch().count() > 0);
}

TEST_CASE("secret keys rotate: old keys decrypt, new writes use the new key id", "[state]") {
  TestDb db;
  auto old_store = db.open();
  old_store->put_state("hubspot", "token", "v1");
  old_store.reset();

  const std::string new_key = "k2:" + base64_encode(std::string(32, '\x42'));
  StoreOptions rotated = db.options();
  rotated.old_secret_keys = {rotated.secret_key};
  rotated.secret_key = new_key;
  auto store = db.open(rotated);
  CHECK(store->get_state("hubspot", "token") == "v1");
  store->put_state("hubspot", "token", "v2");
  CHECK(db.sql("SELECT key_id FROM connection_state WHERE key = 'token'") == "k2");
  store.reset();

  StoreOptions only_new = db.options();
  only_new.secret_key = new_key;
  auto fresh = db.open(only_new);
  CHECK(fresh->get_state("hubspot", "token") == "v2");
  fresh->put_state("hubspot", "other", "x");
  fresh.reset();

  StoreOptions only_old = db.options();  // a host that was not upgraded yet
  auto stale = db.open(only_old);
  CHECK_THROWS_WITH(stale->get_state("hubspot", "token"), Catch::Contains("key id 'k2'"));
}

TEST_CASE("secret keys: formats, key file, and a clear error when none is configured",
          "[state][keys]") {
  const SecretKey hex = parse_secret_key(kTestKeyHex);
  CHECK(hex.id.size() == 8);
  CHECK(hex.bytes[31] == 0x1f);
  const SecretKey b64 = parse_secret_key("prod-2024:" + base64_encode(std::string(32, 'k')));
  CHECK(b64.id == "prod-2024");
  CHECK(b64.bytes[0] == 'k');
  CHECK_THROWS_AS(parse_secret_key("tooshort"), StoreError);
  CHECK_THROWS_AS(parse_secret_key(":" + std::string(kTestKeyHex)), StoreError);

  TestDb db;
  StoreOptions none = db.options();
  none.secret_key.clear();
  auto store = db.open(none);  // opening works without a key; using state does not
  CHECK_THROWS_WITH(store->put_state("c", "k", "v"), Catch::Contains("CRMHOST_SECRET_KEY"));

  const auto key_file = std::filesystem::temp_directory_path() / ("crmhost-key-" + random_hex(4));
  {
    std::ofstream out(key_file);
    out << "# current key first, then old ones\nfile1:" << kTestKeyHex << "\n";
  }
  StoreOptions from_file = db.options();
  from_file.secret_key.clear();
  from_file.secret_key_file = key_file;
  auto with_file = db.open(from_file);
  with_file->put_state("c", "k", "v");
  CHECK(with_file->get_state("c", "k") == "v");
  CHECK(db.sql("SELECT key_id FROM connection_state WHERE key = 'k'") == "file1");
  std::filesystem::remove(key_file);
}

TEST_CASE("leases: acquire, renew, release, and takeover after expiry", "[leases]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);

  auto a = store->acquire_lease("poll:p1", "host-a", 10s);
  REQUIRE(a);
  CHECK(a->fencing_token == 1);
  CHECK(a->expires_at == clock.now() + 10s);
  CHECK_FALSE(store->acquire_lease("poll:p1", "host-b", 10s));
  CHECK(store->acquire_lease("poll:p1", "host-a", 10s)->fencing_token == 1);  // re-acquire = renew
  clock.advance(8s);
  CHECK(store->renew_lease("poll:p1", "host-a", 10s));
  clock.advance(8s);
  CHECK_FALSE(store->acquire_lease("poll:p1", "host-b", 10s));  // renewed, still held
  clock.advance(3s);

  auto b = store->acquire_lease("poll:p1", "host-b", 10s);  // expired: taken over
  REQUIRE(b);
  CHECK(b->owner == "host-b");
  CHECK(b->fencing_token == 2);
  CHECK_FALSE(store->renew_lease("poll:p1", "host-a", 10s));
  CHECK_FALSE(store->release_lease("poll:p1", "host-a"));
  CHECK(store->get_lease("poll:p1")->owner == "host-b");
  CHECK(store->release_lease("poll:p1", "host-b"));
  auto again = store->acquire_lease("poll:p1", "host-a", 10s);
  REQUIRE(again);
  CHECK(again->fencing_token == 3);
  CHECK_FALSE(store->get_lease("other"));
}
