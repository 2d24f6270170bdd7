// The Odoo emulator of crm-sandbox over real loopback HTTP, as a plugin would meet it.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <catch2/catch.hpp>

#include "sandbox/odoo.hpp"

using namespace crmsandbox;
using namespace std::chrono_literals;

namespace {

struct OdooReply {
  HttpResult raw;
  rapidjson::Document json;
  int status() const { return raw.status; }
  const rapidjson::Value &result() const { return json["result"]; }
  bool is_error() const { return json.IsObject() && json.HasMember("error"); }
  std::string error_name() const {
    return is_error() ? json["error"]["data"]["name"].GetString() : "";
  }
  std::string error_message() const {
    return is_error() ? json["error"]["data"]["message"].GetString() : "";
  }
};

std::vector<int64_t> ids_of(const rapidjson::Value &list) {
  std::vector<int64_t> out;
  for (const auto &item : list.GetArray())
    out.push_back(item.IsObject() ? item["id"].GetInt64() : item.GetInt64());
  return out;
}

std::string str(const rapidjson::Value &value) {
  return value.IsString() ? std::string(value.GetString(), value.GetStringLength()) : "";
}

// A started sandbox: database "crm" (admin uid 2, a read-only viewer uid 3) and "other".
struct OdooFixture {
  OdooSandbox sandbox;
  OdooFixture() {
    sandbox.add_user("crm", {"admin", "admin", {"key-admin"}, false});
    sandbox.add_user("crm", {"viewer", "viewer-pw", {"key-viewer"}, true});
    sandbox.add_user("other", {"bob", "bob-pw", {"key-bob"}, false});
    sandbox.start();
  }
  OdooReply post(const std::string &path, const std::string &body, Headers headers = {}) {
    headers.emplace_back("Content-Type", "application/json");
    OdooReply reply;
    reply.raw = http_request("POST", sandbox.base_url() + path, headers, body, 10s);
    reply.json.Parse(reply.raw.body.data(), reply.raw.body.size());
    return reply;
  }
  OdooReply rpc(const std::string &service, const std::string &method, const std::string &args,
                const std::string &id = "1") {
    return post("/jsonrpc", R"({"jsonrpc":"2.0","method":"call","params":{"service":")" + service +
                                R"(","method":")" + method + R"(","args":)" + args + R"(},"id":)" +
                                id + "}");
  }
  // execute_kw as admin on "crm" unless told otherwise.
  OdooReply kw(const std::string &model, const std::string &method, const std::string &args,
               const std::string &kwargs = "{}", const std::string &secret = "key-admin",
               int uid = 2, const std::string &db = "crm") {
    return rpc("object", "execute_kw",
               "[\"" + db + "\"," + std::to_string(uid) + ",\"" + secret + "\",\"" + model +
                   "\",\"" + method + "\"," + args + "," + kwargs + "]");
  }
  OdooReply json2(const std::string &model, const std::string &method, const std::string &body,
                  const std::string &key = "key-admin", Headers headers = {}) {
    if (!key.empty()) headers.emplace_back("Authorization", "bearer " + key);
    return post("/json/2/" + model + "/" + method, body, headers);
  }
  std::vector<int64_t> search(const std::string &model, const std::string &domain,
                              const std::string &kwargs = "{}") {
    const auto reply = kw(model, "search", "[" + domain + "]", kwargs);
    REQUIRE(reply.is_error() == false);
    return ids_of(reply.result());
  }
};

// Four partners with the values the domain tests need; returns their ids.
std::vector<int64_t> seed_four(OdooSandbox &sandbox) {
  const auto company = sandbox
                           .seed("crm", "res.partner",
                                 {{{"name", std::string("Alpha")},
                                   {"email", std::string("alpha@x.com")},
                                   {"city", std::string("Ghent")},
                                   {"is_company", true}}})
                           .front();
  auto ids = sandbox.seed("crm", "res.partner",
                          {{{"name", std::string("Beta")},
                            {"email", std::string("beta@y.org")},
                            {"city", std::string("Brussels")},
                            {"parent_id", company}},
                           {{"name", std::string("Gamma")}, {"city", std::string("Antwerp")}},
                           {{"name", std::string("delta")},
                            {"email", std::string("DELTA@x.com")},
                            {"city", std::string("ghent")}}});
  ids.insert(ids.begin(), company);
  return ids;
}

