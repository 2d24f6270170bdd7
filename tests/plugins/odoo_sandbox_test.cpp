// odoo.so against the Odoo sandbox over HTTP, through the host's real HTTP client, on both
// protocols (JSON-RPC and JSON-2).
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
#include "sandbox/odoo.hpp"

using crmhost::plugins::PushInput;
using crmhost::plugins::PushRequest;

namespace {

const char kDb[] = "crm";
const char kKey[] = "key-1";

struct SandboxFixture {
  crmsandbox::OdooSandbox sandbox;
  crmhost::test::LoadedOdoo host{std::make_shared<crmhost::net::HttpClient>(quick_retries())};

  // The host still retries 429 and 5xx, but briefly: the fault tests answer every try with one.
  static crmhost::net::ClientOptions quick_retries() {
    crmhost::net::ClientOptions options;
    options.backoff_base = std::chrono::milliseconds(20);
    options.backoff_cap = std::chrono::milliseconds(100);
    return options;
  }

  SandboxFixture() {
    sandbox.add_user(kDb, {"admin", "admin-password", {kKey}});
    sandbox.start();
  }

  std::string settings(const std::string &protocol, const std::string &extra = "") const {
    return R"({"url":")" + sandbox.base_url() + R"(","database":"crm","login":"admin",)" +
           R"("api_key":")" + kKey + R"(","protocol":")" + protocol + "\"" + extra + "}";
  }

  // Polls until the plugin says the head is reached; returns every record in order.
  static std::vector<crmhost::plugins::Record> drain(crmhost::plugins::Connector &c,
                                                     const std::string &object,
                                                     std::optional<std::string> &cursor,
                                                     uint32_t limit, size_t *pages = nullptr) {
    std::vector<crmhost::plugins::Record> out;
    for (int guard = 0; guard < 1000; ++guard) {
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

  static std::set<std::string> upserted(const std::vector<crmhost::plugins::Record> &records) {
    std::set<std::string> ids;
    for (const auto &r : records)
      if (r.event == crmhost::plugins::EventKind::upsert) ids.insert(r.id);
    return ids;
  }
};

std::set<std::string> as_text(const std::vector<int64_t> &ids) {
  std::set<std::string> out;
  for (int64_t id : ids) out.insert(std::to_string(id));
  return out;
}

PushRequest push_request(const std::string &object, std::vector<PushInput> records,
                         const std::string &mode = "upsert") {
  PushRequest r;
  r.object = object;
  r.mode = mode;
  r.records = std::move(records);
  return r;
}

const char *const kProtocols[] = {"jsonrpc", "json2"};

// odoo.so's connector driven with raw push requests (the host's adapter does not send
// match_normalize yet).
struct RawOdoo : crmhost::testing::RawConnector {
  RawOdoo(SandboxFixture &f, const std::string &protocol, const std::string &extra = "")
      : RawConnector(std::filesystem::path(CRMHOST_PLUGIN_OUTPUT_DIR) / "odoo.so", "odoo",
                     f.host.services, f.settings(protocol, extra)) {}

  std::vector<crmhost::plugins::PushResult> results(const std::string &request) {
    const auto pushed = push(request);
    INFO(pushed.message);
    REQUIRE(pushed.status == CRM_OK);
    return pushed.results();
  }
};

std::string text_of(const crmsandbox::OdooValues &values, const char *field) {
  const auto it = values.find(field);
  return it != values.end() && std::holds_alternative<std::string>(it->second)
             ? std::get<std::string>(it->second)
             : std::string("<not text>");
}

}  // namespace

TEST_CASE("poll pages through every contact and company to the end on both protocols") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto seeded = f.sandbox.seed_partners(kDb, 120);  // every fifth a company
    auto c = f.host.connect(f.settings(protocol));
    std::optional<std::string> cursor;
    size_t pages = 0;
    const auto contacts = SandboxFixture::drain(*c, "contact", cursor, 25, &pages);
    CHECK(contacts.size() == 96);
    CHECK(SandboxFixture::upserted(contacts).size() == 96);
    CHECK(pages >= 4);
    REQUIRE(!contacts.empty());
    CHECK(contacts[0].modified_at);
    CHECK(contacts[0].data_json.find("\"email\":\"contact") != std::string::npos);
    CHECK(contacts[0].data_json.find("\"_first_name\"") != std::string::npos);
    std::optional<std::string> company_cursor;
    const auto companies = SandboxFixture::drain(*c, "company", company_cursor, 25);
    CHECK(SandboxFixture::upserted(companies).size() == 24);
    std::set<std::string> all = SandboxFixture::upserted(contacts);
    for (const auto &id : SandboxFixture::upserted(companies)) all.insert(id);
    CHECK(all == as_text(seeded));
  }
}

