// Connection upkeep (crm.maintenance.v1) through the engine: called at start, again when the
// plugin asks, retried with backoff when it fails, and once at shutdown; its status reaches the
// store (for `crmhost status`), the engine's connection view (for the admin API) and reloads
// leave an unchanged connection's upkeep alone.
#include <chrono>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include "pipeline/connection_upkeep.hpp"
#include "pipeline/engine.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using crmhost::testing::eventually;

namespace {

struct UpkeepHarness {
  std::filesystem::path dir = testing::fresh_test_dir("upkeep");
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<plugins::PluginRegistry> registry =
      std::make_shared<plugins::PluginRegistry>(services);
  std::shared_ptr<store::Store> db;

  UpkeepHarness() {
    registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
    registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory-upkeep.so");
    REQUIRE(registry->refusals().empty());
    db = store::open_store("sqlite://" + (dir / "state.db").string());
  }
  ~UpkeepHarness() {
    db.reset();
    std::filesystem::remove_all(dir);
  }
  std::string reasons() const { return services->state->get("dst", "upkeep.reasons").value_or(""); }
  rapidjson::Document stored_status() const {
    rapidjson::Document doc;
    for (const auto &s : db->list_connection_status())
      if (s.connection == "dst") doc.Parse(s.json.c_str());
    return doc;
  }
};

config::Config upkeep_config(const std::string &upkeep_settings) {
  config::Config c;
  c.plugin_workers = 2;
  c.shutdown_grace = 5s;
  c.claim_lease = 30s;
  c.connections = {
      {"src", {"src", "memory", R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}}},
      {"dst",
       {"dst",
        "memory-upkeep",
        R"({"webhook_secret":"s3cret-s3cret")" + upkeep_settings + "}",
        std::nullopt,
        {}}}};
  config::PipelineConfig p;
  p.name = "contacts";
  p.webhook = config::WebhookSource{"src", "/hooks/memory", {}, {}};
  p.sink = config::PushSink{"dst",
                            "contact",
                            config::PushMode::upsert,
                            std::string("email"),
                            config::ConflictPolicy::source_wins,
                            {},
                            {"trim", "lower"},
                            config::DeletePolicy::keep_edited,
                            {}};
  c.pipelines = {{p.name, p}};
  return c;
}

bool ok_of(const rapidjson::Value &status) {
  const auto *ok = json::member(status, "ok");
  return ok && ok->IsBool() && ok->GetBool();
}

}  // namespace

TEST_CASE("upkeep runs at start, again when the plugin asks, and once at shutdown", "[upkeep]") {
  UpkeepHarness h;
  pipeline::Engine engine(upkeep_config(R"(,"upkeep_every_ms":1000)"), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return h.reasons() == "start,periodic,periodic"; }, 10s));

  // The admin API's view: the sink has upkeep, the plain memory source none.
  bool saw_dst = false;
  for (const auto &c : engine.connections()) {
    if (c.name == "src") CHECK_FALSE(c.upkeep_json);
    if (c.name != "dst") continue;
    saw_dst = true;
    REQUIRE(c.upkeep_json);
    rapidjson::Document view;
    view.Parse(c.upkeep_json->c_str());
    CHECK(ok_of(view));
    CHECK(json::get_string(view, "reason") == std::optional<std::string>("periodic"));
    CHECK(json::get_string(view, "next_at").has_value());
    CHECK(json::get_string(view["plugin"], "channel") == std::optional<std::string>("ch-1"));
  }
  CHECK(saw_dst);
  // The reasons are written as each call begins; its status once it has ended.
  REQUIRE(eventually([&] {
    const auto stored = h.stored_status();
    return stored.IsObject() && ok_of(stored) && stored["plugin"]["calls"].GetInt() >= 3;
  }));
  rapidjson::Document stored;

  engine.stop();
  // Shutdown is the last call; nothing is scheduled after it.
  CHECK(h.reasons().rfind(",shutdown") == h.reasons().size() - std::string(",shutdown").size());
  stored = h.stored_status();
  CHECK(json::get_string(stored, "reason") == std::optional<std::string>("shutdown"));
  CHECK(json::get_string(stored["plugin"], "channel") == std::optional<std::string>("stopped"));
  CHECK(stored["next_at"].IsNull());
}

TEST_CASE("a failing upkeep is retried with backoff and shows its error meanwhile", "[upkeep]") {
  UpkeepHarness h;
  pipeline::Engine engine(upkeep_config(R"(,"upkeep_fail_first":1)"), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return h.reasons() == "start"; }, 5s));
  REQUIRE(eventually([&] { return h.stored_status().IsObject(); }, 5s));
  auto stored = h.stored_status();
  CHECK_FALSE(ok_of(stored));
  CHECK(stored["failures"].GetInt() == 1);
  CHECK_THAT(json::get_string(stored, "error").value_or(""),
             Catch::Contains("channel API is down"));
  // The retry comes after the plugin's retry_after (3 s, longer than the host's first 1 s
  // backoff), succeeds, and asks for nothing more.
  REQUIRE(eventually([&] { return ok_of(h.stored_status()); }, 10s));
  CHECK(h.reasons() == "start,periodic");
  CHECK(h.stored_status()["failures"].GetInt() == 0);
  std::this_thread::sleep_for(1500ms);
  CHECK(h.reasons() == "start,periodic");
  engine.stop();
}

TEST_CASE("a reload keeps an unchanged connection's upkeep and shuts down a removed one",
          "[upkeep]") {
  UpkeepHarness h;
  pipeline::Engine engine(upkeep_config(""), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return h.reasons() == "start"; }, 5s));
  CHECK(engine.reload(upkeep_config("")).empty());
  std::this_thread::sleep_for(300ms);
  CHECK(h.reasons() == "start");  // the same connector carries on: no second start

  auto without = upkeep_config("");
  without.pipelines.clear();
  without.connections.erase("dst");
  CHECK(engine.reload(without).empty());
  CHECK(h.reasons() == "start,shutdown");
  engine.stop();
  CHECK(h.reasons() == "start,shutdown");  // a removed connection is not shut down twice
}

TEST_CASE("upkeep retry delays double from a second to five minutes, or follow retry_after",
          "[upkeep]") {
  using pipeline::ConnectionUpkeep;
  CHECK(ConnectionUpkeep::retry_delay(1, 0) == 1s);
  CHECK(ConnectionUpkeep::retry_delay(2, 0) == 2s);
  CHECK(ConnectionUpkeep::retry_delay(4, 0) == 8s);
  CHECK(ConnectionUpkeep::retry_delay(30, 0) == 5min);
  CHECK(ConnectionUpkeep::retry_delay(1, 60'000) == 60s);
}

TEST_CASE(
    "an engine holding the plugin registry's last reference releases it on its control "
    "thread",
    "[upkeep][control]") {
  // Debug builds assert that deinit ([control]) runs on the control thread; destroying the engine
  // here, on the test's thread, used to run it here.
  UpkeepHarness h;  // its registry becomes the engine's alone
  std::weak_ptr<plugins::PluginRegistry> watch = h.registry;
  auto engine = std::make_unique<pipeline::Engine>(upkeep_config(""), std::move(h.registry), h.db);
  engine->start();
  REQUIRE(eventually([&] { return !h.reasons().empty(); }, 5s));
  engine.reset();
  CHECK(watch.expired());
}
