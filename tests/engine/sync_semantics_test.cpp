// Sync semantics between two memory connectors, in both directions: match keys that differ only
// in case or spaces, first links of records that exist on both sides (merged by the conflict
// policy, the overruled values recorded), deletes that meet edits under each on_delete policy,
// and the first-contact plan.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include "two_way_support.hpp"

#include "pipeline/first_contact.hpp"
#include "pipeline/processor.hpp"
#include "util/time.hpp"

namespace {

std::vector<plugins::Record> live(pipeline::Engine &engine, const std::string &connection) {
  std::vector<plugins::Record> out;
  for (auto &r : records(engine, connection))
    if (r.event != plugins::EventKind::remove) out.push_back(std::move(r));
  return out;
}

void remove(pipeline::Engine &engine, const std::string &connection, const std::string &id) {
  plugins::PushRequest request;
  request.object = "contact";
  request.mode = "delete";
  request.records.push_back({"t", id, "{}"});
  auto result = engine.connector(connection)->push(request);
  REQUIRE(result);
  REQUIRE((*result)[0].ok);
}

int64_t dead(store::Store &db, const std::string &pipeline) {
  for (const auto &c : db.count_by_status(pipeline))
    if (c.status == store::EventStatus::dead) return c.count;
  return 0;
}

std::vector<store::Conflict> conflicts_with(store::Store &db, const std::string &reason) {
  std::vector<store::Conflict> out;
  for (auto &c : db.list_conflicts(std::nullopt))
    if (json::parse(c.detail, "detail")["reason"].GetString() == reason) out.push_back(c);
  return out;
}

// Links a1 to a new b record and the pair both ways, as a running two-way sync would have.
std::string link_pair(pipeline::Engine &engine, store::Store &db) {
  poll_and_settle(engine, db, "a-to-b");
  poll_and_settle(engine, db, "b-to-a");
  auto b = live(engine, "b");
  REQUIRE(b.size() == 1);
  REQUIRE(db.find_link_by_source("a-to-b", "a", "a1"));
  return b[0].id;
}

config::PipelineConfig with_delete_policy(config::PipelineConfig p, config::DeletePolicy policy) {
  p.sink.on_delete = policy;
  return p;
}

const std::string kAtoBCity =
    R"({"email":{"from":"email","transform":["trim","lower"]},"full_name":"name","town":"city"})";
const std::string kBtoACity = R"({"email":"email","name":"full_name","city":"town"})";

}  // namespace

TEST_CASE("a match key that differs in case or spaces links the records, in both directions",
          "[engine][sync]") {
  TwoWayHarness h;
  SECTION("A -> B finds B's 'Ann@Example.com ' for A's 'ann@example.com'") {
    auto config = two_memories(
        R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com","name":"Ann"}}])",
        {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "source_wins", "email"),
         make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "source_wins", "email")},
        R"([{"object":"contact","id":"b1","data":{"email":"Ann@Example.com ","full_name":"Ann"}}])");
    pipeline::Engine engine(config, h.registry, h.db);
    engine.start();
    poll_and_settle(engine, *h.db, "a-to-b");
    CHECK(live(engine, "b").size() == 1);
    auto link = h.db->find_link_by_source("a-to-b", "a", "a1");
    REQUIRE(link);
    CHECK(link->target_id == "b1");
    poll_and_settle(engine, *h.db, "b-to-a");
    CHECK(live(engine, "a").size() == 1);
    CHECK(live(engine, "b").size() == 1);
    CHECK(h.db->list_conflicts(std::nullopt).empty());  // the same person, the same values
    engine.stop();
  }
  SECTION("B -> A finds A's 'Bob@Example.COM' for B's 'bob@example.com'") {
    auto config = two_memories(
        R"([{"object":"contact","id":"a1","data":{"email":"Bob@Example.COM","name":"Bob"}}])",
        {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "source_wins", "email"),
         make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "source_wins", "email")},
        R"([{"object":"contact","id":"b1","data":{"email":"bob@example.com","full_name":"Bob"}}])");
    pipeline::Engine engine(config, h.registry, h.db);
    engine.start();
    poll_and_settle(engine, *h.db, "b-to-a");
    CHECK(live(engine, "a").size() == 1);
    auto link = h.db->find_link_by_source("b-to-a", "b", "b1");
    REQUIRE(link);
    CHECK(link->target_id == "a1");
    poll_and_settle(engine, *h.db, "a-to-b");
    CHECK(live(engine, "a").size() == 1);
    CHECK(live(engine, "b").size() == 1);
    engine.stop();
  }
  SECTION("with match_normalize none the keys compare exactly: a second record is made") {
    auto a_to_b = make_pipeline("a-to-b", "a", "b", "contact", R"({"email":"email"})",
                                "source_wins", "email");
    a_to_b.sink.match_normalize.clear();
    auto config = two_memories(
        R"([{"object":"contact","id":"a1","data":{"email":"cid@example.com"}}])", {a_to_b},
        R"([{"object":"contact","id":"b1","data":{"email":"Cid@Example.com"}}])");
    pipeline::Engine engine(config, h.registry, h.db);
    engine.start();
    poll_and_settle(engine, *h.db, "a-to-b");
    CHECK(live(engine, "b").size() == 2);
    engine.stop();
  }
}

