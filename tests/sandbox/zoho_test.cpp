// The Zoho CRM emulator of crm-sandbox over real loopback HTTP, as a plugin would meet it.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include "sandbox/zoho.hpp"
#include "util/time.hpp"

using namespace crmsandbox;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kOrg = 777;

struct ZReply {
  HttpResult raw;
  rapidjson::Document json;
  int status() const { return raw.status; }
  std::string str(const rapidjson::Value &v, const char *key) const {
    return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
  }
  std::string code() const { return str(json, "code"); }  // a request-level error
  const rapidjson::Value &item(rapidjson::SizeType i) const { return json["data"][i]; }
  std::string item_code(rapidjson::SizeType i) const { return str(item(i), "code"); }
  std::string detail(const char *key) const {
    return json.IsObject() && json.HasMember("details") ? str(json["details"], key) : "";
  }
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    if (json.IsObject() && json.HasMember("data"))
      for (const auto &r : json["data"].GetArray()) out.emplace_back(r["id"].GetString());
    return out;
  }
};

std::string url_encode(const std::string &text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// A started sandbox with org 777 at UTC+05:30, a client for it and a valid access token.
struct ZohoFixture {
  ZohoSandbox zoho;
  std::string token;
  explicit ZohoFixture(ZohoOptions options = {}) : zoho(std::move(options)) {
    zoho.add_org({.id = kOrg, .utc_offset_minutes = 330});
    zoho.add_client("client-1", "secret-1", "refresh-1", kOrg);
    zoho.start();
    token = zoho.issue_token(kOrg);
  }
  ZReply call(const std::string &method, const std::string &target, const std::string &body = "",
              Headers headers = {}, const std::string &dc = "") {
    headers.emplace_back("Content-Type", "application/json");
    if (!token.empty()) headers.emplace_back("Authorization", "Zoho-oauthtoken " + token);
    ZReply reply;
    reply.raw = http_request(method, zoho.api_base_url(dc) + target, headers, body, 10s);
    reply.json.Parse(reply.raw.body.data(), reply.raw.body.size());
    return reply;
  }
  ZReply refresh(const std::string &form, const std::string &query = "",
                 const std::string &dc = "") {
    ZReply reply;
    reply.raw = http_request(
        "POST", zoho.accounts_base_url(dc) + "/oauth/v2/token" + (query.empty() ? "" : "?" + query),
        {{"Content-Type", "application/x-www-form-urlencoded"}}, form, 10s);
    reply.json.Parse(reply.raw.body.data(), reply.raw.body.size());
    return reply;
  }
  ZReply admin(const std::string &method, const std::string &path, const std::string &body = "") {
    ZReply reply;
    reply.raw = http_request(method, zoho.api_base_url() + "/_sandbox/zoho/" + path,
                             {{"Content-Type", "application/json"}}, body, 10s);
    reply.json.Parse(reply.raw.body.data(), reply.raw.body.size());
    return reply;
  }
};

// A receiver for callbacks and webhooks: records each request, answers 200.
struct Receiver {
  std::mutex mutex;
  std::vector<HttpRequest> requests;
  LoopbackServer server{"127.0.0.1:0", [this](const HttpRequest &r) {
                          std::lock_guard lock(mutex);
                          requests.push_back(r);
                          return HttpResponse{200, "text/plain", {}, ""};
                        }};
  Receiver() { server.start(); }
  std::string url(const std::string &path = "/hooks/zoho?k=v&secret=s3") const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + path;
  }
  std::vector<HttpRequest> received() {
    std::lock_guard lock(mutex);
    return requests;
  }
};

int64_t parse_ms(const std::string &text) {
  return crmhost::timeutil::parse_iso8601_ms(text).value_or(-1);
}

std::string fields_list(int n) {
  std::string out = "Last_Name";
  for (int i = 1; i < n; ++i) out += ",F" + std::to_string(i);
  return out;
}

}  // namespace

TEST_CASE("zoho: the accounts server refreshes tokens from a form body or query params", "[zoho]") {
  ZohoFixture f;
  CHECK(f.zoho.accounts_port() != f.zoho.api_port());
  const auto form = f.refresh(
      "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=refresh-1");
  REQUIRE(form.status() == 200);
  CHECK(form.str(form.json, "api_domain") == f.zoho.api_base_url());
  CHECK(form.str(form.json, "token_type") == "Bearer");
  CHECK(form.json["expires_in"].GetInt() == 3600);
  const auto access = form.str(form.json, "access_token");
  CHECK(access.rfind("1000.", 0) == 0);
  const auto query = f.refresh(
      "",
      "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=refresh-1");
  REQUIRE(query.status() == 200);
  CHECK(query.str(query.json, "access_token") != access);
  // Failures: the accounts server's {"error": ...} shape.
  const auto bad_client = f.refresh(
      "grant_type=refresh_token&client_id=nope&client_secret=secret-1&refresh_token=refresh-1");
  CHECK(bad_client.status() == 200);  // (guess) errors in the body of a 200
  CHECK(bad_client.str(bad_client.json, "error") == "invalid_client");
  const auto bad_secret = f.refresh(
      "grant_type=refresh_token&client_id=client-1&client_secret=x&refresh_token=refresh-1");
  CHECK(bad_secret.str(bad_secret.json, "error") == "invalid_client_secret");
  const auto bad_refresh = f.refresh(
      "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=x");
  CHECK(bad_refresh.str(bad_refresh.json, "error") == "invalid_code");
  CHECK_FALSE(bad_refresh.json.HasMember("access_token"));
  const auto grant = f.refresh("grant_type=authorization_code&client_id=client-1");
  CHECK(grant.str(grant.json, "error") == "unsupported_grant_type");

  // The refreshed token works with Zoho's scheme only, until it expires.
  f.token = access;
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Last_Name").status() == 204);
  ZReply bearer;
  bearer.raw = http_request("GET", f.zoho.api_base_url() + "/crm/v8/Leads?fields=Last_Name",
                            {{"Authorization", "Bearer " + access}}, "", 5s);
  bearer.json.Parse(bearer.raw.body.data(), bearer.raw.body.size());
  CHECK(bearer.status() == 401);
  CHECK(bearer.code() == "AUTHENTICATION_FAILURE");
  f.zoho.advance_clock(3599s);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Last_Name").status() == 204);
  f.zoho.advance_clock(2s);
  const auto expired = f.call("GET", "/crm/v8/Leads?fields=Last_Name");
  CHECK(expired.status() == 401);
  CHECK(expired.code() == "INVALID_TOKEN");
  CHECK(expired.str(expired.json, "message") == "invalid oauth token");
  CHECK(expired.str(expired.json, "status") == "error");
  CHECK(expired.json["details"].IsObject());
  f.token = "1000.unknown";
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Last_Name").code() == "INVALID_TOKEN");
  CHECK(f.zoho.stats().unauthorized == 3);
  CHECK(f.zoho.stats().token_requests == 6);
}

