// A table of broken configurations, each with the exact problems it must produce.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using crmhost::test::problems_of;

namespace {

struct Case {
  const char *name;
  const char *yaml;
  std::vector<std::string> problems;
};

// A valid pipeline body to embed, so each case breaks one thing.
const std::vector<Case> kCases = {
    {"unknown top-level key",
     "stor: sqlite:///x.db\n",
     {R"(c.yaml:1:1: unknown key "stor" at the top level (did you mean "store"?))"}},
    {"log_level is nested under log",
     "log_level: debug\n",
     {R"(c.yaml:1:1: unknown key "log_level" at the top level (write log: { level: ..., format: ... }))"}},
    {"unknown key in a pipeline",
     "connections:\n"
     "  mem:\n"
     "    plugin: memory\n"
     "pipelines:\n"
     "  contacts-to-odoo:\n"
     "    source:\n"
     "      poll: { connection: mem, object: contact }\n"
     "    sink:\n"
     "      push: { connection: mem, object: contact }\n"
     "    retires: { attempts: 3 }\n",
     {R"(c.yaml:10:5: unknown key "retires" in pipeline "contacts-to-odoo" (did you mean "retry"?))"}},
    {"unknown key deeper down",
     "connections:\n"
     "  mem:\n"
     "    plugin: memory\n"
     "    rate_limit: { requests: 10, pre: 1s }\n",
     {R"(c.yaml:4:5: rate_limit of connection "mem" is missing the required key "per")",
      R"(c.yaml:4:33: unknown key "pre" in rate_limit of connection "mem" (did you mean "per"?))"}},
    {"wrong scalar types",
     "workers: { io: many, plugin: 0 }\n"
     "shutdown_grace: 30 seconds\n"
     "max_body: 1 MiB\n",
     {R"(c.yaml:1:16: workers.io must be an integer from 1 to 64, not "many")",
      R"(c.yaml:1:30: workers.plugin must be an integer from 1 to 256, not "0")",
      R"(c.yaml:2:17: shutdown_grace must be a duration such as 500ms, 30s, 15m, 2h, 7d or 1m30s, not "30 seconds")",
      R"(c.yaml:3:11: max_body must be a size from 1KiB to 1GiB such as 512KiB or 1MiB, not "1 MiB")"}},
    {"a mapping where a scalar belongs, a list where a mapping belongs",
     "store: { path: x }\n"
     "connections: [a, b]\n",
     {R"(c.yaml:1:8: store must be a string, not a mapping)",
      R"(c.yaml:2:14: connections must be a mapping of connection names to connections, not a list)"}},
    {"listen addresses",
     "listen: [0.0.0.0:8080, \"8080\", 0.0.0.0:8080]\n",
     {R"(c.yaml:1:24: listen address "8080" must be host:port, e.g. 0.0.0.0:8080 or [::1]:8080, with a port from 1 to 65535)",
      R"(c.yaml:1:32: listen address "0.0.0.0:8080" is listed twice)"}},
    {"store URI with a password is not echoed",
     "store: mysql://root:hunter2@db/crm\n",
     {R"(c.yaml:1:8: store must be a sqlite:///path/state.db or postgresql://user@host/db URI)"}},
    {"missing required keys",
     "connections:\n"
     "  mem:\n"
     "    settings: {}\n"
     "pipelines:\n"
     "  p:\n"
     "    enabled: yes\n",
     {R"(c.yaml:2:3: connection "mem" is missing the required key "plugin")",
      R"(c.yaml:5:3: pipeline "p" is missing the required key "source")",
      R"(c.yaml:5:3: pipeline "p" is missing the required key "sink")",
      R"(c.yaml:6:14: enabled of pipeline "p" must be true or false, not "yes")"}},
    {"a source with neither webhook nor poll, a push without object",
     "connections:\n"
     "  mem: { plugin: memory }\n"
     "pipelines:\n"
     "  p:\n"
     "    source: {}\n"
     "    sink:\n"
     "      push: { connection: mem }\n",
     {R"(c.yaml:5:5: source of pipeline "p" needs a webhook, a poll, or both)",
      R"(c.yaml:7:7: sink.push of pipeline "p" is missing the required key "object")"}},
    {"unknown connection and a webhook path used twice",
     "connections:\n"
     "  hubspot-main: { plugin: memory }\n"
     "pipelines:\n"
     "  a:\n"
     "    source:\n"
     "      webhook: { connection: hubspot-main, path: /hooks/hubspot }\n"
     "    sink:\n"
     "      push: { connection: hubspot-mian, object: contact }\n"
     "  b:\n"
     "    source:\n"
     "      webhook: { connection: hubspot-main, path: /hooks/hubspot/ }\n"
     "    sink:\n"
     "      push: { connection: hubspot-main, object: contact }\n",
     {R"(c.yaml:8:27: pipeline "a" names unknown connection "hubspot-mian" (did you mean "hubspot-main"?))",
      R"(c.yaml:11:50: webhook path "/hooks/hubspot/" is already used by pipeline "a" for the same object "contact" (c.yaml:6:50); set source.webhook.object to tell them apart)"}},
    {"enumerations, ranges and relations between values",
     "connections:\n"
     "  mem: { plugin: memory }\n"
     "pipelines:\n"
     "  p:\n"
     "    source:\n"
     "      poll: { connection: mem, object: contact, every: 1m, jitter: 2m, page_size: 0 }\n"
     "    sink:\n"
     "      push: { connection: mem, object: contact, mode: upsret, conflict: last_wins }\n"
     "    retry: { attempts: 1000, backoff: 5m..1s }\n"
     "    batch_size: -1\n",
     {R"(c.yaml:6:68: source.poll.jitter of pipeline "p" must be shorter than every (1m))",
      R"(c.yaml:6:83: source.poll.page_size of pipeline "p" must be an integer from 1 to 10000, not "0")",
      R"(c.yaml:8:55: sink.push.mode of pipeline "p" must be one of upsert, create, update, delete, not "upsret" (did you mean "upsert"?))",
      R"(c.yaml:8:73: sink.push.conflict of pipeline "p" must be one of source_wins, target_wins, newest_wins, fill_empty, not "last_wins")",
      R"(c.yaml:9:24: retry.attempts of pipeline "p" must be an integer from 1 to 100, not "1000")",
      R"(c.yaml:9:39: retry.backoff of pipeline "p" must not start above where it ends)",
      R"(c.yaml:10:17: batch_size of pipeline "p" must be an integer from 1 to 10000, not "-1")"}},
    {"a key twice in one mapping, a setting twice in one file",
     "store: sqlite:///a.db\n"
     "store: sqlite:///b.db\n"
     "connections:\n"
     "  mem: { plugin: memory, plugin: other }\n",
     {R"(c.yaml:2:1: "store" is already set at c.yaml:1:1)",
      R"(c.yaml:4:26: key "plugin" appears twice in connection "mem" (first at c.yaml:4:10))"}},
    {"an unset environment variable",
     "admin_token: ${CRMHOST_TEST_SURELY_UNSET}\n"
     "connections:\n"
     "  mem:\n"
     "    plugin: memory\n"
     "    settings: { webhook_secret: \"${CRMHOST_TEST_ALSO_UNSET}\" }\n",
     {R"(c.yaml:1:14: admin_token: environment variable CRMHOST_TEST_SURELY_UNSET is not set)",
      R"(c.yaml:5:33: environment variable CRMHOST_TEST_ALSO_UNSET is not set)"}},
    {"YAML syntax error, with the quoting hint",
     "connections:\n"
     "  hs:\n"
     "    plugin: hubspot\n"
     "    settings: { access_token: ${HUBSPOT_TOKEN} }\n",
     {R"(c.yaml:4:32: YAML syntax error: end of map flow not found (inside { } or [ ], quote values that use ${...}: "${NAME}"); the line reads "    settings: ...")"}},
    {"plain YAML syntax error",
     "pipelines:\n  a: b: c\n",
     {R"(c.yaml:2:7: YAML syntax error: illegal map value; the line reads "  a: b: c" (likely the indentation, or a second ": " on one line: align keys with their siblings, and quote a value that holds ": "))"}},
    {"a key indented under a plain value",
     "pipelines:\n"
     "  p:\n"
     "    batch_size: 5\n"
     "      retry: { attempts: 3 }\n",
     {R"(c.yaml:4:12: YAML syntax error: illegal map value; the line reads "      retry: { attempts: 3 }" (likely the indentation: this key is indented under a line that already has a value; align it with its siblings, or drop that value so it can hold keys))"}},
    {"not a mapping at all",
     "- store\n- listen\n",
     {R"(c.yaml:1:1: a configuration file must be a mapping of settings such as store, connections and pipelines)"}},
    {"bad names and paths",
     "connections:\n"
     "  \"hub spot\": { plugin: hubspot }\n"
     "  mem: { plugin: memory }\n"
     "pipelines:\n"
     "  p:\n"
     "    source:\n"
     "      webhook: { connection: mem, path: hooks/mem }\n"
     "    sink:\n"
     "      push: { connection: mem, object: contact }\n",
     {R"(c.yaml:2:3: connection name "hub spot" must be 1 to 64 letters, digits, "-" or "_")",
      R"(c.yaml:7:41: source.webhook.path of pipeline "p" must start with "/" and hold only letters, digits and / - _ . ~, not "hooks/mem")"}},
};

}  // namespace