TEST_CASE("a first link merges by the conflict policy and records the overruled values",
          "[engine][sync]") {
  TwoWayHarness h;
  // A's record is a minute older than B's. Both directions poll at start, so either may link the
  // pair first: both must decide alike.
  const std::string seed_a =
      R"([{"object":"contact","id":"a1","modified_ms":)" +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() -
                     60'000) +
      R"(,"data":{"email":"cy@example.com","name":"Cy Young","city":"Ghent"}}])";
  const std::string seed_b =
      R"([{"object":"contact","id":"b1","data":{"email":"CY@example.com","full_name":"Cy Young","town":"Brussels"}}])";
  auto a_to_b = make_pipeline("a-to-b", "a", "b", "contact", kAtoBCity, "newest_wins", "email");
  auto b_to_a = make_pipeline("b-to-a", "b", "a", "contact", kBtoACity, "newest_wins", "email");
  // Every first-link conflict names the town, with both values, and keeps `kept`.
  const auto check_conflicts = [&](const std::string &kept) {
    std::vector<store::Conflict> first;
    REQUIRE(eventually([&] { return !(first = conflicts_with(*h.db, "first link")).empty(); }));
    for (const auto &c : first) {
      const auto detail = json::parse(c.detail, "detail");
      const char *field_name = c.pipeline == "a-to-b" ? "town" : "city";
      REQUIRE(detail["fields"].HasMember(field_name));
      const auto &town = detail["fields"][field_name];
      const std::string source = town["source"].GetString(), target = town["target"].GetString();
      CHECK(((source == "Ghent" && target == "Brussels") ||
             (source == "Brussels" && target == "Ghent")));
      CHECK((std::string(town["kept"].GetString()) == "source" ? source : target) == kept);
      CHECK_FALSE(detail["fields"].HasMember("full_name"));  // equal values are no conflict
      CHECK_FALSE(detail["fields"].HasMember("email"));      // equal once normalised
      CHECK_FALSE(detail["fields"].HasMember("name"));       // (the other direction's names)
    }
  };

  SECTION("newest_wins: B's newer town is kept on both sides") {
    pipeline::Engine engine(two_memories(seed_a, {a_to_b, b_to_a}, seed_b), h.registry, h.db);
    engine.start();
    poll_and_settle(engine, *h.db, "a-to-b");
    poll_and_settle(engine, *h.db, "b-to-a");
    poll_and_settle(engine, *h.db, "a-to-b");
    check_conflicts("Brussels");
    REQUIRE(live(engine, "a").size() == 1);
    REQUIRE(live(engine, "b").size() == 1);
    CHECK(field(live(engine, "a")[0], "city") == "Brussels");
    CHECK(field(live(engine, "b")[0], "town") == "Brussels");
    engine.stop();
  }
  SECTION("conflict_fields: A's town wins whatever the times say") {
    a_to_b.sink.conflict_fields["town"] = config::ConflictPolicy::source_wins;
    b_to_a.sink.conflict_fields["city"] = config::ConflictPolicy::target_wins;
    pipeline::Engine engine(two_memories(seed_a, {a_to_b, b_to_a}, seed_b), h.registry, h.db);
    engine.start();
    poll_and_settle(engine, *h.db, "a-to-b");
    poll_and_settle(engine, *h.db, "b-to-a");
    poll_and_settle(engine, *h.db, "a-to-b");
    REQUIRE(live(engine, "a").size() == 1);
    REQUIRE(live(engine, "b").size() == 1);
    CHECK(field(live(engine, "a")[0], "city") == "Ghent");
    CHECK(field(live(engine, "b")[0], "town") == "Ghent");
    std::vector<store::Conflict> first;
    REQUIRE(eventually([&] { return !(first = conflicts_with(*h.db, "first link")).empty(); }));
    for (const auto &c : first) {
      const auto detail = json::parse(c.detail, "detail");
      const char *field_name = c.pipeline == "a-to-b" ? "town" : "city";
      REQUIRE(detail["fields"].HasMember(field_name));
      const auto &f = detail["fields"][field_name];
      CHECK(std::string(f[std::string(f["kept"].GetString()) == "source" ? "source" : "target"]
                            .GetString()) == "Ghent");
    }
    engine.stop();
  }
}

