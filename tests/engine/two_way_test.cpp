// Two-way sync between two memory connectors: the map stage, echo suppression, newest_wins
// (stale updates skipped and recorded) and fill_empty (never overwrites).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "two_way_support.hpp"

#include "cli/cli.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/event_payload.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"
#include "util/metrics.hpp"
#include "util/time.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using crmhost::testing::eventually;

TEST_CASE("two-way sync converges and its echoes do not loop", "[engine][two-way]") {
  TwoWayHarness h;
  auto config = two_memories(
      R"([{"object":"contact","id":"a1","data":{"email":" Ada@Example.com ","name":"Ada"}}])",
      {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "newest_wins", "email"),
       make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "newest_wins", "email")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();

  // A -> B: mapped on the way.
  poll_and_settle(engine, *h.db, "a-to-b");
  auto b = records(engine, "b");
  REQUIRE(b.size() == 1);
  CHECK(field(b[0], "email") == "ada@example.com");
  CHECK(field(b[0], "full_name") == "Ada");
  const std::string b1 = b[0].id;

  // B reports the record it was just given: an echo, dropped; A is not written.
  const auto a_before = records(engine, "a");
  poll_and_settle(engine, *h.db, "b-to-a");
  CHECK(total(*h.db, "b-to-a") == 1);
  auto echo_link = h.db->find_link_by_source("b-to-a", "b", b1);  // the pair is linked both ways
  REQUIRE(echo_link);
  CHECK(echo_link->target_id == "a1");
  CHECK(records(engine, "a")[0].modified_at == a_before[0].modified_at);

  // An edit on B flows to A; A's report of it is B's own edit come back: dropped as well.
  std::this_thread::sleep_for(5ms);
  update(engine, "b", "contact", b1, R"({"full_name":"Ada Lovelace"})");
  poll_and_settle(engine, *h.db, "b-to-a");
  auto a = records(engine, "a");
  REQUIRE(a.size() == 1);
  CHECK(field(a[0], "name") == "Ada Lovelace");
  REQUIRE(h.db->find_link_by_source("b-to-a", "b", b1));
  const auto b_modified = records(engine, "b")[0].modified_at;
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(records(engine, "b")[0].modified_at == b_modified);  // not written again

  // An edit on A flows to B, also when it restores content A->B wrote before.
  std::this_thread::sleep_for(5ms);
  update(engine, "a", "contact", "a1", R"({"name":"Ada"})");
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(field(records(engine, "b")[0], "full_name") == "Ada");
  poll_and_settle(engine, *h.db, "b-to-a");
  CHECK(field(records(engine, "a")[0], "name") == "Ada");

  // Converged: more polls on either side find nothing to do and write nothing.
  const auto events_ab = total(*h.db, "a-to-b"), events_ba = total(*h.db, "b-to-a");
  const auto a_now = records(engine, "a")[0].modified_at,
             b_now = records(engine, "b")[0].modified_at;
  for (int i = 0; i < 3; ++i) {
    poll_and_settle(engine, *h.db, "a-to-b");
    poll_and_settle(engine, *h.db, "b-to-a");
  }
  CHECK(total(*h.db, "a-to-b") == events_ab);
  CHECK(total(*h.db, "b-to-a") == events_ba);
  CHECK(records(engine, "a")[0].modified_at == a_now);
  CHECK(records(engine, "b")[0].modified_at == b_now);
  CHECK(records(engine, "a").size() == 1);
  CHECK(records(engine, "b").size() == 1);
  CHECK(h.db->list_conflicts(std::nullopt).empty());
  engine.stop();
}

