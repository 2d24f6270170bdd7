// `crmhost validate`: output, exit codes, --json, --quiet, --plugin-dir.
#include <catch2/catch.hpp>

#include <sstream>

#include "cli/cli.hpp"
#include "config_test_support.hpp"

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run validate(const std::vector<std::string> &args) {
  std::ostringstream out, err;
  const int code = crmhost::cli::run(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("crmhost validate") {
  crmhost::test::TempDir dir;
  dir.write("webhook.secret", "12345678\n");
  const auto good =
      dir.write(
             "good.yaml",
             "connections:\n"
             "  mem: { plugin: memory, settings: { webhook_secret: \"${file:webhook.secret}\" } }\n"
             "pipelines:\n"
             "  p: { source: { poll: { connection: mem, object: contact } },\n"
             "       sink: { push: { connection: mem, object: deal } } }\n")
          .string();
  const auto bad = dir.write("bad.yaml",
                             "stor: x\n"
                             "connections:\n"
                             "  mem: { plugin: memory, settings: { webhook_secret: short } }\n")
                       .string();
  const std::string plugins = "--plugin-dir=" CRMHOST_BUILT_PLUGIN_DIR;

  SECTION("all well: nothing printed, exit 0") {
    const auto r = validate({"validate", plugins, good});
    CHECK(r.code == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
  }
  SECTION("problems: each as file:line:column: message, exit 1") {
    const auto r = validate({"validate", "--plugin-dir", CRMHOST_BUILT_PLUGIN_DIR, good, bad});
    CHECK(r.code == 1);
    CHECK(r.out == bad + ":1:1: unknown key \"stor\" at the top level (did you mean \"store\"?)\n" +
                       bad +
                       ":3:54: settings.webhook_secret of connection \"mem\" must be at least 8 "
                       "characters long\n" +
                       bad +
                       ":3:54: warning: connections.mem.settings.webhook_secret is written inline: "
                       "take secrets from ${ENV} or ${file:/path} (or set allow_inline_secrets: "
                       "true)\n");
  }
  SECTION("a secret written inline: a warning, exit 0; allow_inline_secrets: true silences it") {
    const auto inline_token = dir.write("inline.yaml",
                                        "admin_token: inline-secret-0123456789\nmetrics_token: "
                                        "\"${file:webhook.secret}${file:webhook.secret}\"\n")
                                  .string();
    const auto r = validate({"validate", plugins, inline_token});
    CHECK(r.code == 0);
    CHECK(r.out == inline_token +
                       ":1:14: warning: admin_token is written inline: take secrets from ${ENV} "
                       "or ${file:/path} (or set allow_inline_secrets: true)\n");
    CHECK(r.out.find("inline-secret-0123456789") == std::string::npos);
    const auto allowed =
        dir.write("allowed.yaml",
                  "allow_inline_secrets: true\nadmin_token: inline-secret-0123456789\n")
            .string();
    const auto quiet = validate({"validate", plugins, allowed});
    CHECK(quiet.code == 0);
    CHECK(quiet.out.empty());
    const auto as_json = validate({"validate", "--json", plugins, inline_token});
    CHECK(as_json.out.find("\"warnings\": [") != std::string::npos);
    CHECK(as_json.out.find("admin_token is written inline") != std::string::npos);
  }
  SECTION("a missing plugin directory is named as missing, not as refused files") {
    const auto missing = (dir.path() / "no-such-plugins").string();
    const auto r = validate({"validate", "--plugin-dir", missing, good});
    CHECK(r.code == 1);
    CHECK(r.out.find("the plugin directory " + missing +
                     " does not exist; create it, set plugin_dir or pass --plugin-dir") !=
          std::string::npos);
    CHECK(r.out.find("were refused") == std::string::npos);
  }
  SECTION("the config's plugin_dir is used when --plugin-dir is not given") {
    const auto with_dir =
        dir.write("with-dir.yaml", "plugin_dir: " CRMHOST_BUILT_PLUGIN_DIR "\n" +
                                       std::string("connections:\n  mem: { plugin: memory }\n"))
            .string();
    const auto r = validate({"validate", with_dir});
    CHECK(r.code == 1);
    CHECK(r.out == with_dir +
                       ":3:3: settings of connection \"mem\" is missing the required key "
                       "\"webhook_secret\"\n");
  }
  SECTION("an unloadable plugin directory makes plugins unknown") {
    const auto r = validate({"validate", "--plugin-dir", (dir.path() / "none").string(), good});
    CHECK(r.code == 1);
    CHECK(r.out.find("uses unknown plugin \"memory\"") != std::string::npos);
  }
  SECTION("--quiet prints nothing") {
    const auto r = validate({"validate", "--quiet", plugins, bad});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
  }
  SECTION("--json") {
    const auto r = validate({"validate", "--json", plugins, bad});
    CHECK(r.code == 1);
    CHECK(r.out.find("\"valid\": false") != std::string::npos);
    CHECK(r.out.find("\"line\": 3") != std::string::npos);
    CHECK(r.out.find("\"column\": 54") != std::string::npos);
    const auto ok = validate({"validate", "--json", plugins, good});
    CHECK(ok.code == 0);
    CHECK(ok.out.find("\"valid\": true") != std::string::npos);
  }
  SECTION("usage errors exit 2") {
    CHECK(validate({"validate"}).code == 2);
    CHECK(validate({"validate", "--frobnicate", good}).code == 2);
    CHECK(validate({"validate", "--plugin-dir"}).code == 2);
  }
}
