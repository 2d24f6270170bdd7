// hubspot.so against the HubSpot sandbox over HTTP, through the host's real HTTP client.
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "../support/raw_connector.hpp"
#include "deep_answer_front.hpp"
#include "net/http_client.hpp"
#include "plugin_support.hpp"
#include "sandbox/hubspot.hpp"

using crmhost::plugins::PollPage;
using crmhost::plugins::PushInput;
using crmhost::plugins::PushRequest;

namespace {

constexpr int64_t kPortal = 101;

struct SandboxFixture {
  crmsandbox::HubSpotSandbox sandbox;
  crmhost::test::LoadedHubSpot host{std::make_shared<crmhost::net::HttpClient>()};

  SandboxFixture() {
    crmsandbox::HubSpotRateLimits generous;
    generous.per_window = 1'000'000;
    generous.search_per_second = 1'000'000;
    generous.daily = 100'000'000;
    sandbox.set_rate_limits(generous);
    sandbox.add_token("pat-test", kPortal);
    sandbox.start();
  }

  std::string settings(const std::string &extra = "") const {
    return R"({"access_token":"pat-test","base_url":")" + sandbox.base_url() + "\"" + extra + "}";
  }

  // Polls until the plugin says the head is reached; returns every record id in order.
  static std::vector<std::string> drain(crmhost::plugins::Connector &c, const std::string &object,
                                        std::optional<std::string> &cursor, uint32_t limit,
                                        size_t *pages = nullptr) {
    std::vector<std::string> ids;
    for (int guard = 0; guard < 1000; ++guard) {
      auto page = c.poll({object, cursor, limit});
      if (!page) FAIL(page.error().describe());
      for (const auto &r : page->records) ids.push_back(r.id);
      cursor = page->next_cursor;
      if (pages) ++*pages;
      if (!page->more) return ids;
    }
    FAIL("poll never reached the head");
    return ids;
  }
};

// hubspot.so's connector driven with raw push requests (the host's adapter does not send
// match_normalize yet).
struct RawHubSpot : crmhost::testing::RawConnector {
  explicit RawHubSpot(SandboxFixture &f)
      : RawConnector(std::filesystem::path(CRMHOST_PLUGIN_OUTPUT_DIR) / "hubspot.so", "hubspot",
                     f.host.services, f.settings()) {}

  std::vector<crmhost::plugins::PushResult> results(const std::string &request) {
    const auto pushed = push(request);
    INFO(pushed.message);
    REQUIRE(pushed.status == CRM_OK);
    return pushed.results();
  }
};

}  // namespace

TEST_CASE("poll pages through every contact in modification order") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kPortal, "contacts", 250);
  auto c = f.host.connect(f.settings());
  auto first = c->poll({"contact", std::nullopt, 100});
  REQUIRE(first);
  CHECK(first->more);
  CHECK(first->records.size() == 100);
  REQUIRE(first->remaining);
  CHECK(*first->remaining == 150);
  CHECK(first->records[0].modified_at);
  CHECK(first->records[0].data_json.find("\"email\":\"contact") != std::string::npos);
  std::optional<std::string> cursor = first->next_cursor;
  auto rest = SandboxFixture::drain(*c, "contact", cursor, 100);
  std::set<std::string> all(rest.begin(), rest.end());
  for (const auto &r : first->records) all.insert(r.id);
  CHECK(all == std::set<std::string>(seeded.begin(), seeded.end()));
}

TEST_CASE("poll reads past 10000 search results by re-anchoring the filter") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kPortal, "contacts", 10'250);
  auto c = f.host.connect(f.settings(R"(,"page_size":200)"));
  std::optional<std::string> cursor;
  const auto ids = SandboxFixture::drain(*c, "contact", cursor, 1000);
  const std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct.size() == 10'250);
  CHECK(distinct == std::set<std::string>(seeded.begin(), seeded.end()));
  CHECK(f.sandbox.stats().requests < 80);
}