TEST_CASE("a full page reports how many records remain") {
  SandboxFixture f;
  f.sandbox.seed_leads(kDb, 30);
  auto c = f.host.connect(f.settings("jsonrpc"));
  auto first = c->poll({"deal", std::nullopt, 10});
  REQUIRE(first);
  CHECK(first->more);
  REQUIRE(first->remaining);
  CHECK(*first->remaining == 20);
  CHECK(first->records[0].data_json.find("\"stage_id\":[") != std::string::npos);
}

TEST_CASE("records sharing one write_date across pages are all read") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    std::vector<crmsandbox::OdooValues> tie;
    for (int i = 0; i < 57; ++i)
      tie.push_back({{"name", std::string("Tie ") + std::to_string(i)},
                     {"email", "tie" + std::to_string(i) + "@example.com"}});
    const auto seeded = f.sandbox.seed(kDb, "res.partner", tie);  // one transaction
    auto c = f.host.connect(f.settings(protocol));
    std::optional<std::string> cursor;
    const auto records = SandboxFixture::drain(*c, "contact", cursor, 10);
    CHECK(SandboxFixture::upserted(records) == as_text(seeded));
    CHECK(records.size() == 57);  // no page repeats the tie
  }
}

TEST_CASE("the lookback catches a transaction that commits late with an older write_date") {
  for (const bool with_lookback : {true, false}) {
    SandboxFixture f;
    auto c = f.host.connect(f.settings("jsonrpc", with_lookback ? "" : R"(,"lookback_seconds":0)"));
    auto tx = f.sandbox.begin_transaction(kDb, std::chrono::seconds(5));
    const auto late = tx.create("res.partner", {{"name", std::string("Late Comer")}});
    const auto early = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Early Bird")}});
    std::optional<std::string> cursor;
    const auto first = SandboxFixture::drain(*c, "contact", cursor, 100);
    CHECK(SandboxFixture::upserted(first) == std::set<std::string>{std::to_string(early)});
    tx.commit();
    const auto second = SandboxFixture::drain(*c, "contact", cursor, 100);
    CHECK(SandboxFixture::upserted(second).count(std::to_string(late)) == (with_lookback ? 1 : 0));
  }
}

TEST_CASE("a record read again by the lookback is the same event and a later change is new") {
  SandboxFixture f;
  auto c = f.host.connect(f.settings("jsonrpc"));
  const auto id = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Ann Lee")}});
  std::optional<std::string> cursor;
  const auto first = SandboxFixture::drain(*c, "contact", cursor, 100);
  const auto again = SandboxFixture::drain(*c, "contact", cursor, 100);
  REQUIRE(first.size() == 1);
  REQUIRE(again.size() == 1);  // re-read within the lookback
  CHECK(again[0].modified_at == first[0].modified_at);
  CHECK(again[0].data_json == first[0].data_json);  // same payload: the host dedupes it
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  f.sandbox.write(kDb, "res.partner", {id}, {{"city", std::string("Ghent")}});
  const auto changed = SandboxFixture::drain(*c, "contact", cursor, 100);
  REQUIRE(changed.size() == 1);
  CHECK(changed[0].modified_at != first[0].modified_at);
  CHECK(changed[0].data_json.find("Ghent") != std::string::npos);
}

