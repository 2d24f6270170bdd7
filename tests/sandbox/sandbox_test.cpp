// The HubSpot emulator of crm-sandbox over real loopback HTTP, as a plugin would meet it.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <openssl/evp.h>
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include "sandbox/hubspot.hpp"

using namespace crmsandbox;
using namespace std::chrono_literals;

namespace {

// With a length: RapidJSON's SIMD scan of NUL-terminated text reads past the allocation (ASan).
void parse_json(rapidjson::Document &document, const std::string &text) {
  document.Parse(text.data(), text.size());
}

constexpr int64_t kPortal = 101;
constexpr const char *kToken = "pat-test";

struct Reply {
  HttpResult raw;
  rapidjson::Document json;
  int status() const { return raw.status; }
  std::string header(const char *name) const { return raw.header(name); }
  std::string str(const char *key) const {
    return json.IsObject() && json.HasMember(key) && json[key].IsString() ? json[key].GetString()
                                                                          : "";
  }
};

// A started sandbox with one token, and a blocking client for it.
struct Fixture {
  HubSpotSandbox sandbox;
  Fixture() {
    sandbox.add_token(kToken, kPortal);
    // Generous budgets: only the rate-limit test meets HubSpot's.
    sandbox.set_rate_limits({100'000, 10'000, 100'000, 10'000'000});
    sandbox.start();
  }
  Reply call(const std::string &method, const std::string &target, const std::string &body = "",
             const std::string &token = kToken) {
    Headers headers{{"Content-Type", "application/json"}};
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    Reply reply;
    reply.raw = http_request(method, sandbox.base_url() + target, headers, body, 10s);
    parse_json(reply.json, reply.raw.body);
    return reply;
  }
};

std::vector<std::string> ids_of(const rapidjson::Value &results) {
  std::vector<std::string> out;
  for (const auto &r : results.GetArray()) out.emplace_back(r["id"].GetString());
  return out;
}

std::string search_body(const std::string &filters, const std::string &extra = "") {
  return R"({"filterGroups":[)" + filters + "]" + extra + "}";
}

// A receiver for webhook deliveries: records each request, answers with `status_for(n)`.
struct Receiver {
  std::mutex mutex;
  std::vector<HttpRequest> requests;
  std::function<int(size_t)> status_for = [](size_t) { return 204; };
  LoopbackServer server{"127.0.0.1:0", [this](const HttpRequest &r) {
                          std::lock_guard lock(mutex);
                          requests.push_back(r);
                          return HttpResponse{status_for(requests.size()), "text/plain", {}, ""};
                        }};
  Receiver() { server.start(); }
  void answer(std::function<int(size_t)> fn) {
    std::lock_guard lock(mutex);
    status_for = std::move(fn);
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + "/hooks?x=1";
  }
  std::vector<HttpRequest> received() {
    std::lock_guard lock(mutex);
    return requests;
  }
};

std::string sha256_hex_independent(const std::string &text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  std::string out;
  char hex[3];
  for (unsigned i = 0; i < size; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    out += hex;
  }
  return out;
}

}  // namespace

TEST_CASE("webhook signature v1 matches the fact sheet vector for the event array", "[sandbox]") {
  const std::string body =
      R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,)"
      R"("subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,)"
      R"("changeSource":"CRM","changeFlag":"NEW","appId":54321}])";
  CHECK(hubspot_signature_v1("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", body) ==
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de");
}

TEST_CASE("webhook signature v2 matches the fact sheet vector for a GET without body",
          "[sandbox]") {
  CHECK(hubspot_signature_v2("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "GET",
                             "https://www.example.com/webhook_uri", "") ==
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e");
}

TEST_CASE("webhook signature v2 matches the fact sheet vector for a JSON POST", "[sandbox]") {
  CHECK(hubspot_signature_v2("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST",
                             "https://www.example.com/webhook_uri",
                             R"({"example_field":"example_value"})") ==
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900");
}

TEST_CASE("webhook signature v1 matches the fact sheet vector for a single-quoted body",
          "[sandbox]") {
  CHECK(hubspot_signature_v1("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
                             "{'example_field':'example_value'}") ==
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750");
}

TEST_CASE("webhook signature v2 matches the fact sheet vector for a single-quoted body",
          "[sandbox]") {
  CHECK(hubspot_signature_v2("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST",
                             "https://www.example.com/webhook_uri",
                             "{'example_field':'example_value'}") ==
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383");
}

TEST_CASE("webhook signature v3 matches the fact sheet vector", "[sandbox]") {
  CHECK(hubspot_signature_v3("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST",
                             "https://www.example.com/webhook_uri",
                             "{'example_field':'example_value'}",
                             1693657560000) == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=");
}

TEST_CASE("requests without a valid bearer token get 401 INVALID_AUTHENTICATION", "[sandbox]") {
  Fixture f;
  for (const std::string token : {"", "wrong-token"}) {
    const auto reply = f.call("GET", "/crm/v3/objects/contacts", "", token);
    CHECK(reply.status() == 401);
    CHECK(reply.str("status") == "error");
    CHECK(reply.str("category") == "INVALID_AUTHENTICATION");
    CHECK(reply.str("correlationId").size() == 36);
  }
  CHECK(f.call("GET", "/crm/v3/objects/contacts").status() == 200);
  CHECK(f.sandbox.stats().unauthorized == 2);
}

TEST_CASE("listing pages through every record with opaque after cursors", "[sandbox]") {
  Fixture f;
  const auto seeded = f.sandbox.seed_generated(kPortal, "contacts", 25);
  f.sandbox.archive_record(kPortal, "contacts", seeded[3]);
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    const auto reply = f.call("GET", "/crm/v3/objects/contacts?limit=10&properties=email" +
                                         (after.empty() ? "" : "&after=" + after));
    REQUIRE(reply.status() == 200);
    ++pages;
    for (const auto &id : ids_of(reply.json["results"])) seen.push_back(id);
    CHECK(reply.json["results"][0]["properties"].HasMember("email"));
    CHECK_FALSE(reply.json["results"][0]["properties"].HasMember("firstname"));
    if (!reply.json.HasMember("paging")) break;
    after = reply.json["paging"]["next"]["after"].GetString();
    CHECK(after.find_first_not_of("0123456789") != std::string::npos);  // not a bare offset
    REQUIRE(pages < 10);
  }
  CHECK(pages == 3);
  CHECK(seen.size() == 24);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 24);
  CHECK(std::find(seen.begin(), seen.end(), seeded[3]) == seen.end());
  const auto archived = f.call("GET", "/crm/v3/objects/contacts?archived=true");
  CHECK(ids_of(archived.json["results"]) == std::vector<std::string>{seeded[3]});
  CHECK(f.call("GET", "/crm/v3/objects/contacts?limit=101").status() == 400);
}

TEST_CASE("get by id and by idProperty email returns HubSpot's record shape", "[sandbox]") {
  Fixture f;
  const auto id = f.sandbox.create_record(kPortal, "contacts",
                                          {{"email", "Ada@Example.com"}, {"firstname", "Ada"}});
  const auto by_id = f.call("GET", "/crm/v3/objects/contacts/" + id);
  REQUIRE(by_id.status() == 200);
  CHECK(by_id.str("id") == id);
  CHECK(by_id.json["properties"]["email"].GetString() == std::string("ada@example.com"));
  CHECK(by_id.json["properties"]["hs_object_id"].GetString() == id);
  CHECK(std::string(by_id.json["createdAt"].GetString()).size() == 24);  // ...T..:..:..sssZ
  CHECK(by_id.json["archived"].GetBool() == false);
  const auto by_email =
      f.call("GET", "/crm/v3/objects/contacts/ada%40example.com?idProperty=email&properties=phone");
  REQUIRE(by_email.status() == 200);
  CHECK(by_email.str("id") == id);
  CHECK(by_email.json["properties"]["phone"].IsNull());
  const auto repeated =
      f.call("GET", "/crm/v3/objects/contacts/" + id + "?properties=phone&properties=firstname");
  CHECK(repeated.json["properties"]["firstname"].GetString() == std::string("Ada"));
  CHECK(repeated.json["properties"].HasMember("phone"));
  CHECK_FALSE(repeated.json["properties"].HasMember("email"));
  const auto missing = f.call("GET", "/crm/v3/objects/contacts/999999");
  CHECK(missing.status() == 404);
  CHECK(missing.str("category") == "OBJECT_NOT_FOUND");
}

TEST_CASE("create patch and archive maintain dates and refuse duplicate emails", "[sandbox]") {
  Fixture f;
  const auto created = f.call("POST", "/crm/v3/objects/contacts",
                              R"({"properties":{"email":"bob@example.com","age":42}})");
  REQUIRE(created.status() == 201);
  const std::string id = created.str("id");
  CHECK(created.json["properties"]["age"].GetString() == std::string("42"));
  const std::string modified = created.json["properties"]["lastmodifieddate"].GetString();
  CHECK(created.json["properties"]["createdate"].GetString() == modified);

  const auto duplicate =
      f.call("POST", "/crm/v3/objects/contacts", R"({"properties":{"email":"BOB@example.com"}})");
  CHECK(duplicate.status() == 409);
  CHECK(duplicate.str("category") == "CONFLICT");
  CHECK(duplicate.str("message") == "Contact already exists. Existing ID: " + id);

  std::this_thread::sleep_for(5ms);
  const auto patched =
      f.call("PATCH", "/crm/v3/objects/contacts/" + id, R"({"properties":{"firstname":"Bob"}})");
  REQUIRE(patched.status() == 200);
  CHECK(patched.json["properties"]["firstname"].GetString() == std::string("Bob"));
  CHECK(std::string(patched.json["properties"]["lastmodifieddate"].GetString()) > modified);
  CHECK(std::string(patched.json["updatedAt"].GetString()) >
        std::string(patched.json["createdAt"].GetString()));

  const auto company =
      f.call("POST", "/crm/v3/objects/companies", R"({"properties":{"name":"X"}})");
  CHECK(company.json["properties"].HasMember("hs_lastmodifieddate"));

  CHECK(f.call("DELETE", "/crm/v3/objects/contacts/" + id).status() == 204);
  CHECK(f.call("GET", "/crm/v3/objects/contacts/" + id).status() == 404);
  CHECK(f.call("GET", "/crm/v3/objects/contacts/" + id + "?archived=true").status() == 200);
  CHECK(f.sandbox.count(kPortal, "contacts") == 0);
  // The email is free again once its contact is archived.
  CHECK(f.call("POST", "/crm/v3/objects/contacts", R"({"properties":{"email":"bob@example.com"}})")
            .status() == 201);
}

TEST_CASE("batch upsert answers 207 with per-input errors and new flags", "[sandbox]") {
  Fixture f;
  const auto existing =
      f.sandbox.create_record(kPortal, "contacts", {{"email", "old@example.com"}});
  const auto reply = f.call("POST", "/crm/v3/objects/contacts/batch/upsert", R"({"inputs":[
      {"id":"old@example.com","idProperty":"email","properties":{"firstname":"Old"}},
      {"id":"new@example.com","idProperty":"email","properties":{"firstname":"New"}},
      {"id":"not-an-email","idProperty":"email","properties":{"firstname":"Bad"}}]})");
  REQUIRE(reply.status() == 207);
  CHECK(reply.str("status") == "COMPLETE");
  CHECK(reply.json["numErrors"].GetInt() == 1);
  CHECK(reply.json["errors"][0]["category"].GetString() == std::string("VALIDATION_ERROR"));
  const auto &results = reply.json["results"];
  REQUIRE(results.Size() == 2);
  std::map<std::string, bool> is_new;
  for (const auto &r : results.GetArray())
    is_new[r["properties"]["email"].GetString()] = r["new"].GetBool();
  CHECK(is_new ==
        std::map<std::string, bool>{{"old@example.com", false}, {"new@example.com", true}});
  CHECK(f.sandbox.record(kPortal, "contacts", existing)->properties.at("firstname") == "Old");
  CHECK(f.sandbox.count(kPortal, "contacts") == 2);

  const auto clean = f.call("POST", "/crm/v3/objects/contacts/batch/upsert",
                            R"({"inputs":[{"id":"new@example.com","idProperty":"email",)"
                            R"("properties":{"lastname":"N"}}]})");
  CHECK(clean.status() == 200);
  CHECK_FALSE(clean.json.HasMember("numErrors"));

  const auto twice =
      f.call("POST", "/crm/v3/objects/contacts/batch/upsert",
             R"({"inputs":[{"id":"z@example.com","idProperty":"email","properties":{}},)"
             R"({"id":"Z@example.com","idProperty":"email","properties":{}}]})");
  CHECK(twice.status() == 400);
  CHECK(f.sandbox.count(kPortal, "contacts") == 2);
}

TEST_CASE("batch read reports missing ids in errors with 207", "[sandbox]") {
  Fixture f;
  const auto ids = f.sandbox.seed_generated(kPortal, "deals", 2);
  const auto reply = f.call("POST", "/crm/v3/objects/deals/batch/read",
                            R"({"properties":["dealname"],"inputs":[{"id":")" + ids[0] +
                                R"("},{"id":"424242"},{"id":")" + ids[1] + R"("}]})");
  REQUIRE(reply.status() == 207);
  CHECK(reply.json["results"].Size() == 2);
  CHECK(reply.json["errors"][0]["category"].GetString() == std::string("OBJECT_NOT_FOUND"));
  CHECK(reply.json["errors"][0]["context"]["ids"][0].GetString() == std::string("424242"));
  CHECK(reply.json["results"][0]["properties"].HasMember("dealname"));
}

