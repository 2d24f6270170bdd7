// With a plugin registry: unknown plugins, settings against the plugin's JSON Schema, and the
// capabilities and objects a pipeline needs.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"
#include "plugins/plugin_registry.hpp"

using crmhost::test::problems_of;

namespace {

// The built memory plugin (settings schema: webhook_secret string >= 8, seed list of
// {object enum, id, data}, nothing else) and the old-layout fixture (poll only, contact only).
const crmhost::plugins::PluginRegistry &registry() {
  static const auto *r = [] {
    auto *loaded = new crmhost::plugins::PluginRegistry();
    loaded->load_directory(CRMHOST_BUILT_PLUGIN_DIR);
    loaded->load_file(std::string(CRMHOST_FIXTURE_DIR) + "/old-layout.so");
    loaded->load_file(std::string(CRMHOST_FIXTURE_DIR) + "/no-fetch.so");
    return loaded;
  }();
  return *r;
}

}  // namespace

TEST_CASE("the test plugins are there") {
  REQUIRE(registry().find("memory"));
  REQUIRE(registry().find("old-layout"));
}

TEST_CASE("valid settings pass the plugin's schema") {
  CHECK(problems_of("connections:\n"
                    "  mem:\n"
                    "    plugin: memory\n"
                    "    settings:\n"
                    "      webhook_secret: \"12345678\"\n"
                    "      seed:\n"
                    "        - { object: contact, id: \"1\", data: { email: a@example.com } }\n",
                    &registry())
            .empty());
}

TEST_CASE("settings are checked against the plugin's JSON Schema and every violation is reported") {
  SECTION("too short, unknown keys, a bad enum value deep down") {
    CHECK(
        problems_of("connections:\n"
                    "  mem:\n"
                    "    plugin: memory\n"
                    "    settings:\n"
                    "      webhook_secret: short\n"
                    "      secret: whatever\n"
                    "      seed:\n"
                    "        - { object: contcat, data: {} }\n",
                    &registry()) ==
        std::vector<std::string>{
            R"(c.yaml:5:23: settings.webhook_secret of connection "mem" must be at least 8 characters long)",
            R"(c.yaml:6:7: unknown key "secret" in settings of connection "mem" (did you mean "webhook_secret"?))",
            R"(c.yaml:8:21: settings.seed[0].object of connection "mem" must be one of "contact", "company", "deal")"});
  }
  SECTION("a missing required setting, reported at settings") {
    CHECK(
        problems_of("connections:\n"
                    "  mem:\n"
                    "    plugin: memory\n"
                    "    settings: { webhok_secret: \"12345678\" }\n",
                    &registry()) ==
        std::vector<std::string>{
            R"(c.yaml:4:5: settings of connection "mem" is missing the required key "webhook_secret")",
            R"(c.yaml:4:17: unknown key "webhok_secret" in settings of connection "mem" (did you mean "webhook_secret"?))"});
  }
  SECTION("no settings at all, reported at the connection") {
    CHECK(
        problems_of("connections:\n"
                    "  mem: { plugin: memory }\n",
                    &registry()) ==
        std::vector<std::string>{
            R"(c.yaml:2:3: settings of connection "mem" is missing the required key "webhook_secret")"});
  }
  SECTION("a wrong type, with a hint, and the value is never printed") {
    crmhost::test::ScopedEnv secret("CRMHOST_TEST_SECRET", "987654321");
    CHECK(
        problems_of("connections:\n"
                    "  mem:\n"
                    "    plugin: memory\n"
                    "    settings:\n"
                    "      webhook_secret: ${CRMHOST_TEST_SECRET}\n"
                    "      seed: {}\n",
                    &registry()) ==
        std::vector<std::string>{
            R"(c.yaml:5:23: settings.webhook_secret of connection "mem" must be a string, not an integer (quote it to make it a string))",
            R"(c.yaml:6:13: settings.seed of connection "mem" must be a list, not a mapping)"});
  }
}