TEST_CASE("zoho: a token from one data centre is refused by another's API host", "[zoho]") {
  ZohoOptions options;
  options.data_centres = {"com", "eu"};
  ZohoSandbox zoho(options);
  zoho.add_org({.id = 1, .data_centre = "com"});
  zoho.add_org({.id = 2, .data_centre = "eu"});
  zoho.add_client("c", "s", "r-eu", 2);
  zoho.start();
  REQUIRE(zoho.api_base_url("eu") != zoho.api_base_url("com"));
  REQUIRE(zoho.accounts_base_url("eu") != zoho.accounts_base_url());
  const auto refresh = [&](const std::string &dc) {
    const auto r = http_request("POST", zoho.accounts_base_url(dc) + "/oauth/v2/token", {},
                                "grant_type=refresh_token&client_id=c&client_secret=s&"
                                "refresh_token=r-eu",
                                5s);
    rapidjson::Document d;
    d.Parse(r.body.data(), r.body.size());
    return d;
  };
  // The refresh token is the EU accounts server's: the US one does not know it.
  CHECK(std::string(refresh("com")["error"].GetString()) == "invalid_code");
  const auto granted = refresh("eu");
  REQUIRE(granted.HasMember("access_token"));
  CHECK(granted["api_domain"].GetString() == zoho.api_base_url("eu"));
  const std::string token = granted["access_token"].GetString();
  const auto list = [&](const std::string &dc) {
    return http_request("GET", zoho.api_base_url(dc) + "/crm/v8/Contacts?fields=Last_Name",
                        {{"Authorization", "Zoho-oauthtoken " + token}}, "", 5s);
  };
  CHECK(list("eu").status == 204);
  const auto wrong = list("com");
  CHECK(wrong.status == 401);
  CHECK(wrong.body.find("\"INVALID_TOKEN\"") != std::string::npos);
  CHECK_THROWS_AS(zoho.add_org({.id = 3, .data_centre = "jp"}), std::invalid_argument);
}

TEST_CASE("zoho: listing needs fields, caps them at 50 and per_page at 200", "[zoho]") {
  ZohoFixture f;
  f.zoho.seed_generated(kOrg, "Leads", 5);
  const auto missing = f.call("GET", "/crm/v8/Leads");
  CHECK(missing.status() == 400);
  CHECK(missing.code() == "REQUIRED_PARAM_MISSING");
  CHECK(missing.detail("param_name") == "fields");
  CHECK(f.call("GET", "/crm/v8/Leads?fields=" + fields_list(50)).status() == 200);
  const auto many = f.call("GET", "/crm/v8/Leads?fields=" + fields_list(51));
  CHECK(many.status() == 400);
  CHECK(many.code() == "LIMIT_EXCEEDED");
  CHECK(many.json["details"]["limit"].GetInt() == 50);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email&per_page=200").status() == 200);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email&per_page=201").code() == "LIMIT_EXCEEDED");
  const auto module = f.call("GET", "/crm/v8/Widgets?fields=Email");
  CHECK(module.status() == 400);
  CHECK(module.code() == "INVALID_MODULE");
  const auto path = f.call("GET", "/crm/v8/Leads/1/2/3");
  CHECK(path.status() == 404);
  CHECK(path.code() == "INVALID_URL_PATTERN");
}

TEST_CASE(
    "zoho: lists sort by id desc by default, by times when asked, and render only the "
    "fields asked for",
    "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed_generated(kOrg, "Contacts", 4);
  // The oldest record changes last: Modified_Time order differs from id order.
  f.zoho.advance_clock(5s);
  f.zoho.update_record(kOrg, "Contacts", ids[0], {{"Title", std::string("CEO")}});
  const auto by_default = f.call("GET", "/crm/v8/Contacts?fields=Email,Modified_Time");
  REQUIRE(by_default.status() == 200);
  CHECK(by_default.ids() == std::vector<std::string>{ids[3], ids[2], ids[1], ids[0]});
  CHECK(by_default.str(by_default.json["info"], "sort_by") == "id");
  CHECK(by_default.str(by_default.json["info"], "sort_order") == "desc");
  const auto &first = by_default.item(0);
  CHECK(first.HasMember("Email"));
  CHECK(first.HasMember("Modified_Time"));
  CHECK_FALSE(first.HasMember("Last_Name"));
  CHECK_FALSE(first.HasMember("Created_Time"));
  const auto modified =
      f.call("GET", "/crm/v8/Contacts?fields=Email&sort_by=Modified_Time&sort_order=asc");
  CHECK(modified.ids() == std::vector<std::string>{ids[1], ids[2], ids[3], ids[0]});
  const auto created =
      f.call("GET", "/crm/v8/Contacts?fields=Email&sort_by=Created_Time&sort_order=desc");
  CHECK(created.ids() == std::vector<std::string>{ids[3], ids[2], ids[1], ids[0]});
  CHECK(f.call("GET", "/crm/v8/Contacts?fields=Email&sort_by=Email").code() == "INVALID_DATA");
  // /crm/v2 answers the same shapes.
  const auto v2 = f.call("GET", "/crm/v2/Contacts?fields=Email,Modified_Time");
  CHECK(v2.raw.body == by_default.raw.body);
  CHECK(f.call("GET", "/crm/v8/Deals?fields=Deal_Name").status() == 204);
  CHECK(f.call("GET", "/crm/v8/Deals?fields=Deal_Name").raw.body.empty());
}

TEST_CASE("zoho: page reaches the first 2000 records and page_token goes beyond", "[zoho]") {
  ZohoFixture f;
  f.zoho.seed_generated(kOrg, "Leads", 2150, {.spacing_ms = 10});
  const auto tenth = f.call("GET", "/crm/v8/Leads?fields=Last_Name&page=10&per_page=200");
  REQUIRE(tenth.status() == 200);
  CHECK(tenth.json["data"].Size() == 200);
  CHECK(tenth.json["info"]["more_records"].GetBool());
  CHECK(tenth.json["info"]["page"].GetInt() == 10);
  const auto beyond = f.call("GET", "/crm/v8/Leads?fields=Last_Name&page=11&per_page=200");
  CHECK(beyond.status() == 400);
  CHECK(beyond.code() == "DISCRETE_PAGINATION_LIMIT_EXCEEDED");

  // Walk every record with page tokens.
  std::set<std::string> seen;
  std::string next;
  int pages = 0;
  while (true) {
    const auto page = f.call("GET", "/crm/v8/Leads?fields=Last_Name&per_page=200" +
                                        (next.empty() ? std::string() : "&page_token=" + next));
    REQUIRE(page.status() == 200);
    ++pages;
    for (const auto &id : page.ids()) seen.insert(id);
    const auto &info = page.json["info"];
    CHECK(info["count"].GetInt() == static_cast<int>(page.json["data"].Size()));
    if (next.empty()) CHECK(info["previous_page_token"].IsNull());
    if (!info["more_records"].GetBool()) {
      CHECK(info["next_page_token"].IsNull());
      break;
    }
    next = info["next_page_token"].GetString();
    const std::string expiry = info["page_token_expiry"].GetString();
    CHECK(expiry.ends_with("+05:30"));
    CHECK(std::abs(parse_ms(expiry) - (f.zoho.now_ms() + 86'400'000)) < 5000);
    REQUIRE(pages < 20);
  }
  CHECK(pages == 11);
  CHECK(seen.size() == 2150);

  const auto first = f.call("GET", "/crm/v8/Leads?fields=Last_Name&per_page=100");
  const std::string token = first.json["info"]["next_page_token"].GetString();
  const auto both = f.call("GET", "/crm/v8/Leads?fields=Last_Name&page=2&page_token=" + token);
  CHECK(both.status() == 400);
  CHECK(both.code() == "AMBIGUITY_DURING_PROCESSING");
  const auto other_fields = f.call("GET", "/crm/v8/Leads?fields=Email&page_token=" + token);
  CHECK(other_fields.code() == "TOKEN_BOUND_DATA_MISMATCH");
  const auto other_sort =
      f.call("GET", "/crm/v8/Leads?fields=Last_Name&sort_order=asc&page_token=" + token);
  CHECK(other_sort.code() == "TOKEN_BOUND_DATA_MISMATCH");
  const auto second = f.call("GET", "/crm/v8/Leads?fields=Last_Name&page_token=" + token);
  REQUIRE(second.status() == 200);
  CHECK(second.ids().front() != first.ids().back());
  CHECK(std::stoll(second.ids().front()) < std::stoll(first.ids().back()));
  CHECK(second.str(second.json["info"], "previous_page_token") == token);

  // A short expiry the test can outlive.
  f.zoho.set_page_token_ttl(2s);
  const auto short_lived = f.call("GET", "/crm/v8/Leads?fields=Last_Name&per_page=10");
  const std::string brief = short_lived.json["info"]["next_page_token"].GetString();
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Last_Name&page_token=" + brief).status() == 200);
  f.zoho.advance_clock(3s);
  const auto expired = f.call("GET", "/crm/v8/Leads?fields=Last_Name&page_token=" + brief);
  CHECK(expired.status() == 400);
  CHECK(expired.code() == "EXPIRED_VALUE");
  CHECK(expired.detail("param_name") == "page_token");
}

