// The engine end to end, with the memory connectors as source and sink and a real SQLite store.
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include "pipeline/backoff.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"
#include "util/metrics.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using crmhost::testing::eventually;

namespace {

constexpr const char *kSecret = "s3cret-s3cret";

// The value of the sample `series` (name and labels, as rendered) in Prometheus text `text`; 0
// when it is absent (a counter not yet incremented).
double sample(const std::string &text, const std::string &series) {
  const std::string line_start = series + " ";
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    if (text.compare(at, line_start.size(), line_start) == 0)
      return std::stod(text.substr(at + line_start.size(), end - at - line_start.size()));
    at = end + 1;
  }
  return 0;
}

struct Harness {
  std::filesystem::path dir;
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<plugins::PluginRegistry> registry =
      std::make_shared<plugins::PluginRegistry>(services);
  std::shared_ptr<store::Store> db;

  Harness() {
    dir = testing::fresh_test_dir("engine");
    registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
    registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory-sdk.so");
    REQUIRE(registry->refusals().empty());
    db = store::open_store("sqlite://" + (dir / "state.db").string());
  }
  ~Harness() {
    db.reset();
    std::filesystem::remove_all(dir);
  }
};

std::string seed_contacts(int n) {
  std::string seed = "[";
  for (int i = 0; i < n; ++i)
    seed += std::string(i ? "," : "") + R"({"object":"contact","id":"c)" + std::to_string(i) +
            R"(","data":{"email":"user)" + std::to_string(i) + R"(@example.com"}})";
  return seed + "]";
}

config::Config make_config(int seeded, const std::string &sink_extra = "", bool poll = true) {
  config::Config c;
  c.plugin_workers = 2;
  c.shutdown_grace = 5s;
  c.claim_lease = 30s;
  config::ConnectionConfig src{"src",
                               "memory",
                               std::string(R"({"webhook_secret":")") + kSecret + R"(","seed":)" +
                                   seed_contacts(seeded) + "}",
                               std::nullopt,
                               {}};
  config::ConnectionConfig dst{
      "dst",
      "memory-sdk",
      std::string(R"({"webhook_secret":")") + kSecret + "\"" + sink_extra + "}",
      std::nullopt,
      {}};
  c.connections = {{"src", src}, {"dst", dst}};
  config::PipelineConfig p;
  p.name = "contacts";
  if (poll) {
    p.poll = config::PollSource{"src", "contact", 1h, 1ms, 7, {}};
  } else {
    p.webhook = config::WebhookSource{"src", "/hooks/memory", {}, {}};
  }
  p.sink = config::PushSink{"dst",
                            "contact",
                            config::PushMode::upsert,
                            std::string("email"),
                            config::ConflictPolicy::source_wins,
                            {},
                            {"trim", "lower"},
                            config::DeletePolicy::keep_edited,
                            {}};
  p.retry = config::RetryPolicy{5, 5ms, 20ms};
  p.batch_size = 10;
  c.pipelines = {{p.name, p}};
  return c;
}

int64_t count_status(store::Store &db, store::EventStatus status) {
  int64_t n = 0;
  for (const auto &c : db.count_by_status("contacts"))
    if (c.status == status) n += c.count;
  return n;
}

size_t sink_records(pipeline::Engine &engine) {
  auto page = engine.connector("dst")->poll({"contact", std::nullopt, 100000});
  return page ? page->records.size() : 0;
}

plugins::WebhookRequest delivery(const std::string &body, const std::string &secret = kSecret) {
  return {"POST", "http://localhost/hooks/memory", {{"X-Memory-Secret", secret}}, body, 0};
}

}  // namespace

TEST_CASE("a polling pipeline moves every record from source to sink once", "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(25), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 25; }));
  CHECK(sink_records(engine) == 25);
  auto link = h.db->find_link_by_source("contacts", "src", "c3");
  REQUIRE(link);
  CHECK(link->target_connection == "dst");
  auto fetched = engine.connector("dst")->fetch("contact", {link->target_id});
  REQUIRE(fetched);
  REQUIRE(fetched->records.size() == 1);
  CHECK_THAT(fetched->records[0].data_json, Catch::Contains("user3@example.com"));

  // A second poll finds nothing new: the cursor held, and nothing is pushed twice.
  engine.poll_now("contacts");
  std::this_thread::sleep_for(300ms);
  CHECK(count_status(*h.db, store::EventStatus::done) == 25);
  CHECK(sink_records(engine) == 25);
  auto runs = h.db->list_sync_runs(std::string("contacts"));
  REQUIRE(runs.size() >= 2);
  engine.stop();
}