TEST_CASE("batches of more than 100 inputs are refused with 400", "[sandbox]") {
  Fixture f;
  std::string inputs;
  for (int i = 0; i < 101; ++i)
    inputs += std::string(i ? "," : "") + R"({"properties":{"email":"c)" + std::to_string(i) +
              R"(@example.com"}})";
  const auto reply =
      f.call("POST", "/crm/v3/objects/contacts/batch/create", R"({"inputs":[)" + inputs + "]}");
  CHECK(reply.status() == 400);
  CHECK(reply.str("category") == "VALIDATION_ERROR");
  CHECK(f.sandbox.count(kPortal, "contacts") == 0);
  const auto hundred = f.call("POST", "/crm/v3/objects/contacts/batch/create",
                              R"({"inputs":[)" + inputs.substr(inputs.find("},{") + 2) + "]}");
  CHECK(hundred.status() == 201);
  CHECK(f.sandbox.count(kPortal, "contacts") == 100);
}

TEST_CASE("search combines filter groups and operators and sorts", "[sandbox]") {
  Fixture f;
  std::vector<HubSpotSeed> seeds;
  const int64_t t0 = 1'700'000'000'000;
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"Acme Corp", "10"}, {"Beta LLC", "20"}, {"Gamma Acme", "30"}, {"Delta", ""}};
  for (size_t i = 0; i < rows.size(); ++i) {
    HubSpotSeed seed;
    seed.properties = {{"name", rows[i].first}};
    if (!rows[i].second.empty()) seed.properties["employees"] = rows[i].second;
    seed.created_ms = seed.updated_ms = t0 + static_cast<int64_t>(i) * 1000;
    seeds.push_back(seed);
  }
  const auto ids = f.sandbox.seed(kPortal, "companies", seeds);
  const auto names = [&](const std::string &filters, const std::string &extra = "") {
    const auto reply = f.call("POST", "/crm/v3/objects/companies/search",
                              search_body(filters, extra + R"(,"properties":["name"])"));
    std::vector<std::string> out;
    if (reply.status() != 200)
      return std::vector<std::string>{"HTTP " + std::to_string(reply.status())};
    for (const auto &r : reply.json["results"].GetArray())
      out.emplace_back(r["properties"]["name"].GetString());
    return out;
  };
  using V = std::vector<std::string>;
  const auto one = [](const std::string &filter) { return R"({"filters":[)" + filter + "]}"; };
  CHECK(names(one(R"({"propertyName":"employees","operator":"GT","value":"15"})")) ==
        V{"Beta LLC", "Gamma Acme"});
  CHECK(
      names(one(
          R"({"propertyName":"employees","operator":"BETWEEN","value":"10","highValue":"20"})")) ==
      V{"Acme Corp", "Beta LLC"});
  CHECK(names(one(R"({"propertyName":"employees","operator":"IN","values":["10","30"]})")) ==
        V{"Acme Corp", "Gamma Acme"});
  CHECK(names(one(R"({"propertyName":"employees","operator":"NOT_IN","values":["10","30"]})")) ==
        V{"Beta LLC", "Delta"});
  // IN on text takes lower-case values: a value as stored, capitals and all, finds nothing.
  CHECK(names(one(R"({"propertyName":"name","operator":"IN","values":["acme corp","delta"]})")) ==
        V{"Acme Corp", "Delta"});
  CHECK(names(one(R"({"propertyName":"name","operator":"IN","values":["Acme Corp"]})")).empty());
  CHECK(names(one(R"({"propertyName":"employees","operator":"NOT_HAS_PROPERTY"})")) == V{"Delta"});
  CHECK(names(one(R"({"propertyName":"employees","operator":"HAS_PROPERTY"})")).size() == 3);
  CHECK(names(one(R"({"propertyName":"name","operator":"CONTAINS_TOKEN","value":"acme"})")) ==
        V{"Acme Corp", "Gamma Acme"});
  CHECK(names(one(R"({"propertyName":"name","operator":"NOT_CONTAINS_TOKEN","value":"acme"})")) ==
        V{"Beta LLC", "Delta"});
  CHECK(names(one(R"({"propertyName":"name","operator":"EQ","value":"delta"})")) == V{"Delta"});
  CHECK(names(one(R"({"propertyName":"name","operator":"NEQ","value":"Delta"})")).size() == 3);
  CHECK(names(one(R"({"propertyName":"employees","operator":"LTE","value":"20"})")) ==
        V{"Acme Corp", "Beta LLC"});
  // Dates compare as epoch milliseconds or ISO 8601 alike.
  CHECK(names(one(R"({"propertyName":"hs_lastmodifieddate","operator":"GTE","value":")" +
                  std::to_string(t0 + 2000) + R"("})")) == V{"Gamma Acme", "Delta"});
  CHECK(
      names(one(
          R"({"propertyName":"hs_lastmodifieddate","operator":"LT","value":"2023-11-14T22:13:21.000Z"})")) ==
      V{"Acme Corp"});
  // AND inside a group, OR across groups.
  CHECK(names(one(R"({"propertyName":"name","operator":"CONTAINS_TOKEN","value":"acme"},)"
                  R"({"propertyName":"employees","operator":"GT","value":"15"})")) ==
        V{"Gamma Acme"});
  CHECK(names(one(R"({"propertyName":"name","operator":"EQ","value":"Delta"})") + "," +
              one(R"({"propertyName":"employees","operator":"EQ","value":"10"})")) ==
        V{"Acme Corp", "Delta"});
  CHECK(names("", R"(,"sorts":[{"propertyName":"employees","direction":"DESCENDING"}])") ==
        V{"Gamma Acme", "Beta LLC", "Acme Corp", "Delta"});
  CHECK(names(one(R"({"propertyName":"name","operator":"LIKE","value":"x"})")) == V{"HTTP 400"});
  const auto paged = f.call("POST", "/crm/v3/objects/companies/search",
                            search_body("", R"(,"limit":3,"after":"0")"));
  CHECK(paged.json["total"].GetInt() == 4);
  CHECK(paged.json["paging"]["next"]["after"].GetString() == std::string("3"));
  CHECK(ids_of(paged.json["results"]) == V{ids[0], ids[1], ids[2]});
}