// A receiver for webhook POSTs: records each request, answers `status`.
struct Receiver {
  std::mutex mutex;
  std::vector<HttpRequest> requests;
  int status = 200;
  LoopbackServer server{"127.0.0.1:0", [this](const HttpRequest &r) {
                          std::lock_guard lock(mutex);
                          requests.push_back(r);
                          return HttpResponse{status, "text/plain", {}, ""};
                        }};
  Receiver() { server.start(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()) + "/odoo"; }
  std::vector<HttpRequest> received() {
    std::lock_guard lock(mutex);
    return requests;
  }
};

}  // namespace

TEST_CASE("odoo version and authenticate accept passwords and API keys and refuse others",
          "[sandbox]") {
  OdooFixture f;
  const auto version = f.rpc("common", "version", "[]");
  REQUIRE(version.status() == 200);
  CHECK(str(version.result()["server_version"]) == "19.0");
  CHECK(version.result()["server_version_info"][0].GetInt() == 19);
  CHECK(version.result()["protocol_version"].GetInt() == 1);
  CHECK(f.rpc("common", "authenticate", R"(["crm","admin","admin",{}])").result().GetInt64() == 2);
  CHECK(f.rpc("common", "authenticate", R"(["crm","admin","key-admin",{}])").result().GetInt64() ==
        2);
  CHECK(f.rpc("common", "login", R"(["crm","viewer","viewer-pw"])").result().GetInt64() == 3);
  CHECK(f.rpc("common", "authenticate", R"(["crm","admin","wrong",{}])").result().IsFalse());
  CHECK(f.rpc("common", "authenticate", R"(["other","admin","admin",{}])").result().IsFalse());
  CHECK(f.rpc("common", "authenticate", R"(["nope","admin","admin",{}])").is_error());
  // An API key replaces the password in execute_kw; a wrong one is AccessDenied.
  CHECK_FALSE(f.kw("res.partner", "search", "[[]]", "{}", "admin").is_error());
  CHECK(f.kw("res.partner", "search", "[[]]", "{}", "bad").error_name() ==
        "odoo.exceptions.AccessDenied");
  CHECK(f.kw("res.partner", "search", "[[]]", "{}", "key-admin", 3).error_name() ==
        "odoo.exceptions.AccessDenied");
  CHECK(f.kw("res.partner", "search", "[[]]", "{}", "key-bob", 3, "other").error_name() ==
        "odoo.exceptions.AccessDenied");
  CHECK(f.sandbox.stats().access_denied >= 5);
}

TEST_CASE("odoo search_read applies every domain operator and prefix operators", "[sandbox]") {
  OdooFixture f;
  const auto ids = seed_four(f.sandbox);
  const int64_t alpha = ids[0], beta = ids[1], gamma = ids[2], delta = ids[3];
  using V = std::vector<int64_t>;
  const auto q = [&](const std::string &domain) {
    return f.search("res.partner", domain, R"({"order":"id asc"})");
  };
  CHECK(q(R"([["name","=","Beta"]])") == V{beta});
  CHECK(q(R"([["email","=",false]])") == V{gamma});
  CHECK(q(R"([["email","!=",false]])") == V{alpha, beta, delta});
  CHECK(q(R"([["city","!=","Ghent"]])") == V{beta, gamma, delta});  // != keeps NULLs too
  CHECK(q(R"([["email","!=","beta@y.org"]])") == V{alpha, gamma, delta});
  CHECK(q("[[\"id\",\">\"," + std::to_string(beta) + "]]") == V{gamma, delta});
  CHECK(q("[[\"id\",\">=\"," + std::to_string(beta) + "]]") == V{beta, gamma, delta});
  CHECK(q("[[\"id\",\"<\"," + std::to_string(beta) + "]]") == V{alpha});
  CHECK(q("[[\"id\",\"<=\"," + std::to_string(beta) + "]]") == V{alpha, beta});
  CHECK(q(R"([["city","in",["Ghent","Antwerp"]]])") == V{alpha, gamma});
  CHECK(q(R"([["city","not in",["Ghent","Antwerp"]]])") == V{beta, delta});
  CHECK(q(R"([["email","in",[false,"beta@y.org"]]])") == V{beta, gamma});
  CHECK(q(R"([["city","like","hent"]])") == V{alpha, delta});
  CHECK(q(R"([["city","like","Ghe"]])") == V{alpha});  // like is case-sensitive
  CHECK(q(R"([["email","ilike","X.COM"]])") == V{alpha, delta});
  CHECK(q(R"([["email","not ilike","x.com"]])") == V{beta, gamma});  // NULL kept
  CHECK(q(R"([["name","=ilike","_eta"]])") == V{beta});
  CHECK(q(R"([["name","=like","%a"]])") == V{alpha, beta, gamma, delta});
  CHECK(q(R"(["|",["city","=","Antwerp"],["name","=","Beta"]])") == V{beta, gamma});
  CHECK(q(R"(["&",["city","ilike","ghent"],["is_company","=",false]])") == V{delta});
  CHECK(q(R"([["city","ilike","ghent"],["is_company","=",true]])") == V{alpha});  // implicit &
  CHECK(q(R"(["!",["city","ilike","ghent"]])") == V{beta, gamma});
  CHECK(q(R"(["|","!",["name","=","Alpha"],"&",["name","=","Alpha"],["city","=","Ghent"]])") ==
        V{alpha, beta, gamma, delta});
  CHECK(q("[[\"parent_id\",\"=\"," + std::to_string(alpha) + "]]") == V{beta});
  CHECK(q(R"([["parent_id","ilike","alp"]])") == V{beta});  // many2one by name
  CHECK(q(R"([["parent_id","=",false]])") == V{alpha, gamma, delta});
  CHECK(q(R"([[1,"=",1]])") == V{alpha, beta, gamma, delta});
  const auto bad_field = f.kw("res.partner", "search", R"([[["nope","=",1]]])");
  CHECK(bad_field.error_name() == "builtins.ValueError");
  CHECK(f.kw("res.partner", "search", R"([[["name","~",1]]])").error_name() ==
        "builtins.ValueError");
  CHECK(f.kw("res.partner", "search", R"([["|",["name","=","x"]]])").is_error());
}

