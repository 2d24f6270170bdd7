// Webhooks through the loaded hubspot.so: each signature version, refusals, every event type.
#include <catch2/catch.hpp>

#include "plugin_support.hpp"
#include "signature.hpp"

using crmhost::plugins::WebhookRequest;
using crmhost::plugins::WebhookResult;
namespace hs = crmhost::hubspot;

namespace {

const std::string kSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const std::string kReceived = "http://127.0.0.1:8080/hooks/hubspot?portal=62515";
const std::string kSigned = "https://sync.example.com/hooks/hubspot?portal=62515";
const int64_t kNow = 1764000000000;

std::string settings(const std::string &extra = "") {
  return R"({"access_token":"pat-test","app_secret":")" + kSecret +
         R"(","public_base_url":"https://sync.example.com")" + extra + "}";
}

std::string event(const std::string &type, int64_t object_id, const std::string &more = "",
                  int64_t event_id = 1) {
  return R"({"eventId":)" + std::to_string(event_id) +
         R"(,"subscriptionId":12345,"portalId":62515,"occurredAt":1764000000000,)"
         R"("subscriptionType":")" +
         type + R"(","attemptNumber":0,"objectId":)" + std::to_string(object_id) +
         R"(,"changeSource":"CRM","appId":54321)" + more + "}";
}

WebhookRequest signed_v1(const std::string &body) {
  return {"POST",
          kReceived,
          {{"Content-Type", "application/json"},
           {"X-HubSpot-Signature", hs::signature_v1(kSecret, body)},
           {"X-HubSpot-Signature-Version", "v1"}},
          body,
          kNow};
}

WebhookRequest signed_v2(const std::string &body) {
  return {"POST",
          kReceived,
          {{"X-HubSpot-Signature", hs::signature_v2(kSecret, "POST", kSigned, body)},
           {"X-HubSpot-Signature-Version", "v2"}},
          body,
          kNow};
}

WebhookRequest signed_v3(const std::string &body, int64_t timestamp) {
  const std::string stamp = std::to_string(timestamp);
  return {"POST",
          kReceived,
          {{"X-HubSpot-Signature-v3", hs::signature_v3(kSecret, "POST", kSigned, body, stamp)},
           {"X-HubSpot-Request-Timestamp", stamp}},
          body,
          kNow};
}

struct Fixture {
  crmhost::test::LoadedHubSpot host;
  std::unique_ptr<crmhost::plugins::Connector> connector;
  explicit Fixture(const std::string &extra = "") {
    host.now->store(kNow);
    connector = host.connect(settings(extra));
  }
  crmhost::plugins::Outcome<WebhookResult> deliver(const WebhookRequest &r) {
    return connector->webhook(r);
  }
};

}  // namespace

TEST_CASE("a v1-signed delivery is accepted and names the record to fetch") {
  Fixture f;
  const std::string body = "[" + event("contact.creation", 123) + "]";
  auto result = f.deliver(signed_v1(body));
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  const auto &e = result->events[0];
  CHECK(e.object == "contact");
  CHECK(e.id == "123");
  CHECK(e.event == crmhost::plugins::EventKind::upsert);
  CHECK_FALSE(e.data_json);  // the host fetches the record
  CHECK(e.occurred_at == "2025-11-24T16:00:00.000Z");
  REQUIRE(e.event_id);
  CHECK(e.event_id->find("12345") != std::string::npos);
}

TEST_CASE("the fact sheet's v1 event array verifies through the plugin") {
  Fixture f;
  const std::string body =
      R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,)"
      R"("subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,)"
      R"("changeSource":"CRM","changeFlag":"NEW","appId":54321}])";
  WebhookRequest r = signed_v1(body);
  r.headers[1].second = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
  auto result = f.deliver(r);
  REQUIRE(result);
  CHECK(result->events.size() == 1);
}

TEST_CASE("a v2-signed delivery is accepted over the public URL") {
  Fixture f;
  auto result = f.deliver(signed_v2("[" + event("company.deletion", 7) + "]"));
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  CHECK(result->events[0].object == "company");
  CHECK(result->events[0].event == crmhost::plugins::EventKind::remove);
}

