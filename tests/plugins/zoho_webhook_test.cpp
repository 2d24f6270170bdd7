// Zoho webhooks: the parser called directly (verification, shapes, operations, dedupe keys) and
// deliveries through the loaded zoho.so (statuses the host sees).
#include <catch2/catch.hpp>

#include "plugin_support.hpp"
#include "webhook_events.hpp"

namespace zoho = crmhost::zoho;
using crmhost::plugins::EventKind;
using crmhost::plugins::WebhookRequest;
using Verdict = zoho::WebhookOutcome::Verdict;

namespace {

const std::string kChannel = "1000000068001";
const std::string kToken = "Tk-7c5a1e9d0b";
const std::string kHeader = "X-Crmhost-Secret";
const std::string kSecret = "wf-secret-0123456789abcdef";

zoho::WebhookSettings webhook_settings() {
  zoho::WebhookSettings s;
  s.channel_id = kChannel;
  s.token = kToken;
  s.workflow_header = kHeader;
  s.workflow_secret = kSecret;
  s.objects = {"lead", "contact", "account", "deal"};
  return s;
}

// A callback as the fact sheet shows Zoho's (v7 page).
std::string notification(const std::string &operation, const std::string &token = kToken,
                         const std::string &channel = kChannel,
                         const std::string &ids = R"(["5725767000000423001"])") {
  return R"({"server_time":1764000000000,"query_params":{},"module":"Leads",)"
         R"("resource_uri":"https://www.zohoapis.com/crm/v2/Leads","ids":)" +
         ids + R"(,"affected_fields":[],"operation":")" + operation + R"(","channel_id":")" +
         channel + R"(","token":")" + token + R"("})";
}

zoho::WebhookOutcome parse(const std::string &body, const zoho::HeaderList &headers = {}) {
  return zoho::parse_webhook(webhook_settings(), headers, body);
}

zoho::WebhookOutcome workflow(const std::string &body, const std::string &secret = kSecret) {
  return parse(body, {{"Content-Type", "application/json"}, {"x-crmhost-secret", secret}});
}

}  // namespace

TEST_CASE("a notification with the channel's token names the records to fetch") {
  const auto out = parse(
      notification("update", kToken, kChannel, R"(["5725767000000423001","5725767000000423002"])"));
  REQUIRE(out.verdict == Verdict::ok);
  CHECK(out.kind == "notification");
  REQUIRE(out.events.size() == 2);
  CHECK(out.events[0].object == "lead");
  CHECK(out.events[0].id == "5725767000000423001");
  CHECK(out.events[0].operation == zoho::Operation::update);
  CHECK(out.events[0].occurred_at == "2025-11-24T16:00:00.000Z");
  CHECK(out.events[1].id == "5725767000000423002");
  CHECK(out.events[0].event_id != out.events[1].event_id);
}

TEST_CASE("a notification with a wrong or missing token is unauthorized") {
  CHECK(parse(notification("update", "Tk-7c5a1e9d0c")).verdict == Verdict::unauthorized);
  CHECK(parse(notification("update", "")).verdict == Verdict::unauthorized);
  CHECK(parse(notification("update", kToken + "x")).verdict == Verdict::unauthorized);
}

TEST_CASE("a notification of an unknown channel is unauthorized") {
  const auto out = parse(notification("update", kToken, "1000000068002"));
  CHECK(out.verdict == Verdict::unauthorized);
  CHECK_THAT(out.reason, Catch::Contains("channel"));
  auto none = webhook_settings();
  none.channel_id.clear();
  none.token.clear();
  CHECK(zoho::parse_webhook(none, {}, notification("update")).verdict == Verdict::unauthorized);
}

TEST_CASE("malformed deliveries are refused as such") {
  CHECK(parse("not json").verdict == Verdict::malformed);
  CHECK(parse("[1,2]").verdict == Verdict::malformed);
  CHECK(parse(std::string(300, '[')).verdict == Verdict::malformed);
  // Authenticated, but without ids or with an operation nobody knows.
  CHECK(parse(R"({"channel_id":")" + kChannel + R"(","token":")" + kToken +
              R"(","module":"Leads","operation":"update"})")
            .verdict == Verdict::malformed);
  CHECK(parse(notification("explode")).verdict == Verdict::malformed);
  CHECK(parse(notification("update", kToken, kChannel, R"([{"id":1}])")).verdict ==
        Verdict::malformed);
  // An object that is neither a notification nor a workflow delivery is not trusted.
  CHECK(parse(R"({"module":"Leads"})").verdict == Verdict::unauthorized);
}

TEST_CASE("a module this connection does not sync is acknowledged and skipped") {
  auto only_deals = webhook_settings();
  only_deals.objects = {"deal"};
  const auto out = zoho::parse_webhook(only_deals, {}, notification("insert"));
  CHECK(out.verdict == Verdict::ok);
  CHECK(out.events.empty());
  const std::string tasks = R"({"module":"Tasks","ids":["1"],"operation":"insert","channel_id":")" +
                            kChannel + R"(","token":")" + kToken + R"("})";
  CHECK(parse(tasks).verdict == Verdict::ok);
  CHECK(parse(tasks).events.empty());
}