TEST_CASE("newest_wins skips a stale update and records it as a conflict", "[engine][two-way]") {
  TwoWayHarness h;
  auto config = two_memories(
      R"([{"object":"contact","id":"a1","data":{"email":"grace@example.com","name":"Grace"}}])",
      {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "newest_wins", "email"),
       make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "newest_wins", "email")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();
  poll_and_settle(engine, *h.db, "a-to-b");
  const std::string b1 = records(engine, "b")[0].id;
  const auto a1_seen = timeutil::parse_iso8601_ms(*records(engine, "a")[0].modified_at);
  REQUIRE(a1_seen);

  // B changes the record; B->A carries it over and notes B's modification time.
  std::this_thread::sleep_for(20ms);
  update(engine, "b", "contact", b1, R"({"full_name":"Grace Hopper"})");
  const auto b_changed = timeutil::parse_iso8601_ms(*records(engine, "b")[0].modified_at);
  REQUIRE(b_changed);
  REQUIRE(*b_changed > *a1_seen + 10);
  poll_and_settle(engine, *h.db, "b-to-a");
  auto link = h.db->find_link_by_source("a-to-b", "a", "a1");
  REQUIRE(link);
  REQUIRE(link->target_modified_at);
  CHECK(store::to_unix_ms(*link->target_modified_at) == *b_changed);

  // A change made on A before B's (newer than what A->B last wrote) arrives late: stale.
  pipeline::EventPayload late;
  late.object = "contact";
  late.id = "a1";
  late.modified_at = timeutil::format_iso8601_ms(*b_changed - 5);
  late.data_json = R"({"email":"grace@example.com","name":"G. Hopper, old"})";
  h.db->enqueue({pipeline::make_event("a-to-b", store::EventSource::webhook, "a", late, "late")});
  engine.wake("a-to-b");
  REQUIRE(eventually([&] { return settled(*h.db, "a-to-b") == total(*h.db, "a-to-b"); }));
  CHECK(field(records(engine, "b")[0], "full_name") == "Grace Hopper");
  auto conflicts = h.db->list_conflicts(std::string("a-to-b"));
  REQUIRE(conflicts.size() == 1);
  CHECK(conflicts[0].source_id == "a1");
  CHECK(conflicts[0].target_id == b1);
  CHECK_THAT(conflicts[0].detail,
             Catch::Contains("stale update") && Catch::Contains("newest_wins"));

  // A newer change on A still wins.
  late.modified_at = timeutil::format_iso8601_ms(*b_changed + 5);
  late.data_json = R"({"email":"grace@example.com","name":"Rear Admiral Hopper"})";
  h.db->enqueue({pipeline::make_event("a-to-b", store::EventSource::webhook, "a", late, "new")});
  engine.wake("a-to-b");
  REQUIRE(eventually(
      [&] { return field(records(engine, "b")[0], "full_name") == "Rear Admiral Hopper"; }));
  CHECK(h.db->list_conflicts(std::string("a-to-b")).size() == 1);
  engine.stop();
}

