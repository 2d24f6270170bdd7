// The presets shipped beside zoho.so load through a configuration, compile, and map Zoho records
// (as the plugin hands them over: datetimes already UTC) to the canonical models and back.
#include <catch2/catch.hpp>

#include "plugin_support.hpp"

namespace {

std::string apply(const std::string &preset, const std::string &object, const std::string &record) {
  return crmhost::test::apply_preset(
      crmhost::test::load_preset_pipeline(
          "{ plugin: zoho, settings: { data_centre: eu, auth: { client_id: a, client_secret: b, "
          "refresh_token: c } } }",
          preset, object),
      record);
}

}  // namespace

TEST_CASE("the contact presets map Zoho Contacts to canonical and back") {
  const std::string canonical =
      apply("zoho/contact", "contact",
            R"({"id":"1","Email":" Ann@Example.COM ","First_Name":"Ann","Last_Name":"Lee",)"
            R"("Phone":"+1 (415) 555-0100","Mobile":"0044 20 7946 0958","Title":"CTO",)"
            R"("Account_Name":{"name":"Acme","id":"77"},"Lead_Source":"Trade Show",)"
            R"("Mailing_City":"Oslo","Mailing_Country":"no",)"
            R"("Modified_Time":"2026-12-08T04:45:00.000Z"})");
  CHECK_THAT(canonical, Catch::Contains(R"("email":"ann@example.com")"));
  CHECK_THAT(canonical, Catch::Contains(R"("phone":"+14155550100")"));
  CHECK_THAT(canonical, Catch::Contains(R"("mobile":"+442079460958")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company":"Acme")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company_id":"77")"));
  CHECK_THAT(canonical, Catch::Contains(R"("lead_source":"event")"));
  CHECK_THAT(canonical, Catch::Contains(R"("address":{"city":"Oslo","country":"NO"})"));
  CHECK_THAT(canonical, Catch::Contains(R"("updated_at":"2026-12-08T04:45:00.000Z")"));
  const std::string back = apply("zoho/contact-from-canonical", "contact", canonical);
  CHECK_THAT(back, Catch::Contains(R"("Email":"ann@example.com")"));
  CHECK_THAT(back, Catch::Contains(R"("Last_Name":"Lee")"));
  CHECK_THAT(back, Catch::Contains(R"("Lead_Source":"Trade Show")"));
  CHECK_THAT(back, Catch::Contains(R"("Mailing_City":"Oslo")"));
  CHECK_THAT(back, !Catch::Contains("Modified_Time"));
}

TEST_CASE("the lead presets map Zoho Leads to a canonical contact and back") {
  const std::string canonical = apply(
      "zoho/lead", "lead",
      R"({"Email":"b@example.com","Last_Name":"Bo","Company":"Beta","Designation":"CEO",)"
      R"("Lead_Status":"Pre-Qualified","Lead_Source":"Web Research","Phone":"(415) 555-0101"})");
  CHECK_THAT(canonical, Catch::Contains(R"("lifecycle_stage":"qualified")"));
  CHECK_THAT(canonical, Catch::Contains(R"("lead_source":"website")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company":"Beta")"));
  CHECK_THAT(canonical, Catch::Contains(R"("phone":"+14155550101")"));
  const std::string back = apply("zoho/lead-from-canonical", "lead", canonical);
  CHECK_THAT(back, Catch::Contains(R"("Lead_Status":"Pre-Qualified")"));
  CHECK_THAT(back, Catch::Contains(R"("Company":"Beta")"));
  CHECK_THAT(back, Catch::Contains(R"("Designation":"CEO")"));
  // Zoho requires Last_Name and Company on a lead.
  const std::string bare =
      apply("zoho/lead-from-canonical", "lead", R"({"email":"c@example.com"})");
  CHECK_THAT(bare, Catch::Contains(R"("Last_Name":"-")"));
  CHECK_THAT(bare, Catch::Contains(R"("Company":"-")"));
}

TEST_CASE("the account presets map Zoho Accounts to a canonical company and back") {
  const std::string canonical =
      apply("zoho/account", "account",
            R"({"Account_Name":" Acme ","Website":"ACME.example","Employees":250,)"
            R"("Annual_Revenue":"1000000.5","Billing_Country":"de"})");
  CHECK_THAT(canonical, Catch::Contains(R"("name":"Acme")"));
  CHECK_THAT(canonical, Catch::Contains(R"("domain":"acme.example")"));
  CHECK_THAT(canonical, Catch::Contains(R"("employees":250)"));
  CHECK_THAT(canonical, Catch::Contains(R"("annual_revenue":1000000.5)"));
  const std::string back = apply("zoho/account-from-canonical", "account", canonical);
  CHECK_THAT(back, Catch::Contains(R"("Account_Name":"Acme")"));
  CHECK_THAT(back, Catch::Contains(R"("Employees":250)"));
  CHECK_THAT(back, Catch::Contains(R"("Billing_Country":"DE")"));
}

TEST_CASE("the deal presets map Zoho Deals to canonical and back") {
  const std::string canonical =
      apply("zoho/deal", "deal",
            R"({"Deal_Name":"Big one","Amount":1234.567,"Stage":"Closed Won","Probability":100,)"
            R"("Closing_Date":"2026-03-01","Account_Name":{"name":"Acme","id":"77"},)"
            R"("Owner":{"name":"O","id":"5","email":"Owner@Example.com"}})");
  CHECK_THAT(canonical, Catch::Contains(R"("amount":1234.57)"));
  CHECK_THAT(canonical, Catch::Contains(R"("stage":"closed_won")"));
  CHECK_THAT(canonical, Catch::Contains(R"("currency":"USD")"));
  CHECK_THAT(canonical, Catch::Contains(R"("close_date":"2026-03-01")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company_id":"77")"));
  CHECK_THAT(canonical, Catch::Contains(R"("owner_email":"owner@example.com")"));
  const std::string back = apply("zoho/deal-from-canonical", "deal", canonical);
  CHECK_THAT(back, Catch::Contains(R"("Stage":"Closed Won")"));
  CHECK_THAT(back, Catch::Contains(R"("Deal_Name":"Big one")"));
  CHECK_THAT(back, Catch::Contains(R"("Closing_Date":"2026-03-01")"));
  CHECK_THAT(apply("zoho/deal", "deal", R"({"Deal_Name":"x","Stage":"Negotiation/Review"})"),
             Catch::Contains(R"("stage":"open")"));
}