TEST_CASE("retryable push failures back off and then succeed", "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(5, R"(,"fail_next_pushes":2)"), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 5; }));
  CHECK(count_status(*h.db, store::EventStatus::dead) == 0);
  auto events = h.db->list_events({std::string("contacts"), std::nullopt, 0, 100});
  REQUIRE(events.size() == 5);
  CHECK(events[0].attempts == 3);  // two injected outages, then success
  CHECK(sink_records(engine) == 5);
  engine.stop();
}

TEST_CASE("permanent failures land in the dead letters and replay delivers them", "[engine]") {
  Harness h;
  h.services->state->put("dst", "fault", "permanent");
  pipeline::Engine engine(make_config(4, R"(,"fault_state_key":"fault")"), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::dead) == 4; }));
  auto dead = h.db->list_events({std::string("contacts"), store::EventStatus::dead, 0, 10});
  REQUIRE(dead.size() == 4);
  CHECK_THAT(dead[0].last_error, Catch::Contains("rejected by injected fault"));
  CHECK(dead[0].attempts == 1);  // permanent: no retries
  CHECK(sink_records(engine) == 0);

  h.services->state->put("dst", "fault", "");
  store::ReplayFilter filter;
  filter.pipeline = "contacts";
  filter.statuses = {store::EventStatus::dead};
  CHECK(h.db->replay(filter) == 4);
  engine.wake("contacts");
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 4; }));
  CHECK(sink_records(engine) == 4);
  engine.stop();
}

TEST_CASE("exhausted retries go to the dead letters with the last error", "[engine]") {
  Harness h;
  h.services->state->put("dst", "fault", "unavailable");
  pipeline::Engine engine(make_config(2, R"(,"fault_state_key":"fault")"), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::dead) == 2; }));
  auto dead = h.db->list_events({std::string("contacts"), store::EventStatus::dead, 0, 10});
  CHECK(dead[0].attempts == 5);
  CHECK_THAT(dead[0].last_error,
             Catch::Contains("gave up after 5 attempts") && Catch::Contains("HTTP 503"));
  engine.stop();
}

TEST_CASE("a paused pipeline queues webhooks and pushes nothing until resumed", "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(0, "", false), h.registry, h.db);
  engine.start();
  engine.pause("contacts");
  CHECK(engine.is_paused("contacts"));
  auto ingest = engine.ingest_webhook(
      "/hooks/memory",
      delivery(R"([{"object":"contact","id":"w1","data":{"email":"w1@example.com"}},)"
               R"({"object":"contact","id":"w2","data":{"email":"w2@example.com"}}])"),
      "req-1");
  CHECK(ingest.http_status == 200);
  CHECK(ingest.events == 2);
  std::this_thread::sleep_for(500ms);
  CHECK(count_status(*h.db, store::EventStatus::pending) == 2);
  CHECK(sink_records(engine) == 0);

  engine.resume("contacts");
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 2; }));
  CHECK(sink_records(engine) == 2);
  auto stored = h.db->list_events({std::string("contacts"), std::nullopt, 0, 10});
  CHECK(stored[0].request_id == "req-1");

  // The kill switch holds every pipeline the same way.
  engine.pause_all();
  CHECK(engine.is_paused("contacts"));
  engine.resume_all();
  CHECK_FALSE(engine.is_paused("contacts"));
  engine.stop();
}

TEST_CASE("webhook deliveries are verified and deduplicated and answered by status", "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(0, "", false), h.registry, h.db);
  engine.start();
  const std::string body = R"([{"object":"contact","id":"w1","data":{"email":"w1@example.com"}}])";
  CHECK(engine.ingest_webhook("/hooks/memory", delivery(body), "r1").events == 1);
  auto again = engine.ingest_webhook("/hooks/memory", delivery(body), "r2");
  CHECK(again.http_status == 200);
  CHECK(again.duplicates == 1);  // the provider's retry of the same delivery
  auto forged = engine.ingest_webhook("/hooks/memory", delivery(body, "wrong-secret"), "r3");
  CHECK(forged.http_status == 401);
  CHECK(forged.body.empty());
  CHECK(engine.ingest_webhook("/hooks/memory", delivery("{oops"), "r4").http_status == 400);
  CHECK(engine.ingest_webhook("/hooks/nowhere", delivery(body), "r5").http_status == 404);
  engine.stop();
}

