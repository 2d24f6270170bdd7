// The SDK's wrappers over host services, exercised in-process against the host's real tables.
#include <catch2/catch.hpp>

#include "crmhost/plugin.hpp"
#include "plugins/host_services.hpp"

namespace {

class Probe : public crmhost::sdk::Connector {
 public:
  using Connector::Connector;
  crm_status check(rapidjson::Document &) override { return CRM_OK; }
};

}  // namespace

TEST_CASE(
    "SDK state helpers round-trip through crm.state.v1 and a missing HTTP extension is reported",
    "[sdk]") {
  auto services = std::make_shared<crmhost::plugins::HostServices>();
  crmhost::plugins::PluginHostContext context{"probe", services};
  const crm_host_api api = crmhost::plugins::make_host_api(&context, CRM_ABI_VERSION);
  crm_error err{};
  err.struct_size = sizeof err;
  REQUIRE(crmhost::sdk::PluginGlue<Probe>::init(&api, &err) == CRM_OK);

  crm_host_instance instance{"probe", "conn", services};
  Probe probe(&instance);
  CHECK_FALSE(probe.state_get("k"));
  probe.state_put("k", "v1");
  CHECK(probe.state_get("k") == std::optional<std::string>("v1"));
  CHECK(services->state->get("conn", "k") == std::optional<std::string>("v1"));
  probe.state_remove("k");
  CHECK_FALSE(probe.state_get("k"));

  try {
    probe.http("GET", "https://example.com/");
    FAIL("http() should have thrown");
  } catch (const crmhost::sdk::Error &e) {
    CHECK(e.status() == CRM_ERR_UNSUPPORTED);
    CHECK_THAT(e.what(), Catch::Contains("crm.http.v1"));
  }
  crmhost::sdk::PluginGlue<Probe>::deinit();
  CHECK(crmhost::sdk::Host::api() == nullptr);
}

TEST_CASE("SDK negotiation answers the highest common version or refuses another major", "[sdk]") {
  using Glue = crmhost::sdk::PluginGlue<Probe>;
  uint32_t v = CRM_MAKE_VERSION(1, 9, 0);
  CHECK(Glue::negotiate(&v) == CRM_OK);
  CHECK(v == CRM_ABI_VERSION);
  v = CRM_MAKE_VERSION(2, 0, 0);
  CHECK(Glue::negotiate(&v) == CRM_ERR_INCOMPATIBLE);
}

TEST_CASE("the SDK's calendar helpers agree with each other and with known dates", "[sdk]") {
  using namespace crmhost::sdk;
  CHECK(days_from_civil(1970, 1, 1) == 0);
  CHECK(days_from_civil(2000, 3, 1) == 11017);
  CHECK(format_utc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_utc(1572406217883) == "2019-10-30T03:30:17.883Z");
  CHECK(format_utc(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(format_utc(1769903998000, false) == "2026-01-31 23:59:58");
  for (int64_t day = -800000; day <= 800000; day += 997) {  // ~4400 years either side of 1970
    const CivilDate date = civil_from_days(day);
    CHECK(days_from_civil(date.year, date.month, date.day) == day);
  }
  rapidjson::Document doc;
  doc.Parse(R"({"s":"x","n":1,"a":["p",2,"q"]})");
  CHECK(get_string(doc, "s") == "x");
  CHECK(get_string(doc, "n").empty());
  CHECK(string_list(doc["a"]) == std::vector<std::string>{"p", "q"});
}

TEST_CASE("MatchNormalize reads the push request's steps and applies them to ASCII only", "[sdk]") {
  using crmhost::sdk::MatchNormalize;
  const auto read = [](const char *json) {
    return MatchNormalize::from_request(crmhost::sdk::parse_json(json, "request"));
  };
  CHECK_FALSE(read(R"({"mode":"upsert"})").any());
  CHECK_FALSE(read(R"({"match_normalize":[]})").any());
  const auto both = read(R"({"match_normalize":["trim","lower"]})");
  CHECK(both.apply(" \t\r\n\f\vAnn@Example.COM \n") == "ann@example.com");
  CHECK(both.apply("\xC3\x89mile  X") == "\xC3\x89mile  x");  // bytes past ASCII unchanged
  CHECK(read(R"({"match_normalize":["trim"]})").apply(" Ann ") == "Ann");
  CHECK(read(R"({"match_normalize":["lower"]})").apply(" Ann ") == " ann ");
  try {
    read(R"({"match_normalize":["trim","upper"]})");
    FAIL("an unknown step was accepted");
  } catch (const crmhost::sdk::Error &e) {
    CHECK(e.status() == CRM_ERR_INVALID_INPUT);
    CHECK_THAT(e.what(), Catch::Contains("\"upper\""));
  }
  CHECK_THROWS_AS(read(R"({"match_normalize":"lower"})"), crmhost::sdk::Error);
}

TEST_CASE("request_ids reads a fetch request's ids and names what is wrong with them", "[sdk]") {
  using crmhost::sdk::request_ids;
  rapidjson::Document doc;
  doc.Parse(R"({"object":"contact","ids":["a1",42,"b 2"]})");
  CHECK(request_ids(doc) == std::vector<std::string>{"a1", "42", "b 2"});
  doc.Parse(R"({"object":"contact","ids":[]})");
  CHECK(request_ids(doc).empty());
  for (const char *bad : {R"({"object":"contact"})", R"({"ids":"a1"})", R"([1,2])"}) {
    doc.Parse(bad);
    CHECK_THROWS_WITH(request_ids(doc), Catch::Contains("\"ids\" must be an array of ids"));
  }
  for (const char *bad : {R"({"ids":["a",-3]})", R"({"ids":[null]})", R"({"ids":[{"id":"a"}]})"}) {
    doc.Parse(bad);
    CHECK_THROWS_WITH(request_ids(doc), Catch::Contains("every id must be a string"));
  }
}