TEST_CASE("unknown plugins") {
  // The built plugin directory grows with each provider: the list is checked by its members.
  const auto problems = problems_of(
      "connections:\n"
      "  hs: { plugin: acme-crm }\n"
      "  mem: { plugin: memroy }\n",
      &registry());
  REQUIRE(problems.size() == 2);
  CHECK_THAT(
      problems[0],
      Catch::StartsWith(
          R"(c.yaml:2:17: connection "hs" uses unknown plugin "acme-crm" (loaded plugins: )") &&
          Catch::Contains("memory") && Catch::EndsWith("old-layout, no-fetch)"));
  CHECK(problems[1] ==
        R"(c.yaml:3:18: connection "mem" uses unknown plugin "memroy" (did you mean "memory"?))");
  SECTION("with no plugins loaded") {
    crmhost::plugins::PluginRegistry empty;
    empty.load_directory("/nonexistent/crmhost/plugins");
    CHECK(
        problems_of("connections:\n  hs: { plugin: hubspot }\n", &empty) ==
        std::vector<std::string>{
            R"(c.yaml:2:17: connection "hs" uses unknown plugin "hubspot" (no plugins are loaded: check plugin_dir); the plugin directory /nonexistent/crmhost/plugins does not exist; create it, set plugin_dir or pass --plugin-dir)"});
  }
  SECTION("without a registry plugins are not checked") {
    CHECK(problems_of("connections:\n  hs: { plugin: hubspot }\n").empty());
  }
}

TEST_CASE("a pipeline needs the capabilities and objects it uses") {
  CHECK(
      problems_of("connections:\n"
                  "  old: { plugin: old-layout }\n"
                  "  mem: { plugin: memory, settings: { webhook_secret: \"12345678\" } }\n"
                  "pipelines:\n"
                  "  p:\n"
                  "    source:\n"
                  "      webhook: { connection: old, path: /hooks/old }\n"
                  "      poll: { connection: old, object: deal }\n"
                  "    sink:\n"
                  "      push: { connection: old, object: contact }\n"
                  "  q:\n"
                  "    source:\n"
                  "      poll: { connection: old, object: contact }\n"
                  "    sink:\n"
                  "      push: { connection: mem, object: ticket }\n",
                  &registry()) ==
      std::vector<std::string>{
          R"(c.yaml:7:30: pipeline "p" receives webhooks from connection "old", but its plugin "old-layout" lacks the "webhook" capability)",
          R"(c.yaml:8:40: plugin "old-layout" of connection "old" has no object "deal" (it has contact))",
          R"(c.yaml:10:27: pipeline "p" pushes to connection "old", but its plugin "old-layout" lacks the "push" capability)",
          R"(c.yaml:15:40: plugin "memory" of connection "mem" has no object "ticket" (it has contact, company, deal))"});
}

TEST_CASE("fill_empty needs a sink that can fetch; newest_wins does without") {
  const std::string head =
      "connections:\n"
      "  mem: { plugin: memory, settings: { webhook_secret: \"12345678\" } }\n"
      "  nf: { plugin: no-fetch }\n"
      "pipelines:\n"
      "  p:\n"
      "    source:\n"
      "      poll: { connection: mem, object: contact }\n"
      "    sink:\n";
  CHECK(
      problems_of(head + "      push: { connection: nf, object: contact, conflict: fill_empty }\n",
                  &registry()) ==
      std::vector<std::string>{
          R"(c.yaml:9:58: pipeline "p" uses conflict fill_empty, which reads the target records, but plugin "no-fetch" of connection "nf" lacks the "fetch" capability; choose another conflict policy)"});
  CHECK(
      problems_of(head + "      push: { connection: nf, object: contact, conflict: newest_wins }\n",
                  &registry())
          .empty());
}

TEST_CASE("a setting that makes a plugin keep state needs CRMHOST_SECRET_KEY at validation") {
  REQUIRE(registry().find("odoo"));
  const std::string config =
      "connections:\n"
      "  erp:\n"
      "    plugin: odoo\n"
      "    settings:\n"
      "      url: http://odoo.example\n"
      "      database: crm\n"
      "      api_key: k1\n"
      "      reconcile_interval_seconds: 3600\n";
  {
    crmhost::test::ScopedEnv key("CRMHOST_SECRET_KEY", nullptr);
    CHECK(problems_of(config, &registry()) ==
          std::vector<std::string>{
              "c.yaml:8:35: settings.reconcile_interval_seconds of connection \"erp\" makes the "
              "plugin keep state in the store, which is encrypted with CRMHOST_SECRET_KEY: it is "
              "not set (set it in the service's environment, e.g. /etc/crmhost/crmhost.env; "
              "`openssl rand -hex 32` makes one)"});
    // 0 turns the reconciliation off: no state, no key needed.
    std::string off = config;
    off.replace(off.find("3600"), 4, "0");
    CHECK(problems_of(off, &registry()).empty());
  }
  crmhost::test::ScopedEnv key("CRMHOST_SECRET_KEY", std::string(64, 'a').c_str());
  CHECK(problems_of(config, &registry()).empty());
}