TEST_CASE("pipelines sharing a webhook path each take the events of their object", "[engine]") {
  // HubSpot, for one, sends every subscription of an app to one URL.
  Harness h;
  auto c = make_config(0, "", false);
  auto companies = c.pipelines.at("contacts");
  companies.name = "companies";
  companies.sink.object = "company";
  companies.sink.match_on = std::nullopt;
  c.pipelines.emplace("companies", companies);
  pipeline::Engine engine(c, h.registry, h.db);
  engine.start();
  engine.pause_all();  // keep the events where the test can count them
  // The registry is the process's: the test counts what its deliveries add.
  const auto deliveries = [](const char *outcome) {
    return sample(metrics::global().render(),
                  std::string("crmhost_webhooks_received_total{path=\"/hooks/memory\",outcome=\"") +
                      outcome + "\"}");
  };
  const auto received = [](const char *pipeline) {
    return metrics::global().counter_sum(
        "crmhost_events_received_total",
        {{"pipeline", pipeline}, {"source", "webhook"}, {"outcome", "new"}});
  };
  const double stored_before = deliveries("stored"), contacts_before = received("contacts"),
               companies_before = received("companies");
  auto ingest = engine.ingest_webhook(
      "/hooks/memory",
      delivery(R"([{"object":"contact","id":"p1","data":{"email":"p1@example.com"}},)"
               R"({"object":"company","id":"k1","data":{"name":"Acme"}},)"
               R"({"object":"deal","id":"d1","data":{"name":"Big"}}])"),
      "req-shared");
  CHECK(ingest.http_status == 200);
  CHECK(ingest.events == 2);  // the deal: no pipeline on this path takes deals
  // One delivery, counted once by its path (not by whichever pipeline verified it); its events
  // are counted by the pipeline that took each.
  CHECK(deliveries("stored") == stored_before + 1);
  CHECK(received("contacts") == contacts_before + 1);
  CHECK(received("companies") == companies_before + 1);
  const std::string text = metrics::global().render();
  for (const char *pipeline : {"contacts", "companies"})
    CHECK_THAT(text, !Catch::Contains(std::string("crmhost_webhooks_received_total{pipeline=\"") +
                                      pipeline));
  // A second delivery to the shared path adds one more, whichever object it carries.
  CHECK(engine
            .ingest_webhook("/hooks/memory",
                            delivery(R"([{"object":"company","id":"k2","data":{"name":"B"}}])"),
                            "req-shared-2")
            .http_status == 200);
  CHECK(deliveries("stored") == stored_before + 2);
  CHECK(received("contacts") == contacts_before + 1);
  CHECK(received("companies") == companies_before + 2);
  auto contacts = h.db->list_events({std::string("contacts"), std::nullopt, 0, 10});
  auto company_events = h.db->list_events({std::string("companies"), std::nullopt, 0, 10});
  REQUIRE(contacts.size() == 1);
  REQUIRE(company_events.size() == 2);
  CHECK(contacts[0].object == "contact");
  CHECK(company_events[0].object == "company");
  engine.stop();
}

TEST_CASE("stopping mid-batch loses nothing: the next engine finishes the work", "[engine]") {
  Harness h;
  {
    pipeline::Engine engine(make_config(40, R"(,"push_delay_ms":40)"), h.registry, h.db);
    engine.start();
    REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) >= 1; }));
    engine.stop();  // mid-run: a batch is being pushed, more are queued
  }
  const int64_t done_before = count_status(*h.db, store::EventStatus::done);
  CHECK(done_before < 40);
  CHECK(count_status(*h.db, store::EventStatus::in_flight) == 0);  // claims were handed back
  // Whatever was pushed is linked; the rest is still queued.
  int linked = 0;
  for (int i = 0; i < 40; ++i)
    linked += h.db->find_link_by_source("contacts", "src", "c" + std::to_string(i)) ? 1 : 0;
  CHECK(linked == done_before);

  pipeline::Engine second(make_config(40), h.registry, h.db);
  second.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 40; }));
  for (int i = 0; i < 40; ++i)
    CHECK(h.db->find_link_by_source("contacts", "src", "c" + std::to_string(i)));
  second.stop();
}