TEST_CASE("odoo order offset limit and search_count", "[sandbox]") {
  OdooFixture f;
  const auto ids = seed_four(f.sandbox);
  using V = std::vector<int64_t>;
  CHECK(f.search("res.partner", "[]", R"({"order":"id desc"})") ==
        V{ids[3], ids[2], ids[1], ids[0]});
  CHECK(f.search("res.partner", "[]", R"({"order":"city asc, id asc"})") ==
        V{ids[2], ids[1], ids[0], ids[3]});  // byte order: "Ghent" < "ghent"
  CHECK(f.search("res.partner", "[]", R"({"order":"email desc, id asc"})") ==
        V{ids[2], ids[1], ids[0], ids[3]});  // NULLs first when descending
  CHECK(f.search("res.partner", "[]", R"({"order":"id asc","offset":1,"limit":2})") ==
        V{ids[1], ids[2]});
  const auto positional = f.kw("res.partner", "search", R"([[], 2, 5, "id asc"])");
  CHECK(ids_of(positional.result()) == V{ids[2], ids[3]});
  const auto read = f.kw("res.partner", "search_read", R"([[]])",
                         R"({"fields":["name"],"order":"name desc","limit":2})");
  REQUIRE(read.result().Size() == 2);
  CHECK(str(read.result()[0]["name"]) == "delta");
  CHECK(read.result()[0].MemberCount() == 2);  // id and name
  CHECK(f.kw("res.partner", "search_count", R"([[["city","ilike","ghent"]]])").result().GetInt() ==
        2);
  CHECK(f.kw("res.partner", "search", "[[]]", R"({"order":"nope asc"})").error_name() ==
        "odoo.exceptions.UserError");
  CHECK(f.kw("res.partner", "search", "[[]]", R"({"limitt":1})").error_name() ==
        "builtins.TypeError");
}

TEST_CASE("odoo create with a list then read write and unlink", "[sandbox]") {
  OdooFixture f;
  const auto created =
      f.kw("res.partner", "create", R"([[{"name":"Ann","email":"ann@x.com"},{"name":"Bob"}]])");
  REQUIRE(created.result().IsArray());
  const auto ids = ids_of(created.result());
  REQUIRE(ids.size() == 2);
  const auto one = f.kw("res.partner", "create", R"([{"name":"Cid"}])");
  REQUIRE(one.result().IsInt64());  // a dict gives an id, a list ids
  const auto cid = one.result().GetInt64();
  const auto read = f.kw("res.partner", "read",
                         "[[" + std::to_string(ids[1]) + "," + std::to_string(ids[0]) + "]]",
                         R"({"fields":["name","email","active","is_company","create_date"]})");
  REQUIRE(read.result().Size() == 2);
  CHECK(str(read.result()[0]["name"]) == "Bob");  // in the order asked
  CHECK(read.result()[0]["email"].IsFalse());
  CHECK(read.result()[1]["active"].IsTrue());
  CHECK(read.result()[1]["is_company"].IsFalse());
  CHECK(str(read.result()[1]["create_date"]).size() == 19);
  const auto wrote =
      f.kw("res.partner", "write",
           "[[" + std::to_string(ids[0]) + "]," + R"({"city":"Ghent","phone":"+32"}])");
  CHECK(wrote.result().IsTrue());
  CHECK(std::get<std::string>(f.sandbox.record("crm", "res.partner", ids[0])->values.at("city")) ==
        "Ghent");
  CHECK(f.kw("res.partner", "unlink", "[[" + std::to_string(cid) + "]]").result().IsTrue());
  const auto gone = f.kw("res.partner", "read", "[[" + std::to_string(cid) + "]]");
  CHECK(gone.error_name() == "odoo.exceptions.MissingError");
  CHECK(gone.error_message().find("Record does not exist or has been deleted.") == 0);
  CHECK(f.kw("res.partner", "write", "[[" + std::to_string(cid) + R"(],{"name":"x"}])")
            .error_name() == "odoo.exceptions.MissingError");
  // Unknown fields in vals: ValidationError, nothing written (one transaction).
  const auto bad = f.kw("res.partner", "create", R"([[{"name":"Dee"},{"name":"E","nope":1}]])");
  CHECK(bad.error_name() == "odoo.exceptions.ValidationError");
  CHECK(f.sandbox.count("crm", "res.partner") == 2);
  CHECK(f.kw("res.partner", "create", R"([{"email":"x@y"}])").error_name() ==
        "odoo.exceptions.ValidationError");  // contacts require a name
}

