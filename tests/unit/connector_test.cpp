// Drives every connector call through the adapter, against the plain-C memory connector and its
// C++ SDK twin, and checks what comes back.
#include <atomic>
#include <set>
#include <thread>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/raw_connector.hpp"
#include "test_support.hpp"
#include "util/json.hpp"

using namespace crmhost::plugins;
using crmhost::test::fixture;

namespace {

constexpr const char *kSettings = R"({"webhook_secret":"s3cret-s3cret"})";

PushInput input(const std::string &ref, const std::string &data) {
  return {ref, std::nullopt, data};
}

std::string field(const std::string &data_json, const char *key) {
  auto doc = crmhost::json::parse(data_json, "record");
  return crmhost::json::get_string(doc, key).value_or("<absent>");
}

WebhookRequest delivery(const std::string &secret, const std::string &body) {
  WebhookRequest r;
  r.method = "POST";
  r.url = "https://crmhost.example.com/hooks/memory";
  r.headers = {{"Content-Type", "application/json"}, {"X-Memory-Secret", secret}};
  r.body = body;
  r.received_at_ms = 1700000000000;
  return r;
}

}  // namespace

TEST_CASE("connector calls return the documented JSON shapes", "[connector]") {
  const std::string plugin_file = GENERATE("memory", "memory-sdk");
  INFO("plugin " << plugin_file);
  auto plugin = crmhost::test::load_or_fail(fixture(plugin_file));
  auto c = crmhost::test::connect(plugin, kSettings);

  SECTION("check reports health") {
    auto checked = c->check();
    REQUIRE(checked);
    CHECK(checked->ok);
    CHECK_THAT(checked->message, Catch::Contains("0 records"));
  }

  SECTION("push creates, upserts on the match key, updates by id and deletes") {
    auto created = c->push({"contact",
                            "upsert",
                            "email",
                            {input("a", R"({"email":"ann@example.com","name":"Ann"})"),
                             input("b", R"({"email":"bob@example.com","name":"Bob"})")}});
    REQUIRE(created);
    REQUIRE(created->size() == 2);
    CHECK((*created)[0].ok);
    CHECK((*created)[0].created);
    CHECK((*created)[0].ref == "a");
    CHECK((*created)[0].id != (*created)[1].id);

    auto upserted = c->push({"contact",
                             "upsert",
                             "email",
                             {input("a2", R"({"email":"ann@example.com","name":"Ann Lee"})")}});
    REQUIRE(upserted);
    CHECK((*upserted)[0].ok);
    CHECK_FALSE((*upserted)[0].created);
    CHECK((*upserted)[0].id == (*created)[0].id);

    auto fetched = c->fetch("contact", {(*created)[0].id, "no-such-id"});
    REQUIRE(fetched);
    REQUIRE(fetched->records.size() == 1);
    CHECK(field(fetched->records[0].data_json, "name") == "Ann Lee");
    CHECK(field(fetched->records[0].data_json, "email") ==
          "ann@example.com");  // merged, not replaced
    CHECK(fetched->missing == std::vector<std::string>{"no-such-id"});

    auto mixed = c->push({"contact",
                          "update",
                          std::nullopt,
                          {PushInput{"x", std::string("missing"), R"({"name":"X"})"},
                           PushInput{"y", (*created)[1].id, R"({"name":"Robert"})"},
                           PushInput{"z", std::nullopt, R"([1,2])"}}});
    REQUIRE(mixed);
    REQUIRE(mixed->size() == 3);
    CHECK_FALSE((*mixed)[0].ok);
    CHECK((*mixed)[0].code == "not_found");
    CHECK_FALSE((*mixed)[0].retryable);
    CHECK((*mixed)[1].ok);  // one bad record does not fail the batch
    CHECK_FALSE((*mixed)[2].ok);
    CHECK((*mixed)[2].code == "invalid_input");

    auto deleted =
        c->push({"contact", "delete", std::nullopt, {PushInput{"d", (*created)[1].id, "{}"}}});
    REQUIRE(deleted);
    CHECK((*deleted)[0].ok);
    auto after_delete = c->fetch("contact", {(*created)[1].id});
    REQUIRE(after_delete);
    CHECK(after_delete->records.empty());
  }

  SECTION("poll pages with a cursor, then returns only what changed after it") {
    std::vector<PushInput> inputs;
    for (int i = 0; i < 5; ++i)
      inputs.push_back(input("r" + std::to_string(i),
                             R"({"email":"p)" + std::to_string(i) + R"(@example.com"})"));
    REQUIRE(c->push({"contact", "create", std::nullopt, inputs}));
    REQUIRE(c->push({"company", "create", std::nullopt, {input("co", R"({"name":"Acme"})")}}));

    std::optional<std::string> cursor;
    std::vector<std::string> seen;
    int pages = 0;
    for (;;) {
      auto page = c->poll({"contact", cursor, 2});
      REQUIRE(page);
      ++pages;
      for (const auto &r : page->records) seen.push_back(field(r.data_json, "email"));
      REQUIRE(page->next_cursor);
      cursor = page->next_cursor;
      if (!page->more) break;
    }
    CHECK(pages == 3);
    CHECK(seen == std::vector<std::string>{"p0@example.com", "p1@example.com", "p2@example.com",
                                           "p3@example.com", "p4@example.com"});

    auto quiet = c->poll({"contact", cursor, 2});
    REQUIRE(quiet);
    CHECK(quiet->records.empty());
    CHECK_FALSE(quiet->more);
    CHECK(quiet->next_cursor == cursor);  // nothing new: the cursor stays put

    REQUIRE(c->push(
        {"contact", "upsert", "email", {input("u", R"({"email":"p1@example.com","x":1})")}}));
    auto changed = c->poll({"contact", cursor, 10});
    REQUIRE(changed);
    REQUIRE(changed->records.size() == 1);
    CHECK(field(changed->records[0].data_json, "email") == "p1@example.com");
    CHECK(changed->records[0].event == crmhost::plugins::EventKind::upsert);

    auto unknown = c->poll({"invoice", std::nullopt, 10});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code == CRM_ERR_UNSUPPORTED);
  }

  SECTION("a webhook with the right secret yields events; a wrong one is unauthorized") {
    auto accepted = c->webhook(delivery(
        "s3cret-s3cret", R"([{"object":"contact","id":"w1","data":{"email":"w@example.com"}},)"
                         R"({"object":"contact","id":"w1","deleted":true}])"));
    REQUIRE(accepted);
    REQUIRE(accepted->events.size() == 2);
    CHECK(accepted->events[0].object == "contact");
    CHECK(accepted->events[0].id == "w1");
    CHECK(accepted->events[0].event == crmhost::plugins::EventKind::upsert);
    REQUIRE(accepted->events[0].data_json);
    CHECK(field(*accepted->events[0].data_json, "email") == "w@example.com");
    CHECK(accepted->events[1].event == crmhost::plugins::EventKind::remove);
    CHECK_FALSE(accepted->events[1].data_json);

    auto forged = c->webhook(delivery("wrong-secret!", "[]"));
    REQUIRE_FALSE(forged);
    CHECK(forged.error().code == CRM_ERR_UNAUTHORIZED);
    CHECK_FALSE(forged.error().retryable);

    auto malformed = c->webhook(delivery("s3cret-s3cret", R"({"not":"an array"})"));
    REQUIRE_FALSE(malformed);
    CHECK(malformed.error().code == CRM_ERR_INVALID_INPUT);
    CHECK_THAT(malformed.error().message, Catch::Contains("array"));

    auto broken = c->webhook(delivery("s3cret-s3cret", R"([{"object":"contact","data":)"));
    REQUIRE_FALSE(broken);
    CHECK(broken.error().code == CRM_ERR_INVALID_INPUT);
  }

  SECTION("a push batch beyond max_batch is refused as a whole") {
    std::vector<PushInput> inputs(101, input("r", R"({"name":"n"})"));
    auto refused = c->push({"contact", "create", std::nullopt, inputs});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == CRM_ERR_INVALID_INPUT);
    CHECK_THAT(refused.error().message, Catch::Contains("max_batch"));
  }

  SECTION("cancel with nothing running is harmless") {
    c->cancel();
    CHECK(c->check());
  }
}

