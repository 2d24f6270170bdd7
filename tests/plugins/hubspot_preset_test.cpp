// The presets shipped beside hubspot.so load through a configuration, compile, and map a HubSpot
// record to the canonical model and back.
#include <catch2/catch.hpp>

#include "plugin_support.hpp"

namespace {

std::string apply(const std::string &preset, const std::string &object, const std::string &record) {
  return crmhost::test::apply_preset(
      crmhost::test::load_preset_pipeline(
          "{ plugin: hubspot, settings: { access_token: pat-test } }", preset, object),
      record);
}

}  // namespace

TEST_CASE("the contact presets map HubSpot properties to canonical and back") {
  const std::string canonical =
      apply("hubspot/contact", "contact",
            R"({"email":" Ann@Example.COM ","firstname":"Ann","lastname":"Lee",)"
            R"("phone":"+1 (415) 555-0100","lifecyclestage":"salesqualifiedlead",)"
            R"("hs_analytics_source":"REFERRALS","city":"Oslo","country":"no",)"
            R"("createdate":"2024-01-02T03:04:05.678Z","lastmodifieddate":"1704164645678"})");
  CHECK_THAT(canonical, Catch::Contains(R"("email":"ann@example.com")"));
  CHECK_THAT(canonical, Catch::Contains(R"("first_name":"Ann")"));
  CHECK_THAT(canonical, Catch::Contains(R"("phone":"+14155550100")"));
  CHECK_THAT(canonical, Catch::Contains(R"("lifecycle_stage":"qualified")"));
  CHECK_THAT(canonical, Catch::Contains(R"("lead_source":"referral")"));
  CHECK_THAT(canonical, Catch::Contains(R"("address":{"city":"Oslo","country":"NO"})"));
  CHECK_THAT(canonical, Catch::Contains(R"("updated_at":"2024-01-02T03:04:05.678Z")"));

  const std::string back = apply("hubspot/contact-from-canonical", "contact", canonical);
  CHECK_THAT(back, Catch::Contains(R"("email":"ann@example.com")"));
  CHECK_THAT(back, Catch::Contains(R"("firstname":"Ann")"));
  CHECK_THAT(back, Catch::Contains(R"("lifecyclestage":"salesqualifiedlead")"));
  CHECK_THAT(back, Catch::Contains(R"("city":"Oslo")"));
  CHECK_THAT(back, !Catch::Contains("createdate"));
}

TEST_CASE("the company presets map HubSpot properties to canonical and back") {
  const std::string canonical =
      apply("hubspot/company", "company",
            R"({"name":" Acme ","domain":"ACME.example","numberofemployees":"250",)"
            R"("annualrevenue":"1000000.5","hs_lastmodifieddate":"2024-01-02T03:04:05Z"})");
  CHECK_THAT(canonical, Catch::Contains(R"("name":"Acme")"));
  CHECK_THAT(canonical, Catch::Contains(R"("domain":"acme.example")"));
  CHECK_THAT(canonical, Catch::Contains(R"("employees":250)"));
  const std::string back = apply("hubspot/company-from-canonical", "company", canonical);
  CHECK_THAT(back, Catch::Contains(R"("numberofemployees":250)"));
  CHECK_THAT(back, Catch::Contains(R"("domain":"acme.example")"));
}

TEST_CASE("the deal presets map HubSpot properties to canonical and back") {
  const std::string canonical =
      apply("hubspot/deal", "deal",
            R"({"dealname":"Big one","amount":"1234.567","dealstage":"closedwon",)"
            R"("hs_deal_stage_probability":"1.0","closedate":"2024-03-01T12:00:00Z"})");
  CHECK_THAT(canonical, Catch::Contains(R"("amount":1234.57)"));
  CHECK_THAT(canonical, Catch::Contains(R"("stage":"closed_won")"));
  CHECK_THAT(canonical, Catch::Contains(R"("probability":100)"));
  CHECK_THAT(canonical, Catch::Contains(R"("currency":"USD")"));
  CHECK_THAT(canonical, Catch::Contains(R"("close_date":"2024-03-01")"));
  const std::string back = apply("hubspot/deal-from-canonical", "deal", canonical);
  CHECK_THAT(back, Catch::Contains(R"("dealstage":"closedwon")"));
  CHECK_THAT(back, Catch::Contains(R"("dealname":"Big one")"));
}
