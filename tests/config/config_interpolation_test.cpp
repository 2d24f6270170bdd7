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

TEST_CASE("problems name values from ${file:...} and ${ENV} by their source, never by content") {
  ScopedEnv secret("CRMHOST_TEST_SECRET", "env-SECRET-8d2b4e");
  ScopedEnv listen("CRMHOST_TEST_LISTEN", "127.0.0.1:18080");
  ScopedEnv path("CRMHOST_TEST_PATH", "/hooks/env-SECRET-path");
  TempDir dir;
  dir.write("secret.txt", "tok-3f9a7c1e-SECRET-value\n");
  const auto file = dir.write(
      "c.yaml",
      "listen: [\"${CRMHOST_TEST_LISTEN}\", \"${CRMHOST_TEST_LISTEN}\"]\n"
      "tls:\n"
      "  cert: ${file:secret.txt}\n"
      "  key: ${CRMHOST_TEST_SECRET}\n"
      "connections:\n"
      "  src: { plugin: memory }\n"
      "pipelines:\n"
      "  p1:\n"
      "    source: { webhook: { connection: \"${file:secret.txt}\", path: \"${CRMHOST_TEST_PATH}\" "
      "} }\n"
      "    sink: { push: { connection: \"${CRMHOST_TEST_SECRET}\", object: contact } }\n"
      "  p2:\n"
      "    source: { webhook: { connection: src, path: \"${CRMHOST_TEST_PATH}\" } }\n"
      "    map:\n"
      "      default_country: ${CRMHOST_TEST_SECRET}\n"
      "      fields: { phone: { from: phone, transform: [e164] } }\n"
      "    sink: { push: { connection: src, object: contact } }\n");
  const auto problems = crmhost::test::listing(crmhost::config::load({file}), dir.path());
  std::string all;
  for (const auto &p : problems) all += p + "\n";
  INFO(all);
  CHECK(all.find("tok-3f9a7c1e") == std::string::npos);
  CHECK(all.find("env-SECRET") == std::string::npos);
  CHECK(all.find("127.0.0.1:18080") == std::string::npos);
  CHECK_THAT(all, Catch::Contains("listen address the value from ${CRMHOST_TEST_LISTEN} is "
                                  "listed twice"));
  CHECK_THAT(all, Catch::Contains("tls.cert: no such file as the value from ${file:secret.txt}"));
  CHECK_THAT(all,
             Catch::Contains("tls.key: no such file as the value from ${CRMHOST_TEST_SECRET}"));
  CHECK_THAT(all, Catch::Contains("names unknown connection the value from ${file:secret.txt}\n"));
  CHECK_THAT(all,
             Catch::Contains("names unknown connection the value from ${CRMHOST_TEST_SECRET}\n"));
  CHECK_THAT(all, Catch::Contains("webhook path the value from ${CRMHOST_TEST_PATH} is already "
                                  "used by pipeline \"p1\""));
  CHECK_THAT(all,
             Catch::Contains("default_country, not \"the value from ${CRMHOST_TEST_SECRET}\""));
}