TEST_CASE("a workflow webhook is verified by its header secret and unwrapped from data") {
  const auto out = workflow(
      R"({"data":[{"id":"111","Modified_Time":"2026-12-08T10:15:00+05:30","Email":"a@b.c"},)"
      R"({"id":"112","operation":"Contacts.delete"}],"operation":"Leads.edit"})");
  REQUIRE(out.verdict == Verdict::ok);
  CHECK(out.kind == "workflow");
  REQUIRE(out.events.size() == 2);
  CHECK(out.events[0].object == "lead");
  CHECK(out.events[0].operation == zoho::Operation::update);
  CHECK(out.events[0].occurred_at == "2026-12-08T04:45:00.000Z");
  CHECK(out.events[1].object == "contact");  // its own operation names its module
  CHECK(out.events[1].is_delete());

  CHECK(workflow(R"({"data":[{"id":"1"}],"operation":"Leads.edit"})", "wrong-secret").verdict ==
        Verdict::unauthorized);
  CHECK(workflow(R"({"data":[{"id":"1"}],"operation":"Leads.edit"})", "").verdict ==
        Verdict::unauthorized);
  CHECK(workflow(R"({"data":[{"id":"1"}],"operation":"edit"})").verdict == Verdict::malformed);
  CHECK(workflow(R"({"data":[{"Email":"x"}],"operation":"Leads.edit"})").verdict ==
        Verdict::malformed);
  CHECK(workflow(R"({"data":[],"operation":"Leads.edit"})").verdict == Verdict::malformed);
  CHECK(workflow("{{").verdict == Verdict::malformed);
  // A bare record and an ids list are taken too.
  const auto bare = workflow(R"({"id":"7","module":"Deals","operation":"insert"})");
  REQUIRE(bare.events.size() == 1);
  CHECK(bare.events[0].object == "deal");
  CHECK(bare.events[0].operation == zoho::Operation::create);
  CHECK(workflow(R"({"ids":["7","8"],"module":"Accounts","operation":"remove"})").events.size() ==
        2);
}

TEST_CASE("operations are normalised whatever their case and module prefix") {
  using zoho::Operation;
  CHECK(zoho::normalise_operation("Leads.edit") == Operation::update);
  CHECK(zoho::normalise_operation("update") == Operation::update);
  CHECK(zoho::normalise_operation("EDIT") == Operation::update);
  CHECK(zoho::normalise_operation("insert") == Operation::create);
  CHECK(zoho::normalise_operation("Create") == Operation::create);
  CHECK(zoho::normalise_operation("Contacts.CREATE") == Operation::create);
  CHECK(zoho::normalise_operation("remove") == Operation::remove);
  CHECK(zoho::normalise_operation("Deals.Delete") == Operation::remove);
  CHECK(zoho::normalise_operation("") == Operation::unknown);
  CHECK(zoho::normalise_operation("Leads.convert") == Operation::unknown);
}

TEST_CASE("the dedupe key names the operation, so a delete is never an update's duplicate") {
  const auto update = parse(notification("update"));
  const auto remove = parse(notification("delete"));
  REQUIRE(update.events.size() == 1);
  REQUIRE(remove.events.size() == 1);
  CHECK(update.events[0].event_id != remove.events[0].event_id);
  CHECK_THAT(remove.events[0].event_id, Catch::Contains(":delete:"));
  CHECK_THAT(update.events[0].event_id, Catch::Contains(":update:"));
  // A retried delivery keeps its key.
  CHECK(parse(notification("update")).events[0].event_id == update.events[0].event_id);
  // Workflow deliveries with the same record and payload differ only in the operation.
  const auto edit = workflow(R"({"data":[{"id":"5","Email":"a@b.c"}],"operation":"Leads.edit"})");
  const auto gone = workflow(R"({"data":[{"id":"5","Email":"a@b.c"}],"operation":"Leads.delete"})");
  REQUIRE(edit.events.size() == 1);
  REQUIRE(gone.events.size() == 1);
  CHECK(edit.events[0].event_id != gone.events[0].event_id);
}

TEST_CASE("deliveries through the loaded plugin map to the host's statuses") {
  crmhost::test::LoadedPlugin host("zoho", nullptr);
  auto c = host.connect(
      R"({"data_centre":"eu","auth":{"client_id":"1000.A","client_secret":"s","refresh_token":"r"},)"
      R"("notifications":{"channel_id":")" +
      kChannel + R"(","token":")" + kToken +
      R"(","notify_url":"https://sync.example.com/hooks/zoho"},)"
      R"("workflow_webhook":{"header":")" +
      kHeader + R"(","secret":")" + kSecret + R"("}})");
  auto deliver = [&](const std::string &body, crmhost::plugins::Headers headers = {}) {
    return c->webhook(WebhookRequest{"POST", "https://sync.example.com/hooks/zoho",
                                     std::move(headers), body, 1764000000000});
  };
  auto ok = deliver(notification("delete"));
  REQUIRE(ok);
  REQUIRE(ok->events.size() == 1);
  CHECK(ok->events[0].object == "lead");
  CHECK(ok->events[0].event == EventKind::remove);
  CHECK_FALSE(ok->events[0].data_json);
  REQUIRE(ok->events[0].event_id);
  auto edit = deliver(notification("update"));
  REQUIRE(edit);
  CHECK(edit->events[0].event == EventKind::upsert);
  CHECK(deliver(notification("update", "nope")).error().code == CRM_ERR_UNAUTHORIZED);
  CHECK(deliver(notification("update", kToken, "42")).error().code == CRM_ERR_UNAUTHORIZED);
  CHECK(deliver("{").error().code == CRM_ERR_INVALID_INPUT);
  auto wf = deliver(R"({"data":[{"id":"9"}],"operation":"Deals.create"})", {{kHeader, kSecret}});
  REQUIRE(wf);
  REQUIRE(wf->events.size() == 1);
  CHECK(wf->events[0].object == "deal");
  CHECK(deliver(R"({"data":[{"id":"9"}],"operation":"Deals.create"})", {{kHeader, "x"}})
            .error()
            .code == CRM_ERR_UNAUTHORIZED);
}