TEST_CASE("records sharing one modification millisecond across pages are all read") {
  SandboxFixture f;
  const int64_t when = 1'700'000'000'000;
  std::vector<crmsandbox::HubSpotSeed> seeds;
  for (int i = 0; i < 250; ++i)
    seeds.push_back({{{"email", "tie" + std::to_string(i) + "@example.com"}}, when, when});
  seeds.push_back({{{"email", "later@example.com"}}, when + 5, when + 5});
  const auto seeded = f.sandbox.seed(kPortal, "contacts", seeds);
  auto c = f.host.connect(f.settings());
  std::optional<std::string> cursor;
  const auto ids = SandboxFixture::drain(*c, "contact", cursor, 60);
  const std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct == std::set<std::string>(seeded.begin(), seeded.end()));
  CHECK(ids.size() < 260);  // no page repeats the group
}

TEST_CASE("the lookback catches a record that reached search late") {
  for (const bool with_lookback : {true, false}) {
    SandboxFixture f;
    auto c = f.host.connect(f.settings(with_lookback ? "" : R"(,"lookback_seconds":0)"));
    f.sandbox.set_indexing_delay(std::chrono::milliseconds(1500));
    const std::string late =
        f.sandbox.create_record(kPortal, "contacts", {{"email", "late@example.com"}});
    f.sandbox.set_indexing_delay(std::chrono::milliseconds(0));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::string early =
        f.sandbox.create_record(kPortal, "contacts", {{"email", "early@example.com"}});
    std::optional<std::string> cursor;
    auto first = SandboxFixture::drain(*c, "contact", cursor, 100);
    CHECK(first == std::vector<std::string>{early});
    std::this_thread::sleep_for(std::chrono::milliseconds(1700));
    auto second = SandboxFixture::drain(*c, "contact", cursor, 100);
    const bool caught = std::find(second.begin(), second.end(), late) != second.end();
    CHECK(caught == with_lookback);
  }
}

TEST_CASE("fetch reads records by id in batches and reports the missing ones") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_generated(kPortal, "companies", 150);
  auto c = f.host.connect(f.settings());
  std::vector<std::string> ids(seeded.begin(), seeded.end());
  ids.push_back("999999999");
  auto fetched = c->fetch("company", ids);
  REQUIRE(fetched);
  CHECK(fetched->records.size() == 150);
  CHECK(fetched->missing == std::vector<std::string>{"999999999"});
  CHECK(fetched->records[0].data_json.find("\"domain\"") != std::string::npos);
}

TEST_CASE("batch upsert maps a 207 partial failure back to each record") {
  SandboxFixture f;
  const auto existing = f.sandbox.seed(kPortal, "contacts", {{{{"email", "old@example.com"}}}});
  auto c = f.host.connect(f.settings());
  PushRequest request;
  request.object = "contact";
  request.mode = "upsert";
  request.match_on = "email";
  request.records = {
      {"new", std::nullopt, R"({"email":"new@example.com","firstname":"Ann"})"},
      {"old", std::nullopt, R"({"email":"OLD@example.com","firstname":"Bob"})"},
      {"bad", std::nullopt, R"({"email":"not-an-email","firstname":"Cy"})"},
      {"by-id", existing[0], R"({"lastname":"Byid"})"},
      {"gone", std::string("987654321"), R"({"lastname":"Nobody"})"},
  };
  auto pushed = c->push(request);
  REQUIRE(pushed);
  const auto &r = *pushed;
  REQUIRE(r.size() == 5);
  CHECK(r[0].ref == "new");
  CHECK(r[0].ok);
  CHECK(r[0].created);
  CHECK_FALSE(r[0].id.empty());
  CHECK(r[1].ok);
  CHECK_FALSE(r[1].created);
  CHECK(r[1].id == existing[0]);
  CHECK_FALSE(r[2].ok);
  CHECK(r[2].code == "invalid_input");
  CHECK_FALSE(r[2].retryable);
  CHECK(r[3].ok);
  CHECK(r[3].id == existing[0]);
  CHECK_FALSE(r[4].ok);
  CHECK(r[4].code == "not_found");
  CHECK_FALSE(r[4].retryable);
  CHECK(f.sandbox.record(kPortal, "contacts", existing[0])->properties.at("lastname") == "Byid");
  CHECK(f.sandbox.count(kPortal, "contacts") == 2);
}