TEST_CASE("the C example's push honours match_normalize, match and archive", "[connector]") {
  // Raw requests: the host's adapter does not send match_normalize yet.
  auto plugin = crmhost::test::load_or_fail(fixture("memory"));
  crmhost::testing::RawConnector raw(
      fixture("memory"), "memory", std::make_shared<HostServices>(),
      R"({"webhook_secret":"s3cret-s3cret","seed":[)"
      R"({"object":"contact","id":"ann","data":{"email":"Ann@Example.com","name":"Ann"}},)"
      R"({"object":"contact","id":"bob","data":{"email":"bob@example.com ","name":"Bob"}},)"
      R"({"object":"contact","id":"gone","data":{"email":"gone@example.com","name":"Gone"}}]})");
  const auto results = [&](const std::string &request) {
    const auto pushed = raw.push(request);
    INFO(pushed.message);
    REQUIRE(pushed.status == CRM_OK);
    return pushed.results();
  };
  const auto count = [&] {
    const auto page = raw.poll(R"({"object":"contact","cursor":null,"limit":1000})");
    return crmhost::json::parse(page.json, "poll")["records"].Size();
  };
  const auto name_of = [&](const std::string &id) {
    const auto fetched = raw.fetch(R"({"object":"contact","ids":[")" + id + R"("]})");
    const auto doc = crmhost::json::parse(fetched.json, "fetch");
    return doc["records"].Empty() ? std::string("<missing>")
                                  : std::string(doc["records"][0]["data"]["name"].GetString());
  };
  REQUIRE(results(R"({"object":"contact","mode":"delete","records":[{"ref":"g","id":"gone"}]})")
              .at(0)
              .ok);
  const std::string normalize = R"("match_on":"email","match_normalize":["trim","lower"],)";

  SECTION("match_normalize compares keys trimmed and lower-cased, in the batch too") {
    // Without it keys compare exactly, as before: both inputs create.
    const auto plain = results(
        R"({"object":"contact","mode":"upsert","match_on":"email","records":[)"
        R"({"ref":"a","data":{"email":"ann@example.com"}},{"ref":"b","data":{"email":"bob@example.com"}}]})");
    REQUIRE(plain.size() == 2);
    CHECK(plain[0].created);
    CHECK(plain[1].created);

    // With it they match, and the oldest of the records holding a key wins.
    const auto r =
        results(R"({"object":"contact","mode":"upsert",)" + normalize +
                R"("records":[{"ref":"a","data":{"email":"ann@example.com","city":"Ghent"}},)"
                R"({"ref":"b","data":{"email":"bob@example.com","city":"Oslo"}},)"
                R"({"ref":"c","data":{"email":"New@Example.com ","name":"New"}},)"
                R"({"ref":"d","data":{"email":"new@example.com","name":"New Again"}}]})");
    REQUIRE(r.size() == 4);
    CHECK(r[0].id == "ann");
    CHECK_FALSE(r[0].created);
    CHECK(r[1].id == "bob");
    CHECK_FALSE(r[1].created);
    CHECK(r[2].created);
    CHECK(r[3].id == r[2].id);
    CHECK_FALSE(r[3].created);
    CHECK(name_of(r[2].id) == "New Again");
    CHECK(count() == 6);  // ann, bob, gone (deleted), the two made above and new

    const auto unknown = raw.push(
        R"({"object":"contact","mode":"upsert","match_normalize":["trim","casefold"],"records":[]})");
    CHECK(unknown.status == CRM_ERR_INVALID_INPUT);
    CHECK_THAT(unknown.message, Catch::Contains("\"casefold\""));
  }

  SECTION("match answers the found id or not_found and writes nothing") {
    const auto before = raw.poll(R"({"object":"contact","cursor":null,"limit":1000})");
    const std::string cursor = crmhost::json::parse(before.json, "poll")["next_cursor"].GetString();
    const auto r =
        results(R"({"object":"contact","mode":"match",)" + normalize +
                R"("records":[{"ref":"a","data":{"email":" ANN@example.com","name":"X"}},)"
                R"({"ref":"b","data":{"email":"nobody@example.com"}},)"
                R"({"ref":"c","id":"bob"},{"ref":"d","id":"gone"},{"ref":"e","id":"no"}]})");
    REQUIRE(r.size() == 5);
    CHECK(r[0].ok);
    CHECK(r[0].id == "ann");
    CHECK_FALSE(r[0].created);
    CHECK_FALSE(r[1].ok);
    CHECK(r[1].code == "not_found");
    CHECK_FALSE(r[1].retryable);
    CHECK(r[2].ok);
    CHECK(r[2].id == "bob");
    CHECK(r[3].code == "not_found");  // deleted
    CHECK(r[4].code == "not_found");
    const auto after =
        raw.poll(std::string(R"({"object":"contact","cursor":")") + cursor + R"(","limit":1000})");
    CHECK(crmhost::json::parse(after.json, "poll")["records"].Empty());
    CHECK(name_of("ann") == "Ann");
  }

  SECTION("archive deletes as delete does: this store keeps no archive") {
    const auto r =
        results(R"({"object":"contact","mode":"archive",)" + normalize +
                R"("records":[{"ref":"a","id":"ann"},)"
                R"({"ref":"b","data":{"email":"BOB@example.com"}},{"ref":"c","id":"no"}]})");
    REQUIRE(r.size() == 3);
    CHECK(r[0].ok);
    CHECK(r[1].ok);
    CHECK(r[1].id == "bob");
    CHECK_FALSE(r[2].ok);
    CHECK(r[2].code == "not_found");  // as delete answers
    CHECK(name_of("ann") == "<missing>");
    CHECK(name_of("bob") == "<missing>");
  }

  SECTION("upsert and update naming a deleted id are not_found, never matched on the key") {
    for (const char *mode : {"upsert", "update"}) {
      INFO(mode);
      const auto r = results(std::string(R"({"object":"contact","mode":")") + mode +
                             R"(","match_on":"email","records":[{"ref":"x","id":"gone",)"
                             R"("data":{"email":"bob@example.com ","name":"Not Bob"}}]})");
      REQUIRE(r.size() == 1);
      CHECK_FALSE(r[0].ok);
      CHECK(r[0].code == "not_found");
      CHECK_FALSE(r[0].retryable);
    }
    CHECK(count() == 3);
    CHECK(name_of("bob") == "Bob");
    CHECK(name_of("gone") == "<missing>");
  }
}

TEST_CASE("connector settings are checked by the plugin and seed records appear", "[connector]") {
  const std::string plugin_file = GENERATE("memory", "memory-sdk");
  auto plugin = crmhost::test::load_or_fail(fixture(plugin_file));
  auto bad = plugin->create_connector("c", R"({"webhook_secret":"short"})");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == CRM_ERR_INVALID_INPUT);
  CHECK_THAT(bad.error().message, Catch::Contains("webhook_secret"));

  auto c = crmhost::test::connect(
      plugin,
      R"({"webhook_secret":"s3cret-s3cret","seed":[{"object":"deal","id":"d-1","data":{"amount":5}}]})");
  auto fetched = c->fetch("deal", {"d-1"});
  REQUIRE(fetched);
  REQUIRE(fetched->records.size() == 1);
  CHECK(fetched->records[0].data_json == R"({"amount":5})");
}

TEST_CASE("two connectors of one plugin keep separate state", "[connector]") {
  auto plugin = crmhost::test::load_or_fail(fixture("memory"));
  auto a = crmhost::test::connect(plugin, kSettings);
  auto b = crmhost::test::connect(plugin, kSettings);
  REQUIRE(a->push({"contact", "create", std::nullopt, {input("1", R"({"n":1})")}}));
  auto page = b->poll({"contact", std::nullopt, 10});
  REQUIRE(page);
  CHECK(page->records.empty());
  CHECK(a->connection() == "test-connection");
}

TEST_CASE("concurrent calls on one connector are serialized as the ABI promises", "[connector]") {
  auto plugin = crmhost::test::load_or_fail(fixture("memory"));
  auto c = crmhost::test::connect(plugin, kSettings);
  constexpr int kThreads = 4, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string email =
            "t" + std::to_string(t) + "-" + std::to_string(i) + "@example.com";
        auto r =
            c->push({"contact", "upsert", "email", {input("r", R"({"email":")" + email + "\"}")}});
        if (!r || !(*r)[0].ok) ++failures;
      }
    });
  for (auto &thread : threads) thread.join();
  CHECK(failures == 0);
  auto page = c->poll({"contact", std::nullopt, 1000});
  REQUIRE(page);
  std::set<std::string> ids;
  for (const auto &r : page->records) ids.insert(r.id);
  CHECK(ids.size() == kThreads * kPerThread);  // no lost or doubled insert
}