// Odoo reconciles every 3600 s unless told otherwise: a typical configuration polling Odoo,
// which does not name the setting, keeps state too and needs the key as much as one that sets
// it. A connection only pushed to keeps nothing.
TEST_CASE("a state-keeping setting left at its default needs CRMHOST_SECRET_KEY when polled") {
  REQUIRE(registry().find("odoo"));
  const std::string connections =
      "connections:\n"
      "  erp:\n"
      "    plugin: odoo\n"
      "    settings:\n"
      "      url: http://odoo.example\n"
      "      database: crm\n"
      "      api_key: k1\n"
      "  mem: { plugin: memory, settings: { webhook_secret: \"12345678\" } }\n";
  const std::string polled = connections +
                             "pipelines:\n"
                             "  from-odoo:\n"
                             "    source: { poll: { connection: erp, object: contact } }\n"
                             "    sink: { push: { connection: mem, object: contact } }\n";
  const std::string pushed_to = connections +
                                "pipelines:\n"
                                "  to-odoo:\n"
                                "    source: { poll: { connection: mem, object: contact } }\n"
                                "    sink: { push: { connection: erp, object: contact } }\n";
  {
    crmhost::test::ScopedEnv key("CRMHOST_SECRET_KEY", nullptr);
    CHECK(problems_of(polled, &registry()) ==
          std::vector<std::string>{
              "c.yaml:4:5: settings.reconcile_interval_seconds of connection \"erp\" (not set: "
              "its default is 3600, and pipeline \"from-odoo\" polls it) makes the plugin keep "
              "state in the store, which is encrypted with CRMHOST_SECRET_KEY: it is not set (set "
              "it in the service's environment, e.g. /etc/crmhost/crmhost.env; `openssl rand -hex "
              "32` makes one)"});
    std::string off = polled;
    off.insert(off.find("  mem:"), "      reconcile_interval_seconds: 0\n");
    CHECK(problems_of(off, &registry()).empty());
    CHECK(problems_of(pushed_to, &registry()).empty());
  }
  crmhost::test::ScopedEnv key("CRMHOST_SECRET_KEY", std::string(64, 'a').c_str());
  CHECK(problems_of(polled, &registry()).empty());
}

TEST_CASE("plugin, object and preset problems never echo values from ${file:...} or ${ENV}") {
  crmhost::test::ScopedEnv secret("CRMHOST_TEST_SECRET", "env-SECRET-8d2b4e");
  crmhost::test::TempDir dir;
  dir.write("secret.txt", "tok-3f9a7c1e-SECRET-value\n");
  const auto file =
      dir.write("c.yaml",
                "connections:\n"
                "  a: { plugin: \"${file:secret.txt}\" }\n"
                "  m: { plugin: memory, settings: { webhook_secret: \"12345678\" } }\n"
                "pipelines:\n"
                "  p:\n"
                "    source: { poll: { connection: m, object: \"${CRMHOST_TEST_SECRET}\" } }\n"
                "    map: { preset: \"${file:secret.txt}\" }\n"
                "    sink: { push: { connection: m, object: contact } }\n");
  const auto problems =
      crmhost::test::listing(crmhost::config::load({file}, &registry()), dir.path());
  std::string all;
  for (const auto &p : problems) all += p + "\n";
  INFO(all);
  CHECK(all.find("tok-3f9a7c1e") == std::string::npos);
  CHECK(all.find("env-SECRET") == std::string::npos);
  CHECK_THAT(all, Catch::Contains("connection \"a\" uses unknown plugin the value from "
                                  "${file:secret.txt} (loaded plugins: "));
  CHECK_THAT(all, Catch::Contains("has no object the value from ${CRMHOST_TEST_SECRET} (it has"));
  CHECK_THAT(all, Catch::Contains("no preset the value from ${file:secret.txt};"));
}