TEST_CASE("odoo many2one reads as id and name and writes as id", "[sandbox]") {
  OdooFixture f;
  const auto partner = f.sandbox.create("crm", "res.partner", {{"name", std::string("Acme")}});
  const auto lead = f.kw("crm.lead", "create",
                         "[{\"name\":\"Deal\",\"partner_id\":" + std::to_string(partner) + "}]");
  const auto id = std::to_string(lead.result().GetInt64());
  auto read = f.kw("crm.lead", "read", "[[" + id + "]]",
                   R"({"fields":["stage_id","partner_id","type","expected_revenue"]})");
  const auto &row = read.result()[0];
  REQUIRE(row["stage_id"].IsArray());
  CHECK(str(row["stage_id"][1]) == "New");  // the first stage by sequence
  CHECK(row["partner_id"][0].GetInt64() == partner);
  CHECK(str(row["partner_id"][1]) == "Acme");
  CHECK(str(row["type"]) == "opportunity");
  CHECK(row["expected_revenue"].GetDouble() == 0.0);
  const auto won = f.search("crm.stage", R"([["name","=","Won"]])");
  REQUIRE(won.size() == 1);
  CHECK(f.kw("crm.lead", "write",
             "[[" + id + "],{\"stage_id\":" + std::to_string(won[0]) + ",\"partner_id\":false}]")
            .result()
            .IsTrue());
  read = f.kw("crm.lead", "read", "[[" + id + "]]", R"({"fields":["stage_id","partner_id"]})");
  CHECK(str(read.result()[0]["stage_id"][1]) == "Won");
  CHECK(read.result()[0]["partner_id"].IsFalse());
  const auto plain =
      f.kw("crm.lead", "read", "[[" + id + "]]", R"({"fields":["stage_id"],"load":null})");
  CHECK(plain.result()[0]["stage_id"].GetInt64() == won[0]);
  CHECK(f.search("crm.lead", "[[\"stage_id\",\"=\"," + std::to_string(won[0]) + "]]").size() == 1);
  CHECK(f.search("crm.lead", R"([["stage_id","=","Won"]])").size() == 1);
  CHECK(f.kw("crm.lead", "write", "[[" + id + R"(],{"stage_id":[1,"New"]}])").error_name() ==
        "builtins.ValueError");
  CHECK(f.kw("crm.lead", "write", "[[" + id + R"(],{"stage_id":999}])").error_name() ==
        "odoo.exceptions.ValidationError");
  CHECK(f.kw("crm.lead", "write", "[[" + id + R"(],{"type":"deal"}])").error_name() ==
        "builtins.ValueError");
  // Deleting the partner empties the lead's partner_id (ON DELETE SET NULL).
  f.sandbox.write("crm", "crm.lead", {std::stoll(id)}, {{"partner_id", partner}});
  f.sandbox.unlink("crm", "res.partner", {partner});
  CHECK(std::get<bool>(
            f.sandbox.record("crm", "crm.lead", std::stoll(id))->values.at("partner_id")) == false);
}