TEST_CASE("archiving comes through as an update carrying active false") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto id = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Arch Ive")}});
    auto c = f.host.connect(f.settings(protocol));
    std::optional<std::string> cursor;
    SandboxFixture::drain(*c, "contact", cursor, 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    f.sandbox.write(kDb, "res.partner", {id}, {{"active", false}});
    const auto after = SandboxFixture::drain(*c, "contact", cursor, 100);
    bool archived = false;
    for (const auto &r : after)
      archived |= r.id == std::to_string(id) && r.event == crmhost::plugins::EventKind::upsert &&
                  r.data_json.find("\"active\":false") != std::string::npos;
    CHECK(archived);
  }
}

TEST_CASE("deletions are detected by id reconciliation") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto seeded = f.sandbox.seed_partners(kDb, 10);  // 8 contacts, 2 companies
    auto c = f.host.connect(f.settings(protocol, R"(,"reconcile_interval_seconds":1)"));
    std::optional<std::string> cursor;
    SandboxFixture::drain(*c, "contact", cursor, 100);  // the first head takes the snapshot
    // A contact created after the snapshot and deleted before the next one is caught too.
    const auto brief = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Brief One")}});
    SandboxFixture::drain(*c, "contact", cursor, 100);
    const int64_t contact = seeded[1];  // seeded[0] is a company
    f.sandbox.unlink(kDb, "res.partner", {contact, brief});
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    const auto after = SandboxFixture::drain(*c, "contact", cursor, 100);
    std::set<std::string> deleted;
    for (const auto &r : after)
      if (r.event == crmhost::plugins::EventKind::remove) deleted.insert(r.id);
    CHECK(deleted == std::set<std::string>{std::to_string(contact), std::to_string(brief)});
    // Reported once: the next reconciliation's snapshot no longer holds them.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    for (const auto &r : SandboxFixture::drain(*c, "contact", cursor, 100))
      CHECK(r.event == crmhost::plugins::EventKind::upsert);
  }
}

TEST_CASE("fetch reads records by id and reports deleted and other-kind ids as missing") {
  SandboxFixture f;
  const auto seeded = f.sandbox.seed_partners(kDb, 10);
  auto c = f.host.connect(f.settings("json2"));
  auto fetched =
      c->fetch("contact", {std::to_string(seeded[1]), std::to_string(seeded[0]), "999999"});
  REQUIRE(fetched);
  REQUIRE(fetched->records.size() == 1);
  CHECK(fetched->records[0].id == std::to_string(seeded[1]));
  CHECK(fetched->missing == std::vector<std::string>{std::to_string(seeded[0]), "999999"});
}

TEST_CASE("push creates then updates on the match key and writes many2one by name") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto company =
        f.sandbox.create(kDb, "res.partner", {{"name", std::string("Acme")}, {"is_company", true}});
    auto c = f.host.connect(f.settings(protocol));
    auto created = c->push(push_request(
        "contact", {{"r1", std::nullopt,
                     R"({"email":"ann@example.com","_first_name":"Ann","_last_name":"Lee",)"
                     R"("parent_id":"Acme","country_id":"BE"})"},
                    {"r2", std::nullopt, R"({"email":"bob@example.com","name":"Bob"})"}}));
    REQUIRE(created);
    REQUIRE(created->size() == 2);
    for (const auto &r : *created) {
      INFO(r.message);
      CHECK(r.ok);
      CHECK(r.created);
    }
    const auto ann = f.sandbox.record(kDb, "res.partner", std::stoll((*created)[0].id));
    REQUIRE(ann);
    CHECK(std::get<std::string>(ann->values.at("name")) == "Ann Lee");
    CHECK(std::get<int64_t>(ann->values.at("parent_id")) == company);
    CHECK(std::get<bool>(ann->values.at("is_company")) == false);
    CHECK(std::holds_alternative<int64_t>(ann->values.at("country_id")));

    auto updated = c->push(push_request(
        "contact", {{"r3", std::nullopt, R"({"email":"ann@example.com","city":"Ghent"})"}}));
    REQUIRE(updated);
    REQUIRE(updated->size() == 1);
    CHECK((*updated)[0].ok);
    CHECK_FALSE((*updated)[0].created);
    CHECK((*updated)[0].id == (*created)[0].id);
    CHECK(std::get<std::string>(f.sandbox.record(kDb, "res.partner", std::stoll((*created)[0].id))
                                    ->values.at("city")) == "Ghent");

    f.sandbox.seed_leads(kDb, 1);
    auto deal = c->push(push_request(
        "deal", {{"d1", std::nullopt, R"({"name":"Big","type":"opportunity","stage_id":"Won"})"},
                 {"d2", std::nullopt, R"({"name":"Odd","stage_id":"No Such Stage"})"}}));
    REQUIRE(deal);
    REQUIRE(deal->size() == 2);
    CHECK((*deal)[0].ok);
    CHECK_FALSE((*deal)[1].ok);
    CHECK((*deal)[1].code == "invalid_input");
    CHECK_FALSE((*deal)[1].retryable);
    CHECK((*deal)[1].message.find("No Such Stage") != std::string::npos);
  }
}