TEST_CASE("search pages to 10000 results and answers 400 beyond", "[sandbox]") {
  Fixture f;
  f.sandbox.seed_generated(kPortal, "contacts", 10'050);
  const auto page = [&](int after, int limit) {
    return f.call(
        "POST", "/crm/v3/objects/contacts/search",
        search_body(
            R"({"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":"0"}]})",
            R"(,"sorts":[{"propertyName":"lastmodifieddate","direction":"ASCENDING"}],"limit":)" +
                std::to_string(limit) + R"(,"after":")" + std::to_string(after) + R"(")"));
  };
  const auto last = page(9800, 200);
  REQUIRE(last.status() == 200);
  CHECK(last.json["total"].GetInt() == 10'050);
  CHECK(last.json["results"].Size() == 200);
  CHECK(last.json["paging"]["next"]["after"].GetString() == std::string("10000"));
  const auto beyond = page(10'000, 200);
  CHECK(beyond.status() == 400);
  CHECK(beyond.str("status") == "error");
  CHECK(beyond.str("category") == "VALIDATION_ERROR");
  CHECK(page(9'900, 200).status() == 400);
}

TEST_CASE("search sees written records only after the indexing delay", "[sandbox]") {
  Fixture f;
  f.sandbox.set_indexing_delay(400ms);
  const auto created = f.call("POST", "/crm/v3/objects/contacts",
                              R"({"properties":{"email":"late@example.com","firstname":"A"}})");
  REQUIRE(created.status() == 201);
  const std::string id = created.str("id");
  const auto find = [&](const std::string &name) {
    const auto reply =
        f.call("POST", "/crm/v3/objects/contacts/search",
               search_body(R"({"filters":[{"propertyName":"firstname","operator":"EQ","value":")" +
                           name + R"("}]})"));
    return reply.json["total"].GetInt();
  };
  CHECK(find("A") == 0);
  CHECK(f.call("GET", "/crm/v3/objects/contacts/" + id).status() == 200);  // reads see it at once
  std::this_thread::sleep_for(500ms);
  CHECK(find("A") == 1);
  f.call("PATCH", "/crm/v3/objects/contacts/" + id, R"({"properties":{"firstname":"B"}})");
  CHECK(find("A") == 1);  // the old version until the new one is indexed
  CHECK(find("B") == 0);
  std::this_thread::sleep_for(500ms);
  CHECK(find("A") == 0);
  CHECK(find("B") == 1);
}

TEST_CASE("rate limit headers count down and the window answers 429 TEN_SECONDLY_ROLLING",
          "[sandbox]") {
  Fixture f;
  f.sandbox.set_rate_limits({5, 10'000, 2, 1'000});
  for (int i = 0; i < 5; ++i) {
    const auto reply = f.call("GET", "/crm/v3/objects/contacts");
    REQUIRE(reply.status() == 200);
    CHECK(reply.header("X-HubSpot-RateLimit-Max") == "5");
    CHECK(reply.header("X-HubSpot-RateLimit-Remaining") == std::to_string(4 - i));
    CHECK(reply.header("X-HubSpot-RateLimit-Interval-Milliseconds") == "10000");
    CHECK(reply.header("X-HubSpot-RateLimit-Daily") == "1000");
    CHECK(reply.header("X-HubSpot-RateLimit-Daily-Remaining") == std::to_string(999 - i));
    CHECK_FALSE(reply.header("X-HubSpot-RateLimit-Secondly").empty());
    CHECK_FALSE(reply.header("X-HubSpot-RateLimit-Secondly-Remaining").empty());
  }
  const auto limited = f.call("GET", "/crm/v3/objects/contacts");
  CHECK(limited.status() == 429);
  CHECK(limited.str("policyName") == "TEN_SECONDLY_ROLLING");
  CHECK(limited.str("errorType") == "RATE_LIMIT");
  CHECK(limited.str("message") == "You have reached your ten_secondly_rolling limit.");
  CHECK(limited.header("X-HubSpot-RateLimit-Remaining") == "0");
  CHECK(f.sandbox.stats().limited_ten_secondly == 1);

  // Search has its own per-second budget.
  const auto search = [&] { return f.call("POST", "/crm/v3/objects/contacts/search", "{}"); };
  CHECK(search().status() == 200);
  CHECK(search().status() == 200);
  const auto secondly = search();
  CHECK(secondly.status() == 429);
  CHECK(secondly.str("policyName") == "SECONDLY");
  CHECK(secondly.str("message") == "You have reached your secondly limit.");

  f.sandbox.set_rate_limits({1000, 10'000, 100, 9});  // 7 of the day's 9 are spent
  CHECK(f.call("GET", "/crm/v3/objects/contacts").status() == 200);
  CHECK(f.call("GET", "/crm/v3/objects/contacts").status() == 200);
  const auto daily = f.call("GET", "/crm/v3/objects/contacts");
  CHECK(daily.status() == 429);
  CHECK(daily.str("policyName") == "DAILY");
}

TEST_CASE("OAuth refresh issues working tokens that expire into 401 EXPIRED_AUTHENTICATION",
          "[sandbox]") {
  Fixture f;
  f.sandbox.add_oauth_client("client-1", "secret-1", "refresh-1", 202);
  f.sandbox.seed_generated(202, "contacts", 3);
  const auto refresh = [&](const std::string &refresh_token) {
    Reply reply;
    reply.raw = http_request(
        "POST", f.sandbox.base_url() + "/oauth/v1/token",
        {{"Content-Type", "application/x-www-form-urlencoded"}},
        "grant_type=refresh_token&client_id=client-1&client_secret=secret-1&refresh_token=" +
            refresh_token,
        10s);
    parse_json(reply.json, reply.raw.body);
    return reply;
  };
  const auto issued = refresh("refresh-1");
  REQUIRE(issued.status() == 200);
  CHECK(issued.json["expires_in"].GetInt() == 1800);
  CHECK(issued.str("refresh_token") == "refresh-1");
  CHECK(issued.json["hub_id"].GetInt() == 202);
  const std::string access = issued.str("access_token");
  const auto listed = f.call("GET", "/crm/v3/objects/contacts", "", access);
  CHECK(listed.status() == 200);
  CHECK(listed.json["results"].Size() == 3);  // portal 202's records, not the fixture's

  f.sandbox.expire_oauth_tokens();
  const auto expired = f.call("GET", "/crm/v3/objects/contacts", "", access);
  CHECK(expired.status() == 401);
  CHECK(expired.str("category") == "EXPIRED_AUTHENTICATION");
  const auto again = refresh("refresh-1");
  CHECK(again.str("access_token") != access);
  CHECK(f.call("GET", "/crm/v3/objects/contacts", "", again.str("access_token")).status() == 200);

  const auto bad = refresh("refresh-2");
  CHECK(bad.status() == 400);
  CHECK(bad.str("status") == "BAD_REFRESH_TOKEN");

  f.sandbox.set_token_ttl(1s);
  const auto short_lived = refresh("refresh-1");
  CHECK(short_lived.json["expires_in"].GetInt() == 1);
  std::this_thread::sleep_for(1100ms);
  CHECK(f.call("GET", "/crm/v3/objects/contacts", "", short_lived.str("access_token")).status() ==
        401);
}

TEST_CASE("webhooks are batched and signed v1 v2 and v3 over the URI as sent", "[sandbox]") {
  const auto version = GENERATE(std::string("v1"), std::string("v2"), std::string("v3"));
  Fixture f;
  Receiver receiver;
  auto settings = f.sandbox.webhook_settings();
  settings.target_url = receiver.url();
  settings.app_secret = "app-secret";
  settings.signature_version = version;
  settings.batch_window = 300ms;
  f.sandbox.set_webhook_settings(settings);
  const auto creation = f.sandbox.subscribe("contact.creation");
  const auto email_change = f.sandbox.subscribe("contact.propertyChange", "email");
  f.sandbox.subscribe("company.creation");
  for (int i = 0; i < 3; ++i)
    REQUIRE(f.call("POST", "/crm/v3/objects/contacts",
                   R"({"properties":{"email":"w)" + std::to_string(i) + R"(@example.com"}})")
                .status() == 201);
  REQUIRE(f.sandbox.wait_for_deliveries(1, 5s));
  std::this_thread::sleep_for(100ms);
  const auto received = receiver.received();
  REQUIRE(received.size() == 1);  // six events in one delivery
  const auto &request = received[0];
  rapidjson::Document events;
  parse_json(events, request.body);
  REQUIRE(events.IsArray());
  REQUIRE(events.Size() == 6);
  std::map<std::string, int> types;
  for (const auto &e : events.GetArray()) {
    ++types[e["subscriptionType"].GetString()];
    CHECK(e["portalId"].GetInt64() == kPortal);
    CHECK(e["appId"].GetInt64() == 54321);
    CHECK(e["attemptNumber"].GetInt() == 0);
    CHECK(e["objectId"].IsInt64());
    CHECK(e["occurredAt"].GetInt64() > 1'700'000'000'000);
    CHECK(e["changeSource"].IsString());
    if (std::string(e["subscriptionType"].GetString()) == "contact.creation") {
      CHECK(e["subscriptionId"].GetInt64() == creation);
      CHECK(e["changeFlag"].GetString() == std::string("NEW"));
    } else {
      CHECK(e["subscriptionId"].GetInt64() == email_change);
      CHECK(e["propertyName"].GetString() == std::string("email"));
      CHECK(std::string(e["propertyValue"].GetString()).ends_with("@example.com"));
    }
  }
  CHECK(types ==
        std::map<std::string, int>{{"contact.creation", 3}, {"contact.propertyChange", 3}});
  CHECK(request.target == "/hooks?x=1");
  const std::string secret = "app-secret";
  if (version == "v1") {
    CHECK(request.header("X-HubSpot-Signature-Version") == "v1");
    CHECK(request.header("X-HubSpot-Signature") == sha256_hex_independent(secret + request.body));
  } else if (version == "v2") {
    CHECK(request.header("X-HubSpot-Signature-Version") == "v2");
    CHECK(request.header("X-HubSpot-Signature") ==
          sha256_hex_independent(secret + "POST" + receiver.url() + request.body));
  } else {
    const auto timestamp = std::stoll(request.header("X-HubSpot-Request-Timestamp"));
    CHECK(std::abs(now_ms() - timestamp) < 60'000);
    CHECK(request.header("X-HubSpot-Signature-v3") ==
          hubspot_signature_v3(secret, "POST", receiver.url(), request.body, timestamp));
    CHECK(request.header("X-HubSpot-Signature").empty());
  }
  const auto log = f.sandbox.deliveries();
  REQUIRE(log.size() == 1);
  CHECK(log[0].status == 204);
  CHECK(log[0].events == 6);
  CHECK(log[0].body == request.body);
}

TEST_CASE("webhook deliveries are retried on 500 with a growing attemptNumber", "[sandbox]") {
  Fixture f;
  Receiver receiver;
  receiver.answer([](size_t n) { return n <= 2 ? 500 : 200; });
  auto settings = f.sandbox.webhook_settings();
  settings.target_url = receiver.url();
  settings.app_secret = "s";
  settings.batch_window = 10ms;
  settings.retry_backoff = 20ms;
  f.sandbox.set_webhook_settings(settings);
  f.sandbox.subscribe("deal.creation");
  f.sandbox.create_record(kPortal, "deals", {{"dealname", "D"}});
  REQUIRE(f.sandbox.wait_for_deliveries(3, 5s));
  const auto received = receiver.received();
  REQUIRE(received.size() == 3);
  for (int i = 0; i < 3; ++i) {
    rapidjson::Document events;
    parse_json(events, received[static_cast<size_t>(i)].body);
    CHECK(events[0]["attemptNumber"].GetInt() == i);
    CHECK(events[0]["subscriptionType"].GetString() == std::string("deal.creation"));
  }
  const auto log = f.sandbox.deliveries();
  CHECK(log[0].will_retry);
  CHECK(log[1].status == 500);
  CHECK(log[2].status == 200);
  CHECK_FALSE(log[2].will_retry);
  CHECK(log[0].delivery_id == log[2].delivery_id);

  // 404 is final, as is every 2xx: no retry.
  receiver.answer([](size_t) { return 404; });
  f.sandbox.clear_deliveries();
  f.sandbox.create_record(kPortal, "deals", {{"dealname", "E"}});
  REQUIRE(f.sandbox.wait_for_deliveries(1, 5s));
  std::this_thread::sleep_for(200ms);
  CHECK(f.sandbox.deliveries().size() == 1);
  CHECK_FALSE(f.sandbox.deliveries()[0].will_retry);
}

TEST_CASE("webhook deliveries to a dead target are retried as connection failures", "[sandbox]") {
  Fixture f;
  auto settings = f.sandbox.webhook_settings();
  {
    Receiver gone;
    settings.target_url = gone.url();
  }  // closed: connections are refused
  settings.batch_window = 10ms;
  settings.retry_backoff = 10ms;
  settings.max_attempts = 3;
  f.sandbox.set_webhook_settings(settings);
  f.sandbox.subscribe("contact.deletion");
  const auto id = f.sandbox.create_record(kPortal, "contacts", {{"email", "x@example.com"}});
  f.sandbox.archive_record(kPortal, "contacts", id);
  REQUIRE(f.sandbox.wait_for_deliveries(3, 5s));
  std::this_thread::sleep_for(100ms);
  const auto log = f.sandbox.deliveries();
  CHECK(log.size() == 3);  // max_attempts
  CHECK(log[0].status == 0);
  CHECK_FALSE(log[0].error.empty());
  CHECK_FALSE(log.back().will_retry);
}

TEST_CASE("merge archives the merged record and sends a merge event", "[sandbox]") {
  Fixture f;
  Receiver receiver;
  f.sandbox.set_webhook_target(receiver.url(), "s", "v1");
  f.sandbox.subscribe("contact.merge");
  const auto a = f.sandbox.create_record(kPortal, "contacts", {{"email", "a@example.com"}});
  const auto b =
      f.sandbox.create_record(kPortal, "contacts", {{"email", "b@example.com"}, {"phone", "123"}});
  const auto merged =
      f.call("POST", "/crm/v3/objects/contacts/merge",
             R"({"primaryObjectId":")" + a + R"(","objectIdToMerge":")" + b + R"("})");
  REQUIRE(merged.status() == 200);
  CHECK(merged.str("id") == a);
  CHECK(merged.json["properties"]["phone"].GetString() == std::string("123"));
  CHECK(f.call("GET", "/crm/v3/objects/contacts/" + b).status() == 404);
  REQUIRE(f.sandbox.wait_for_deliveries(1, 5s));
  rapidjson::Document events;
  parse_json(events, f.sandbox.deliveries()[0].body);
  REQUIRE(events.Size() == 1);
  CHECK(events[0]["subscriptionType"].GetString() == std::string("contact.merge"));
  CHECK(events[0]["primaryObjectId"].GetInt64() == std::stoll(a));
  CHECK(events[0]["mergedObjectIds"][0].GetInt64() == std::stoll(b));
}

TEST_CASE("injected faults follow the seed and every kind occurs", "[sandbox]") {
  Fixture f;
  f.sandbox.set_faults({0.15, 0.15, 0, 0.1, 0.1});
  const auto run = [&] {
    f.sandbox.set_fault_seed(42);
    std::vector<std::string> outcomes;
    for (int i = 0; i < 80; ++i) {
      const auto reply = f.call("GET", "/crm/v3/objects/contacts");
      if (reply.status() == 0)
        outcomes.push_back("dropped");
      else if (reply.status() == 200 && reply.json.HasParseError())
        outcomes.push_back("malformed");
      else
        outcomes.push_back(std::to_string(reply.status()));
    }
    return outcomes;
  };
  f.sandbox.set_rate_limits({100'000, 10'000, 100, 1'000'000});
  const auto first = run();
  const auto second = run();
  CHECK(first == second);
  const std::set<std::string> kinds(first.begin(), first.end());
  for (const auto *kind : {"200", "429", "dropped", "malformed"}) CHECK(kinds.count(kind) == 1);
  CHECK((kinds.count("502") + kinds.count("503")) >= 1);
  const auto stats = f.sandbox.stats();
  CHECK(stats.injected_429 > 0);
  CHECK(stats.dropped > 0);
  f.sandbox.set_faults({});
  CHECK(f.call("GET", "/crm/v3/objects/contacts").status() == 200);
}

TEST_CASE("added latency delays answers", "[sandbox]") {
  Fixture f;
  f.sandbox.set_faults({0, 0, 150, 0, 0});
  const auto start = std::chrono::steady_clock::now();
  CHECK(f.call("GET", "/crm/v3/objects/contacts").status() == 200);
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);
}

TEST_CASE("the admin endpoints seed records and change faults", "[sandbox]") {
  Fixture f;
  const auto seeded = f.call("POST", "/_sandbox/portals/303/companies/seed", R"({"count":7})", "");
  REQUIRE(seeded.status() == 200);
  CHECK(seeded.json["ids"].Size() == 7);
  CHECK(f.sandbox.count(303, "companies") == 7);
  CHECK(f.call("PUT", "/_sandbox/faults", R"({"p429":0.5,"seed":1})", "").status() == 200);
  CHECK(f.sandbox.faults().p429 == 0.5);
  CHECK(f.call("POST", "/_sandbox/tokens", R"({"token":"t-303","portal":303})", "").status() ==
        200);
  f.sandbox.set_faults({});
  const auto listed = f.call("GET", "/crm/v3/objects/companies?limit=100", "", "t-303");
  CHECK(listed.json["results"].Size() == 7);
  const auto state = f.call("GET", "/_sandbox/state", "", "");
  CHECK(state.json["portals"]["303"]["companies"].GetInt() == 7);
  const auto records = f.call("GET", "/_sandbox/portals/303/companies", "", "");
  CHECK(records.json["results"].Size() == 7);
}

TEST_CASE("deals are also addressed by object type id 0-3", "[sandbox]") {
  Fixture f;
  const auto id = f.sandbox.create_record(kPortal, "deals", {{"dealname", "Big"}});
  const auto reply = f.call("GET", "/crm/v3/objects/0-3/" + id);
  REQUIRE(reply.status() == 200);
  CHECK(reply.json["properties"]["dealname"].GetString() == std::string("Big"));
  CHECK(f.call("GET", "/crm/v3/objects/widgets").status() == 404);
}

TEST_CASE("crm-sandbox prints its bound port and exits 0 on SIGTERM", "[sandbox]") {
  int out[2];
  REQUIRE(pipe(out) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(CRM_SANDBOX_PATH, CRM_SANDBOX_PATH, "--hubspot", "127.0.0.1:0", "--hubspot-token",
          "cli-token:77", "--hubspot-seed-contacts", "4", nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  REQUIRE(line.rfind("hubspot 127.0.0.1:", 0) == 0);
  const auto port = line.substr(line.rfind(':') + 1);
  const auto reply = http_request("GET", "http://127.0.0.1:" + port + "/crm/v3/objects/contacts",
                                  {{"Authorization", "Bearer cli-token"}}, "", 5s);
  CHECK(reply.status == 200);
  rapidjson::Document json;
  parse_json(json, reply.body);
  CHECK(json["results"].Size() == 4);
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