TEST_CASE("odoo archived records are hidden unless the domain or context asks", "[sandbox]") {
  OdooFixture f;
  const auto ids = seed_four(f.sandbox);
  f.sandbox.write("crm", "res.partner", {ids[1]}, {{"active", false}});
  CHECK(f.search("res.partner", "[]").size() == 3);
  CHECK(f.kw("res.partner", "search_count", "[[]]").result().GetInt() == 3);
  CHECK(f.search("res.partner", R"([["active","in",[true,false]]])").size() == 4);
  CHECK(f.search("res.partner", R"([["active","=",false]])") == std::vector<int64_t>{ids[1]});
  CHECK(f.search("res.partner", "[]", R"({"context":{"active_test":false}})").size() == 4);
  const auto read =
      f.kw("res.partner", "read", "[[" + std::to_string(ids[1]) + "]]", R"({"fields":["active"]})");
  CHECK(read.result()[0]["active"].IsFalse());  // read sees archived records
  CHECK(f.sandbox.count("crm", "res.partner") == 3);
  CHECK(f.sandbox.records("crm", "res.partner", true).size() == 4);
}

TEST_CASE("odoo fields_get describes fields with the asked attributes", "[sandbox]") {
  OdooFixture f;
  const auto all = f.kw("crm.lead", "fields_get", "[]", R"({"attributes":["type","relation"]})");
  const auto &fields = all.result();
  REQUIRE(fields.IsObject());
  CHECK(str(fields["stage_id"]["type"]) == "many2one");
  CHECK(str(fields["stage_id"]["relation"]) == "crm.stage");
  CHECK(str(fields["write_date"]["type"]) == "datetime");
  CHECK_FALSE(fields["name"].HasMember("string"));
  const auto some = f.json2("res.partner", "fields_get", R"({"allfields":["country_id"]})");
  REQUIRE(some.status() == 200);
  CHECK(some.json.MemberCount() == 1);
  CHECK(str(some.json["country_id"]["relation"]) == "res.country");
  CHECK(str(some.json["country_id"]["string"]) == "Country");
}

TEST_CASE("odoo JSON-2 takes bearer keys and answers errors with HTTP statuses", "[sandbox]") {
  OdooFixture f;
  const auto ids = seed_four(f.sandbox);
  const auto read =
      f.json2("res.partner", "search_read",
              R"({"domain":[["city","ilike","ghent"]],"fields":["name","country_id"],)"
              R"("order":"id asc","limit":1})");
  REQUIRE(read.status() == 200);
  REQUIRE(read.json.IsArray());
  CHECK(str(read.json[0]["name"]) == "Alpha");
  CHECK(read.json[0]["country_id"].IsFalse());
  const auto created =
      f.json2("crm.lead", "create", R"({"vals_list":[{"name":"A"},{"name":"B"}]})");
  REQUIRE(created.status() == 200);
  CHECK(created.json.Size() == 2);
  CHECK(f.json2("res.partner", "write",
                "{\"ids\":[" + std::to_string(ids[0]) + "],\"vals\":{\"zip\":\"9000\"}}")
            .json.IsTrue());
  CHECK(f.json2("res.partner", "search", "{}", "key-admin", {{"X-Odoo-Database", "crm"}})
            .json.Size() == 4);
  CHECK(f.json2("res.partner", "search", "{}", "key-bob", {{"X-Odoo-Database", "other"}})
            .json.Size() == 0);

  const auto denied = f.json2("res.partner", "search", "{}", "wrong-key");
  CHECK(denied.status() == 401);
  CHECK(str(denied.json["name"]) == "odoo.exceptions.AccessDenied");
  for (const auto *key : {"name", "message", "arguments", "context", "debug"})
    CHECK(denied.json.HasMember(key));
  CHECK(f.json2("res.partner", "search", "{}", "").status() == 401);
  CHECK(f.json2("res.partner", "search", "{}", "key-admin", {{"X-Odoo-Database", "other"}})
            .status() == 401);
  const auto forbidden =
      f.json2("res.partner", "create", R"({"vals_list":[{"name":"x"}]})", "key-viewer");
  CHECK(forbidden.status() == 403);
  CHECK(str(forbidden.json["name"]) == "odoo.exceptions.AccessError");
  const auto missing = f.json2("res.partner", "read", R"({"ids":[9999]})");
  CHECK(missing.status() == 404);
  CHECK(str(missing.json["name"]) == "odoo.exceptions.MissingError");
  const auto invalid = f.json2("res.partner", "create", R"({"vals_list":[{"nope":1}]})");
  CHECK(invalid.status() == 422);
  CHECK(str(invalid.json["name"]) == "odoo.exceptions.ValidationError");
  CHECK(f.json2("res.partner", "search_read", R"({"fields":["nope"]})").status() == 422);
  CHECK(f.json2("no.model", "search", "{}").status() == 404);
  CHECK(f.json2("res.partner", "frobnicate", "{}").status() == 404);
}

