// zoho.so against the Zoho sandbox over HTTP, through the host's real HTTP client.
#include <chrono>
#include <set>

#include <catch2/catch.hpp>

#include "net/http_client.hpp"
#include "plugin_support.hpp"
#include "sandbox/zoho.hpp"

using crmhost::plugins::EventKind;
using crmhost::plugins::PushInput;
using crmhost::plugins::PushRequest;

namespace {

constexpr int64_t kOrg = 777;

struct SandboxFixture {
  crmsandbox::ZohoSandbox sandbox;
  crmhost::test::LoadedPlugin host{"zoho", std::make_shared<crmhost::net::HttpClient>()};

  explicit SandboxFixture(crmsandbox::ZohoOptions options = {}) : sandbox(std::move(options)) {
    crmsandbox::ZohoOrg org;
    org.id = kOrg;
    org.utc_offset_minutes = 330;  // Zoho renders times in the org's zone: ...+05:30
    org.credits_per_day = 10'000'000;
    org.concurrency = 1000;
    sandbox.add_org(org);
    sandbox.add_client("client-1", "secret-1", "refresh-1", kOrg);
    sandbox.start();
  }

  // data_centre us with the sandbox's accounts server; the API host is the token's api_domain.
  std::string settings(const std::string &extra = "") const {
    return R"({"data_centre":"us","accounts_url":")" + sandbox.accounts_base_url() +
           R"(","auth":{"client_id":"client-1","client_secret":"secret-1",)"
           R"("refresh_token":"refresh-1"})" +
           extra + "}";
  }

  // Polls until the plugin says the head is reached; returns every record in order.
  static std::vector<crmhost::plugins::Record> drain(crmhost::plugins::Connector &c,
                                                     const std::string &object,
                                                     std::optional<std::string> &cursor,
                                                     uint32_t limit, size_t *pages = nullptr) {
    std::vector<crmhost::plugins::Record> out;
    for (int guard = 0; guard < 2000; ++guard) {
      auto page = c.poll({object, cursor, limit});
      if (!page) FAIL(page.error().describe());
      for (auto &r : page->records) out.push_back(r);
      cursor = page->next_cursor;
      if (pages) ++*pages;
      if (!page->more) return out;
    }
    FAIL("poll never reached the head");
    return out;
  }

  static std::set<std::string> ids(const std::vector<crmhost::plugins::Record> &records) {
    std::set<std::string> out;
    for (const auto &r : records) out.insert(r.id);
    return out;
  }
};

PushInput input(const std::string &ref, const std::string &data,
                std::optional<std::string> id = std::nullopt) {
  return PushInput{ref, std::move(id), data};
}

}  // namespace

TEST_CASE("poll pages through every lead in modification order with UTC times") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Leads", 250, {.seed = 3});
  auto c = f.host.connect(f.settings());
  auto first = c->poll({"lead", std::nullopt, 100});
  REQUIRE(first);
  CHECK(first->more);
  CHECK(first->records.size() == 100);
  REQUIRE(first->records[0].modified_at);
  CHECK(first->records[0].modified_at->back() == 'Z');
  CHECK_THAT(first->records[0].data_json, Catch::Contains(".000Z\""));
  CHECK_THAT(first->records[0].data_json, !Catch::Contains("+05:30"));
  std::optional<std::string> cursor = first->next_cursor;
  auto rest = SandboxFixture::drain(*c, "lead", cursor, 100);
  auto all = SandboxFixture::ids(rest);
  for (const auto &r : first->records) all.insert(r.id);
  CHECK(all == std::set<std::string>(seeded.begin(), seeded.end()));
}