TEST_CASE("zoho: If-Modified-Since lists only the records changed since, 204 when none", "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed_generated(kOrg, "Accounts", 3);
  f.zoho.advance_clock(60s);
  const auto between = zoho_time(f.zoho.now_ms() - 30'000, 330);
  const auto updated = f.call("PUT", "/crm/v8/Accounts/" + ids[1],
                              R"({"data":[{"Website":"https://new.example.com"}]})");
  REQUIRE(updated.status() == 200);
  const auto delta = f.call("GET", "/crm/v8/Accounts?fields=Account_Name,Modified_Time", "",
                            {{"If-Modified-Since", between}});
  REQUIRE(delta.status() == 200);
  CHECK(delta.ids() == std::vector<std::string>{ids[1]});
  // The same instant in UTC selects the same records.
  const auto utc = zoho_time(parse_ms(between), 0);
  CHECK(utc.ends_with("+00:00"));
  CHECK(f.call("GET", "/crm/v8/Accounts?fields=Account_Name", "", {{"If-Modified-Since", utc}})
            .ids() == std::vector<std::string>{ids[1]});
  f.zoho.advance_clock(10s);
  const auto none = f.call("GET", "/crm/v8/Accounts?fields=Account_Name", "",
                           {{"If-Modified-Since", zoho_time(f.zoho.now_ms() - 1000, 330)}});
  CHECK(none.status() == 204);
  CHECK(none.raw.body.empty());
  // A single record: 304 when unchanged since (the OAS lists Not Modified).
  CHECK(
      f.call("GET", "/crm/v8/Accounts/" + ids[0], "", {{"If-Modified-Since", between}}).status() ==
      304);
  CHECK(
      f.call("GET", "/crm/v8/Accounts/" + ids[1], "", {{"If-Modified-Since", between}}).status() ==
      200);
}

TEST_CASE("zoho: ids= lists only the records named, at most 100, unknown ones left out", "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed_generated(kOrg, "Contacts", 5);
  const std::string unknown = "4876876000000999999";
  // Encoded as the plugin sends it (%2C), in any order; the default order stays id desc.
  const auto some = f.call(
      "GET", "/crm/v8/Contacts?fields=Email&ids=" + ids[1] + "%2C" + unknown + "%2C" + ids[3]);
  REQUIRE(some.status() == 200);
  CHECK(some.ids() == std::vector<std::string>{ids[3], ids[1]});
  CHECK(some.json["info"]["count"].GetInt() == 2);
  CHECK(some.json["info"]["more_records"].GetBool() == false);
  // With the other parameters: sorted as asked, paged within the named records.
  const auto paged = f.call("GET",
                            "/crm/v8/Contacts?fields=Email&sort_by=id&sort_order=asc&"
                            "per_page=1&page=2&ids=" +
                                ids[0] + "," + ids[2] + "," + ids[4]);
  CHECK(paged.ids() == std::vector<std::string>{ids[2]});
  // None of them held: 204, as for an empty list.
  const auto none = f.call("GET", "/crm/v8/Contacts?fields=Email&ids=" + unknown);
  CHECK(none.status() == 204);
  CHECK(none.raw.body.empty());
  // Not ids: INVALID_DATA naming the parameter; more than 100: LIMIT_EXCEEDED.
  const auto bad = f.call("GET", "/crm/v8/Contacts?fields=Email&ids=" + ids[0] + ",abc");
  CHECK(bad.status() == 400);
  CHECK(bad.code() == "INVALID_DATA");
  CHECK(bad.detail("param_name") == "ids");
  std::string many;
  for (int i = 0; i < 101; ++i) many += (i ? "," : "") + std::to_string(4876876000000100000 + i);
  const auto over = f.call("GET", "/crm/v8/Contacts?fields=Email&ids=" + many);
  CHECK(over.status() == 400);
  CHECK(over.code() == "LIMIT_EXCEEDED");
  CHECK(over.json["details"]["limit"].GetInt() == 100);
}

TEST_CASE("zoho: get by id renders every field with times in the org's UTC offset", "[zoho]") {
  ZohoFixture f;
  const auto id =
      f.zoho.create_record(kOrg, "Leads",
                           {{"First_Name", std::string("Ann")},
                            {"Last_Name", std::string("Lee")},
                            {"Email", std::string("ann@example.com")},
                            {"Annual_Revenue", 1500.5},
                            {"Product_Interest", std::vector<std::string>{"Widgets", "Support"}}});
  const auto stored = *f.zoho.record(kOrg, "Leads", id);
  const auto got = f.call("GET", "/crm/v8/Leads/" + id);
  REQUIRE(got.status() == 200);
  const auto &r = got.item(0);
  CHECK(got.str(r, "id") == id);
  CHECK(got.str(r, "Full_Name") == "Ann Lee");
  CHECK(r["Annual_Revenue"].GetDouble() == 1500.5);
  REQUIRE(r["Product_Interest"].IsArray());
  CHECK(r["Product_Interest"][1].GetString() == std::string("Support"));
  CHECK(r["Owner"]["name"].GetString() == std::string("Sandbox User"));
  const std::string modified = r["Modified_Time"].GetString();
  CHECK(modified.size() == 25);
  CHECK(modified.ends_with("+05:30"));
  CHECK(parse_ms(modified) == stored.modified_ms);
  // The wall-clock digits are UTC plus 5:30.
  CHECK(modified.substr(0, 19) == zoho_time(stored.modified_ms + 330 * 60'000, 0).substr(0, 19));
  // Another offset per org, set at run time.
  f.zoho.set_org_utc_offset(kOrg, -300);
  const std::string west =
      f.call("GET", "/crm/v8/Leads/" + id).item(0)["Modified_Time"].GetString();
  CHECK(west.ends_with("-05:00"));
  CHECK(parse_ms(west) == stored.modified_ms);
  CHECK(zoho_time(1796705100000, 330) == "2026-12-08T10:15:00+05:30");
  const auto only = f.call("GET", "/crm/v8/Leads/" + id + "?fields=Email");
  CHECK_FALSE(only.item(0).HasMember("Last_Name"));
  CHECK(f.call("GET", "/crm/v8/Leads/4876876000000999999").status() == 204);
}

TEST_CASE("zoho: search criteria with and/or, escapes and operators; email; limits", "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed(
      kOrg, "Contacts",
      {{{"Last_Name", std::string("Burns")},
        {"First_Name", std::string("Monty")},
        {"Email", std::string("monty@plant.com")}},
       {{"Last_Name", std::string("Simpson")},
        {"First_Name", std::string("Homer")},
        {"Email", std::string("homer@plant.com")}},
       {{"Last_Name", std::string("Smith (Jr), W")}, {"Email", std::string("w@x.org")}}});
  const auto search = [&](const std::string &criteria) {
    return f.call("GET", "/crm/v8/Contacts/search?criteria=" + url_encode(criteria));
  };
  CHECK(search("(Last_Name:equals:Burns)").ids() == std::vector<std::string>{ids[0]});
  CHECK(search("(Last_Name:starts_with:s)").ids() == std::vector<std::string>{ids[2], ids[1]});
  CHECK(search("((Last_Name:starts_with:S)and(First_Name:equals:Homer))").ids() ==
        std::vector<std::string>{ids[1]});
  CHECK(search("((Last_Name:equals:Burns)or(Email:equals:w@x.org))").ids() ==
        std::vector<std::string>{ids[2], ids[0]});
  CHECK(search(R"((Last_Name:equals:Smith \(Jr\)\, W))").ids() == std::vector<std::string>{ids[2]});
  CHECK(search("(Last_Name:in:Burns,Simpson)").ids() == std::vector<std::string>{ids[1], ids[0]});
  f.zoho.advance_clock(10s);
  const auto cut = zoho_time(f.zoho.now_ms() - 5000, 330);
  f.zoho.update_record(kOrg, "Contacts", ids[1], {{"Title", std::string("Safety")}});
  CHECK(search("(Modified_Time:greater_than:" + cut + ")").ids() ==
        std::vector<std::string>{ids[1]});
  CHECK(search("(Modified_Time:less_than:" + cut + ")").ids() ==
        std::vector<std::string>{ids[2], ids[0]});
  const auto none = search("(Last_Name:equals:Flanders)");
  CHECK(none.status() == 204);
  CHECK(none.raw.body.empty());
  const auto by_email = f.call("GET", "/crm/v8/Contacts/search?email=HOMER%40plant.com");
  CHECK(by_email.ids() == std::vector<std::string>{ids[1]});
  const auto bad = search("(Last_Name:equals:Burns");
  CHECK(bad.status() == 400);
  CHECK(bad.code() == "INVALID_QUERY");
  CHECK(search("(Last_Name:like:Burns)").code() == "INVALID_QUERY");
  CHECK(f.call("GET", "/crm/v8/Contacts/search").code() == "REQUIRED_PARAM_MISSING");

  f.zoho.seed_generated(kOrg, "Leads", 2100);
  const auto all =
      "/crm/v8/Leads/search?criteria=" + url_encode("(Email:starts_with:)") + "&per_page=200&page=";
  const auto tenth = f.call("GET", all + "10");
  REQUIRE(tenth.status() == 200);
  CHECK(tenth.json["data"].Size() == 200);
  const auto eleventh = f.call("GET", all + "11");
  CHECK(eleventh.status() == 400);
  CHECK(eleventh.code() == "LIMIT_REACHED");
}

TEST_CASE("zoho: fresh writes reach search after the index delay", "[zoho]") {
  ZohoFixture f;
  f.zoho.set_search_index_delay(2000ms);
  const auto id = f.zoho.create_record(kOrg, "Leads", {{"Last_Name", std::string("Fresh")}});
  const auto target = "/crm/v8/Leads/search?criteria=" + url_encode("(Last_Name:equals:Fresh)");
  CHECK(f.call("GET", target).status() == 204);
  f.zoho.advance_clock(3s);
  CHECK(f.call("GET", target).ids() == std::vector<std::string>{id});
}

TEST_CASE("zoho: inserts answer per record in Zoho's shape, mandatory and typed fields checked",
          "[zoho]") {
  ZohoFixture f;
  const auto reply = f.call("POST", "/crm/v8/Leads", R"({"data":[
      {"Last_Name":"Ok","Email":"ok@example.com","Product_Interest":["A","B"]},
      {"First_Name":"No last name"},
      {"Last_Name":"Bad","Email":"not-an-email"}]})");
  REQUIRE(reply.status() == 207);
  const auto &ok = reply.item(0);
  CHECK(reply.str(ok, "code") == "SUCCESS");
  CHECK(reply.str(ok, "message") == "record added");
  CHECK(reply.str(ok, "status") == "success");
  const std::string id = ok["details"]["id"].GetString();
  CHECK(std::string(ok["details"]["Modified_Time"].GetString()).ends_with("+05:30"));
  CHECK(ok["details"].HasMember("Created_Time"));
  CHECK(ok["details"]["Created_By"]["id"].IsString());
  CHECK(reply.item_code(1) == "MANDATORY_NOT_FOUND");
  CHECK(reply.str(reply.item(1)["details"], "api_name") == "Last_Name");
  CHECK(reply.str(reply.item(1)["details"], "json_path") == "$.data[1].Last_Name");
  CHECK(reply.item_code(2) == "INVALID_DATA");
  CHECK(reply.str(reply.item(2)["details"], "api_name") == "Email");
  CHECK(reply.str(reply.item(2)["details"], "expected_data_type") == "email");
  CHECK(f.zoho.count(kOrg, "Leads") == 1);
  CHECK(std::get<std::vector<std::string>>(
            f.zoho.record(kOrg, "Leads", id)->fields.at("Product_Interest")) ==
        std::vector<std::string>{"A", "B"});

  const auto mandatory = [&](const std::string &module, const std::string &field) {
    const auto r = f.call("POST", "/crm/v8/" + module, R"({"data":[{"Phone":"1"}]})");
    return r.status() == 400 && r.item_code(0) == "MANDATORY_NOT_FOUND" &&
           r.str(r.item(0)["details"], "api_name") == field;
  };
  CHECK(mandatory("Contacts", "Last_Name"));
  CHECK(mandatory("Accounts", "Account_Name"));
  CHECK(mandatory("Deals", "Deal_Name"));
  const auto amount =
      f.call("POST", "/crm/v8/Deals", R"({"data":[{"Deal_Name":"D","Amount":"x"}]})");
  CHECK(amount.item_code(0) == "INVALID_DATA");
  CHECK(f.call("POST", "/crm/v8/Deals", R"({"data":[{"Deal_Name":"D","Amount":12}]})").status() ==
        201);

  std::string many;
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + R"({"Last_Name":"N"})";
  const auto over = f.call("POST", "/crm/v8/Leads", R"({"data":[)" + many + "]}");
  CHECK(over.status() == 400);
  CHECK(over.code() == "LIMIT_EXCEEDED");
  CHECK(f.call("POST", "/crm/v8/Leads", R"({"data":[)" + many.substr(many.find("},{") + 2) + "]}")
            .status() == 201);
  CHECK(f.zoho.count(kOrg, "Leads") == 101);
  CHECK(f.call("POST", "/crm/v8/Leads", R"({"data":[]})").code() == "REQUIRED_PARAM_MISSING");

  f.zoho.set_unique_fields("Accounts", {"Website"});
  f.call("POST", "/crm/v8/Accounts", R"({"data":[{"Account_Name":"A","Website":"a.com"}]})");
  const auto dup =
      f.call("POST", "/crm/v8/Accounts", R"({"data":[{"Account_Name":"B","Website":"A.com"}]})");
  CHECK(dup.status() == 400);
  CHECK(dup.item_code(0) == "DUPLICATE_DATA");
  CHECK(dup.str(dup.item(0)["details"], "api_name") == "Website");
  CHECK(dup.item(0)["details"]["duplicate_record"]["id"].IsString());
}

TEST_CASE("zoho: updates by record id or path id, with If-Unmodified-Since", "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed_generated(kOrg, "Contacts", 2);
  const auto bulk = f.call("PUT", "/crm/v8/Contacts",
                           R"({"data":[{"id":")" + ids[0] +
                               R"(","Title":"A"},{"Title":"B"},)"
                               R"({"id":"4876876000000999999","Title":"C"}]})");
  REQUIRE(bulk.status() == 207);
  CHECK(bulk.item_code(0) == "SUCCESS");
  CHECK(bulk.str(bulk.item(0), "message") == "record updated");
  CHECK(bulk.item_code(1) == "MANDATORY_NOT_FOUND");
  CHECK(bulk.str(bulk.item(1)["details"], "api_name") == "id");
  CHECK(bulk.item_code(2) == "INVALID_DATA");
  CHECK(std::get<std::string>(f.zoho.record(kOrg, "Contacts", ids[0])->fields.at("Title")) == "A");
  const auto single = f.call("PUT", "/crm/v8/Contacts/" + ids[1], R"({"data":[{"Title":"Z"}]})");
  CHECK(single.status() == 200);
  CHECK(std::get<std::string>(f.zoho.record(kOrg, "Contacts", ids[1])->fields.at("Title")) == "Z");
  const auto cleared =
      f.call("PUT", "/crm/v8/Contacts/" + ids[1], R"({"data":[{"Last_Name":null}]})");
  CHECK(cleared.item_code(0) == "MANDATORY_NOT_FOUND");

  // Optimistic concurrency: a change after the given time refuses the update.
  const auto seen = zoho_time(f.zoho.record(kOrg, "Contacts", ids[0])->modified_ms, 330);
  f.zoho.advance_clock(5s);
  CHECK(
      f.call("PUT", "/crm/v8/Contacts/" + ids[0], R"({"data":[{"Title":"B"}]})", {}, "").status() ==
      200);
  const auto stale = f.call("PUT", "/crm/v8/Contacts/" + ids[0], R"({"data":[{"Title":"C"}]})",
                            {{"If-Unmodified-Since", seen}});
  CHECK(stale.status() == 412);
  CHECK(stale.item_code(0) == "ALREADY_MODIFIED");
  CHECK(std::get<std::string>(f.zoho.record(kOrg, "Contacts", ids[0])->fields.at("Title")) == "B");
  const auto fresh = zoho_time(f.zoho.now_ms(), 330);
  CHECK(f.call("PUT", "/crm/v8/Contacts/" + ids[0], R"({"data":[{"Title":"C"}]})",
               {{"If-Unmodified-Since", fresh}})
            .status() == 200);
}