TEST_CASE("a delete that meets a newer edit keeps the edit and restores the record (keep_edited)",
          "[engine][sync]") {
  TwoWayHarness h;
  pipeline::Engine engine(
      two_memories(
          R"([{"object":"contact","id":"a1","data":{"email":"dee@example.com","name":"Dee"}}])",
          {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "newest_wins", "email"),
           make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "newest_wins", "email")}),
      h.registry, h.db);
  engine.start();
  const std::string b1 = link_pair(engine, *h.db);

  std::this_thread::sleep_for(10ms);
  remove(engine, "a", "a1");  // deleted on A first...
  std::this_thread::sleep_for(10ms);
  update(engine, "b", "contact", b1, R"({"full_name":"Dee Edited"})");  // ...edited on B after
  poll_and_settle(engine, *h.db, "a-to-b");                             // the delete travels first
  REQUIRE(live(engine, "b").size() == 1);
  CHECK(field(live(engine, "b")[0], "full_name") == "Dee Edited");
  auto met = conflicts_with(*h.db, "delete met edit");
  REQUIRE(met.size() == 1);
  const auto detail = json::parse(met[0].detail, "detail");
  CHECK(std::string(detail["resolution"].GetString()) == "kept and restored");
  CHECK(std::string(detail["target"]["full_name"].GetString()) == "Dee Edited");
  CHECK(std::string(detail["source"]["id"].GetString()) == "a1");
  CHECK_FALSE(h.db->find_link_by_source("a-to-b", "a", "a1"));

  // B -> A carries the kept record back: A has it again, as a new record.
  REQUIRE(eventually([&] {
    return settled(*h.db, "b-to-a") == total(*h.db, "b-to-a") && live(engine, "a").size() == 1;
  }));
  poll_and_settle(engine, *h.db, "b-to-a");
  auto a = live(engine, "a");
  REQUIRE(a.size() == 1);
  CHECK(a[0].id != "a1");
  CHECK(field(a[0], "name") == "Dee Edited");
  poll_and_settle(engine, *h.db, "a-to-b");
  CHECK(live(engine, "b").size() == 1);
  CHECK(live(engine, "a").size() == 1);
  CHECK(dead(*h.db, "a-to-b") + dead(*h.db, "b-to-a") == 0);
  engine.stop();
}

TEST_CASE("an edit that reaches a deleted record is a conflict, never a dead letter",
          "[engine][sync]") {
  TwoWayHarness h;
  const std::string seed =
      R"([{"object":"contact","id":"a1","data":{"email":"eve@example.com","name":"Eve"}}])";
  SECTION("keep_edited: the edit wins and the record is created anew on B") {
    pipeline::Engine engine(
        two_memories(seed,
                     {make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "newest_wins", "email"),
                      make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "newest_wins", "email")}),
        h.registry, h.db);
    engine.start();
    const std::string b1 = link_pair(engine, *h.db);
    std::this_thread::sleep_for(10ms);
    update(engine, "a", "contact", "a1", R"({"name":"Eve Edited"})");
    remove(engine, "b", b1);
    poll_and_settle(engine, *h.db, "a-to-b");  // the edit travels first: b1 is gone
    auto met = conflicts_with(*h.db, "edit met delete");
    REQUIRE(met.size() == 1);
    CHECK(std::string(json::parse(met[0].detail, "d")["resolution"].GetString()) == "restored");
    auto b = live(engine, "b");
    REQUIRE(b.size() == 1);
    CHECK(b[0].id != b1);
    CHECK(field(b[0], "full_name") == "Eve Edited");
    auto link = h.db->find_link_by_source("a-to-b", "a", "a1");
    REQUIRE(link);
    CHECK(link->target_id == b[0].id);
    poll_and_settle(engine, *h.db, "b-to-a");  // b1's delete finds no link: A keeps a1
    CHECK(live(engine, "a").size() == 1);
    CHECK(live(engine, "b").size() == 1);
    CHECK(dead(*h.db, "a-to-b") + dead(*h.db, "b-to-a") == 0);
    engine.stop();
  }
  SECTION("propagate: the delete wins on both sides, and the lost edit is recorded") {
    pipeline::Engine engine(
        two_memories(seed, {with_delete_policy(make_pipeline("a-to-b", "a", "b", "contact", kAtoB,
                                                             "newest_wins", "email"),
                                               config::DeletePolicy::propagate),
                            with_delete_policy(make_pipeline("b-to-a", "b", "a", "contact", kBtoA,
                                                             "newest_wins", "email"),
                                               config::DeletePolicy::propagate)}),
        h.registry, h.db);
    engine.start();
    const std::string b1 = link_pair(engine, *h.db);
    std::this_thread::sleep_for(10ms);
    update(engine, "a", "contact", "a1", R"({"name":"Eve Edited"})");
    remove(engine, "b", b1);
    poll_and_settle(engine, *h.db, "a-to-b");
    auto met = conflicts_with(*h.db, "edit met delete");
    REQUIRE(met.size() == 1);
    const auto detail = json::parse(met[0].detail, "d");
    CHECK(std::string(detail["resolution"].GetString()) == "deleted");
    CHECK(std::string(detail["source"]["full_name"].GetString()) == "Eve Edited");
    CHECK(live(engine, "b").empty());
    CHECK(dead(*h.db, "a-to-b") == 0);
    CHECK_FALSE(h.db->find_link_by_source("a-to-b", "a", "a1"));
    poll_and_settle(engine, *h.db, "b-to-a");  // the delete travels back
    CHECK(live(engine, "a").empty());
    CHECK(dead(*h.db, "b-to-a") == 0);
    engine.stop();
  }
}

