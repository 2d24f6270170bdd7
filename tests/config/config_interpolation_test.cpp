// ${VAR}, ${VAR:-default}, ${file:PATH} and how interpolated settings are typed.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include "config_test_support.hpp"
#include "util/json.hpp"

using crmhost::test::ScopedEnv;
using crmhost::test::TempDir;

namespace {

// Loads a config whose one connection has `settings`, returning its settings JSON.
std::string settings_of(const TempDir &dir, const std::string &settings) {
  const auto file =
      dir.write("c.yaml", "connections:\n  c:\n    plugin: memory\n    settings:\n" + settings);
  auto result = crmhost::config::load({file});
  INFO(crmhost::test::listing(result, dir.path()).size());
  for (const auto &p : result.problems) UNSCOPED_INFO(p.to_string());
  REQUIRE(result.config);
  return result.config->connections.at("c").settings_json;
}

}  // namespace

TEST_CASE("environment variables and defaults") {
  ScopedEnv set("CRMHOST_TEST_SET", "value-from-env");
  ScopedEnv empty("CRMHOST_TEST_EMPTY", "");
  ScopedEnv unset("CRMHOST_TEST_UNSET", nullptr);
  TempDir dir;
  const auto json = settings_of(dir,
                                "      a: ${CRMHOST_TEST_SET}\n"
                                "      b: ${CRMHOST_TEST_UNSET:-fallback}\n"
                                "      c: ${CRMHOST_TEST_EMPTY:-used when empty}\n"
                                "      d: x${CRMHOST_TEST_EMPTY}y\n"
                                "      e: pre-${CRMHOST_TEST_SET}-post ${CRMHOST_TEST_UNSET:-}!\n"
                                "      f: $${CRMHOST_TEST_SET} and $5\n");
  CHECK(json == R"({"a":"value-from-env","b":"fallback","c":"used when empty","d":"xy",)"
                R"("e":"pre-value-from-env-post !","f":"${CRMHOST_TEST_SET} and $5"})");
}

TEST_CASE("plain interpolated scalars are typed after substitution and quoted ones stay strings") {
  ScopedEnv number("CRMHOST_TEST_NUMBER", "42");
  ScopedEnv flag("CRMHOST_TEST_FLAG", "true");
  TempDir dir;
  const auto json = settings_of(dir,
                                "      plain_number: ${CRMHOST_TEST_NUMBER}\n"
                                "      quoted_number: \"${CRMHOST_TEST_NUMBER}\"\n"
                                "      plain_flag: ${CRMHOST_TEST_FLAG}\n"
                                "      literal: 1.5\n"
                                "      big: 18446744073709551615\n"
                                "      negative: -3\n"
                                "      nothing: ~\n"
                                "      quoted: \"007\"\n"
                                "      tagged: !!str 12\n"
                                "      hex: 0x1F\n"
                                "      list: [1, \"1\", yes]\n");
  CHECK(json == R"({"plain_number":42,"quoted_number":"42","plain_flag":true,"literal":1.5,)"
                R"("big":18446744073709551615,"negative":-3,"nothing":null,"quoted":"007",)"
                R"("tagged":"12","hex":"0x1F","list":[1,"1","yes"]})");
}

TEST_CASE("file interpolation reads the file and trims one newline and resolves relative paths") {
  TempDir dir;
  dir.write("secrets/token", "t0ken-from-file\n");
  const auto absolute = dir.write("abs", "abs\n\n");
  const auto json = settings_of(dir,
                                "      relative: ${file:secrets/token}\n"
                                "      absolute: \"${file:" +
                                    absolute.string() + "}\"\n");
  CHECK(json == R"({"relative":"t0ken-from-file","absolute":"abs\n"})");
}

TEST_CASE("interpolation problems name the variable or file and never a value") {
  ScopedEnv secret("CRMHOST_TEST_SECRET", "s3cr3t-value");
  TempDir dir;
  const auto file = dir.write("c.yaml",
                              "admin_token: ${file:missing-token}\n"
                              "plugin_dir: ${CRMHOST_TEST_SECRET}${not valid}\n"
                              "store: \"${CRMHOST_TEST_SECRET\"\n"
                              "log: { level: \"${file:}\" }\n");
  auto result = crmhost::config::load({file});
  const auto problems = crmhost::test::listing(result, dir.path());
  CHECK(
      problems ==
      std::vector<std::string>{
          "c.yaml:1:14: admin_token: cannot read missing-token for ${file:...}: no such file",
          R"(c.yaml:2:13: plugin_dir: "${not valid}" is not a valid variable reference (use ${NAME}, ${NAME:-default} or ${file:/path}))",
          R"(c.yaml:3:8: store: unterminated "${" (write "$${" for a literal "${"))",
          R"(c.yaml:4:15: log.level: "${file:}" names no file)"});
  for (const auto &p : problems) CHECK(p.find("s3cr3t") == std::string::npos);
}

TEST_CASE("interpolation applies to host settings and pipelines too") {
  ScopedEnv every("CRMHOST_TEST_EVERY", "5m");
  ScopedEnv token("CRMHOST_TEST_ADMIN", "0123456789abcdef0123");
  TempDir dir;
  const auto file = dir.write(
      "c.yaml",
      "admin_token: ${CRMHOST_TEST_ADMIN}\n"
      "connections:\n"
      "  mem: { plugin: memory }\n"
      "pipelines:\n"
      "  p:\n"
      "    source:\n"
      "      poll: { connection: mem, object: contact, every: \"${CRMHOST_TEST_EVERY}\" }\n"
      "    sink:\n"
      "      push: { connection: mem, object: \"${CRMHOST_TEST_OBJECT:-deal}\" }\n");
  auto result = crmhost::config::load({file});
  REQUIRE(result.problems.empty());
  CHECK(result.config->admin_token == "0123456789abcdef0123");
  CHECK(result.config->pipelines.at("p").poll->every == std::chrono::minutes(5));
  CHECK(result.config->pipelines.at("p").poll->jitter == std::chrono::seconds(30));
  CHECK(result.config->pipelines.at("p").sink.object == "deal");
}