TEST_CASE("zoho: upserts match on the system field or duplicate_check_fields", "[zoho]") {
  ZohoFixture f;
  const auto existing = f.zoho
                            .seed(kOrg, "Leads",
                                  {{{"Last_Name", std::string("Old")},
                                    {"Email", std::string("old@example.com")},
                                    {"Phone", std::string("555")}}})
                            .front();
  const auto reply = f.call("POST", "/crm/v8/Leads/upsert", R"({"data":[
      {"Last_Name":"Old2","Email":"OLD@example.com"},
      {"Last_Name":"New","Email":"new@example.com"}],"trigger":["workflow"]})");
  REQUIRE(reply.status() == 201);
  CHECK(reply.str(reply.item(0), "action") == "update");
  CHECK(reply.str(reply.item(0), "duplicate_field") == "Email");
  CHECK(reply.str(reply.item(0)["details"], "id") == existing);
  CHECK(reply.str(reply.item(0), "message") == "record updated");
  CHECK(reply.str(reply.item(1), "action") == "insert");
  CHECK(reply.item(1)["duplicate_field"].IsNull());
  CHECK(reply.str(reply.item(1), "message") == "record added");
  CHECK(f.zoho.count(kOrg, "Leads") == 2);
  // Given fields replace the system field: Email is ignored, Phone matches.
  const auto by_phone = f.call("POST", "/crm/v8/Leads/upsert",
                               R"({"data":[{"Last_Name":"P","Email":"new@example.com",)"
                               R"("Phone":"555"}],"duplicate_check_fields":["Phone"]})");
  REQUIRE(by_phone.status() == 200);
  CHECK(by_phone.str(by_phone.item(0), "duplicate_field") == "Phone");
  CHECK(by_phone.str(by_phone.item(0)["details"], "id") == existing);
  const auto no_match = f.call("POST", "/crm/v8/Leads/upsert",
                               R"({"data":[{"Last_Name":"Q","Email":"new@example.com"}],)"
                               R"("duplicate_check_fields":["Phone"]})");
  CHECK(no_match.str(no_match.item(0), "action") == "insert");
  CHECK(f.zoho.count(kOrg, "Leads") == 3);
  const auto calls = f.zoho.write_calls();
  REQUIRE(calls.size() == 3);
  CHECK(calls[0].operation == "upsert");
  CHECK(calls[0].trigger == std::vector<std::string>{"workflow"});
  CHECK_FALSE(calls[0].duplicate_check_fields.has_value());
  CHECK(calls[1].duplicate_check_fields == std::vector<std::string>{"Phone"});
  CHECK(calls[1].ids == std::vector<std::string>{existing});
  const auto stale = f.call("POST", "/crm/v8/Leads/upsert",
                            R"({"data":[{"Last_Name":"R","Phone":"555"}],)"
                            R"("duplicate_check_fields":["Phone"]})",
                            {{"If-Unmodified-Since", zoho_time(f.zoho.now_ms() - 60'000, 0)}});
  CHECK(stale.status() == 412);
  CHECK(stale.item_code(0) == "ALREADY_MODIFIED");
}

TEST_CASE("zoho: deletes go to the recycle bin and the deleted list", "[zoho]") {
  ZohoFixture f;
  const auto ids = f.zoho.seed(kOrg, "Deals",
                               {{{"Deal_Name", std::string("D1")}},
                                {{"Deal_Name", std::string("D2")}},
                                {{"Deal_Name", std::string("D3")}}});
  CHECK(f.call("GET", "/crm/v8/Deals/deleted?type=all").status() == 204);
  const auto reply =
      f.call("DELETE", "/crm/v8/Deals?ids=" + ids[0] + "," + ids[1] + ",4876876000000999999");
  REQUIRE(reply.status() == 207);
  CHECK(reply.item_code(0) == "SUCCESS");
  CHECK(reply.str(reply.item(0), "message") == "record deleted");
  CHECK(reply.str(reply.item(0)["details"], "id") == ids[0]);
  CHECK(reply.item_code(2) == "INVALID_DATA");
  CHECK(f.zoho.count(kOrg, "Deals") == 1);
  CHECK(f.call("DELETE", "/crm/v8/Deals").code() == "REQUIRED_PARAM_MISSING");
  CHECK(f.call("DELETE", "/crm/v8/Deals/" + ids[2]).status() == 200);
  f.zoho.empty_recycle_bin(kOrg, "Deals");
  f.zoho.advance_clock(2s);
  CHECK(f.zoho.delete_record(kOrg, "Deals", "1") == false);
  const auto again = f.zoho.seed(kOrg, "Deals", {{{"Deal_Name", std::string("D4")}}});
  f.zoho.delete_record(kOrg, "Deals", again[0]);
  const auto all = f.call("GET", "/crm/v8/Deals/deleted?type=all&per_page=2");
  REQUIRE(all.status() == 200);
  CHECK(all.json["data"].Size() == 2);
  CHECK(all.json["info"]["more_records"].GetBool());
  const auto &newest = all.item(0);
  CHECK(all.str(newest, "id") == again[0]);
  CHECK(all.str(newest, "display_name") == "D4");
  CHECK(all.str(newest, "type") == "recycle");
  CHECK(std::string(newest["deleted_time"].GetString()).ends_with("+05:30"));
  CHECK(newest["deleted_by"]["name"].IsString());
  CHECK(newest["created_by"]["id"].IsString());
  CHECK(f.call("GET", "/crm/v8/Deals/deleted?type=recycle").ids() ==
        std::vector<std::string>{again[0]});
  CHECK(f.call("GET", "/crm/v8/Deals/deleted?type=permanent").json["data"].Size() == 3);
  CHECK(f.call("GET", "/crm/v8/Deals/deleted?type=permanent", "",
               {{"If-Modified-Since", zoho_time(f.zoho.now_ms() - 1000, 330)}})
            .status() == 204);
  CHECK(f.call("GET", "/crm/v8/Deals/deleted?type=bogus").code() == "INVALID_DATA");
}

TEST_CASE("zoho: generated seeds are deterministic and carry multi-select arrays on request",
          "[zoho]") {
  ZohoSandbox a, b, c;
  a.seed_generated(1, "Leads", 9, {.seed = 42, .multi_select = true});
  b.seed_generated(1, "Leads", 9, {.seed = 42, .multi_select = true});
  c.seed_generated(1, "Leads", 9, {.seed = 43});
  const auto ra = a.records(1, "Leads"), rb = b.records(1, "Leads"), rc = c.records(1, "Leads");
  REQUIRE(ra.size() == 9);
  bool all_same = true, any_differs = false;
  size_t arrays = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    all_same = all_same && ra[i].fields == rb[i].fields && ra[i].id == rb[i].id;
    any_differs = any_differs || ra[i].fields.at("Email") != rc[i].fields.at("Email");
    if (const auto it = ra[i].fields.find("Product_Interest"); it != ra[i].fields.end()) {
      CHECK(std::holds_alternative<std::vector<std::string>>(it->second));
      ++arrays;
    }
    CHECK_FALSE(rc[i].fields.count("Product_Interest"));
  }
  CHECK(all_same);
  CHECK(any_differs);
  CHECK(arrays == 3);
  for (const char *module : {"Contacts", "Accounts", "Deals"})
    CHECK(a.seed_generated(1, module, 2).size() == 2);
  CHECK(a.count(1, "Deals") == 2);
  CHECK_THROWS_AS(a.seed_generated(1, "Widgets", 1), std::invalid_argument);
  CHECK_THROWS_AS(a.seed(1, "Leads", {{{"Email", std::string("x@y.z")}}}), std::invalid_argument);
}

TEST_CASE("zoho: API credits per rolling 24 h answer Zoho's 429 once spent", "[zoho]") {
  ZohoFixture f;
  f.zoho.set_credits(kOrg, 5);
  for (int i = 0; i < 5; ++i) REQUIRE(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 204);
  const auto limited = f.call("GET", "/crm/v8/Leads?fields=Email");
  CHECK(limited.status() == 429);
  CHECK(limited.raw.body ==
        R"({"code":"TOO_MANY_REQUESTS","details":{},"message":"too many requests. please try )"
        R"(again after some time","status":"error"})");
  CHECK(f.zoho.credits_used(kOrg) == 5);
  // Another org keeps its own credits.
  f.zoho.add_org({.id = 888});
  const auto own = f.token;
  f.token = f.zoho.issue_token(888);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 204);
  f.token = own;
  f.zoho.advance_clock(std::chrono::hours(24) - 10s);
  f.token = f.zoho.issue_token(kOrg);  // the first one expired long ago
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 429);
  f.zoho.advance_clock(11s);  // the window rolls past the first five calls
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 204);
  const auto stats = f.zoho.stats();
  CHECK(stats.limited_credits == 2);
  CHECK(stats.too_many_requests() == 2);
  CHECK(stats.by_path.at("GET /crm/v8/Leads") == 9);
  const auto over_http = f.admin("GET", "stats");
  CHECK(over_http.json["limited_credits"].GetInt() == 2);
  CHECK(over_http.json["by_path"]["GET /crm/v8/Leads"].GetInt() == 9);
  CHECK(f.admin("DELETE", "stats").status() == 200);
  CHECK(f.zoho.stats().requests == 0);
}

