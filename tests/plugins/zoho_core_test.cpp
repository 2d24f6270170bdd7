// The Zoho plugin's core parts called directly: settings and data-centre derivation, datetime and
// multi-select conversion, the poll cursor.
#include <catch2/catch.hpp>

#include "common.hpp"
#include "crmhost/plugin.hpp"
#include "settings.hpp"

namespace zoho = crmhost::zoho;

namespace {

const std::string kAuth =
    R"("auth":{"client_id":"1000.ABC","client_secret":"s3cret","refresh_token":"1000.r.t"})";

zoho::Settings settings(const std::string &members) {
  const auto doc = crmhost::sdk::parse_json(
      "{" + kAuth + (members.empty() ? "" : ",") + members + "}", "settings");
  return zoho::Settings::from_json(doc);
}

std::string refusal(const std::string &members) {
  try {
    settings(members);
  } catch (const crmhost::sdk::Error &e) {
    CHECK(e.status() == CRM_ERR_INVALID_INPUT);
    return e.what();
  }
  FAIL("settings were accepted: " << members);
  return "";
}

std::string normalised(const std::string &record, const std::set<std::string> &multi = {}) {
  rapidjson::Document doc = crmhost::sdk::parse_json(record, "record");
  zoho::normalise_record(doc, multi, doc.GetAllocator());
  return crmhost::sdk::to_json(doc);
}

}  // namespace

TEST_CASE("each data centre derives its accounts and API hosts") {
  const std::vector<std::tuple<std::string, std::string, std::string>> expected = {
      {"us", "https://accounts.zoho.com", "https://www.zohoapis.com"},
      {"eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"},
      {"in", "https://accounts.zoho.in", "https://www.zohoapis.in"},
      {"au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"},
      {"cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"},
      {"jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"},
      {"sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"},
      {"ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"},
  };
  CHECK(zoho::all_data_centres().size() == expected.size());
  for (const auto &[code, accounts, api] : expected) {
    INFO(code);
    const auto s = settings(R"("data_centre":")" + code + "\"");
    CHECK(s.accounts_url == accounts);
    CHECK(s.api_url == api);
    CHECK_FALSE(s.api_url_explicit);
    CHECK_THAT(s.describe_accounts(), Catch::Contains("data centre " + code));
  }
}

