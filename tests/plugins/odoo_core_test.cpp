// The Odoo connector's pure parts (times, cursor, id sets, error classes) called directly, and
// its webhook and settings through the loaded odoo.so.
#include <catch2/catch.hpp>

#include "common.hpp"
#include "crmhost/plugin.hpp"
#include "plugin_support.hpp"

namespace od = crmhost::odoo;
using crmhost::plugins::WebhookRequest;

namespace {

const std::string kSecret = "s3cret-value-123";

std::string settings(const std::string &extra = "") {
  return R"({"url":"http://127.0.0.1:9","database":"crm","login":"admin","api_key":"key-1",)"
         R"("webhook_secret_header":{"name":"X-Odoo-Secret","value":")" +
         kSecret + "\"}" + extra + "}";
}

WebhookRequest delivery(const std::string &body, const std::string &secret = kSecret) {
  return {"POST",
          "http://127.0.0.1:8080/hooks/odoo",
          {{"Content-Type", "application/json"}, {"x-odoo-secret", secret}},
          body,
          1764000000123};
}

}  // namespace

TEST_CASE("Odoo times parse to Unix seconds and format back") {
  const auto t = od::parse_odoo_time("2026-01-31 23:59:58");
  REQUIRE(t);
  CHECK(od::format_odoo_time(*t) == "2026-01-31 23:59:58");
  CHECK(od::format_iso(*t) == "2026-01-31T23:59:58Z");
  CHECK(od::parse_odoo_time("2026-01-31T23:59:58Z") == t);
  CHECK(od::parse_odoo_time("2026-01-31T23:59:58.250Z") == t);
  CHECK_FALSE(od::parse_odoo_time("2026-01-31 23:59:58+02:00"));
  CHECK_FALSE(od::parse_odoo_time("yesterday"));
  CHECK(od::format_odoo_time(0) == "1970-01-01 00:00:00");
}

TEST_CASE("the cursor round-trips its position head flag and snapshot tokens") {
  od::Cursor c;
  c.started = true;
  c.write_s = 1769903998;
  c.id = 42;
  c.head = true;
  c.token = "00ff";
  c.previous_token = "abcd";
  c.reconciled_ms = 1769903998123;
  const od::Cursor back = od::decode_cursor(od::encode_cursor(c));
  CHECK(back.started);
  CHECK(back.write_s == c.write_s);
  CHECK(back.id == 42);
  CHECK(back.head);
  CHECK(back.token == "00ff");
  CHECK(back.previous_token == "abcd");
  CHECK(back.reconciled_ms == c.reconciled_ms);
  CHECK_FALSE(od::decode_cursor(od::encode_cursor(od::Cursor{})).started);
}

TEST_CASE("a hand-written time is a cursor and garbage is refused") {
  const od::Cursor c = od::decode_cursor("2026-01-31 00:00:00");
  CHECK(c.started);
  CHECK(c.id == 0);
  CHECK(od::format_odoo_time(c.write_s) == "2026-01-31 00:00:00");
  CHECK_THROWS_AS(od::decode_cursor("v1:12:3"), crmhost::sdk::Error);
  CHECK_THROWS_AS(od::decode_cursor("o1:x:1:0:::0"), crmhost::sdk::Error);
}

