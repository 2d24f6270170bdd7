// Durations, sizes, defaults and a fully written configuration read into the structs.
#include <catch2/catch.hpp>

#include "config_test_support.hpp"

using namespace std::chrono_literals;
using crmhost::config::parse_duration;
using crmhost::config::parse_size;

TEST_CASE("durations") {
  CHECK(parse_duration("500ms") == 500ms);
  CHECK(parse_duration("15s") == 15s);
  CHECK(parse_duration("15m") == 15min);
  CHECK(parse_duration("2h") == 2h);
  CHECK(parse_duration("1d") == 24h);
  CHECK(parse_duration("7d") == 168h);
  CHECK(parse_duration("1m30s") == 90s);
  CHECK(parse_duration("1h0m5s250ms") == 3605250ms);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("0s") == 0ms);
  for (const char *bad : {"", "15", "1.5s", "-1s", "1 s", "s", "30s1m", "1m1m", "1w", "15M",
                          "99999999999999999999d", "1000000d", "1s "})
    CHECK_FALSE(parse_duration(bad));
}

TEST_CASE("sizes") {
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("512B") == 512u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("1MiB") == 1048576u);
  CHECK(parse_size("1GiB") == 1073741824u);
  CHECK(parse_size("10kB") == 10000u);
  CHECK(parse_size("5MB") == 5000000u);
  CHECK(parse_size("2TiB") == 2199023255552u);
  for (const char *bad :
       {"", "MiB", "1 MiB", "1mib", "1.5MiB", "-1", "1PiB", "20000000TiB", "99999999999999999999"})
    CHECK_FALSE(parse_size(bad));
}

TEST_CASE("an empty file is the defaults") {
  crmhost::test::TempDir dir;
  auto result = crmhost::config::load({dir.write("c.yaml", "# nothing yet\n")});
  REQUIRE(result.config);
  const crmhost::config::Config defaults;
  CHECK(result.config->store == defaults.store);
  CHECK(result.config->listen == defaults.listen);
  CHECK(result.config->connections.empty());
}

TEST_CASE("every option is read into the structs") {
  crmhost::test::TempDir dir;
  const auto file = dir.write("c.yaml", R"(store: postgresql://crm@db/crmhost
listen: [0.0.0.0:8080, "[::1]:9090"]
admin_token: 0123456789abcdef
plugin_dir: plugins
log: { format: json, level: debug }
workers: { io: 2, plugin: 8 }
shutdown_grace: 10s
claim_lease: 2m
retention: 30d
max_body: 4MiB
connections:
  a:
    plugin: memory
    settings: { webhook_secret: "12345678", seed: [] }
    rate_limit: { requests: 100, per: 10s }
  b:
    plugin: memory
pipelines:
  p:
    enabled: false
    source:
      webhook: { connection: a, path: /hooks/a }
      poll: { connection: a, object: contact, every: 1h, jitter: 1m, page_size: 50 }
    map:
      preset: contact
      copy_unmapped: true
      fields:
        email: { from: [email, Email], transform: [trim, lower] }
    sink:
      push: { connection: b, object: contact, mode: update, match_on: email, conflict: fill_empty }
    retry: { attempts: 3, backoff: 2s..1m }
    batch_size: 25
  q:
    source: { webhook: { connection: b, path: /hooks/b } }
    sink: { push: { connection: a, object: deal } }
    retry: { backoff: 30s }
max_connections_per_client: 0
)");
  auto result = crmhost::config::load({file});
  for (const auto &p : result.problems) UNSCOPED_INFO(p.to_string());
  REQUIRE(result.config);
  const auto &c = *result.config;
  CHECK(c.store == "postgresql://crm@db/crmhost");
  CHECK(c.listen == std::vector<std::string>{"0.0.0.0:8080", "[::1]:9090"});
  CHECK(c.admin_token == "0123456789abcdef");
  CHECK(c.plugin_dir == (dir.path() / "plugins").string());
  CHECK(c.log_format == "json");
  CHECK(c.log_level == "debug");
  CHECK(c.io_threads == 2);
  CHECK(c.plugin_workers == 8);
  CHECK(c.shutdown_grace == 10s);
  CHECK(c.claim_lease == 2min);
  CHECK(c.retention == 24h * 30);
  CHECK(c.max_body == 4u << 20);
  CHECK(c.max_connections_per_client == 0);
  const auto &a = c.connections.at("a");
  CHECK(a.name == "a");
  CHECK(a.plugin == "memory");
  CHECK(a.settings_json == R"({"webhook_secret":"12345678","seed":[]})");
  REQUIRE(a.rate_limit);
  CHECK(a.rate_limit->requests == 100);
  CHECK(a.rate_limit->per == 10s);
  CHECK(a.where.line == 12);
  CHECK(a.where.column == 3);
  CHECK(c.connections.at("b").settings_json == "{}");
  CHECK_FALSE(c.connections.at("b").rate_limit);
  const auto &p = c.pipelines.at("p");
  CHECK_FALSE(p.enabled);
  REQUIRE(p.webhook);
  CHECK(p.webhook->connection == "a");
  CHECK(p.webhook->path == "/hooks/a");
  REQUIRE(p.poll);
  CHECK(p.poll->object == "contact");
  CHECK(p.poll->every == 1h);
  CHECK(p.poll->jitter == 1min);
  CHECK(p.poll->page_size == 50);
  CHECK(p.map.preset == "contact");
  CHECK(p.map.copy_unmapped);
  CHECK(p.map.fields_json ==
        R"({"email":{"from":["email","Email"],"transform":["trim","lower"]}})");
  CHECK(p.sink.connection == "b");
  CHECK(p.sink.object == "contact");
  CHECK(p.sink.mode == crmhost::config::PushMode::update);
  CHECK(p.sink.match_on == "email");
  CHECK(p.sink.conflict == crmhost::config::ConflictPolicy::fill_empty);
  CHECK(p.retry.attempts == 3);
  CHECK(p.retry.backoff_min == 2s);
  CHECK(p.retry.backoff_max == 1min);
  CHECK(p.batch_size == 25);
  const auto &q = c.pipelines.at("q");
  CHECK(q.enabled);
  CHECK_FALSE(q.poll);
  CHECK(q.sink.mode == crmhost::config::PushMode::upsert);
  CHECK(q.sink.conflict == crmhost::config::ConflictPolicy::fill_empty);  // the default for deals
  CHECK_FALSE(q.sink.match_on);
  CHECK(q.retry.attempts == 8);
  CHECK(q.retry.backoff_min == 30s);
  CHECK(q.retry.backoff_max == 30s);
  CHECK(q.map.fields_json == "{}");
  CHECK(q.batch_size == 100);
  CHECK(crmhost::config::plugin_dir_of({file}) == (dir.path() / "plugins").string());
}