TEST_CASE("odoo JSON-RPC errors carry Odoo's error object and the request id", "[sandbox]") {
  OdooFixture f;
  const auto reply = f.rpc("object", "execute_kw",
                           R"(["crm",2,"key-admin","res.partner","search_read",[],)"
                           R"({"fields":["nope"]}])",
                           "\"req-7\"");
  REQUIRE(reply.status() == 200);
  REQUIRE(reply.is_error());
  CHECK(str(reply.json["jsonrpc"]) == "2.0");
  CHECK(str(reply.json["id"]) == "req-7");
  const auto &error = reply.json["error"];
  CHECK(error["code"].GetInt() == 200);
  CHECK(str(error["message"]) == "Odoo Server Error");
  CHECK(str(error["data"]["name"]) == "builtins.ValueError");
  CHECK(str(error["data"]["message"]).find("nope") != std::string::npos);
  CHECK(str(error["data"]["arguments"][0]) == str(error["data"]["message"]));
  CHECK(str(error["data"]["debug"]).rfind("Traceback", 0) == 0);
  CHECK(f.kw("res.partner", "create", R"([{"name":"x"}])", "{}", "key-viewer", 3).error_name() ==
        "odoo.exceptions.AccessError");
  CHECK(f.kw("no.model", "search", "[[]]").error_name() == "odoo.exceptions.UserError");
  CHECK(f.post("/jsonrpc", "{not json").is_error());
}

TEST_CASE("odoo write_date is shared by every record of one transaction", "[sandbox]") {
  OdooFixture f;
  f.sandbox.freeze_clock("2026-03-01 10:00:00");
  std::string vals = "[";
  for (int i = 0; i < 50; ++i)
    vals += (i ? "," : "") + ("{\"name\":\"P" + std::to_string(i) + "\"}");
  vals += "]";
  const auto created = f.kw("res.partner", "create", "[" + vals + "]");
  REQUIRE(created.result().Size() == 50);
  f.sandbox.freeze_clock("");
  // A C++ batch in one transaction shares its stamp too.
  auto tx = f.sandbox.begin_transaction("crm");
  for (int i = 0; i < 5; ++i) tx.create("res.partner", {{"name", "T" + std::to_string(i)}});
  tx.commit();
  for (const auto &r : f.sandbox.records("crm", "res.partner"))
    if (std::get<std::string>(r.values.at("name"))[0] == 'T')
      CHECK(std::get<std::string>(r.values.at("write_date")) == tx.stamp());
  const auto rows =
      f.kw("res.partner", "search_read", R"([[["name","=like","P%"]]])",
           R"({"fields":["write_date","create_date"],"order":"write_date asc, id asc"})");
  std::set<std::string> stamps;
  for (const auto &r : rows.result().GetArray()) {
    stamps.insert(str(r["write_date"]));
    CHECK(str(r["write_date"]) == str(r["create_date"]));
  }
  CHECK(stamps == std::set<std::string>{"2026-03-01 10:00:00"});
  // The compound cursor pages through the tie without losing a record.
  std::vector<int64_t> seen;
  std::string cursor_date = "2026-03-01 09:00:00";
  int64_t cursor_id = 0;
  for (int page = 0; page < 10; ++page) {
    const auto domain = R"(["|",["write_date",">",")" + cursor_date +
                        R"("],"&",["write_date","=",")" + cursor_date + R"("],["id",">",)" +
                        std::to_string(cursor_id) + R"(],["name","=like","P%"]])";
    const auto batch =
        f.kw("res.partner", "search_read", "[" + domain + "]",
             R"({"fields":["write_date"],"order":"write_date asc, id asc","limit":20})");
    if (batch.result().Empty()) break;
    for (const auto &r : batch.result().GetArray()) {
      seen.push_back(r["id"].GetInt64());
      cursor_date = str(r["write_date"]);
      cursor_id = r["id"].GetInt64();
    }
  }
  CHECK(seen == ids_of(created.result()));
}

