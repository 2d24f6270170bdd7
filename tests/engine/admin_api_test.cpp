// The admin routes, driven through http_api::route against a running engine and a real store.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include <yaml-cpp/yaml.h>

#include "http_api/router.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"

using namespace crmhost;

namespace {

net::HttpRequest call(const std::string &method, const std::string &target,
                      const std::string &token = "an-admin-token-of-32-characters!",
                      const std::string &body = "") {
  net::HttpRequest r;
  r.method = method;
  r.target = target;
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
  r.headers.emplace_back("X-Memory-Secret", "s3cret-s3cret");
  r.body = body;
  r.request_id = "req-admin";
  return r;
}

// A started engine with one webhook pipeline, "contacts", on `path`: connection src (plugin
// `source`) into dst (plugin `sink`), and the router's context over it.
struct WebhookHost {
  std::filesystem::path dir;
  std::shared_ptr<plugins::PluginRegistry> registry = std::make_shared<plugins::PluginRegistry>();
  std::shared_ptr<store::Store> db;
  std::unique_ptr<pipeline::Engine> engine;
  std::unique_ptr<http_api::RouterContext> ctx;

  WebhookHost(const std::string &name, const std::string &source, const std::string &sink,
              const std::string &path, const store::StoreOptions &options = {}) {
    dir = testing::fresh_test_dir(name);
    for (const auto &plugin : {source, sink})
      registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / (plugin + ".so"));
    db = store::open_store("sqlite://" + (dir / "state.db").string(), options);
    const std::string settings = R"({"webhook_secret":"s3cret-s3cret"})";
    config::Config c;
    c.connections = {{"src", {"src", source, settings, std::nullopt, {}}},
                     {"dst", {"dst", sink, settings, std::nullopt, {}}}};
    config::PipelineConfig p;
    p.name = "contacts";
    p.webhook = config::WebhookSource{"src", path, {}, {}};
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
    engine = std::make_unique<pipeline::Engine>(c, registry, db);
    engine->start();
    ctx =
        std::make_unique<http_api::RouterContext>(*engine, *db, "an-admin-token-of-32-characters!");
  }
  ~WebhookHost() {
    engine->stop();
    ctx.reset();
    engine.reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_CASE("the admin API needs the token and reports and steers pipelines and events", "[admin]") {
  WebhookHost host("admin", "memory", "memory-sdk", "/hooks/memory");
  auto &engine = *host.engine;
  auto &db = host.db;
  auto &ctx = *host.ctx;
  const auto &dir = host.dir;
  engine.pause("contacts");  // keep events pending so the test can look at them

  CHECK(http_api::route(call("GET", "/healthz", ""), ctx).status == 200);
  CHECK(http_api::route(call("GET", "/readyz", ""), ctx).status == 200);
  CHECK(http_api::route(call("GET", "/pipelines", ""), ctx).status == 401);
  CHECK(http_api::route(call("GET", "/pipelines", "wrong"), ctx).status == 401);

  auto hook = http_api::route(
      call(
          "POST", "/hooks/memory", "",
          R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com","api_key":"k-1"}}])"),
      ctx);
  CHECK(hook.status == 200);
  auto again = http_api::route(
      call(
          "POST", "/hooks/memory", "",
          R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com","api_key":"k-1"}}])"),
      ctx);
  CHECK(again.status == 200);  // the same delivery again: absorbed

  auto list = http_api::route(call("GET", "/pipelines"), ctx);
  REQUIRE(list.status == 200);
  auto pipelines = json::parse(list.body, "pipelines");
  REQUIRE(pipelines.IsArray());
  CHECK(std::string(pipelines[0]["name"].GetString()) == "contacts");
  CHECK(pipelines[0]["paused"].GetBool());
  CHECK(pipelines[0]["queue"]["pending"].GetInt64() == 1);
  CHECK(pipelines[0]["counts"]["received"].GetInt64() == 2);
  CHECK(pipelines[0]["counts"]["deduplicated"].GetInt64() == 1);
  CHECK(pipelines[0]["counts"]["pushed"].GetInt64() == 0);
  CHECK(pipelines[0]["latency_seconds"]["p50"].IsNull());
  CHECK_FALSE(pipelines[0].HasMember("polls"));  // a webhook pipeline does not poll

  auto health = http_api::route(call("GET", "/health/src"), ctx);
  CHECK(health.status == 200);
  CHECK_THAT(health.body, Catch::Contains(R"("ok":true)"));
  CHECK(http_api::route(call("GET", "/health/src", ""), ctx).status == 401);
  CHECK(http_api::route(call("GET", "/health/nope"), ctx).status == 404);

  CHECK(http_api::route(call("POST", "/pipelines/nope/pause"), ctx).status == 404);
  CHECK(http_api::route(call("POST", "/pause-all"), ctx).status == 200);
  CHECK(http_api::route(call("POST", "/resume-all"), ctx).status == 200);
  CHECK(engine.is_paused("contacts"));  // its own pause still holds

  auto events = json::parse(
      http_api::route(call("GET", "/events?pipeline=contacts&status=pending&limit=10"), ctx).body,
      "events");
  REQUIRE(events.Size() == 1);
  const auto id = events[0]["id"].GetInt64();
  CHECK(std::string(events[0]["request_id"].GetString()) == "req-admin");
  auto one = http_api::route(call("GET", "/events/" + std::to_string(id)), ctx);
  REQUIRE(one.status == 200);
  CHECK_THAT(one.body, Catch::Contains("[email]") && !Catch::Contains("ann@example.com") &&
                           !Catch::Contains("k-1"));
  CHECK(http_api::route(call("GET", "/events/999999"), ctx).status == 404);
  CHECK(http_api::route(call("GET", "/events?status=bogus"), ctx).status == 400);

  for (const auto &e : db->claim({"contacts", "test", 10, std::chrono::milliseconds(60000)}))
    CHECK(db->dead_letter(e.id, e.claim_token, "boom"));
  auto replay_one = http_api::route(call("POST", "/events/" + std::to_string(id) + "/replay"), ctx);
  CHECK(replay_one.status == 200);
  CHECK(db->get_event(id)->status == store::EventStatus::pending);
  auto replay_all = http_api::route(call("POST", "/pipelines/contacts/replay?status=dead"), ctx);
  CHECK(replay_all.status == 200);
  CHECK_THAT(replay_all.body, Catch::Contains("\"replayed\":0"));

  const auto run = db->start_sync_run("contacts", store::SyncRunKind::poll);
  auto got_run = http_api::route(call("GET", "/runs/" + std::to_string(run)), ctx);
  CHECK(got_run.status == 200);
  CHECK_THAT(got_run.body, Catch::Contains("\"kind\":\"poll\""));
  CHECK(http_api::route(call("GET", "/runs/424242"), ctx).status == 404);

  auto scraped = http_api::route(call("GET", "/metrics", ""), ctx);  // no token needed
  REQUIRE(scraped.status == 200);
  CHECK_THAT(
      scraped.body,
      Catch::Contains(
          R"(crmhost_webhooks_received_total{path="/hooks/memory",outcome="stored"} 1)") &&
          Catch::Contains(R"(crmhost_queue_depth{pipeline="contacts",status="pending"} 1)") &&
          Catch::Contains(R"(crmhost_pipeline_paused{pipeline="contacts"} 1)") &&
          Catch::Contains("crmhost_build_info{"));
  {
    // promtool (Debian's prometheus package, installed by scripts/bootstrap) must accept it.
    const auto file = dir / "metrics.txt";
    std::ofstream(file) << scraped.body;
    const std::string command = "promtool check metrics < " + file.string() + " > " +
                                (dir / "promtool.out").string() + " 2>&1";
    const int rc = std::system(command.c_str());
    std::ifstream report(dir / "promtool.out");
    INFO(std::string(std::istreambuf_iterator<char>(report), {}));
    CHECK(rc == 0);
  }

  CHECK(http_api::route(call("POST", "/pipelines/contacts/backfill"), ctx).status ==
        409);  // no poll

  // Once pushed, the pipeline reports the push and its latency from receipt.
  engine.resume("contacts");
  rapidjson::Document after;
  for (int i = 0; i < 100; ++i) {
    after = json::parse(http_api::route(call("GET", "/pipelines/contacts"), ctx).body, "pipeline");
    if (after["counts"]["pushed"].GetInt64() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(after["counts"]["pushed"].GetInt64() == 1);
  REQUIRE(after["latency_seconds"]["p50"].IsNumber());
  CHECK(after["latency_seconds"]["p50"].GetDouble() > 0);
  CHECK(after["latency_seconds"]["p95"].GetDouble() >= after["latency_seconds"]["p50"].GetDouble());
  engine.pause("contacts");

  // Every route of docs/admin-api.yaml is one the router really has: none of them reaches the
  // router's "no such admin route" fallback.
  const YAML::Node spec = YAML::LoadFile(CRMHOST_SOURCE_DIR "/docs/admin-api.yaml");
  int documented = 0;
  for (const auto &path : spec["paths"]) {
    std::string target = path.first.as<std::string>();
    for (const auto &[param, value] : {std::pair<std::string, std::string>{"{name}", "contacts"},
                                       {"{id}", std::to_string(id)},
                                       {"{connection}", "src"}})
      if (auto at = target.find(param); at != std::string::npos)
        target.replace(at, param.size(), value);
    for (const char *method : {"get", "post"}) {
      if (!path.second[method]) continue;
      ++documented;
      std::string upper = method;
      for (auto &ch : upper) ch = static_cast<char>(std::toupper(ch));
      const auto response = http_api::route(call(upper, target), ctx);
      INFO(upper << " " << target << " -> " << response.status << " " << response.body);
      CHECK(response.body.find("no such admin route") == std::string::npos);
      CHECK(response.status != 405);
    }
  }
  CHECK(documented == 17);

  // With a metrics token configured, /metrics wants it (and only it).
  http_api::RouterContext guarded{engine, *db, "an-admin-token-of-32-characters!",
                                  "a-metrics-token-for-scrapers"};
  CHECK(http_api::route(call("GET", "/metrics", ""), guarded).status == 401);
  CHECK(http_api::route(call("GET", "/metrics"), guarded).status == 401);
  CHECK(http_api::route(call("GET", "/metrics", "a-metrics-token-for-scrapers"), guarded).status ==
        200);

  http_api::RouterContext closed{engine, *db, ""};
  CHECK(http_api::route(call("GET", "/pipelines"), closed).status == 403);
  CHECK(http_api::constant_time_equals("abc", "abc"));
  CHECK_FALSE(http_api::constant_time_equals("abc", "abcd"));
  CHECK_FALSE(http_api::constant_time_equals("abd", "abc"));
}

TEST_CASE("/readyz answers 503 while the store cannot write (a full disk), and webhooks 503",
          "[admin]") {
  store::StoreOptions options;
  options.sqlite_max_pages = 64;  // a database that cannot grow: SQLITE_FULL, as on a full disk
  WebhookHost host("admin-full", "memory", "memory-sdk", "/hooks/memory", options);
  host.engine->pause("contacts");
  auto &ctx = *host.ctx;
  CHECK(http_api::route(call("GET", "/readyz", ""), ctx).status == 200);
  net::HttpResponse last{200, "", {}, ""};
  for (int i = 0; i < 2000 && last.status == 200; ++i)
    last = http_api::route(call("POST", "/hooks/memory", "",
                                R"([{"object":"contact","id":"f)" + std::to_string(i) +
                                    R"(","data":{"email":"f@example.com","note":")" +
                                    std::string(400, 'n') + R"("}}])"),
                           ctx);
  INFO(last.body);
  CHECK(last.status == 503);  // the delivery is refused, not acknowledged and lost
  const auto ready = http_api::route(call("GET", "/readyz", ""), ctx);
  CHECK(ready.status == 503);
  CHECK_THAT(ready.body, Catch::Contains("store cannot write") && Catch::Contains("full"));
}

TEST_CASE("the admin API answers valid UTF-8 JSON whatever bytes the store holds", "[admin]") {
  WebhookHost host("admin-utf8", "memory", "memory", "/hooks/memory");
  host.engine->pause("contacts");
  auto &ctx = *host.ctx;
  auto &db = host.db;

  // A stray byte, a truncated sequence and a surrogate, as a careless provider might send.
  const std::string bad = "Ren\xE9 \xC3( \xED\xA0\x80 ok";
  REQUIRE(http_api::route(call("POST", "/hooks/memory", "",
                               R"([{"object":"contact","id":"u1","data":{"name":")" + bad +
                                   R"(","card":"4111 1111 1111 1111"}}])"),
                          ctx)
              .status == 200);
  const auto strict = [](const std::string &body) {
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str(), body.size());
    return !d.HasParseError();
  };
  const auto listed = http_api::route(call("GET", "/events?pipeline=contacts&limit=10"), ctx);
  REQUIRE(listed.status == 200);
  auto events = json::parse(listed.body, "events");
  REQUIRE(events.Size() == 1);
  const auto id = events[0]["id"].GetInt64();
  for (const auto &e : db->claim({"contacts", "test", 10, std::chrono::milliseconds(60000)}))
    CHECK(db->dead_letter(e.id, e.claim_token, "push failed: " + bad));

  const auto one = http_api::route(call("GET", "/events/" + std::to_string(id)), ctx);
  REQUIRE(one.status == 200);
  INFO(one.body);
  CHECK(strict(one.body));
  CHECK_THAT(one.body, Catch::Contains("Ren\xEF\xBF\xBD \xEF\xBF\xBD(") &&
                           Catch::Contains("[card]") && Catch::Contains(" ok"));
  CHECK_THAT(one.body, Catch::Contains("push failed: Ren\xEF\xBF\xBD"));
  const auto missing = http_api::route(call("GET", "/pipelines/no\xFFpe"), ctx);
  CHECK(missing.status == 404);
  CHECK(strict(missing.body));
}