TEST_CASE("batch create keeps each record's outcome apart") {
  SandboxFixture f;
  f.sandbox.seed(kPortal, "contacts", {{{{"email", "taken@example.com"}}}});
  auto c = f.host.connect(f.settings());
  PushRequest request;
  request.object = "contact";
  request.mode = "create";
  request.records = {
      {"a", std::nullopt, R"({"email":"taken@example.com"})"},
      {"b", std::nullopt, R"({"email":"fresh@example.com","tags":["x","y"]})"},
      {"c", std::nullopt, R"({"email":"fresh2@example.com","address":{"city":"Oslo"}})"},
  };
  auto pushed = c->push(request);
  REQUIRE(pushed);
  REQUIRE(pushed->size() == 3);
  CHECK_FALSE((*pushed)[0].ok);
  CHECK((*pushed)[0].code == "conflict");
  CHECK((*pushed)[1].ok);
  CHECK((*pushed)[1].created);
  CHECK(f.sandbox.record(kPortal, "contacts", (*pushed)[1].id)->properties.at("email") ==
        "fresh@example.com");
  CHECK_FALSE((*pushed)[2].ok);
  CHECK((*pushed)[2].code == "invalid_input");
}

TEST_CASE("companies upsert on domain by finding the existing record first") {
  SandboxFixture f;
  const auto existing =
      f.sandbox.seed(kPortal, "companies", {{{{"name", "Acme"}, {"domain", "acme.example"}}}});
  auto c = f.host.connect(f.settings());
  PushRequest request;
  request.object = "company";
  request.match_on = "domain";
  request.records = {{"1", std::nullopt, R"({"name":"Acme Ltd","domain":"acme.example"})"},
                     {"2", std::nullopt, R"({"name":"Initech","domain":"initech.example"})"}};
  auto pushed = c->push(request);
  REQUIRE(pushed);
  CHECK((*pushed)[0].ok);
  CHECK((*pushed)[0].id == existing[0]);
  CHECK_FALSE((*pushed)[0].created);
  CHECK((*pushed)[1].ok);
  CHECK((*pushed)[1].created);
  CHECK(f.sandbox.count(kPortal, "companies") == 2);
  CHECK(f.sandbox.record(kPortal, "companies", existing[0])->properties.at("name") == "Acme Ltd");
}

TEST_CASE("push delete archives by id and takes an already gone record as done") {
  SandboxFixture f;
  const auto ids = f.sandbox.seed_generated(kPortal, "deals", 1);
  auto c = f.host.connect(f.settings());
  PushRequest request;
  request.object = "deal";
  request.mode = "delete";
  request.records = {{"1", ids[0], "{}"}, {"2", std::string("424242"), "{}"}};
  auto pushed = c->push(request);
  REQUIRE(pushed);
  CHECK((*pushed)[0].ok);
  CHECK((*pushed)[1].ok);
  CHECK(f.sandbox.count(kPortal, "deals") == 0);
}

TEST_CASE("OAuth refreshes before the first call and again on a 401 and a restart reuses it") {
  SandboxFixture f;
  f.sandbox.add_oauth_client("client-1", "client-secret", "refresh-1", kPortal);
  const std::string oauth = R"({"auth":{"client_id":"client-1","client_secret":"client-secret",)"
                            R"("refresh_token":"refresh-1"},"base_url":")" +
                            f.sandbox.base_url() + "\"}";
  {
    auto c = f.host.connect(oauth);
    REQUIRE(c->check());
    CHECK(f.sandbox.issued_access_tokens().size() == 1);
    f.sandbox.expire_oauth_tokens();
    auto after = c->check();
    REQUIRE(after);
    CHECK(f.sandbox.issued_access_tokens().size() == 2);
  }
  // The same connection again (a restart): the kept token is used, no refresh.
  auto again = f.host.connect(oauth);
  REQUIRE(again->check());
  CHECK(f.sandbox.issued_access_tokens().size() == 2);
}