TEST_CASE("the first-contact plan counts links, conflicts and creations on each side",
          "[engine][sync]") {
  TwoWayHarness h;
  auto a_to_b = make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "source_wins", "email");
  const auto config = two_memories(
      R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com","name":"Ann"}},
          {"object":"contact","id":"a2","data":{"email":"bob@example.com","name":"Bob"}},
          {"object":"contact","id":"a3","data":{"email":"carl@example.com","name":"Carl"}}])",
      {a_to_b},
      R"([{"object":"contact","id":"b1","data":{"email":"ANN@example.com ","full_name":"Ann"}},
          {"object":"contact","id":"b2","data":{"email":"bob@example.com","full_name":"Robert"}},
          {"object":"contact","id":"b3","data":{"email":"dora@example.com","full_name":"Dora"}}])");
  const auto memory = h.registry->find("memory");
  REQUIRE(memory);
  auto a = memory->create_connector("a", config.connections.at("a").settings_json);
  auto b = memory->create_connector("b", config.connections.at("b").settings_json);
  REQUIRE(a);
  REQUIRE(b);
  const auto plan = pipeline::plan_first_contact(a_to_b, pipeline::compiled_map(a_to_b.map), *h.db,
                                                 **a, **b, "b-to-a");
  CHECK(plan.error.empty());
  CHECK(plan.source_records == 3);
  CHECK(plan.target_records == 3);
  CHECK(plan.link_same == 1);         // Ann
  CHECK(plan.link_conflicts == 1);    // Bob / Robert
  CHECK(plan.create_on_target == 1);  // Carl
  CHECK(plan.create_on_source == 1);  // Dora
  REQUIRE(plan.conflict_examples.size() == 1);
  CHECK(plan.conflict_examples[0] == "bob@example.com: full_name");
  const auto line = pipeline::describe(plan, a_to_b, "a");
  CHECK(line.find("would link 2 on email (1 with differing values") != std::string::npos);
  CHECK(line.find("create 1 in b and 1 in a") != std::string::npos);
  // Planning writes nothing.
  CHECK(h.db->list_conflicts(std::nullopt).empty());
  auto page = (*b)->poll({"contact", std::nullopt, 100});
  REQUIRE(page);
  CHECK(page->records.size() == 3);
}

namespace {

// A two-way sync of two memories that start empty, so that the polls every pipeline makes at
// start find nothing to race over; then one contact, made on A, carried to B and back: linked
// both ways (a-to-b wrote B's record; b-to-a linked it when its copy came back as an echo).
// Nothing moves afterwards unless a test polls, so the order in which a delete and an edit
// travel is the order of its poll_and_settle calls.
struct LinkedPair {
  TwoWayHarness h;
  std::unique_ptr<pipeline::Engine> engine;
  std::map<std::string, std::string> id;  // the pair's record id on "a" and on "b"

  explicit LinkedPair(config::DeletePolicy policy) {
    engine = std::make_unique<pipeline::Engine>(
        two_memories("[]", {with_delete_policy(make_pipeline("a-to-b", "a", "b", "contact", kAtoB,
                                                             "newest_wins", "email"),
                                               policy),
                            with_delete_policy(make_pipeline("b-to-a", "b", "a", "contact", kBtoA,
                                                             "newest_wins", "email"),
                                               policy)}),
        h.registry, h.db);
    engine->start();
    await_start_polls(*h.db, {"a-to-b", "b-to-a"});
    id["a"] = create(*engine, "a", "contact", R"({"email":"fay@example.com","name":"Fay"})");
    poll_and_settle(*engine, *h.db, "a-to-b");
    poll_and_settle(*engine, *h.db, "b-to-a");
    const auto b = live(*engine, "b");
    REQUIRE(b.size() == 1);
    id["b"] = b[0].id;
    const auto there = h.db->find_link_by_source("a-to-b", "a", id["a"]);
    REQUIRE(there);
    REQUIRE(there->target_id == id["b"]);
    const auto back = h.db->find_link_by_source("b-to-a", "b", id["b"]);
    REQUIRE(back);
    REQUIRE(back->target_id == id["a"]);
    REQUIRE(h.db->list_conflicts(std::nullopt).empty());
    next_millisecond();  // every edit and delete from here on is newer than every write so far
  }
  ~LinkedPair() { engine->stop(); }

