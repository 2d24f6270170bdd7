// The host applies HubSpot's documented limits unless the connection configures its own.
#include <catch2/catch.hpp>

#include "cli/cli.hpp"
#include "plugins/plugin_registry.hpp"

using namespace std::chrono_literals;

TEST_CASE("hubspot's declared limits apply unless the connection sets its own") {
  crmhost::plugins::PluginRegistry registry;
  registry.load_directory(CRMHOST_PLUGIN_OUTPUT_DIR);
  REQUIRE(registry.find("hubspot"));
  crmhost::config::Config config;
  config.connections["plain"] = {"plain", "hubspot", "{}", std::nullopt, {}};
  config.connections["tuned"] = {
      "tuned", "hubspot", "{}", crmhost::config::RateLimit{190, std::chrono::seconds(10), 50}, {}};
  const auto limits = crmhost::cli::outbound_rate_limits(config, registry);
  REQUIRE(limits.count("plain"));
  CHECK(limits.at("plain").requests == 100);
  CHECK(limits.at("plain").per == 10000ms);
  CHECK(limits.at("plain/search").requests == 4);
  CHECK(limits.at("plain/search").per == 1000ms);
  CHECK(limits.at("tuned").requests == 190);  // the operator's setting wins
  CHECK(limits.at("tuned").burst == 50);
  CHECK(limits.at("tuned/search").requests == 4);  // a bucket the operator did not set keeps it
}