TEST_CASE("reload keeps unchanged pipelines and starts new ones", "[engine]") {
  Harness h;
  auto first = make_config(3);
  pipeline::Engine engine(first, h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 3; }));
  auto dst_before = engine.connector("dst");

  auto next = first;
  auto extra = next.pipelines.at("contacts");
  extra.name = "contacts-copy";
  next.pipelines[extra.name] = extra;
  CHECK(engine.reload(next).empty());
  CHECK(engine.pipeline_names() == std::vector<std::string>{"contacts", "contacts-copy"});
  CHECK(engine.connector("dst") == dst_before);  // the unchanged connection was not recreated
  REQUIRE(eventually([&] {
    int64_t n = 0;
    for (const auto &c : h.db->count_by_status("contacts-copy"))
      if (c.status == store::EventStatus::done) n += c.count;
    return n == 3;
  }));
  engine.stop();
}

TEST_CASE("a backfill runs in its own lane and a dry run enqueues nothing", "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(12), h.registry, h.db);
  engine.start();
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 12; }));
  const auto live = h.db->get_cursor("contacts", "contact");
  REQUIRE(live);

  auto dry = engine.backfill("contacts", true);
  CHECK(dry.ok);
  CHECK(dry.counts.fetched == 12);
  CHECK(dry.counts.enqueued == 0);
  CHECK(dry.pages == 2);  // page size 7

  const auto received = [](const char *source, const char *outcome) {
    return metrics::global().counter_sum(
        "crmhost_events_received_total",
        {{"pipeline", "contacts"}, {"source", source}, {"outcome", outcome}});
  };
  const double duplicates_before = received("backfill", "duplicate"),
               new_before = received("backfill", "new"),
               poll_before = received("poll", "new") + received("poll", "duplicate");
  auto real = engine.backfill("contacts", false);
  CHECK(real.ok);
  CHECK(real.counts.fetched == 12);
  // The same records with the same payload are the same events: nothing is queued twice.
  CHECK(real.counts.duplicates == 12);
  CHECK(real.counts.enqueued == 0);
  // /metrics labels what the backfill read as source="backfill" (as /events does), not "poll".
  CHECK(received("backfill", "duplicate") - duplicates_before == 12);
  CHECK(received("backfill", "new") == new_before);
  CHECK(received("poll", "new") + received("poll", "duplicate") == poll_before);
  CHECK(real.run_id > 0);
  CHECK(h.db->get_sync_run(real.run_id)->kind == store::SyncRunKind::backfill);

  // Started asynchronously (as the admin API does): the run id comes back at once.
  std::string problem;
  const auto run = engine.start_backfill("contacts", true, std::nullopt, problem);
  REQUIRE(run);
  REQUIRE(eventually([&] {
    auto r = h.db->get_sync_run(*run);
    return r && r->status == store::SyncRunStatus::succeeded;
  }));
  CHECK(h.db->get_sync_run(*run)->counts.fetched == 12);
  CHECK_FALSE(engine.start_backfill("nope", true, std::nullopt, problem));
  CHECK_THAT(problem, Catch::Contains("no running pipeline nope"));
  CHECK(sink_records(engine) == 12);
  CHECK(h.db->get_cursor("contacts", "contact")->version == live->version);  // live lane untouched
  engine.stop();
}

TEST_CASE("two source records matching one target record are pushed and the clash recorded",
          "[engine]") {
  Harness h;
  pipeline::Engine engine(make_config(0, "", false), h.registry, h.db);
  engine.start();
  auto ingest = engine.ingest_webhook(
      "/hooks/memory",
      delivery(R"([{"object":"contact","id":"a","data":{"email":"same@example.com","n":1}},)"
               R"({"object":"contact","id":"b","data":{"email":"same@example.com","n":2}}])"),
      "req");
  REQUIRE(ingest.events == 2);
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 2; }));
  CHECK(sink_records(engine) == 1);  // matched on email: one target record
  auto conflicts = h.db->list_conflicts(std::string("contacts"));
  REQUIRE(conflicts.size() == 1);
  CHECK_THAT(conflicts[0].detail, Catch::Contains("already linked"));
  engine.stop();
}