  store::Store &db() { return *h.db; }
  // Polls the pipeline that reads `connection` and waits for what it queued.
  void travel_from(const std::string &connection) {
    poll_and_settle(*engine, *h.db, connection == "a" ? "a-to-b" : "b-to-a");
  }
  // The pair's links, in either pipeline and looked up from either end, are all gone.
  void check_links_closed() {
    CHECK_FALSE(h.db->find_link_by_source("a-to-b", "a", id["a"]));
    CHECK_FALSE(h.db->find_link_by_target("a-to-b", "b", id["b"]));
    CHECK_FALSE(h.db->find_link_by_source("b-to-a", "b", id["b"]));
    CHECK_FALSE(h.db->find_link_by_target("b-to-a", "a", id["a"]));
  }
  int64_t dead_letters() { return dead(*h.db, "a-to-b") + dead(*h.db, "b-to-a"); }
};

std::string other_side(const std::string &connection) {
  return connection == "a" ? "b" : "a";
}
std::string pipeline_from(const std::string &connection) {
  return connection == "a" ? "a-to-b" : "b-to-a";
}
// The name field of each side (the two mappings rename it).
std::string name_field(const std::string &connection) {
  return connection == "a" ? "name" : "full_name";
}
std::string edit_name(const std::string &connection, const std::string &name) {
  return R"({")" + name_field(connection) + R"(":")" + name + R"("})";
}

// The record `id` on `connection` as the connector reports it, deleted or not.
std::optional<plugins::Record> record_of(pipeline::Engine &engine, const std::string &connection,
                                         const std::string &id) {
  for (auto &r : records(engine, connection))
    if (r.id == id) return r;
  return std::nullopt;
}

int64_t ms_of(const rapidjson::Value &v) {
  REQUIRE(v.IsString());
  const auto ms = timeutil::parse_iso8601_ms(v.GetString());
  REQUIRE(ms);
  return *ms;
}

std::string text_of(const rapidjson::Value &v, const char *key) {
  if (!v.IsObject() || !v.HasMember(key) || !v[key].IsString()) return "<absent>";
  return v[key].GetString();
}

}  // namespace

TEST_CASE(
    "a delete on B that meets a newer edit on A keeps the edit and restores it on B "
    "(keep_edited)",
    "[engine][sync]") {
  LinkedPair w(config::DeletePolicy::keep_edited);
  remove(*w.engine, "b", w.id["b"]);  // deleted on B first...
  next_millisecond();
  update(*w.engine, "a", "contact", w.id["a"], edit_name("a", "Fay Edited"));  // ...edited on A
  w.travel_from("b");  // the delete travels first

  const auto met = conflicts_with(w.db(), "delete met edit");
  REQUIRE(met.size() == 1);
  CHECK(met[0].pipeline == "b-to-a");
  CHECK(met[0].source_id == w.id["b"]);
  CHECK(met[0].target_id == w.id["a"]);
  const auto detail = json::parse(met[0].detail, "detail");
  CHECK(text_of(detail, "policy") == "keep_edited");
  CHECK(text_of(detail, "resolution") == "kept and restored");
  CHECK(text_of(detail["source"], "id") == w.id["b"]);
  CHECK(detail["source"]["deleted"].IsTrue());
  CHECK(text_of(detail["target"], "name") == "Fay Edited");
  CHECK(ms_of(detail["deleted_at"]) < ms_of(detail["target_modified_at"]));
  // A keeps its edited record; the pair's old links are closed.
  auto a = live(*w.engine, "a");
  REQUIRE(a.size() == 1);
  CHECK(a[0].id == w.id["a"]);
  CHECK(field(a[0], "name") == "Fay Edited");
  CHECK_FALSE(w.db().find_link_by_source("b-to-a", "b", w.id["b"]));
  CHECK_FALSE(w.db().find_link_by_target("b-to-a", "a", w.id["a"]));
  CHECK_FALSE(w.db().find_link_by_target("a-to-b", "b", w.id["b"]));

  // a-to-b carries the kept record back: B has it again, as a new record, linked to A's.
  REQUIRE(eventually([&] {
    return settled(w.db(), "a-to-b") == total(w.db(), "a-to-b") && live(*w.engine, "b").size() == 1;
  }));
  auto b = live(*w.engine, "b");
  REQUIRE(b.size() == 1);
  CHECK(b[0].id != w.id["b"]);
  CHECK(field(b[0], "full_name") == "Fay Edited");
  auto link = w.db().find_link_by_source("a-to-b", "a", w.id["a"]);
  REQUIRE(link);
  CHECK(link->target_id == b[0].id);
  // Both directions read what is left: nothing more is written, nothing conflicts again.
  w.travel_from("a");
  w.travel_from("b");
  CHECK(live(*w.engine, "a").size() == 1);
  CHECK(live(*w.engine, "b").size() == 1);
  CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
  CHECK(w.dead_letters() == 0);
}