TEST_CASE("inputs sharing a new match key create one record, written last by the latest") {
  // A host batch can name one new record several times (a creation and its property changes).
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    auto c = f.host.connect(f.settings(protocol));
    auto result = c->push(push_request(
        "contact", {{"r1", std::nullopt, R"({"email":"Cy@example.com","name":"Cy"})"},
                    {"r2", std::nullopt, R"({"email":"dee@example.com","name":"Dee"})"},
                    {"r3", std::nullopt, R"({"email":"cy@example.com","name":"Cy Young"})"}}));
    REQUIRE(result);
    REQUIRE(result->size() == 3);
    for (const auto &r : *result) {
      INFO(r.message);
      CHECK(r.ok);
    }
    CHECK((*result)[0].created);
    CHECK_FALSE((*result)[2].created);
    CHECK((*result)[2].id == (*result)[0].id);
    CHECK(f.sandbox.records(kDb, "res.partner").size() == 2);
    const auto cy = f.sandbox.record(kDb, "res.partner", std::stoll((*result)[0].id));
    REQUIRE(cy);
    CHECK(std::get<std::string>(cy->values.at("name")) == "Cy Young");
  }
}

TEST_CASE("a ValidationError fails only its record and is permanent") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    auto c = f.host.connect(f.settings(protocol));
    // crm.lead requires a name: Odoo refuses the batch, the connector finds the bad record.
    auto result = c->push(push_request(
        "deal", {{"a", std::nullopt, R"({"name":"Fine","type":"lead"})"},
                 {"b", std::nullopt, R"({"type":"lead","expected_revenue":5})"},
                 {"c", std::nullopt, R"({"name":"Also fine","type":"opportunity"})"}}));
    REQUIRE(result);
    REQUIRE(result->size() == 3);
    CHECK((*result)[0].ok);
    CHECK_FALSE((*result)[1].ok);
    CHECK((*result)[1].code == "invalid_input");
    CHECK_FALSE((*result)[1].retryable);
    CHECK((*result)[2].ok);
    CHECK(f.sandbox.records(kDb, "crm.lead").size() == 2);
  }
}

TEST_CASE("an update of a deleted record is not found and permanent") {
  SandboxFixture f;
  const auto id = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Soon Gone")}});
  auto c = f.host.connect(f.settings("jsonrpc"));
  f.sandbox.unlink(kDb, "res.partner", {id});
  auto result = c->push(
      push_request("contact", {{"x", std::to_string(id), R"({"city":"Nowhere"})"}}, "update"));
  REQUIRE(result);
  REQUIRE(result->size() == 1);
  CHECK_FALSE((*result)[0].ok);
  CHECK((*result)[0].code == "not_found");
  CHECK_FALSE((*result)[0].retryable);
  auto gone =
      c->push(push_request("contact", {{"y", std::to_string(id), R"({"name":"x"})"}}, "delete"));
  REQUIRE(gone);
  CHECK((*gone)[0].ok);  // already gone is what a delete wants
}