TEST_CASE("poll reads past Zoho's 2,000-record page limit in both regimes") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Contacts", 2'300, {.seed = 5});
  const std::set<std::string> expected(seeded.begin(), seeded.end());
  auto c = f.host.connect(f.settings());
  SECTION("one call pages beyond the 2,000th record with next_page_token") {
    std::optional<std::string> cursor;
    size_t pages = 0;
    const auto records = SandboxFixture::drain(*c, "contact", cursor, 2'500, &pages);
    CHECK(pages == 1);
    CHECK(records.size() == 2'300);
    CHECK(SandboxFixture::ids(records) == expected);
  }
  SECTION("calls restart from the cursor, never paging deep") {
    std::optional<std::string> cursor;
    const auto records = SandboxFixture::drain(*c, "contact", cursor, 200);
    CHECK(records.size() == 2'300);
    CHECK(SandboxFixture::ids(records) == expected);
  }
}

TEST_CASE("records sharing one Modified_Time are all read once across pages") {
  SandboxFixture f;
  std::vector<crmsandbox::ZohoFields> batch;
  for (int i = 0; i < 450; ++i)
    batch.push_back({{"Last_Name", std::string("Tie") + std::to_string(i)},
                     {"Email", "tie" + std::to_string(i) + "@example.com"}});
  const auto tied = f.sandbox.seed(kOrg, "Contacts", batch);
  f.sandbox.advance_clock(std::chrono::seconds(5));
  const auto later = f.sandbox.seed(kOrg, "Contacts", {{{"Last_Name", std::string("Later")}}});
  REQUIRE(f.sandbox.record(kOrg, "Contacts", tied.front())->modified_ms ==
          f.sandbox.record(kOrg, "Contacts", tied.back())->modified_ms);
  auto c = f.host.connect(f.settings(R"(,"page_size":100)"));
  std::optional<std::string> cursor;
  const auto records = SandboxFixture::drain(*c, "contact", cursor, 60);
  std::set<std::string> expected(tied.begin(), tied.end());
  expected.insert(later.front());
  CHECK(SandboxFixture::ids(records) == expected);
  CHECK(records.size() == expected.size());  // no page repeats part of the group
  CHECK(records.back().id == later.front());
}

TEST_CASE("a tie group larger than 2,000 records is read through the page token") {
  SandboxFixture f;
  std::vector<crmsandbox::ZohoFields> batch;
  for (int i = 0; i < 2'050; ++i)
    batch.push_back({{"Last_Name", std::string("Bulk") + std::to_string(i)}});
  const auto tied = f.sandbox.seed(kOrg, "Leads", batch);
  auto c = f.host.connect(f.settings());
  std::optional<std::string> cursor;
  const auto records = SandboxFixture::drain(*c, "lead", cursor, 1'000);
  CHECK(records.size() == tied.size());
  CHECK(SandboxFixture::ids(records) == std::set<std::string>(tied.begin(), tied.end()));
}

TEST_CASE("an empty module answers 204 and the poll is at its head") {
  SandboxFixture f;
  auto c = f.host.connect(f.settings(R"(,"lookback_seconds":0)"));
  auto page = c->poll({"deal", std::nullopt, 100});
  REQUIRE(page);
  CHECK_FALSE(page->more);
  CHECK(page->records.empty());
  REQUIRE(page->next_cursor);
  const std::string id =
      f.sandbox.create_record(kOrg, "Deals", {{"Deal_Name", std::string("New one")}});
  auto next = c->poll({"deal", page->next_cursor, 100});
  REQUIRE(next);
  REQUIRE(next->records.size() == 1);
  CHECK(next->records[0].id == id);
  // Nothing modified since the cursor's second: only that second is read again.
  f.sandbox.advance_clock(std::chrono::minutes(5));
  auto again = c->poll({"deal", next->next_cursor, 100});
  REQUIRE(again);
  CHECK_FALSE(again->more);
  CHECK(again->records.size() <= 1);
}

TEST_CASE("deleted records become delete events, recycle bin and permanent alike") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Accounts", 3, {.seed = 9});
  auto c = f.host.connect(f.settings(R"(,"lookback_seconds":0)"));
  std::optional<std::string> cursor;
  SandboxFixture::drain(*c, "account", cursor, 100);
  f.sandbox.advance_clock(std::chrono::seconds(2));
  REQUIRE(f.sandbox.delete_record(kOrg, "Accounts", seeded[1]));
  auto after = SandboxFixture::drain(*c, "account", cursor, 100);
  std::vector<std::string> deleted;
  for (const auto &r : after)
    if (r.event == EventKind::remove) deleted.push_back(r.id);
  CHECK(deleted == std::vector<std::string>{seeded[1]});
  for (const auto &r : after)
    if (r.event == EventKind::remove) {
      REQUIRE(r.modified_at);
      CHECK(r.modified_at->back() == 'Z');
    }
}

TEST_CASE("fetch reads records by id and reports the missing ones") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Leads", 3, {.seed = 1});
  auto c = f.host.connect(f.settings());
  f.sandbox.reset_stats();
  auto fetched = c->fetch("lead", {seeded[0], seeded[2], "4876876000999999999"});
  REQUIRE(fetched);
  CHECK(fetched->records.size() == 2);
  CHECK(fetched->missing == std::vector<std::string>{"4876876000999999999"});
  // One list call with ids=, which the sandbox honours: no per-id GETs.
  const auto stats = f.sandbox.stats();
  CHECK(stats.by_path.at("GET /crm/v8/Leads") == 1);
  for (const auto &[path, n] : stats.by_path) {
    INFO(path);
    CHECK_FALSE(path.starts_with("GET /crm/v8/Leads/"));
  }
}

TEST_CASE("multi-select picklists read as arrays") {
  SandboxFixture f;
  const auto id = f.sandbox.seed(kOrg, "Leads",
                                 {{{"Last_Name", std::string("Multi")},
                                   {"Product_Interest", std::vector<std::string>{"CRM", "Desk"}}},
                                  {{"Last_Name", std::string("Text")},
                                   {"Product_Interest", std::vector<std::string>{"CRM;Desk"}}}});
  auto c = f.host.connect(f.settings(R"(,"fields":{"lead":["Last_Name","Product_Interest"]},)"
                                     R"("multi_select_fields":{"lead":["Product_Interest"]})"));
  auto fetched = c->fetch("lead", id);
  REQUIRE(fetched);
  REQUIRE(fetched->records.size() == 2);
  for (const auto &r : fetched->records)
    CHECK_THAT(r.data_json, Catch::Contains(R"("Product_Interest":["CRM","Desk"])"));
}

TEST_CASE("upsert matches on the key with no workflow triggered and maps partial failures") {
  SandboxFixture f;
  const std::string existing = f.sandbox.create_record(
      kOrg, "Contacts",
      {{"Last_Name", std::string("Old")}, {"Email", std::string("known@example.com")}});
  auto c = f.host.connect(f.settings());
  PushRequest request{"contact", "upsert", std::string("Email"), {}};
  request.records = {
      input("a", R"({"Email":"known@example.com","Last_Name":"Known"})"),
      input("b", R"({"Email":"missing-name@example.com"})"),  // Last_Name is mandatory
      input("c", R"({"Email":"new@example.com","Last_Name":"New",)"
                 R"("Date_of_Birth":"1990-01-02","Last_Activity":"2026-12-08T04:45:00.000Z"})"),
  };
  auto pushed = c->push(request);
  REQUIRE(pushed);
  REQUIRE(pushed->size() == 3);
  CHECK((*pushed)[0].ok);
  CHECK((*pushed)[0].id == existing);
  CHECK_FALSE((*pushed)[0].created);
  CHECK_FALSE((*pushed)[1].ok);
  CHECK((*pushed)[1].code == "invalid_input");
  CHECK_FALSE((*pushed)[1].retryable);
  CHECK((*pushed)[2].ok);
  CHECK((*pushed)[2].created);
  const auto calls = f.sandbox.write_calls();
  REQUIRE_FALSE(calls.empty());
  CHECK(calls.back().operation == "upsert");
  REQUIRE(calls.back().trigger);
  CHECK(calls.back().trigger->empty());
  REQUIRE(calls.back().duplicate_check_fields);
  CHECK(*calls.back().duplicate_check_fields == std::vector<std::string>{"Email"});
  CHECK_THAT(calls.back().body, Catch::Contains("2026-12-08T04:45:00+00:00"));
  CHECK(f.sandbox.record(kOrg, "Contacts", existing)->fields.at("Last_Name") ==
        crmsandbox::ZohoValue(std::string("Known")));
}

TEST_CASE("a linked record is updated by id, and a missing id is not_found") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Deals", 1, {.seed = 2});
  auto c = f.host.connect(f.settings());
  PushRequest request{"deal", "upsert", std::nullopt, {}};
  request.records = {input("a", R"({"Deal_Name":"Renamed"})", seeded[0]),
                     input("b", R"({"Deal_Name":"Ghost"})", std::string("4876876000999999999"))};
  auto pushed = c->push(request);
  REQUIRE(pushed);
  CHECK((*pushed)[0].ok);
  CHECK((*pushed)[0].id == seeded[0]);
  CHECK_FALSE((*pushed)[1].ok);
  CHECK((*pushed)[1].code == "not_found");
  CHECK(f.sandbox.write_calls().back().operation == "update");
  CHECK(f.sandbox.count(kOrg, "Deals") == 1);
}

TEST_CASE("push delete removes by id and takes an already gone record as done") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kOrg, "Leads", 2, {.seed = 4});
  auto c = f.host.connect(f.settings());
  PushRequest request{"lead", "delete", std::nullopt, {}};
  request.records = {input("a", "{}", seeded[0])};
  auto first = c->push(request);
  REQUIRE(first);
  CHECK((*first)[0].ok);
  CHECK_FALSE(f.sandbox.record(kOrg, "Leads", seeded[0]));
  auto again = c->push(request);
  REQUIRE(again);
  CHECK((*again)[0].ok);
  CHECK(f.sandbox.count(kOrg, "Leads") == 1);
}