TEST_CASE("check names refused credentials as unauthorized") {
  SandboxFixture f;
  auto c = f.host.connect(R"({"access_token":"wrong","base_url":")" + f.sandbox.base_url() + "\"}");
  auto checked = c->check();
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == CRM_ERR_UNAUTHORIZED);
  CHECK(checked.error().message.find("wrong") == std::string::npos);

  f.sandbox.add_oauth_client("client-1", "client-secret", "refresh-1", kPortal);
  auto bad = f.host.connect(
      R"({"auth":{"client_id":"client-1","client_secret":"nope","refresh_token":"refresh-1"},)"
      R"("base_url":")" +
      f.sandbox.base_url() + "\"}");
  CHECK(bad->check().error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("numbers are written as HubSpot's text, integral ones without a fraction") {
  // A "number" transform turns "4200" into 4200.0; written as a JSON number it came back as
  // "4200.0", and the echo of the deal was taken for a change and written back once.
  SandboxFixture f;
  auto c = f.host.connect(f.settings());
  PushRequest request;
  request.object = "deal";
  request.mode = "create";
  request.records = {{"d", std::nullopt, R"({"dealname":"Big","amount":4200.0})"},
                     {"e", std::nullopt, R"({"dealname":"Small","amount":99.5})"}};
  auto pushed = c->push(request);
  REQUIRE(pushed);
  REQUIRE(pushed->size() == 2);
  REQUIRE((*pushed)[0].ok);
  REQUIRE((*pushed)[1].ok);
  const auto big = f.sandbox.record(kPortal, "deals", (*pushed)[0].id);
  const auto small = f.sandbox.record(kPortal, "deals", (*pushed)[1].id);
  REQUIRE(big);
  REQUIRE(small);
  CHECK(big->properties.at("amount") == "4200");
  CHECK(small->properties.at("amount") == "99.5");
}

TEST_CASE("match_normalize sends normalised keys to the upsert and to search") {
  SandboxFixture f;
  const auto ann = f.sandbox.seed(kPortal, "contacts", {{{{"email", "ann@example.com"}}}});
  const auto acme = f.sandbox.seed(kPortal, "companies", {{{{"name", "Acme Corp"}}}});
  RawHubSpot raw(f);
  const auto contacts = raw.results(
      R"({"object":"contact","mode":"upsert","match_on":"email","match_normalize":["trim","lower"],)"
      R"("records":[{"ref":"a","data":{"email":"Ann@Example.com ","firstname":"Ann"}},)"
      R"({"ref":"b","data":{"email":"New@Example.com","firstname":"New"}},)"
      R"({"ref":"c","data":{"email":" new@example.com","lastname":"Again"}}]})");
  REQUIRE(contacts.size() == 3);
  for (const auto &one : contacts) {
    INFO(one.ref << ": " << one.message);
    CHECK(one.ok);
  }
  CHECK(contacts[0].id == ann[0]);
  CHECK_FALSE(contacts[0].created);
  CHECK(contacts[1].created);  // the first input of a new key creates it, the later one writes
  CHECK(contacts[2].id == contacts[1].id);
  CHECK_FALSE(contacts[2].created);
  CHECK(f.sandbox.count(kPortal, "contacts") == 2);
  CHECK(f.sandbox.record(kPortal, "contacts", ann[0])->properties.at("firstname") == "Ann");

  // Companies are looked up by search: IN with the normalised (lower-case) value finds "Acme Corp".
  const auto companies = raw.results(
      R"({"object":"company","mode":"upsert","match_on":"name","match_normalize":["trim","lower"],)"
      R"("records":[{"ref":"a","data":{"name":" ACME corp","domain":"acme.example"}}]})");
  REQUIRE(companies.size() == 1);
  CHECK(companies[0].ok);
  CHECK(companies[0].id == acme[0]);
  CHECK_FALSE(companies[0].created);
  CHECK(f.sandbox.count(kPortal, "companies") == 1);
  CHECK(f.sandbox.record(kPortal, "companies", acme[0])->properties.at("name") == " ACME corp");

  // Without it the key is compared case aside but spaces kept: " acme corp" matches nothing and
  // a company is created.
  const auto plain = raw.results(R"({"object":"company","mode":"upsert","match_on":"name",)"
                                 R"("records":[{"ref":"a","data":{"name":" acme CORP "}}]})");
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].ok);
  CHECK(plain[0].created);
  CHECK(f.sandbox.count(kPortal, "companies") == 2);

  const auto unknown =
      raw.push(R"({"object":"contact","mode":"upsert","match_normalize":["upper"],"records":[]})");
  CHECK(unknown.status == CRM_ERR_INVALID_INPUT);
  CHECK(unknown.message.find("\"upper\"") != std::string::npos);
}