TEST_CASE("server errors and rate limits are retryable") {
  for (const char *protocol : kProtocols) {
    for (const bool rate_limit : {true, false}) {
      SandboxFixture f;
      auto c = f.host.connect(f.settings(protocol));
      REQUIRE(c->check());
      crmsandbox::FaultConfig faults;
      (rate_limit ? faults.p429 : faults.p5xx) = 1.0;
      f.sandbox.set_faults(faults);
      auto page = c->poll({"contact", std::nullopt, 10});
      REQUIRE_FALSE(page);
      CHECK(page.error().retryable);
      CHECK(page.error().code == (rate_limit ? CRM_ERR_RATE_LIMITED : CRM_ERR_REMOTE));
      auto pushed = c->push(push_request(
          "contact", {{"r", std::nullopt, R"({"email":"x@example.com","name":"X"})"}}));
      REQUIRE_FALSE(pushed);  // nothing written: the whole call is retried
      CHECK(pushed.error().retryable);
    }
  }
}

TEST_CASE("bad credentials give a clear check error on both protocols") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    auto good = f.host.connect(f.settings(protocol));
    auto ok = good->check();
    REQUIRE(ok);
    CHECK(ok->ok);
    CHECK(ok->message.find("crm") != std::string::npos);
    const std::string bad = R"({"url":")" + f.sandbox.base_url() +
                            R"(","database":"crm","login":"admin","api_key":"wrong-key",)" +
                            R"("protocol":")" + protocol + "\"}";
    auto refused = f.host.connect(bad)->check();
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == CRM_ERR_UNAUTHORIZED);
    CHECK_FALSE(refused.error().retryable);
    CHECK(refused.error().message.find("api_key") != std::string::npos);
    CHECK(refused.error().message.find("wrong-key") == std::string::npos);
  }
}

TEST_CASE("an automation-rule delivery from the sandbox verifies and names the record") {
  SandboxFixture f;
  // Nothing listens there: the delivery is recorded with its exact headers and body.
  crmsandbox::OdooWebhookRule rule;
  rule.model = "res.partner";
  rule.url = "http://127.0.0.1:9/hooks/odoo";
  rule.header_name = "X-Odoo-Secret";
  rule.header_value = "s3cret-value-123";
  f.sandbox.add_webhook(rule);
  const auto id = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Hook Ed")}});
  REQUIRE(f.sandbox.wait_for_deliveries(1, std::chrono::seconds(5)));
  const auto sent = f.sandbox.deliveries().at(0);
  auto c = f.host.connect(f.settings(
      "jsonrpc",
      R"(,"webhook_secret_header":{"name":"X-Odoo-Secret","value":"s3cret-value-123"})"));
  crmhost::plugins::WebhookRequest request{"POST", "http://127.0.0.1:8080/hooks/odoo", sent.headers,
                                           sent.body, 1764000000000};
  auto result = c->webhook(request);
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  CHECK(result->events[0].object == "contact");  // is_company read from Odoo
  CHECK(result->events[0].id == std::to_string(id));
  CHECK_FALSE(result->events[0].data_json);

  for (auto &[name, value] : request.headers)
    if (name == "X-Odoo-Secret") value = "s3cret-value-124";
  auto refused = c->webhook(request);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("an answer cut short is a retryable transport failure") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    f.sandbox.seed_partners(kDb, 10);
    auto c = f.host.connect(f.settings(protocol));
    REQUIRE(c->check());
    crmsandbox::FaultConfig faults;
    faults.malformed = 1.0;
    f.sandbox.set_faults(faults);
    auto page = c->poll({"contact", std::nullopt, 10});
    REQUIRE_FALSE(page);
    CHECK(page.error().code == CRM_ERR_TRANSPORT);
    CHECK(page.error().retryable);
  }
}