TEST_CASE("OAuth refreshes once on INVALID_TOKEN and a restart reuses the kept token") {
  SandboxFixture f;
  {
    auto c = f.host.connect(f.settings());
    REQUIRE(c->check());
    CHECK(f.sandbox.stats().token_requests == 1);
    f.sandbox.expire_tokens();
    auto after = c->check();
    INFO((after ? std::string("ok") : after.error().describe()));
    REQUIRE(after);
    CHECK(f.sandbox.stats().token_requests == 2);
  }
  auto again = f.host.connect(f.settings());
  REQUIRE(again->check());
  CHECK(f.sandbox.stats().token_requests == 2);
}

TEST_CASE("a refresh token of another data centre is refused with a message naming it") {
  crmsandbox::ZohoOptions options;
  options.data_centres = {"com", "eu"};
  SandboxFixture f(options);
  auto c =
      f.host.connect(R"({"data_centre":"eu","accounts_url":")" + f.sandbox.accounts_base_url("eu") +
                     R"(","auth":{"client_id":"client-1","client_secret":"secret-1",)"
                     R"("refresh_token":"refresh-1"}})");
  auto checked = c->check();
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == CRM_ERR_UNAUTHORIZED);
  CHECK_THAT(checked.error().message, Catch::Contains("data centre eu"));
  CHECK_THAT(checked.error().message, Catch::Contains("settings.data_centre"));
  CHECK_THAT(checked.error().message, !Catch::Contains("secret-1"));
  CHECK_THAT(checked.error().message, !Catch::Contains("refresh-1"));
}

