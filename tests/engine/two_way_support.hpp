#pragma once
// Two memory connectors, "a" and "b", and the helpers the two-way engine tests share: pipelines
// between them, their records, edits made directly on one side, and a poll that waits until
// everything it queued is settled.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include "pipeline/engine.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using crmhost::testing::eventually;

namespace {

struct TwoWayHarness {
  std::filesystem::path dir;
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<plugins::PluginRegistry> registry =
      std::make_shared<plugins::PluginRegistry>(services);
  std::shared_ptr<store::Store> db;

  TwoWayHarness() {
    dir = testing::fresh_test_dir("two-way");
    registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
    REQUIRE(registry->refusals().empty());
    db = store::open_store("sqlite://" + (dir / "state.db").string());
  }
  ~TwoWayHarness() {
    db.reset();
    std::filesystem::remove_all(dir);
  }
};

inline config::PipelineConfig make_pipeline(const std::string &name, const std::string &from,
                                            const std::string &to, const std::string &object,
                                            const std::string &fields, const std::string &conflict,
                                            const std::string &match_on) {
  config::PipelineConfig p;
  p.name = name;
  p.poll = config::PollSource{from, object, 1h, 1ms, 50, {}};
  p.map.fields_json = fields;
  p.sink = config::PushSink{to,
                            object,
                            config::PushMode::upsert,
                            match_on,
                            *config::parse_conflict_policy(conflict),
                            {},
                            {"trim", "lower"},
                            config::DeletePolicy::keep_edited,
                            {}};
  p.retry = config::RetryPolicy{3, 5ms, 20ms};
  p.batch_size = 50;
  return p;
}

inline config::Config two_memories(const std::string &seed_a,
                                   std::vector<config::PipelineConfig> ps,
                                   const std::string &seed_b = "[]") {
  config::Config c;
  c.plugin_workers = 2;
  c.shutdown_grace = 5s;
  c.claim_lease = 30s;
  c.connections = {
      {"a", {"a", "memory", R"({"webhook_secret":"secret-a-123","seed":)" + seed_a + "}", {}, {}}},
      {"b", {"b", "memory", R"({"webhook_secret":"secret-b-123","seed":)" + seed_b + "}", {}, {}}}};
  for (auto &p : ps) c.pipelines[p.name] = p;
  return c;
}

// Field names differ on the two sides; each direction's mapping is the other's inverse.
const std::string kAtoB =
    R"({"email":{"from":"email","transform":["trim","lower"],"required":true},"full_name":"name"})";
const std::string kBtoA = R"({"email":"email","name":"full_name"})";

inline std::vector<plugins::Record> records(pipeline::Engine &engine, const std::string &connection,
                                            const std::string &object = "contact") {
  auto page = engine.connector(connection)->poll({object, std::nullopt, 1000});
  REQUIRE(page);
  return page->records;
}

inline std::string field(const plugins::Record &r, const char *key) {
  auto doc = json::parse(r.data_json, "record");
  if (!doc.HasMember(key)) return "<absent>";
  return doc[key].IsString() ? doc[key].GetString() : json::to_string(doc[key]);
}

inline int64_t settled(store::Store &db, const std::string &pipeline) {
  int64_t n = 0;
  for (const auto &c : db.count_by_status(pipeline))
    if (c.status == store::EventStatus::done || c.status == store::EventStatus::dead) n += c.count;
  return n;
}

inline int64_t total(store::Store &db, const std::string &pipeline) {
  int64_t n = 0;
  for (const auto &c : db.count_by_status(pipeline)) n += c.count;
  return n;
}

// Polls `pipeline` once and waits until every event it queued is settled.
inline void poll_and_settle(pipeline::Engine &engine, store::Store &db,
                            const std::string &pipeline) {
  const auto runs = db.list_sync_runs(pipeline, 1000).size();
  engine.poll_now(pipeline);
  REQUIRE(eventually([&] {
    auto list = db.list_sync_runs(pipeline, 1000);
    return list.size() > runs && list.front().status != store::SyncRunStatus::running &&
           settled(db, pipeline) == total(db, pipeline);
  }));
}

inline void update(pipeline::Engine &engine, const std::string &connection,
                   const std::string &object, const std::string &id, const std::string &data) {
  plugins::PushRequest request;
  request.object = object;
  request.mode = "update";
  request.records.push_back({"t", id, data});
  auto result = engine.connector(connection)->push(request);
  REQUIRE(result);
  REQUIRE(result->size() == 1);
  REQUIRE((*result)[0].ok);
}

}  // namespace

namespace {

// Waits for the poll each of `pipelines` makes when the engine starts, and for what it queued.
// After this nothing moves unless a test polls (make_pipeline's pipelines poll every hour), so
// the order in which changes travel is the order of the test's poll_and_settle calls.
inline void await_start_polls(store::Store &db, const std::vector<std::string> &pipelines) {
  for (const auto &pipeline : pipelines)
    REQUIRE(eventually([&] {
      auto list = db.list_sync_runs(pipeline, 1000);
      return !list.empty() && list.front().status != store::SyncRunStatus::running &&
             settled(db, pipeline) == total(db, pipeline);
    }));
}

// Creates a record directly on one side; returns its id.
inline std::string create(pipeline::Engine &engine, const std::string &connection,
                          const std::string &object, const std::string &data) {
  plugins::PushRequest request;
  request.object = object;
  request.mode = "create";
  request.records.push_back({"t", std::nullopt, data});
  auto result = engine.connector(connection)->push(request);
  REQUIRE(result);
  REQUIRE(result->size() == 1);
  REQUIRE((*result)[0].ok);
  return (*result)[0].id;
}

// Returns once the wall clock has moved past the millisecond it showed at the call: whatever
// happens next carries a later modification time than whatever happened before (the host and
// the plugins stamp changes in whole milliseconds of this clock).
inline void next_millisecond() {
  const auto now = [] {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
  };
  const auto start = now();
  REQUIRE(eventually([&] { return now() > start; }, 5s, 1ms));
}

}  // namespace