TEST_CASE("match mode answers the ids it finds and not_found, and writes nothing") {
  SandboxFixture f;
  crmsandbox::HubSpotSeed seed;
  seed.properties = {{"email", "ann@example.com"}, {"firstname", "Ann"}};
  seed.created_ms = seed.updated_ms = 1'700'000'000'000;
  const auto ann = f.sandbox.seed(kPortal, "contacts", {seed});
  const auto gone = f.sandbox.seed_generated(kPortal, "contacts", 1);
  f.sandbox.archive_record(kPortal, "contacts", gone[0]);
  RawHubSpot raw(f);
  const auto r = raw.results(
      R"({"object":"contact","mode":"match","match_on":"email","match_normalize":["trim","lower"],)"
      R"("records":[{"ref":"a","data":{"email":" ANN@example.com","firstname":"Changed"}},)"
      R"({"ref":"b","data":{"email":"nobody@example.com","firstname":"Nobody"}},)"
      R"({"ref":"c","id":")" +
      ann[0] + R"("},{"ref":"d","id":")" + gone[0] + R"("}]})");
  REQUIRE(r.size() == 4);
  CHECK(r[0].ok);
  CHECK(r[0].id == ann[0]);
  CHECK_FALSE(r[0].created);
  CHECK_FALSE(r[1].ok);
  CHECK(r[1].code == "not_found");
  CHECK_FALSE(r[1].retryable);
  CHECK(r[2].ok);
  CHECK(r[2].id == ann[0]);
  CHECK_FALSE(r[3].ok);  // archived: HubSpot's deleted
  CHECK(r[3].code == "not_found");
  const auto after = f.sandbox.record(kPortal, "contacts", ann[0]);
  CHECK(after->properties.at("firstname") == "Ann");
  CHECK(after->updated_ms == seed.updated_ms);
  CHECK(f.sandbox.count(kPortal, "contacts") == 1);
}

TEST_CASE("archive is HubSpot's delete, by id or by a normalised key") {
  SandboxFixture f;
  const auto deal = f.sandbox.seed_generated(kPortal, "deals", 1);
  const auto contact = f.sandbox.seed(kPortal, "contacts", {{{{"email", "key@example.com"}}}});
  RawHubSpot raw(f);
  const auto deals =
      raw.results(R"({"object":"deal","mode":"archive","records":[{"ref":"a","id":")" + deal[0] +
                  R"("},{"ref":"b","id":"424242"}]})");
  REQUIRE(deals.size() == 2);
  CHECK(deals[0].ok);
  CHECK(deals[1].ok);  // already gone is done, as for delete
  CHECK(f.sandbox.record(kPortal, "deals", deal[0])->archived);
  const auto contacts = raw.results(
      R"({"object":"contact","mode":"archive","match_on":"email","match_normalize":["trim","lower"],)"
      R"("records":[{"ref":"a","data":{"email":"KEY@example.com "}}]})");
  REQUIRE(contacts.size() == 1);
  CHECK(contacts[0].ok);
  CHECK(contacts[0].id == contact[0]);
  CHECK(f.sandbox.record(kPortal, "contacts", contact[0])->archived);
  CHECK(f.sandbox.count(kPortal, "contacts") == 0);
}