TEST_CASE("zoho: requests over the org's concurrency cap get 429 while others are in flight",
          "[zoho]") {
  ZohoFixture f;
  f.zoho.set_concurrency(kOrg, 2);
  f.zoho.set_faults({.latency_ms = 1500});
  std::mutex mutex;
  std::vector<int> statuses;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(i < 2 ? 0 : 300));
      const auto r = f.call("GET", "/crm/v8/Leads?fields=Email");
      std::lock_guard lock(mutex);
      statuses.push_back(r.status());
    });
  for (auto &t : threads) t.join();
  CHECK(std::count(statuses.begin(), statuses.end(), 204) == 2);
  CHECK(std::count(statuses.begin(), statuses.end(), 429) == 2);
  CHECK(f.zoho.stats().limited_concurrency == 2);
  // Once they finished, the slots are free again.
  f.zoho.set_faults({});
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 204);
}

TEST_CASE("zoho: actions/watch subscribes with Zoho's expiry and token rules", "[zoho]") {
  ZohoFixture f;
  Receiver receiver;
  const auto now = f.zoho.now_ms();
  const auto subscribe = [&](const std::string &id, const std::string &extra) {
    return f.call("POST", "/crm/v8/actions/watch",
                  R"({"watch":[{"channel_id":)" + id +
                      R"(,"events":["Leads.all","Contacts.create"],"notify_url":")" +
                      receiver.url() + "\"" + extra + "}]}");
  };
  const auto created = subscribe("1000000068001", R"(,"token":"tok-1")");
  REQUIRE(created.status() == 201);
  CHECK(created.str(created.json["watch"][0], "code") == "SUCCESS");
  const auto &events = created.json["watch"][0]["details"]["events"];
  REQUIRE(events.Size() == 2);
  CHECK(created.str(events[0], "channel_id") == "1000000068001");
  CHECK(created.str(events[0], "resource_name") == "Contacts");
  // Expiry: absent -> 1 h; beyond a week -> 1 h; within a week -> as asked.
  const auto expiry = [&](const std::string &id) {
    for (const auto &c : f.zoho.channels(kOrg))
      if (c.channel_id == id) return c.expiry_ms;
    return int64_t(-1);
  };
  CHECK(std::abs(expiry("1000000068001") - (now + 3'600'000)) < 5000);
  subscribe("1000000068002",
            R"(,"channel_expiry":")" + zoho_time(now + 8 * 86'400'000LL, 330) + "\"");
  CHECK(std::abs(expiry("1000000068002") - (now + 3'600'000)) < 5000);
  const auto three_days = zoho_time(now + 3 * 86'400'000LL, 330);
  subscribe("1000000068003", R"(,"channel_expiry":")" + three_days + "\"");
  CHECK(expiry("1000000068003") == parse_ms(three_days));
  const auto long_token = subscribe("1000000068004", R"(,"token":")" + std::string(50, 't') + "\"");
  CHECK(long_token.status() == 400);
  CHECK(long_token.str(long_token.json["watch"][0], "code") == "INVALID_DATA");
  CHECK(subscribe("1000000068004", R"(,"token":")" + std::string(49, 't') + "\"").status() == 201);
  CHECK(subscribe("\"abc\"", "").status() == 400);

  // Details, replace, patch, unsubscribe.
  const auto details = f.call("GET", "/crm/v8/actions/watch?channel_id=1000000068001");
  REQUIRE(details.status() == 200);
  CHECK(details.str(details.json["watch"][0], "token") == "tok-1");
  CHECK(details.json["watch"].Size() == 1);
  const auto replaced =
      f.call("PUT", "/crm/v8/actions/watch",
             R"({"watch":[{"channel_id":"1000000068001","events":["Deals.edit"],"notify_url":")" +
                 receiver.url() + R"(","token":"tok-2"}]})");
  CHECK(replaced.status() == 200);
  auto channel = f.zoho.channels(kOrg).front();
  CHECK(channel.events == std::vector<std::string>{"Deals.edit"});
  CHECK(channel.token == "tok-2");
  const auto patched =
      f.call("PATCH", "/crm/v8/actions/watch",
             R"({"watch":[{"channel_id":"1000000068001","events":["Leads.edit"]}]})");
  CHECK(patched.status() == 200);
  channel = f.zoho.channels(kOrg).front();
  CHECK(channel.events == std::vector<std::string>{"Leads.edit"});
  CHECK(channel.token == "tok-2");  // untouched by PATCH
  f.call(
      "PATCH", "/crm/v8/actions/watch",
      R"({"watch":[{"channel_id":"1000000068001","events":["Leads.edit"],"_delete_events":true}]})");
  CHECK(f.zoho.channels(kOrg).front().events.empty());
  const auto removed = f.call("DELETE",
                              "/crm/v8/actions/watch?channel_ids=1000000068001,"
                              "1000000068002");
  CHECK(removed.status() == 200);
  CHECK(f.zoho.channels(kOrg).size() == 2);
  CHECK(f.call("DELETE", "/crm/v8/actions/watch?channel_ids=42").status() == 202);
  f.call("DELETE", "/crm/v8/actions/watch?channel_ids=1000000068003,1000000068004");
  CHECK(f.call("GET", "/crm/v8/actions/watch").status() == 204);
}