TEST_CASE(
    "an edit on B that reaches a record A deleted is created anew on A, never a dead letter "
    "(keep_edited)",
    "[engine][sync]") {
  LinkedPair w(config::DeletePolicy::keep_edited);
  update(*w.engine, "b", "contact", w.id["b"], edit_name("b", "Fay Edited"));
  remove(*w.engine, "a", w.id["a"]);
  w.travel_from("b");  // the edit travels first: A's record is gone

  const auto met = conflicts_with(w.db(), "edit met delete");
  REQUIRE(met.size() == 1);
  CHECK(met[0].pipeline == "b-to-a");
  CHECK(met[0].target_id == w.id["a"]);
  const auto detail = json::parse(met[0].detail, "detail");
  CHECK(text_of(detail, "policy") == "keep_edited");
  CHECK(text_of(detail, "resolution") == "restored");
  CHECK(text_of(detail["source"], "name") == "Fay Edited");  // the edit's values, mapped for A
  CHECK(text_of(detail["target"], "id") == w.id["a"]);
  CHECK(detail["target"]["deleted"].IsTrue());
  auto a = live(*w.engine, "a");
  REQUIRE(a.size() == 1);
  CHECK(a[0].id != w.id["a"]);
  CHECK(field(a[0], "name") == "Fay Edited");
  auto link = w.db().find_link_by_source("b-to-a", "b", w.id["b"]);
  REQUIRE(link);
  CHECK(link->target_id == a[0].id);
  // Both directions' links to the deleted record are closed, so its delete finds nothing.
  CHECK_FALSE(w.db().find_link_by_source("a-to-b", "a", w.id["a"]));
  CHECK_FALSE(w.db().find_link_by_target("b-to-a", "a", w.id["a"]));

  w.travel_from("a");  // the delete, and the new record's copy (an echo)
  auto b = live(*w.engine, "b");
  REQUIRE(b.size() == 1);
  CHECK(b[0].id == w.id["b"]);
  CHECK(field(b[0], "full_name") == "Fay Edited");
  CHECK(live(*w.engine, "a").size() == 1);
  CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
  CHECK(w.dead_letters() == 0);
}

TEST_CASE("an edit on B that reaches a record A deleted loses to the delete (propagate)",
          "[engine][sync]") {
  LinkedPair w(config::DeletePolicy::propagate);
  update(*w.engine, "b", "contact", w.id["b"], edit_name("b", "Fay Edited"));
  remove(*w.engine, "a", w.id["a"]);
  w.travel_from("b");  // the edit travels first

  const auto met = conflicts_with(w.db(), "edit met delete");
  REQUIRE(met.size() == 1);
  CHECK(met[0].pipeline == "b-to-a");
  const auto detail = json::parse(met[0].detail, "detail");
  CHECK(text_of(detail, "policy") == "propagate");
  CHECK(text_of(detail, "resolution") == "deleted");
  CHECK(text_of(detail["source"], "name") == "Fay Edited");  // the lost edit is kept here
  CHECK(live(*w.engine, "a").empty());
  CHECK(w.dead_letters() == 0);
  CHECK_FALSE(w.db().find_link_by_source("b-to-a", "b", w.id["b"]));
  // The other direction's link stays, for the delete to travel back through it.
  auto link = w.db().find_link_by_source("a-to-b", "a", w.id["a"]);
  REQUIRE(link);
  CHECK(link->target_id == w.id["b"]);

  w.travel_from("a");  // the delete travels back: B's edited record goes too
  CHECK(live(*w.engine, "b").empty());
  CHECK(live(*w.engine, "a").empty());
  w.check_links_closed();
  // One clash, one conflict: the delete's way back finds the edit already read from B (noted
  // on a-to-b's link), so it is not recorded a second time as a delete meeting an edit.
  CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
  CHECK(w.dead_letters() == 0);
}

TEST_CASE(
    "a delete that meets a newer edit deletes it anyway, and the edit is recorded "
    "(propagate)",
    "[engine][sync]") {
  const std::string deleter = GENERATE(as<std::string>{}, "a", "b");
  const std::string editor = other_side(deleter);
  CAPTURE(deleter);
  LinkedPair w(config::DeletePolicy::propagate);
  remove(*w.engine, deleter, w.id[deleter]);
  next_millisecond();  // an edit newer than the delete: keep_edited would keep it
  update(*w.engine, editor, "contact", w.id[editor], edit_name(editor, "Fay Edited"));
  w.travel_from(deleter);  // the delete travels first

  const auto met = conflicts_with(w.db(), "delete met edit");
  REQUIRE(met.size() == 1);
  CHECK(met[0].pipeline == pipeline_from(deleter));
  CHECK(met[0].source_id == w.id[deleter]);
  CHECK(met[0].target_id == w.id[editor]);
  const auto detail = json::parse(met[0].detail, "detail");
  CHECK(text_of(detail, "policy") == "propagate");
  CHECK(text_of(detail, "resolution") == "deleted");
  CHECK(text_of(detail["source"], "id") == w.id[deleter]);
  CHECK(text_of(detail["target"], name_field(editor).c_str()) == "Fay Edited");
  CHECK(ms_of(detail["deleted_at"]) < ms_of(detail["target_modified_at"]));
  CHECK(live(*w.engine, editor).empty());
  w.check_links_closed();

  w.travel_from(editor);  // the edited record's delete comes back: nothing linked, nothing to do
  CHECK(live(*w.engine, "a").empty());
  CHECK(live(*w.engine, "b").empty());
  CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
  CHECK(w.dead_letters() == 0);
}

