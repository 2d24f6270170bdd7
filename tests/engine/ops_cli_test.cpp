// crmhost backfill, replay and status against a real store and the memory plugins.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include "cli/cli.hpp"
#include "store/store.hpp"

using namespace crmhost;

TEST_CASE("backfill (dry and real) and replay and status work on a configuration's store",
          "[ops]") {
  const auto dir = testing::fresh_test_dir("ops");
  const auto config = (dir / "crmhost.yaml").string();
  const std::string db_uri = "sqlite://" + (dir / "state.db").string();
  {
    std::ofstream out(config);
    out << "store: " << db_uri << "\nplugin_dir: " << CRMHOST_FIXTURE_DIR << "\n"
        << "connections:\n  src:\n    plugin: memory\n    settings:\n"
        << "      webhook_secret: s3cret-s3cret\n      seed:\n";
    for (int i = 0; i < 8; ++i)
      out << "        - { object: contact, id: \"c" << i << "\", data: { email: u" << i
          << "@example.com } }\n";
    out << "  dst:\n    plugin: memory-sdk\n    settings: { webhook_secret: s3cret-s3cret }\n"
        << "pipelines:\n  p:\n    source:\n      poll: { connection: src, object: contact, every: "
           "1h, page_size: 3 }\n"
        << "    sink:\n      push: { connection: dst, object: contact, match_on: email }\n";
  }
  auto run = [&](std::vector<std::string> args, std::string &out_text) {
    args.push_back("--config");
    args.push_back(config);
    std::ostringstream out, err;
    const int rc = cli::run(args, out, err);
    out_text = out.str() + err.str();
    return rc;
  };
  std::string text;

  REQUIRE(run({"backfill", "p", "--dry-run"}, text) == 0);
  CHECK_THAT(text,
             Catch::Contains("8 records read; would create 8, update 0, delete 0; 0 unchanged") &&
                 Catch::Contains("nothing was queued"));
  auto db = store::open_store(db_uri);
  CHECK(db->list_events({std::string("p"), std::nullopt, 0, 100}).empty());

  REQUIRE(run({"backfill", "p", "--since", "2999-01-01T00:00:00Z", "--dry-run"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("would create 0"));

  REQUIRE(run({"backfill", "p"}, text) == 0);
  CHECK_THAT(text, Catch::Contains(": 8 queued, 0 already queued, 3 pages"));
  // Not a terminal here: one plain progress line per page, with the ETA the source allows.
  CHECK_THAT(text, Catch::Contains("backfill p: 3 read, 3 queued, 0 already queued") &&
                       Catch::Contains("backfill p: 8 read, 8 queued") && Catch::Contains("ETA "));
  CHECK(db->list_events({std::string("p"), store::EventStatus::pending, 0, 100}).size() == 8);

  REQUIRE(run({"status"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("PENDING") && Catch::Contains("backfill succeeded"));
  CHECK_THAT(text, !Catch::Contains("CONNECTION UPKEEP"));  // no plugin keeps anything alive
  // A connection's upkeep status, as a host wrote it, shows with its channel and next call.
  db->put_connection_status(
      "dst", R"({"connection":"dst","ok":true,"reason":"periodic","at":"2026-12-08T01:00:00.000Z",)"
             R"("next_at":"2026-12-08T01:45:00.000Z","failures":0,)"
             R"("plugin":{"channel_id":"1000000068001","expires_at":"2026-12-08T02:00:00Z"}})");
  db->put_connection_status(
      "src", R"({"connection":"src","ok":false,"reason":"start","at":"2026-12-08T01:00:00.000Z",)"
             R"("next_at":"2026-12-08T01:00:02.000Z","failures":2,"error":"provider down"})");
  REQUIRE(run({"status"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("CONNECTION UPKEEP") &&
                       Catch::Contains("next 2026-12-08T01:45:00.000Z") &&
                       Catch::Contains(R"("channel_id":"1000000068001")") &&
                       Catch::Contains("FAILED start") && Catch::Contains("error: provider down"));

  store::ClaimRequest claim{"p", "test", 100, std::chrono::milliseconds(60000)};
  for (const auto &e : db->claim(claim)) CHECK(db->dead_letter(e.id, e.claim_token, "boom"));
  REQUIRE(run({"replay", "p", "--status", "dead"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("replayed 8 event(s) of pipeline p"));
  CHECK(db->list_events({std::string("p"), store::EventStatus::pending, 0, 100}).size() == 8);

  CHECK(run({"replay", "nope"}, text) == 2);
  CHECK(run({"backfill", "p", "--since", "whenever"}, text) == 2);
  db.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("status on a store where nothing has run says so, creates nothing, and needs no secrets",
          "[ops]") {
  const auto dir = testing::fresh_test_dir("ops-new");
  const auto config = (dir / "crmhost.yaml").string();
  {
    std::ofstream out(config);
    // A relative store path: the config file's neighbour, whatever the working directory.
    out << "store: sqlite://state.db\n"
        << "admin_token: ${CRMHOST_TEST_UNSET_ADMIN_TOKEN}\n"
        << "connections:\n  src:\n    plugin: memory\n    settings:\n"
        << "      webhook_secret: ${CRMHOST_TEST_UNSET_SECRET}\n"
        << "pipelines:\n  p:\n    source:\n      poll: { connection: src, object: contact }\n"
        << "    sink:\n      push: { connection: src, object: deal }\n";
  }
  const auto status = [&](std::string &text) {
    std::ostringstream out, err;
    const int rc = cli::run({"status", "--config", config}, out, err);
    text = out.str() + err.str();
    return rc;
  };
  std::string text;
  REQUIRE(status(text) == 0);
  CHECK_THAT(text, Catch::Contains("Nothing has run yet: the store " + (dir / "state.db").string() +
                                   " does not exist"));
  CHECK_THAT(text, !Catch::Contains("not set") && !Catch::Contains("no such table"));
  CHECK(!std::filesystem::exists(dir / "state.db"));

  // An empty database file (as an older status left behind): still nothing has run.
  std::ofstream(dir / "state.db").close();
  REQUIRE(status(text) == 0);
  CHECK_THAT(text, Catch::Contains("Nothing has run yet") && Catch::Contains("has no tables"));

  // Once the store exists, status shows the pipeline, still without the secrets.
  std::filesystem::remove(dir / "state.db");
  store::open_store("sqlite://" + (dir / "state.db").string());
  REQUIRE(status(text) == 0);
  CHECK_THAT(text, Catch::Contains("PIPELINE") && Catch::Contains("\np "));
}

TEST_CASE(
    "backfill --dry-run of a two-way pipeline prints the first-contact plan and writes nothing",
    "[ops]") {
  const auto dir = testing::fresh_test_dir("ops-first-contact");
  const auto config = (dir / "crmhost.yaml").string();
  const std::string db_uri = "sqlite://" + (dir / "state.db").string();
  {
    std::ofstream out(config);
    out << "store: " << db_uri << "\nplugin_dir: " << CRMHOST_FIXTURE_DIR << "\n"
        << "connections:\n"
        << "  a:\n    plugin: memory\n    settings:\n      webhook_secret: s3cret-s3cret\n"
        << "      seed:\n"
        << "        - { object: contact, id: a1, data: { email: ann@example.com, name: Ann } }\n"
        << "        - { object: contact, id: a2, data: { email: bob@example.com, name: Bob } }\n"
        << "        - { object: contact, id: a3, data: { email: carl@example.com, name: Carl } }\n"
        << "  b:\n    plugin: memory\n    settings:\n      webhook_secret: s3cret-s3cret\n"
        << "      seed:\n"
        << "        - { object: contact, id: b1, data: { email: \"ANN@example.com \", "
           "full_name: Ann } }\n"
        << "        - { object: contact, id: b2, data: { email: bob@example.com, "
           "full_name: Robert } }\n"
        << "        - { object: contact, id: b3, data: { email: dora@example.com, "
           "full_name: Dora } }\n"
        << "pipelines:\n"
        << "  a-to-b:\n    source: { poll: { connection: a, object: contact, every: 1h } }\n"
        << "    map: { fields: { email: { from: email, transform: [trim, lower] }, "
           "full_name: name } }\n"
        << "    sink: { push: { connection: b, object: contact, match_on: email } }\n"
        << "  b-to-a:\n    source: { poll: { connection: b, object: contact, every: 1h } }\n"
        << "    map: { fields: { email: email, name: full_name } }\n"
        << "    sink: { push: { connection: a, object: contact, match_on: email } }\n";
  }
  auto run = [&](std::vector<std::string> args, std::string &out_text) {
    args.push_back("--config");
    args.push_back(config);
    std::ostringstream out, err;
    const int rc = cli::run(args, out, err);
    out_text = out.str() + err.str();
    return rc;
  };
  std::string text;
  REQUIRE(run({"backfill", "a-to-b", "--dry-run"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("first contact: read 3 in a and 3 in b; would link 2 on email "
                                   "(1 with differing values: conflicts, decided by source_wins), "
                                   "create 1 in b and 1 in a; conflicts such as "
                                   "[bob@example.com: full_name]\n"));
  CHECK_THAT(text, Catch::Contains("dry run: 3 records read") &&
                       Catch::Contains("nothing was queued or pushed"));
  auto db = store::open_store(db_uri);
  CHECK(db->list_events({std::nullopt, std::nullopt, 0, 100}).empty());
  CHECK(db->list_conflicts(std::nullopt).empty());
  for (const char *id : {"a1", "a2", "a3"}) CHECK_FALSE(db->find_link_by_source("a-to-b", "a", id));

  // The other direction plans from its side; a record linked already is counted as such.
  store::EntityLink link;
  link.pipeline = "b-to-a";
  link.source_connection = "b";
  link.source_id = "b1";
  link.target_connection = "a";
  link.target_id = "a1";
  link.last_payload_hash = "x";
  db->upsert_link(link);
  REQUIRE(run({"backfill", "b-to-a", "--dry-run"}, text) == 0);
  CHECK_THAT(text, Catch::Contains("first contact: read 3 in b and 3 in a; would link 1 on email "
                                   "(1 with differing values: conflicts, decided by source_wins), "
                                   "create 1 in a and 1 in b; 1 already linked; conflicts such as "
                                   "[bob@example.com: name]\n"));
  CHECK(db->list_events({std::nullopt, std::nullopt, 0, 100}).empty());
  db.reset();
  std::filesystem::remove_all(dir);
}