TEST_CASE("an update or upsert naming a missing id is not_found while the batch goes on") {
  SandboxFixture f;
  const auto live = f.sandbox.seed(
      kPortal, "contacts", {{{{"email", "live@example.com"}}}, {{{"email", "other@example.com"}}}});
  RawHubSpot raw(f);
  for (const char *mode : {"update", "upsert"}) {
    INFO(mode);
    // The missing id's match key names a live contact: the id alone decides.
    const auto r = raw.results(
        std::string(R"({"object":"contact","mode":")") + mode +
        R"(","match_on":"email","records":[{"ref":"x","id":"987654321",)"
        R"("data":{"email":"live@example.com","lastname":"Nobody"}},{"ref":"y","id":")" +
        live[1] + R"(","data":{"lastname":")" + mode + R"("}}]})");
    REQUIRE(r.size() == 2);
    CHECK_FALSE(r[0].ok);
    CHECK(r[0].code == "not_found");
    CHECK_FALSE(r[0].retryable);
    CHECK(r[1].ok);
    CHECK(f.sandbox.record(kPortal, "contacts", live[1])->properties.at("lastname") == mode);
  }
  CHECK(f.sandbox.count(kPortal, "contacts") == 2);
  CHECK(f.sandbox.record(kPortal, "contacts", live[0])->properties.count("lastname") == 0);
}

TEST_CASE("a match-key search reads past HubSpot's 200 results a page") {
  SandboxFixture f;
  // 200 companies share one name, so the one holding the other value is the 201st result.
  const std::vector<crmsandbox::HubSpotSeed> twins(200, {{{"name", "Twin"}}, 0, 0});
  const auto twin_ids = f.sandbox.seed(kPortal, "companies", twins);
  const auto last = f.sandbox.seed(kPortal, "companies", {{{{"name", "Last"}}}});
  RawHubSpot raw(f);
  const auto r =
      raw.results(R"({"object":"company","mode":"match","match_on":"name","records":[)"
                  R"({"ref":"a","data":{"name":"twin"}},{"ref":"b","data":{"name":"Last"}}]})");
  REQUIRE(r.size() == 2);
  CHECK(r[0].ok);
  CHECK(r[0].id == twin_ids.front());  // the oldest wins
  CHECK(r[1].ok);
  CHECK(r[1].id == last[0]);
}

namespace {

// The sandbox behind a front that answers the requests a test picks a million levels deep.
struct DeepAnswerFixture {
  crmsandbox::HubSpotSandbox sandbox;
  crmhost::test::DeepAnswerFront front{
      [this](const crmhost::net::HttpRequest &r) { return sandbox.handle(r); }};
  crmhost::test::LoadedHubSpot host{std::make_shared<crmhost::net::HttpClient>(quick_retries())};

  static crmhost::net::ClientOptions quick_retries() {
    crmhost::net::ClientOptions options;
    options.backoff_base = std::chrono::milliseconds(10);
    options.backoff_cap = std::chrono::milliseconds(50);
    return options;
  }

  DeepAnswerFixture() {
    crmsandbox::HubSpotRateLimits generous;
    generous.per_window = 1'000'000;
    generous.search_per_second = 1'000'000;
    generous.daily = 100'000'000;
    sandbox.set_rate_limits(generous);
    sandbox.add_token("pat-test", kPortal);
    sandbox.add_oauth_client("client-1", "client-secret", "refresh-1", kPortal);
    front.start();
  }

  std::string base_url() const { return front.base_url(); }
  std::string settings() const {
    return R"({"access_token":"pat-test","base_url":")" + base_url() + "\"}";
  }
  void answer_deep(const std::string &method, const std::string &path, int status) {
    front.answer_deep([=](const crmhost::net::HttpRequest &r) {
      return r.method == method && r.path == path ? status : 0;
    });
  }
  void answer_normally() { front.answer_normally(); }
};

}  // namespace

