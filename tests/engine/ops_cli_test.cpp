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