TEST_CASE("broken configurations report every problem at its file:line:column") {
  for (const auto &c : kCases) {
    SECTION(c.name) {
      CHECK(problems_of(c.yaml) == c.problems);
    }
  }
}

TEST_CASE("a short admin token from the environment is refused without echoing it") {
  crmhost::test::ScopedEnv token("CRMHOST_TEST_TOKEN", "s3cr3t");
  const auto problems = problems_of("admin_token: ${CRMHOST_TEST_TOKEN}\n");
  REQUIRE(problems ==
          std::vector<std::string>{"c.yaml:1:14: admin_token must be at least 16 characters long"});
}

TEST_CASE("interpolated values are not echoed in type errors") {
  crmhost::test::ScopedEnv io("CRMHOST_TEST_IO", "s3cr3t");
  const auto problems = problems_of("workers: { io: \"${CRMHOST_TEST_IO}\" }\n");
  REQUIRE(problems ==
          std::vector<std::string>{"c.yaml:1:16: workers.io must be an integer from 1 to 64"});
}

TEST_CASE("a directory of files merges and names defined twice across files are problems") {
  crmhost::test::TempDir dir;
  dir.write("10-connections.yaml",
            "connections:\n"
            "  mem: { plugin: memory }\n");
  dir.write("20-pipelines.yml",
            "pipelines:\n"
            "  p:\n"
            "    source: { poll: { connection: mem, object: contact } }\n"
            "    sink: { push: { connection: mem, object: contact } }\n");
  dir.write("notes.txt", "not a config");
  SECTION("merged") {
    auto result = crmhost::config::load({dir.path()});
    REQUIRE(crmhost::test::listing(result, dir.path()).empty());
    REQUIRE(result.config);
    CHECK(result.config->connections.count("mem") == 1);
    CHECK(result.config->pipelines.at("p").poll->connection == "mem");
    CHECK(result.config->pipelines.at("p").where.file ==
          (dir.path() / "20-pipelines.yml").string());
  }
  SECTION("defined twice") {
    dir.write("30-more.yaml",
              "store: sqlite:///x.db\n"
              "connections:\n"
              "  mem: { plugin: memory }\n"
              "pipelines:\n"
              "  p: { source: { poll: { connection: mem, object: deal } }, sink: { push: { "
              "connection: mem, object: deal } } }\n");
    dir.write("40-store.yaml", "store: sqlite:///y.db\n");
    auto result = crmhost::config::load({dir.path()});
    CHECK_FALSE(result.config);
    CHECK(crmhost::test::listing(result, dir.path()) ==
          std::vector<std::string>{
              R"(30-more.yaml:3:3: connection "mem" is already defined at 10-connections.yaml:2:3)",
              R"(30-more.yaml:5:3: pipeline "p" is already defined at 20-pipelines.yml:2:3)",
              R"(40-store.yaml:1:1: "store" is already set at 30-more.yaml:1:1)"});
  }
}