TEST_CASE("spent API credits make the connection rate limited until they return") {
  SandboxFixture f;
  f.sandbox.seed_generated(kOrg, "Leads", 5, {.seed = 6});
  auto c = f.host.connect(f.settings());
  REQUIRE(c->check());
  SECTION("the last credit's X-API-CREDITS-REMAINING 0 stops the next call") {
    f.sandbox.set_credits(kOrg, f.sandbox.credits_used(kOrg) + 1);
  }
  SECTION("a 429 after a budget seen nearly spent is the credits, not concurrency") {
    // Zoho shows the header once half the budget is used.
    f.sandbox.set_credits(kOrg, f.sandbox.credits_used(kOrg) + 2);
    REQUIRE(c->check());  // X-API-CREDITS-REMAINING 1
    f.sandbox.set_credits(kOrg, f.sandbox.credits_used(kOrg));
  }
  auto refused = c->poll({"lead", std::nullopt, 100});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == CRM_ERR_RATE_LIMITED);
  CHECK(refused.error().retry_after_ms > 0);
  CHECK_THAT(refused.error().message, Catch::Contains("resume at"));
  // Further calls wait it out without asking Zoho.
  const auto requests = f.sandbox.stats().requests;
  auto checked = c->check();
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == CRM_ERR_RATE_LIMITED);
  CHECK(checked.error().retry_after_ms > 0);
  CHECK(f.sandbox.stats().requests == requests);
}