TEST_CASE("backoff grows exponentially with full jitter inside the range and honours Retry-After",
          "[engine]") {
  std::mt19937_64 rng(42);
  using pipeline::backoff_delay;
  for (int i = 0; i < 200; ++i) {
    const auto first = backoff_delay(1, 100ms, 10s, 0ms, rng);
    CHECK(first == 100ms);  // the range starts at min and the first ceiling is min
    const auto fourth = backoff_delay(4, 100ms, 10s, 0ms, rng);
    CHECK(fourth >= 100ms);
    CHECK(fourth <= 800ms);
    const auto late = backoff_delay(30, 100ms, 10s, 0ms, rng);
    CHECK(late <= 10s);                                  // capped, no overflow
    CHECK(backoff_delay(2, 100ms, 10s, 5s, rng) >= 5s);  // the provider's Retry-After wins
  }
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) seen.insert(backoff_delay(6, 100ms, 10s, 0ms, rng).count());
  CHECK(seen.size() > 10);  // jittered, not a fixed schedule
}

TEST_CASE("a failing poll run leaves the cursor where it was and records the failure", "[engine]") {
  Harness h;
  h.registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "throwing-sdk.so");
  auto source = h.registry->find("throwing-sdk")->create_connector("src", "{}");
  REQUIRE(source);
  auto config = make_config(0);
  auto &p = config.pipelines.at("contacts");
  store::CursorAdvance seed_cursor{"contacts", "contact", "cursor-7", 0, {}};
  REQUIRE(h.db->advance_cursor(seed_cursor).applied);
  const auto before = h.db->get_cursor("contacts", "contact");

  auto outcome = pipeline::run_poll(p, *h.db, *source.value(), {});
  CHECK_FALSE(outcome.ok);
  CHECK_THAT(outcome.error, Catch::Contains("rate_limited (HTTP 429"));
  const auto after = h.db->get_cursor("contacts", "contact");
  CHECK(after->value == "cursor-7");
  CHECK(after->version == before->version);
  CHECK(h.db->get_sync_run(outcome.run_id)->status == store::SyncRunStatus::failed);
}

// Found by scripts/soak: with the store's disk full, the poll lane's first write (the run's
// record) threw out of its thread-pool task and std::terminate ended the host at every start.
TEST_CASE("a poll whose store refuses writes fails that run and the lane polls again", "[engine]") {
  Harness h;
  const auto sql = [&](const char *statement) {
    sqlite3 *raw = nullptr;
    REQUIRE(sqlite3_open((h.dir / "state.db").c_str(), &raw) == SQLITE_OK);
    sqlite3_busy_timeout(raw, 5000);
    const int rc = sqlite3_exec(raw, statement, nullptr, nullptr, nullptr);
    sqlite3_close(raw);
    REQUIRE(rc == SQLITE_OK);
  };
  // A full disk in miniature: every new run record is refused, as SQLITE_FULL refuses an insert.
  sql("CREATE TRIGGER full_disk BEFORE INSERT ON sync_runs "
      "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END");
  auto config = make_config(5);
  pipeline::Engine engine(config, h.registry, h.db);
  engine.start();  // polls at once, and that run cannot be recorded
  std::this_thread::sleep_for(300ms);
  CHECK(count_status(*h.db, store::EventStatus::pending) +
            count_status(*h.db, store::EventStatus::done) ==
        0);
  sql("DROP TRIGGER full_disk");  // the disk has room again
  engine.poll_now("contacts");
  REQUIRE(eventually([&] { return count_status(*h.db, store::EventStatus::done) == 5; }));
  CHECK(sink_records(engine) == 5);
  engine.stop();
}

TEST_CASE("plugin state through crm.state.v1 is stored encrypted in the store", "[engine]") {
  Harness h;
  setenv("CRMHOST_SECRET_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         1);
  auto db = store::open_store("sqlite://" + (h.dir / "state2.db").string());
  std::shared_ptr<store::Store> shared(std::move(db));
  pipeline::StoreStateBackend state(shared);
  state.put("conn", "oauth.refresh_token", "r-123");
  CHECK(state.get("conn", "oauth.refresh_token") == std::optional<std::string>("r-123"));
  CHECK(shared->get_state("conn", "oauth.refresh_token") == std::optional<std::string>("r-123"));
  state.remove("conn", "oauth.refresh_token");
  CHECK_FALSE(state.get("conn", "oauth.refresh_token"));
  unsetenv("CRMHOST_SECRET_KEY");
}
