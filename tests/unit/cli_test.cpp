#include <filesystem>
#include <sstream>

#include <unistd.h>

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

TEST_CASE("crmhost migrate applies the schema and reports it naming the store without secrets",
          "[cli]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("crmhost-cli-migrate-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string uri = "sqlite://" + (dir / "sub" / "state.db").string();
  std::ostringstream out, err;
  CHECK(run({"migrate", "--store", uri, "--to", "1"}, out, err) == 0);
  CHECK_THAT(out.str(), Catch::Contains("migrated schema 0 -> 1"));
  std::ostringstream out2;
  CHECK(run({"migrate", "--store", uri}, out2, err) == 0);
  CHECK_THAT(out2.str(), Catch::Contains("migrated schema 1 -> "));
  std::ostringstream out3;
  CHECK(run({"migrate", "--store", uri, "--status"}, out3, err) == 0);
  CHECK_THAT(out3.str(), Catch::Contains("schema version"));
  std::ostringstream out4;
  CHECK(run({"migrate", "--store", uri}, out4, err) == 0);
  CHECK_THAT(out4.str(), Catch::Contains("nothing to apply"));
  std::filesystem::remove_all(dir);

  std::ostringstream bad_out, bad_err;
  CHECK(run({"migrate", "--store", "postgresql://sync:hunter2@127.0.0.1:1/nodb"}, bad_out,
            bad_err) == 1);
  CHECK_THAT(bad_err.str(), !Catch::Contains("hunter2"));
  CHECK(run({"migrate"}, bad_out, bad_err) == 2);
}

TEST_CASE("every command answers --help with its usage", "[cli]") {
  for (const std::string command :
       {"plugins", "migrate", "validate", "status", "replay", "backfill"}) {
    std::ostringstream out, err;
    INFO(command);
    CHECK(run({command, "--help"}, out, err) == 0);
    CHECK_THAT(out.str(), Catch::StartsWith("usage: crmhost " + command));
  }
  std::ostringstream out, err;
  CHECK(run({"run", "--help"}, out, err) == 0);
  CHECK_THAT(out.str(), Catch::Contains("SIGHUP"));
}