TEST_CASE("explicit accounts_url and api_url replace the derived hosts") {
  const auto s = settings(
      R"("data_centre":"eu","accounts_url":"http://127.0.0.1:9000/","api_url":"http://127.0.0.1:9001")");
  CHECK(s.accounts_url == "http://127.0.0.1:9000");
  CHECK(s.api_url == "http://127.0.0.1:9001");
  CHECK(s.api_url_explicit);
  CHECK(s.describe_accounts() == "data centre eu (http://127.0.0.1:9000)");
  // Without an API URL the token answer's api_domain is the only API host.
  const auto only_accounts = settings(R"("accounts_url":"http://127.0.0.1:9000")");
  CHECK(only_accounts.api_url.empty());
}

TEST_CASE("settings refuse an unknown data centre, missing hosts and incomplete OAuth") {
  CHECK_THAT(refusal(R"("data_centre":"uk")"), Catch::Contains("settings.data_centre"));
  CHECK_THAT(refusal(""), Catch::Contains("data_centre"));
  CHECK_THAT(refusal(R"("accounts_url":"ftp://x")"), Catch::Contains("settings.accounts_url"));
  try {
    zoho::Settings::from_json(crmhost::sdk::parse_json(
        R"({"data_centre":"us","auth":{"client_id":"a","client_secret":"","refresh_token":"r"}})",
        "s"));
    FAIL("an empty client_secret was accepted");
  } catch (const crmhost::sdk::Error &e) {
    CHECK_THAT(e.what(), Catch::Contains("settings.auth"));
  }
}

TEST_CASE("settings read objects, fields, match keys and notifications") {
  const auto s = settings(
      R"("data_centre":"in","objects":["Leads","company"],"fields":{"lead":["Email","Last_Name"]},)"
      R"("match_keys":{"account":"Website"},"multi_select_fields":{"lead":["Interests"]},)"
      R"("notifications":{"channel_id":"1000000068001","token":"tok","notify_url":"https://h/hooks/zoho",)"
      R"("expiry_hours":200})");
  CHECK(s.objects == std::set<std::string>{"lead", "account"});
  const auto &leads = *zoho::find_module("lead");
  CHECK(s.fields_of(leads) == std::vector<std::string>{"Email", "Last_Name", "Modified_Time"});
  CHECK(s.match_key_of(leads) == "Email");
  CHECK(s.match_key_of(*zoho::find_module("account")) == "Website");
  CHECK(s.match_key_of(*zoho::find_module("deal")) == "Deal_Name");
  CHECK(s.multi_select_of(leads).count("Interests"));
  CHECK(s.notifications.enabled());
  CHECK(s.notifications.expiry_ms == 168LL * 3600 * 1000);  // Zoho's one-week cap
  CHECK(s.notifications.renew_before_ms <= s.notifications.expiry_ms / 2);
  CHECK_THAT(refusal(R"("data_centre":"us","objects":["ticket"])"), Catch::Contains("ticket"));
  CHECK_THAT(refusal(R"("data_centre":"us","notifications":{"channel_id":"abc","token":"t",)"
                     R"("notify_url":"https://h"})"),
             Catch::Contains("channel_id"));
  CHECK_THAT(refusal(R"("data_centre":"us","notifications":{"channel_id":"1","token":")" +
                     std::string(50, 'x') + R"(","notify_url":"https://h"})"),
             Catch::Contains("49"));
  CHECK_THAT(refusal(R"("data_centre":"us","workflow_webhook":{"header":"X-Secret"})"),
             Catch::Contains("workflow_webhook"));
}

TEST_CASE("datetimes with an offset become ISO 8601 UTC") {
  CHECK(zoho::datetime_to_utc("2026-12-08T10:15:00+05:30") == "2026-12-08T04:45:00.000Z");
  CHECK(zoho::datetime_to_utc("2026-12-08T10:15:00-08:00") == "2026-12-08T18:15:00.000Z");
  CHECK(zoho::datetime_to_utc("2026-01-01T02:00:00+05:30") == "2025-12-31T20:30:00.000Z");
  CHECK(zoho::datetime_to_utc("2026-12-08T10:15:00Z") == "2026-12-08T10:15:00.000Z");
  CHECK_FALSE(zoho::datetime_to_utc("2026-12-08"));           // a date stays a date
  CHECK_FALSE(zoho::datetime_to_utc("2026-12-08T10:15:00"));  // no zone: not Zoho's datetime
  CHECK_FALSE(zoho::datetime_to_utc("call at 10:15"));
  CHECK_FALSE(zoho::datetime_to_utc("2026-12-08T10:15:00+25:00"));
  CHECK(zoho::format_zoho_time(1'796'000'000'999) == "2026-11-30T00:53:20+00:00");
}

TEST_CASE("records read from Zoho get UTC datetimes, nested ones too") {
  const std::string out = normalised(
      R"({"id":"1","Modified_Time":"2026-12-08T10:15:00+05:30","Closing_Date":"2026-12-31",)"
      R"("Owner":{"name":"A","id":"9"},"Sub":[{"When":"2026-12-08T00:00:00+01:00"}],"N":5})");
  CHECK_THAT(out, Catch::Contains(R"("Modified_Time":"2026-12-08T04:45:00.000Z")"));
  CHECK_THAT(out, Catch::Contains(R"("Closing_Date":"2026-12-31")"));
  CHECK_THAT(out, Catch::Contains(R"("When":"2026-12-07T23:00:00.000Z")"));
  CHECK_THAT(out, Catch::Contains(R"("N":5)"));
}

TEST_CASE("multi-select picklists become arrays whatever Zoho sent") {
  const std::set<std::string> multi{"Interests"};
  CHECK_THAT(normalised(R"({"Interests":"Golf; Chess;;Go"})", multi),
             Catch::Contains(R"("Interests":["Golf","Chess","Go"])"));
  CHECK_THAT(normalised(R"({"Interests":"Golf, Chess"})", multi),
             Catch::Contains(R"("Interests":["Golf","Chess"])"));
  CHECK_THAT(normalised(R"({"Interests":["Golf","Chess"]})", multi),
             Catch::Contains(R"("Interests":["Golf","Chess"])"));
  CHECK_THAT(normalised(R"({"Interests":["Golf;Chess",null]})", multi),
             Catch::Contains(R"("Interests":["Golf","Chess"])"));
  CHECK_THAT(normalised(R"({"Interests":""})", multi), Catch::Contains(R"("Interests":[])"));
  CHECK_THAT(normalised(R"({"Interests":null})", multi), Catch::Contains(R"("Interests":null)"));
  // A field not named multi-select keeps its text.
  CHECK_THAT(normalised(R"({"Description":"a;b"})", multi),
             Catch::Contains(R"("Description":"a;b")"));
  CHECK(zoho::split_multi_select("A;B,C") == std::vector<std::string>{"A", "B,C"});
}

TEST_CASE("values pushed to Zoho take its datetime form") {
  rapidjson::Document doc;
  rapidjson::Value v("2026-12-08T04:45:00.500Z", doc.GetAllocator());
  CHECK(zoho::datetime_for_zoho(v, doc.GetAllocator()));
  CHECK(std::string(v.GetString()) == "2026-12-08T04:45:00+00:00");
  rapidjson::Value date("2026-12-08", doc.GetAllocator());
  CHECK_FALSE(zoho::datetime_for_zoho(date, doc.GetAllocator()));
  rapidjson::Value zoned("2026-12-08T10:15:00+05:30", doc.GetAllocator());
  CHECK_FALSE(zoho::datetime_for_zoho(zoned, doc.GetAllocator()));
}

TEST_CASE("the poll cursor round-trips and takes a hand-written rewind") {
  const zoho::Cursor c{1'796'000'000'000, "5725767000000423001", 1'795'000'000'000};
  const auto back = zoho::decode_cursor(zoho::encode_cursor(c));
  CHECK(back.modified_ms == c.modified_ms);
  CHECK(back.id == c.id);
  CHECK(back.deleted_ms == c.deleted_ms);
  const auto rewind = zoho::decode_cursor("2026-12-08T10:15:00+05:30");
  CHECK(rewind.modified_ms == *zoho::parse_time_ms("2026-12-08T04:45:00Z"));
  CHECK(rewind.deleted_ms == rewind.modified_ms);
  CHECK(rewind.id.empty());
  CHECK_THROWS_AS(zoho::decode_cursor("yesterday"), crmhost::sdk::Error);
  CHECK(zoho::compare_ids("99", "100") < 0);
}