TEST_CASE("missing files and empty directories are problems") {
  crmhost::test::TempDir dir;
  auto result = crmhost::config::load({dir.path() / "nope.yaml", dir.path()});
  CHECK(crmhost::test::listing(result, dir.path()) ==
        std::vector<std::string>{
            "nope.yaml: no such file",
            dir.path().string() + ": the directory holds no *.yaml or *.yml file"});
}

TEST_CASE("tls names files that exist and needs both of them") {
  CHECK(problems_of("tls: { cert: /nonexistent/cert.pem, key: /etc/passwd }\n") ==
        std::vector<std::string>{"c.yaml:1:14: tls.cert: no such file /nonexistent/cert.pem"});
  CHECK(problems_of("tls: { cert: /etc/passwd }\n") ==
        std::vector<std::string>{R"(c.yaml:1:1: tls is missing the required key "key")"});
  CHECK(problems_of("tls: { cert: /etc/passwd, key: /etc/passwd }\n").empty());
  CHECK(problems_of("metrics_token: short\n") ==
        std::vector<std::string>{"c.yaml:1:16: metrics_token must be at least 16 characters long"});
}

TEST_CASE("a webhook path is shared only by pipelines of one connection with distinct objects") {
  const std::string head =
      "connections:\n"
      "  hs: { plugin: memory }\n"
      "  other: { plugin: memory }\n"
      "pipelines:\n"
      "  contacts:\n"
      "    source: { webhook: { connection: hs, path: /hooks/hs } }\n"
      "    sink: { push: { connection: other, object: contact } }\n";
  CHECK(problems_of(
            head + "  companies:\n"
                   "    source: { webhook: { connection: hs, path: /hooks/hs, object: company } }\n"
                   "    sink: { push: { connection: other, object: company } }\n")
            .empty());
  CHECK(
      problems_of(head + "  theirs:\n"
                         "    source: { webhook: { connection: other, path: /hooks/hs } }\n"
                         "    sink: { push: { connection: hs, object: deal } }\n") ==
      std::vector<std::string>{
          R"(c.yaml:9:51: webhook path "/hooks/hs" is already used by pipeline "contacts" of another connection (c.yaml:6:48))"});
}
