#include <sstream>

#include <catch2/catch.hpp>

#include "cli/cli.hpp"
#include "util/json.hpp"

using crmhost::cli::run;

TEST_CASE("crmhost plugins --json lists loaded plugins and refused files", "[cli]") {
  std::ostringstream out, err;
  const int rc = run({"plugins", "--plugin-dir", CRMHOST_FIXTURE_DIR, "--json"}, out, err);
  CHECK(rc == 1);  // some fixtures are refused on purpose
  auto doc = crmhost::json::parse(out.str(), "plugins output");
  REQUIRE(doc["plugins"].IsArray());
  REQUIRE(doc["refused"].IsArray());
  CHECK(doc["refused"].Size() == 8);
  bool found = false;
  for (const auto &p : doc["plugins"].GetArray()) {
    if (std::string(p["id"].GetString()) != "memory") continue;
    found = true;
    CHECK(std::string(p["version"].GetString()) == "1.0.0");
    CHECK(std::string(p["abi_version"].GetString()) == "1.0.0");
    CHECK(std::string(p["interfaces"][0].GetString()) == "crm.connector.v1");
    CHECK(p["objects"].Size() == 3);
    CHECK(p["capabilities"].Size() == 6);
    CHECK_THAT(std::string(p["path"].GetString()), Catch::EndsWith("memory.so"));
  }
  CHECK(found);
}

TEST_CASE("crmhost plugins prints a table and exits 0 when nothing is refused", "[cli]") {
  std::ostringstream out, err;
  const int rc = run({"plugins", "--plugin-dir", CRMHOST_BUILT_PLUGIN_DIR}, out, err);
  CHECK(rc == 0);
  CHECK_THAT(out.str(), Catch::StartsWith("ID ") && Catch::Contains("memory") &&
                            Catch::Contains("contact,company,deal"));
  CHECK_THAT(out.str(), !Catch::Contains("refused"));
}

TEST_CASE("crmhost rejects unknown commands and options with usage", "[cli]") {
  std::ostringstream out, err;
  CHECK(run({"frobnicate"}, out, err) == 2);
  CHECK_THAT(err.str(),
             Catch::Contains("unknown command 'frobnicate'") && Catch::Contains("usage:"));
  CHECK(run({"plugins", "--bogus"}, out, err) == 2);
  CHECK(run({"plugins", "--plugin-dir"}, out, err) == 2);
  std::ostringstream version;
  CHECK(run({"version"}, version, err) == 0);
  CHECK_THAT(version.str(), Catch::Contains("plugin ABI 1.0.0"));
}