TEST_CASE("on_delete archive archives the counterpart (the memory plugin's archive is a delete)",
          "[engine][sync]") {
  const std::string deleter = GENERATE(as<std::string>{}, "a", "b");
  const std::string editor = other_side(deleter);
  CAPTURE(deleter);
  LinkedPair w(config::DeletePolicy::archive);
  SECTION("a delete alone: archived, no conflict") {
    remove(*w.engine, deleter, w.id[deleter]);
    w.travel_from(deleter);
    CHECK(live(*w.engine, editor).empty());
    const auto gone = record_of(*w.engine, editor, w.id[editor]);
    REQUIRE(gone);
    CHECK(gone->event == plugins::EventKind::remove);
    w.check_links_closed();
    w.travel_from(editor);
    CHECK(live(*w.engine, "a").empty());
    CHECK(live(*w.engine, "b").empty());
    CHECK(w.db().list_conflicts(std::nullopt).empty());
    CHECK(w.dead_letters() == 0);
  }
  SECTION("a delete that meets a newer edit: archived, the conflict resolved \"archived\"") {
    remove(*w.engine, deleter, w.id[deleter]);
    next_millisecond();
    update(*w.engine, editor, "contact", w.id[editor], edit_name(editor, "Fay Edited"));
    w.travel_from(deleter);
    const auto met = conflicts_with(w.db(), "delete met edit");
    REQUIRE(met.size() == 1);
    CHECK(met[0].pipeline == pipeline_from(deleter));
    const auto detail = json::parse(met[0].detail, "detail");
    CHECK(text_of(detail, "policy") == "archive");
    CHECK(text_of(detail, "resolution") == "archived");
    CHECK(text_of(detail["target"], name_field(editor).c_str()) == "Fay Edited");
    CHECK(live(*w.engine, editor).empty());
    w.check_links_closed();
    w.travel_from(editor);
    CHECK(live(*w.engine, "a").empty());
    CHECK(live(*w.engine, "b").empty());
    CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
    CHECK(w.dead_letters() == 0);
  }
  SECTION("an edit that reaches the deleted record: the delete wins and travels back") {
    update(*w.engine, editor, "contact", w.id[editor], edit_name(editor, "Fay Edited"));
    remove(*w.engine, deleter, w.id[deleter]);
    w.travel_from(editor);  // the edit travels first
    const auto met = conflicts_with(w.db(), "edit met delete");
    REQUIRE(met.size() == 1);
    CHECK(met[0].pipeline == pipeline_from(editor));
    const auto detail = json::parse(met[0].detail, "detail");
    CHECK(text_of(detail, "policy") == "archive");
    CHECK(live(*w.engine, deleter).empty());
    w.travel_from(deleter);  // the delete travels back: archived on the editor's side
    CHECK(live(*w.engine, editor).empty());
    w.check_links_closed();
    CHECK(w.db().list_conflicts(std::nullopt).size() == 1);
    CHECK(w.dead_letters() == 0);
  }
}

TEST_CASE("a delete after the last sync of the pair is no conflict, in both directions",
          "[engine][sync]") {
  const std::string deleter = GENERATE(as<std::string>{}, "a", "b");
  const std::string editor = other_side(deleter);
  const auto policy = GENERATE(config::DeletePolicy::keep_edited, config::DeletePolicy::propagate);
  CAPTURE(deleter, config::to_string(policy));
  LinkedPair w(policy);
  SECTION("nothing was edited") {}
  SECTION("the other side's edit reached the deleting side before the delete") {
    update(*w.engine, editor, "contact", w.id[editor], edit_name(editor, "Fay Edited"));
    w.travel_from(editor);
    REQUIRE(live(*w.engine, deleter).size() == 1);
    CHECK(field(live(*w.engine, deleter)[0], name_field(deleter).c_str()) == "Fay Edited");
    w.travel_from(deleter);  // the edit's copy comes back: an echo
    next_millisecond();
  }
  CAPTURE(deleter, config::to_string(policy));  // (Catch forgets the first at a section's end)
  remove(*w.engine, deleter, w.id[deleter]);
  w.travel_from(deleter);
  CHECK(live(*w.engine, "a").empty());
  CHECK(live(*w.engine, "b").empty());
  w.check_links_closed();
  w.travel_from(editor);
  CHECK(live(*w.engine, "a").empty());
  CHECK(live(*w.engine, "b").empty());
  CHECK(w.db().list_conflicts(std::nullopt).empty());
  CHECK(w.dead_letters() == 0);
}

namespace {

// Keeps the messages given to the default logger while it lives: the engine logs on its own
// threads, so they are kept under a lock and read as a copy.
class MessageSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg &msg) override {
    std::lock_guard lock(mutex_);
    messages_.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush() override {}
  void set_pattern(const std::string &) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
  std::vector<std::string> containing(const std::string &text) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto &m : messages_)
      if (m.find(text) != std::string::npos) out.push_back(m);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