TEST_CASE("odoo a backdated transaction commits an older write_date after a newer one",
          "[sandbox]") {
  OdooFixture f;
  const auto early = f.sandbox.create("crm", "res.partner", {{"name", std::string("Early")}});
  auto tx = f.sandbox.begin_transaction("crm", 5s);
  const auto late = tx.create("res.partner", {{"name", std::string("Late")}});
  tx.write("res.partner", {early}, {{"city", std::string("Old")}});
  CHECK(late > early);                                                 // the id is taken at once
  CHECK(f.search("res.partner", R"([["name","=","Late"]])").empty());  // invisible until commit
  f.sandbox.write("crm", "res.partner", {early}, {{"phone", std::string("1")}});
  const auto newest =
      std::get<std::string>(f.sandbox.record("crm", "res.partner", early)->values.at("write_date"));
  // A poller that saw `newest` asks for what is newer: the late commit is not there.
  tx.commit();
  const auto after = f.search("res.partner", R"([["write_date",">",")" + newest + "\"]]");
  CHECK(std::find(after.begin(), after.end(), late) == after.end());
  const auto row = f.sandbox.record("crm", "res.partner", late);
  REQUIRE(row);
  CHECK(std::get<std::string>(row->values.at("write_date")) == tx.stamp());
  CHECK(tx.stamp() < newest);
  // Its write to `early` also lands with the old stamp, over the newer one.
  CHECK(std::get<std::string>(
            f.sandbox.record("crm", "res.partner", early)->values.at("write_date")) == tx.stamp());

  // The same through the admin endpoints.
  const auto opened = f.post("/_sandbox/odoo/db/crm/transactions", R"({"backdate_seconds":60})");
  REQUIRE(opened.status() == 200);
  const auto tx_id = std::to_string(opened.json["id"].GetInt64());
  const auto made = f.post("/_sandbox/odoo/transactions/" + tx_id + "/create",
                           R"({"model":"res.partner","values":{"name":"Admin late"}})");
  REQUIRE(made.status() == 200);
  CHECK(f.search("res.partner", R"([["name","=","Admin late"]])").empty());
  CHECK(f.post("/_sandbox/odoo/transactions/" + tx_id + "/commit", "{}").status() == 200);
  const auto visible = f.search("res.partner", R"([["name","=","Admin late"]])");
  REQUIRE(visible.size() == 1);
  CHECK(std::get<std::string>(
            f.sandbox.record("crm", "res.partner", visible[0])->values.at("write_date")) ==
        str(opened.json["stamp"]));
  const auto one_shot =
      f.post("/_sandbox/odoo/db/crm/late-commit",
             R"({"model":"res.partner","records":[{"name":"L1"},{"name":"L2"}]})");
  REQUIRE(one_shot.status() == 200);
  CHECK(one_shot.json["ids"].Size() == 2);
  CHECK(str(one_shot.json["stamp"]) < f.sandbox.now());
}

TEST_CASE("odoo webhooks POST the automation payload with the secret header once", "[sandbox]") {
  OdooFixture f;
  Receiver receiver;
  const auto rule = f.sandbox.add_webhook({.model = "res.partner",
                                           .url = receiver.url(),
                                           .header_name = "X-Odoo-Secret",
                                           .header_value = "s3cret",
                                           .fields = {"name", "email", "parent_id"}});
  const auto created = f.kw("res.partner", "create", R"([{"name":"Zoë","email":"z@x.com"}])");
  REQUIRE(f.sandbox.wait_for_deliveries(1, 5s));
  auto got = receiver.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].header("X-Odoo-Secret") == "s3cret");
  CHECK(got[0].header("Content-Type") == "application/json");
  rapidjson::Document body;
  body.Parse(got[0].body.data(), got[0].body.size());
  REQUIRE(body.IsObject());
  CHECK(str(body["_model"]) == "res.partner");
  CHECK(body["_id"].GetInt64() == created.result().GetInt64());
  CHECK(str(body["_action"]) == "Send Webhook Notification(#" + std::to_string(rule) + ")");
  CHECK(str(body["name"]) == "Zoë");
  CHECK(body["parent_id"].IsFalse());
  CHECK(got[0].body.find("\\u00eb") != std::string::npos);  // Python's ASCII escapes
  // A failing receiver is not retried; unlink fires too.
  receiver.status = 500;
  f.sandbox.unlink("crm", "res.partner", {created.result().GetInt64()});
  REQUIRE(f.sandbox.wait_for_deliveries(2, 5s));
  std::this_thread::sleep_for(300ms);
  const auto deliveries = f.sandbox.deliveries();
  REQUIRE(deliveries.size() == 2);
  CHECK(deliveries[1].trigger == "unlink");
  CHECK(deliveries[1].status == 500);
  CHECK(receiver.received().size() == 2);
  // Other models and failed transactions send nothing.
  f.kw("crm.lead", "create", R"([{"name":"x"}])");
  f.kw("res.partner", "create", R"([{"name":"y","nope":1}])");
  std::this_thread::sleep_for(200ms);
  CHECK(f.sandbox.deliveries().size() == 2);
}

