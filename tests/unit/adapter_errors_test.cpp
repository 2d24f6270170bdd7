// What the adapter makes of plugins that throw, lie or answer garbage.
#include "test_support.hpp"

using namespace crmhost::plugins;
using crmhost::test::fixture;

TEST_CASE("exceptions thrown in an SDK plugin come back as a status and a message", "[adapter]") {
  auto plugin = crmhost::test::load_or_fail(fixture("throwing-sdk"));

  auto failed_create = plugin->create_connector("c", R"({"throw_in_create":true})");
  REQUIRE_FALSE(failed_create);
  CHECK(failed_create.error().code == CRM_ERR_INTERNAL);
  CHECK(failed_create.error().message == "create exploded");

  auto c = crmhost::test::connect(plugin, "{}");
  auto check = c->check();
  REQUIRE_FALSE(check);
  CHECK(check.error().code == CRM_ERR_INTERNAL);
  CHECK(check.error().message == "check exploded");

  auto poll = c->poll({"contact", std::nullopt, 10});
  REQUIRE_FALSE(poll);
  CHECK(poll.error().code == CRM_ERR_RATE_LIMITED);
  CHECK(poll.error().http_status == 429);
  CHECK(poll.error().retry_after_ms == 1500);
  CHECK(poll.error().retryable);
  CHECK(poll.error().describe() == "rate_limited (HTTP 429, retry after 1500 ms): slow down");

  auto fetch = c->fetch("contact", {"1"});
  REQUIRE_FALSE(fetch);
  CHECK(fetch.error().code == CRM_ERR_INTERNAL);
  CHECK(fetch.error().message == "unknown exception");

  auto push = c->push({"contact", "upsert", std::nullopt, {PushInput{"r", std::nullopt, "{}"}}});
  REQUIRE_FALSE(push);
  CHECK(push.error().code == CRM_ERR_INTERNAL);
  CHECK_THAT(push.error().message, Catch::Contains("bad_alloc"));

  auto hook = c->webhook({"POST", "http://h/x", {}, "[]", 0});
  REQUIRE_FALSE(hook);
  CHECK(hook.error().message.size() == 511);  // truncated into the inline buffer, NUL kept
}

TEST_CASE("malformed plugin results are rejected with what is wrong", "[adapter]") {
  auto plugin = crmhost::test::load_or_fail(fixture("garbage"));
  auto c = crmhost::test::connect(plugin, "{}");

  auto check = c->check();
  REQUIRE_FALSE(check);
  CHECK_THAT(check.error().message, Catch::Contains("more than one result was emitted"));

  auto poll = c->poll({"contact", std::nullopt, 10});
  REQUIRE_FALSE(poll);
  CHECK(poll.error().code == CRM_ERR_INTERNAL);
  CHECK_THAT(poll.error().message,
             Catch::Contains("plugin garbage returned a malformed poll result") &&
                 Catch::Contains("records[0].id"));

  auto fetch = c->fetch("contact", {"1"});
  REQUIRE_FALSE(fetch);
  CHECK_THAT(fetch.error().message, Catch::Contains("the result is not valid JSON at offset"));

  auto push = c->push({"contact", "upsert", std::nullopt, {PushInput{"r", std::nullopt, "{}"}}});
  REQUIRE_FALSE(push);
  CHECK_THAT(push.error().message, Catch::Contains("0 results for 1 records"));

  auto hook = c->webhook({"POST", "http://h/x", {}, "[]", 0});
  REQUIRE_FALSE(hook);
  CHECK(hook.error().code == CRM_ERR_INTERNAL);  // -1234 is no code of this ABI
  CHECK(hook.error().message == "an error code this ABI does not define");
}

TEST_CASE("calls a plugin did not declare are refused before reaching it", "[adapter]") {
  auto plugin = crmhost::test::load_or_fail(fixture("old-layout"));
  auto c = crmhost::test::connect(plugin, "{}");
  auto push = c->push({"contact", "upsert", std::nullopt, {}});
  REQUIRE_FALSE(push);
  CHECK(push.error().code == CRM_ERR_UNSUPPORTED);
  auto hook = c->webhook({"POST", "http://h/x", {}, "[]", 0});
  REQUIRE_FALSE(hook);
  CHECK(hook.error().code == CRM_ERR_UNSUPPORTED);
}
