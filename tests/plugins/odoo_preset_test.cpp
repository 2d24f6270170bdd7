// The presets shipped beside odoo.so load through a configuration, compile, and map an Odoo
// record to the canonical model and back; the settings schema refuses unknown keys.
#include <catch2/catch.hpp>

#include "plugin_support.hpp"

namespace {

// Without deletion detection: it keeps state, for which validation wants CRMHOST_SECRET_KEY.
const std::string kConnection =
    "{ plugin: odoo, settings: { url: 'https://acme.odoo.com', database: acme, "
    "username: sync@acme.example, api_key: k-1, reconcile_interval_seconds: 0";

// One odoo pipeline through config::load and the registry.
crmhost::config::LoadResult load(const std::string &preset, const std::string &object,
                                 const std::string &extra_settings = "") {
  return crmhost::test::load_preset_pipeline(kConnection + extra_settings + " } }", preset, object);
}

std::string apply(const std::string &preset, const std::string &object, const std::string &record) {
  return crmhost::test::apply_preset(load(preset, object), record);
}

}  // namespace

TEST_CASE("the contact presets map an Odoo partner to canonical and back") {
  const std::string canonical =
      apply("odoo/contact", "contact",
            R"({"id":7,"name":"Ann Marie Lee","_first_name":"Ann Marie","_last_name":"Lee",)"
            R"("email":" Ann@Example.COM ","phone":"+32 2 555 01 00","mobile":null,)"
            R"("parent_id":[3,"Acme"],"function":"CTO","city":"Ghent","zip":"9000",)"
            R"("country_id":[21,"Belgium"],"_country_code":"be","is_company":false,)"
            R"("active":true,"create_date":"2026-01-02 03:04:05",)"
            R"("write_date":"2026-01-03 03:04:05"})");
  CHECK_THAT(canonical, Catch::Contains(R"("email":"ann@example.com")"));
  CHECK_THAT(canonical, Catch::Contains(R"("first_name":"Ann Marie")"));
  CHECK_THAT(canonical, Catch::Contains(R"("last_name":"Lee")"));
  CHECK_THAT(canonical, Catch::Contains(R"("phone":"+3225550100")"));
  CHECK_THAT(canonical, !Catch::Contains("mobile"));
  CHECK_THAT(canonical, Catch::Contains(R"("company":"Acme")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company_id":"3")"));
  CHECK_THAT(canonical, Catch::Contains(R"("job_title":"CTO")"));
  CHECK_THAT(canonical, Catch::Contains(R"("country":"BE")"));
  CHECK_THAT(canonical, Catch::Contains(R"("updated_at":"2026-01-03T03:04:05.000Z")"));

  const std::string back = apply("odoo/contact-from-canonical", "contact", canonical);
  CHECK_THAT(back, Catch::Contains(R"("email":"ann@example.com")"));
  CHECK_THAT(back, Catch::Contains(R"("_first_name":"Ann Marie")"));
  CHECK_THAT(back, Catch::Contains(R"("_last_name":"Lee")"));
  CHECK_THAT(back, Catch::Contains(R"("parent_id":"Acme")"));
  CHECK_THAT(back, Catch::Contains(R"("country_id":"BE")"));
  CHECK_THAT(back, Catch::Contains(R"("function":"CTO")"));
  CHECK_THAT(back, !Catch::Contains("write_date"));
}

TEST_CASE("the company presets map an Odoo company to canonical and back") {
  const std::string canonical =
      apply("odoo/company", "company",
            R"({"id":3,"name":" Acme ","website":"https://www.acme.example/about",)"
            R"("_domain":"acme.example","is_company":true,"city":"Ghent",)"
            R"("write_date":"2026-01-03 03:04:05"})");
  CHECK_THAT(canonical, Catch::Contains(R"("name":"Acme")"));
  CHECK_THAT(canonical, Catch::Contains(R"("domain":"acme.example")"));
  CHECK_THAT(canonical, Catch::Contains(R"("city":"Ghent")"));
  const std::string back = apply("odoo/company-from-canonical", "company", canonical);
  CHECK_THAT(back, Catch::Contains(R"("name":"Acme")"));
  CHECK_THAT(back, Catch::Contains(R"("website":"acme.example")"));
}

TEST_CASE("the deal presets map an Odoo opportunity to canonical and back") {
  const std::string canonical =
      apply("odoo/deal", "deal",
            R"({"id":9,"name":"Big deal","type":"opportunity","stage_id":[4,"Won"],)"
            R"("expected_revenue":1234.567,"partner_id":[3,"Acme"],"active":true,)"
            R"("write_date":"2026-01-03 03:04:05"})");
  CHECK_THAT(canonical, Catch::Contains(R"("name":"Big deal")"));
  CHECK_THAT(canonical, Catch::Contains(R"("amount":1234.57)"));
  CHECK_THAT(canonical, Catch::Contains(R"("stage":"closed_won")"));
  CHECK_THAT(canonical, Catch::Contains(R"("company_id":"3")"));
  const std::string back = apply("odoo/deal-from-canonical", "deal", canonical);
  CHECK_THAT(back, Catch::Contains(R"("stage_id":"Won")"));
  CHECK_THAT(back, Catch::Contains(R"("active":true)"));
  CHECK_THAT(back, Catch::Contains(R"("type":"opportunity")"));

  const std::string lost =
      apply("odoo/deal-from-canonical", "deal", R"({"name":"Gone","stage":"closed_lost"})");
  CHECK_THAT(lost, Catch::Contains(R"("active":false)"));
  CHECK_THAT(lost, !Catch::Contains("stage_id"));
}

TEST_CASE("an unknown odoo setting is a configuration problem") {
  auto result = load("odoo/contact", "contact", ", colour: blue");
  REQUIRE_FALSE(result.problems.empty());
  bool named = false;
  for (const auto &p : result.problems) named |= p.to_string().find("colour") != std::string::npos;
  CHECK(named);
}