TEST_CASE("match_normalize finds keys stored with other case or surrounding spaces") {
  // Ann@Example.com and "bob@example.com " (a trailing space) as people type them into Odoo.
  const auto partners = [](SandboxFixture &f) {
    return std::pair(
        f.sandbox.create(kDb, "res.partner",
                         {{"name", std::string("Ann")}, {"email", std::string("Ann@Example.com")}}),
        f.sandbox.create(
            kDb, "res.partner",
            {{"name", std::string("Bob")}, {"email", std::string("bob@example.com ")}}));
  };
  const std::string upsert = R"({"object":"contact","mode":"upsert","match_on":"email",)";
  const std::string ann_and_bob =
      R"("records":[{"ref":"a","data":{"email":"ann@example.com","name":"Ann","city":"Ghent"}},)"
      R"({"ref":"b","data":{"email":"bob@example.com","name":"Bob","city":"Oslo"}})";
  for (const char *protocol : kProtocols) {
    INFO(protocol);
    SandboxFixture f;
    const auto [ann, bob] = partners(f);
    RawOdoo raw(f, protocol);
    const auto r =
        raw.results(upsert + R"("match_normalize":["trim","lower"],)" + ann_and_bob +
                    R"(,{"ref":"c","data":{"email":"New@Example.com ","name":"New"}},)"
                    R"({"ref":"d","data":{"email":"new@example.com","name":"Again"}}]})");
    REQUIRE(r.size() == 4);
    for (const auto &one : r) {
      INFO(one.ref << ": " << one.message);
      CHECK(one.ok);
    }
    CHECK(r[0].id == std::to_string(ann));
    CHECK_FALSE(r[0].created);
    CHECK(r[1].id == std::to_string(bob));
    CHECK_FALSE(r[1].created);
    CHECK(r[2].created);  // the first input of a new key creates it, the later one writes to it
    CHECK_FALSE(r[3].created);
    CHECK(r[3].id == r[2].id);
    CHECK(f.sandbox.records(kDb, "res.partner").size() == 3);
    CHECK(text_of(f.sandbox.record(kDb, "res.partner", ann)->values, "city") == "Ghent");
    CHECK(text_of(f.sandbox.record(kDb, "res.partner", bob)->values, "city") == "Oslo");

    const auto unknown =
        raw.push(upsert + R"("match_normalize":["trim","fold"],)" + ann_and_bob + "]}");
    CHECK(unknown.status == CRM_ERR_INVALID_INPUT);
    CHECK(unknown.message.find("\"fold\"") != std::string::npos);

    // Without match_normalize the lookup stays exact (Odoo's `in`): neither stored variant is
    // found, so both inputs create partners, as before.
    SandboxFixture g;
    partners(g);
    RawOdoo plain_raw(g, protocol);
    const auto plain = plain_raw.results(upsert + ann_and_bob + "]}");
    REQUIRE(plain.size() == 2);
    CHECK(plain[0].ok);
    CHECK(plain[0].created);
    CHECK(plain[1].created);
    CHECK(g.sandbox.records(kDb, "res.partner").size() == 4);
  }
}

TEST_CASE("match mode answers the ids it finds and not_found, and writes nothing") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    // Made an hour ago: a write now would move write_date.
    f.sandbox.set_clock_offset(std::chrono::hours(-1));
    const auto ann =
        f.sandbox.create(kDb, "res.partner",
                         {{"name", std::string("Ann")}, {"email", std::string("ann@example.com")}});
    const auto gone = f.sandbox.create(kDb, "res.partner", {{"name", std::string("Gone")}});
    f.sandbox.unlink(kDb, "res.partner", {gone});
    f.sandbox.set_clock_offset(std::chrono::seconds(0));
    const auto before = f.sandbox.record(kDb, "res.partner", ann)->values;
    RawOdoo raw(f, protocol);
    const auto r = raw.results(
        R"({"object":"contact","mode":"match","match_on":"email","match_normalize":["trim","lower"],)"
        R"("records":[{"ref":"a","data":{"email":" ANN@example.com","name":"Changed"}},)"
        R"({"ref":"b","data":{"email":"nobody@example.com","name":"Nobody"}},)"
        R"({"ref":"c","id":")" +
        std::to_string(ann) + R"("},{"ref":"d","id":")" + std::to_string(gone) + R"("}]})");
    REQUIRE(r.size() == 4);
    CHECK(r[0].ok);
    CHECK(r[0].id == std::to_string(ann));
    CHECK_FALSE(r[0].created);
    CHECK_FALSE(r[1].ok);
    CHECK(r[1].code == "not_found");
    CHECK_FALSE(r[1].retryable);
    CHECK(r[2].ok);
    CHECK(r[2].id == std::to_string(ann));
    CHECK_FALSE(r[3].ok);
    CHECK(r[3].code == "not_found");
    const auto after = f.sandbox.record(kDb, "res.partner", ann)->values;
    CHECK(text_of(after, "write_date") == text_of(before, "write_date"));
    CHECK(text_of(after, "name") == "Ann");
    CHECK(f.sandbox.records(kDb, "res.partner", true).size() == 1);
  }
}