TEST_CASE("a v3-signed delivery within 5 minutes is accepted") {
  Fixture f;
  auto result = f.deliver(signed_v3("[" + event("deal.creation", 9) + "]", kNow - 60'000));
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  CHECK(result->events[0].object == "deal");
}

TEST_CASE("a tampered body is refused as unauthorized") {
  Fixture f;
  WebhookRequest r = signed_v1("[" + event("contact.creation", 123) + "]");
  r.body = "[" + event("contact.creation", 124) + "]";
  auto result = f.deliver(r);
  REQUIRE_FALSE(result);
  CHECK(result.error().code == CRM_ERR_UNAUTHORIZED);

  WebhookRequest v3 = signed_v3("[" + event("contact.creation", 123) + "]", kNow);
  v3.body += " ";
  CHECK(f.deliver(v3).error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a tampered or missing signature is refused as unauthorized") {
  Fixture f;
  WebhookRequest r = signed_v2("[" + event("contact.creation", 123) + "]");
  r.headers[0].second[0] = r.headers[0].second[0] == 'a' ? 'b' : 'a';
  CHECK(f.deliver(r).error().code == CRM_ERR_UNAUTHORIZED);
  r.headers.clear();
  CHECK(f.deliver(r).error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a v3 signature signed over the received URL instead of the public one is refused") {
  Fixture f;
  const std::string body = "[" + event("contact.creation", 123) + "]";
  const std::string stamp = std::to_string(kNow);
  WebhookRequest r{
      "POST",
      kReceived,
      {{"X-HubSpot-Signature-v3", hs::signature_v3(kSecret, "POST", kReceived, body, stamp)},
       {"X-HubSpot-Request-Timestamp", stamp}},
      body,
      kNow};
  CHECK(f.deliver(r).error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a v3 timestamp older than 5 minutes is refused") {
  Fixture f;
  auto result = f.deliver(signed_v3("[" + event("contact.creation", 1) + "]", kNow - 301'000));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == CRM_ERR_UNAUTHORIZED);
}

TEST_CASE("a v3 timestamp that is not a number is a bad request") {
  Fixture f;
  WebhookRequest r = signed_v3("[]", kNow);
  r.headers[1].second = "soon";
  CHECK(f.deliver(r).error().code == CRM_ERR_INVALID_INPUT);
}

TEST_CASE("a signature version left out of signature_versions is refused") {
  Fixture f(R"(,"signature_versions":["v3"])");
  CHECK(f.deliver(signed_v1("[" + event("contact.creation", 1) + "]")).error().code ==
        CRM_ERR_UNAUTHORIZED);
  CHECK(f.deliver(signed_v3("[" + event("contact.creation", 1) + "]", kNow)));
}

TEST_CASE("a well-signed body that is not an event array is a bad request") {
  Fixture f;
  auto result = f.deliver(signed_v1(R"({"example_field":"example_value"})"));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == CRM_ERR_INVALID_INPUT);
  CHECK(f.deliver(signed_v1(R"([{"objectId":1}])")).error().code == CRM_ERR_INVALID_INPUT);
}

// The host refuses such a body (deeper than 64 levels) before the plugin sees it; the plugin does
// not rely on that.
TEST_CASE("a well-signed body nested a million levels deep is a bad request and no crash") {
  Fixture f;
  auto result = f.deliver(signed_v1(std::string(1'000'000, '[')));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == CRM_ERR_INVALID_INPUT);
  CHECK_THAT(result.error().message,
             Catch::Contains("webhook body: nested deeper than 256 levels"));
  CHECK(f.deliver(signed_v1("[" + event("contact.creation", 5) + "]")));  // still serving
}

TEST_CASE("every event type becomes fetch or delete events") {
  Fixture f;
  const std::string body =
      "[" + event("contact.creation", 1) + "," +
      event("contact.propertyChange", 2, R"(,"propertyName":"email","propertyValue":"a@b.c")") +
      "," + event("contact.deletion", 3) + "," + event("contact.restore", 4) + "," +
      event("contact.privacyDeletion", 5) + "," +
      event("contact.merge", 6, R"(,"primaryObjectId":6,"mergedObjectIds":[60,61])") + "," +
      event("contact.associationChange", 7,
            R"(,"toObjectId":70,"associationType":"CONTACT_TO_COMPANY")") +
      "," + event("ticket.creation", 8) + "]";
  auto result = f.deliver(signed_v1(body));
  REQUIRE(result);
  std::vector<std::string> seen;
  for (const auto &e : result->events) {
    seen.push_back(e.id + ":" + std::string(crmhost::plugins::to_string(e.event)));
    CHECK(e.object == "contact");
    CHECK(e.event_id);
    CHECK_FALSE(e.data_json);
  }
  CHECK(seen == std::vector<std::string>{"1:upsert", "2:upsert", "3:delete", "4:upsert", "5:delete",
                                         "6:upsert", "60:delete", "61:delete", "7:upsert"});
}

TEST_CASE("dedupe keys do not rely on eventId alone") {
  Fixture f;
  // HubSpot may repeat an eventId for different changes, and a retry repeats the same change.
  const std::string body =
      "[" + event("contact.propertyChange", 1, R"(,"propertyName":"email")", 77) + "," +
      event("contact.propertyChange", 1, R"(,"propertyName":"phone")", 77) + "," +
      event("contact.propertyChange", 2, R"(,"propertyName":"email")", 77) + "]";
  auto first = f.deliver(signed_v1(body));
  REQUIRE(first);
  REQUIRE(first->events.size() == 3);
  CHECK(*first->events[0].event_id != *first->events[1].event_id);
  CHECK(*first->events[0].event_id != *first->events[2].event_id);
  const std::string retry =
      "[" + event("contact.propertyChange", 1, R"(,"propertyName":"email")", 78) + "]";
  auto again = f.deliver(signed_v1(retry));
  REQUIRE(again);
  CHECK(*again->events[0].event_id == *first->events[0].event_id);
}

TEST_CASE("events of objects outside settings.objects are acknowledged and skipped") {
  Fixture f(R"(,"objects":["deal"])");
  auto result = f.deliver(
      signed_v1("[" + event("contact.creation", 1) + "," + event("deal.creation", 2) + "]"));
  REQUIRE(result);
  REQUIRE(result->events.size() == 1);
  CHECK(result->events[0].object == "deal");
}

TEST_CASE("settings without credentials are refused at create") {
  crmhost::test::LoadedHubSpot host;
  auto created = host.library->create_connector("hubspot", R"({"app_secret":"x"})");
  REQUIRE_FALSE(created);
  CHECK(created.error().code == CRM_ERR_INVALID_INPUT);
  auto both = host.library->create_connector(
      "hubspot",
      R"({"auth":{"token":"a","client_id":"b","client_secret":"c","refresh_token":"d"}})");
  CHECK_FALSE(both);
}