struct CapturedLog {
  std::shared_ptr<MessageSink> sink = std::make_shared<MessageSink>();
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  CapturedLog() {
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
  CapturedLog(const CapturedLog &) = delete;
  CapturedLog &operator=(const CapturedLog &) = delete;
  std::vector<std::string> first_contacts() const { return sink->containing("first contact"); }
};

// Waits for the next poll of `pipeline` that the engine makes by itself (at start), after the
// `runs` it had already made, and for what it queued.
void await_next_poll(store::Store &db, const std::string &pipeline, size_t runs) {
  REQUIRE(eventually([&] {
    auto list = db.list_sync_runs(pipeline, 1000);
    return list.size() > runs && list.front().status != store::SyncRunStatus::running &&
           settled(db, pipeline) == total(db, pipeline);
  }));
}

const std::string kPlanSeedA =
    R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com","name":"Ann"}},
        {"object":"contact","id":"a2","data":{"email":"bob@example.com","name":"Bob"}},
        {"object":"contact","id":"a3","data":{"email":"carl@example.com","name":"Carl"}}])";
const std::string kPlanSeedB =
    R"([{"object":"contact","id":"b1","data":{"email":"ANN@example.com ","full_name":"Ann"}},
        {"object":"contact","id":"b2","data":{"email":"bob@example.com","full_name":"Robert"}},
        {"object":"contact","id":"b3","data":{"email":"dora@example.com","full_name":"Dora"}}])";

}  // namespace

TEST_CASE("a two-way pipeline's first poll logs the first-contact plan, once, before writing",
          "[engine][sync]") {
  CapturedLog log;  // outlives the engines below
  TwoWayHarness h;
  auto a_to_b = make_pipeline("a-to-b", "a", "b", "contact", kAtoB, "source_wins", "email");
  auto b_to_a = make_pipeline("b-to-a", "b", "a", "contact", kBtoA, "source_wins", "email");

  SECTION("the plan's counts, then never again: not at a later poll, not after a restart") {
    // b-to-a exists (so a-to-b is one direction of a two-way sync) but does not run: what a-to-b
    // reads for its plan is the seeds, whatever the scheduling.
    b_to_a.enabled = false;
    const auto config = two_memories(kPlanSeedA, {a_to_b, b_to_a}, kPlanSeedB);
    {
      pipeline::Engine engine(config, h.registry, h.db);
      engine.start();
      await_next_poll(*h.db, "a-to-b", 0);
      CHECK(log.first_contacts() ==
            std::vector<std::string>{
                "pipeline a-to-b: first contact of a and b: read 3 in a and 3 in b; would link 2 "
                "on email (1 with differing values: conflicts, decided by source_wins), create 1 "
                "in b and 1 in a; conflicts such as [bob@example.com: full_name]"});
      // Then the poll did as planned: Ann and Bob linked (Bob's name overwritten: source_wins,
      // the clash recorded), Carl created on B; Dora waits for b-to-a.
      CHECK(live(engine, "b").size() == 4);
      CHECK(conflicts_with(*h.db, "first link").size() == 1);
      for (const char *id : {"a1", "a2", "a3"}) CHECK(h.db->find_link_by_source("a-to-b", "a", id));
      poll_and_settle(engine, *h.db, "a-to-b");
      CHECK(log.first_contacts().size() == 1);
      engine.stop();
    }
    // A restart on the same store: a-to-b has run before (its cursor and links are there).
    const auto runs = h.db->list_sync_runs("a-to-b", 1000).size();
    pipeline::Engine engine(config, h.registry, h.db);
    engine.start();
    await_next_poll(*h.db, "a-to-b", runs);
    CHECK(log.first_contacts().size() == 1);
    engine.stop();
  }
  SECTION("links without a cursor (a backfill ran before): not a first contact") {
    b_to_a.enabled = false;
    store::EntityLink link;
    link.pipeline = "a-to-b";
    link.source_connection = "a";
    link.source_id = "a1";
    link.target_connection = "b";
    link.target_id = "b1";
    link.last_payload_hash = "written by a backfill";
    link.last_pushed_at = store::now_ms();
    h.db->upsert_link(link);
    REQUIRE_FALSE(h.db->get_cursor("a-to-b", "contact"));
    pipeline::Engine engine(two_memories(kPlanSeedA, {a_to_b, b_to_a}, kPlanSeedB), h.registry,
                            h.db);
    engine.start();
    await_next_poll(*h.db, "a-to-b", 0);
    CHECK(log.first_contacts().empty());
    engine.stop();
  }
  SECTION("both directions starting together: each logs its own plan, once") {
    pipeline::Engine engine(two_memories(kPlanSeedA, {a_to_b, b_to_a}, kPlanSeedB), h.registry,
                            h.db);
    engine.start();
    await_start_polls(*h.db, {"a-to-b", "b-to-a"});
    CHECK(log.sink->containing("pipeline a-to-b: first contact of a and b: ").size() == 1);
    CHECK(log.sink->containing("pipeline b-to-a: first contact of b and a: ").size() == 1);
    CHECK(log.first_contacts().size() == 2);
    poll_and_settle(engine, *h.db, "a-to-b");
    poll_and_settle(engine, *h.db, "b-to-a");
    CHECK(log.first_contacts().size() == 2);
    engine.stop();
  }
}