TEST_CASE(
    "zoho: watch callbacks carry Zoho's fields and stop when the channel expires, unless "
    "renewed",
    "[zoho]") {
  ZohoFixture f;
  Receiver receiver;
  const auto body = [&](const std::string &id, const std::string &expiry) {
    return R"({"watch":[{"channel_id":)" + id +
           R"(,"events":["Leads.create","Leads.edit","Leads.delete"],"notify_url":")" +
           receiver.url() + R"(","token":"secret-token","return_affected_field_values":true)" +
           (expiry.empty() ? "" : R"(,"channel_expiry":")" + expiry + "\"") + "}]}";
  };
  REQUIRE(f.call("POST", "/crm/v8/actions/watch", body("1000000068001", "")).status() == 201);
  const auto inserted = f.call("POST", "/crm/v8/Leads",
                               R"({"data":[{"Last_Name":"A"},{"Last_Name":"B"}],"trigger":[]})");
  REQUIRE(inserted.status() == 201);
  const std::string a = inserted.item(0)["details"]["id"].GetString();
  const std::string b = inserted.item(1)["details"]["id"].GetString();
  f.call("PUT", "/crm/v8/Leads/" + a, R"({"data":[{"Mobile":"+32 470"}]})");
  f.call("DELETE", "/crm/v8/Leads?ids=" + b);
  REQUIRE(f.zoho.wait_for_deliveries(3, 5s));
  const auto got = receiver.received();
  REQUIRE(got.size() == 3);
  CHECK(got[0].target == "/hooks/zoho?k=v&secret=s3");
  rapidjson::Document insert, update, remove;
  insert.Parse(got[0].body.data(), got[0].body.size());
  update.Parse(got[1].body.data(), got[1].body.size());
  remove.Parse(got[2].body.data(), got[2].body.size());
  CHECK(insert["operation"].GetString() == std::string("insert"));
  CHECK(insert["ids"].Size() == 2);
  CHECK(insert["ids"][0].GetString() == a);
  CHECK(insert["module"].GetString() == std::string("Leads"));
  CHECK(insert["channel_id"].IsString());
  CHECK(insert["channel_id"].GetString() == std::string("1000000068001"));
  CHECK(insert["token"].GetString() == std::string("secret-token"));
  CHECK(insert["query_params"]["k"].GetString() == std::string("v"));
  CHECK(insert["query_params"]["secret"].GetString() == std::string("s3"));
  CHECK(std::string(insert["resource_uri"].GetString()) == f.zoho.api_base_url() + "/crm/v2/Leads");
  CHECK(insert["server_time"].IsInt64());
  CHECK(std::abs(insert["server_time"].GetInt64() - f.zoho.now_ms()) < 10'000);
  CHECK(update["operation"].GetString() == std::string("update"));
  CHECK(update["affected_fields"][0][a.c_str()][0].GetString() == std::string("Mobile"));
  CHECK(update["affected_values"][0]["record_id"].GetString() == a);
  CHECK(update["affected_values"][0]["values"]["Mobile"].GetString() == std::string("+32 470"));
  CHECK(remove["operation"].GetString() == std::string("delete"));
  CHECK(remove["ids"][0].GetString() == b);
  const auto deliveries = f.zoho.deliveries();
  CHECK(deliveries[0].kind == "notification");
  CHECK(deliveries[0].status == 200);

  // Past the hour the channel is gone: no callback.
  f.zoho.clear_deliveries();
  f.zoho.advance_clock(3601s);
  f.token = f.zoho.issue_token(kOrg);
  f.zoho.create_record(kOrg, "Leads", {{"Last_Name", std::string("Unheard")}});
  CHECK_FALSE(f.zoho.wait_for_deliveries(1, 500ms));
  CHECK(f.call("GET", "/crm/v8/actions/watch").status() == 204);

  // A renewal before the expiry keeps callbacks coming past the first expiry.
  REQUIRE(f.call("POST", "/crm/v8/actions/watch",
                 body("1000000068002", zoho_time(f.zoho.now_ms() + 600'000, 330)))
              .status() == 201);
  f.zoho.advance_clock(500s);
  REQUIRE(f.call("POST", "/crm/v8/actions/watch",
                 body("1000000068002", zoho_time(f.zoho.now_ms() + 600'000, 330)))
              .status() == 201);
  f.zoho.advance_clock(500s);  // 1000 s after the first subscription: only the renewal holds
  f.zoho.create_record(kOrg, "Leads", {{"Last_Name", std::string("Heard")}});
  REQUIRE(f.zoho.wait_for_deliveries(1, 5s));
  CHECK(f.zoho.deliveries().front().channel_id == "1000000068002");
  f.zoho.advance_clock(601s);
  f.zoho.clear_deliveries();
  f.zoho.create_record(kOrg, "Leads", {{"Last_Name", std::string("Late")}});
  CHECK_FALSE(f.zoho.wait_for_deliveries(1, 500ms));
}

TEST_CASE("zoho: workflow webhooks fire unless trigger leaves workflow out", "[zoho]") {
  ZohoFixture f;
  Receiver receiver;
  f.zoho.add_workflow_rule({.org_id = kOrg,
                            .module = "Leads",
                            .url = receiver.url("/hooks/wf"),
                            .header_name = "X-Zoho-Secret",
                            .header_value = "shh"});
  f.zoho.add_workflow_rule(
      {.org_id = kOrg,
       .module = "Contacts",
       .events = {"edit"},
       .url = receiver.url("/hooks/custom"),
       .payload_template = R"({"op":"${operation}","id":"${id}","name":"${Last_Name}"})"});
  // trigger omitted: workflow runs.
  const auto plain = f.call("POST", "/crm/v8/Leads", R"({"data":[{"Last_Name":"One"}]})");
  const std::string id = plain.item(0)["details"]["id"].GetString();
  REQUIRE(f.zoho.wait_for_deliveries(1, 5s));
  auto got = receiver.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].header("X-Zoho-Secret") == "shh");
  rapidjson::Document payload;
  payload.Parse(got[0].body.data(), got[0].body.size());
  CHECK(payload["operation"].GetString() == std::string("Leads.create"));
  CHECK(payload["data"][0]["id"].GetString() == id);
  CHECK(payload["data"][0]["Last_Name"].GetString() == std::string("One"));
  // trigger [] runs none; the call records it.
  f.call("PUT", "/crm/v8/Leads/" + id, R"({"data":[{"Company":"X"}],"trigger":[]})");
  f.call("PUT", "/crm/v8/Leads/" + id, R"({"data":[{"Company":"Y"}],"trigger":["approval"]})");
  CHECK_FALSE(f.zoho.wait_for_deliveries(2, 500ms));
  const auto calls = f.zoho.write_calls();
  REQUIRE(calls.size() == 3);
  CHECK_FALSE(calls[0].trigger.has_value());
  CHECK(calls[1].trigger == std::vector<std::string>{});
  CHECK(calls[1].body.find("\"trigger\":[]") != std::string::npos);
  f.call("PUT", "/crm/v8/Leads/" + id, R"({"data":[{"Company":"Z"}],"trigger":["workflow"]})");
  f.call("DELETE", "/crm/v8/Leads/" + id);
  REQUIRE(f.zoho.wait_for_deliveries(3, 5s));
  got = receiver.received();
  CHECK(got[1].body.find("\"operation\":\"Leads.edit\"") != std::string::npos);
  CHECK(got[2].body.find("\"operation\":\"Leads.delete\"") != std::string::npos);
  // A custom payload, on edits only.
  const auto contact = f.zoho.create_record(kOrg, "Contacts", {{"Last_Name", std::string("Q\"")}});
  f.zoho.update_record(kOrg, "Contacts", contact, {{"Title", std::string("T")}});
  REQUIRE(f.zoho.wait_for_deliveries(4, 5s));
  CHECK_FALSE(f.zoho.wait_for_deliveries(5, 300ms));
  got = receiver.received();
  CHECK(got[3].target == "/hooks/custom");
  CHECK(got[3].body == R"({"op":"Contacts.edit","id":")" + contact + R"(","name":"Q\""})");
  const auto d = f.zoho.deliveries();
  CHECK(d[3].kind == "workflow");
  CHECK(d[3].operation == "Contacts.edit");
}

TEST_CASE("zoho: injected faults answer 429, 5xx and dropped connections, repeatably", "[zoho]") {
  ZohoFixture f;
  f.zoho.set_faults({.p429 = 1});
  const auto limited = f.call("GET", "/crm/v8/Leads?fields=Email");
  CHECK(limited.status() == 429);
  CHECK(limited.code() == "TOO_MANY_REQUESTS");
  f.zoho.set_faults({.p5xx = 1});
  const auto failed = f.call("GET", "/crm/v8/Leads?fields=Email");
  CHECK((failed.status() == 502 || failed.status() == 503));
  f.zoho.set_faults({.drop = 1});
  const auto dropped = f.call("GET", "/crm/v8/Leads?fields=Email");
  CHECK(dropped.status() == 0);
  const auto stats = f.zoho.stats();
  CHECK(stats.injected_429 == 1);
  CHECK(stats.injected_5xx == 1);
  CHECK(stats.dropped == 1);
  // The same seed, the same faults.
  const auto run = [&] {
    f.zoho.set_fault_seed(9);
    f.zoho.set_faults({.p429 = 0.3, .p5xx = 0.3});
    std::vector<int> out;
    for (int i = 0; i < 12; ++i)
      out.push_back(f.call("GET", "/crm/v8/Leads?fields=Email").status());
    return out;
  };
  const auto first = run();
  CHECK(first == run());
  CHECK(std::count(first.begin(), first.end(), 204) < 12);
  // The controls are never faulted.
  CHECK(f.admin("GET", "state").status() == 200);
}

TEST_CASE("zoho: the /_sandbox/zoho/ controls seed, advance the clock and report state", "[zoho]") {
  ZohoFixture f;
  CHECK(f.admin("POST", "orgs/" + std::to_string(kOrg) + "/Leads/seed",
                R"({"count":4,"seed":3,"multi_select":true})")
            .json["ids"]
            .Size() == 4);
  const auto created = f.admin("POST", "orgs/" + std::to_string(kOrg) + "/Accounts",
                               R"({"fields":{"Account_Name":"Acme"}})");
  REQUIRE(created.status() == 200);
  const auto before = f.zoho.now_ms();
  const auto advanced = f.admin("POST", "clock/advance", R"({"ms":7200000})");
  CHECK(advanced.json["now_ms"].GetInt64() >= before + 7'200'000);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").code() == "INVALID_TOKEN");  // 2 h later
  const auto issued = f.admin("POST", "tokens", R"({"org":777})");
  f.token = issued.json["access_token"].GetString();
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").json["data"].Size() == 4);
  const auto state = f.admin("GET", "state");
  REQUIRE(state.status() == 200);
  CHECK(state.json["orgs"]["777"]["Leads"].GetInt() == 4);
  CHECK(state.json["orgs"]["777"]["Accounts"].GetInt() == 1);
  CHECK(state.json["orgs"]["777"]["utc_offset_minutes"].GetInt() == 330);
  CHECK(state.json["data_centres"]["com"]["api_port"].GetInt() == f.zoho.api_port());
  CHECK(f.admin("PUT", "faults", R"({"p429":1})").status() == 200);
  CHECK(f.call("GET", "/crm/v8/Leads?fields=Email").status() == 429);
  CHECK(f.admin("PUT", "faults", R"({"p429":0})").status() == 200);
  CHECK(f.admin("POST", "workflow-rules", R"({"org_id":777,"module":"Leads","url":"ftp://x"})")
            .status() == 400);
  CHECK(f.admin("GET", "nothing").status() == 404);
}

TEST_CASE("zoho: crm-sandbox --zoho prints both hosts and serves a refresh and a list", "[zoho]") {
  int out[2];
  REQUIRE(pipe(out) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(CRM_SANDBOX_PATH, CRM_SANDBOX_PATH, "--zoho", "127.0.0.1:0", "--zoho-org", "4242::+05:30",
          "--zoho-client", "cid:csecret:crefresh:4242", "--zoho-seed-leads", "3", nullptr);
    _exit(127);
  }
  close(out[1]);
  std::vector<std::string> lines;
  std::string line;
  char c;
  while (lines.size() < 2 && read(out[0], &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    lines.push_back(line);
    line.clear();
  }
  close(out[0]);
  REQUIRE(lines.size() == 2);
  REQUIRE(lines[0].rfind("zoho 127.0.0.1:", 0) == 0);
  REQUIRE(lines[1].rfind("zoho accounts 127.0.0.1:", 0) == 0);
  const auto api = "http://" + lines[0].substr(5);
  const auto accounts = "http://" + lines[1].substr(14);
  CHECK(api != accounts);
  const auto token =
      http_request("POST",
                   accounts +
                       "/oauth/v2/token?grant_type=refresh_token&client_id=cid&client_secret="
                       "csecret&refresh_token=crefresh",
                   {}, "", 5s);
  rapidjson::Document json;
  json.Parse(token.body.data(), token.body.size());
  REQUIRE(json.HasMember("access_token"));
  CHECK(json["api_domain"].GetString() == api);
  const auto list = http_request(
      "GET", api + "/crm/v8/Leads?fields=Last_Name,Modified_Time",
      {{"Authorization", std::string("Zoho-oauthtoken ") + json["access_token"].GetString()}}, "",
      5s);
  CHECK(list.status == 200);
  rapidjson::Document leads;
  leads.Parse(list.body.data(), list.body.size());
  CHECK(leads["data"].Size() == 3);
  CHECK(std::string(leads["data"][0]["Modified_Time"].GetString()).ends_with("+05:30"));
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