TEST_CASE("a provider answer nested a million levels deep is a clear error and no crash") {
  DeepAnswerFixture f;
  const auto seeded = f.sandbox.seed_generated(kPortal, "contacts", 1);
  auto c = f.host.connect(f.settings());
  const std::string too_deep = "nested deeper than 256 levels";

  SECTION("a search answer (poll)") {
    f.answer_deep("POST", "/crm/v3/objects/contacts/search", 200);
    auto page = c->poll({"contact", std::nullopt, 10});
    REQUIRE_FALSE(page);
    INFO(page.error().describe());
    CHECK(page.error().code == CRM_ERR_REMOTE);
    CHECK_FALSE(page.error().retryable);  // the same request gets the same answer
    CHECK_THAT(page.error().message, Catch::Contains("POST /crm/v3/objects/contacts/search") &&
                                         Catch::Contains(too_deep));
  }
  SECTION("a batch read answer (fetch)") {
    f.answer_deep("POST", "/crm/v3/objects/contacts/batch/read", 200);
    auto fetched = c->fetch("contact", {seeded[0]});
    REQUIRE_FALSE(fetched);
    INFO(fetched.error().describe());
    CHECK(fetched.error().code == CRM_ERR_REMOTE);
    CHECK_FALSE(fetched.error().retryable);
    CHECK_THAT(
        fetched.error().message,
        Catch::Contains("POST /crm/v3/objects/contacts/batch/read") && Catch::Contains(too_deep));
  }
  SECTION("a batch upsert answer (push): each record's error says so") {
    f.answer_deep("POST", "/crm/v3/objects/contacts/batch/upsert", 200);
    PushRequest request;
    request.object = "contact";
    request.mode = "upsert";
    request.records = {{"r1", std::nullopt, R"({"email":"deep@example.com"})"}};
    auto pushed = c->push(request);
    REQUIRE(pushed);
    REQUIRE(pushed->size() == 1);
    const auto &r = (*pushed)[0];
    INFO(r.message);
    CHECK_FALSE(r.ok);
    CHECK(r.code == "remote");
    CHECK_FALSE(r.retryable);
    CHECK_THAT(r.message, Catch::Contains("POST /crm/v3/objects/contacts/batch/upsert") &&
                              Catch::Contains(too_deep));
  }
  SECTION("an error answer (check, 500) loses only its detail") {
    f.answer_deep("GET", "/crm/v3/objects/companies", 500);  // the first object listed
    auto checked = c->check();
    REQUIRE_FALSE(checked);
    INFO(checked.error().describe());
    CHECK(checked.error().code == CRM_ERR_REMOTE);
    CHECK(checked.error().retryable);
    CHECK_THAT(checked.error().message, Catch::Contains("check: HubSpot answered 500"));
  }
  SECTION("a delete's error answer (400)") {
    f.answer_deep("DELETE", "/crm/v3/objects/contacts/" + seeded[0], 400);
    PushRequest request;
    request.object = "contact";
    request.mode = "delete";
    request.records = {{"r1", seeded[0], "{}"}};
    auto pushed = c->push(request);
    REQUIRE_FALSE(pushed);
    INFO(pushed.error().describe());
    CHECK(pushed.error().code == CRM_ERR_REMOTE);
    CHECK_THAT(pushed.error().message, Catch::Contains("HubSpot answered 400"));
  }
  SECTION("an OAuth token answer") {
    c = f.host.connect(R"({"auth":{"client_id":"client-1","client_secret":"client-secret",)"
                       R"("refresh_token":"refresh-1"},"base_url":")" +
                       f.base_url() + "\"}");
    f.answer_deep("POST", "/oauth/v1/token", 200);
    auto checked = c->check();
    REQUIRE_FALSE(checked);
    INFO(checked.error().describe());
    CHECK(checked.error().code == CRM_ERR_REMOTE);
    CHECK_FALSE(checked.error().retryable);
    CHECK_THAT(checked.error().message,
               Catch::Contains("OAuth token refresh") && Catch::Contains(too_deep));
  }
  // The plugin (and the process) carry on: the next answer that is fine is used.
  f.answer_normally();
  auto after = c->check();
  INFO((after ? std::string() : after.error().describe()));
  CHECK(after);
}