TEST_CASE("archive writes active false and a model without active answers unsupported") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto by_id = f.sandbox.create(kDb, "res.partner", {{"name", std::string("By Id")}});
    const auto by_key = f.sandbox.create(
        kDb, "res.partner",
        {{"name", std::string("By Key")}, {"email", std::string("Key@Example.com")}});
    RawOdoo raw(f, protocol);
    const auto r = raw.results(
        R"({"object":"contact","mode":"archive","match_on":"email","match_normalize":["lower"],)"
        R"("records":[{"ref":"a","id":")" +
        std::to_string(by_id) +
        R"("},{"ref":"b","data":{"email":"key@example.com"}},{"ref":"c","id":"999999"}]})");
    REQUIRE(r.size() == 3);
    for (const auto &one : r) {
      INFO(one.ref << ": " << one.message);
      CHECK(one.ok);  // c: already gone is done, as for delete
    }
    CHECK(r[1].id == std::to_string(by_key));
    for (const auto id : {by_id, by_key}) {
      const auto record = f.sandbox.record(kDb, "res.partner", id);
      REQUIRE(record);  // archived, not deleted
      CHECK(std::get<bool>(record->values.at("active")) == false);
    }
    CHECK(f.sandbox.count(kDb, "res.partner") == 0);
    CHECK(f.sandbox.records(kDb, "res.partner", true).size() == 2);

    // res.country has no active field.
    RawOdoo countries(f, protocol, R"(,"models":{"company":"res.country"})");
    const auto unsupported = countries.results(
        R"({"object":"company","mode":"archive","records":[{"ref":"x","id":"1"}]})");
    REQUIRE(unsupported.size() == 1);
    CHECK_FALSE(unsupported[0].ok);
    CHECK(unsupported[0].code == "unsupported");
    CHECK_FALSE(unsupported[0].retryable);
  }
}

TEST_CASE("an upsert or update naming a deleted id is not_found and creates nothing") {
  for (const char *protocol : kProtocols) {
    SandboxFixture f;
    const auto id = f.sandbox.create(
        kDb, "res.partner",
        {{"name", std::string("Gone")}, {"email", std::string("gone@example.com")}});
    const auto live = f.sandbox.create(
        kDb, "res.partner",
        {{"name", std::string("Live")}, {"email", std::string("live@example.com")}});
    f.sandbox.unlink(kDb, "res.partner", {id});
    RawOdoo raw(f, protocol);
    for (const char *mode : {"upsert", "update"}) {
      INFO(mode);
      // The match key names a live partner: the id alone decides.
      const auto r =
          raw.results(std::string(R"({"object":"contact","mode":")") + mode +
                      R"(","match_on":"email","records":[{"ref":"x","id":")" + std::to_string(id) +
                      R"(","data":{"email":"live@example.com","city":"Nowhere"}}]})");
      REQUIRE(r.size() == 1);
      CHECK_FALSE(r[0].ok);
      CHECK(r[0].code == "not_found");
      CHECK_FALSE(r[0].retryable);
    }
    CHECK(f.sandbox.records(kDb, "res.partner", true).size() == 1);
    CHECK(text_of(f.sandbox.record(kDb, "res.partner", live)->values, "city") == "<not text>");
  }
}

namespace {

// The sandbox behind a front that answers the calls a test picks a million levels deep.
struct DeepAnswerFixture {
  crmsandbox::OdooSandbox sandbox;
  crmhost::test::DeepAnswerFront front{
      [this](const crmhost::net::HttpRequest &r) { return sandbox.handle(r); }};
  crmhost::test::LoadedOdoo host{
      std::make_shared<crmhost::net::HttpClient>(SandboxFixture::quick_retries())};