TEST_CASE("poll pages tell how many records remain", "[connector]") {
  const std::string plugin_file = GENERATE("memory", "memory-sdk");
  auto plugin = crmhost::test::load_or_fail(fixture(plugin_file));
  auto c = crmhost::test::connect(plugin, kSettings);
  std::vector<PushInput> inputs(5, input("r", R"({"n":1})"));
  REQUIRE(c->push({"contact", "create", std::nullopt, inputs}));
  auto page = c->poll({"contact", std::nullopt, 2});
  REQUIRE(page);
  CHECK(page->remaining == std::optional<uint64_t>(3));
  auto last = c->poll({"contact", page->next_cursor, 10});
  REQUIRE(last);
  CHECK(last->remaining == std::optional<uint64_t>(0));
}

TEST_CASE("the C example's webhook parse takes memory in proportion to the body", "[connector]") {
  // In a child process, so its peak resident size is this call's alone. Before the fix each
  // JSON string allocated the rest of the whole text: a 600 KB body peaked near 1 GB.
  std::string body = "[";
  for (int i = 0; body.size() < 600'000; ++i)
    body += std::string(i ? "," : "") + R"({"object":"contact","id":"w)" + std::to_string(i) +
            R"(","data":{"email":"w)" + std::to_string(i) + R"(@example.com","name":"N"}})";
  body += "]";
  auto request = delivery("s3cret-s3cret", body);
  for (int i = 0; i < 5000; ++i)
    request.headers.emplace_back("X-Filler-" + std::to_string(i), std::string(20, 'v'));
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    long growth_kb = -1;
    auto plugin = load_plugin(crmhost::test::fixture("memory"), std::make_shared<HostServices>());
    if (auto *lib = std::get_if<std::shared_ptr<PluginLibrary>>(&plugin)) {
      auto created = (*lib)->create_connector("c", kSettings);
      if (created) {
        rusage before{};
        ::getrusage(RUSAGE_SELF, &before);
        auto events = created.value()->webhook(request);
        rusage after{};
        ::getrusage(RUSAGE_SELF, &after);
        if (events && events->events.size() > 7000) growth_kb = after.ru_maxrss - before.ru_maxrss;
      }
    }
    (void)!::write(fds[1], &growth_kb, sizeof growth_kb);
    ::_exit(0);
  }
  ::close(fds[1]);
  long growth_kb = -2;
  (void)!::read(fds[0], &growth_kb, sizeof growth_kb);
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  INFO("peak resident growth " << growth_kb << " KiB");
  CHECK(growth_kb >= 0);
  CHECK(growth_kb < 96 * 1024);
}