TEST_CASE("a webhook body nested 500,000 deep is refused before it reaches the plugin", "[admin]") {
  // The SDK plugin's parser recursed once per level and overflowed the stack: the whole host
  // went down with one signed request.
  WebhookHost host("admin-deep", "memory-sdk", "memory-sdk", "/hooks/sdk");
  auto &ctx = *host.ctx;
  const auto deep = http_api::route(
      call("POST", "/hooks/sdk", "", std::string(500'000, '[') + std::string(500'000, ']')), ctx);
  CHECK(deep.status == 400);
  CHECK_THAT(deep.body, Catch::Contains("nests deeper than 64 levels"));
  // 64 levels are still the plugin's to judge (here: not an array of records).
  const auto shallow = http_api::route(
      call("POST", "/hooks/sdk", "", std::string(60, '[') + std::string(60, ']')), ctx);
  CHECK(shallow.status == 400);
  CHECK_THAT(shallow.body, !Catch::Contains("nests deeper"));
  const auto good =
      http_api::route(call("POST", "/hooks/sdk", "",
                           R"([{"object":"contact","id":"d1","data":{"email":"d1@example.com"}}])"),
                      ctx);
  CHECK(good.status == 200);
}

TEST_CASE("GET /connections lists each connection with its plugin and upkeep status", "[admin]") {
  WebhookHost host("admin-connections", "memory", "memory-upkeep", "/hooks/memory");
  CHECK(http_api::route(call("GET", "/connections", "wrong"), *host.ctx).status == 401);
  rapidjson::Document list;
  // The upkeep's first call runs on the pool right after start: wait for its status.
  REQUIRE(testing::eventually([&] {
    const auto answer = http_api::route(call("GET", "/connections"), *host.ctx);
    if (answer.status != 200) return false;
    list.Parse(answer.body.c_str());
    if (!list.IsArray() || list.Size() != 2) return false;
    return list[0]["connection"] == "dst" && list[0]["upkeep"].IsObject();
  }));
  CHECK(list[0]["plugin"] == "memory-upkeep");
  CHECK(list[0]["upkeep"]["ok"].GetBool());
  CHECK(list[0]["upkeep"]["reason"] == "start");
  CHECK(list[0]["upkeep"]["plugin"]["channel"] == "ch-1");
  CHECK(list[1]["connection"] == "src");
  CHECK(list[1]["plugin"] == "memory");
  CHECK(list[1]["upkeep"].IsNull());
}