  DeepAnswerFixture() {
    sandbox.add_user(kDb, {"admin", "admin-password", {kKey}});
    front.start();
  }

  std::string settings(const std::string &protocol) const {
    return R"({"url":"http://127.0.0.1:)" + std::to_string(front.port()) +
           R"(","database":"crm","login":"admin","api_key":")" + kKey + R"(","protocol":")" +
           protocol + "\"}";
  }
  // `call` is "model.method" (JSON-2's path, JSON-RPC's execute_kw) or "common.authenticate".
  void answer_deep(const std::string &call, int status) {
    const auto dot = call.rfind('.');
    const std::string model = call.substr(0, dot), method = call.substr(dot + 1);
    front.answer_deep([=](const crmhost::net::HttpRequest &r) {
      const bool picked =
          r.path == "/json/2/" + model + "/" + method ||
          (r.path == "/jsonrpc" && r.body.find('"' + method + '"') != std::string::npos &&
           (model == "common" || r.body.find('"' + model + '"') != std::string::npos));
      return picked ? status : 0;
    });
  }
  void answer_normally() { front.answer_normally(); }
};

}  // namespace

TEST_CASE("an Odoo answer nested a million levels deep is a clear error and no crash") {
  const std::string too_deep = "JSON nested deeper than 256 levels";
  for (const char *protocol : kProtocols) {
    INFO(protocol);
    DeepAnswerFixture f;
    f.sandbox.seed_partners(kDb, 3);
    auto c = f.host.connect(f.settings(protocol));
    REQUIRE(c->check());  // authenticated (JSON-RPC) before the answers turn hostile

    f.answer_deep("res.partner.search_read", 200);
    auto page = c->poll({"contact", std::nullopt, 10});
    REQUIRE_FALSE(page);
    INFO(page.error().describe());
    CHECK(page.error().code == CRM_ERR_REMOTE);
    CHECK_FALSE(page.error().retryable);  // the same request gets the same answer
    CHECK_THAT(page.error().message,
               Catch::Contains("res.partner.search_read") && Catch::Contains(too_deep));

    f.answer_deep("res.partner.search_read", 503);  // an error answer: its status decides
    page = c->poll({"contact", std::nullopt, 10});
    REQUIRE_FALSE(page);
    CHECK(page.error().code == CRM_ERR_REMOTE);
    CHECK(page.error().retryable);
    CHECK_THAT(page.error().message, Catch::Contains("HTTP 503"));

    f.answer_deep("res.partner.create", 200);  // one record's outcome, the batch goes on
    auto pushed = c->push(push_request(
        "contact", {{"r", std::nullopt, R"({"email":"deep@example.com","name":"Deep"})"}}));
    REQUIRE(pushed);
    REQUIRE(pushed->size() == 1);
    INFO((*pushed)[0].message);
    CHECK_FALSE((*pushed)[0].ok);
    CHECK((*pushed)[0].code == "remote");
    CHECK_FALSE((*pushed)[0].retryable);
    CHECK_THAT((*pushed)[0].message, Catch::Contains(too_deep));

    if (std::string(protocol) == "jsonrpc") {
      auto fresh = f.host.connect(f.settings(protocol), "fresh");
      f.answer_deep("common.authenticate", 200);
      auto refused = fresh->check();
      REQUIRE_FALSE(refused);
      INFO(refused.error().describe());
      CHECK(refused.error().code == CRM_ERR_REMOTE);
      CHECK_FALSE(refused.error().retryable);
      CHECK_THAT(refused.error().message,
                 Catch::Contains("common.authenticate") && Catch::Contains(too_deep));
    }

    // The plugin (and the process) carry on: the next answer that is fine is used.
    f.answer_normally();
    auto after = c->poll({"contact", std::nullopt, 10});
    INFO((after ? std::string() : after.error().describe()));
    REQUIRE(after);
    CHECK_FALSE(after->records.empty());
  }
}