TEST_CASE("newest_wins reads the target before writing: a newer edit there is not overwritten",
          "[engine][two-way]") {
  // One direction only: nothing else reads B, so only the read before the write can know of B's
  // edit.
  TwoWayHarness h;
  auto config = two_memories(
      R"([{"object":"contact","id":"a1","data":{"email":"ada@example.com","name":"Ada"}}])",
      {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "newest_wins", "email")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();
  poll_and_settle(engine, *h.db, "a-to-b");
  const std::string b1 = records(engine, "b")[0].id;

  // A is edited, then B, later: B's edit is the newer one and must stay.
  std::this_thread::sleep_for(5ms);
  update(engine, "a", "contact", "a1", R"({"name":"Ada, edited in A"})");
  std::this_thread::sleep_for(5ms);
  update(engine, "b", "contact", b1, R"({"full_name":"Ada, edited in B"})");
  const auto b_edited = timeutil::parse_iso8601_ms(*records(engine, "b")[0].modified_at);
  REQUIRE(b_edited);
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(field(records(engine, "b")[0], "full_name") == "Ada, edited in B");
  auto conflicts = h.db->list_conflicts(std::string("a-to-b"));
  REQUIRE(conflicts.size() == 1);
  CHECK_THAT(conflicts[0].detail, Catch::Contains("stale update") &&
                                      Catch::Contains(timeutil::format_iso8601_ms(*b_edited)));

  // A newer edit in A is written.
  std::this_thread::sleep_for(5ms);
  update(engine, "a", "contact", "a1", R"({"name":"Ada Lovelace"})");
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(field(records(engine, "b")[0], "full_name") == "Ada Lovelace");
  const auto ours = timeutil::parse_iso8601_ms(*records(engine, "b")[0].modified_at);
  REQUIRE(ours);

  // B's modification time is now this pipeline's own write, later than any edit in A made while
  // it was under way: such an edit is not taken for older than B's.
  pipeline::EventPayload during;
  during.object = "contact";
  during.id = "a1";
  during.modified_at = timeutil::format_iso8601_ms(*ours - 1);
  during.data_json = R"({"email":"ada@example.com","name":"Augusta Ada King"})";
  h.db->enqueue(
      {pipeline::make_event("a-to-b", store::EventSource::webhook, "a", during, "during")});
  engine.wake("a-to-b");
  REQUIRE(eventually(
      [&] { return field(records(engine, "b")[0], "full_name") == "Augusta Ada King"; }));
  CHECK(h.db->list_conflicts(std::string("a-to-b")).size() == 1);
  engine.stop();
}

TEST_CASE("several events of one new record in a batch create it once, with the latest data",
          "[engine][two-way]") {
  // As HubSpot delivers a creation with a change per property: no link exists until a push
  // returns, so each event written on its own would create the record again (the memory sink
  // matches within a batch; Odoo's would not): one push for the three.
  TwoWayHarness h;
  auto config = two_memories(
      "[]", {make_pipeline("repeats", "a", "b", "contact", kAtoB, "source_wins", "email")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();
  engine.pause("repeats");  // all three in one batch
  std::vector<store::NewEvent> events;
  for (const char *name : {"Katherine", "Katherine J.", "Katherine Johnson"}) {
    pipeline::EventPayload event;
    event.object = "contact";
    event.id = "a7";
    event.data_json = std::string(R"({"email":"kj@example.com","name":")") + name + "\"}";
    events.push_back(pipeline::make_event("repeats", store::EventSource::webhook, "a", event, "req",
                                          std::string("delivery-1/") + name));
  }
  h.db->enqueue(events);
  const auto pushed = [] {
    return metrics::global().counter_sum("crmhost_events_total",
                                         {{"pipeline", "repeats"}, {"outcome", "pushed"}});
  };
  const double pushed_before = pushed();
  engine.resume("repeats");
  // A batch's outcomes are counted once it has settled in the store, so the counter can lag the
  // store by a moment: wait for both (the batch adds all its pushes at once).
  REQUIRE(
      eventually([&] { return settled(*h.db, "repeats") == 3 && pushed() - pushed_before >= 1; }));
  CHECK(pushed() - pushed_before == 1);
  const auto written = records(engine, "b");
  REQUIRE(written.size() == 1);
  CHECK(field(written[0], "full_name") == "Katherine Johnson");
  engine.stop();
}

TEST_CASE("fill_empty writes only fields empty in the target and never overwrites",
          "[engine][two-way]") {
  TwoWayHarness h;
  const std::string deal_map =
      R"({"name":"name","amount":{"from":"amount","transform":"number"},)"
      R"("stage":{"from":"stage","picklist":{"new":"open","won":"closed"}}})";
  auto config = two_memories(
      R"([{"object":"deal","id":"d1","data":{"name":"Big deal","amount":"10","stage":"new"}}])",
      {make_pipeline("deals", "a", "b", "deal", deal_map, "fill_empty", "name")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();

  // Not linked yet: created with every field.
  poll_and_settle(engine, *h.db, "deals");
  auto b = records(engine, "b", "deal");
  REQUIRE(b.size() == 1);
  CHECK(field(b[0], "amount") == "10");
  CHECK(field(b[0], "stage") == "open");
  const std::string b1 = b[0].id;

  // Someone edits the target: a new amount, and the stage cleared.
  update(engine, "b", "deal", b1, R"({"amount":99,"stage":""})");
  // The source changes everything.
  update(engine, "a", "deal", "d1", R"({"name":"Big deal","amount":"20","stage":"won"})");
  poll_and_settle(engine, *h.db, "deals");
  b = records(engine, "b", "deal");
  CHECK(field(b[0], "amount") == "99");     // not overwritten
  CHECK(field(b[0], "stage") == "closed");  // was empty: filled
  CHECK(field(b[0], "name") == "Big deal");

  // Nothing empty left: the next source change writes nothing.
  const auto b_modified = b[0].modified_at;
  update(engine, "a", "deal", "d1", R"({"amount":"30","stage":"new"})");
  poll_and_settle(engine, *h.db, "deals");
  b = records(engine, "b", "deal");
  CHECK(b[0].modified_at == b_modified);
  CHECK(field(b[0], "amount") == "99");
  CHECK(field(b[0], "stage") == "closed");
  engine.stop();
}

TEST_CASE("a record the mapping rejects is dead-lettered with field and value", "[engine]") {
  TwoWayHarness h;
  auto config = two_memories(
      R"([{"object":"contact","id":"ok","data":{"email":"ok@example.com","name":"Ok"}},)"
      R"({"object":"contact","id":"bad","data":{"name":"No Email"}}])",
      {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "source_wins", "email")});
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(records(engine, "b").size() == 1);
  auto dead = h.db->list_events({std::string("a-to-b"), store::EventStatus::dead, 0, 10});
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].record_id == "bad");
  CHECK(dead[0].attempts == 1);
  CHECK(dead[0].last_error == R"(map: field "email": required, but "email" has no value)");
  engine.stop();
}

TEST_CASE("crmhost status lists open conflicts", "[engine][two-way]") {
  const auto dir = testing::fresh_test_dir("conflicts");
  const auto config = (dir / "crmhost.yaml").string();
  const std::string db_uri = "sqlite://" + (dir / "state.db").string();
  {
    std::ofstream out(config);
    out << "store: " << db_uri << "\nplugin_dir: " << CRMHOST_FIXTURE_DIR << "\n"
        << "connections:\n  a: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
        << "pipelines:\n  a-to-a:\n    source: { poll: { connection: a, object: contact } }\n"
        << "    sink: { push: { connection: a, object: contact, conflict: newest_wins } }\n";
  }
  {
    auto db = store::open_store(db_uri);
    store::Conflict c;
    c.pipeline = "a-to-a";
    c.object = "contact";
    c.source_connection = "a";
    c.source_id = "a1";
    c.target_connection = "a";
    c.target_id = "a2";
    c.detail = R"({"reason":"stale update","policy":"newest_wins"})";
    db->record_conflict(c);
  }
  std::ostringstream out, err;
  REQUIRE(cli::run({"status", "--config", config}, out, err) == 0);
  CHECK_THAT(out.str(), Catch::Contains("OPEN CONFLICTS (1)") &&
                            Catch::Contains("a-to-a contact a/a1 -> a/a2") &&
                            Catch::Contains("stale update"));
  std::filesystem::remove_all(dir);
}