TEST_CASE("a sandbox notification callback verifies and names its records") {
  SandboxFixture f;
  crmsandbox::ZohoChannel channel;
  channel.org_id = kOrg;
  channel.channel_id = "1000000068001";
  channel.events = {"Leads.all"};
  channel.expiry_ms = f.sandbox.now_ms() + 3600'000;
  channel.token = "tok-123";
  channel.notify_url = "http://127.0.0.1:9/hooks/zoho";  // nobody listens: the body is recorded
  f.sandbox.add_channel(channel);
  auto c = f.host.connect(
      f.settings(R"(,"notifications":{"channel_id":"1000000068001","token":"tok-123",)"
                 R"("notify_url":"http://127.0.0.1:9/hooks/zoho"})"));
  const std::string id = f.sandbox.create_record(kOrg, "Leads", {{"Last_Name", std::string("N")}});
  REQUIRE(f.sandbox.wait_for_deliveries(1, std::chrono::seconds(10)));
  const auto delivery = f.sandbox.deliveries().front();
  auto result = c->webhook({"POST", delivery.url, delivery.headers, delivery.body, 0});
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  CHECK(result->events[0].object == "lead");
  CHECK(result->events[0].id == id);
  CHECK(result->events[0].event == EventKind::upsert);
  CHECK_FALSE(result->events[0].data_json);
  auto other = f.host.connect(
      f.settings(R"(,"notifications":{"channel_id":"1000000068001","token":"tok-124",)"
                 R"("notify_url":"http://127.0.0.1:9/hooks/zoho"})"),
      "other");
  auto refused = other->webhook({"POST", delivery.url, delivery.headers, delivery.body, 0});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a sandbox workflow-rule webhook verifies by its header and unwraps data") {
  SandboxFixture f;
  crmsandbox::ZohoWorkflowRule rule;
  rule.org_id = kOrg;
  rule.module = "Contacts";
  rule.url = "http://127.0.0.1:9/hooks/zoho";
  rule.header_name = "X-Crmhost-Secret";
  rule.header_value = "wf-secret-0123456789";
  f.sandbox.add_workflow_rule(rule);
  auto c = f.host.connect(f.settings(
      R"(,"workflow_webhook":{"header":"X-Crmhost-Secret","secret":"wf-secret-0123456789"})"));
  const std::string id =
      f.sandbox.create_record(kOrg, "Contacts", {{"Last_Name", std::string("W")}});
  REQUIRE(f.sandbox.delete_record(kOrg, "Contacts", id));
  REQUIRE(f.sandbox.wait_for_deliveries(2, std::chrono::seconds(10)));
  const auto deliveries = f.sandbox.deliveries();
  std::vector<std::string> event_ids;
  for (const auto &d : deliveries) {
    auto result = c->webhook({"POST", d.url, d.headers, d.body, 0});
    REQUIRE(result);
    REQUIRE(result->events.size() == 1);
    CHECK(result->events[0].id == id);
    event_ids.push_back(*result->events[0].event_id);
  }
  CHECK(event_ids[0] != event_ids[1]);
}

TEST_CASE("maintain creates the notification channel, renews it before expiry and stops it") {
  SandboxFixture f;
  auto c = f.host.connect(f.settings(
      R"(,"objects":["lead","deal"],"notifications":{"channel_id":"1000000068001",)"
      R"("token":"tok-123","notify_url":"http://127.0.0.1:9/hooks/zoho","expiry_hours":24,)"
      R"("renew_before_hours":6})"));
  auto started = c->maintain("start");
  REQUIRE(started);
  CHECK_THAT(started->status_json, Catch::Contains(R"("action":"created")"));
  auto channels = f.sandbox.channels(kOrg);
  REQUIRE(channels.size() == 1);
  CHECK(channels[0].channel_id == "1000000068001");
  CHECK(channels[0].token == "tok-123");
  CHECK(std::set<std::string>(channels[0].events.begin(), channels[0].events.end()) ==
        std::set<std::string>{"Leads.create", "Leads.edit", "Leads.delete", "Deals.create",
                              "Deals.edit", "Deals.delete"});
  CHECK_FALSE(channels[0].notify_on_related_action);
  // Asked back well before the channel's day ends: at its renewal, 6 hours before.
  CHECK(started->next_in_ms > 17 * 3600'000LL);
  CHECK(started->next_in_ms <= 18 * 3600'000LL);
  const int64_t first_expiry = channels[0].expiry_ms;

  auto quiet = c->maintain("periodic");
  REQUIRE(quiet);
  CHECK_THAT(quiet->status_json, Catch::Contains(R"("action":"unchanged")"));

  f.sandbox.advance_clock(std::chrono::hours(19));
  f.host.now->store(f.sandbox.now_ms());  // the host's clock moves with Zoho's
  auto renewed = c->maintain("periodic");
  REQUIRE(renewed);
  CHECK_THAT(renewed->status_json, Catch::Contains(R"("action":"renewed")"));
  REQUIRE(f.sandbox.channels(kOrg).size() == 1);
  CHECK(f.sandbox.channels(kOrg)[0].expiry_ms > first_expiry);

  // Gone at Zoho (expired or removed): the next call subscribes it again.
  f.sandbox.advance_clock(std::chrono::hours(30));
  f.host.now->store(f.sandbox.now_ms());
  auto back = c->maintain("periodic");
  REQUIRE(back);
  INFO(back->status_json);
  CHECK((back->status_json.find(R"("action":"recreated")") != std::string::npos ||
         back->status_json.find(R"("action":"renewed")") != std::string::npos));
  CHECK(f.sandbox.channels(kOrg).back().expiry_ms > f.sandbox.now_ms());

  // Shutdown keeps the channel unless notifications.stop_on_shutdown says otherwise.
  auto kept = c->maintain("shutdown");
  REQUIRE(kept);
  CHECK(kept->next_in_ms == 0);
  CHECK_THAT(kept->status_json, Catch::Contains(R"("action":"kept")"));
  CHECK(f.sandbox.channels(kOrg).size() == 1);

  auto stopping = f.host.connect(f.settings(
      R"(,"objects":["lead","deal"],"notifications":{"channel_id":"1000000068001",)"
      R"("token":"tok-123","notify_url":"http://127.0.0.1:9/hooks/zoho","expiry_hours":24,)"
      R"("renew_before_hours":6,"stop_on_shutdown":true})"));
  REQUIRE(stopping->maintain("start"));
  auto stopped = stopping->maintain("shutdown");
  REQUIRE(stopped);
  CHECK(stopped->next_in_ms == 0);
  CHECK_THAT(stopped->status_json, Catch::Contains(R"("action":"stopped")"));
  CHECK(f.sandbox.channels(kOrg).empty());
}