TEST_CASE("id sets encode runs compactly and decode exactly") {
  std::vector<int64_t> ids;
  for (int64_t i = 1; i <= 10000; ++i) ids.push_back(i);
  for (int64_t i = 20000; i < 30000; i += 5) ids.push_back(i);
  ids.push_back(9'000'000'000);
  const std::string bytes = od::encode_ids(ids);
  CHECK(bytes.size() < 6000);
  CHECK(od::decode_ids(bytes) == ids);
  CHECK(od::decode_ids(od::encode_ids({})).empty());
  CHECK_THROWS_AS(od::decode_ids(std::string(1, '\x80')), crmhost::sdk::Error);
}

TEST_CASE("Odoo exceptions map to permanent and transport faults to retryable") {
  auto c = [](const std::string &name, int status) {
    return od::classify_fault({name, "", status});
  };
  CHECK(c("odoo.exceptions.ValidationError", 200).code == "invalid_input");
  CHECK_FALSE(c("odoo.exceptions.ValidationError", 200).retryable);
  CHECK(c("odoo.exceptions.MissingError", 200).code == "not_found");
  CHECK_FALSE(c("odoo.exceptions.AccessError", 403).retryable);
  CHECK(c("odoo.exceptions.AccessDenied", 200).status == CRM_ERR_UNAUTHORIZED);
  CHECK(c("odoo.exceptions.UserError", 422).code == "invalid_input");
  CHECK(c("", 503).retryable);
  CHECK(c("", 502).status == CRM_ERR_REMOTE);
  CHECK(c("", 429).status == CRM_ERR_RATE_LIMITED);
  CHECK(c("", 429).retryable);
  CHECK(c("", 0).status == CRM_ERR_TRANSPORT);
  CHECK(c("psycopg2.errors.SerializationFailure", 200).retryable);
}

TEST_CASE("the secret comparison takes only the exact value") {
  CHECK(od::secret_matches("abc-123", "abc-123"));
  CHECK_FALSE(od::secret_matches("abc-124", "abc-123"));
  CHECK_FALSE(od::secret_matches("abc-1234", "abc-123"));
  CHECK_FALSE(od::secret_matches("", ""));
}

TEST_CASE("a delivery with the right secret names the record to fetch") {
  crmhost::test::LoadedOdoo host;
  auto c = host.connect(settings());
  auto result = c->webhook(delivery(
      R"j({"_model":"crm.lead","_id":17,"_action":"Send Webhook Notification(#3)","name":"X"})j"));
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  const auto &e = result->events[0];
  CHECK(e.object == "deal");
  CHECK(e.id == "17");
  CHECK(e.event == crmhost::plugins::EventKind::upsert);
  CHECK_FALSE(e.data_json);  // the host fetches the record
  CHECK(e.occurred_at == "2025-11-24T16:00:00.123Z");
  REQUIRE(result->reply);
  CHECK(result->reply->status == 200);
}

TEST_CASE("a partner delivery carrying is_company goes to its object without a lookup") {
  crmhost::test::LoadedOdoo host;
  auto c = host.connect(settings());
  auto company = c->webhook(delivery(
      R"({"_model":"res.partner","_id":"5","is_company":true,"write_date":"2026-01-31 10:00:00"})"));
  REQUIRE(company);
  REQUIRE(company->events.size() == 1);
  CHECK(company->events[0].object == "company");
  CHECK(company->events[0].occurred_at == "2026-01-31T10:00:00Z");
  REQUIRE(company->events[0].event_id);
  CHECK(company->events[0].event_id->find("res.partner:5:") != std::string::npos);
  auto contact = c->webhook(delivery(R"({"_model":"res.partner","_id":6,"is_company":false})"));
  REQUIRE(contact);
  REQUIRE(contact->events.size() == 1);
  CHECK(contact->events[0].object == "contact");
}

TEST_CASE("a delivery with a wrong or missing secret is unauthorized") {
  crmhost::test::LoadedOdoo host;
  auto c = host.connect(settings());
  const std::string body = R"({"_model":"crm.lead","_id":17})";
  auto wrong = c->webhook(delivery(body, "s3cret-value-124"));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == CRM_ERR_UNAUTHORIZED);
  CHECK(wrong.error().message.find(kSecret) == std::string::npos);
  WebhookRequest bare = delivery(body);
  bare.headers.pop_back();
  auto missing = c->webhook(bare);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == CRM_ERR_UNAUTHORIZED);
  WebhookRequest doubled = delivery(body);
  doubled.headers.emplace_back("X-Odoo-Secret", "other");
  auto twice = c->webhook(doubled);
  REQUIRE_FALSE(twice);
  CHECK(twice.error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a malformed delivery is invalid input and without a secret setting none is trusted") {
  crmhost::test::LoadedOdoo host;
  auto c = host.connect(settings());
  auto bad = c->webhook(delivery(R"({"_id":17})"));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == CRM_ERR_INVALID_INPUT);
  auto open = host.connect(
      R"({"url":"http://127.0.0.1:9","database":"crm","login":"admin","api_key":"key-1"})");
  auto refused = open->webhook(delivery(R"({"_model":"crm.lead","_id":17})"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == CRM_ERR_UNAUTHORIZED);
}

// The host refuses such a body (deeper than 64 levels) before the plugin sees it; the plugin does
// not rely on that.
TEST_CASE("a delivery nested a million levels deep is invalid input and no crash") {
  crmhost::test::LoadedOdoo host;
  auto c = host.connect(settings());
  auto deep = c->webhook(delivery(std::string(1'000'000, '[')));
  REQUIRE_FALSE(deep);
  CHECK(deep.error().code == CRM_ERR_INVALID_INPUT);
  CHECK_THAT(deep.error().message, Catch::Contains("webhook body: nested deeper than 256 levels"));
  CHECK(c->webhook(delivery(R"({"_model":"crm.lead","_id":17})")));  // still serving
}

TEST_CASE("settings name what is wrong") {
  crmhost::test::LoadedOdoo host;
  auto create = [&](const std::string &json) {
    return host.library->create_connector("odoo", json);
  };
  auto no_key = create(R"({"url":"http://x","database":"crm","login":"a"})");
  REQUIRE_FALSE(no_key);
  CHECK(no_key.error().message.find("api_key") != std::string::npos);
  auto json2_password = create(
      R"({"url":"http://x","database":"crm","login":"a","password":"p","protocol":"json2"})");
  REQUIRE_FALSE(json2_password);
  CHECK(json2_password.error().message.find("API key") != std::string::npos);
  auto bad_object = create(
      R"({"url":"http://x","database":"crm","login":"a","api_key":"k","objects":["ticket"]})");
  REQUIRE_FALSE(bad_object);
  CHECK(bad_object.error().message.find("ticket") != std::string::npos);
  // The shape config/examples use: username rather than login.
  CHECK(create(R"({"url":"https://acme.odoo.com","database":"acme","username":"sync@acme",)"
               R"("api_key":"k"})"));
}