TEST_CASE("odoo injected faults follow the seed and every kind occurs", "[sandbox]") {
  OdooFixture f;
  f.sandbox.set_faults({0.15, 0.15, 0, 0.1, 0.1});
  const auto run = [&] {
    f.sandbox.set_fault_seed(42);
    std::vector<std::string> outcomes;
    for (int i = 0; i < 80; ++i) {
      const auto reply = f.kw("res.partner", "search", "[[]]");
      if (reply.status() == 0)
        outcomes.push_back("dropped");
      else if (reply.status() == 200 && reply.json.HasParseError())
        outcomes.push_back("malformed");
      else
        outcomes.push_back(std::to_string(reply.status()));
    }
    return outcomes;
  };
  const auto first = run();
  CHECK(first == run());
  const std::set<std::string> kinds(first.begin(), first.end());
  for (const auto *kind : {"200", "429", "dropped", "malformed"}) CHECK(kinds.count(kind) == 1);
  CHECK((kinds.count("502") + kinds.count("503")) >= 1);
  CHECK(f.sandbox.stats().injected_429 > 0);
  CHECK(f.post("/_sandbox/odoo/faults", R"({"p5xx":1})").status() == 200);  // never faulted
  CHECK(f.kw("res.partner", "search", "[[]]").status() / 100 == 5);
  f.sandbox.set_faults({});
  CHECK(f.kw("res.partner", "search", "[[]]").status() == 200);
}

TEST_CASE("odoo admin endpoints seed inspect and add users", "[sandbox]") {
  OdooFixture f;
  const auto seeded = f.post("/_sandbox/odoo/db/crm/res.partner/seed", R"({"count":10})");
  REQUIRE(seeded.status() == 200);
  CHECK(seeded.json["ids"].Size() == 10);
  CHECK(f.sandbox.count("crm", "res.partner") == 10);
  CHECK(f.search("res.partner", R"([["is_company","=",true]])").size() == 2);
  CHECK(f.post("/_sandbox/odoo/users",
               R"({"db":"crm","login":"carol","password":"c","api_key":"k-c"})")
            .json["uid"]
            .GetInt() == 4);
  CHECK(f.json2("res.partner", "search_count", "{}", "k-c").json.GetInt() == 10);
  const auto made = f.post("/_sandbox/odoo/db/crm/crm.lead", R"({"name":"From admin"})");
  REQUIRE(made.status() == 200);
  CHECK(f.post("/_sandbox/odoo/db/crm/crm.lead", R"({"nope":1})").status() == 400);
  const auto clock = f.post("/_sandbox/odoo/clock", R"({"frozen":"2030-01-02 03:04:05"})");
  CHECK(str(clock.json["now"]) == "2030-01-02 03:04:05");
  const auto listed =
      http_request("GET", f.sandbox.base_url() + "/_sandbox/odoo/db/crm/crm.lead", {}, "", 5s);
  rapidjson::Document json;
  json.Parse(listed.body.data(), listed.body.size());
  REQUIRE(json["records"].Size() == 1);
  CHECK(str(json["records"][0]["name"]) == "From admin");
  const auto state = http_request("GET", f.sandbox.base_url() + "/_sandbox/odoo/state", {}, "", 5s);
  json.Parse(state.body.data(), state.body.size());
  CHECK(json["databases"]["crm"]["res.partner"].GetInt() == 10);
  CHECK(json["databases"]["crm"]["crm.stage"].GetInt() == 4);
}

TEST_CASE("crm-sandbox serves odoo beside hubspot and prints the admin API key", "[sandbox]") {
  int out[2];
  REQUIRE(pipe(out) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(CRM_SANDBOX_PATH, CRM_SANDBOX_PATH, "--hubspot", "127.0.0.1:0", "--odoo", "127.0.0.1:0",
          "--odoo-seed-partners", "6", nullptr);
    _exit(127);
  }
  close(out[1]);
  std::vector<std::string> lines;
  std::string line;
  char c;
  while (lines.size() < 4 && read(out[0], &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    lines.push_back(line);
    line.clear();
  }
  close(out[0]);
  std::string port, key;
  for (const auto &l : lines) {
    if (l.rfind("odoo 127.0.0.1:", 0) == 0) port = l.substr(l.rfind(':') + 1);
    if (l.rfind("odoo db crm login admin password admin api-key ", 0) == 0)
      key = l.substr(l.rfind(' ') + 1);
  }
  REQUIRE(!port.empty());
  REQUIRE(key.size() == 40);
  const auto reply = http_request("POST", "http://127.0.0.1:" + port + "/json/2/res.partner/search",
                                  {{"Authorization", "bearer " + key}}, "{}", 5s);
  CHECK(reply.status == 200);
  rapidjson::Document json;
  json.Parse(reply.body.data(), reply.body.size());
  CHECK(json.Size() == 6);
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
